/**
 * A netfilter simulator: follows one packet through the raw PREROUTING and
 * filter FORWARD hooks of each bridge it crosses, with iptables' semantics
 * (jumps and RETURN to the caller, goto, end-of-chain return, policies,
 * non-terminating CT/LOG targets) and conntrack per zone.
 *
 * The ruleset is compiled once (`compileRuleset`) into chains of closures over
 * pre-parsed addresses, ports and sets; a trace walks that structure and never
 * re-reads rule text. A match or target the simulator does not know makes the
 * trace stop with that rule named (verdict UNKNOWN): it never guesses.
 *
 * Knows nothing about Neutron: the path (which bridges, which physdev ports)
 * comes from the caller.
 */

import { parseIcmpTypeArg } from './icmp-names.js'
import type { Family, Option, Rule, Ruleset } from './ir.js'
import { PROTOCOL_NAMES } from './names-data.js'
import { renderRuleBody } from './render.js'

// ---- packets and addresses ----

/** An address as 32-bit words: 1 for IPv4, 4 for IPv6. */
export type Addr = readonly number[]

export type CtState = 'NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID' | 'UNTRACKED'

export interface Packet {
  readonly family: Family
  readonly src: Addr
  readonly dst: Addr
  /** IP protocol number (6 tcp, 17 udp, 1 icmp, 58 ipv6-icmp, …). */
  readonly proto: number
  readonly sport?: number
  readonly dport?: number
  readonly icmpType?: number
  readonly icmpCode?: number
  /** TCP flags byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32). Default SYN. */
  readonly tcpFlags?: number
  /** Lower-case `aa:bb:…`. */
  readonly srcMac?: string
  readonly fragment?: boolean
  /** Conntrack state of the packet when no conntrack entry says otherwise. Default NEW. */
  readonly state?: CtState
}

/** One crossing of a bridge: raw PREROUTING then filter FORWARD run once. */
export interface Pass {
  readonly bridge: string
  readonly physdevIn: string | null
  readonly physdevOut: string | null
}

export function parseAddr(text: string): { addr: Addr; family: Family } | null {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split('.').map(Number)
    if (parts.some((p) => p > 255)) return null
    return { addr: [((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0], family: 4 }
  }
  if (!text.includes(':') || !/^[0-9a-fA-F:.]+$/.test(text)) return null
  let head: string[]
  let tail: string[]
  const dbl = text.indexOf('::')
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) return null
    head = text.slice(0, dbl) === '' ? [] : text.slice(0, dbl).split(':')
    tail = text.slice(dbl + 2) === '' ? [] : text.slice(dbl + 2).split(':')
  } else {
    head = text.split(':')
    tail = []
  }
  const groups: number[] = []
  const pushGroups = (list: string[], out: number[]): boolean => {
    for (const [i, g] of list.entries()) {
      if (g.includes('.') && i === list.length - 1) {
        const v4 = parseAddr(g)
        if (v4?.family !== 4) return false
        out.push(v4.addr[0]! >>> 16, v4.addr[0]! & 0xffff)
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false
        out.push(Number.parseInt(g, 16))
      }
    }
    return true
  }
  const h: number[] = []
  const t: number[] = []
  if (!pushGroups(head, h) || !pushGroups(tail, t)) return null
  const missing = 8 - h.length - t.length
  if (dbl < 0 ? missing !== 0 : missing < 1) return null
  groups.push(...h, ...new Array<number>(dbl < 0 ? 0 : missing).fill(0), ...t)
  const words: number[] = []
  for (let i = 0; i < 8; i += 2) words.push(((groups[i]! << 16) | groups[i + 1]!) >>> 0)
  return { addr: words, family: 6 }
}

export function formatAddr(a: Addr): string {
  if (a.length === 1) {
    const v = a[0]!
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
  }
  const groups: string[] = []
  for (const w of a) groups.push((w >>> 16).toString(16), (w & 0xffff).toString(16))
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  if (best < 0) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
}

export interface Prefix {
  readonly words: Addr
  readonly masks: readonly number[]
}

function maskWords(bits: number, n: number): number[] {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const b = Math.max(0, Math.min(32, bits - i * 32))
    out.push(b === 0 ? 0 : (0xffffffff << (32 - b)) >>> 0)
  }
  return out
}

