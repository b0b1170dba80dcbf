/**
 * The one narrow interface through which sgwall touches a host's kernel.
 *
 * Everything that spawns a process or changes the kernel implements `Host`:
 * `RealHost` (real tools, optionally inside a network namespace) and `FakeHost`
 * (in-memory state for unit tests). Callers (agent/apply, host/plug, host/lab)
 * never build command lines themselves; they pass typed operations whose every
 * string is validated before it reaches a command line.
 */
import { AppError } from '../errors.js'
import type { Family } from '../netfilter/ir.js'

export type { Family }

/** One `conntrack -D` deletion: only these filters exist. */
export interface ConntrackDeletion {
  readonly family: 'ipv4' | 'ipv6'
  readonly protocol?: string
  readonly source?: string
  readonly destination?: string
  readonly zone?: number
}

/** A link operation, rendered by RealHost as one `ip -batch` line. */
export type LinkOp =
  | { readonly op: 'add-bridge'; readonly name: string; readonly mtu?: number }
  | {
      readonly op: 'add-veth'
      readonly name: string
      readonly peer: string
      readonly mtu?: number
      /** Create the peer end directly in this network namespace. */
      readonly peerNetns?: string
    }
  | {
      readonly op: 'set'
      readonly name: string
      readonly master?: string
      readonly mtu?: number
      readonly address?: string
      readonly up?: boolean
    }
  | { readonly op: 'delete'; readonly name: string }
  | { readonly op: 'addr-add'; readonly name: string; readonly cidr: string }
  /** An on-link default route through the device (`v6`: the IPv6 one). */
  | { readonly op: 'route-default'; readonly name: string; readonly v6: boolean }
  /** A tap device, as a hypervisor creates for a VM NIC. */
  | { readonly op: 'add-tap'; readonly name: string }

export interface LinkInfo {
  readonly name: string
  readonly master: string | null
  readonly mtu: number
  readonly up: boolean
  readonly address: string | null
  /** `bridge`, `veth`, `tun`, … (null when unknown). */
  readonly kind: string | null
}

export interface OvsPort {
  readonly name: string
  readonly externalIds: Readonly<Record<string, string>>
}

export interface Host {
  /** Human-readable: which namespace and backend. */
  readonly description: string
  /** `iptables-save` (or ip6tables-save) of all tables; with `-c` when counters is true. */
  iptablesSave(family: Family, options?: { counters?: boolean }): Promise<string>
  /** `iptables-restore --noflush` (or ip6tables-restore) of one document. */
  iptablesRestore(family: Family, doc: string): Promise<void>
  /**
   * Whether a big creation is cheaper as several restore commits (plan `createWaves`):
   * with the rule counts at which to split, or null (one document per family).
   */
  readonly restoreSplit?: { readonly minRules: number; readonly chunkRules: number } | null
  /** `ipset save` of every set. */
  ipsetSave(): Promise<string>
  /** `ipset restore` of a document (create/add/del/swap/destroy lines). */
  ipsetRestore(doc: string): Promise<void>
  /** Deletes the conntrack entries matching each filter, in one process. */
  conntrackDelete(batch: readonly ConntrackDeletion[]): Promise<void>
  /** Every link of the namespace. */
  listLinks(): Promise<LinkInfo[]>
  /** Link operations in order, stopping at the first failure. */
  linkBatch(ops: readonly LinkOp[]): Promise<void>
  /** Sets sysctls under net. (validated keys), in one process. */
  sysctlSet(entries: Readonly<Record<string, string>>): Promise<void>
  /** Adds (or updates: --may-exist) ports of an OVS bridge with their external-ids. */
  ovsAddPorts(bridge: string, ports: readonly OvsPort[]): Promise<void>
  /** Removes ports from an OVS bridge (--if-exists). */
  ovsDelPorts(bridge: string, ports: readonly string[]): Promise<void>
  /** The ports of an OVS bridge with their interface external-ids. */
  ovsListPorts(bridge: string): Promise<OvsPort[]>
}

