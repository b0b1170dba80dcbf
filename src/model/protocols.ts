/**
 * Security-group rule protocols as the Neutron API accepts and stores them.
 * Facts from neutron-lib 3.x constants (IP_PROTOCOL_MAP) and the API behaviour in
 * shared/spec/neutron-api.md; no lookup of the host's /etc/protocols.
 */
import type { Ethertype } from './types.js'

/** Protocol names the API accepts, with their numbers (neutron_lib IP_PROTOCOL_MAP). */
export const API_PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  ah: 51,
  dccp: 33,
  egp: 8,
  esp: 50,
  gre: 47,
  hopopt: 0,
  icmp: 1,
  igmp: 2,
  ip: 0,
  ipip: 4,
  'ipv6-encap': 41,
  'ipv6-frag': 44,
  'ipv6-icmp': 58,
  icmpv6: 58,
  'ipv6-nonxt': 59,
  'ipv6-opts': 60,
  'ipv6-route': 43,
  ospf: 89,
  pgm: 113,
  rsvp: 46,
  sctp: 132,
  tcp: 6,
  udp: 17,
  udplite: 136,
  vrrp: 112,
}

/** Protocols whose rules may carry a port range (by name; numbers are mapped first). */
export const PORT_PROTOCOL_NAMES: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp', 'dccp', 'udplite'])
const PORT_PROTOCOL_NUMBERS: ReadonlySet<number> = new Set([6, 17, 132, 33, 136])

/** Protocols (names and numbers) valid only with IPv6. */
const IPV6_ONLY = new Set(['ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route'])
const IPV6_ONLY_NUMBERS = new Set([41, 43, 44, 58, 59, 60])

export type ProtocolCheck =
  | { readonly ok: true; readonly value: string | null }
  | { readonly ok: false; readonly message: string }

/**
 * Validate a rule's protocol and return the value the API stores: lower-case name,
 * number as a decimal string, null for any. For IPv6, `icmp`/`icmpv6` become
 * `ipv6-icmp` and `1` becomes `58` (neutron-api.md, security-group-rule canonicalization).
 */
export function canonicalProtocol(protocol: unknown, ethertype: Ethertype): ProtocolCheck {
  if (protocol === null || protocol === undefined) return { ok: true, value: null }
  let text: string
  if (typeof protocol === 'number') {
    if (!Number.isInteger(protocol)) return { ok: false, message: `protocol ${protocol} is not an integer` }
    text = String(protocol)
  } else if (typeof protocol === 'string') text = protocol.trim().toLowerCase()
  else return { ok: false, message: 'protocol must be a string, an integer or null' }
  if (text === 'any' || text === '') return { ok: true, value: null }
  if (/^\d+$/.test(text)) {
    const n = Number(text)
    if (n > 255) return { ok: false, message: `protocol number ${text} is out of range 0-255` }
    if (ethertype === 'IPv4' && IPV6_ONLY_NUMBERS.has(n))
      return { ok: false, message: `protocol ${text} is only valid with ethertype IPv6` }
    if (ethertype === 'IPv6' && n === 1) return { ok: true, value: '58' }
    return { ok: true, value: String(n) }
  }
  if (!(text in API_PROTOCOL_NUMBERS))
    return { ok: false, message: `unknown protocol "${String(protocol)}" (a name such as tcp, udp, icmp, or 0-255)` }
  if (ethertype === 'IPv4' && IPV6_ONLY.has(text))
    return { ok: false, message: `protocol ${text} is only valid with ethertype IPv6` }
  if (ethertype === 'IPv6' && (text === 'icmp' || text === 'icmpv6')) return { ok: true, value: 'ipv6-icmp' }
  return { ok: true, value: text }
}

/** Whether a canonical protocol value takes a port range. */
export function takesPorts(value: string | null): boolean {
  if (value === null) return false
  if (/^\d+$/.test(value)) return PORT_PROTOCOL_NUMBERS.has(Number(value))
  return PORT_PROTOCOL_NAMES.has(value)
}

/** Whether a canonical protocol value is ICMP or ICMPv6 (port range = type/code). */
export function isIcmp(value: string | null): boolean {
  return value === 'icmp' || value === 'ipv6-icmp' || value === '1' || value === '58'
}
