/**
 * The fixed rules of Neutron's iptables firewall and the rendering of one
 * security-group rule, as IR. Spelling is the kernel's iptables-save view
 * (neutron-behaviour.md sections 3-5 and "Kernel vs. Neutron spelling").
 */
import { eui64LinkLocal, parseCidr } from '../model/addresses.js'
import type { Direction, Ethertype, SecurityGroupRule } from '../model/types.js'
import type { Match, Option, Rule, Target } from '../netfilter/ir.js'
import { jump, match, opt, rule } from '../netfilter/ir.js'
import {
  iptablesProtocolName,
  kernelProtocolName,
  MULTIPORT_ONLY_PROTOCOLS,
  PORT_PROTOCOLS,
  PROTOCOL_MATCH_MODULE,
} from './protocols.js'

/** Neutron's rule comments (neutron/agent/linux/iptables_comments.py). */
export const COMMENTS = {
  VM_INT_SG: 'Direct traffic from the VM interface to the security group chain.',
  SG_TO_VM_SG: 'Jump to the VM specific chain.',
  INPUT_TO_SG: 'Direct incoming traffic from VM to the security group chain.',
  PAIR_ALLOW: 'Allow traffic from defined IP/MAC pairs.',
  PAIR_DROP: 'Drop traffic without an IP/MAC allow rule.',
  DHCP_CLIENT: 'Allow DHCP client traffic.',
  DHCP_SPOOF: 'Prevent DHCP Spoofing by VM.',
  UNMATCHED: 'Send unmatched traffic to the fallback chain.',
  INVALID_DROP:
    'Drop packets that appear related to an existing connection (e.g. TCP ACK/FIN) but do not have an entry in conntrack.',
  ALLOW_ASSOC: 'Direct packets associated with a known session to the RETURN chain.',
  PORT_SEC_ACCEPT: 'Accept all packets when port security is disabled.',
  TRUSTED_ACCEPT: 'Accept all packets when port is trusted.',
  IPV6_RA_DROP: 'Drop IPv6 Router Advts from VM Instance.',
  IPV6_ICMP_ALLOW: 'Allow IPv6 ICMP traffic.',
  FALLBACK_DROP: 'Default drop rule for unmatched traffic.',
} as const

export function comment(text: string): Match {
  return match('comment', opt('--comment', text))
}

const RETURN: Target = jump('RETURN')
const DROP: Target = jump('DROP')
const ACCEPT: Target = jump('ACCEPT')

export function returnRule(matches: readonly Match[]): Rule {
  return rule(matches, RETURN)
}

function core(options: { s?: string; d?: string; i?: string; p?: string }): Match {
  const o: Option[] = []
  if (options.s !== undefined) o.push(opt('-s', options.s))
  if (options.d !== undefined) o.push(opt('-d', options.d))
  if (options.i !== undefined) o.push(opt('-i', options.i))
  if (options.p !== undefined) o.push(opt('-p', options.p))
  return match(null, ...o)
}

function udpPorts(sport: number, dport: number): Match {
  return match('udp', opt('--sport', String(sport)), opt('--dport', String(dport)))
}

function icmp6Type(type: number): Match {
  return match('icmp6', opt('--icmpv6-type', String(type)))
}

export function physdev(direction: 'in' | 'out', device: string, bridged: boolean): Match {
  const options = [opt(`--physdev-${direction}`, device)]
  if (bridged) options.push(opt('--physdev-is-bridged'))
  return match('physdev', ...options)
}

// ---- fixed rules, built once ----

export const ESTABLISHED_RULE: Rule = rule(
  [match('state', opt('--state', 'RELATED,ESTABLISHED')), comment(COMMENTS.ALLOW_ASSOC)],
  RETURN,
)
export const INVALID_RULE: Rule = rule(
  [match('state', opt('--state', 'INVALID')), comment(COMMENTS.INVALID_DROP)],
  DROP,
)
export function fallbackJump(fallbackChain: string): Rule {
  return rule([comment(COMMENTS.UNMATCHED)], jump(fallbackChain))
}

