/**
 * Validation of the scenario document (shared/spec/scenario.md). Every problem is
 * reported at once with its JSON path; the result is a canonical Scenario (API
 * canonicalization applied: ethertype spelling, protocol names, full port range
 * dropped, bare remote prefixes given a mask) or null when anything is wrong.
 */
import { isMac, parseCidr } from './addresses.js'
import { API_PROTOCOL_NUMBERS, canonicalProtocol, isIcmp, takesPorts } from './protocols.js'
import type {
  AllowedAddressPair,
  Direction,
  Ethertype,
  FirewallDriver,
  GroupMembers,
  HostConfig,
  HostState,
  Issue,
  Members,
  NeutronFix,
  Port,
  Scenario,
  ScenarioStep,
  SecurityGroup,
  SecurityGroupRule,
} from './types.js'
import { NEUTRON_FIXES } from './types.js'

/** Ids become parts of device, chain and ipset names: letters, digits and dashes only. */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9-]{10,63}$/
const DEVICE_OWNER_RE = /^[A-Za-z0-9:_.-]{0,255}$/

type Json = unknown

class Collector {
  readonly issues: Issue[] = []
  add(path: string, message: string): void {
    this.issues.push({ path, message })
  }
}

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function describe(v: Json): string {
  const s = JSON.stringify(v)
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s
}

function checkKeys(obj: Record<string, Json>, allowed: readonly string[], path: string, c: Collector): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) c.add(`${path}.${k}`, `unknown field "${k}"`)
}

function checkId(v: Json, path: string, c: Collector): string | null {
  if (typeof v !== 'string' || !ID_RE.test(v)) {
    c.add(path, `must be an id of 11-64 letters, digits and dashes (a UUID), got ${describe(v)}`)
    return null
  }
  return v
}

function parseEthertype(v: Json, path: string, c: Collector): Ethertype | null {
  if (typeof v === 'string') {
    const l = v.toLowerCase()
    if (l === 'ipv4') return 'IPv4'
    if (l === 'ipv6') return 'IPv6'
  }
  c.add(path, `must be "IPv4" or "IPv6", got ${describe(v)}`)
  return null
}

function optionalInt(v: Json, path: string, c: Collector): number | null | undefined {
  if (v === null || v === undefined) return null
  if (typeof v === 'number' && Number.isInteger(v)) return v
  if (typeof v === 'string' && /^\d{1,5}$/.test(v)) return Number(v)
  c.add(path, `must be an integer or null, got ${describe(v)}`)
  return undefined
}

