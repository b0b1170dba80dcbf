/**
 * fast-check arbitraries for valid host scenarios (shared/spec/scenario.md), mixing
 * every feature the compiler handles: both drivers, ipset on/off, stateful and
 * stateless groups, prefix and remote-group rules of both families, trusted ports,
 * ports without port security, address pairs, ports without addresses.
 */
import fc from 'fast-check'
import { API_PROTOCOL_NUMBERS } from '../../src/model/protocols.js'

export interface RawRule {
  id: string
  direction: 'ingress' | 'egress'
  ethertype: 'IPv4' | 'IPv6'
  protocol: string | number | null
  port_range_min: number | null
  port_range_max: number | null
  remote_ip_prefix: string | null
  remote_group_id: string | null
}

export interface RawScenario {
  description: string
  config: { firewall_driver: 'iptables_hybrid' | 'iptables'; enable_ipset: boolean }
  security_groups: Array<{ id: string; stateful: boolean; rules: RawRule[] }>
  members: Record<string, { IPv4: string[]; IPv6: string[] }>
  ports: Array<{
    id: string
    mac_address: string
    fixed_ips: string[]
    allowed_address_pairs: Array<{ ip_address: string; mac_address?: string }>
    security_groups: string[]
    port_security_enabled: boolean
    network_id: string
    device_owner?: string
  }>
}

const V4_PROTOCOLS: Array<string | number | null> = [
  null,
  'tcp',
  'udp',
  'icmp',
  'sctp',
  'udplite',
  'dccp',
  'gre',
  '6',
  17,
  '1',
  '0',
  'any',
  'ipip',
  '253',
  'vrrp',
]
const V6_PROTOCOLS: Array<string | number | null> = [
  null,
  'tcp',
  'udp',
  'icmp',
  'ipv6-icmp',
  'icmpv6',
  '58',
  'sctp',
  '17',
  'ipv6-encap',
  'any',
  '0',
]
const PORT_PROTOCOLS = new Set(['tcp', 'udp', 'sctp', 'udplite', 'dccp', '6', '17'])
const ICMP_PROTOCOLS = new Set(['icmp', 'ipv6-icmp', 'icmpv6', '58', '1'])

const v4Addr = fc.integer({ min: 1, max: 40 }).map((n) => `10.0.${n % 3}.${n}`)
const v6Addr = fc.integer({ min: 1, max: 40 }).map((n) => `2001:db8::${n.toString(16)}`)
const mac = fc.integer({ min: 1, max: 250 }).map((n) => `fa:16:3e:00:01:${n.toString(16).padStart(2, '0')}`)

const ruleShape = fc.record({
  direction: fc.constantFrom<'ingress' | 'egress'>('ingress', 'egress'),
  ethertype: fc.constantFrom<'IPv4' | 'IPv6'>('IPv4', 'IPv6'),
  protoIndex: fc.nat(),
  portA: fc.integer({ min: 1, max: 65535 }),
  portB: fc.integer({ min: 1, max: 65535 }),
  icmpType: fc.option(fc.integer({ min: 0, max: 255 }), { nil: null }),
  icmpCode: fc.option(fc.integer({ min: 0, max: 255 }), { nil: null }),
  withPorts: fc.constantFrom(0, 1, 2, 3),
  remote: fc.constantFrom('none', 'prefix', 'any-prefix', 'group'),
  prefixLen: fc.integer({ min: 8, max: 32 }),
  groupIndex: fc.nat(),
  prefixHost: fc.integer({ min: 1, max: 250 }),
})