/** `10.0.0.0/8`, `10.0.0.1`, `192.168.0.0/255.255.0.255`, `2001:db8::/32`. */
export function parsePrefix(text: string): Prefix | null {
  const [a, m] = text.split('/', 2) as [string, string | undefined]
  const p = parseAddr(a)
  if (!p) return null
  const n = p.addr.length
  let masks: number[]
  if (m === undefined) masks = maskWords(n * 32, n)
  else if (/^\d{1,3}$/.test(m) && Number(m) <= n * 32) masks = maskWords(Number(m), n)
  else {
    const mm = parseAddr(m)
    if (!mm || mm.family !== p.family) return null
    masks = [...mm.addr]
  }
  return { words: p.addr.map((w, i) => (w & masks[i]!) >>> 0), masks }
}

export function inPrefix(a: Addr, p: Prefix): boolean {
  if (a.length !== p.words.length) return false
  for (let i = 0; i < a.length; i++) if ((a[i]! & p.masks[i]!) >>> 0 !== p.words[i]) return false
  return true
}

function compareAddr(a: Addr, b: Addr): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  return 0
}

// ---- compiled ruleset ----

/** Why a match cannot be evaluated; the trace stops at the rule. */
export const UNKNOWN = 2
export type Tri = boolean | typeof UNKNOWN

export interface EvalContext {
  packet: Packet
  pass: Pass
  hook: 'PREROUTING' | 'FORWARD'
  state: CtState
}

export type Matcher = (c: EvalContext) => Tri

export type TargetKind =
  | { kind: 'accept' }
  | { kind: 'drop'; reject: boolean }
  | { kind: 'return' }
  | { kind: 'jump'; chain: string }
  | { kind: 'goto'; chain: string }
  | { kind: 'zone'; zone: number }
  | { kind: 'notrack' }
  | { kind: 'continue' }
  | { kind: 'none' }
  | { kind: 'unknown'; reason: string }

interface CompiledRule {
  readonly num: number
  readonly text: string
  readonly matchers: readonly Matcher[]
  /** First reason a matcher of this rule cannot be evaluated, reported when it is reached. */
  readonly unknownReasons: readonly (string | null)[]
  readonly target: TargetKind
}

export interface CompiledChain {
  readonly name: string
  readonly policy: string | null
  readonly rules: readonly CompiledRule[]
  /** For long chains: which rules can match at all, by the pass's devices (see ChainIndex). */
  readonly index: ChainIndex | null
}

/**
 * Rules that require an exact device (`-m physdev --physdev-in X`, `--physdev-out X`,
 * `-i X`) cannot match a pass with other devices. For chains of Neutron's size
 * (3 raw rules and 4 dispatch rules per port) the index lists, per pass, the
 * rules worth evaluating; the others are skipped. Exact, not a heuristic: a
 * skipped rule's device match is false. Used when steps are not recorded.
 */
export interface ChainIndex {
  readonly unguarded: readonly number[]
  readonly byIn: ReadonlyMap<string, readonly number[]>
  readonly byOut: ReadonlyMap<string, readonly number[]>
  readonly byIface: ReadonlyMap<string, readonly number[]>
  readonly cache: Map<string, readonly number[]>
  readonly byPass: WeakMap<Pass, readonly number[]>
}

const INDEX_MIN_RULES = 16

export function buildIndex(rules: readonly Rule[]): ChainIndex | null {
  if (rules.length < INDEX_MIN_RULES) return null
  const unguarded: number[] = []
  const byIn = new Map<string, number[]>()
  const byOut = new Map<string, number[]>()
  const byIface = new Map<string, number[]>()
  const add = (m: Map<string, number[]>, k: string, i: number) => {
    const l = m.get(k)
    if (l) l.push(i)
    else m.set(k, [i])
  }
  rules.forEach((rule, i) => {
    const exact = (module: string | null, flag: string): string | null => {
      for (const m of rule.matches) {
        if (m.module !== module) continue
        for (const o of m.options) {
          const a = o.args[0]
          if (o.flag === flag && !o.negated && a !== undefined && !a.endsWith('+')) return a
        }
      }
      return null
    }
    const pin = exact('physdev', '--physdev-in')
    const pout = exact('physdev', '--physdev-out')
    const iface = exact(null, '-i')
    if (pin !== null) add(byIn, pin, i)
    else if (pout !== null) add(byOut, pout, i)
    else if (iface !== null) add(byIface, iface, i)
    else unguarded.push(i)
  })
  return { unguarded, byIn, byOut, byIface, cache: new Map(), byPass: new WeakMap() }
}

const EMPTY: readonly number[] = []

export function candidates(ix: ChainIndex, pass: Pass): readonly number[] {
  const same = ix.byPass.get(pass)
  if (same) return same
  const list = candidatesByKey(ix, pass)
  ix.byPass.set(pass, list)
  return list
}

