/**
 * security-groups and security-group-rules (spec §5, §6): wire format, default group,
 * validation and normalisation, duplicate detection, cascades, quotas, visibility.
 */
import { type DialectName, type RawStatement, type Store, TextCache, type WriteContext } from '../store/index.js'
import type { SecurityGroupRuleTable, SecurityGroupTable } from '../store/schema.js'
import { type AttrDef, type Body, processAttributes } from './body.js'
import {
  b,
  checkIfMatch,
  checkQuota,
  type Db,
  i,
  loadTags,
  NO_IDS,
  newId,
  QUOTA_DEFAULTS,
  sharedGroupIds,
} from './common.js'
import type { RequestContext } from './context.js'
import {
  convertBoolean,
  convertEthertype,
  convertPort,
  convertProtocol,
  convertRemoteIpPrefix,
  IPV6_ONLY_PROTOCOLS,
  type ParsedPrefix,
  PROTOCOL_NUMBERS,
  protocolNumber,
  validateString,
  validateStringOrNone,
  validateValues,
} from './convert.js'
import type { CollectionSpec, Wire } from './listing.js'
import { invalidInput, nerr, policy, sgNotFound } from './neutron-error.js'

// ---------------------------------------------------------------- wire format

export function ruleWire(r: SecurityGroupRuleTable, embedded = false): Wire {
  const w: Wire = {
    id: r.id,
    tenant_id: r.project_id,
    security_group_id: r.security_group_id,
    ethertype: r.ethertype,
    direction: r.direction,
    protocol: r.protocol,
    port_range_min: r.port_range_min,
    port_range_max: r.port_range_max,
    remote_ip_prefix: r.remote_ip_prefix,
    remote_address_group_id: r.remote_address_group_id,
    normalized_cidr: r.normalized_cidr,
    remote_group_id: r.remote_group_id,
    description: r.description,
  }
  if (embedded) {
    w.standard_attr_id = r.standard_attr_id
    w.tags = []
  }
  w.created_at = r.created_at
  w.updated_at = r.updated_at
  w.revision_number = r.revision_number
  w.project_id = r.project_id
  return w
}

export function groupWire(
  g: SecurityGroupTable,
  rules: readonly SecurityGroupRuleTable[],
  tags: readonly string[],
  shared: boolean,
): Wire {
  return {
    id: g.id,
    name: g.name,
    stateful: b(g.stateful),
    tenant_id: g.project_id,
    description: g.description,
    shared,
    security_group_rules: rules.map((r) => ruleWire(r, true)),
    tags: [...tags],
    created_at: g.created_at,
    updated_at: g.updated_at,
    revision_number: g.revision_number,
    project_id: g.project_id,
  }
}

// ---------------------------------------------------------------- attributes

const groupName = (v: unknown): unknown => {
  const reason = validateString(255)(v)
  if (reason) throw invalidInput('name', reason)
  if ((v as string).toLowerCase() === 'default')
    throw nerr('SecurityGroupDefaultAlreadyExists', 'Default security group already exists.')
  return v
}

export const GROUP_ATTRS: readonly AttrDef[] = [
  { name: 'id', post: false, put: false },
  { name: 'name', post: true, put: true, default: '', convert: groupName },
  { name: 'stateful', post: true, put: true, default: true, convert: convertBoolean },
  { name: 'security_group_rules', post: false, put: false },
  { name: 'shared', post: false, put: false },
  { name: 'description', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'tags', post: false, put: false },
  { name: 'created_at', post: false, put: false },
  { name: 'updated_at', post: false, put: false },
  { name: 'revision_number', post: false, put: false },
]

export const RULE_ATTRS: readonly AttrDef[] = [
  { name: 'id', post: false, put: false },
  { name: 'security_group_id', post: true, put: false, required: true, validate: validateString(36) },
  { name: 'remote_group_id', post: true, put: false, default: null, validate: validateStringOrNone(255) },
  { name: 'direction', post: true, put: false, required: true, validate: validateValues(['ingress', 'egress']) },
  { name: 'protocol', post: true, put: false, default: null, convert: convertProtocol },
  { name: 'port_range_min', post: true, put: false, default: null, convert: convertPort },
  { name: 'port_range_max', post: true, put: false, default: null, convert: convertPort },
  { name: 'ethertype', post: true, put: false, default: 'IPv4', convert: convertEthertype },
  { name: 'remote_ip_prefix', post: true, put: false, default: null, convert: convertRemoteIpPrefix },
  { name: 'description', post: true, put: false, default: '', validate: validateString(255) },
  { name: 'remote_address_group_id', post: true, put: false, default: null, validate: validateStringOrNone(255) },
  { name: 'normalized_cidr', post: false, put: false },
  { name: 'created_at', post: false, put: false },
  { name: 'updated_at', post: false, put: false },
  { name: 'revision_number', post: false, put: false },
]

const intFilter = (conv: (v: unknown) => unknown) => (v: string) => conv(v)
const boolFilter = (v: string) => convertBoolean(v)
const identity = null

export const GROUP_LIST: CollectionSpec = {
  collection: 'security_groups',
  filters: {
    id: identity,
    name: identity,
    project_id: identity,
    tenant_id: identity,
    description: identity,
    shared: boolFilter,
    revision_number: (v) => Number(v),
    tags: identity,
  },
  sortable: ['id', 'name', 'tenant_id', 'project_id'],
}