/** IPv6 ingress: MLD query, neighbour solicitation and advertisement (ICMPV6_ALLOWED_INGRESS_TYPES). */
export const INGRESS_ICMP6_RULES: readonly Rule[] = [130, 135, 136].map((t) =>
  returnRule([core({ p: 'ipv6-icmp' }), icmp6Type(t)]),
)

export const V4_DHCP_DISCOVER_RULE: Rule = rule(
  [core({ s: '0.0.0.0/32', d: '255.255.255.255/32', p: 'udp' }), udpPorts(68, 67), comment(COMMENTS.DHCP_CLIENT)],
  RETURN,
)
export const V4_DHCP_CLIENT_RULE: Rule = rule(
  [core({ p: 'udp' }), udpPorts(68, 67), comment(COMMENTS.DHCP_CLIENT)],
  RETURN,
)
export const V4_DHCP_SPOOF_RULE: Rule = rule([core({ p: 'udp' }), udpPorts(67, 68), comment(COMMENTS.DHCP_SPOOF)], DROP)

/** IPv6 egress from the unspecified address: MLD report, NS (DAD), MLDv2 report (ICMPV6_ALLOWED_UNSPEC_ADDR_TYPES). */
export const V6_UNSPEC_RULES: readonly Rule[] = [131, 135, 143].map((t) =>
  rule(
    [core({ s: '::/128', d: 'ff02::/16', p: 'ipv6-icmp' }), icmp6Type(t), comment(COMMENTS.IPV6_ICMP_ALLOW)],
    RETURN,
  ),
)
export const V6_RA_DROP_RULE: Rule = rule(
  [core({ p: 'ipv6-icmp' }), icmp6Type(134), comment(COMMENTS.IPV6_RA_DROP)],
  DROP,
)
export const V6_ICMP_ALLOW_RULE: Rule = rule([core({ p: 'ipv6-icmp' }), comment(COMMENTS.IPV6_ICMP_ALLOW)], RETURN)
export const V6_DHCP_CLIENT_RULE: Rule = rule(
  [core({ p: 'udp' }), udpPorts(546, 547), comment(COMMENTS.DHCP_CLIENT)],
  RETURN,
)
export const V6_DHCP_SPOOF_RULE: Rule = rule(
  [core({ p: 'udp' }), udpPorts(547, 546), comment(COMMENTS.DHCP_SPOOF)],
  DROP,
)

/** Provider rule: router advertisements into the VM, from any source. */
export const V6_RA_IN_RULE: Rule = returnRule([core({ p: 'ipv6-icmp' }), icmp6Type(134)])

export function v4DhcpReplyRule(dest: string): Rule {
  return returnRule([core({ d: dest, p: 'udp' }), udpPorts(67, 68)])
}
export function v6DhcpReplyRule(dest: string): Rule {
  return returnRule([core({ d: dest, p: 'udp' }), udpPorts(547, 546)])
}
export const V4_DHCP_BROADCAST_RULE: Rule = v4DhcpReplyRule('255.255.255.255/32')
export const V6_DHCP_LINK_LOCAL_RULE: Rule = v6DhcpReplyRule('fe80::/64')

export function spoofAllowRule(cidr: string | null, mac: string): Rule {
  const matches: Match[] = []
  if (cidr !== null) matches.push(core({ s: cidr }))
  matches.push(match('mac', opt('--mac-source', mac.toUpperCase())), comment(COMMENTS.PAIR_ALLOW))
  return rule(matches, RETURN)
}
export const SPOOF_DROP_RULE: Rule = rule([comment(COMMENTS.PAIR_DROP)], DROP)
export const FALLBACK_DROP_RULE: Rule = rule([comment(COMMENTS.FALLBACK_DROP)], DROP)

export function jumpRule(chain: string): Rule {
  return rule([], jump(chain))
}