function candidatesByKey(ix: ChainIndex, pass: Pass): readonly number[] {
  const key = `${pass.bridge}\u0000${pass.physdevIn ?? ''}\u0000${pass.physdevOut ?? ''}`
  const hit = ix.cache.get(key)
  if (hit) return hit
  const lists = [
    ix.unguarded,
    pass.physdevIn !== null ? (ix.byIn.get(pass.physdevIn) ?? EMPTY) : EMPTY,
    pass.physdevOut !== null ? (ix.byOut.get(pass.physdevOut) ?? EMPTY) : EMPTY,
    ix.byIface.get(pass.bridge) ?? EMPTY,
  ]
  const out = lists.flat().sort((a, b) => a - b)
  ix.cache.set(key, out)
  return out
}

export interface CompiledRuleset {
  readonly family: Family
  /** What it was compiled from (the verdict engine specialises it per pass). */
  readonly source: Ruleset
  readonly ipsets: IpsetMembers | null
  readonly tables: ReadonlyMap<string, ReadonlyMap<string, CompiledChain>>
}

/** ipset name → members (addresses, CIDRs or `a-b` ranges). */
export type IpsetMembers = Readonly<Record<string, readonly string[]>>

export interface SetMatcher {
  /** Host members (/32, /128), as a hash: most of Neutron's members. */
  readonly hosts: ReadonlySet<string | number>
  readonly prefixes: readonly Prefix[]
  readonly ranges: readonly [Addr, Addr][]
}

const hostKey = (a: Addr): string | number => (a.length === 1 ? a[0]! : `${a[0]}:${a[1]}:${a[2]}:${a[3]}`)

const PROTO_NUMBERS: ReadonlyMap<string, number> = new Map([
  ...[...PROTOCOL_NAMES].map(([n, name]) => [name, n] as [string, number]),
  ['icmpv6', 58],
  ['ipv6-icmp', 58],
  ['all', 0],
])

export function protocolNumberOf(name: string): number | null {
  if (/^\d+$/.test(name)) return Number(name)
  return PROTO_NUMBERS.get(name.toLowerCase()) ?? null
}

function ifaceMatcher(pattern: string): (name: string | null) => boolean {
  if (pattern.endsWith('+')) {
    const p = pattern.slice(0, -1)
    return (name) => name?.startsWith(p) === true
  }
  return (name) => name === pattern
}

export function portRanges(arg: string): [number, number][] | null {
  const out: [number, number][] = []
  for (const part of arg.split(',')) {
    const m = /^(\d{1,5})?(?::(\d{1,5})?)?$/.exec(part)
    if (!m || part === '') return null
    const lo = m[1] !== undefined ? Number(m[1]) : 0
    const hi = part.includes(':') ? (m[2] !== undefined ? Number(m[2]) : 65535) : lo
    out.push([lo, hi])
  }
  return out
}

const inRanges = (v: number | undefined, rs: readonly [number, number][]): boolean =>
  v !== undefined && rs.some(([lo, hi]) => v >= lo && v <= hi)

const TCP_FLAG_BITS: Readonly<Record<string, number>> = {
  FIN: 1,
  SYN: 2,
  RST: 4,
  PSH: 8,
  ACK: 16,
  URG: 32,
  ECE: 64,
  CWR: 128,
  ALL: 63,
  NONE: 0,
}

function tcpFlagBits(s: string): number | null {
  let bits = 0
  for (const f of s.split(',')) {
    const b = TCP_FLAG_BITS[f]
    if (b === undefined) return null
    bits |= b
  }
  return bits
}

const CT_STATES = new Set(['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED'])