function parseRule(v: Json, path: string, c: Collector): SecurityGroupRule | null {
  if (!isObject(v)) {
    c.add(path, 'must be an object')
    return null
  }
  checkKeys(
    v,
    [
      'id',
      'direction',
      'ethertype',
      'protocol',
      'port_range_min',
      'port_range_max',
      'remote_ip_prefix',
      'remote_group_id',
      'description',
      'security_group_id',
      'remote_address_group_id',
      'normalized_cidr',
    ],
    path,
    c,
  )
  const before = c.issues.length
  const id = checkId(v.id, `${path}.id`, c)
  let direction: Direction | null = null
  if (v.direction === 'ingress' || v.direction === 'egress') direction = v.direction
  else c.add(`${path}.direction`, `must be "ingress" or "egress", got ${describe(v.direction)}`)
  const ethertype = parseEthertype(v.ethertype, `${path}.ethertype`, c)
  let protocol: string | null = null
  if (ethertype) {
    const p = canonicalProtocol(v.protocol, ethertype)
    if (p.ok) protocol = p.value
    else c.add(`${path}.protocol`, p.message)
  }
  let min = optionalInt(v.port_range_min, `${path}.port_range_min`, c)
  let max = optionalInt(v.port_range_max, `${path}.port_range_max`, c)
  // API canonicalization comes first: the full range means "any port", whatever the protocol.
  if (min === 1 && max === 65535) {
    min = null
    max = null
  }
  if (min !== undefined && max !== undefined && ethertype && c.issues.length === before) {
    if (isIcmp(protocol)) {
      if (min !== null && (min < 0 || min > 255)) c.add(`${path}.port_range_min`, `ICMP type must be 0-255, got ${min}`)
      if (max !== null && (max < 0 || max > 255)) c.add(`${path}.port_range_max`, `ICMP code must be 0-255, got ${max}`)
      if (min === null && max !== null)
        c.add(`${path}.port_range_max`, 'ICMP code given without ICMP type (port_range_min)')
    } else if (takesPorts(protocol)) {
      if (min === null && max !== null) c.add(`${path}.port_range_min`, 'port_range_max given without port_range_min')
      else if (min !== null) {
        if (max === null) max = min
        if (min < 1 || min > 65535) c.add(`${path}.port_range_min`, `port must be 1-65535, got ${min}`)
        if (max < 1 || max > 65535) c.add(`${path}.port_range_max`, `port must be 1-65535, got ${max}`)
        if (min > max) c.add(`${path}.port_range_min`, `port_range_min ${min} is greater than port_range_max ${max}`)
      }
    } else if (min !== null || max !== null) {
      c.add(
        `${path}.port_range_min`,
        `port ranges are only allowed with tcp, udp, sctp, dccp, udplite and ICMP types with icmp/ipv6-icmp; protocol is ${protocol ?? 'any'}`,
      )
    }
  }
  let remotePrefix: string | null = null
  if (v.remote_ip_prefix !== null && v.remote_ip_prefix !== undefined) {
    const cidr = typeof v.remote_ip_prefix === 'string' ? parseCidr(v.remote_ip_prefix) : null
    if (!cidr) c.add(`${path}.remote_ip_prefix`, `must be an IP address or CIDR, got ${describe(v.remote_ip_prefix)}`)
    else if (ethertype && (cidr.version === 4) !== (ethertype === 'IPv4'))
      c.add(
        `${path}.remote_ip_prefix`,
        `${String(v.remote_ip_prefix)} is an IPv${cidr.version} prefix but the rule's ethertype is ${ethertype}`,
      )
    else remotePrefix = `${cidr.address}/${cidr.prefix}`
  }
  let remoteGroup: string | null = null
  if (v.remote_group_id !== null && v.remote_group_id !== undefined) {
    remoteGroup = checkId(v.remote_group_id, `${path}.remote_group_id`, c)
    if (remotePrefix !== null)
      c.add(`${path}.remote_group_id`, 'remote_ip_prefix and remote_group_id are mutually exclusive')
  }
  if (c.issues.length !== before || !id || !direction || !ethertype || min === undefined || max === undefined)
    return null
  return {
    id,
    direction,
    ethertype,
    protocol,
    port_range_min: min,
    port_range_max: max,
    remote_ip_prefix: remotePrefix,
    remote_group_id: remoteGroup,
  }
}

/**
 * The fields the API compares to find duplicate rules (neutron-api.md 6.6): protocol as
 * its number when it has a name (`tcp` = `6`), remote prefix null = any /0, otherwise the
 * exact string.
 */
function ruleIdentity(r: SecurityGroupRule): string {
  const proto = r.protocol === null ? null : String(API_PROTOCOL_NUMBERS[r.protocol] ?? r.protocol)
  const prefix = r.remote_ip_prefix === null || r.remote_ip_prefix.endsWith('/0') ? null : r.remote_ip_prefix
  return JSON.stringify([
    r.direction,
    r.ethertype,
    proto,
    r.port_range_min,
    r.port_range_max,
    prefix,
    r.remote_group_id,
  ])
}

function parseGroups(v: Json, path: string, c: Collector): SecurityGroup[] | null {
  if (!Array.isArray(v)) {
    c.add(path, 'must be an array of security groups')
    return null
  }
  const out: SecurityGroup[] = []
  const ids = new Set<string>()
  const ruleIds = new Map<string, string>()
  v.forEach((g, i) => {
    const gp = `${path}[${i}]`
    if (!isObject(g)) {
      c.add(gp, 'must be an object')
      return
    }
    checkKeys(g, ['id', 'stateful', 'rules', 'name', 'description', 'project_id', 'tenant_id'], gp, c)
    const id = checkId(g.id, `${gp}.id`, c)
    if (id) {
      if (ids.has(id)) c.add(`${gp}.id`, `duplicate security group id ${id}`)
      ids.add(id)
    }
    let stateful = true
    if (g.stateful !== undefined && typeof g.stateful !== 'boolean')
      c.add(`${gp}.stateful`, `must be true or false, got ${describe(g.stateful)}`)
    else if (g.stateful === false) stateful = false
    const rules: SecurityGroupRule[] = []
    if (g.rules !== undefined && !Array.isArray(g.rules)) c.add(`${gp}.rules`, 'must be an array of rules')
    const seen = new Map<string, string>()
    if (Array.isArray(g.rules))
      g.rules.forEach((r, j) => {
        const rp = `${gp}.rules[${j}]`
        const rule = parseRule(r, rp, c)
        if (!rule) return
        const prev = ruleIds.get(rule.id)
        if (prev) c.add(`${rp}.id`, `duplicate rule id ${rule.id} (also at ${prev})`)
        ruleIds.set(rule.id, rp)
        const key = ruleIdentity(rule)
        const dup = seen.get(key)
        if (dup) c.add(rp, `duplicate of the rule at ${dup} (the API rejects it: SecurityGroupRuleExists)`)
        seen.set(key, rp)
        rules.push(rule)
      })
    if (id) out.push({ id, stateful, rules })
  })
  return out
}

