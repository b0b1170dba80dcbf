/** networks and subnets (spec §7.2, §7.3): the subset a security-group service needs. */
import type { Store } from '../store/index.js'
import type { NetworkTable, SubnetTable } from '../store/schema.js'
import { type Cidr, contains, fromBig, parseCidr, toBig } from './addresses.js'
import { type AttrDef, type Body, processAttributes } from './body.js'
import { b, checkIfMatch, checkQuota, type Db, i, loadTags, NO_IDS, newId } from './common.js'
import type { RequestContext } from './context.js'
import { convertBoolean, parseAddress, validateString, validateUuid } from './convert.js'
import type { CollectionSpec, Wire } from './listing.js'
import { badRequest, invalidInput, nerr, policy } from './neutron-error.js'
import { ensureDefaultGroup } from './security-groups.js'

const list = (v: unknown) => (Array.isArray(v) ? undefined : `'${String(v)}' is not a list`)
const intIn = (min: number, max: number) => (v: unknown) => {
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v
  if (typeof n !== 'number' || !Number.isInteger(n)) throw invalidInput('value', `'${String(v)}' is not an integer`)
  if (n < min || n > max) throw badRequest(`Invalid input for operation: '${n}' is not in range ${min}..${max}.`)
  return n
}

export const NETWORK_ATTRS: readonly AttrDef[] = [
  { name: 'id', post: false, put: false },
  { name: 'name', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'subnets', post: false, put: false },
  { name: 'admin_state_up', post: true, put: true, default: true, convert: convertBoolean },
  { name: 'status', post: false, put: false },
  { name: 'shared', post: true, put: true, default: false, convert: convertBoolean },
  { name: 'port_security_enabled', post: true, put: true, default: true, convert: convertBoolean },
  { name: 'mtu', post: true, put: true, default: 1500, convert: intIn(68, 65535) },
  { name: 'router:external', post: true, put: true, default: false, convert: convertBoolean },
  { name: 'availability_zone_hints', post: true, put: false, default: [], validate: list },
  { name: 'description', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'tags', post: false, put: false },
  { name: 'created_at', post: false, put: false },
  { name: 'updated_at', post: false, put: false },
  { name: 'revision_number', post: false, put: false },
]

export const NETWORK_LIST: CollectionSpec = {
  collection: 'networks',
  filters: {
    id: null,
    name: null,
    project_id: null,
    tenant_id: null,
    admin_state_up: (v) => convertBoolean(v),
    status: null,
    shared: (v) => convertBoolean(v),
    mtu: (v) => Number(v),
    'router:external': (v) => convertBoolean(v),
    description: null,
    revision_number: (v) => Number(v),
    subnets: null,
    tags: null,
  },
  sortable: ['id', 'name', 'tenant_id', 'project_id', 'status', 'mtu', 'admin_state_up', 'shared'],
}

export function networkWire(n: NetworkTable, subnets: readonly string[], tags: readonly string[]): Wire {
  return {
    id: n.id,
    name: n.name,
    tenant_id: n.project_id,
    admin_state_up: b(n.admin_state_up),
    mtu: n.mtu,
    status: n.status,
    subnets: [...subnets],
    shared: b(n.shared),
    availability_zone_hints: [],
    availability_zones: [],
    ipv4_address_scope: null,
    ipv6_address_scope: null,
    'router:external': b(n.router_external),
    description: n.description,
    port_security_enabled: b(n.port_security_enabled),
    tags: [...tags],
    created_at: n.created_at,
    updated_at: n.updated_at,
    revision_number: n.revision_number,
    project_id: n.project_id,
  }
}

export async function networkRows(db: Db, ctx: RequestContext, ids?: readonly string[]) {
  let q = db.selectFrom('networks').selectAll()
  if (ids) q = q.where('id', 'in', ids.length ? ids : NO_IDS)
  if (!ctx.isAdmin) q = q.where((eb) => eb.or([eb('project_id', '=', ctx.projectId), eb('shared', '=', 1)]))
  return q.execute()
}