/** Compile one option into a matcher, or a reason why it cannot be evaluated. */
export function compileOption(
  module: string | null,
  o: Option,
  family: Family,
  ipsets: IpsetMembers | null,
  proto: number | null,
  setCache: Map<string, SetMatcher | string>,
): Matcher | string {
  const a0 = o.args[0] ?? ''
  const key = `${module ?? ''} ${o.flag}`
  switch (key) {
    case ' -s':
    case ' -d': {
      const p = parsePrefix(a0)
      if (!p || p.words.length !== (family === 4 ? 1 : 4)) return `bad address ${a0}`
      if (p.words.length === 1) {
        const w = p.words[0]!
        const m = p.masks[0]!
        return o.flag === '-s' ? (c) => (c.packet.src[0]! & m) >>> 0 === w : (c) => (c.packet.dst[0]! & m) >>> 0 === w
      }
      return o.flag === '-s' ? (c) => inPrefix(c.packet.src, p) : (c) => inPrefix(c.packet.dst, p)
    }
    case ' -i':
    case ' -o': {
      const m = ifaceMatcher(a0)
      // Bridged traffic: the in and out interface is the bridge itself (br_netfilter).
      if (o.flag === '-i') return (c) => m(c.pass.bridge)
      return (c) => (c.hook === 'PREROUTING' ? false : m(c.pass.bridge))
    }
    case ' -p': {
      const n = protocolNumberOf(a0)
      if (n === null) return `unknown protocol ${a0}`
      if (n === 0) return () => true
      // ip6tables finds the upper-layer protocol past extension headers: these never match.
      if (family === 6 && (n === 0 || n === 43 || n === 44 || n === 60 || n === 51)) return () => false
      return (c) => c.packet.proto === n
    }
    case ' -f':
      return (c) => c.packet.fragment === true
    case 'tcp --sport':
    case 'udp --sport':
    case 'sctp --sport':
    case 'dccp --sport':
    case 'tcp --dport':
    case 'udp --dport':
    case 'sctp --dport':
    case 'dccp --dport': {
      const rs = portRanges(a0)
      if (rs?.length !== 1) return `bad port ${a0}`
      const want = protocolNumberOf(module!)!
      return o.flag === '--sport'
        ? (c) => c.packet.proto === want && !c.packet.fragment && inRanges(c.packet.sport, rs)
        : (c) => c.packet.proto === want && !c.packet.fragment && inRanges(c.packet.dport, rs)
    }
    case 'tcp --tcp-flags': {
      const mask = tcpFlagBits(a0)
      const comp = tcpFlagBits(o.args[1] ?? '')
      if (mask === null || comp === null) return `bad TCP flags ${o.args.join(' ')}`
      return (c) => c.packet.proto === 6 && ((c.packet.tcpFlags ?? 2) & mask) === comp
    }
    case 'tcp --syn':
      return (c) => c.packet.proto === 6 && ((c.packet.tcpFlags ?? 2) & 0x17) === 2
    case 'multiport --sports':
    case 'multiport --dports':
    case 'multiport --ports': {
      const rs = portRanges(a0)
      if (!rs) return `bad port list ${a0}`
      if (proto === null || ![6, 17, 33, 132, 136].includes(proto))
        return 'multiport needs -p tcp, udp, udplite, sctp or dccp'
      if (o.flag === '--sports') return (c) => c.packet.proto === proto && inRanges(c.packet.sport, rs)
      if (o.flag === '--dports') return (c) => c.packet.proto === proto && inRanges(c.packet.dport, rs)
      return (c) => c.packet.proto === proto && (inRanges(c.packet.sport, rs) || inRanges(c.packet.dport, rs))
    }
    case 'icmp --icmp-type':
    case 'icmp6 --icmpv6-type': {
      const fam: Family = module === 'icmp' ? 4 : 6
      const t = parseIcmpTypeArg(fam, a0)
      if (!t) return `bad ICMP type ${a0}`
      const want = fam === 4 ? 1 : 58
      if (fam === 4 && t.type === 255) return (c) => c.packet.proto === want
      return (c) =>
        c.packet.proto === want &&
        c.packet.icmpType === t.type &&
        (c.packet.icmpCode ?? 0) >= t.codeMin &&
        (c.packet.icmpCode ?? 0) <= t.codeMax
    }
    case 'state --state':
    case 'conntrack --ctstate': {
      const states = a0.split(',')
      if (!states.every((s) => CT_STATES.has(s))) return `conntrack state ${a0} not simulated`
      const set = new Set(states)
      return (c) => set.has(c.state)
    }
    case 'physdev --physdev-in': {
      const m = ifaceMatcher(a0)
      return (c) => m(c.pass.physdevIn)
    }
    case 'physdev --physdev-out': {
      const m = ifaceMatcher(a0)
      // The output port is not known before the bridge decision (PREROUTING).
      return (c) => c.hook !== 'PREROUTING' && m(c.pass.physdevOut)
    }
    case 'physdev --physdev-is-bridged':
      return (c) => c.hook !== 'PREROUTING' && c.pass.physdevOut !== null
    case 'physdev --physdev-is-in':
      return (c) => c.pass.physdevIn !== null
    case 'physdev --physdev-is-out':
      return (c) => c.hook !== 'PREROUTING' && c.pass.physdevOut !== null
    case 'mac --mac-source': {
      const want = a0.toLowerCase()
      return (c) => (c.packet.srcMac === undefined ? UNKNOWN : c.packet.srcMac === want)
    }
    case 'set --match-set': {
      if (!ipsets) return `ipset ${a0}: no ipset contents given`
      const members = ipsets[a0]
      if (!members) return `ipset ${a0} does not exist`
      const flags = (o.args[1] ?? '').split(',')
      if (flags.length !== 1 || (flags[0] !== 'src' && flags[0] !== 'dst'))
        return `set flags ${o.args[1]} not simulated`
      let sm = setCache.get(a0)
      if (sm === undefined) {
        sm = compileSet(members, family)
        setCache.set(a0, sm)
      }
      if (typeof sm === 'string') return sm
      const set = sm
      return flags[0] === 'src' ? (c) => setHas(set, c.packet.src) : (c) => setHas(set, c.packet.dst)
    }
    case 'comment --comment':
      return () => true
    case 'iprange --src-range':
    case 'iprange --dst-range': {
      const [lo, hi] = a0.split('-').map((x) => parseAddr(x))
      if (!lo || !hi) return `bad range ${a0}`
      const get = o.flag === '--src-range' ? (p: Packet) => p.src : (p: Packet) => p.dst
      return (c) => {
        const v = get(c.packet)
        return compareAddr(v, lo.addr) >= 0 && compareAddr(v, hi.addr) <= 0
      }
    }
  }
  return module === null ? `option ${o.flag} not simulated` : `match -m ${module} ${o.flag} not simulated`
}

