/**
 * The agent-facing API (admin only): the change feed `GET /v2.0/sgwall/changes?since=REV`
 * (long-poll with `wait=SECONDS`; 410 ChangeLogTruncated when `since` is older than the
 * retained log: take a snapshot) and `GET /v2.0/sgwall/hosts/{host}/scenario`, the host
 * scenario of shared/spec/scenario.md for the ports bound to that host, read in one
 * transaction; its revision is in the `X-Sgwall-Revision` header.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type {
  FirewallDriver,
  GroupMembers,
  HostConfig,
  Port,
  Scenario,
  SecurityGroup,
  SecurityGroupRule,
} from '../model/types.js'
import type { Store } from '../store/index.js'
import type { Database } from '../store/schema.js'
import { type Db, NO_IDS } from './common.js'
import type { RequestContext } from './context.js'
import { badRequest, nerr, policy } from './neutron-error.js'

export interface Change {
  readonly revision: number
  readonly seq: number
  readonly resource: string
  readonly id: string
  readonly action: string
  readonly project_id: string | null
  readonly body: unknown
}

export interface ChangesPage {
  /** Revision the reader is now at (pass it as the next `since`). */
  readonly revision: number
  readonly changes: Change[]
}

export async function readChanges(store: Store, since: number, limit: number): Promise<ChangesPage | 'truncated'> {
  const meta = await store.db.selectFrom('sgwall_meta').selectAll().where('id', '=', 1).executeTakeFirstOrThrow()
  if (since < Number(meta.pruned_through)) return 'truncated'
  const revs = await store.db
    .selectFrom('changes')
    .select('revision')
    .distinct()
    .where('revision', '>', since)
    .orderBy('revision')
    .limit(limit)
    .execute()
  if (revs.length === 0) return { revision: Math.max(since, Number(meta.revision)), changes: [] }
  const last = Number(revs[revs.length - 1]!.revision)
  const rows = await store.db
    .selectFrom('changes')
    .selectAll()
    .where('revision', '>', since)
    .where('revision', '<=', last)
    .orderBy('revision')
    .orderBy('seq')
    .execute()
  const full = revs.length < limit
  return {
    revision: full ? Math.max(last, Number(meta.revision)) : last,
    changes: rows.map((r) => ({
      revision: Number(r.revision),
      seq: Number(r.seq),
      resource: r.resource,
      id: r.resource_id,
      action: r.action,
      project_id: r.project_id,
      body: r.body === null ? null : JSON.parse(r.body),
    })),
  }
}

/** The scenario of one host, from the store (one consistent read). */
export async function hostScenario(db: Db, host: string, config: HostConfig): Promise<Scenario> {
  const ports = await db.selectFrom('ports').selectAll().where('binding_host_id', '=', host).orderBy('id').execute()
  const portIds = ports.map((p) => p.id)
  const inIds = (ids: string[]) => (ids.length ? ids : NO_IDS)
  const [ips, pairs, bindings] = await Promise.all([
    db.selectFrom('port_fixed_ips').selectAll().where('port_id', 'in', inIds(portIds)).orderBy('position').execute(),
    db
      .selectFrom('port_address_pairs')
      .selectAll()
      .where('port_id', 'in', inIds(portIds))
      .orderBy('position')
      .execute(),
    db
      .selectFrom('port_security_groups')
      .selectAll()
      .where('port_id', 'in', inIds(portIds))
      .orderBy('position')
      .execute(),
  ])
  const localGroups = [...new Set(bindings.map((b) => b.security_group_id))]
  const rules = await db
    .selectFrom('security_group_rules')
    .selectAll()
    .where('security_group_id', 'in', inIds(localGroups))
    .orderBy('standard_attr_id')
    .execute()
  const remoteGroups = [...new Set(rules.map((r) => r.remote_group_id).filter((x): x is string => x !== null))]
  const allGroupIds = [...new Set([...localGroups, ...remoteGroups])]
  const groups = await db
    .selectFrom('security_groups')
    .select(['id', 'stateful'])
    .where('id', 'in', inIds(allGroupIds))
    .execute()
  const remoteRules = remoteGroups.some((g) => !localGroups.includes(g))
    ? await db
        .selectFrom('security_group_rules')
        .selectAll()
        .where(
          'security_group_id',
          'in',
          remoteGroups.filter((g) => !localGroups.includes(g)),
        )
        .orderBy('standard_attr_id')
        .execute()
    : []
  const ruleModel = (r: (typeof rules)[number]): SecurityGroupRule => ({
    id: r.id,
    direction: r.direction as SecurityGroupRule['direction'],
    ethertype: r.ethertype as SecurityGroupRule['ethertype'],
    protocol: r.protocol,
    port_range_min: r.port_range_min,
    port_range_max: r.port_range_max,
    remote_ip_prefix: r.remote_ip_prefix,
    remote_group_id: r.remote_group_id,
  })
  const rulesBy = new Map<string, SecurityGroupRule[]>()
  for (const r of [...rules, ...remoteRules]) {
    const l = rulesBy.get(r.security_group_id) ?? []
    l.push(ruleModel(r))
    rulesBy.set(r.security_group_id, l)
  }
  const security_groups: SecurityGroup[] = groups
    .sort((a, b) => allGroupIds.indexOf(a.id) - allGroupIds.indexOf(b.id))
    .map((g) => ({ id: g.id, stateful: g.stateful !== 0, rules: rulesBy.get(g.id) ?? [] }))
  // members: every address of every port (on any host) in each remote group
  const members: Record<string, GroupMembers> = {}
  if (remoteGroups.length) {
    const memberBindings = await db
      .selectFrom('port_security_groups')
      .select(['port_id', 'security_group_id'])
      .where('security_group_id', 'in', remoteGroups)
      .execute()
    const memberPorts = [...new Set(memberBindings.map((b) => b.port_id))]
    const [mips, mpairs] = await Promise.all([
      db
        .selectFrom('port_fixed_ips')
        .select(['port_id', 'ip_address'])
        .where('port_id', 'in', inIds(memberPorts))
        .orderBy('position')
        .execute(),
      db
        .selectFrom('port_address_pairs')
        .select(['port_id', 'ip_address'])
        .where('port_id', 'in', inIds(memberPorts))
        .orderBy('position')
        .execute(),
    ])
    const addrs = new Map<string, string[]>()
    for (const a of [...mips, ...mpairs]) addrs.set(a.port_id, [...(addrs.get(a.port_id) ?? []), a.ip_address])
    for (const g of remoteGroups) {
      const v4 = new Set<string>()
      const v6 = new Set<string>()
      for (const b of memberBindings)
        if (b.security_group_id === g) for (const a of addrs.get(b.port_id) ?? []) (a.includes(':') ? v6 : v4).add(a)
      const m: { IPv4?: string[]; IPv6?: string[] } = {}
      if (v4.size) m.IPv4 = [...v4].sort()
      if (v6.size) m.IPv6 = [...v6].sort()
      members[g] = m
    }
  }
  const by = <T extends { port_id: string }>(xs: T[], id: string) => xs.filter((x) => x.port_id === id)
  const portModels: Port[] = ports.map((p) => {
    const port: Port = {
      id: p.id,
      mac_address: p.mac_address,
      fixed_ips: by(ips, p.id).map((x) => x.ip_address),
      allowed_address_pairs: by(pairs, p.id).map((x) => ({ ip_address: x.ip_address, mac_address: x.mac_address })),
      security_groups: by(bindings, p.id).map((x) => x.security_group_id),
      port_security_enabled: p.port_security_enabled !== 0,
      network_id: p.network_id,
      ...(p.device_owner ? { device_owner: p.device_owner } : {}),
    }
    return port
  })
  return { config, security_groups, members, ports: portModels, steps: [] }
}