/** A failed host command: what ran, how it ended and, for restore documents, the line that failed. */
export class HostCommandError extends AppError {
  constructor(
    readonly command: readonly string[],
    readonly exitStatus: number | null,
    readonly stderr: string,
    readonly failingLine: string | null,
    summary?: string,
  ) {
    const cmd = command.join(' ')
    super(
      'HostCommandFailed',
      summary ??
        `host command failed (exit ${exitStatus ?? 'signal'}): ${cmd}: ${stderr.trim().split('\n')[0] ?? ''}${failingLine === null ? '' : ` (line: ${failingLine})`}`,
      [stderr.trim(), failingLine === null ? '' : `failing line: ${failingLine}`].filter((s) => s !== '').join('\n'),
    )
  }
}

// ---- validation of every string that reaches a command line ----

const DEVICE = /^[A-Za-z0-9_.-]{1,15}$/
const NETNS = /^[A-Za-z0-9_.-]{1,64}$/
const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/
const SYSCTL_KEY = /^net\.[A-Za-z0-9_.-]{1,120}$/
const SYSCTL_VALUE = /^[0-9A-Za-z_-]{1,32}$/
const EXTERNAL_ID_KEY = /^[a-z][a-z0-9_-]{0,31}$/
const EXTERNAL_ID_VALUE = /^[A-Za-z0-9:._-]{0,128}$/
const PROTOCOL = /^[a-z0-9-]{1,16}$/

function invalid(field: string, value: unknown, problem: string): AppError {
  return new AppError('InvalidInput', `${field}: ${problem}: ${JSON.stringify(value)}`)
}

export function checkDevice(field: string, name: string): string {
  if (!DEVICE.test(name)) throw invalid(field, name, 'not a device name (1-15 of A-Z a-z 0-9 _ . -)')
  return name
}

export function checkNetns(field: string, name: string): string {
  if (!NETNS.test(name)) throw invalid(field, name, 'not a namespace name (1-64 of A-Z a-z 0-9 _ . -)')
  return name
}

export function checkMac(field: string, mac: string): string {
  if (!MAC.test(mac)) throw invalid(field, mac, 'not a MAC address')
  return mac
}

export function checkMtu(field: string, mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw invalid(field, mtu, 'MTU must be an integer 68-65535')
  return mtu
}

export function checkSysctl(key: string, value: string): void {
  if (!SYSCTL_KEY.test(key) || key.includes('..')) throw invalid('sysctl key', key, 'not a net.* sysctl')
  if (!SYSCTL_VALUE.test(value)) throw invalid('sysctl value', value, 'not a simple value')
}

export function checkExternalIds(field: string, ids: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(ids)) {
    if (!EXTERNAL_ID_KEY.test(k)) throw invalid(`${field} key`, k, 'not an external-id key')
    if (!EXTERNAL_ID_VALUE.test(v)) throw invalid(`${field}.${k}`, v, 'not an external-id value')
  }
}

/** An IPv4/IPv6 address or CIDR, strictly: digits, hex, dots, colons, one slash. */
export function checkAddress(field: string, value: string): string {
  const v4 = /^(\d{1,3})(\.\d{1,3}){3}(\/\d{1,2})?$/
  const v6 = /^[0-9a-fA-F:]{2,39}(\/\d{1,3})?$/
  const ok = v4.test(value)
    ? value
        .split('/')[0]!
        .split('.')
        .every((o) => Number(o) <= 255)
    : v6.test(value)
  if (!ok) throw invalid(field, value, 'not an IP address or CIDR')
  return value
}

export function checkConntrackDeletion(d: ConntrackDeletion, field = 'conntrack'): void {
  if (d.family !== 'ipv4' && d.family !== 'ipv6') throw invalid(`${field}.family`, d.family, 'must be ipv4 or ipv6')
  if (d.protocol !== undefined && !PROTOCOL.test(d.protocol)) throw invalid(`${field}.protocol`, d.protocol, 'bad')
  if (d.source !== undefined) checkAddress(`${field}.source`, d.source)
  if (d.destination !== undefined) checkAddress(`${field}.destination`, d.destination)
  if (d.zone !== undefined && (!Number.isInteger(d.zone) || d.zone < 0 || d.zone > 65535)) {
    throw invalid(`${field}.zone`, d.zone, 'zone must be 0-65535')
  }
}