export function compileSet(members: readonly string[], family: Family): SetMatcher | string {
  const hosts = new Set<string | number>()
  const prefixes: Prefix[] = []
  const ranges: [Addr, Addr][] = []
  for (const m of members) {
    if (m.includes('-')) {
      const [lo, hi] = m.split('-').map((x) => parseAddr(x))
      if (!lo || !hi) return `bad ipset member ${m}`
      ranges.push([lo.addr, hi.addr])
      continue
    }
    const p = parsePrefix(m)
    if (!p) return `bad ipset member ${m}`
    if (p.words.length !== (family === 4 ? 1 : 4)) continue
    if (p.masks.every((w) => w === 0xffffffff)) hosts.add(hostKey(p.words))
    else prefixes.push(p)
  }
  return { hosts, prefixes, ranges }
}

export function setHas(s: SetMatcher, a: Addr): boolean {
  if (s.hosts.has(hostKey(a))) return true
  for (const p of s.prefixes) if (inPrefix(a, p)) return true
  for (const [lo, hi] of s.ranges) if (compareAddr(a, lo) >= 0 && compareAddr(a, hi) <= 0) return true
  return false
}

export function compileTarget(rule: Rule, tableChains: ReadonlySet<string>): TargetKind {
  const t = rule.target
  if (!t) return { kind: 'none' }
  if (t.goto)
    return tableChains.has(t.name) ? { kind: 'goto', chain: t.name } : { kind: 'unknown', reason: `no chain ${t.name}` }
  switch (t.name) {
    case 'ACCEPT':
      return { kind: 'accept' }
    case 'DROP':
      return { kind: 'drop', reject: false }
    case 'REJECT':
      return { kind: 'drop', reject: true }
    case 'RETURN':
      return { kind: 'return' }
    case 'LOG':
    case 'NFLOG':
    case 'TRACE':
      return { kind: 'continue' }
    case 'CT': {
      const flags = t.options.map((o) => o.flag)
      if (flags.length === 1 && flags[0] === '--notrack') return { kind: 'notrack' }
      if (flags.length === 1 && flags[0] === '--zone' && /^\d+$/.test(t.options[0]!.args[0] ?? ''))
        return { kind: 'zone', zone: Number(t.options[0]!.args[0]) }
      return { kind: 'unknown', reason: `CT ${flags.join(' ')} not simulated` }
    }
  }
  if (tableChains.has(t.name)) return { kind: 'jump', chain: t.name }
  return { kind: 'unknown', reason: `target ${t.name} not simulated` }
}

/** One test of a rule's conjunction, as the simulator reads it. */
export type RulePart =
  /** `-m tcp` (udp, sctp, …) without options: the protocol. */
  | { readonly kind: 'proto'; readonly proto: number }
  /** A bare `-m module` the simulator does not know. */
  | { readonly kind: 'unknown'; readonly reason: string }
  | { readonly kind: 'option'; readonly module: string | null; readonly option: Option }

const PROTO_MODULES = new Set(['tcp', 'udp', 'sctp', 'dccp', 'icmp', 'udplite'])

/**
 * A rule's tests in order (comments dropped: they always match), and its `-p` protocol (multiport
 * needs it). Shared by the interpreter and the verdict programs so both read a rule the same way.
 */