export async function networksWire(db: Db, rows: NetworkTable[]): Promise<Wire[]> {
  const ids = rows.map((r) => r.id)
  const subs = ids.length
    ? await db
        .selectFrom('subnets')
        .select(['id', 'network_id'])
        .where('network_id', 'in', ids)
        .orderBy('created_at')
        .execute()
    : []
  const tags = await loadTags(db, 'networks', ids)
  return rows.map((n) =>
    networkWire(
      n,
      subs.filter((s) => s.network_id === n.id).map((s) => s.id),
      tags.get(n.id) ?? [],
    ),
  )
}

export const networkNotFound = (id: string) => nerr('NetworkNotFound', `Network ${id} could not be found.`)

export async function visibleNetwork(db: Db, ctx: RequestContext, id: string): Promise<NetworkTable> {
  const [n] = await networkRows(db, ctx, [id])
  if (!n) throw networkNotFound(id)
  return n
}

export async function showNetwork(db: Db, ctx: RequestContext, id: string): Promise<Wire> {
  const n = await visibleNetwork(db, ctx, id)
  return (await networksWire(db, [n]))[0]!
}

export async function createNetworks(store: Store, ctx: RequestContext, items: Body[]): Promise<Wire[]> {
  const bodies = items.map((it) => {
    const body = processAttributes(it, NETWORK_ATTRS, 'post', ctx)
    if (!ctx.isAdmin && Object.hasOwn(it, 'shared') && body.shared)
      throw policy('(rule:create_network and rule:create_network:shared)')
    if (!ctx.isAdmin && Object.hasOwn(it, 'router:external') && body['router:external'])
      throw policy('(rule:create_network and rule:create_network:router:external)')
    return body
  })
  for (const p of new Set(bodies.map((x) => x.project_id as string))) await ensureDefaultGroup(store, p)
  const rows = await store.write(async (w) => {
    const out: NetworkTable[] = []
    for (const body of bodies) {
      await checkQuota(w.tx, body.project_id as string, { network: 1 })
      const row: NetworkTable = {
        id: newId(),
        project_id: body.project_id as string,
        name: body.name as string,
        description: body.description as string,
        created_at: w.now,
        updated_at: w.now,
        revision_number: 1,
        standard_attr_id: await w.nextStandardAttrId(),
        admin_state_up: i(body.admin_state_up),
        shared: i(body.shared),
        port_security_enabled: i(body.port_security_enabled),
        mtu: body.mtu as number,
        router_external: i(body['router:external']),
        status: 'ACTIVE',
      }
      await w.tx.insertInto('networks').values(row).execute()
      await w.log({
        resource: 'network',
        resource_id: row.id,
        action: 'create',
        project_id: row.project_id,
        body: networkWire(row, [], []),
      })
      out.push(row)
    }
    return out
  })
  return networksWire(store.db, rows)
}

export async function updateNetwork(
  store: Store,
  ctx: RequestContext,
  id: string,
  item: Body,
  ifMatch: string | string[] | undefined,
) {
  const body = processAttributes(item, NETWORK_ATTRS, 'put', ctx)
  await store.write(async (w) => {
    const n = await visibleNetwork(w.tx, ctx, id)
    if (!ctx.isAdmin && n.project_id !== ctx.projectId) throw policy('rule:update_network')
    if (!ctx.isAdmin && (body.shared !== undefined || body['router:external'] !== undefined))
      throw policy('(rule:update_network and rule:update_network:shared)')
    checkIfMatch(ifMatch, n.revision_number)
    const set: Partial<NetworkTable> = {}
    if (body.name !== undefined) set.name = body.name as string
    if (body.description !== undefined) set.description = body.description as string
    if (body.admin_state_up !== undefined) set.admin_state_up = i(body.admin_state_up)
    if (body.shared !== undefined) set.shared = i(body.shared)
    if (body.port_security_enabled !== undefined) set.port_security_enabled = i(body.port_security_enabled)
    if (body.mtu !== undefined) set.mtu = body.mtu as number
    if (body['router:external'] !== undefined) set.router_external = i(body['router:external'])
    if (Object.keys(set).length === 0) return
    await w.tx
      .updateTable('networks')
      .set({ ...set, revision_number: n.revision_number + 1, updated_at: w.now })
      .where('id', '=', id)
      .execute()
    await w.log({ resource: 'network', resource_id: id, action: 'update', project_id: n.project_id })
  })
  return showNetwork(store.db, ctx, id)
}