function parseMembers(v: Json, path: string, c: Collector): Members | null {
  if (v === undefined) return {}
  if (!isObject(v)) {
    c.add(path, 'must be an object mapping group ids to {"IPv4": [...], "IPv6": [...]}')
    return null
  }
  const out: Record<string, GroupMembers> = {}
  for (const [gid, m] of Object.entries(v)) {
    const gp = `${path}["${gid}"]`
    if (!ID_RE.test(gid)) c.add(gp, `member key must be a security group id, got ${describe(gid)}`)
    if (!isObject(m)) {
      c.add(gp, 'must be an object {"IPv4": [...], "IPv6": [...]}')
      continue
    }
    checkKeys(m, ['IPv4', 'IPv6'], gp, c)
    const entry: { IPv4?: string[]; IPv6?: string[] } = {}
    for (const fam of ['IPv4', 'IPv6'] as const) {
      const list = m[fam]
      if (list === undefined) continue
      if (!Array.isArray(list)) {
        c.add(`${gp}.${fam}`, 'must be an array of addresses')
        continue
      }
      const addrs: string[] = []
      list.forEach((a, i) => {
        const cidr = typeof a === 'string' ? parseCidr(a) : null
        if (!cidr) c.add(`${gp}.${fam}[${i}]`, `must be an IP address or CIDR, got ${describe(a)}`)
        else if ((cidr.version === 4) !== (fam === 'IPv4'))
          c.add(`${gp}.${fam}[${i}]`, `${String(a)} is not an ${fam} address`)
        else addrs.push(a as string)
      })
      entry[fam] = addrs
    }
    out[gid] = entry
  }
  return out
}

