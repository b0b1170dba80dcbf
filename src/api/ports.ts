/** ports (spec §7.1): fixed IPs, MACs, security groups, port security, address pairs, binding. */
import { randomBytes } from 'node:crypto'
import type { Store, WriteContext } from '../store/index.js'
import type { PortTable, SubnetTable } from '../store/schema.js'
import { contains, fromBig, parseCidr, toBig } from './addresses.js'
import { type AttrDef, type Body, processAttributes } from './body.js'
import { b, checkIfMatch, checkQuota, type Db, i, loadTags, NO_IDS, newId } from './common.js'
import type { RequestContext } from './context.js'
import {
  convertBoolean,
  parseAddress,
  parsePrefix,
  validateMac,
  validateString,
  validateUuid,
  validateUuidList,
} from './convert.js'
import type { CollectionSpec, Wire } from './listing.js'
import { visibleNetwork } from './networks.js'
import { badRequest, invalidInput, nerr, policy } from './neutron-error.js'
import { ensureDefaultGroupIn } from './security-groups.js'

interface Pair {
  ip_address: string
  mac_address: string | null
}

function convertPairs(v: unknown): Pair[] {
  if (!Array.isArray(v)) throw badRequest('Allowed address pairs must be a list.')
  const out: Pair[] = []
  const seen = new Set<string>()
  for (const p of v) {
    if (!p || typeof p !== 'object' || Array.isArray(p)) throw badRequest(`'${String(p)}' is not a dictionary`)
    const o = p as Record<string, unknown>
    const extra = Object.keys(o).filter((k) => k !== 'ip_address' && k !== 'mac_address')
    if (extra.length) throw badRequest(`Unrecognized attribute(s) '${extra.join(', ')}'`)
    if (o.ip_address === undefined)
      throw nerr('AllowedAddressPairsMissingIP', 'AllowedAddressPair must contain ip_address')
    const ip = typeof o.ip_address === 'string' ? parsePrefix(o.ip_address) : null
    if (!ip) throw badRequest(`'${String(o.ip_address)}' is not a valid IP address`)
    const full = ip.family === 'IPv4' ? 32 : 128
    const ipText =
      ip.text.endsWith(`/${full}`) && !String(o.ip_address).includes('/') ? ip.text.split('/')[0]! : ip.text
    let mac: string | null = null
    if (o.mac_address !== undefined && o.mac_address !== null) {
      const r = validateMac(o.mac_address)
      if (r) throw badRequest(r)
      mac = (o.mac_address as string).toLowerCase().replaceAll('-', ':')
    }
    const key = `${mac}|${ipText}`
    if (seen.has(key))
      throw nerr(
        'DuplicateAddressPairInRequest',
        `Request contains duplicate address pair: mac_address ${mac ?? 'None'} ip_address ${String(o.ip_address)}.`,
      )
    seen.add(key)
    out.push({ ip_address: ipText, mac_address: mac })
  }
  if (out.length > 10)
    throw nerr('AllowedAddressPairExhausted', 'The number of allowed address pair exceeds the maximum 10.')
  return out
}

interface FixedIpReq {
  subnet_id?: string
  ip_address?: string
}

function convertFixedIps(v: unknown): FixedIpReq[] {
  if (!Array.isArray(v)) throw invalidInput('fixed_ips', `'${String(v)}' is not a list`)
  return v.map((x) => {
    if (!x || typeof x !== 'object' || Array.isArray(x))
      throw invalidInput('fixed_ips', `'${String(x)}' is not a dictionary`)
    const o = x as Record<string, unknown>
    const extra = Object.keys(o).filter((k) => k !== 'subnet_id' && k !== 'ip_address')
    if (extra.length) throw invalidInput('fixed_ips', `Unrecognized attribute(s) '${extra.join(', ')}'`)
    const out: FixedIpReq = {}
    if (o.subnet_id !== undefined) {
      const r = validateUuid(o.subnet_id)
      if (r) throw invalidInput('fixed_ips', r)
      out.subnet_id = o.subnet_id as string
    }
    if (o.ip_address !== undefined) {
      const a = parseAddress(o.ip_address)
      if (!a) throw invalidInput('fixed_ips', `'${String(o.ip_address)}' is not a valid IP address`)
      out.ip_address = a.text
    }
    return out
  })
}