export const RULE_LIST: CollectionSpec = {
  collection: 'security_group_rules',
  filters: {
    id: identity,
    security_group_id: identity,
    remote_group_id: identity,
    direction: identity,
    protocol: (v) => convertProtocol(v),
    port_range_min: intFilter(convertPort),
    port_range_max: intFilter(convertPort),
    ethertype: (v) => convertEthertype(v),
    remote_ip_prefix: (v) => convertRemoteIpPrefix(v)?.text ?? null,
    project_id: identity,
    tenant_id: identity,
    description: identity,
    remote_address_group_id: identity,
    normalized_cidr: identity,
    revision_number: (v) => Number(v),
  },
  ignored: ['normalized_cidr'],
  sortable: [
    'id',
    'security_group_id',
    'remote_group_id',
    'direction',
    'protocol',
    'port_range_min',
    'port_range_max',
    'ethertype',
    'remote_ip_prefix',
    'tenant_id',
    'project_id',
  ],
}

// ---------------------------------------------------------------- reads

/** Groups visible to ctx (all for admin), optionally restricted to ids / project. */
export async function loadGroupRows(
  db: Db,
  ctx: RequestContext,
  ids?: readonly string[],
): Promise<SecurityGroupTable[]> {
  let q = db.selectFrom('security_groups').selectAll()
  if (ids) q = q.where('id', 'in', ids.length ? ids : NO_IDS)
  if (!ctx.isAdmin)
    q = q.where((eb) =>
      eb.or([
        eb('project_id', '=', ctx.projectId),
        eb(
          'id',
          'in',
          eb
            .selectFrom('rbac_policies')
            .select('object_id')
            .where('object_type', '=', 'security_group')
            .where('action', '=', 'access_as_shared')
            .where('target_tenant', 'in', [ctx.projectId, '*']),
        ),
      ]),
    )
  return q.execute()
}

async function rulesOfGroups(db: Db, ctx: RequestContext, groupIds: readonly string[] | null) {
  let q = db.selectFrom('security_group_rules').selectAll()
  if (groupIds !== null) {
    if (groupIds.length === 0) return new Map<string, SecurityGroupRuleTable[]>()
    if (groupIds.length <= 500) q = q.where('security_group_id', 'in', groupIds)
    else if (!ctx.isAdmin)
      q = q.where('security_group_id', 'in', (eb) =>
        eb
          .selectFrom('security_groups')
          .select('id')
          .where((e) =>
            e.or([
              e('project_id', '=', ctx.projectId),
              e(
                'id',
                'in',
                e
                  .selectFrom('rbac_policies')
                  .select('object_id')
                  .where('object_type', '=', 'security_group')
                  .where('target_tenant', 'in', [ctx.projectId, '*']),
              ),
            ]),
          ),
      )
  }
  const rows = await q.orderBy('standard_attr_id').execute()
  const wanted = groupIds ? new Set(groupIds) : null
  const out = new Map<string, SecurityGroupRuleTable[]>()
  for (const r of rows) {
    if (wanted && !wanted.has(r.security_group_id)) continue
    const l = out.get(r.security_group_id)
    if (l) l.push(r)
    else out.set(r.security_group_id, [r])
  }
  return out
}

export async function groupsWire(
  db: Db,
  ctx: RequestContext,
  rows: SecurityGroupTable[],
  all: boolean,
): Promise<Wire[]> {
  const ids = rows.map((g) => g.id)
  const [rules, tags, shared] = await Promise.all([
    rulesOfGroups(db, ctx, all ? (ctx.isAdmin ? null : ids) : ids),
    loadTags(db, 'security_groups', all ? null : ids),
    sharedGroupIds(db, ctx),
  ])
  return rows.map((g) =>
    groupWire(g, rules.get(g.id) ?? [], tags.get(g.id) ?? [], shared.has(g.id) && g.project_id !== ctx.projectId),
  )
}

export async function showGroup(db: Db, ctx: RequestContext, id: string): Promise<Wire> {
  const rows = await loadGroupRows(db, ctx, [id])
  if (!rows[0]) throw sgNotFound(id)
  const [w] = await groupsWire(db, ctx, rows, false)
  return w!
}

/** Rules visible to ctx: own rules plus every rule in a group ctx owns (admin: all). */
export async function listRuleRows(db: Db, ctx: RequestContext, groupIds: readonly string[] | null) {
  let q = db.selectFrom('security_group_rules').selectAll()
  if (groupIds) q = q.where('security_group_id', 'in', groupIds.length ? groupIds : NO_IDS)
  if (!ctx.isAdmin)
    q = q.where((eb) =>
      eb.or([
        eb('project_id', '=', ctx.projectId),
        eb(
          'security_group_id',
          'in',
          eb.selectFrom('security_groups').select('id').where('project_id', '=', ctx.projectId),
        ),
      ]),
    )
  return q.orderBy('standard_attr_id').execute()
}

export async function showRule(db: Db, ctx: RequestContext, id: string): Promise<SecurityGroupRuleTable> {
  const r = await db.selectFrom('security_group_rules').selectAll().where('id', '=', id).executeTakeFirst()
  if (r && (ctx.isAdmin || r.project_id === ctx.projectId)) return r
  if (r) {
    const g = await db
      .selectFrom('security_groups')
      .select('project_id')
      .where('id', '=', r.security_group_id)
      .executeTakeFirst()
    if (g?.project_id === ctx.projectId) return r
  }
  throw nerr('SecurityGroupRuleNotFound', `Security group rule ${id} does not exist`)
}