export function ruleParts(rule: Rule): { parts: RulePart[]; proto: number | null } {
  const protoOpt = rule.matches.find((m) => m.module === null)?.options.find((o) => o.flag === '-p' && !o.negated)
  const proto = protoOpt ? protocolNumberOf(protoOpt.args[0] ?? '') : null
  const parts: RulePart[] = []
  for (const m of rule.matches) {
    if (m.module !== null && m.options.length === 0) {
      // `-m tcp` alone: matches the protocol (a non-first fragment has no ports).
      const want = protocolNumberOf(m.module)
      if (want !== null && PROTO_MODULES.has(m.module)) parts.push({ kind: 'proto', proto: want })
      else if (m.module !== 'comment' && m.module !== 'multiport')
        parts.push({ kind: 'unknown', reason: `match -m ${m.module} not simulated` })
      continue
    }
    for (const o of m.options) {
      if (m.module === 'comment' && o.flag === '--comment' && !o.negated) continue
      parts.push({ kind: 'option', module: m.module, option: o })
    }
  }
  return { parts, proto }
}

/** The negation of a matcher (unknown stays unknown). */
export function negate(m: Matcher): Matcher {
  return (c) => {
    const v = m(c)
    return v === UNKNOWN ? UNKNOWN : !v
  }
}

/**
 * Compile a ruleset for tracing; `ipsets` may be null when the ruleset uses none (a set match then
 * stops a trace). The closures are built on the first trace: verdict-only users (`verdictOf`) may
 * never need them.
 */
export function compileRuleset(r: Ruleset, family: Family, ipsets: IpsetMembers | null): CompiledRuleset {
  let tables: ReadonlyMap<string, ReadonlyMap<string, CompiledChain>> | null = null
  return {
    family,
    source: r,
    ipsets,
    get tables() {
      tables ??= compileTables(r, family, ipsets)
      return tables
    },
  }
}

function compileTables(
  r: Ruleset,
  family: Family,
  ipsets: IpsetMembers | null,
): ReadonlyMap<string, ReadonlyMap<string, CompiledChain>> {
  const tables = new Map<string, Map<string, CompiledChain>>()
  const setCache = new Map<string, SetMatcher | string>()
  for (const table of r.tables) {
    const bodies = new Map<string, CompiledRule>()
    const names = new Set(table.chains.map((c) => c.name))
    const chains = new Map<string, CompiledChain>()
    for (const chain of table.chains) {
      const rules: CompiledRule[] = chain.rules.map((rule, i) => {
        // Identical rule text compiles to the same closures (a group's rules repeat in every
        // port chain): far fewer objects, so the evaluation stays in the CPU caches.
        const text = renderRuleBody(rule)
        const shared = bodies.get(text)
        if (shared) return { ...shared, num: i + 1 }
        const matchers: Matcher[] = []
        const reasons: (string | null)[] = []
        const { parts, proto } = ruleParts(rule)
        for (const part of parts) {
          if (part.kind === 'proto') {
            const want = part.proto
            matchers.push((c) => c.packet.proto === want)
            reasons.push(null)
          } else if (part.kind === 'unknown') {
            matchers.push(() => UNKNOWN)
            reasons.push(part.reason)
          } else {
            const compiled = compileOption(part.module, part.option, family, ipsets, proto, setCache)
            if (typeof compiled === 'string') {
              matchers.push(() => UNKNOWN)
              reasons.push(compiled)
            } else {
              matchers.push(part.option.negated ? negate(compiled) : compiled)
              reasons.push(null)
            }
          }
        }
        const compiledRule: CompiledRule = {
          num: i + 1,
          text,
          matchers,
          unknownReasons: reasons,
          target: compileTarget(rule, names),
        }
        bodies.set(text, compiledRule)
        return compiledRule
      })
      chains.set(chain.name, { name: chain.name, policy: chain.policy, rules, index: buildIndex(chain.rules) })
    }
    tables.set(table.name, chains)
  }
  return tables
}

// ---- conntrack ----

/** Connections seen, per zone (0 = default zone). */
export class Conntrack {
  private readonly entries = new Map<number, Set<string>>()
  has(zone: number, key: string): boolean {
    return this.entries.get(zone)?.has(key) ?? false
  }
  add(zone: number, key: string): void {
    let s = this.entries.get(zone)
    if (!s) {
      s = new Set()
      this.entries.set(zone, s)
    }
    s.add(key)
  }
}

function flowKey(p: Packet, reverse: boolean): string {
  const a = formatAddr(reverse ? p.dst : p.src)
  const b = formatAddr(reverse ? p.src : p.dst)
  const sp = reverse ? p.dport : p.sport
  const dp = reverse ? p.sport : p.dport
  if (p.proto === 1 || p.proto === 58) {
    // ICMP echo: the reply type belongs to the request's flow.
    const t = p.icmpType ?? -1
    const norm = t === 0 ? 8 : t === 129 ? 128 : t
    return `${p.proto} ${reverse ? b : a} ${reverse ? a : b} ${norm}`
  }
  return `${p.proto} ${a} ${b} ${sp ?? ''} ${dp ?? ''}`
}

