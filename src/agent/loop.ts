/**
 * The agent loop: take this host's scenario from the server, compile it, make the
 * dataplane hold it, then follow the change feed and do it again for each batch of
 * changes. Design (Calico Felix's): updates only mark the host dirty; one apply step
 * does all kernel I/O; while the server is unreachable the last applied state stays
 * (never flush, never open); a feed that has moved past our revision means "take a
 * snapshot". Objects equal to the previous snapshot's are reused, so the compiler's
 * caches see an unchanged group as the same object and only recompile what changed.
 */
import { adoptZones } from '../compile/adopt.js'
import type { AgentMemory, CompiledHost } from '../compile/index.js'
import { HostCompiler } from '../compile/index.js'
import { AppError } from '../errors.js'
import type { Host } from '../host/host.js'
import type { HostState, Port, Scenario, SecurityGroup } from '../model/types.js'
import { parseScenario } from '../model/validate.js'
import { parseIptablesSave } from '../netfilter/parse-save.js'
import { type ApplyReport, applyCompiled, applyCompiledChange } from './apply.js'

export interface AgentOptions {
  /** `http://host:port` of the sgwall server. */
  readonly server: string
  /** This host's name (`binding:host_id` of its ports). */
  readonly host: string
  readonly dataplane: Host
  readonly firewallDriver?: 'iptables_hybrid' | 'iptables'
  readonly enableIpset?: boolean
  /**
   * Returns a token for the X-Auth-Token header (null: the server runs without auth). `fresh`: the
   * server refused the last one (401: revoked, expired early, or the identity was reset): get a new one.
   */
  readonly token?: (fresh?: boolean) => Promise<string | null>
  /** Long-poll duration per feed request, seconds. */
  readonly waitSeconds?: number
  /** A full reconcile against the kernel at least this often (seconds; default 60). */
  readonly resyncSeconds?: number
  /** Called after every apply and every error (for logs, metrics, tests). */
  readonly onEvent?: (e: AgentEvent) => void
  /** Sleep used between retries (tests inject a fast one). */
  readonly sleep?: (ms: number) => Promise<void>
}

export type AgentEvent =
  | { readonly kind: 'applied'; readonly revision: number; readonly ms: number; readonly changedChains: number }
  | { readonly kind: 'error'; readonly message: string; readonly retryInMs: number }
  | { readonly kind: 'snapshot'; readonly revision: number }