// ---------------------------------------------------------------- default group

function defaultRules(groupId: string, projectId: string, now: string, firstStd: number, selfRemote: boolean) {
  const base = {
    project_id: projectId,
    security_group_id: groupId,
    protocol: null,
    port_range_min: null,
    port_range_max: null,
    remote_ip_prefix: null,
    normalized_cidr: null,
    remote_address_group_id: null,
    description: null,
    created_at: now,
    updated_at: now,
    revision_number: 0,
  }
  const specs: [string, string, string | null][] = selfRemote
    ? [
        ['ingress', 'IPv4', groupId],
        ['ingress', 'IPv6', groupId],
        ['egress', 'IPv4', null],
        ['egress', 'IPv6', null],
      ]
    : [
        ['egress', 'IPv4', null],
        ['egress', 'IPv6', null],
      ]
  return specs.map(([direction, ethertype, remote], k) => ({
    ...base,
    id: newId(),
    direction,
    ethertype,
    remote_group_id: remote,
    standard_attr_id: firstStd + k,
  }))
}

async function insertGroup(
  w: WriteContext,
  projectId: string,
  name: string,
  description: string | null,
  stateful: boolean,
  isDefault: boolean,
): Promise<SecurityGroupTable> {
  const id = newId()
  const n = isDefault ? 4 : 2
  const std = await w.nextStandardAttrId(n + 1)
  const row: SecurityGroupTable = {
    id,
    project_id: projectId,
    name,
    description,
    stateful: i(stateful),
    created_at: w.now,
    updated_at: w.now,
    revision_number: 1,
    standard_attr_id: std,
  }
  await w.tx.insertInto('security_groups').values(row).execute()
  const rules = defaultRules(id, projectId, w.now, std + 1, isDefault)
  await w.tx.insertInto('security_group_rules').values(rules).execute()
  await w.log({
    resource: 'security_group',
    resource_id: id,
    action: 'create',
    project_id: projectId,
    body: groupChangeBody(row),
  })
  for (const r of rules)
    await w.log({
      resource: 'security_group_rule',
      resource_id: r.id,
      action: 'create',
      project_id: projectId,
      body: ruleWire(r),
    })
  return row
}

const groupChangeBody = (g: SecurityGroupTable) => ({
  id: g.id,
  name: g.name,
  stateful: b(g.stateful),
  project_id: g.project_id,
})

async function findDefault(db: Db, projectId: string) {
  return db
    .selectFrom('security_groups')
    .select('id')
    .where('project_id', '=', projectId)
    .where('name', '=', 'default')
    .executeTakeFirst()
}

/** Makes sure `projectId` has its default group (created with its 4 rules when missing). */
export async function ensureDefaultGroup(store: Store, projectId: string): Promise<string> {
  const found = await findDefault(store.db, projectId)
  if (found) return found.id
  return store.write(async (w) => {
    const again = await findDefault(w.tx, projectId)
    if (again) return again.id
    const g = await insertGroup(w, projectId, 'default', 'Default security group', true, true)
    return g.id
  })
}

/** Same, inside an open write transaction. */
export async function ensureDefaultGroupIn(w: WriteContext, projectId: string): Promise<string> {
  const found = await findDefault(w.tx, projectId)
  if (found) return found.id
  return (await insertGroup(w, projectId, 'default', 'Default security group', true, true)).id
}

// ---------------------------------------------------------------- group writes

export async function createGroups(store: Store, ctx: RequestContext, items: Body[]): Promise<Wire[]> {
  const bodies = items.map((it) => processAttributes(it, GROUP_ATTRS, 'post', ctx))
  for (const p of new Set(bodies.map((x) => x.project_id as string))) await ensureDefaultGroup(store, p)
  const rows = await store.write(async (w) => {
    const out: SecurityGroupTable[] = []
    for (const body of bodies) {
      const project = body.project_id as string
      await checkQuota(w.tx, project, { security_group: 1 })
      await checkQuota(w.tx, project, { security_group_rule: 2 })
      out.push(
        await insertGroup(w, project, body.name as string, body.description as string, body.stateful as boolean, false),
      )
    }
    return out
  })
  return groupsWire(store.db, ctx, rows, false)
}

async function groupInUse(db: Db, id: string): Promise<boolean> {
  const r = await db
    .selectFrom('port_security_groups')
    .select('port_id')
    .where('security_group_id', '=', id)
    .executeTakeFirst()
  return r !== undefined
}

async function groupForWrite(db: Db, ctx: RequestContext, id: string, action: 'update' | 'delete') {
  const [g] = await loadGroupRows(db, ctx, [id])
  if (!g) throw sgNotFound(id)
  if (!ctx.isAdmin && g.project_id !== ctx.projectId) throw policy(`rule:${action}_security_group`)
  return g
}

