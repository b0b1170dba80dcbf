/**
 * RealHost: the Host interface on the real kernel, through the standard tools
 * (iptables-{nft,legacy}-{save,restore}, ipset, conntrack, ip, ovs-vsctl),
 * optionally inside a network namespace (`ip netns exec NS …`).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  assertNever,
  type ConntrackDeletion,
  checkDevice,
  checkExternalIds,
  checkLinkOp,
  checkNetns,
  checkSysctl,
  conntrackDeleteArgs,
  conntrackFilterMatches,
  type Family,
  type Host,
  HostCommandError,
  type LinkInfo,
  type LinkOp,
  type OvsPort,
  parseConntrackList,
} from './host.js'

export type IptablesBackend = 'nft' | 'legacy'

export interface RealHostOptions {
  /** Run every command inside this network namespace (`ip netns exec`). */
  readonly netns?: string
  /** iptables-nft (Debian default) or iptables-legacy. */
  readonly backend?: IptablesBackend
  /** Path of the ovsdb-server unix socket (a private OVS instance); default: the system's. */
  readonly ovsDbSocket?: string
  /**
   * LD_PRELOAD library for iptables-restore (native/sgwall-gai.c: port numbers
   * parsed without an address dump per port); default: the built shim when it
   * exists (`defaultRestorePreload`), null: none.
   */
  readonly restorePreload?: string | null
}

/**
 * The built shim native/build/sgwall-gai.so (scripts/build-native.sh), looked up
 * from this module upwards (src/host/ under vitest, dist/src/host/ when built);
 * null when it was not built (no C compiler): restores then run without it.
 */
export function defaultRestorePreload(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'native', 'build', 'sgwall-gai.so')
    if (existsSync(candidate)) return candidate
    dir = dirname(dir)
  }
  return null
}

export interface RunResult {
  readonly stdout: string
  readonly stderr: string
  readonly code: number | null
}

/** Spawn a process, feed stdin, collect output. Never throws for a non-zero exit. */
export function runProcess(argv: readonly string[], stdin?: string, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => reject(new HostCommandError(argv, null, String(e.message), null)))
    child.on('close', (code) =>
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code }),
    )
    child.stdin.on('error', () => {
      // the process may exit before reading all input; its exit code tells what happened
    })
    child.stdin.end(stdin ?? '')
  })
}

/** The 1-based line number an error message of a restore tool names, if any. */
export function failingLineNumber(stderr: string): number | null {
  const patterns = [
    /Error occurred at line: (\d+)/, // iptables-restore 1.8
    /line:? (\d+) failed/i, // older iptables-restore: "line 3 failed"
    /Error in line (\d+)/i, // ipset restore
    /Command failed -:(\d+)/, // ip -batch
    /^-:(\d+)/m,
  ]
  for (const p of patterns) {
    const m = p.exec(stderr)
    if (m) return Number(m[1])
  }
  return null
}

function lineOf(doc: string, n: number | null): string | null {
  if (n === null) return null
  return doc.split('\n')[n - 1] ?? null
}

export function renderLinkOp(op: LinkOp): string[] {
  checkLinkOp(op)
  switch (op.op) {
    case 'add-bridge': {
      const a = ['link', 'add', op.name]
      if (op.mtu !== undefined) a.push('mtu', String(op.mtu))
      // os-vif: STP off, forward delay 0; multicast snooping off so bridges send no IGMP noise.
      a.push('type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0')
      return a
    }
    case 'add-veth': {
      const a = ['link', 'add', op.name]
      if (op.mtu !== undefined) a.push('mtu', String(op.mtu))
      a.push('type', 'veth', 'peer', 'name', op.peer)
      if (op.mtu !== undefined) a.push('mtu', String(op.mtu))
      if (op.peerNetns !== undefined) a.push('netns', op.peerNetns)
      return a
    }
    case 'set': {
      const a = ['link', 'set', op.name]
      if (op.master !== undefined) a.push('master', op.master)
      if (op.mtu !== undefined) a.push('mtu', String(op.mtu))
      if (op.address !== undefined) a.push('address', op.address)
      if (op.up === true) a.push('up')
      if (op.up === false) a.push('down')
      return a
    }
    case 'delete':
      return ['link', 'del', op.name]
    case 'addr-add': {
      const a = ['addr', 'add', op.cidr, 'dev', op.name]
      if (op.cidr.includes(':')) a.push('nodad')
      return a
    }
    case 'route-default':
      return ['route', 'replace', op.v6 ? '::/0' : '0.0.0.0/0', 'dev', op.name]
    case 'add-tap':
      return ['tuntap', 'add', 'dev', op.name, 'mode', 'tap']
    default:
      return assertNever(op)
  }
}