function parsePorts(v: Json, path: string, c: Collector): Port[] | null {
  if (!Array.isArray(v)) {
    c.add(path, 'must be an array of ports')
    return null
  }
  const out: Port[] = []
  const ids = new Set<string>()
  const devices = new Map<string, string>()
  const chainOwners = new Map<string, string>()
  v.forEach((p, i) => {
    const pp = `${path}[${i}]`
    if (!isObject(p)) {
      c.add(pp, 'must be an object')
      return
    }
    checkKeys(
      p,
      [
        'id',
        'device',
        'mac_address',
        'fixed_ips',
        'allowed_address_pairs',
        'security_groups',
        'port_security_enabled',
        'network_id',
        'device_owner',
        'name',
        'description',
      ],
      pp,
      c,
    )
    const before = c.issues.length
    const id = checkId(p.id, `${pp}.id`, c)
    if (id) {
      if (ids.has(id)) c.add(`${pp}.id`, `duplicate port id ${id}`)
      ids.add(id)
      const dev = `tap${id.slice(0, 11)}`
      const other = devices.get(dev)
      if (other) c.add(`${pp}.id`, `port ids ${other} and ${id} give the same device name ${dev}`)
      devices.set(dev, id)
      // Neutron names a port's chains by the first 10 characters of its id (i/o/s + 10, 11 in all).
      const chainKey = id.slice(0, 10)
      const same = chainOwners.get(chainKey)
      if (same && same !== id)
        c.add(
          `${pp}.id`,
          `port ids ${same} and ${id} give the same per-port chain names (Neutron uses the first 10 characters: ${chainKey})`,
        )
      chainOwners.set(chainKey, id)
      if (p.device !== undefined && p.device !== dev)
        c.add(
          `${pp}.device`,
          `must be "${dev}" ("tap" + the first 11 characters of the port id), got ${describe(p.device)}`,
        )
    }
    if (!isMac(p.mac_address))
      c.add(`${pp}.mac_address`, `must be a MAC address like fa:16:3e:00:00:01, got ${describe(p.mac_address)}`)
    const fixed: string[] = []
    if (!Array.isArray(p.fixed_ips)) c.add(`${pp}.fixed_ips`, 'must be an array of IP addresses')
    else
      p.fixed_ips.forEach((a, j) => {
        const cidr = typeof a === 'string' ? parseCidr(a) : null
        if (!cidr || cidr.hadPrefix) c.add(`${pp}.fixed_ips[${j}]`, `must be a plain IP address, got ${describe(a)}`)
        else if (fixed.includes(cidr.address)) c.add(`${pp}.fixed_ips[${j}]`, `${cidr.address} is listed twice`)
        else fixed.push(cidr.address)
      })
    const pairs: AllowedAddressPair[] = []
    if (p.allowed_address_pairs !== undefined && !Array.isArray(p.allowed_address_pairs))
      c.add(`${pp}.allowed_address_pairs`, 'must be an array of {"ip_address", "mac_address"}')
    else if (Array.isArray(p.allowed_address_pairs))
      p.allowed_address_pairs.forEach((a, j) => {
        const ap = `${pp}.allowed_address_pairs[${j}]`
        if (!isObject(a)) {
          c.add(ap, 'must be an object {"ip_address", "mac_address"}')
          return
        }
        checkKeys(a, ['ip_address', 'mac_address'], ap, c)
        const cidr = typeof a.ip_address === 'string' ? parseCidr(a.ip_address) : null
        if (!cidr) c.add(`${ap}.ip_address`, `must be an IP address or CIDR, got ${describe(a.ip_address)}`)
        if (a.mac_address !== undefined && a.mac_address !== null && !isMac(a.mac_address))
          c.add(`${ap}.mac_address`, `must be a MAC address, got ${describe(a.mac_address)}`)
        if (cidr)
          pairs.push(
            typeof a.mac_address === 'string'
              ? { ip_address: a.ip_address as string, mac_address: a.mac_address }
              : { ip_address: a.ip_address as string },
          )
      })
    const groups: string[] = []
    if (p.security_groups !== undefined && !Array.isArray(p.security_groups))
      c.add(`${pp}.security_groups`, 'must be an array of security group ids')
    else if (Array.isArray(p.security_groups))
      p.security_groups.forEach((g, j) => {
        const gid = checkId(g, `${pp}.security_groups[${j}]`, c)
        if (gid) {
          if (groups.includes(gid)) c.add(`${pp}.security_groups[${j}]`, `group ${gid} is listed twice`)
          else groups.push(gid)
        }
      })
    let portSecurity = true
    if (p.port_security_enabled !== undefined && typeof p.port_security_enabled !== 'boolean')
      c.add(`${pp}.port_security_enabled`, `must be true or false, got ${describe(p.port_security_enabled)}`)
    else if (p.port_security_enabled === false) {
      portSecurity = false
      if (groups.length > 0)
        c.add(`${pp}.security_groups`, 'a port with port security disabled cannot have security groups')
      if (pairs.length > 0)
        c.add(`${pp}.allowed_address_pairs`, 'a port with port security disabled cannot have allowed address pairs')
    }
    const network = checkId(p.network_id, `${pp}.network_id`, c)
    if (p.device_owner !== undefined && (typeof p.device_owner !== 'string' || !DEVICE_OWNER_RE.test(p.device_owner)))
      c.add(
        `${pp}.device_owner`,
        `must be a string like "compute:nova" or "network:dhcp", got ${describe(p.device_owner)}`,
      )
    if (c.issues.length !== before || !id || !network) return
    const port: Port = {
      id,
      device: `tap${id.slice(0, 11)}`,
      mac_address: (p.mac_address as string).toLowerCase(),
      fixed_ips: fixed,
      allowed_address_pairs: pairs,
      security_groups: groups,
      port_security_enabled: portSecurity,
      network_id: network,
      ...(typeof p.device_owner === 'string' ? { device_owner: p.device_owner } : {}),
    }
    out.push(port)
  })
  return out
}

/** Cross-references: groups named by rules and ports exist; a port never mixes stateful and stateless groups. */
function checkState(s: HostState, path: string, c: Collector): void {
  const groups = new Map(s.security_groups.map((g) => [g.id, g]))
  s.security_groups.forEach((g, i) => {
    g.rules.forEach((r, j) => {
      if (r.remote_group_id !== null && !groups.has(r.remote_group_id))
        c.add(
          `${path}security_groups[${i}].rules[${j}].remote_group_id`,
          `names group ${r.remote_group_id}, which is not in security_groups`,
        )
    })
  })
  s.ports.forEach((p, i) => {
    let stateful: boolean | null = null
    p.security_groups.forEach((gid, j) => {
      const g = groups.get(gid)
      if (!g) {
        c.add(`${path}ports[${i}].security_groups[${j}]`, `names group ${gid}, which is not in security_groups`)
        return
      }
      if (stateful !== null && g.stateful !== stateful)
        c.add(`${path}ports[${i}].security_groups[${j}]`, 'a port cannot mix stateful and stateless security groups')
      stateful = g.stateful
    })
  })
}

