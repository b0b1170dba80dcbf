/**
 * Neutron's attribute converters and validators (neutron-lib `converters`/`validators`
 * and the security-group extension), with their exact error types and messages
 * (shared/spec/neutron-api.md §5, §6, §12).
 */
import ipaddr from 'ipaddr.js'
import { API_PROTOCOL_NUMBERS } from '../model/protocols.js'
import { type NeutronError, nerr, pyRepr, pyStr } from './neutron-error.js'

/** Protocol names the API accepts and their numbers (one table for the whole project). */
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = API_PROTOCOL_NUMBERS
const PROTOCOL_LIST =
  "[None, 'ah', 'dccp', 'egp', 'esp', 'gre', 'hopopt', 'icmp', 'igmp', 'ip', 'ipip', 'ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route', 'ospf', 'pgm', 'rsvp', 'sctp', 'tcp', 'udp', 'udplite', 'vrrp']"

export const IPV6_ONLY_PROTOCOLS = new Set([
  'ipv6-encap',
  'ipv6-frag',
  'ipv6-icmp',
  'icmpv6',
  'ipv6-nonxt',
  'ipv6-opts',
  'ipv6-route',
  '41',
  '44',
  '58',
  '59',
  '60',
  '43',
])

/** Protocol number of a stored protocol (name or decimal string); null = any. */
export function protocolNumber(p: string | null): number | null {
  if (p === null) return null
  const n = PROTOCOL_NUMBERS[p]
  return n ?? Number.parseInt(p, 10)
}

export function convertProtocol(v: unknown): string | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'string') {
    const lower = v.toLowerCase()
    if (Object.hasOwn(PROTOCOL_NUMBERS, lower)) return lower
    // Canonical decimal only: Neutron 21 answers "06" with a 500; we reject it as invalid.
    if (/^(0|[1-9][0-9]{0,2})$/.test(v) && Number(v) <= 255) return v
  } else if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255) {
    return String(v)
  }
  throw nerr(
    'SecurityGroupRuleInvalidProtocol',
    `Security group rule protocol ${pyStr(v)} not supported. Only protocol values ${PROTOCOL_LIST} and integer representations [0 to 255] are supported.`,
  )
}

/** Port value: null, or an integer 0..65535 (number, numeric string, float truncated). */
export function convertPort(v: unknown): number | null {
  if (v === null || v === undefined) return null
  let n: number | null = null
  if (typeof v === 'number' && Number.isFinite(v)) n = Math.trunc(v)
  else if (typeof v === 'string' && /^\s*[-+]?[0-9]+\s*$/.test(v)) n = Number.parseInt(v, 10)
  if (n === null || n < 0 || n > 65535)
    throw nerr('SecurityGroupInvalidPortValue', `Invalid value for port ${pyStr(v)}`)
  return n
}

export function convertEthertype(v: unknown): 'IPv4' | 'IPv6' {
  if (typeof v === 'string') {
    const l = v.toLowerCase()
    if (l === 'ipv4') return 'IPv4'
    if (l === 'ipv6') return 'IPv6'
  }
  throw nerr(
    'SecurityGroupRuleInvalidEtherType',
    `Security group rule for ethertype '${pyStr(v)}' not supported. Allowed values are ['IPv4', 'IPv6'].`,
  )
}

export interface ParsedPrefix {
  readonly family: 'IPv4' | 'IPv6'
  /** Canonical text, host bits kept: `10.0.0.1/24`, `2001:db8::/64`. */
  readonly text: string
  /** Network address form: `10.0.0.0/24`. */
  readonly network: string
}