/** The arguments of `conntrack -D` for one deletion (also a `conntrack -R` line). */
export function conntrackDeleteArgs(d: ConntrackDeletion): string[] {
  checkConntrackDeletion(d)
  const a = ['-D']
  if (d.protocol !== undefined) a.push('-p', d.protocol)
  a.push('-f', d.family)
  if (d.destination !== undefined) a.push('-d', d.destination)
  if (d.source !== undefined) a.push('-s', d.source)
  if (d.zone !== undefined) a.push('-w', String(d.zone))
  return a
}

/** Checks every string of a link operation. */
export function checkLinkOp(op: LinkOp): void {
  checkDevice(`${op.op}.name`, op.name)
  switch (op.op) {
    case 'add-bridge':
      if (op.mtu !== undefined) checkMtu('add-bridge.mtu', op.mtu)
      return
    case 'add-veth':
      checkDevice('add-veth.peer', op.peer)
      if (op.mtu !== undefined) checkMtu('add-veth.mtu', op.mtu)
      if (op.peerNetns !== undefined) checkNetns('add-veth.peerNetns', op.peerNetns)
      return
    case 'set':
      if (op.master !== undefined) checkDevice('set.master', op.master)
      if (op.mtu !== undefined) checkMtu('set.mtu', op.mtu)
      if (op.address !== undefined) checkMac('set.address', op.address)
      return
    case 'delete':
      return
    case 'addr-add':
      checkAddress('addr-add.cidr', op.cidr)
      return
    case 'route-default':
    case 'add-tap':
      return
    default:
      assertNever(op)
  }
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`)
}

/** One conntrack entry, as far as deletions filter on it. */
export interface ConntrackEntry {
  readonly family: 'ipv4' | 'ipv6'
  readonly protocol: number
  readonly source: string
  readonly destination: string
  readonly zone: number
}

/** Parse `conntrack -L -o extended` output (original-direction tuple and zone). */
export function parseConntrackList(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = []
  for (const line of text.split('\n')) {
    const m = /^(ipv4|ipv6)\s+\d+\s+\S+\s+(\d+)\s/.exec(line)
    if (!m) continue
    const src = /\bsrc=(\S+)/.exec(line)
    const dst = /\bdst=(\S+)/.exec(line)
    const zone = /\bzone=(\d+)/.exec(line)
    if (!src || !dst) continue
    out.push({
      family: m[1] as 'ipv4' | 'ipv6',
      protocol: Number(m[2]),
      source: canonicalAddress(src[1]!),
      destination: canonicalAddress(dst[1]!),
      zone: zone ? Number(zone[1]) : 0,
    })
  }
  return out
}

const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  icmp: 1,
  tcp: 6,
  udp: 17,
  dccp: 33,
  gre: 47,
  'ipv6-icmp': 58,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
}

function canonicalAddress(a: string): string {
  return a.includes(':') ? canonicalV6(a) : a
}

function canonicalV6(a: string): string {
  // expand then compress per RFC 5952, enough to compare conntrack's and our spelling
  const [head = '', tail = ''] = a.toLowerCase().split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === '' ? [] : tail.split(':')
  const groups = a.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
  return groups.map((g) => g.replace(/^0+(?=.)/, '')).join(':')
}

/**
 * Whether a deletion filter may match an entry. Unknown protocol names match
 * conservatively (the filter then runs and the kernel decides).
 */
export function conntrackFilterMatches(d: ConntrackDeletion, e: ConntrackEntry): boolean {
  if (d.family !== e.family) return false
  if (d.zone !== undefined && d.zone !== e.zone) return false
  if (d.source !== undefined && canonicalAddress(d.source) !== e.source) return false
  if (d.destination !== undefined && canonicalAddress(d.destination) !== e.destination) return false
  if (d.protocol !== undefined) {
    const n = /^\d+$/.test(d.protocol) ? Number(d.protocol) : PROTOCOL_NUMBERS[d.protocol]
    if (n !== undefined && n !== e.protocol) return false
  }
  return true
}