/** ICMPv6 types conntrack does not track (neighbour discovery, MLD): kernel-notes.md. */
const UNTRACKED_ICMPV6 = new Set([130, 131, 132, 133, 134, 135, 136, 137, 143])

/** Packets conntrack never tracks whatever the raw table says (neighbour discovery, MLD). */
export function untrackedByConntrack(p: Packet): boolean {
  return p.proto === 58 && UNTRACKED_ICMPV6.has(p.icmpType ?? -1)
}

// ---- trace ----

export interface TraceStep {
  readonly table: string
  readonly chain: string
  /** null: the chain's policy. */
  readonly num: number | null
  readonly rule: string
  readonly matched: boolean
}

export interface DecidedBy {
  readonly table: string
  readonly chain: string
  /** null: the policy of a built-in chain. */
  readonly num: number | null
  readonly rule: string
  /** Chains on the call stack when the decision was taken (outermost first). */
  readonly via: readonly string[]
}

export type Verdict = 'ACCEPT' | 'DROP' | 'UNKNOWN'

export interface HopResult {
  readonly bridge: string
  readonly physdev_in: string | null
  readonly physdev_out: string | null
  readonly zone: number
  readonly state: CtState
  readonly verdict: Verdict
  readonly decided_by: DecidedBy | null
  /** Why the trace stopped, for verdict UNKNOWN. */
  readonly unknown?: string
  readonly steps: readonly TraceStep[]
}

export interface TraceResult {
  readonly verdict: Verdict
  readonly hops: readonly HopResult[]
}

interface HookOutcome {
  verdict: Verdict
  decidedBy: DecidedBy | null
  unknown?: string
  zone: number | null
  notrack: boolean
}

// Reused between calls (the simulator is synchronous): the call stack as parallel arrays.
const stackChain: CompiledChain[] = []
const stackIndex: number[] = []
const stackCand: (readonly number[] | null)[] = []

function runHook(
  rs: CompiledRuleset,
  table: string,
  hook: 'PREROUTING' | 'FORWARD',
  ctx: EvalContext,
  steps: TraceStep[] | null,
  detail: boolean,
): HookOutcome {
  const chains = rs.tables.get(table)
  const out: HookOutcome = { verdict: 'ACCEPT', decidedBy: null, zone: null, notrack: false }
  const start = chains?.get(hook)
  if (!start) return out
  const useIndex = steps === null
  let depth = 0
  let chain = start
  let index = 0
  let cand: readonly number[] | null = useIndex && start.index ? candidates(start.index, ctx.pass) : null
  const decide = (c: CompiledChain, num: number | null, text: string): DecidedBy | null => {
    if (!detail) return null
    const via: string[] = []
    for (let i = 0; i < depth; i++) via.push(stackChain[i]!.name)
    via.push(c.name)
    return { table, chain: c.name, num, rule: text, via: num === null ? [start.name] : via }
  }
  for (let guard = 0; guard < 1_000_000; guard++) {
    const rule = cand === null ? chain.rules[index] : index < cand.length ? chain.rules[cand[index]!] : undefined
    if (rule === undefined) {
      // End of chain: a user chain returns to its caller; a built-in chain applies its policy.
      if (depth > 0) {
        depth--
        chain = stackChain[depth]!
        index = stackIndex[depth]!
        cand = stackCand[depth]!
        continue
      }
      // Back at the hook (also after a -g chain ends): the built-in chain's policy decides.
      const policy = start.policy ?? 'ACCEPT'
      steps?.push({ table, chain: start.name, num: null, rule: `policy ${policy}`, matched: true })
      out.verdict = policy === 'DROP' ? 'DROP' : 'ACCEPT'
      out.decidedBy = decide(start, null, `policy ${policy}`)
      return out
    }
    index++
    // Three-valued AND: one false match decides "no match" even when another cannot be evaluated;
    // only a rule whose outcome hangs on an unknown match stops the trace.
    let matched = true
    let unknownAt = -1
    const matchers = rule.matchers
    for (let i = 0; i < matchers.length; i++) {
      const v = matchers[i]!(ctx)
      if (v === UNKNOWN) {
        if (unknownAt < 0) unknownAt = i
      } else if (!v) {
        matched = false
        break
      }
    }
    if (matched && unknownAt >= 0) {
      steps?.push({ table, chain: chain.name, num: rule.num, rule: rule.text, matched: false })
      out.verdict = 'UNKNOWN'
      out.unknown = rule.unknownReasons[unknownAt] ?? 'the packet lacks a field this rule needs (e.g. --src-mac)'
      out.decidedBy = decide(chain, rule.num, rule.text)
      return out
    }
    steps?.push({ table, chain: chain.name, num: rule.num, rule: rule.text, matched })
    if (!matched) continue
    const t = rule.target
    switch (t.kind) {
      case 'accept':
        out.verdict = 'ACCEPT'
        out.decidedBy = decide(chain, rule.num, rule.text)
        return out
      case 'drop':
        out.verdict = 'DROP'
        out.decidedBy = decide(chain, rule.num, rule.text)
        return out
      case 'return':
        if (depth > 0) {
          depth--
          chain = stackChain[depth]!
          index = stackIndex[depth]!
          cand = stackCand[depth]!
        } else index = Number.MAX_SAFE_INTEGER
        continue
      case 'jump': {
        if (depth >= 64) {
          out.verdict = 'UNKNOWN'
          out.unknown = 'jump depth over 64 (a loop?)'
          out.decidedBy = decide(chain, rule.num, rule.text)
          return out
        }
        stackChain[depth] = chain
        stackIndex[depth] = index
        stackCand[depth] = cand
        depth++
        chain = chains!.get(t.chain)!
        index = 0
        cand = useIndex && chain.index ? candidates(chain.index, ctx.pass) : null
        continue
      }
      case 'goto':
        chain = chains!.get(t.chain)!
        index = 0
        cand = useIndex && chain.index ? candidates(chain.index, ctx.pass) : null
        continue
      case 'zone':
        if (out.zone === null && !out.notrack) out.zone = t.zone
        continue
      case 'notrack':
        if (out.zone === null) out.notrack = true
        continue
      case 'continue':
      case 'none':
        continue
      case 'unknown':
        out.verdict = 'UNKNOWN'
        out.unknown = t.reason
        out.decidedBy = decide(chain, rule.num, rule.text)
        return out
    }
  }
  out.verdict = 'UNKNOWN'
  out.unknown = 'too many steps'
  return out
}