export function physdevRule(direction: 'in' | 'out', device: string, text: string, target: string): Rule {
  return rule([physdev(direction, device, true), comment(text)], target === 'ACCEPT' ? ACCEPT : jump(target))
}

/** Raw-table rule: `[-m physdev --physdev-in DEV | -i DEV] -m comment … -j CT --zone Z | --notrack`. */
export function zoneRule(kind: 'physdev' | 'iface', device: string, text: string, zone: number | null): Rule {
  const first = kind === 'physdev' ? match('physdev', opt('--physdev-in', device)) : core({ i: device })
  const target = zone === null ? jump('CT', opt('--notrack')) : jump('CT', opt('--zone', String(zone)))
  return rule([first, comment(text)], target)
}

// ---- security-group rules ----

/** `a.b.c.d/n` with host bits cleared, or null for a /0 (no -s/-d at all). */
function prefixArg(prefix: string): string | null {
  const c = parseCidr(prefix)
  if (!c) throw new Error(`bug: unvalidated prefix ${prefix}`)
  if (c.prefix === 0) return null
  return `${c.network}/${c.prefix}`
}

/** Protocol, protocol match and port/ICMP options of a rule (Neutron's _generate_protocol_and_port_args). */
function protocolMatches(r: SecurityGroupRule, prefixOptions: Option[]): Match[] {
  const name = iptablesProtocolName(r.protocol === null ? null : String(r.protocol))
  const kernelName = kernelProtocolName(name)
  const coreOptions = [...prefixOptions]
  if (kernelName !== null) coreOptions.push(opt('-p', kernelName))
  const out: Match[] = []
  if (coreOptions.length > 0) out.push(match(null, ...coreOptions))
  const min = r.port_range_min
  const max = r.port_range_max
  if (name === null || min === null) return out
  const module = PROTOCOL_MATCH_MODULE[name]
  if (name === 'icmp' || name === 'ipv6-icmp') {
    let value = max === null ? String(min) : `${min}/${max}`
    // The kernel prints ICMP type 255 without code as "any" (IPv4 only).
    if (name === 'icmp' && min === 255 && max === null) value = 'any'
    out.push(match(module ?? null, opt(name === 'icmp' ? '--icmp-type' : '--icmpv6-type', value)))
    return out
  }
  if (!PORT_PROTOCOLS.has(name)) {
    if (module) out.push(match(module))
    return out
  }
  const hi = max ?? min
  const options: Match[] = []
  if (min === hi && !MULTIPORT_ONLY_PROTOCOLS.has(name)) {
    out.push(match(module ?? null, opt('--dport', String(min))))
    return out
  }
  if (module) options.push(match(module))
  options.push(match('multiport', opt('--dports', min === hi ? String(min) : `${min}:${hi}`)))
  return out.concat(options)
}

const IPSET_DIRECTION: Record<Direction, string> = { ingress: 'src', egress: 'dst' }

/** A rule with a remote prefix (or none): `[-s|-d PREFIX] [-p …] [ports] -j RETURN`. */
export function plainSgRule(r: SecurityGroupRule, remotePrefix: string | null): Rule {
  const prefixOptions: Option[] = []
  if (remotePrefix !== null) {
    const arg = prefixArg(remotePrefix)
    if (arg !== null) prefixOptions.push(opt(r.direction === 'ingress' ? '-s' : '-d', arg))
  }
  return returnRule(protocolMatches(r, prefixOptions))
}

/** A remote-group rule with ipsets: `[-p …] [ports] -m set --match-set NAME src|dst -j RETURN`. */
export function ipsetSgRule(r: SecurityGroupRule, setName: string): Rule {
  const matches = protocolMatches(r, [])
  matches.push(match('set', opt('--match-set', setName, IPSET_DIRECTION[r.direction])))
  return returnRule(matches)
}

export function familyOf(ethertype: Ethertype): 4 | 6 {
  return ethertype === 'IPv4' ? 4 : 6
}

export { eui64LinkLocal }