interface IpJsonLink {
  ifname: string
  master?: string
  mtu: number
  flags?: string[]
  address?: string
  linkinfo?: { info_kind?: string }
}

export class RealHost implements Host {
  readonly description: string
  private readonly prefix: string[]
  private readonly backend: IptablesBackend
  private readonly ovsDbSocket: string | undefined
  private readonly restoreEnv: NodeJS.ProcessEnv | undefined
  /**
   * iptables-nft-restore's cost grows with the square of the chains one document
   * names, so a big creation goes in documents of 5000 rules. Not for legacy: each
   * of its commits rewrites the whole table.
   */
  readonly restoreSplit: { readonly minRules: number; readonly chunkRules: number } | null

  constructor(readonly options: RealHostOptions = {}) {
    if (options.netns !== undefined) checkNetns('netns', options.netns)
    this.prefix = options.netns === undefined ? [] : ['ip', 'netns', 'exec', options.netns]
    this.backend = options.backend ?? 'nft'
    this.ovsDbSocket = options.ovsDbSocket
    this.restoreSplit = this.backend === 'nft' ? { minRules: 4000, chunkRules: 5000 } : null
    const preload = options.restorePreload === undefined ? defaultRestorePreload() : options.restorePreload
    if (preload !== null) {
      const inherited = process.env.LD_PRELOAD
      this.restoreEnv = { ...process.env, LD_PRELOAD: inherited ? `${preload}:${inherited}` : preload }
    }
    this.description = `${options.netns === undefined ? 'main namespace' : `netns ${options.netns}`}, iptables-${this.backend}`
  }

  /** Run a command in the host's namespace; throws HostCommandError on a non-zero exit. */
  async run(argv: readonly string[], stdin?: string, env?: NodeJS.ProcessEnv): Promise<string> {
    const full = [...this.prefix, ...argv]
    const r = await runProcess(full, stdin, env)
    if (r.code !== 0) {
      const failing = stdin === undefined ? null : lineOf(stdin, failingLineNumber(r.stderr))
      throw new HostCommandError(full, r.code, r.stderr, failing)
    }
    return r.stdout
  }

  private iptablesTool(family: Family, tool: 'save' | 'restore'): string {
    return `${family === 4 ? 'iptables' : 'ip6tables'}-${this.backend}-${tool}`
  }

  async iptablesSave(family: Family, options: { counters?: boolean } = {}): Promise<string> {
    const argv = [this.iptablesTool(family, 'save')]
    if (options.counters) argv.push('-c')
    return this.run(argv)
  }

  async iptablesRestore(family: Family, doc: string): Promise<void> {
    const argv = [this.iptablesTool(family, 'restore'), '--noflush']
    if (this.backend === 'legacy') argv.push('-w', '10')
    await this.run(argv, doc, this.restoreEnv)
  }

  async ipsetSave(): Promise<string> {
    return this.run(['ipset', 'save'])
  }

  async ipsetRestore(doc: string): Promise<void> {
    if (doc.trim() === '') return
    await this.run(['ipset', 'restore'], doc)
  }

