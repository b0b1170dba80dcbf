/**
 * For a packet a port chain dropped: the security-group rule that would let it
 * through (or, for the anti-spoofing chain, what to change instead). Pure.
 */
import type { Port } from '../model/types.js'
import { chainRole } from '../netfilter/explain.js'
import type { Family } from '../netfilter/ir.js'
import { formatAddr, type Packet, type TraceResult } from '../netfilter/trace.js'

export interface RuleSuggestion {
  readonly kind: 'security-group-rule'
  readonly port_id_prefix: string
  readonly security_group_id: string | null
  readonly rule: {
    readonly direction: 'ingress' | 'egress'
    readonly ethertype: 'IPv4' | 'IPv6'
    readonly protocol: string | null
    readonly port_range_min: number | null
    readonly port_range_max: number | null
    readonly remote_ip_prefix: string
  }
  readonly text: string
}

export interface SpoofSuggestion {
  readonly kind: 'anti-spoofing'
  readonly port_id_prefix: string
  readonly text: string
}

export type Suggestion = RuleSuggestion | SpoofSuggestion

const PROTO_NAMES: Readonly<Record<number, string>> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  58: 'ipv6-icmp',
  132: 'sctp',
  33: 'dccp',
}

export function suggestFix(
  trace: TraceResult,
  packet: Packet,
  family: Family,
  portsByPrefix: (prefix: string) => Port | undefined,
): Suggestion | null {
  if (trace.verdict !== 'DROP') return null
  const hop = trace.hops.at(-1)
  const d = hop?.decided_by
  if (!d) return null
  const chains = [...d.via]
  // The innermost port chain on the call stack: ingress, egress or spoofing.
  for (let i = chains.length - 1; i >= 0; i--) {
    const { role, portPrefix } = chainRole(d.table, chains[i]!)
    if (!portPrefix) continue
    if (role === 'anti-spoofing') {
      return {
        kind: 'anti-spoofing',
        port_id_prefix: portPrefix,
        text: `source ${formatAddr(packet.src)} / MAC ${packet.srcMac ?? '?'} is not an IP/MAC pair of port ${portPrefix}: add it as an allowed address pair of the port (a security-group rule cannot allow it)`,
      }
    }
    if (role !== 'port-ingress' && role !== 'port-egress') continue
    const lastRule = hop?.steps.filter((s) => s.matched).at(-1)
    if (lastRule?.rule.includes('--state INVALID') || lastRule?.rule.includes('--ctstate INVALID')) return null
    const direction = role === 'port-ingress' ? 'ingress' : 'egress'
    const remote = formatAddr(direction === 'ingress' ? packet.src : packet.dst)
    const protocol = PROTO_NAMES[packet.proto] ?? String(packet.proto)
    const ported = packet.proto === 6 || packet.proto === 17 || packet.proto === 132 || packet.proto === 33
    const icmp = packet.proto === 1 || packet.proto === 58
    const min = ported ? (packet.dport ?? null) : icmp ? (packet.icmpType ?? null) : null
    const max = ported ? (packet.dport ?? null) : icmp ? (packet.icmpCode ?? null) : null
    const port = portsByPrefix(portPrefix)
    const group = port?.security_groups[0] ?? null
    const rule = {
      direction,
      ethertype: family === 4 ? 'IPv4' : 'IPv6',
      protocol,
      port_range_min: min,
      port_range_max: max,
      remote_ip_prefix: `${remote}/${family === 4 ? 32 : 128}`,
    } as const
    const what = ported
      ? `${protocol} port ${min}`
      : icmp
        ? `${protocol} type ${min}${max !== null ? ` code ${max}` : ''}`
        : protocol
    return {
      kind: 'security-group-rule',
      port_id_prefix: portPrefix,
      security_group_id: group,
      rule,
      text: `add an ${direction} ${rule.ethertype} rule for ${what} with remote_ip_prefix ${rule.remote_ip_prefix}${group ? ` to security group ${group}` : ''}`,
    }
  }
  return null
}