function parseState(doc: Record<string, Json>, prev: HostState | null, path: string, c: Collector): HostState | null {
  const before = c.issues.length
  const groups =
    doc.security_groups === undefined && prev
      ? prev.security_groups
      : parseGroups(doc.security_groups, `${path}security_groups`, c)
  const members = doc.members === undefined && prev ? prev.members : parseMembers(doc.members, `${path}members`, c)
  const ports = doc.ports === undefined && prev ? prev.ports : parsePorts(doc.ports, `${path}ports`, c)
  if (!groups || !members || !ports || c.issues.length !== before) return null
  const state: HostState = { security_groups: groups, members, ports }
  checkState(state, path, c)
  return c.issues.length === before ? state : null
}

/** Validate a scenario document (parsed JSON). */
export function parseScenario(json: Json): { scenario: Scenario | null; issues: Issue[] } {
  const c = new Collector()
  if (!isObject(json)) {
    c.add('$', 'the scenario must be a JSON object')
    return { scenario: null, issues: c.issues }
  }
  checkKeys(json, ['description', 'config', 'security_groups', 'members', 'ports', 'steps'], '$', c)
  let config: HostConfig | null = null
  const cfg = json.config === undefined ? {} : json.config
  if (!isObject(cfg)) c.add('$.config', 'must be an object {"firewall_driver", "enable_ipset"}')
  else {
    checkKeys(cfg, ['firewall_driver', 'enable_ipset', 'fixes'], '$.config', c)
    const driver = cfg.firewall_driver ?? 'iptables_hybrid'
    const ipset = cfg.enable_ipset ?? true
    if (driver !== 'iptables_hybrid' && driver !== 'iptables')
      c.add('$.config.firewall_driver', `must be "iptables_hybrid" or "iptables", got ${describe(driver)}`)
    if (typeof ipset !== 'boolean') c.add('$.config.enable_ipset', `must be true or false, got ${describe(ipset)}`)
    const fixes: NeutronFix[] = []
    if (cfg.fixes !== undefined) {
      if (!Array.isArray(cfg.fixes))
        c.add('$.config.fixes', `must be an array of fix names (${NEUTRON_FIXES.join(', ')})`)
      else
        cfg.fixes.forEach((f, i) => {
          if (typeof f === 'string' && (NEUTRON_FIXES as readonly string[]).includes(f)) {
            if (!fixes.includes(f as NeutronFix)) fixes.push(f as NeutronFix)
          } else c.add(`$.config.fixes[${i}]`, `unknown fix ${describe(f)} (known: ${NEUTRON_FIXES.join(', ')})`)
        })
    }
    if ((driver === 'iptables_hybrid' || driver === 'iptables') && typeof ipset === 'boolean')
      config = { firewall_driver: driver as FirewallDriver, enable_ipset: ipset, ...(fixes.length ? { fixes } : {}) }
  }
  if (json.description !== undefined && typeof json.description !== 'string') c.add('$.description', 'must be a string')
  const initial = parseState(json, null, '$.', c)
  const steps: ScenarioStep[] = []
  if (json.steps !== undefined && !Array.isArray(json.steps)) c.add('$.steps', 'must be an array of steps')
  let prev = initial
  if (Array.isArray(json.steps))
    json.steps.forEach((st, i) => {
      const sp = `$.steps[${i}].`
      if (!isObject(st)) {
        c.add(`$.steps[${i}]`, 'must be an object')
        return
      }
      checkKeys(st, ['description', 'security_groups', 'members', 'ports'], `$.steps[${i}]`, c)
      const state = prev ? parseState(st, prev, sp, c) : null
      if (state) {
        steps.push({
          ...(typeof st.description === 'string' ? { description: st.description } : {}),
          ...(st.security_groups !== undefined ? { security_groups: state.security_groups } : {}),
          ...(st.members !== undefined ? { members: state.members } : {}),
          ...(st.ports !== undefined ? { ports: state.ports } : {}),
        })
        prev = state
      }
    })
  if (c.issues.length > 0 || !initial || !config) return { scenario: null, issues: c.issues }
  return {
    scenario: {
      ...(typeof json.description === 'string' ? { description: json.description } : {}),
      config,
      security_groups: initial.security_groups,
      members: initial.members,
      ports: initial.ports,
      steps,
    },
    issues: [],
  }
}

/** The complete state after applying a step to the previous one. */
export function applyStep(prev: HostState, step: ScenarioStep): HostState {
  return {
    security_groups: step.security_groups ?? prev.security_groups,
    members: step.members ?? prev.members,
    ports: step.ports ?? prev.ports,
  }
}