export async function updateGroup(
  store: Store,
  ctx: RequestContext,
  id: string,
  item: Body,
  ifMatch: string | string[] | undefined,
): Promise<Wire> {
  const body = processAttributes(item, GROUP_ATTRS, 'put', ctx)
  await store.write(async (w) => {
    const g = await groupForWrite(w.tx, ctx, id, 'update')
    checkIfMatch(ifMatch, g.revision_number)
    if (g.name === 'default' && body.name !== undefined)
      throw nerr('SecurityGroupCannotUpdateDefault', 'Updating default security group not allowed.')
    const changes: Partial<SecurityGroupTable> = {}
    if (body.name !== undefined && body.name !== g.name) changes.name = body.name as string
    if (body.description !== undefined && body.description !== g.description)
      changes.description = body.description as string
    if (body.stateful !== undefined && i(body.stateful) !== g.stateful) {
      if (await groupInUse(w.tx, id)) throw nerr('SecurityGroupInUse', `Security Group ${id} in use.`)
      changes.stateful = i(body.stateful)
    }
    if (Object.keys(changes).length === 0) return
    const next = { ...g, ...changes, revision_number: g.revision_number + 1, updated_at: w.now }
    await w.tx
      .updateTable('security_groups')
      .set({ ...changes, revision_number: next.revision_number, updated_at: w.now })
      .where('id', '=', id)
      .execute()
    await w.log({
      resource: 'security_group',
      resource_id: id,
      action: 'update',
      project_id: g.project_id,
      body: groupChangeBody(next),
    })
  })
  return showGroup(store.db, ctx, id)
}

const bumpGroupQuery = (w: WriteContext, groupId: string) =>
  w.tx
    .updateTable('security_groups')
    .set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: w.now }))
    .where('id', '=', groupId)

async function bumpGroup(w: WriteContext, groupId: string): Promise<void> {
  await bumpGroupQuery(w, groupId).execute()
}

export async function deleteGroup(
  store: Store,
  ctx: RequestContext,
  id: string,
  ifMatch: string | string[] | undefined,
) {
  await store.write(async (w) => {
    const g = await groupForWrite(w.tx, ctx, id, 'delete')
    checkIfMatch(ifMatch, g.revision_number)
    if (await groupInUse(w.tx, id)) throw nerr('SecurityGroupInUse', `Security Group ${id} in use.`)
    if (g.name === 'default' && !ctx.isAdmin)
      throw nerr('SecurityGroupCannotRemoveDefault', 'Insufficient rights for removing default security group.')
    const doomed = await w.tx
      .selectFrom('security_group_rules')
      .select(['id', 'security_group_id', 'project_id'])
      .where((eb) => eb.or([eb('security_group_id', '=', id), eb('remote_group_id', '=', id)]))
      .execute()
    await w.tx
      .deleteFrom('security_group_rules')
      .where((eb) => eb.or([eb('security_group_id', '=', id), eb('remote_group_id', '=', id)]))
      .execute()
    for (const other of new Set(doomed.map((r) => r.security_group_id).filter((x) => x !== id)))
      await bumpGroup(w, other)
    for (const r of doomed)
      await w.log({
        resource: 'security_group_rule',
        resource_id: r.id,
        action: 'delete',
        project_id: r.project_id,
        body: { security_group_id: r.security_group_id },
      })
    await w.tx
      .deleteFrom('rbac_policies')
      .where('object_type', '=', 'security_group')
      .where('object_id', '=', id)
      .execute()
    await w.tx.deleteFrom('tags').where('resource_type', '=', 'security_groups').where('resource_id', '=', id).execute()
    await w.tx.deleteFrom('security_groups').where('id', '=', id).execute()
    await w.log({ resource: 'security_group', resource_id: id, action: 'delete', project_id: g.project_id })
  })
}

// ---------------------------------------------------------------- rule writes

const PORT_PROTOCOLS = new Set([6, 17, 132, 33, 136])
const ICMP_PROTOCOLS = new Set(['icmp', '1', 'ipv6-icmp', 'icmpv6', '58'])

export interface RuleDraft {
  security_group_id: string
  remote_group_id: string | null
  direction: string
  protocol: string | null
  port_range_min: number | null
  port_range_max: number | null
  ethertype: 'IPv4' | 'IPv6'
  prefix: ParsedPrefix | null
  description: string
  remote_address_group_id: string | null
  project_id: string
}

