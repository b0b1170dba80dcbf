/**
 * The benchmark host shape of the compiler issue: N dual-stack ports, each in 2 of 10
 * groups of 20 rules (a mix of prefix and remote-group rules), 20 remote members per
 * group. Deterministic (no randomness): the same N gives the same scenario.
 */
import type { HostConfig, HostState, Port, SecurityGroup, SecurityGroupRule } from '../src/model/types.js'

function uuid(kind: number, i: number): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0')
  return `${h(kind, 2)}${h(i, 6)}-${h(i % 65536, 4)}-4${h(kind, 3)}-8${h(i % 4096, 3)}-${h(i * 7919, 12).slice(-12)}`
}

export const BENCH_CONFIG: HostConfig = { firewall_driver: 'iptables_hybrid', enable_ipset: true }

export function groupId(g: number): string {
  return uuid(0xa0, g)
}

export function makeRule(g: number, j: number): SecurityGroupRule {
  const ethertype = j % 4 === 3 ? 'IPv6' : 'IPv4'
  const direction = j % 2 === 0 ? 'ingress' : 'egress'
  const remote = j % 3 === 0
  return {
    id: uuid(0xb0 + (g % 16), g * 1000 + j),
    direction,
    ethertype,
    protocol: j % 5 === 4 ? 'udp' : 'tcp',
    port_range_min: 1000 + j,
    port_range_max: j % 2 === 0 ? 1000 + j : 1100 + j,
    remote_ip_prefix: remote ? null : ethertype === 'IPv4' ? `10.${g}.${j}.0/24` : `2001:db8:${g}:${j}::/64`,
    remote_group_id: remote ? groupId((g + 1 + (j % 3)) % 10) : null,
  }
}

export function makeHost(ports: number, groups = 10, rulesPerGroup = 20, membersPerGroup = 20): HostState {
  const security_groups: SecurityGroup[] = []
  const members: Record<string, { IPv4: string[]; IPv6: string[] }> = {}
  for (let g = 0; g < groups; g++) {
    const rules: SecurityGroupRule[] = []
    for (let j = 0; j < rulesPerGroup; j++) rules.push(makeRule(g, j))
    security_groups.push({ id: groupId(g), stateful: true, rules })
    members[groupId(g)] = { IPv4: [], IPv6: [] }
  }
  const list: Port[] = []
  for (let i = 0; i < ports; i++) {
    const a = i % groups
    const b = (i * 3 + 1) % groups === a ? (a + 1) % groups : (i * 3 + 1) % groups
    const v4 = `10.${100 + Math.floor(i / 250)}.${i % 250}.${10 + (i % 200)}`
    const v6 = `2001:db8:100::${(i + 16).toString(16)}`
    list.push({
      id: uuid(0xc0, i),
      mac_address: `fa:16:3e:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
      fixed_ips: [v4, v6],
      allowed_address_pairs: [],
      security_groups: [groupId(a), groupId(b)],
      port_security_enabled: true,
      network_id: uuid(0xd0, 1),
    })
    for (const g of [a, b]) {
      const m = members[groupId(g)]
      if (m) {
        m.IPv4.push(v4)
        m.IPv6.push(v6)
      }
    }
  }
  // 20 remote members per group on other hosts.
  for (let g = 0; g < groups; g++) {
    const m = members[groupId(g)]
    if (!m) continue
    for (let k = 0; k < membersPerGroup; k++) {
      m.IPv4.push(`172.16.${g}.${k + 1}`)
      m.IPv6.push(`2001:db8:ffff:${g}::${(k + 1).toString(16)}`)
    }
  }
  return { security_groups, members, ports: list }
}

/** The same host with one more rule appended to group `g` (the n-th added one). */
export function addRule(state: HostState, g: number, n = 0): HostState {
  const groups = state.security_groups.map((sg, i) =>
    i === g
      ? {
          ...sg,
          rules: [
            ...sg.rules,
            { ...makeRule(g, 99), port_range_min: 20000 + n, port_range_max: 20000 + n, id: uuid(0xef, g * 10000 + n) },
          ],
        }
      : sg,
  )
  return { ...state, security_groups: groups }
}