const macAttr = (v: unknown) => {
  const r = validateMac(v)
  if (r) throw invalidInput('mac_address', r)
  return (v as string).toLowerCase().replaceAll('-', ':')
}

const sgList = (v: unknown) => {
  if (v === null) return []
  const r = validateUuidList(v)
  if (r) throw invalidInput('security_groups', r)
  return v
}

const dictAttr = (v: unknown) =>
  v && typeof v === 'object' && !Array.isArray(v) ? undefined : `'${String(v)}' is not a dictionary`

export const PORT_ATTRS: readonly AttrDef[] = [
  { name: 'id', post: false, put: false },
  { name: 'name', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'network_id', post: true, put: false, required: true, validate: validateString(255) },
  { name: 'admin_state_up', post: true, put: true, default: true, convert: convertBoolean },
  { name: 'mac_address', post: true, put: true, convert: macAttr },
  { name: 'fixed_ips', post: true, put: true, convert: convertFixedIps },
  { name: 'device_id', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'device_owner', post: true, put: true, default: '', validate: validateString(255) },
  { name: 'status', post: false, put: false },
  { name: 'security_groups', post: true, put: true, convert: sgList },
  { name: 'port_security_enabled', post: true, put: true, convert: convertBoolean },
  { name: 'allowed_address_pairs', post: true, put: true, convert: convertPairs },
  { name: 'binding:host_id', post: true, put: true, validate: validateString(255) },
  { name: 'binding:profile', post: true, put: true, validate: dictAttr },
  { name: 'binding:vnic_type', post: true, put: true, default: 'normal', validate: validateString(64) },
  { name: 'binding:vif_type', post: false, put: false },
  { name: 'binding:vif_details', post: false, put: false },
  {
    name: 'extra_dhcp_opts',
    post: true,
    put: true,
    default: [],
    validate: (v) => (Array.isArray(v) ? undefined : 'not a list'),
  },
  { name: 'description', post: true, put: true, default: '', validate: validateString(255) },
  {
    name: 'tags',
    post: true,
    put: false,
    validate: (v) =>
      Array.isArray(v) && v.every((t) => typeof t === 'string' && t.length <= 255)
        ? undefined
        : `'${String(v)}' is not a valid list of tags`,
  },
  { name: 'created_at', post: false, put: false },
  { name: 'updated_at', post: false, put: false },
  { name: 'revision_number', post: false, put: false },
]

export const PORT_LIST: CollectionSpec = {
  collection: 'ports',
  filters: {
    id: null,
    name: null,
    network_id: null,
    admin_state_up: (v) => convertBoolean(v),
    mac_address: (v) => v.toLowerCase(),
    fixed_ips: null,
    device_id: null,
    device_owner: null,
    tenant_id: null,
    project_id: null,
    status: null,
    security_groups: null,
    'binding:host_id': null,
    description: null,
    revision_number: (v) => Number(v),
    tags: null,
  },
  sortable: [
    'id',
    'name',
    'network_id',
    'mac_address',
    'device_id',
    'device_owner',
    'tenant_id',
    'project_id',
    'status',
    'admin_state_up',
  ],
}

export interface PortDetail {
  readonly row: PortTable
  readonly fixedIps: { subnet_id: string; ip_address: string }[]
  readonly pairs: { ip_address: string; mac_address: string }[]
  readonly groups: string[]
  readonly tags: string[]
}