export interface TraceOptions {
  /** Record every rule evaluated (off for benchmarks). Default true. */
  readonly record?: boolean
  /** Build decided_by (with the call stack) for each hop. Default true; off for verdict-only loops. */
  readonly detail?: boolean
  /** Connections already seen; updated with the packet's flow in each zone that accepts it. */
  readonly conntrack?: Conntrack
}

/**
 * Trace one packet along its path. Each pass runs raw PREROUTING (zone or
 * notrack; the first CT rule that matches wins, as the kernel attaches the
 * conntrack template once), then conntrack (per zone), then filter FORWARD.
 */
export function tracePacket(
  rs: CompiledRuleset,
  packet: Packet,
  path: readonly Pass[],
  options: TraceOptions = {},
): TraceResult {
  const record = options.record ?? true
  const detail = options.detail ?? true
  const hops: HopResult[] = []
  let verdict: Verdict = 'ACCEPT'
  for (const pass of path) {
    const steps: TraceStep[] | null = record ? [] : null
    const ctx: EvalContext = { packet, pass, hook: 'PREROUTING', state: 'NEW' }
    const raw = runHook(rs, 'raw', 'PREROUTING', ctx, steps, detail)
    const zone = raw.zone ?? 0
    if (raw.verdict !== 'ACCEPT') {
      hops.push(hopOf(pass, zone, ctx.state, raw, steps))
      verdict = raw.verdict
      break
    }
    let state: CtState = packet.state ?? 'NEW'
    if (raw.notrack || untrackedByConntrack(packet)) state = 'UNTRACKED'
    else if (options.conntrack) {
      if (options.conntrack.has(zone, flowKey(packet, true)) || options.conntrack.has(zone, flowKey(packet, false)))
        state = 'ESTABLISHED'
    }
    ctx.hook = 'FORWARD'
    ctx.state = state
    const filter = runHook(rs, 'filter', 'FORWARD', ctx, steps, detail)
    hops.push(hopOf(pass, zone, state, filter, steps))
    if (filter.verdict !== 'ACCEPT') {
      verdict = filter.verdict
      break
    }
    if (options.conntrack && state !== 'UNTRACKED' && state !== 'INVALID')
      options.conntrack.add(zone, flowKey(packet, false))
  }
  return { verdict, hops }
}

function hopOf(pass: Pass, zone: number, state: CtState, o: HookOutcome, steps: TraceStep[] | null): HopResult {
  const base = {
    bridge: pass.bridge,
    physdev_in: pass.physdevIn,
    physdev_out: pass.physdevOut,
    zone,
    state,
    verdict: o.verdict,
    decided_by: o.decidedBy,
    steps: steps ?? [],
  }
  return o.unknown !== undefined ? { ...base, unknown: o.unknown } : base
}