/** Semantic checks of spec §6.5 steps 1-5 (pure). */
export function normaliseRule(body: Body): RuleDraft {
  const d: RuleDraft = {
    security_group_id: body.security_group_id as string,
    remote_group_id: (body.remote_group_id as string | null) || null,
    direction: body.direction as string,
    protocol: body.protocol as string | null,
    port_range_min: body.port_range_min as number | null,
    port_range_max: body.port_range_max as number | null,
    ethertype: body.ethertype as 'IPv4' | 'IPv6',
    prefix: body.remote_ip_prefix as ParsedPrefix | null,
    description: body.description as string,
    remote_address_group_id: (body.remote_address_group_id as string | null) || null,
    project_id: body.project_id as string,
  }
  // 1. IPv6 ICMP rewriting
  if (d.ethertype === 'IPv6') {
    if (d.protocol === 'icmp' || d.protocol === 'icmpv6') d.protocol = 'ipv6-icmp'
    else if (d.protocol === '1') d.protocol = '58'
  }
  // 2. full range canonicalisation, then port checks
  if (d.port_range_min === 1 && d.port_range_max === 65535) {
    d.port_range_min = null
    d.port_range_max = null
  }
  if (d.port_range_min !== null || d.port_range_max !== null) {
    if (d.protocol === null)
      throw nerr('SecurityGroupProtocolRequiredWithPorts', 'Must also specify protocol if port range is given.')
    const num = protocolNumber(d.protocol)
    if (num !== null && PORT_PROTOCOLS.has(num)) {
      if (d.port_range_min === 0 || d.port_range_max === 0)
        throw nerr('SecurityGroupInvalidPortValue', 'Invalid value for port 0')
      if (d.port_range_min === null || d.port_range_max === null || d.port_range_min > d.port_range_max)
        throw nerr('SecurityGroupInvalidPortRange', 'For TCP/UDP protocols, port_range_min must be <= port_range_max')
    } else if (ICMP_PROTOCOLS.has(d.protocol)) {
      if (d.port_range_min !== null && d.port_range_min > 255)
        throw nerr(
          'SecurityGroupInvalidIcmpValue',
          `Invalid value for ICMP type (port_range_min) ${d.port_range_min}. It must be 0 to 255.`,
        )
      if (d.port_range_max !== null && d.port_range_max > 255)
        throw nerr(
          'SecurityGroupInvalidIcmpValue',
          `Invalid value for ICMP code (port_range_max) ${d.port_range_max}. It must be 0 to 255.`,
        )
      if (d.port_range_min === null && d.port_range_max !== null)
        throw nerr(
          'SecurityGroupMissingIcmpType',
          `ICMP code (port-range-max) ${d.port_range_max} is provided but ICMP type (port-range-min) is missing.`,
        )
    } else
      throw nerr(
        'SecurityGroupInvalidProtocolForPort',
        `Ports cannot be specified for protocol ${num}. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.`,
      )
  }
  // 3. prefix family vs ethertype
  if (d.prefix && d.prefix.family !== d.ethertype)
    throw nerr(
      'SecurityGroupRuleParameterConflict',
      `Conflicting value ethertype ${d.ethertype} for CIDR ${String((body as Record<string, unknown>).__rawPrefix ?? d.prefix.text)}`,
    )
  // 4. ethertype vs IPv6-only protocol
  if (d.ethertype === 'IPv4' && d.protocol !== null && IPV6_ONLY_PROTOCOLS.has(d.protocol))
    throw nerr('SecurityGroupEthertypeConflictWithProtocol', `Invalid ethertype IPv4 for protocol ${d.protocol}.`)
  // 5. multiple remotes
  const remotes = [d.prefix, d.remote_group_id, d.remote_address_group_id].filter((x) => x !== null).length
  if (remotes > 1)
    throw nerr(
      'SecurityGroupMultipleRemoteEntites',
      'Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.',
    )
  return d
}

function dupKey(r: {
  security_group_id: string
  direction: string
  ethertype: string
  protocol: string | null
  port_range_min: number | null
  port_range_max: number | null
  remote_group_id: string | null
  remote_address_group_id: string | null
  remote_ip_prefix: string | null
}): string {
  const prefix = r.remote_ip_prefix === '0.0.0.0/0' || r.remote_ip_prefix === '::/0' ? null : r.remote_ip_prefix
  return JSON.stringify([
    r.security_group_id,
    r.direction,
    r.ethertype,
    protocolNumber(r.protocol),
    r.port_range_min,
    r.port_range_max,
    r.remote_group_id,
    r.remote_address_group_id,
    prefix,
  ])
}

const draftAsRow = (d: RuleDraft) => ({
  security_group_id: d.security_group_id,
  direction: d.direction,
  ethertype: d.ethertype,
  protocol: d.protocol,
  port_range_min: d.port_range_min,
  port_range_max: d.port_range_max,
  remote_group_id: d.remote_group_id,
  remote_address_group_id: d.remote_address_group_id,
  remote_ip_prefix: d.prefix?.text ?? null,
})