export function portWire(p: PortDetail, ctx: RequestContext): Wire {
  const r = p.row
  const w: Wire = {
    id: r.id,
    name: r.name,
    network_id: r.network_id,
    tenant_id: r.project_id,
    mac_address: r.mac_address,
    admin_state_up: b(r.admin_state_up),
    status: r.status,
    device_id: r.device_id,
    device_owner: r.device_owner,
    fixed_ips: p.fixedIps,
    allowed_address_pairs: p.pairs,
    extra_dhcp_opts: JSON.parse(r.extra_dhcp_opts),
    security_groups: p.groups,
    description: r.description,
    'binding:vnic_type': r.binding_vnic_type,
    port_security_enabled: b(r.port_security_enabled),
    tags: p.tags,
    created_at: r.created_at,
    updated_at: r.updated_at,
    revision_number: r.revision_number,
    project_id: r.project_id,
  }
  if (ctx.isAdmin) {
    w['binding:host_id'] = r.binding_host_id
    w['binding:profile'] = JSON.parse(r.binding_profile)
    w['binding:vif_type'] = r.binding_host_id ? 'ovs' : 'unbound'
    w['binding:vif_details'] = r.binding_host_id ? { port_filter: true, ovs_hybrid_plug: true } : {}
  }
  return w
}

export async function portRows(db: Db, ctx: RequestContext, ids?: readonly string[], host?: string) {
  let q = db.selectFrom('ports').selectAll()
  if (ids) q = q.where('id', 'in', ids.length ? ids : NO_IDS)
  if (host !== undefined) q = q.where('binding_host_id', '=', host)
  if (!ctx.isAdmin) q = q.where('project_id', '=', ctx.projectId)
  return q.orderBy('standard_attr_id').execute()
}

export async function portDetails(db: Db, rows: PortTable[], all = false): Promise<PortDetail[]> {
  const ids = rows.map((r) => r.id)
  const small = !all && ids.length <= 500
  if (ids.length === 0) return []
  const [ips, pairs, groups, tags] = await Promise.all([
    (small
      ? db.selectFrom('port_fixed_ips').selectAll().where('port_id', 'in', ids)
      : db.selectFrom('port_fixed_ips').selectAll()
    )
      .orderBy('position')
      .execute(),
    (small
      ? db.selectFrom('port_address_pairs').selectAll().where('port_id', 'in', ids)
      : db.selectFrom('port_address_pairs').selectAll()
    )
      .orderBy('position')
      .execute(),
    (small
      ? db.selectFrom('port_security_groups').selectAll().where('port_id', 'in', ids)
      : db.selectFrom('port_security_groups').selectAll()
    )
      .orderBy('position')
      .execute(),
    loadTags(db, 'ports', small ? ids : null),
  ])
  const by = <T extends { port_id: string }>(xs: T[]) => {
    const m = new Map<string, T[]>()
    for (const x of xs) {
      const l = m.get(x.port_id)
      if (l) l.push(x)
      else m.set(x.port_id, [x])
    }
    return m
  }
  const ipm = by(ips)
  const pm = by(pairs)
  const gm = by(groups)
  return rows.map((row) => ({
    row,
    fixedIps: (ipm.get(row.id) ?? []).map((x) => ({ subnet_id: x.subnet_id, ip_address: x.ip_address })),
    pairs: (pm.get(row.id) ?? []).map((x) => ({ ip_address: x.ip_address, mac_address: x.mac_address })),
    groups: (gm.get(row.id) ?? []).map((x) => x.security_group_id),
    tags: tags.get(row.id) ?? [],
  }))
}

export const portNotFound = (id: string) => nerr('PortNotFound', `Port ${id} could not be found.`)

export async function showPort(db: Db, ctx: RequestContext, id: string): Promise<Wire> {
  const rows = await portRows(db, ctx, [id])
  if (!rows[0]) throw portNotFound(id)
  return portWire((await portDetails(db, rows))[0]!, ctx)
}

const trusted = (owner: string) => owner.startsWith('network:') || owner.startsWith('neutron:')