export async function deleteNetwork(
  store: Store,
  ctx: RequestContext,
  id: string,
  ifMatch: string | string[] | undefined,
) {
  await store.write(async (w) => {
    const n = await visibleNetwork(w.tx, ctx, id)
    if (!ctx.isAdmin && n.project_id !== ctx.projectId) throw policy('rule:delete_network')
    checkIfMatch(ifMatch, n.revision_number)
    const ports = await w.tx.selectFrom('ports').select(['id', 'device_owner']).where('network_id', '=', id).execute()
    const inUse = ports.filter((p) => !p.device_owner.startsWith('network:dhcp'))
    if (inUse.length)
      throw nerr(
        'NetworkInUse',
        `Unable to complete operation on network ${id}. There are one or more ports still in use on the network, id for these ports is: ${inUse.map((p) => p.id).join(',')}.`,
      )
    const subnets = await w.tx.selectFrom('subnets').select('id').where('network_id', '=', id).execute()
    await w.tx.deleteFrom('subnets').where('network_id', '=', id).execute()
    for (const s of subnets) {
      await w.tx.deleteFrom('tags').where('resource_type', '=', 'subnets').where('resource_id', '=', s.id).execute()
      await w.log({ resource: 'subnet', resource_id: s.id, action: 'delete', project_id: n.project_id })
    }
    await w.tx.deleteFrom('tags').where('resource_type', '=', 'networks').where('resource_id', '=', id).execute()
    await w.tx.deleteFrom('networks').where('id', '=', id).execute()
    await w.log({ resource: 'network', resource_id: id, action: 'delete', project_id: n.project_id })
  })
}

// ------------------------------------------------------------------ subnets

const ipVersion = (v: unknown) => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v
  if (n !== 4 && n !== 6) throw invalidInput('ip_version', `${String(v)} is not in [4, 6]`)
  return n
}
const nullableAddress = (attr: string) => (v: unknown) => {
  if (v === null) return null
  const a = parseAddress(v)
  if (!a) throw invalidInput(attr, `'${String(v)}' is not a valid IP address`)
  return a.text
}
const cidrAttr = (v: unknown) => {
  const c = typeof v === 'string' ? parseCidr(v) : null
  if (!c) throw invalidInput('cidr', `'${String(v)}' is not a valid IP subnet`)
  return c
}

export const SUBNET_ATTRS: readonly AttrDef[] = [
  { name: 'id', post: false, put: false },
  { name: 'name', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'ip_version', post: true, put: false, required: true, convert: ipVersion },
  { name: 'network_id', post: true, put: false, required: true, validate: validateUuid },
  {
    name: 'subnetpool_id',
    post: true,
    put: false,
    default: null,
    validate: (v) => (v === null ? undefined : 'subnet pools are not supported'),
  },
  { name: 'prefixlen', post: true, put: false },
  { name: 'cidr', post: true, put: false, required: true, convert: cidrAttr },
  { name: 'gateway_ip', post: true, put: true, convert: nullableAddress('gateway_ip') },
  { name: 'allocation_pools', post: true, put: true, validate: list },
  { name: 'dns_nameservers', post: true, put: true, default: [], validate: list },
  { name: 'host_routes', post: true, put: true, default: [], validate: list },
  { name: 'enable_dhcp', post: true, put: true, default: true, convert: convertBoolean },
  { name: 'ipv6_ra_mode', post: true, put: false, default: null },
  { name: 'ipv6_address_mode', post: true, put: false, default: null },
  { name: 'service_types', post: true, put: true, default: [], validate: list },
  { name: 'use_default_subnet_pool', post: true, put: false },
  { name: 'segment_id', post: true, put: false },
  { name: 'description', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'tags', post: false, put: false },
  { name: 'created_at', post: false, put: false },
  { name: 'updated_at', post: false, put: false },
  { name: 'revision_number', post: false, put: false },
]