export async function createRules(store: Store, ctx: RequestContext, items: Body[], bulk: boolean): Promise<Wire[]> {
  const bodies = items.map((it) => {
    const body = processAttributes(it, RULE_ATTRS, 'post', ctx)
    body.__rawPrefix = it.remote_ip_prefix
    return body
  })
  if (bulk) {
    if (new Set(bodies.map((x) => x.security_group_id)).size > 1)
      throw nerr('SecurityGroupNotSingleGroupRules', 'Only allowed to update rules for one security profile at a time')
    if (new Set(bodies.map((x) => x.project_id)).size > 1)
      throw nerr(
        'SecurityGroupRulesNotSingleTenant',
        'Multiple tenant_ids in bulk security group rule create not allowed',
      )
  }
  const project = bodies[0]!.project_id as string
  let drafts: RuleDraft[] | null = null
  let invalid: unknown = null
  try {
    drafts = bodies.map(normaliseRule)
  } catch (err) {
    invalid = err
  }
  const groupIds = [
    ...new Set((drafts ?? []).flatMap((d) => [d.security_group_id, ...(d.remote_group_id ? [d.remote_group_id] : [])])),
  ]
  // PostgreSQL, the usual case: the checks and the writes in one statement, applied when the checks
  // pass in SQL (which decides as ruleChecksPass does); otherwise decided below, as on SQLite. Such
  // creates queued together go to the database in one message (`pipelined`).
  const oneStatement =
    drafts !== null &&
    store.dialect === 'postgres' &&
    drafts.length <= 100 &&
    new Set(drafts.map((d) => dupKey(draftAsRow(d)))).size === drafts.length &&
    drafts.every((d) => !d.remote_address_group_id)
  // Only reads before the deferred statements: on PostgreSQL no savepoint is needed in a batch.
  const rows = await store.write(
    async (w) => {
      if (!drafts) {
        // Neutron checks the quota first.
        await checkQuota(w.tx, project, { security_group_rule: bodies.length })
        throw invalid
      }
      if (oneStatement) {
        const rows = await deferRuleWrites(store.dialect, w, drafts)
        const q = ruleChecksQuery('postgres', ctx, project, groupIds, drafts)
        const { row, applied } = await w.flushIf<PgCheckRow>({
          ...q,
          ok: SQL_TEXTS.at('ok')
            .at(drafts.length)
            .at(groupIds.length)
            .get(
              () =>
                `("c"."limit" < 0 or "c"."used" + ${drafts.length} <= "c"."limit") and ` +
                `json_array_length("c"."visible") = ${groupIds.length} and "c"."duplicates" = 0`,
            ),
        })
        if (!applied) ruleChecksPass(drafts, pgChecks(row))
        return rows
      }
      ruleChecksPass(drafts, await ruleWriteChecks(store.dialect, w, ctx, project, groupIds, drafts))
      const rows = await deferRuleWrites(store.dialect, w, drafts)
      return rows
    },
    { deferredOnly: true, pipelined: oneStatement },
  )
  return rows.map((r) => ruleWire(r))
}

/** Throws the first failing check of a rule create, in Neutron's order (quota, groups, duplicates). */
function ruleChecksPass(drafts: readonly RuleDraft[], check: RuleChecks): void {
  if (check.limit >= 0 && check.used + drafts.length > check.limit)
    throw nerr('OverQuota', "Quota exceeded for resources: ['security_group_rule'].")
  for (const d of drafts) {
    if (d.remote_group_id && !check.visible.has(d.remote_group_id)) throw sgNotFound(d.remote_group_id)
    if (d.remote_address_group_id)
      throw nerr('AddressGroupNotFound', `Address group ${d.remote_address_group_id} could not be found.`)
    if (!check.visible.has(d.security_group_id)) throw sgNotFound(d.security_group_id)
  }
  const byKey = new Map(check.candidates.map((r) => [dupKey(r), r.id]))
  const inPost = new Set<string>()
  for (const d of drafts) {
    const k = dupKey(draftAsRow(d))
    if (inPost.has(k)) throw nerr('DuplicateSecurityGroupRuleInPost', 'Duplicate Security Group Rule in POST.')
    inPost.add(k)
  }
  for (const d of drafts) {
    const hit = byKey.get(dupKey(draftAsRow(d)))
    if (hit) throw nerr('SecurityGroupRuleExists', `Security group rule already exists. Rule id is ${hit}.`)
  }
}

/** The rows of a rule create, deferred with their groups' revision bump and logged. */
async function deferRuleWrites(
  dialect: DialectName,
  w: WriteContext,
  drafts: readonly RuleDraft[],
): Promise<SecurityGroupRuleTable[]> {
  const std = await w.nextStandardAttrId(drafts.length)
  const rows: SecurityGroupRuleTable[] = drafts.map((d, k) => ({
    id: newId(),
    project_id: d.project_id,
    ...draftAsRow(d),
    normalized_cidr: d.prefix?.network ?? null,
    description: d.description,
    created_at: w.now,
    updated_at: w.now,
    revision_number: 0,
    standard_attr_id: std + k,
  }))
  // Nothing reads these rows in the write: on PostgreSQL they go in the change-log statement (one round trip).
  await w.defer(ruleInsert(dialect, rows))
  for (const g of new Set(drafts.map((d) => d.security_group_id)))
    await w.defer({ sql: BUMP_GROUP[dialect], parameters: [w.now, g], guard: 'and' })
  for (const r of rows)
    await w.log({
      resource: 'security_group_rule',
      resource_id: r.id,
      action: 'create',
      project_id: r.project_id,
      body: ruleWire(r),
    })
  return rows
}

// Hand-written statements of the rule create path (Kysely's builder costs more than running them).

const BUMP_GROUP: Record<DialectName, string> = {
  sqlite: 'update "security_groups" set "revision_number" = "revision_number" + 1, "updated_at" = ? where "id" = ?',
  postgres: 'update "security_groups" set "revision_number" = "revision_number" + 1, "updated_at" = $1 where "id" = $2',
}

const RULE_COLUMNS = [
  'id',
  'project_id',
  'security_group_id',
  'direction',
  'ethertype',
  'protocol',
  'port_range_min',
  'port_range_max',
  'remote_ip_prefix',
  'normalized_cidr',
  'remote_group_id',
  'remote_address_group_id',
  'description',
  'created_at',
  'updated_at',
  'revision_number',
  'standard_attr_id',
] as const satisfies readonly (keyof SecurityGroupRuleTable)[]

/** `$1, $2, …` (PostgreSQL, numbered after `offset`) or `?, ?, …` (SQLite). */
function placeholders(dialect: DialectName, n: number, offset: number): string {
  const out: string[] = []
  for (let k = 1; k <= n; k++) out.push(dialect === 'sqlite' ? '?' : `$${offset + k}`)
  return out.join(', ')
}