/** Validates the group list for a port of `projectId` (exists, visible to that project, same statefulness). */
async function checkGroups(w: WriteContext, ctx: RequestContext, projectId: string, ids: readonly string[]) {
  if (ids.length === 0) return
  const rows = await w.tx
    .selectFrom('security_groups')
    .select(['id', 'project_id', 'stateful'])
    .where('id', 'in', ids)
    .execute()
  const shared = new Set(
    (
      await w.tx
        .selectFrom('rbac_policies')
        .select('object_id')
        .where('object_type', '=', 'security_group')
        .where('target_tenant', 'in', [projectId, '*'])
        .where('object_id', 'in', ids)
        .execute()
    ).map((r) => r.object_id),
  )
  const ok = new Map(
    rows.filter((g) => ctx.isAdmin || g.project_id === projectId || shared.has(g.id)).map((g) => [g.id, g] as const),
  )
  const missing = ids.filter((id) => !ok.has(id))
  if (missing.length) throw nerr('SecurityGroupNotFound', `Security group ${missing.join(', ')} does not exist`)
  if (new Set(ids.map((id) => ok.get(id)!.stateful)).size > 1)
    throw nerr(
      'SecurityGroupConflict',
      'Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.',
    )
}

function randomMac(): string {
  const r = randomBytes(3)
  return `fa:16:3e:${[...r].map((x) => x.toString(16).padStart(2, '0')).join(':')}`
}

async function allocateIps(w: WriteContext, networkId: string, wanted: FixedIpReq[] | undefined, portId: string) {
  const subnets = await w.tx
    .selectFrom('subnets')
    .selectAll()
    .where('network_id', '=', networkId)
    .orderBy('created_at')
    .execute()
  const byId = new Map(subnets.map((s) => [s.id, s] as const))
  const reqs: FixedIpReq[] =
    wanted ??
    (() => {
      // One address from the first IPv4 subnet, and from the first IPv6 subnet (as Neutron with SLAAC-less subnets).
      const v4 = subnets.find((s) => s.ip_version === 4)
      const v6 = subnets.find((s) => s.ip_version === 6)
      return [v4, v6].filter((s): s is SubnetTable => s !== undefined).map((s) => ({ subnet_id: s.id }))
    })()
  const out: { subnet_id: string; ip_address: string }[] = []
  for (const req of reqs) {
    let subnet: SubnetTable | undefined
    if (req.subnet_id) {
      subnet = byId.get(req.subnet_id)
      if (!subnet)
        throw badRequest(
          `Invalid input for operation: Failed to create port on network ${networkId}, because fixed_ips included invalid subnet ${req.subnet_id}.`,
        )
    } else if (req.ip_address) {
      subnet = subnets.find((s) => contains(parseCidr(s.cidr)!, req.ip_address!))
      if (!subnet)
        throw nerr('InvalidIpForSubnet', `IP address ${req.ip_address} is not a valid IP for the specified subnet.`)
    } else throw invalidInput('fixed_ips', 'each entry needs subnet_id or ip_address')
    const cidr = parseCidr(subnet.cidr)!
    const used = new Set(
      (await w.tx.selectFrom('port_fixed_ips').select('ip_address').where('subnet_id', '=', subnet.id).execute()).map(
        (r) => r.ip_address,
      ),
    )
    for (const o of out) if (o.subnet_id === subnet.id) used.add(o.ip_address)
    if (req.ip_address) {
      if (!contains(cidr, req.ip_address))
        throw nerr('InvalidIpForSubnet', `IP address ${req.ip_address} is not a valid IP for the specified subnet.`)
      if (used.has(req.ip_address))
        throw nerr('IpAddressAlreadyAllocated', `IP address ${req.ip_address} already allocated in subnet ${subnet.id}`)
      out.push({ subnet_id: subnet.id, ip_address: req.ip_address })
      continue
    }
    let found: string | null = null
    const pools = JSON.parse(subnet.allocation_pools) as { start: string; end: string }[]
    outer: for (const pool of pools) {
      const end = toBig(pool.end)
      let n = toBig(pool.start)
      for (let tries = 0; n <= end && tries < 1_000_000; n++, tries++) {
        const a = fromBig(n, cidr.version)
        if (!used.has(a) && a !== subnet.gateway_ip) {
          found = a
          break outer
        }
      }
    }
    if (!found) throw nerr('IpAddressGenerationFailure', `No more IP addresses available on network ${networkId}.`)
    out.push({ subnet_id: subnet.id, ip_address: found })
  }
  void portId
  return out
}