export const scenarioArbitrary: fc.Arbitrary<RawScenario> = fc
  .record({
    driver: fc.constantFrom<'iptables_hybrid' | 'iptables'>('iptables_hybrid', 'iptables'),
    ipset: fc.boolean(),
    groupIds: fc.uniqueArray(fc.uuid({ version: 4 }), {
      minLength: 1,
      maxLength: 4,
      selector: (u) => u.slice(0, 24),
    }),
    stateless: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    rules: fc.array(fc.array(ruleShape, { maxLength: 6 }), { minLength: 4, maxLength: 4 }),
    ruleIds: fc.uniqueArray(fc.uuid({ version: 4 }), { minLength: 24, maxLength: 24 }),
    portIds: fc.uniqueArray(fc.uuid({ version: 4 }), { maxLength: 5, selector: (u) => u.slice(0, 10) }),
    networks: fc.array(fc.uuid({ version: 4 }), { minLength: 2, maxLength: 2 }),
    portShapes: fc.array(
      fc.record({
        mac,
        v4: fc.uniqueArray(v4Addr, { maxLength: 2 }),
        v6: fc.uniqueArray(v6Addr, { maxLength: 1 }),
        pairs: fc.array(
          fc.record({
            ip: fc.oneof(
              v4Addr,
              v6Addr,
              fc.constant('10.9.0.0/24'),
              fc.constant('10.9.0.5/16'),
              fc.constant('2001:db8:9::/64'),
            ),
            mac: fc.option(mac, { nil: undefined }),
          }),
          { maxLength: 2 },
        ),
        groupMask: fc.integer({ min: 0, max: 15 }),
        kind: fc.constantFrom('vm', 'vm', 'vm', 'vm', 'trusted', 'nosec'),
        network: fc.integer({ min: 0, max: 1 }),
      }),
      { minLength: 5, maxLength: 5 },
    ),
    remoteMembers: fc.array(fc.oneof(v4Addr, v6Addr, fc.constant('172.16.0.0/12'), fc.constant('0.0.0.0/0')), {
      maxLength: 4,
    }),
  })
  .map((r) => {
    let ruleCounter = 0
    const groups = r.groupIds.map((id, gi) => {
      const seen = new Set<string>()
      const rules: RawRule[] = []
      for (const shape of r.rules[gi] ?? []) {
        const protocols = shape.ethertype === 'IPv4' ? V4_PROTOCOLS : V6_PROTOCOLS
        const protocol = protocols[shape.protoIndex % protocols.length] ?? null
        const p = protocol === null ? null : String(protocol).toLowerCase()
        let min: number | null = null
        let max: number | null = null
        if (p !== null && PORT_PROTOCOLS.has(p) && shape.withPorts > 0) {
          min = Math.min(shape.portA, shape.portB)
          max = shape.withPorts === 1 ? min : Math.max(shape.portA, shape.portB)
        } else if (p !== null && ICMP_PROTOCOLS.has(p) && shape.withPorts > 0) {
          min = shape.icmpType ?? 8
          max = shape.withPorts >= 2 ? shape.icmpCode : null
        }
        let prefix: string | null = null
        let remoteGroup: string | null = null
        if (shape.remote === 'prefix')
          prefix =
            shape.ethertype === 'IPv4'
              ? `192.168.${shape.prefixHost}.${shape.prefixHost}/${shape.prefixLen}`
              : `2001:db8:${shape.prefixHost.toString(16)}::/${shape.prefixLen + 32}`
        else if (shape.remote === 'any-prefix') prefix = shape.ethertype === 'IPv4' ? '0.0.0.0/0' : '::/0'
        else if (shape.remote === 'group') remoteGroup = r.groupIds[shape.groupIndex % r.groupIds.length] ?? null
        const rule: RawRule = {
          id: r.ruleIds[ruleCounter++ % r.ruleIds.length] ?? '',
          direction: shape.direction,
          ethertype: shape.ethertype,
          protocol,
          port_range_min: min,
          port_range_max: max,
          remote_ip_prefix: prefix,
          remote_group_id: remoteGroup,
        }
        // The API rejects duplicates (by canonical value); keep the first.
        const canon =
          p === null || p === 'any'
            ? null
            : shape.ethertype === 'IPv6' && (p === 'icmp' || p === 'icmpv6' || p === '1')
              ? 'ipv6-icmp'
              : p
        const full = min === 1 && max === 65535
        const protoKey = canon === null ? null : String(API_PROTOCOL_NUMBERS[canon] ?? canon)
        const prefixKey = prefix?.endsWith('/0') ? null : prefix
        const key = JSON.stringify([
          shape.direction,
          shape.ethertype,
          protoKey,
          full ? null : min,
          full ? null : max,
          prefixKey,
          remoteGroup,
        ])
        if (seen.has(key) || rules.some((x) => x.id === rule.id)) continue
        seen.add(key)
        rules.push(rule)
      }
      return { id, stateful: !r.stateless[gi], rules }
    })
    // Rule ids are unique across groups.
    const used = new Set<string>()
    for (const g of groups)
      g.rules = g.rules.filter((x) => {
        if (used.has(x.id)) return false
        used.add(x.id)
        return true
      })

    const ports = r.portIds.map((id, i) => {
      const shape = r.portShapes[i % r.portShapes.length] as (typeof r.portShapes)[number]
      const trusted = shape.kind === 'trusted'
      const nosec = shape.kind === 'nosec'
      let sgs = nosec ? [] : groups.filter((_, gi) => (shape.groupMask >> gi) & 1).map((g) => g.id)
      // A port never mixes stateful and stateless groups: keep the first group's kind.
      const first = groups.find((g) => g.id === sgs[0])
      if (first) sgs = sgs.filter((gid) => groups.find((g) => g.id === gid)?.stateful === first.stateful)
      return {
        id,
        mac_address: shape.mac,
        fixed_ips: [
          ...shape.v4.map((a) => a.replace(/\.\d+$/, `.${((i * 40 + Number(a.split('.')[3])) % 250) + 1}`)),
          ...shape.v6,
        ],
        allowed_address_pairs: nosec
          ? []
          : shape.pairs.map((p) =>
              p.mac === undefined ? { ip_address: p.ip } : { ip_address: p.ip, mac_address: p.mac },
            ),
        security_groups: sgs,
        port_security_enabled: !nosec,
        network_id: r.networks[shape.network] ?? '',
        ...(trusted ? { device_owner: 'network:dhcp' } : { device_owner: 'compute:nova' }),
      }
    })
    const members: Record<string, { IPv4: string[]; IPv6: string[] }> = {}
    for (const g of groups) {
      const m = { IPv4: [] as string[], IPv6: [] as string[] }
      for (const p of ports) {
        if (!p.security_groups.includes(g.id)) continue
        for (const a of [...p.fixed_ips, ...p.allowed_address_pairs.map((x) => x.ip_address)]) {
          const fam = a.includes(':') ? m.IPv6 : m.IPv4
          if (!fam.includes(a)) fam.push(a)
        }
      }
      for (const a of r.remoteMembers) {
        const fam = a.includes(':') ? m.IPv6 : m.IPv4
        if (!fam.includes(a)) fam.push(a)
      }
      members[g.id] = m
    }
    return {
      description: 'generated',
      config: { firewall_driver: r.driver, enable_ipset: r.ipset },
      security_groups: groups,
      members,
      ports,
    }
  })