export const SUBNET_LIST: CollectionSpec = {
  collection: 'subnets',
  filters: {
    id: null,
    name: null,
    network_id: null,
    ip_version: (v) => Number(v),
    cidr: null,
    gateway_ip: null,
    enable_dhcp: (v) => convertBoolean(v),
    project_id: null,
    tenant_id: null,
    description: null,
    revision_number: (v) => Number(v),
    ipv6_address_mode: null,
    ipv6_ra_mode: null,
    subnetpool_id: null,
    tags: null,
  },
  sortable: ['id', 'name', 'network_id', 'ip_version', 'cidr', 'tenant_id', 'project_id'],
}

export function subnetWire(s: SubnetTable, tags: readonly string[]): Wire {
  return {
    id: s.id,
    name: s.name,
    tenant_id: s.project_id,
    network_id: s.network_id,
    ip_version: s.ip_version,
    subnetpool_id: null,
    enable_dhcp: b(s.enable_dhcp),
    ipv6_ra_mode: s.ipv6_ra_mode,
    ipv6_address_mode: s.ipv6_address_mode,
    gateway_ip: s.gateway_ip,
    cidr: s.cidr,
    allocation_pools: JSON.parse(s.allocation_pools),
    host_routes: JSON.parse(s.host_routes),
    dns_nameservers: JSON.parse(s.dns_nameservers),
    description: s.description,
    service_types: [],
    tags: [...tags],
    created_at: s.created_at,
    updated_at: s.updated_at,
    revision_number: s.revision_number,
    project_id: s.project_id,
  }
}

export async function subnetRows(db: Db, ctx: RequestContext, ids?: readonly string[]) {
  let q = db.selectFrom('subnets').selectAll()
  if (ids) q = q.where('id', 'in', ids.length ? ids : NO_IDS)
  if (!ctx.isAdmin)
    q = q.where((eb) =>
      eb.or([
        eb('project_id', '=', ctx.projectId),
        eb('network_id', 'in', eb.selectFrom('networks').select('id').where('shared', '=', 1)),
      ]),
    )
  return q.execute()
}

export async function subnetsWire(db: Db, rows: SubnetTable[]): Promise<Wire[]> {
  const tags = await loadTags(
    db,
    'subnets',
    rows.map((r) => r.id),
  )
  return rows.map((s) => subnetWire(s, tags.get(s.id) ?? []))
}

export const subnetNotFound = (id: string) => nerr('SubnetNotFound', `Subnet ${id} could not be found.`)

export async function showSubnet(db: Db, ctx: RequestContext, id: string): Promise<Wire> {
  const [s] = await subnetRows(db, ctx, [id])
  if (!s) throw subnetNotFound(id)
  return (await subnetsWire(db, [s]))[0]!
}

function defaultPools(c: Cidr, gateway: string | null): { start: string; end: string }[] {
  const first = c.first + 1n
  const last = c.version === 4 ? c.last - 1n : c.last
  if (last < first) return []
  const gw = gateway ? toBig(gateway) : null
  const ranges: [bigint, bigint][] = []
  if (gw !== null && gw >= first && gw <= last) {
    if (gw > first) ranges.push([first, gw - 1n])
    if (gw < last) ranges.push([gw + 1n, last])
  } else ranges.push([first, last])
  return ranges.map(([s, e]) => ({ start: fromBig(s, c.version), end: fromBig(e, c.version) }))
}