interface FeedPage {
  readonly revision: number
  readonly changes: readonly unknown[]
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export class Agent {
  private readonly compiler: HostCompiler
  private memory: AgentMemory | undefined
  private previous: HostState | null = null
  private revision = -1
  private stopped = false
  /** Set after an error: the next apply reads the kernel instead of trusting lastApplied. */
  private dirty = true
  private lastFullSync = 0
  private readonly abort = new AbortController()
  /** The last state the dataplane was made to hold. */
  lastApplied: CompiledHost | null = null

  constructor(readonly options: AgentOptions) {
    this.compiler = new HostCompiler({
      firewall_driver: options.firewallDriver ?? 'iptables_hybrid',
      enable_ipset: options.enableIpset ?? true,
    })
  }

  get currentRevision(): number {
    return this.revision
  }

  stop(): void {
    this.stopped = true
    this.abort.abort()
  }

  /** Run until stop(): snapshot, apply, follow the feed; retry with backoff on errors. */
  async run(): Promise<void> {
    const sleep = this.options.sleep ?? realSleep
    let backoff = 250
    let needSnapshot = true
    while (!this.stopped) {
      try {
        if (needSnapshot) {
          await this.syncOnce()
          needSnapshot = false
        }
        const page = await this.feed(this.revision, this.options.waitSeconds ?? 20)
        if (page === 'truncated') {
          needSnapshot = true
          continue
        }
        if (page.changes.length > 0) await this.syncOnce()
        else {
          this.revision = Math.max(this.revision, page.revision)
          // Quiet feed: repair drift (someone else's iptables -F …) now and then.
          if (performance.now() - this.lastFullSync > (this.options.resyncSeconds ?? 60) * 1000) {
            this.dirty = true
            await this.syncOnce()
          }
        }
        backoff = 250
      } catch (err) {
        if (this.stopped) break
        const message = err instanceof Error ? err.message : String(err)
        this.options.onEvent?.({ kind: 'error', message, retryInMs: backoff })
        await sleep(backoff)
        backoff = Math.min(backoff * 2, 10_000)
        // After an error we do not know what we missed, nor what the kernel holds:
        // resynchronise from a snapshot and reconcile against the kernel.
        needSnapshot = true
        this.dirty = true
      }
    }
  }

  /** Take the host's scenario, compile it and make the dataplane hold it. */
  async syncOnce(): Promise<CompiledHost> {
    const t0 = performance.now()
    const { scenario, revision } = await this.snapshot()
    this.options.onEvent?.({ kind: 'snapshot', revision })
    const state = this.reuse(scenario)
    // A (re)started agent adopts the zones the kernel already holds, so a restart does
    // not move established connections to new zones.
    this.memory ??= adoptZones(
      parseIptablesSave(await this.options.dataplane.iptablesSave(4)).ruleset,
      this.compiler.config.firewall_driver,
    )
    const compiled = this.compiler.compile(state, this.memory)
    // Hot path: the kernel holds what we applied last, so only the chains the compiler
    // rebuilt are planned and written. A full reconcile (read the kernel, diff, repair)
    // runs at start, after any error, and every resyncSeconds.
    const resyncMs = (this.options.resyncSeconds ?? 60) * 1000
    const full = this.lastApplied === null || this.dirty || performance.now() - this.lastFullSync > resyncMs
    let report: ApplyReport
    if (full) {
      report = await applyCompiled(this.options.dataplane, compiled)
      this.lastFullSync = performance.now()
      this.dirty = false
    } else {
      report = await applyCompiledChange(this.options.dataplane, this.lastApplied as CompiledHost, compiled)
    }
    // Only now is the new state ours: a failed apply leaves the memory as it was.
    this.memory = compiled.memory
    this.previous = state
    this.lastApplied = compiled
    this.revision = revision
    this.options.onEvent?.({
      kind: 'applied',
      revision,
      ms: performance.now() - t0,
      changedChains: report.plan.chainChanges.length,
    })
    return compiled
  }

  /** Reuse the previous snapshot's objects where they are equal (keeps the compiler's caches warm). */
  private reuse(s: Scenario): HostState {
    const prev = this.previous
    if (!prev) return s
    const groupsBefore = new Map(prev.security_groups.map((g) => [g.id, g]))
    const security_groups = s.security_groups.map((g) => sameOr(groupsBefore.get(g.id), g))
    const portsBefore = new Map(prev.ports.map((p) => [p.id, p]))
    const ports = s.ports.map((p) => sameOr(portsBefore.get(p.id), p))
    const samePorts = ports.length === prev.ports.length && ports.every((p, i) => p === prev.ports[i])
    const members: Record<string, HostState['members'][string]> = {}
    for (const [gid, m] of Object.entries(s.members)) {
      const before = prev.members[gid]
      members[gid] = {
        ...(m.IPv4 ? { IPv4: sameOr(before?.IPv4, m.IPv4) } : {}),
        ...(m.IPv6 ? { IPv6: sameOr(before?.IPv6, m.IPv6) } : {}),
      }
      if (before && members[gid]?.IPv4 === before.IPv4 && members[gid]?.IPv6 === before.IPv6) members[gid] = before
    }
    const sameMembers =
      Object.keys(members).length === Object.keys(prev.members).length &&
      Object.entries(members).every(([k, v]) => prev.members[k] === v)
    const sameGroups =
      security_groups.length === prev.security_groups.length &&
      security_groups.every((g, i) => g === prev.security_groups[i])
    return {
      security_groups: sameGroups ? prev.security_groups : (security_groups as SecurityGroup[]),
      members: sameMembers ? prev.members : members,
      ports: samePorts ? prev.ports : (ports as Port[]),
    }
  }

  private async headers(fresh = false): Promise<Record<string, string>> {
    const token = this.options.token ? await this.options.token(fresh) : null
    return token ? { 'X-Auth-Token': token, Accept: 'application/json' } : { Accept: 'application/json' }
  }

  /** GET with our token; a 401 is answered once by authenticating again. */
  private async get(url: string): Promise<Response> {
    const res = await fetch(url, { headers: await this.headers(), signal: this.abort.signal })
    if (res.status !== 401 || !this.options.token) return res
    await res.body?.cancel()
    return fetch(url, { headers: await this.headers(true), signal: this.abort.signal })
  }

  private async snapshot(): Promise<{ scenario: Scenario; revision: number }> {
    const q = new URLSearchParams({
      firewall_driver: this.compiler.config.firewall_driver,
      enable_ipset: String(this.compiler.config.enable_ipset),
    })
    const url = `${this.options.server}/v2.0/sgwall/hosts/${encodeURIComponent(this.options.host)}/scenario?${q}`
    const res = await this.get(url)
    if (!res.ok) throw new AppError('ApiRefused', `GET ${url}: ${res.status} ${await res.text()}`)
    const revision = Number(res.headers.get('x-sgwall-revision') ?? '0')
    const { scenario, issues } = parseScenario(await res.json())
    if (!scenario)
      throw new AppError(
        'ApiRefused',
        `the server's scenario for ${this.options.host} is invalid`,
        issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      )
    return { scenario, revision }
  }

  private async feed(since: number, wait: number): Promise<FeedPage | 'truncated'> {
    const url = `${this.options.server}/v2.0/sgwall/changes?since=${Math.max(0, since)}&wait=${wait}`
    const res = await this.get(url)
    if (res.status === 410) return 'truncated'
    if (!res.ok) throw new AppError('ApiRefused', `GET ${url}: ${res.status} ${await res.text()}`)
    return (await res.json()) as FeedPage
  }
}

/** `before` when it is deep-equal to `now` (JSON of the same shape), else `now`. */
function sameOr<T>(before: T | undefined, now: T): T {
  if (before === undefined) return now
  return JSON.stringify(before) === JSON.stringify(now) ? before : now
}

/** A token source for the built-in identity: password auth, token reused until it expires or is refused. */
export function passwordToken(
  identityUrl: string,
  user: string,
  password: string,
  project: string,
): (fresh?: boolean) => Promise<string> {
  let token: string | null = null
  let expires = 0
  return async (fresh = false) => {
    if (token && !fresh && Date.now() < expires - 60_000) return token
    const res = await fetch(`${identityUrl}/auth/tokens`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: user, domain: { name: 'Default' }, password } },
          },
          scope: { project: { name: project, domain: { name: 'Default' } } },
        },
      }),
    })
    if (!res.ok) throw new AppError('ApiRefused', `identity refused ${user}: ${res.status} ${await res.text()}`)
    token = res.headers.get('x-subject-token')
    const body = (await res.json()) as { token?: { expires_at?: string } }
    expires = body.token?.expires_at ? Date.parse(body.token.expires_at) : Date.now() + 3600_000
    if (!token) throw new AppError('ApiRefused', 'identity returned no X-Subject-Token')
    return token
  }
}
