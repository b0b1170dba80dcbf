/**
 * IP address helpers over ipaddr.js: parsing, canonical spelling (RFC 5952 for IPv6),
 * CIDR networks, EUI-64 link-local addresses, MAC validation.
 */
import ipaddr from 'ipaddr.js'

export type IpVersion = 4 | 6

export interface Cidr {
  readonly version: IpVersion
  /** Canonical spelling of the address as given (host bits kept). */
  readonly address: string
  /** Canonical spelling of the network address (host bits cleared). */
  readonly network: string
  readonly prefix: number
  /** Whether the input had an explicit `/prefix`. */
  readonly hadPrefix: boolean
}

function canonical(a: ipaddr.IPv4 | ipaddr.IPv6): string {
  return a.kind() === 'ipv6' ? (a as ipaddr.IPv6).toRFC5952String() : a.toString()
}

const cache = new Map<string, Cidr | null>()

/** Parse an address or CIDR in strict dotted/colon notation; null when invalid. */
export function parseCidr(text: string): Cidr | null {
  const hit = cache.get(text)
  if (hit !== undefined) return hit
  const result = parseCidrUncached(text)
  if (cache.size > 100_000) cache.clear()
  cache.set(text, result)
  return result
}

function parseCidrUncached(text: string): Cidr | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) return null
  const slash = text.indexOf('/')
  const addrPart = slash === -1 ? text : text.slice(0, slash)
  const prefixPart = slash === -1 ? null : text.slice(slash + 1)
  let addr: ipaddr.IPv4 | ipaddr.IPv6
  if (addrPart.includes(':')) {
    if (addrPart.includes('%') || !ipaddr.IPv6.isValid(addrPart)) return null
    addr = ipaddr.IPv6.parse(addrPart)
  } else if (ipaddr.IPv4.isValidFourPartDecimal(addrPart)) addr = ipaddr.IPv4.parse(addrPart)
  else return null
  const version: IpVersion = addr.kind() === 'ipv6' ? 6 : 4
  const max = version === 4 ? 32 : 128
  let prefix = max
  if (prefixPart !== null) {
    if (!/^\d{1,3}$/.test(prefixPart)) return null
    prefix = Number(prefixPart)
    if (prefix > max) return null
  }
  const bytes = addr.toByteArray()
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8))
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff)
  }
  const net = ipaddr.fromByteArray(bytes)
  return { version, address: canonical(addr), network: canonical(net), prefix, hadPrefix: prefixPart !== null }
}

export function ipVersion(text: string): IpVersion | null {
  return parseCidr(text)?.version ?? null
}

/** `a.b.c.d/32`-style CIDR of an address or CIDR, with host bits cleared (the kernel's spelling). */
export function toNetworkCidr(text: string): string {
  const c = parseCidr(text)
  if (!c) throw new Error(`bug: unvalidated address ${text}`)
  return `${c.network}/${c.prefix}`
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/

export function isMac(text: unknown): text is string {
  return typeof text === 'string' && MAC_RE.test(text)
}

const eui64Cache = new Map<string, string>()

/** The EUI-64 link-local address (fe80::/64) of a MAC, RFC 5952 spelling (memoized). */
export function eui64LinkLocal(mac: string): string {
  let hit = eui64Cache.get(mac)
  if (hit === undefined) {
    hit = makeEui64LinkLocal(mac)
    if (eui64Cache.size > 100_000) eui64Cache.clear()
    eui64Cache.set(mac, hit)
  }
  return hit
}

function makeEui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((h) => Number.parseInt(h, 16))
  const bytes = [
    0xfe,
    0x80,
    0,
    0,
    0,
    0,
    0,
    0,
    (b[0] ?? 0) ^ 0x02,
    b[1] ?? 0,
    b[2] ?? 0,
    0xff,
    0xfe,
    b[3] ?? 0,
    b[4] ?? 0,
  ]
  bytes.push(b[5] ?? 0)
  return canonical(ipaddr.fromByteArray(bytes))
}

/** Byte array of an address for sorting. */
export function addressBytes(text: string): number[] {
  return ipaddr.parse(text).toByteArray()
}

/** Compare two addresses (same family) numerically. */
export function compareAddresses(a: string, b: string): number {
  const x = addressBytes(a)
  const y = addressBytes(b)
  if (x.length !== y.length) return x.length - y.length
  for (let i = 0; i < x.length; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}