export function feedRoutes(store: Store) {
  return (app: FastifyInstance, ctxOf: (req: FastifyRequest) => RequestContext) => {
    const admin = (req: FastifyRequest) => {
      if (!ctxOf(req).isAdmin) throw policy('rule:get_sgwall_feed')
    }
    app.get('/v2.0/sgwall/changes', async (req) => {
      admin(req)
      const q = req.query as Record<string, string | undefined>
      const since = Number(q.since ?? '0')
      const wait = Math.min(Number(q.wait ?? '0'), 60)
      const limit = Math.min(Math.max(Number(q.limit ?? '1000'), 1), 10_000)
      if (!Number.isInteger(since) || since < 0)
        throw badRequest(`Invalid input for since. Reason: '${q.since}' is not a non-negative integer.`)
      if (!Number.isFinite(wait) || wait < 0)
        throw badRequest(`Invalid input for wait. Reason: '${q.wait}' is not a number of seconds.`)
      if (!Number.isInteger(limit)) throw badRequest(`Invalid input for limit. Reason: '${q.limit}' is not an integer.`)
      const deadline = Date.now() + wait * 1000
      for (;;) {
        const page = await readChanges(store, since, limit)
        if (page === 'truncated')
          throw nerr('ChangeLogTruncated', `Changes after revision ${since} are no longer retained; take a snapshot.`)
        if (page.changes.length > 0 || Date.now() >= deadline) return page
        // Wake on a local commit, or poll (another server process may write to a shared PostgreSQL).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(1000, Math.max(0, deadline - Date.now())))
          const off = store.onCommit(done)
          function done() {
            clearTimeout(timer)
            off()
            resolve()
          }
        })
      }
    })
    app.get<{ Params: { host: string } }>('/v2.0/sgwall/hosts/:host/scenario', async (req, reply) => {
      admin(req)
      const q = req.query as Record<string, string | undefined>
      const driver = (q.firewall_driver ?? 'iptables_hybrid') as FirewallDriver
      if (driver !== 'iptables_hybrid' && driver !== 'iptables')
        throw badRequest(`Invalid input for firewall_driver. Reason: ${driver} is not in valid_values.`)
      const ipset = (q.enable_ipset ?? 'true').toLowerCase() !== 'false'
      const config: HostConfig = { firewall_driver: driver, enable_ipset: ipset }
      const { scenario, revision } = await snapshot(store, async (db) => ({
        scenario: await hostScenario(db, req.params.host, config),
        revision: Number(
          (await db.selectFrom('sgwall_meta').select('revision').where('id', '=', 1).executeTakeFirstOrThrow())
            .revision,
        ),
      }))
      reply.header('X-Sgwall-Revision', String(revision))
      return scenario
    })
  }
}

/** Runs `fn` on one consistent snapshot (REPEATABLE READ on PostgreSQL; SQLite reads are serialised). */
async function snapshot<T>(store: Store, fn: (db: Db) => Promise<T>): Promise<T> {
  if (store.dialect === 'postgres')
    return (store.db as Kysely<Database>)
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute((tx) => fn(tx))
  return store.db.transaction().execute((tx) => fn(tx))
}