async function writeChildren(
  w: WriteContext,
  portId: string,
  networkId: string,
  ips: { subnet_id: string; ip_address: string }[] | null,
  pairs: { ip_address: string; mac_address: string }[] | null,
  groups: readonly string[] | null,
) {
  if (ips) {
    await w.tx.deleteFrom('port_fixed_ips').where('port_id', '=', portId).execute()
    if (ips.length)
      await w.tx
        .insertInto('port_fixed_ips')
        .values(
          ips.map((x, k) => ({
            port_id: portId,
            network_id: networkId,
            subnet_id: x.subnet_id,
            ip_address: x.ip_address,
            position: k,
          })),
        )
        .execute()
  }
  if (pairs) {
    await w.tx.deleteFrom('port_address_pairs').where('port_id', '=', portId).execute()
    if (pairs.length)
      await w.tx
        .insertInto('port_address_pairs')
        .values(
          pairs.map((x, k) => ({ port_id: portId, ip_address: x.ip_address, mac_address: x.mac_address, position: k })),
        )
        .execute()
  }
  if (groups) {
    await w.tx.deleteFrom('port_security_groups').where('port_id', '=', portId).execute()
    if (groups.length)
      await w.tx
        .insertInto('port_security_groups')
        .values(groups.map((g, k) => ({ port_id: portId, security_group_id: g, position: k })))
        .execute()
  }
}

async function logPort(w: WriteContext, ctx: RequestContext, portId: string, action: 'create' | 'update') {
  const rows = await w.tx.selectFrom('ports').selectAll().where('id', '=', portId).execute()
  const d = (await portDetails(w.tx, rows))[0]!
  await w.log({
    resource: 'port',
    resource_id: portId,
    action,
    project_id: d.row.project_id,
    body: portWire(d, { ...ctx, isAdmin: true }),
  })
}