export async function createSubnets(store: Store, ctx: RequestContext, items: Body[]): Promise<Wire[]> {
  const bodies = items.map((it) => processAttributes(it, SUBNET_ATTRS, 'post', ctx))
  const rows = await store.write(async (w) => {
    const out: SubnetTable[] = []
    for (const body of bodies) {
      const net = await visibleNetwork(w.tx, ctx, body.network_id as string)
      if (!ctx.isAdmin && net.project_id !== ctx.projectId) throw policy('rule:create_subnet')
      await checkQuota(w.tx, body.project_id as string, { subnet: 1 })
      const c = body.cidr as Cidr
      if (c.version !== body.ip_version)
        throw badRequest(`Invalid input for operation: Cidr ${c.text} does not match IP version ${body.ip_version}.`)
      let gateway: string | null
      if (Object.hasOwn(body, 'gateway_ip')) gateway = body.gateway_ip as string | null
      else gateway = fromBig(c.first + 1n, c.version)
      if (gateway && !contains(c, gateway))
        throw badRequest(`Invalid input for operation: Gateway IP ${gateway} conflicts with subnet ${c.text}.`)
      const pools = body.allocation_pools ?? defaultPools(c, gateway)
      const row: SubnetTable = {
        id: newId(),
        project_id: body.project_id as string,
        name: body.name as string,
        description: body.description as string,
        created_at: w.now,
        updated_at: w.now,
        revision_number: 0,
        standard_attr_id: await w.nextStandardAttrId(),
        network_id: net.id,
        ip_version: c.version,
        cidr: c.text,
        gateway_ip: gateway,
        allocation_pools: JSON.stringify(pools),
        enable_dhcp: i(body.enable_dhcp),
        dns_nameservers: JSON.stringify(body.dns_nameservers),
        host_routes: JSON.stringify(body.host_routes),
        ipv6_address_mode: (body.ipv6_address_mode as string | null) ?? null,
        ipv6_ra_mode: (body.ipv6_ra_mode as string | null) ?? null,
      }
      await w.tx.insertInto('subnets').values(row).execute()
      await w.tx
        .updateTable('networks')
        .set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: w.now }))
        .where('id', '=', net.id)
        .execute()
      await w.log({ resource: 'subnet', resource_id: row.id, action: 'create', project_id: row.project_id })
      out.push(row)
    }
    return out
  })
  return subnetsWire(store.db, rows)
}

export async function updateSubnet(
  store: Store,
  ctx: RequestContext,
  id: string,
  item: Body,
  ifMatch: string | string[] | undefined,
) {
  const body = processAttributes(item, SUBNET_ATTRS, 'put', ctx)
  await store.write(async (w) => {
    const [s] = await subnetRows(w.tx, ctx, [id])
    if (!s) throw subnetNotFound(id)
    if (!ctx.isAdmin && s.project_id !== ctx.projectId) throw policy('rule:update_subnet')
    checkIfMatch(ifMatch, s.revision_number)
    const set: Partial<SubnetTable> = {}
    if (body.name !== undefined) set.name = body.name as string
    if (body.description !== undefined) set.description = body.description as string
    if (body.enable_dhcp !== undefined) set.enable_dhcp = i(body.enable_dhcp)
    if (body.gateway_ip !== undefined) set.gateway_ip = body.gateway_ip as string | null
    if (body.dns_nameservers !== undefined) set.dns_nameservers = JSON.stringify(body.dns_nameservers)
    if (body.host_routes !== undefined) set.host_routes = JSON.stringify(body.host_routes)
    if (body.allocation_pools !== undefined) set.allocation_pools = JSON.stringify(body.allocation_pools)
    if (Object.keys(set).length === 0) return
    await w.tx
      .updateTable('subnets')
      .set({ ...set, revision_number: s.revision_number + 1, updated_at: w.now })
      .where('id', '=', id)
      .execute()
    await w.log({ resource: 'subnet', resource_id: id, action: 'update', project_id: s.project_id })
  })
  return showSubnet(store.db, ctx, id)
}

export async function deleteSubnet(
  store: Store,
  ctx: RequestContext,
  id: string,
  ifMatch: string | string[] | undefined,
) {
  await store.write(async (w) => {
    const [s] = await subnetRows(w.tx, ctx, [id])
    if (!s) throw subnetNotFound(id)
    if (!ctx.isAdmin && s.project_id !== ctx.projectId) throw policy('rule:delete_subnet')
    checkIfMatch(ifMatch, s.revision_number)
    const used = await w.tx
      .selectFrom('port_fixed_ips')
      .select('port_id')
      .where('subnet_id', '=', id)
      .executeTakeFirst()
    if (used)
      throw nerr(
        'SubnetInUse',
        `Unable to complete operation on subnet ${id}: One or more ports have an IP allocation from this subnet.`,
      )
    await w.tx.deleteFrom('tags').where('resource_type', '=', 'subnets').where('resource_id', '=', id).execute()
    await w.tx.deleteFrom('subnets').where('id', '=', id).execute()
    await w.log({ resource: 'subnet', resource_id: id, action: 'delete', project_id: s.project_id })
  })
}