const INTEGER_COLUMNS = new Set<string>(['port_range_min', 'port_range_max', 'revision_number', 'standard_attr_id'])

/** SQLite: `insert … values (…)`; PostgreSQL: `insert … select * from (values (typed …)) v`, which a guard can follow. */
function ruleInsert(dialect: DialectName, rows: readonly SecurityGroupRuleTable[]): RawStatement {
  const parameters: unknown[] = []
  for (const r of rows) for (const c of RULE_COLUMNS) parameters.push(r[c])
  const node = SQL_TEXTS.at(dialect).at('insert').at(rows.length)
  const sql = node.get(() => ruleInsertText(dialect, rows.length))
  return dialect === 'sqlite' ? { sql, parameters } : { sql, parameters, guard: 'where' }
}

function ruleInsertText(dialect: DialectName, n: number): string {
  const tuples: string[] = []
  for (let k = 0; k < n; k++) {
    if (dialect === 'sqlite') tuples.push(`(${placeholders(dialect, RULE_COLUMNS.length, 0)})`)
    else
      tuples.push(
        `(${RULE_COLUMNS.map((c, j) => `$${k * RULE_COLUMNS.length + j + 1}::${INTEGER_COLUMNS.has(c) ? 'integer' : 'text'}`).join(', ')})`,
      )
  }
  const cols = RULE_COLUMNS.map((c) => `"${c}"`).join(', ')
  const values = `values ${tuples.join(', ')}`
  return dialect === 'sqlite'
    ? `insert into "security_group_rules" (${cols}) ${values}`
    : `insert into "security_group_rules" (${cols}) select * from (${values}) v`
}

/**
 * Statement texts of the rule create path, built once per shape: the same string objects every time,
 * which the store looks up without hashing them again (see TextCache).
 */
const SQL_TEXTS = new TextCache()

interface RuleChecks {
  /** The project's rule quota (-1: unlimited) and its rule count (0 when unlimited: not counted). */
  readonly limit: number
  readonly used: number
  /** Which of the named groups the caller may see. */
  readonly visible: Set<string>
  /** Rules that may duplicate one of the drafts (same group, direction, ethertype, port range). */
  readonly candidates: SecurityGroupRuleTable[]
}

type Param = string | number | null

/** The parts of the rule create checks, in the dialect's parameter style. */
function checkParts(
  dialect: DialectName,
  ctx: RequestContext,
  project: string,
  groupIds: readonly string[],
  drafts: readonly RuleDraft[],
) {
  const pg = dialect === 'postgres'
  const params: Param[] = []
  const p = (v: Param) => {
    params.push(v)
    return pg ? `$${params.length}` : '?'
  }
  const list = (vs: readonly Param[]) => vs.map(p).join(', ')
  const visibleSql = () => {
    let q = `select "id" from "security_groups" where "id" in (${list(groupIds)})`
    if (!ctx.isAdmin)
      q += ` and ("project_id" = ${p(ctx.projectId)} or "id" in (select "object_id" from "rbac_policies" where "object_type" = 'security_group' and "action" = 'access_as_shared' and "target_tenant" in (${p(ctx.projectId)}, '*')))`
    return q
  }
  const sameKind = (d: RuleDraft) =>
    `"security_group_id" = ${p(d.security_group_id)} and "direction" = ${p(d.direction)} and "ethertype" = ${p(d.ethertype)} and "port_range_min" ${d.port_range_min === null ? 'is null' : `= ${p(d.port_range_min)}`} and "port_range_max" ${d.port_range_max === null ? 'is null' : `= ${p(d.port_range_max)}`}`
  const candidatesWhere = () => drafts.map((d) => `(${sameKind(d)})`).join(' or ')
  /** Rules that duplicate one of the drafts exactly (as `dupKey` compares them); remote address groups aside. */
  const duplicatesWhere = () =>
    drafts
      .map((d) => {
        const num = protocolNumber(d.protocol)
        const prefix = d.prefix?.text ?? null
        const wide = prefix === null || prefix === '0.0.0.0/0' || prefix === '::/0'
        return (
          `(${sameKind(d)} and ${PROTOCOL_NUMBER_SQL} ${num === null ? 'is null' : `= ${p(num)}`}` +
          ` and "remote_group_id" ${d.remote_group_id ? `= ${p(d.remote_group_id)}` : 'is null'}` +
          ` and "remote_address_group_id" is null and ${WIDE_PREFIX_SQL} ${wide ? 'is null' : `= ${p(prefix)}`})`
        )
      })
      .join(' or ')
  const quotaSql = () =>
    `select "hard_limit" from "quotas" where "project_id" = ${p(project)} and "resource" = 'security_group_rule'`
  return { params, p, visibleSql, candidatesWhere, duplicatesWhere, quotaSql }
}

/** SQL: a rule row's protocol as its number (names as `protocolNumber` reads them; null for none). */
const PROTOCOL_NUMBER_SQL = (() => {
  const names = Object.entries(PROTOCOL_NUMBERS)
  for (const [name] of names) if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`protocol name ${name}`)
  const whens = names.map(([name, n]) => `when '${name}' then ${n}`).join(' ')
  return `(case "protocol" ${whens} else case when "protocol" ~ '^[0-9]{1,3}$' then "protocol"::integer end end)`
})()
/** SQL: a rule row's remote prefix, null when it is none or the whole address space (as `dupKey` has it). */
const WIDE_PREFIX_SQL = `(case when "remote_ip_prefix" in ('0.0.0.0/0', '::/0') then null else "remote_ip_prefix" end)`