export async function createPorts(store: Store, ctx: RequestContext, items: Body[]): Promise<Wire[]> {
  const bodies = items.map((it) => processAttributes(it, PORT_ATTRS, 'post', ctx))
  const ids = await store.write(async (w) => {
    const out: string[] = []
    for (const body of bodies) {
      const project = body.project_id as string
      const net = await visibleNetwork(w.tx, ctx, body.network_id as string)
      await checkQuota(w.tx, project, { port: 1 })
      if (body['binding:host_id'] !== undefined && !ctx.isAdmin)
        throw policy('(rule:create_port and rule:create_port:binding:host_id)')
      if (body['binding:profile'] !== undefined && !ctx.isAdmin)
        throw policy('(rule:create_port and rule:create_port:binding:profile)')
      const netOwner = ctx.isAdmin || net.project_id === ctx.projectId
      for (const [attr, rule] of [
        ['mac_address', 'mac_address'],
        ['port_security_enabled', 'port_security_enabled'],
        ['allowed_address_pairs', 'allowed_address_pairs'],
      ] as const)
        if (body[attr] !== undefined && !netOwner) throw policy(`(rule:create_port and rule:create_port:${rule})`)
      if (!netOwner && (body.fixed_ips as FixedIpReq[] | undefined)?.some((f) => f.ip_address))
        throw policy('(rule:create_port and rule:create_port:fixed_ips:ip_address)')
      const owner = body.device_owner as string
      const defaultId = await ensureDefaultGroupIn(w, project)
      const portSecurity =
        body.port_security_enabled !== undefined
          ? (body.port_security_enabled as boolean)
          : trusted(owner)
            ? false
            : b(net.port_security_enabled)
      let groups: string[]
      if (body.security_groups !== undefined) groups = body.security_groups as string[]
      else groups = trusted(owner) || !portSecurity ? [] : [defaultId]
      const pairsIn = (body.allowed_address_pairs as Pair[] | undefined) ?? []
      if (!portSecurity && groups.length)
        throw nerr(
          'PortSecurityAndIPRequiredForSecurityGroups',
          'Port security must be enabled and port must have an IP address in order to use security groups.',
        )
      if (!portSecurity && pairsIn.length)
        throw nerr(
          'AddressPairAndPortSecurityRequired',
          'Port Security must be enabled in order to have allowed address pairs on a port.',
        )
      await checkGroups(w, ctx, project, groups)
      let mac = body.mac_address as string | undefined
      if (mac) {
        const clash = await w.tx
          .selectFrom('ports')
          .select('id')
          .where('network_id', '=', net.id)
          .where('mac_address', '=', mac)
          .executeTakeFirst()
        if (clash)
          throw nerr(
            'MacAddressInUse',
            `Unable to complete operation for network ${net.id}. The mac address ${mac} is in use.`,
          )
      } else {
        for (let k = 0; k < 16; k++) {
          const candidate = randomMac()
          const clash = await w.tx
            .selectFrom('ports')
            .select('id')
            .where('network_id', '=', net.id)
            .where('mac_address', '=', candidate)
            .executeTakeFirst()
          if (!clash) {
            mac = candidate
            break
          }
        }
        if (!mac) throw nerr('MacAddressInUse', `Unable to generate a unique MAC address on network ${net.id}.`)
      }
      const id = newId()
      const ips = await allocateIps(w, net.id, body.fixed_ips as FixedIpReq[] | undefined, id)
      const row: PortTable = {
        id,
        project_id: project,
        name: body.name as string,
        description: body.description as string,
        created_at: w.now,
        updated_at: w.now,
        revision_number: 1,
        standard_attr_id: await w.nextStandardAttrId(),
        network_id: net.id,
        admin_state_up: i(body.admin_state_up),
        mac_address: mac,
        device_id: body.device_id as string,
        device_owner: owner,
        status: 'DOWN',
        port_security_enabled: i(portSecurity),
        binding_host_id: (body['binding:host_id'] as string | undefined) ?? '',
        binding_vnic_type: body['binding:vnic_type'] as string,
        binding_profile: JSON.stringify(body['binding:profile'] ?? {}),
        extra_dhcp_opts: JSON.stringify(body.extra_dhcp_opts ?? []),
      }
      await w.tx.insertInto('ports').values(row).execute()
      const pairs = pairsIn.map((p) => ({ ip_address: p.ip_address, mac_address: p.mac_address ?? row.mac_address }))
      await writeChildren(w, id, net.id, ips, pairs, groups)
      const tags = [...new Set((body.tags as string[] | undefined) ?? [])]
      if (tags.length)
        await w.tx
          .insertInto('tags')
          .values(tags.map((tag) => ({ resource_type: 'ports', resource_id: id, tag })))
          .execute()
      await logPort(w, ctx, id, 'create')
      out.push(id)
    }
    return out
  })
  const rows = await portRows(store.db, { ...ctx, isAdmin: true }, ids)
  const details = await portDetails(store.db, rows)
  const order = new Map(ids.map((id, k) => [id, k] as const))
  return details.sort((x, y) => order.get(x.row.id)! - order.get(y.row.id)!).map((d) => portWire(d, ctx))
}