/** Strict parse of an address or CIDR; null when invalid. */
export function parsePrefix(s: string): ParsedPrefix | null {
  const slash = s.indexOf('/')
  const addrText = slash < 0 ? s : s.slice(0, slash)
  const lenText = slash < 0 ? null : s.slice(slash + 1)
  let addr: ipaddr.IPv4 | ipaddr.IPv6
  if (ipaddr.IPv4.isValidFourPartDecimal(addrText)) addr = ipaddr.IPv4.parse(addrText)
  else if (addrText.includes(':') && ipaddr.IPv6.isValid(addrText) && !addrText.includes('%'))
    addr = ipaddr.IPv6.parse(addrText)
  else return null
  const family = addr.kind() === 'ipv4' ? 'IPv4' : 'IPv6'
  const max = family === 'IPv4' ? 32 : 128
  let len = max
  if (lenText !== null) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return null
    len = Number(lenText)
    if (len > max) return null
  }
  const addrCanon = addr.toString()
  const net = ipaddr.parse(
    ipaddr[family === 'IPv4' ? 'IPv4' : 'IPv6'].networkAddressFromCIDR(`${addrCanon}/${len}`).toString(),
  )
  return { family, text: `${addrCanon}/${len}`, network: `${net.toString()}/${len}` }
}

export function convertRemoteIpPrefix(v: unknown): ParsedPrefix | null {
  if (v === null || v === undefined || v === '') return null
  const p = typeof v === 'string' ? parsePrefix(v) : null
  if (!p) throw nerr('InvalidCIDR', `Invalid CIDR ${pyStr(v)} given as IP prefix.`)
  return p
}

/** Plain address (no prefix), canonical; null when invalid. */
export function parseAddress(s: unknown): { family: 'IPv4' | 'IPv6'; text: string } | null {
  if (typeof s !== 'string') return null
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) return { family: 'IPv4', text: ipaddr.IPv4.parse(s).toString() }
  if (s.includes(':') && !s.includes('%') && ipaddr.IPv6.isValid(s))
    return { family: 'IPv6', text: ipaddr.IPv6.parse(s).toString() }
  return null
}

export function convertBoolean(v: unknown): boolean {
  if (v === true || v === false) return v
  if (v === 1 || v === 0) return v === 1
  if (typeof v === 'string') {
    const l = v.toLowerCase()
    if (l === 'true' || l === '1') return true
    if (l === 'false' || l === '0') return false
  }
  throw nerr('InvalidInput', `Invalid input for operation: ${pyRepr(v)} cannot be converted to boolean.`)
}

// ---- validators: return a reason (→ "Invalid input for <attr>. Reason: <reason>.") or undefined

export function validateString(max?: number) {
  return (v: unknown): string | undefined => {
    if (typeof v !== 'string') return `'${pyStr(v)}' is not a valid string`
    if (max !== undefined && v.length > max) return `'${v}' exceeds maximum length of ${max}`
    return undefined
  }
}

export function validateStringOrNone(max?: number) {
  const inner = validateString(max)
  return (v: unknown) => (v === null ? undefined : inner(v))
}

const UUID_RE = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/
export const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID_RE.test(v)

export function validateUuid(v: unknown): string | undefined {
  return isUuid(v) ? undefined : `'${pyStr(v)}' is not a valid UUID`
}

export function validateUuidList(v: unknown): string | undefined {
  if (!Array.isArray(v)) return `'${pyStr(v)}' is not a list`
  for (const x of v) {
    const r = validateUuid(x)
    if (r) return r
  }
  const seen = new Set<string>()
  const dups: string[] = []
  for (const x of v as string[]) {
    if (seen.has(x) && !dups.includes(x)) dups.push(x)
    seen.add(x)
  }
  if (dups.length) return `Duplicate items in the list: '${dups.join(', ')}'`
  return undefined
}

export function validateValues(values: readonly string[]) {
  return (v: unknown) =>
    typeof v === 'string' && values.includes(v) ? undefined : `${pyStr(v)} is not in valid_values`
}

export function validateMac(v: unknown): string | undefined {
  return typeof v === 'string' && /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(v)
    ? undefined
    : `'${pyStr(v)}' is not a valid MAC address`
}

export function validateNonNegativeInt(v: unknown): string | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? undefined : `'${pyStr(v)}' is not an integer`
}

export function ensure(cond: boolean, err: () => NeutronError): void {
  if (!cond) throw err()
}