const DEFAULT_RULE_LIMIT = QUOTA_DEFAULTS.security_group_rule ?? -1

/**
 * PostgreSQL: the checks as one select of one row (`limit`, `used`, `visible` ids, `candidates` rows,
 * the number of exact `duplicates`).
 */
export function ruleChecksQuery(
  dialect: DialectName,
  ctx: RequestContext,
  project: string,
  groupIds: readonly string[],
  drafts: readonly RuleDraft[],
  cached = true,
): { sql: string; parameters: Param[] } {
  const { params, p, visibleSql, candidatesWhere, duplicatesWhere, quotaSql } = checkParts(
    dialect,
    ctx,
    project,
    groupIds,
    drafts,
  )
  const limitSql = `coalesce((${quotaSql()}), ${p(DEFAULT_RULE_LIMIT)})`
  const sql =
    `select ${limitSql} as "limit", ` +
    `case when ${limitSql} >= 0 then (select count(*) from "security_group_rules" where "project_id" = ${p(project)}) else 0 end as "used", ` +
    `(select coalesce(json_agg("id"), '[]') from (${visibleSql()}) v) as "visible", ` +
    `(select coalesce(json_agg(r), '[]') from (select * from "security_group_rules" where ${candidatesWhere()}) r) as "candidates", ` +
    `(select count(*) from "security_group_rules" where ${duplicatesWhere()}) as "duplicates"`
  if (!cached) return { sql, parameters: params }
  // The text built above depends only on checkShape: the same text (the same string) for every such create.
  const node = SQL_TEXTS.at(dialect)
    .at('checks')
    .at(checkShape(ctx, groupIds, drafts))
  return { sql: node.get(() => sql), parameters: params }
}

/** What the text of `ruleChecksQuery` depends on (every branch `checkParts` and it take). */
export function checkShape(ctx: RequestContext, groupIds: readonly string[], drafts: readonly RuleDraft[]): string {
  let shape = `${ctx.isAdmin ? 'admin' : 'member'} ${groupIds.length}`
  for (const d of drafts) {
    const prefix = d.prefix?.text ?? null
    const wide = prefix === null || prefix === '0.0.0.0/0' || prefix === '::/0'
    shape += ` ${d.port_range_min === null ? 0 : 1}${d.port_range_max === null ? 0 : 1}${protocolNumber(d.protocol) === null ? 0 : 1}${d.remote_group_id ? 1 : 0}${wide ? 0 : 1}`
  }
  return shape
}

interface PgCheckRow {
  limit: number
  used: number
  visible: string[]
  candidates: SecurityGroupRuleTable[]
}

const pgChecks = (row: PgCheckRow): RuleChecks => ({
  limit: Number(row.limit),
  used: Number(row.used),
  visible: new Set(row.visible),
  candidates: row.candidates,
})

/**
 * The reads of a rule create in the write transaction: quota, group visibility and duplicate
 * candidates. PostgreSQL: one statement (one round trip inside the revision lock); SQLite:
 * up to four small ones.
 */
async function ruleWriteChecks(
  dialect: DialectName,
  w: WriteContext,
  ctx: RequestContext,
  project: string,
  groupIds: readonly string[],
  drafts: readonly RuleDraft[],
): Promise<RuleChecks> {
  if (dialect === 'postgres') {
    const [row] = await w.query<PgCheckRow>(ruleChecksQuery(dialect, ctx, project, groupIds, drafts))
    if (!row) throw new Error('rule checks returned no row')
    return pgChecks(row)
  }
  const { params, p, visibleSql, candidatesWhere, quotaSql } = checkParts(dialect, ctx, project, groupIds, drafts)
  const run = <R>(text: string) => w.query<R>({ sql: text, parameters: params.splice(0) })
  const quota = await run<{ hard_limit: number }>(quotaSql())
  const limit = quota[0] ? Number(quota[0].hard_limit) : DEFAULT_RULE_LIMIT
  const used =
    limit >= 0
      ? Number(
          (
            await run<{ n: number }>(
              `select count(*) as "n" from "security_group_rules" where "project_id" = ${p(project)}`,
            )
          )[0]!.n,
        )
      : 0
  const visible = new Set((await run<{ id: string }>(visibleSql())).map((r) => r.id))
  const candidates = await run<SecurityGroupRuleTable>(
    `select * from "security_group_rules" where ${candidatesWhere()}`,
  )
  return { limit, used, visible, candidates }
}

export async function deleteRule(store: Store, ctx: RequestContext, id: string): Promise<void> {
  await store.write(async (w) => {
    const r = await showRule(w.tx, ctx, id)
    await w.tx.deleteFrom('security_group_rules').where('id', '=', id).execute()
    await bumpGroup(w, r.security_group_id)
    await w.log({
      resource: 'security_group_rule',
      resource_id: id,
      action: 'delete',
      project_id: r.project_id,
      body: { security_group_id: r.security_group_id },
    })
  })
}