export async function updatePort(
  store: Store,
  ctx: RequestContext,
  id: string,
  item: Body,
  ifMatch: string | string[] | undefined,
) {
  const body = processAttributes(item, PORT_ATTRS, 'put', ctx)
  await store.write(async (w) => {
    const rows = await portRows(w.tx, ctx, [id])
    if (!rows[0]) throw portNotFound(id)
    const cur = (await portDetails(w.tx, rows))[0]!
    const r = cur.row
    checkIfMatch(ifMatch, r.revision_number)
    if ((body['binding:host_id'] !== undefined || body['binding:profile'] !== undefined) && !ctx.isAdmin)
      throw policy('(rule:update_port and rule:update_port:binding:host_id)')
    if (body.mac_address !== undefined && !ctx.isAdmin)
      throw policy('(rule:update_port and rule:update_port:mac_address)')
    await ensureDefaultGroupIn(w, r.project_id)
    const portSecurity =
      body.port_security_enabled !== undefined ? (body.port_security_enabled as boolean) : b(r.port_security_enabled)
    const groups = body.security_groups !== undefined ? (body.security_groups as string[]) : null
    const pairsIn = body.allowed_address_pairs !== undefined ? (body.allowed_address_pairs as Pair[]) : null
    if (!portSecurity) {
      if (groups?.length)
        throw nerr(
          'PortSecurityAndIPRequiredForSecurityGroups',
          'Port security must be enabled and port must have an IP address in order to use security groups.',
        )
      if (!groups && cur.groups.length)
        throw nerr(
          'PortSecurityPortHasSecurityGroup',
          'Port has security group associated. Cannot disable port security or IP address until security group is removed.',
        )
      if ((pairsIn ?? cur.pairs).length)
        throw nerr(
          'AddressPairAndPortSecurityRequired',
          'Port Security must be enabled in order to have allowed address pairs on a port.',
        )
    }
    if (groups) await checkGroups(w, ctx, r.project_id, groups)
    const set: Partial<PortTable> = {}
    if (body.name !== undefined) set.name = body.name as string
    if (body.description !== undefined) set.description = body.description as string
    if (body.admin_state_up !== undefined) set.admin_state_up = i(body.admin_state_up)
    if (body.device_id !== undefined) set.device_id = body.device_id as string
    if (body.device_owner !== undefined) set.device_owner = body.device_owner as string
    if (body.port_security_enabled !== undefined) set.port_security_enabled = i(portSecurity)
    if (body['binding:host_id'] !== undefined) set.binding_host_id = body['binding:host_id'] as string
    if (body['binding:profile'] !== undefined) set.binding_profile = JSON.stringify(body['binding:profile'])
    if (body['binding:vnic_type'] !== undefined) set.binding_vnic_type = body['binding:vnic_type'] as string
    if (body.extra_dhcp_opts !== undefined) set.extra_dhcp_opts = JSON.stringify(body.extra_dhcp_opts)
    const mac = (body.mac_address as string | undefined) ?? r.mac_address
    if (body.mac_address !== undefined) set.mac_address = mac
    let ips: { subnet_id: string; ip_address: string }[] | null = null
    if (body.fixed_ips !== undefined) {
      await w.tx.deleteFrom('port_fixed_ips').where('port_id', '=', id).execute()
      ips = await allocateIps(w, r.network_id, body.fixed_ips as FixedIpReq[], id)
    }
    const pairs = pairsIn ? pairsIn.map((p) => ({ ip_address: p.ip_address, mac_address: p.mac_address ?? mac })) : null
    await writeChildren(w, id, r.network_id, ips, pairs, groups)
    await w.tx
      .updateTable('ports')
      .set({ ...set, revision_number: r.revision_number + 1, updated_at: w.now })
      .where('id', '=', id)
      .execute()
    await logPort(w, ctx, id, 'update')
  })
  return showPort(store.db, ctx, id)
}

export async function deletePort(
  store: Store,
  ctx: RequestContext,
  id: string,
  ifMatch: string | string[] | undefined,
) {
  await store.write(async (w) => {
    const [r] = await portRows(w.tx, ctx, [id])
    if (!r) throw portNotFound(id)
    checkIfMatch(ifMatch, r.revision_number)
    const groups = await w.tx
      .selectFrom('port_security_groups')
      .select('security_group_id')
      .where('port_id', '=', id)
      .execute()
    await w.tx.deleteFrom('port_fixed_ips').where('port_id', '=', id).execute()
    await w.tx.deleteFrom('port_address_pairs').where('port_id', '=', id).execute()
    await w.tx.deleteFrom('port_security_groups').where('port_id', '=', id).execute()
    await w.tx.deleteFrom('tags').where('resource_type', '=', 'ports').where('resource_id', '=', id).execute()
    await w.tx.deleteFrom('ports').where('id', '=', id).execute()
    await w.log({
      resource: 'port',
      resource_id: id,
      action: 'delete',
      project_id: r.project_id,
      body: { id, binding_host_id: r.binding_host_id, security_groups: groups.map((g) => g.security_group_id) },
    })
  })
}
