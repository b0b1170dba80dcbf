/** Address arithmetic for subnets and fixed-IP allocation (IPv4 and IPv6 as bigint). */
import ipaddr from 'ipaddr.js'

export function toBig(addr: string): bigint {
  const bytes = ipaddr.parse(addr).toByteArray()
  let n = 0n
  for (const x of bytes) n = (n << 8n) | BigInt(x)
  return n
}

export function fromBig(n: bigint, version: 4 | 6): string {
  const len = version === 4 ? 4 : 16
  const bytes: number[] = []
  let v = n
  for (let k = 0; k < len; k++) {
    bytes.unshift(Number(v & 255n))
    v >>= 8n
  }
  return ipaddr.fromByteArray(bytes).toString()
}

export interface Cidr {
  readonly version: 4 | 6
  readonly network: bigint
  readonly prefix: number
  readonly first: bigint
  readonly last: bigint
  readonly text: string
}

export function parseCidr(text: string): Cidr | null {
  try {
    if (!ipaddr.isValidCIDR(text)) return null
    const [addr, len] = ipaddr.parseCIDR(text)
    if (addr.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(text.split('/')[0] ?? '')) return null
    const version = addr.kind() === 'ipv4' ? 4 : 6
    const bits = version === 4 ? 32 : 128
    const size = 1n << BigInt(bits - len)
    const network = (toBig(addr.toString()) / size) * size
    return {
      version,
      network,
      prefix: len,
      first: network,
      last: network + size - 1n,
      text: `${fromBig(network, version)}/${len}`,
    }
  } catch {
    return null
  }
}

export function contains(c: Cidr, addr: string): boolean {
  try {
    const a = ipaddr.parse(addr)
    if ((a.kind() === 'ipv4' ? 4 : 6) !== c.version) return false
    const n = toBig(addr)
    return n >= c.first && n <= c.last
  } catch {
    return false
  }
}