  async conntrackDelete(batch: readonly ConntrackDeletion[]): Promise<void> {
    if (batch.length === 0) return
    for (const d of batch) conntrackDeleteArgs(d)
    // Every `conntrack -D` filter costs a kernel walk of the whole conntrack table
    // (~13 ms, even when empty), so list the table once and run only the filters
    // that match something. The rules are already in place: entries created after
    // this listing were admitted by the new rules.
    const entries = parseConntrackList(await this.run(['conntrack', '-L', '-o', 'extended']))
    const needed = batch.filter((d) => entries.some((e) => conntrackFilterMatches(d, e)))
    if (needed.length === 0) return
    const doc = `${needed.map((d) => conntrackDeleteArgs(d).join(' ')).join('\n')}\n`
    // `conntrack -R -` opens /dev/stdin, which fails when stdin is node's socketpair: use a file.
    const dir = await mkdtemp(join(tmpdir(), 'sgwall-ct-'))
    try {
      const file = join(dir, 'delete.txt')
      await writeFile(file, doc)
      try {
        await this.run(['conntrack', '-R', file])
      } catch (e) {
        if (e instanceof HostCommandError) {
          throw new HostCommandError(e.command, e.exitStatus, e.stderr, lineOf(doc, failingLineNumber(e.stderr)))
        }
        throw e
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }

  async listLinks(): Promise<LinkInfo[]> {
    const out = await this.run(['ip', '-j', '-d', 'link', 'show'])
    const links = JSON.parse(out) as IpJsonLink[]
    return links.map((l) => ({
      name: l.ifname,
      master: l.master ?? null,
      mtu: l.mtu,
      up: l.flags?.includes('UP') ?? false,
      address: l.address ?? null,
      kind: l.linkinfo?.info_kind ?? null,
    }))
  }

  async linkBatch(ops: readonly LinkOp[]): Promise<void> {
    if (ops.length === 0) return
    const doc = `${ops.map((op) => renderLinkOp(op).join(' ')).join('\n')}\n`
    await this.run(['ip', '-batch', '-'], doc)
  }

  async sysctlSet(entries: Readonly<Record<string, string>>): Promise<void> {
    const args = Object.entries(entries).map(([k, v]) => {
      checkSysctl(k, v)
      return `${k}=${v}`
    })
    if (args.length) await this.run(['sysctl', '-q', '-w', ...args])
  }

  private vsctl(): string[] {
    const a = ['ovs-vsctl', '--timeout=10']
    if (this.ovsDbSocket !== undefined) a.push(`--db=unix:${this.ovsDbSocket}`)
    return a
  }

  async ovsAddPorts(bridge: string, ports: readonly OvsPort[]): Promise<void> {
    checkDevice('bridge', bridge)
    if (ports.length === 0) return
    const argv = this.vsctl()
    for (const p of ports) {
      checkDevice('port', p.name)
      checkExternalIds('external-ids', p.externalIds)
      argv.push('--', '--may-exist', 'add-port', bridge, p.name, '--', 'set', 'Interface', p.name)
      for (const [k, v] of Object.entries(p.externalIds)) argv.push(`external-ids:${k}=${v}`)
    }
    // ovs-vsctl talks to ovsdb over a unix socket; no namespace needed, but vswitchd must see the ports.
    await this.run(argv)
  }

  async ovsDelPorts(bridge: string, ports: readonly string[]): Promise<void> {
    checkDevice('bridge', bridge)
    if (ports.length === 0) return
    const argv = this.vsctl()
    for (const p of ports) argv.push('--', '--if-exists', 'del-port', bridge, checkDevice('port', p))
    await this.run(argv)
  }

  async ovsListPorts(bridge: string): Promise<OvsPort[]> {
    checkDevice('bridge', bridge)
    const names = (await this.run([...this.vsctl(), 'list-ports', bridge])).split('\n').filter((s) => s !== '')
    if (names.length === 0) return []
    const out = await this.run([
      ...this.vsctl(),
      '--format=json',
      '--columns=name,external_ids',
      'list',
      'Interface',
      ...names,
    ])
    const parsed = JSON.parse(out) as { data: [string, ['map', [string, string][]]][] }
    return parsed.data.map(([name, ids]) => ({ name, externalIds: Object.fromEntries(ids[1]) }))
  }

  /** ofport of an OVS interface (-1 or missing means vswitchd could not open it). */
  async ovsOfport(port: string): Promise<number> {
    const out = await this.run([...this.vsctl(), 'get', 'Interface', checkDevice('port', port), 'ofport'])
    const n = Number(out.trim())
    return Number.isFinite(n) ? n : -1
  }
}
