/**
 * ICMP / ICMPv6 type names as iptables knows them (`iptables -p icmp -h`,
 * `ip6tables -p ipv6-icmp -h`): name → type and code range. `iptables -L`
 * without -n prints a name when a rule's type and code range equal an entry.
 */

export interface IcmpName {
  readonly name: string
  readonly type: number
  readonly codeMin: number
  readonly codeMax: number
}

const t = (name: string, type: number, codeMin = 0, codeMax = 255): IcmpName => ({ name, type, codeMin, codeMax })
const c = (name: string, type: number, code: number): IcmpName => ({ name, type, codeMin: code, codeMax: code })

export const ICMP_NAMES: readonly IcmpName[] = [
  t('any', 255),
  t('echo-reply', 0),
  t('pong', 0),
  t('destination-unreachable', 3),
  c('network-unreachable', 3, 0),
  c('host-unreachable', 3, 1),
  c('protocol-unreachable', 3, 2),
  c('port-unreachable', 3, 3),
  c('fragmentation-needed', 3, 4),
  c('source-route-failed', 3, 5),
  c('network-unknown', 3, 6),
  c('host-unknown', 3, 7),
  c('network-prohibited', 3, 9),
  c('host-prohibited', 3, 10),
  c('TOS-network-unreachable', 3, 11),
  c('TOS-host-unreachable', 3, 12),
  c('communication-prohibited', 3, 13),
  c('host-precedence-violation', 3, 14),
  c('precedence-cutoff', 3, 15),
  t('source-quench', 4),
  t('redirect', 5),
  c('network-redirect', 5, 0),
  c('host-redirect', 5, 1),
  c('TOS-network-redirect', 5, 2),
  c('TOS-host-redirect', 5, 3),
  t('echo-request', 8),
  t('ping', 8),
  t('router-advertisement', 9),
  t('router-solicitation', 10),
  t('time-exceeded', 11),
  t('ttl-exceeded', 11),
  c('ttl-zero-during-transit', 11, 0),
  c('ttl-zero-during-reassembly', 11, 1),
  t('parameter-problem', 12),
  c('ip-header-bad', 12, 0),
  c('required-option-missing', 12, 1),
  t('timestamp-request', 13),
  t('timestamp-reply', 14),
  t('address-mask-request', 17),
  t('address-mask-reply', 18),
]

export const ICMPV6_NAMES: readonly IcmpName[] = [
  t('destination-unreachable', 1),
  c('no-route', 1, 0),
  c('communication-prohibited', 1, 1),
  c('beyond-scope', 1, 2),
  c('address-unreachable', 1, 3),
  c('port-unreachable', 1, 4),
  c('failed-policy', 1, 5),
  c('reject-route', 1, 6),
  t('packet-too-big', 2),
  t('time-exceeded', 3),
  t('ttl-exceeded', 3),
  c('ttl-zero-during-transit', 3, 0),
  c('ttl-zero-during-reassembly', 3, 1),
  t('parameter-problem', 4),
  c('bad-header', 4, 0),
  c('unknown-header-type', 4, 1),
  c('unknown-option', 4, 2),
  t('echo-request', 128),
  t('ping', 128),
  t('echo-reply', 129),
  t('pong', 129),
  t('router-solicitation', 133),
  t('router-advertisement', 134),
  t('neighbour-solicitation', 135),
  t('neighbor-solicitation', 135),
  t('neighbour-advertisement', 136),
  t('neighbor-advertisement', 136),
  t('redirect', 137),
]

/**
 * The `--icmp-type` / `--icmpv6-type` argument iptables-save prints for a type and
 * code range: `T` (any code), `T/C`, or `any` (IPv4 type 255, any code).
 */
export function icmpTypeArg(family: 4 | 6, type: number, codeMin: number, codeMax: number): string {
  if (family === 4 && type === 255 && codeMin === 0 && codeMax === 255) return 'any'
  if (codeMin === 0 && codeMax === 255) return String(type)
  return codeMin === codeMax ? `${type}/${codeMin}` : `${type}/${codeMin}:${codeMax}`
}

/** Parse an `--icmp-type` argument (number, `T/C`, or a name) into type and code range. */
export function parseIcmpTypeArg(
  family: 4 | 6,
  arg: string,
): { type: number; codeMin: number; codeMax: number } | null {
  const m = /^(\d{1,3})(?:\/(\d{1,3})(?::(\d{1,3}))?)?$/.exec(arg)
  if (m) {
    const type = Number(m[1])
    const codeMin = m[2] !== undefined ? Number(m[2]) : 0
    const codeMax = m[3] !== undefined ? Number(m[3]) : m[2] !== undefined ? codeMin : 255
    if (type > 255 || codeMin > 255 || codeMax > 255 || codeMin > codeMax) return null
    return { type, codeMin, codeMax }
  }
  const named = (family === 4 ? ICMP_NAMES : ICMPV6_NAMES).find((n) => n.name === arg)
  return named ? { type: named.type, codeMin: named.codeMin, codeMax: named.codeMax } : null
}
