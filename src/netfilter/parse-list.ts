/**
 * `iptables -L -v [-n] [--line-numbers] [-x]` listings → Ruleset IR.
 *
 * A listing is what operators paste, so the reader is tolerant: columns are
 * found by the header line, blanks may be collapsed or widened, counters may
 * carry K/M/G suffixes, and the non-numeric form (`anywhere`, `default`,
 * protocol and service names, ICMP type names) is read back into the spelling
 * iptables-save prints. The listing does not name its table: a command line
 * (`iptables -t raw -L …`), a `*raw` or `Table: raw` line, or a built-in chain
 * that the current table does not have (PREROUTING) switches table.
 *
 * Known loss of the listing format itself: in the non-numeric IPv6 listing,
 * `-s ::/128` prints as `anywhere`, the same as no `-s` (ip6tables prints `::`
 * with -n); such a rule reads back without the address match.
 *
 * Text the reader does not understand is reported as a ParseIssue with its line
 * number; the rule is kept with a match of module UNREADABLE_MODULE holding the
 * text, so rule numbers stay right and the simulator refuses to guess.
 */

import { ICMP_NAMES, ICMPV6_NAMES, icmpTypeArg } from './icmp-names.js'
import type { Counters, Family, Match, Option, Rule, Ruleset, Table, Target } from './ir.js'
import { BUILTIN_CHAINS, isBuiltinChain } from './ir.js'
import { PROTOCOL_NAMES, SERVICES } from './names-data.js'
import type { ParseIssue } from './parse-save.js'

/** Module name of the placeholder match that holds listing text the reader could not read. */
export const UNREADABLE_MODULE = 'sgwall-unreadable'

export interface ListParseResult {
  readonly ruleset: Ruleset
  /** From a command line, an IPv6 address or protocol ipv6-icmp; null when the text does not tell. */
  readonly family: Family | null
  readonly issues: ParseIssue[]
}

interface Columns {
  num: boolean
  counters: boolean
  inOut: boolean
}

const DEFAULT_COLUMNS: Columns = { num: false, counters: true, inOut: true }

const PROTOCOL_NUMBERS: ReadonlyMap<string, number> = new Map([...PROTOCOL_NAMES].map(([n, name]) => [name, n]))

const SERVICE_PORTS: Readonly<Record<string, ReadonlyMap<string, number>>> = {
  tcp: serviceMap('tcp'),
  udp: serviceMap('udp'),
}

function serviceMap(proto: 'tcp' | 'udp'): ReadonlyMap<string, number> {
  const m = new Map<string, number>()
  for (const [port, ...names] of SERVICES[proto]) for (const n of names) if (!m.has(n)) m.set(n, port)
  return m
}

const TCP_FLAGS: readonly [string, number][] = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ECE', 0x40],
  ['CWR', 0x80],
]

const LOG_LEVELS = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug']

class Unreadable extends Error {}

interface ChainBuilder {
  name: string
  policy: string | null
  counters?: Counters
  rules: Rule[]
}

interface TableBuilder {
  name: string
  chains: ChainBuilder[]
}

/** Parse a K/M/G/T-suffixed counter as iptables prints it (suffixes are powers of 1000). */
export function parseListCounter(s: string): number | null {
  const m = /^(\d+)([KMGT]?)$/.exec(s)
  if (!m) return null
  const mult = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] as '' | 'K' | 'M' | 'G' | 'T']
  const v = Number(m[1]) * mult
  return Number.isSafeInteger(v) ? v : null
}

export function parseIptablesList(text: string, options: { table?: string; family?: Family } = {}): ListParseResult {
  const issues: ParseIssue[] = []
  const tables: TableBuilder[] = []
  let family: Family | null = options.family ?? null
  let table = getTable(tables, options.table ?? 'filter')
  let chain: ChainBuilder | null = null
  let columns: Columns = DEFAULT_COLUMNS
  /** Chains listed a second time: compared with the first listing when complete. */
  let duplicateOf: { first: ChainBuilder; line: number; text: string } | null = null

  const closeChain = (): void => {
    if (chain && duplicateOf) {
      const same =
        JSON.stringify(chain.rules.map(withoutCounters)) ===
        JSON.stringify(duplicateOf.first.rules.map(withoutCounters))
      if (!same) {
        issues.push({
          line: duplicateOf.line,
          message: `chain ${chain.name} is listed again with different rules; the later listing is used`,
          text: duplicateOf.text,
        })
        duplicateOf.first.rules = chain.rules
      }
    }
    duplicateOf = null
    chain = null
  }

  const lines = text.split('\n')
  for (let ln = 0; ln < lines.length; ln++) {
    const raw = lines[ln]!
    const line = raw.replace(/\r$/, '').trim()
    const lineNo = ln + 1
    const issue = (message: string): void => {
      issues.push({ line: lineNo, message, text: raw })
    }
    if (line === '') continue
    const cmd = /^(?:\S*[$#>]\s*)?(?:sudo\s+)?(ip6?tables)(?:-legacy|-nft)?\s(.*)$/.exec(line)
    if (cmd) {
      closeChain()
      if (cmd[1] === 'ip6tables') family = 6
      else if (family === null) family = 4
      const t = /(?:-t|--table)[\s=]+(\w+)/.exec(cmd[2]!)
      table = getTable(tables, t ? t[1]! : 'filter')
      continue
    }
    const tableLine = /^(?:\*|Table:\s*)(\w+)$/.exec(line)
    if (tableLine) {
      closeChain()
      table = getTable(tables, tableLine[1]!)
      continue
    }
    if (line.startsWith('#')) continue
    const head = /^Chain\s+(\S+)\s*\((.*)\)$/.exec(line)
    if (head) {
      closeChain()
      const name = head[1]!
      const info = head[2]!.trim()
      if (BUILTIN_NAMES.has(name) && !isBuiltinChain(table.name, name)) {
        // A built-in chain this table does not have: the listing moved on to another table.
        const other = name === 'PREROUTING' || name === 'POSTROUTING' ? 'raw' : 'filter'
        table = getTable(tables, other)
      }
      const builtin = isBuiltinChain(table.name, name)
      const pol = /^policy\s+(\S+)(?:\s+(\S+)\s+packets,\s*(\S+)\s+bytes)?$/.exec(info)
      let policy: string | null = null
      let counters: Counters | undefined
      if (pol) {
        policy = pol[1]!
        if (pol[2] !== undefined) {
          const packets = parseListCounter(pol[2])
          const bytes = parseListCounter(pol[3]!)
          if (packets === null || bytes === null) issue('unreadable policy counters')
          else if (packets !== 0 || bytes !== 0) counters = { packets, bytes }
        }
        if (!builtin) issue(`chain ${name} has a policy but is not a built-in chain of table ${table.name}`)
      } else if (/^\d+\s+references?$/.test(info)) {
        if (builtin) issue(`built-in chain ${name} listed without a policy`)
      } else {
        issue(`unreadable chain header "(${info})"`)
      }
      const fresh: ChainBuilder = counters ? { name, policy, counters, rules: [] } : { name, policy, rules: [] }
      const existing = table.chains.find((c) => c.name === name)
      if (existing) {
        duplicateOf = { first: existing, line: lineNo, text: raw }
      } else table.chains.push(fresh)
      chain = fresh
      continue
    }
    const words = line.split(/\s+/)
    if (words.includes('target') && words.includes('prot') && words.includes('source')) {
      columns = { num: words[0] === 'num', counters: words.includes('pkts'), inOut: words.includes('in') }
      continue
    }
    if (!chain) {
      issue('rule line before any "Chain" header')
      continue
    }
    const result = readRuleLine(words, columns, family)
    if (result.family !== null && family === null) family = result.family
    if (result.error) issue(result.error)
    if (result.rule) {
      if (result.num !== null && result.num !== chain.rules.length + 1) {
        issue(`rule number ${result.num} where ${chain.rules.length + 1} was expected`)
      }
      chain.rules.push(result.rule)
    }
  }
  closeChain()
  const out: Table[] = tables
    .filter((t) => t.chains.length > 0)
    .map((t) => ({
      name: t.name,
      chains: t.chains.map((c) =>
        c.counters
          ? { name: c.name, policy: c.policy, rules: c.rules, counters: c.counters }
          : { name: c.name, policy: c.policy, rules: c.rules },
      ),
    }))
  return { ruleset: { tables: out }, family, issues }
}

const BUILTIN_NAMES = new Set(Object.values(BUILTIN_CHAINS).flat())

function getTable(tables: TableBuilder[], name: string): TableBuilder {
  let t = tables.find((x) => x.name === name)
  if (!t) {
    t = { name, chains: [] }
    tables.push(t)
  }
  return t
}

function withoutCounters(r: Rule): Rule {
  return { matches: r.matches, target: r.target }
}

const isOptColumn = (w: string | undefined): boolean => w === '--' || w === '-f' || w === '!f'

interface RuleLineResult {
  rule: Rule | null
  num: number | null
  family: Family | null
  error: string | null
}

function readRuleLine(words: string[], columns: Columns, knownFamily: Family | null): RuleLineResult {
  let i = 0
  let num: number | null = null
  const fail = (error: string): RuleLineResult => ({ rule: null, num, family: null, error })
  if (columns.num) {
    if (!/^\d+$/.test(words[0] ?? '')) return fail('expected a rule number in the first column')
    num = Number(words[0])
    i++
  }
  let counters: Counters | undefined
  if (columns.counters) {
    const packets = parseListCounter(words[i] ?? '')
    const bytes = parseListCounter(words[i + 1] ?? '')
    if (packets === null || bytes === null) return fail('expected packet and byte counters')
    counters = { packets, bytes }
    i += 2
  }
  let targetName: string | null
  if (isOptColumn(words[i + 2])) {
    targetName = words[i]!
    i++
  } else if (isOptColumn(words[i + 1])) targetName = null
  else return fail('cannot find the target, prot and opt columns')
  const prot = words[i]!
  const opt = words[i + 1]!
  i += 2
  let inIf = '*'
  let outIf = '*'
  if (columns.inOut) {
    inIf = words[i] ?? ''
    outIf = words[i + 1] ?? ''
    i += 2
  }
  const source = words[i]
  const destination = words[i + 1]
  if (source === undefined || destination === undefined) return fail('missing source or destination column')
  i += 2

  let family: Family | null = null
  const core: Option[] = []
  try {
    const s = readAddress(source, knownFamily)
    const d = readAddress(destination, knownFamily)
    family = s.family ?? d.family
    if (s.option) core.push({ flag: '-s', ...s.option })
    if (d.option) core.push({ flag: '-d', ...d.option })
  } catch (e) {
    if (e instanceof Unreadable) return fail(e.message)
    throw e
  }
  for (const [flag, value] of [
    ['-i', inIf],
    ['-o', outIf],
  ] as const) {
    if (value === '*' || value === 'any') continue
    const negated = value.startsWith('!')
    core.push({ flag, negated, args: [negated ? value.slice(1) : value] })
  }
  const protNegated = prot.startsWith('!')
  const protWord = protNegated ? prot.slice(1) : prot
  let protName: string | null = null
  if (protWord !== 'all' && protWord !== '0') {
    protName = /^\d+$/.test(protWord) ? (PROTOCOL_NAMES.get(Number(protWord)) ?? protWord) : protWord
    core.push({ flag: '-p', negated: protNegated, args: [protName] })
    if (protName === 'ipv6-icmp') family = 6
  }
  if (opt === '-f') core.push({ flag: '-f', negated: false, args: [] })
  else if (opt === '!f') core.push({ flag: '-f', negated: true, args: [] })

  const matches: Match[] = core.length > 0 ? [{ module: null, options: core }] : []
  const extras = new ExtraReader(words.slice(i), protName)
  let goto = false
  const targetOptions: Option[] = []
  let error: string | null = null
  let start = 0
  try {
    while (!extras.done()) {
      start = extras.position
      const w = extras.peek()!
      if (w === '[goto]') {
        extras.next()
        goto = true
        continue
      }
      if (targetName !== null && extras.readTargetInfo(targetName, targetOptions)) continue
      const m = extras.readMatch()
      matches.push(m)
    }
  } catch (e) {
    if (!(e instanceof Unreadable)) throw e
    const rest = extras.restFrom(start)
    error = `${e.message}; unread: "${rest}"`
    matches.push({ module: UNREADABLE_MODULE, options: [{ flag: '--text', negated: false, args: [rest] }] })
  }
  const target: Target | null = targetName === null ? null : { name: targetName, goto, options: targetOptions }
  const rule: Rule = counters ? { matches, target, counters } : { matches, target }
  return { rule, num, family, error }
}

function readAddress(
  word: string,
  knownFamily: Family | null,
): { option: { negated: boolean; args: string[] } | null; family: Family | null } {
  const negated = word.startsWith('!')
  const w = negated ? word.slice(1) : word
  if (w === 'anywhere' || w === '0.0.0.0/0' || w === '::/0') {
    return {
      option: negated ? { negated, args: [knownFamily === 6 || w === '::/0' ? '::/0' : '0.0.0.0/0'] } : null,
      family: w === '::/0' ? 6 : w === '0.0.0.0/0' ? 4 : null,
    }
  }
  if (w === 'default') return { option: { negated, args: ['0.0.0.0/32'] }, family: 4 }
  const [addr, mask] = w.split('/', 2) as [string, string | undefined]
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) {
    if (mask !== undefined && !/^\d{1,2}$/.test(mask) && !/^\d{1,3}(\.\d{1,3}){3}$/.test(mask)) {
      throw new Unreadable(`bad netmask in "${word}"`)
    }
    return { option: { negated, args: [`${addr}/${mask ?? '32'}`] }, family: 4 }
  }
  if (/^[0-9a-fA-F:.]+$/.test(addr) && addr.includes(':')) {
    if (mask !== undefined && !/^\d{1,3}$/.test(mask)) throw new Unreadable(`bad prefix length in "${word}"`)
    return { option: { negated, args: [`${addr}/${mask ?? '128'}`] }, family: 6 }
  }
  throw new Unreadable(`"${word}" is not an address (a resolved host name cannot be read back; list with -n)`)
}

/** Reads the free-form text after the destination column: match printouts, then the target's. */
class ExtraReader {
  private i = 0
  constructor(
    private readonly words: readonly string[],
    private readonly protocol: string | null,
  ) {}

  done(): boolean {
    return this.i >= this.words.length
  }
  peek(offset = 0): string | undefined {
    return this.words[this.i + offset]
  }
  next(): string {
    const w = this.words[this.i]
    if (w === undefined) throw new Unreadable('unexpected end of the rule')
    this.i++
    return w
  }
  get position(): number {
    return this.i
  }
  restFrom(start: number): string {
    return this.words.slice(start).join(' ')
  }

  /** Target printouts (`CT zone 4097`, `reject-with X`, `LOG …`): true when one was read. */
  readTargetInfo(target: string, out: Option[]): boolean {
    const w = this.peek()
    if (target === 'CT' && w === 'CT') {
      const save = this.i
      this.next()
      let any = false
      while (!this.done()) {
        const k = this.peek()
        if (k === 'notrack') {
          this.next()
          out.push({ flag: '--notrack', negated: false, args: [] })
        } else if (k === 'zone') {
          this.next()
          const z = this.next()
          if (!/^\d+$/.test(z)) throw new Unreadable(`bad CT zone "${z}"`)
          out.push({ flag: '--zone', negated: false, args: [z] })
        } else break
        any = true
      }
      if (!any) this.i = save
      return any
    }
    if (target === 'REJECT' && w === 'reject-with') {
      this.next()
      out.push({ flag: '--reject-with', negated: false, args: [this.next()] })
      return true
    }
    if (target === 'LOG' && w === 'LOG') {
      this.next()
      let level = 4
      let prefix: string | null = null
      while (!this.done()) {
        const k = this.peek()
        if (k === 'flags') {
          this.next()
          if (this.next() !== '0') throw new Unreadable('LOG flags other than 0 are not supported')
        } else if (k === 'level') {
          this.next()
          const l = this.next()
          const byName = LOG_LEVELS.indexOf(l)
          level = /^\d$/.test(l) ? Number(l) : byName
          if (level < 0) throw new Unreadable(`bad LOG level "${l}"`)
        } else if (k === 'prefix') {
          this.next()
          prefix = this.readQuoted()
        } else break
      }
      if (prefix !== null) out.push({ flag: '--log-prefix', negated: false, args: [prefix] })
      if (level !== 4) out.push({ flag: '--log-level', negated: false, args: [String(level)] })
      return true
    }
    return false
  }

  private readQuoted(): string {
    const first = this.next()
    if (!first.startsWith('"')) return first
    const parts = [first.slice(1)]
    while (!parts[parts.length - 1]!.endsWith('"')) parts.push(this.next())
    const joined = parts.join(' ')
    return joined.slice(0, -1)
  }

  readMatch(): Match {
    let negated = false
    if (this.peek() === '!') {
      this.next()
      negated = true
    }
    const w = this.next()
    const o = (flag: string, args: string[], neg = false): Option => ({ flag, negated: neg, args })
    if (w.startsWith('/*')) {
      const parts = [w.slice(2)]
      while (!parts[parts.length - 1]!.endsWith('*/')) parts.push(this.next())
      const text = parts.join(' ').slice(0, -2).trim()
      return { module: 'comment', options: [o('--comment', [text])] }
    }
    if (w === 'state' || w === 'ctstate') {
      const states = this.next()
      return w === 'state'
        ? { module: 'state', options: [o('--state', [states], negated)] }
        : { module: 'conntrack', options: [o('--ctstate', [states], negated)] }
    }
    if (w === 'match-set') {
      const name = this.next()
      const flags = this.next()
      return { module: 'set', options: [o('--match-set', [name, flags], negated)] }
    }
    if (negated) throw new Unreadable(`"!" before "${w}"`)
    if (w === 'MAC') {
      let neg = false
      if (this.peek() === '!') {
        this.next()
        neg = true
      }
      return { module: 'mac', options: [o('--mac-source', [this.next()], neg)] }
    }
    if (w === 'PHYSDEV' && this.peek() === 'match') {
      this.next()
      const options: Option[] = []
      for (;;) {
        let neg = false
        let k = this.peek()
        if (k === '!' && this.peek(1)?.startsWith('--physdev-')) {
          neg = true
          k = this.peek(1)
        }
        if (k === '--physdev-in' || k === '--physdev-out') {
          if (neg) this.next()
          this.next()
          options.push(o(k, [this.next()], neg))
        } else if (k === '--physdev-is-in' || k === '--physdev-is-out' || k === '--physdev-is-bridged') {
          if (neg) this.next()
          this.next()
          options.push(o(k, [], neg))
        } else break
      }
      if (options.length === 0) throw new Unreadable('PHYSDEV match without options')
      return { module: 'physdev', options }
    }
    if (w === 'tcp' || w === 'udp' || w === 'sctp' || w === 'dccp' || w === 'udplite') {
      const options: Option[] = []
      for (;;) {
        const k = this.peek()
        const pm = k ? /^(spts?|dpts?):(!?)(.+)$/.exec(k) : null
        if (pm) {
          this.next()
          const flag = pm[1]!.startsWith('s') ? '--sport' : '--dport'
          options.push(o(flag, [this.portRange(pm[3]!, w)], pm[2] === '!'))
          continue
        }
        const fm = w === 'tcp' && k ? /^flags:(!?)(.+)\/(.+)$/.exec(k) : null
        if (fm) {
          this.next()
          options.push(o('--tcp-flags', [tcpFlags(fm[2]!), tcpFlags(fm[3]!)], fm[1] === '!'))
          continue
        }
        break
      }
      return { module: w, options }
    }
    if (w === 'multiport') {
      const kind = this.next()
      const flag = { sports: '--sports', dports: '--dports', ports: '--ports' }[kind]
      if (!flag) throw new Unreadable(`unknown multiport kind "${kind}"`)
      let list = this.next()
      let neg = false
      if (list === '!') {
        neg = true
        list = this.next()
      } else if (list.startsWith('!')) {
        neg = true
        list = list.slice(1)
      }
      const proto = this.protocol ?? 'tcp'
      const value = list
        .split(',')
        .map((p) => this.portRange(p, proto))
        .join(',')
      return { module: 'multiport', options: [o(flag, [value], neg)] }
    }
    if (w === 'icmptype' || w === 'ipv6-icmptype' || w === 'icmp' || w === 'ipv6-icmp') {
      const fam: Family = w.startsWith('ipv6') ? 6 : 4
      let neg = false
      let type: number
      let codeMin = 0
      let codeMax = 255
      if (w === 'icmp' || w === 'ipv6-icmp') {
        let name = this.next()
        if (name.startsWith('!')) {
          neg = true
          name = name.slice(1)
        }
        if (name === 'type') {
          type = this.number(this.next())
        } else {
          const entry = (fam === 4 ? ICMP_NAMES : ICMPV6_NAMES).find((n) => n.name === name)
          if (!entry) throw new Unreadable(`unknown ICMP type name "${name}"`)
          type = entry.type
          codeMin = entry.codeMin
          codeMax = entry.codeMax
        }
      } else {
        type = this.number(this.next())
      }
      if (this.peek() === 'code') {
        this.next()
        codeMin = codeMax = this.number(this.next())
      } else if (this.peek() === 'codes') {
        this.next()
        const [a, b] = this.next().split('-')
        codeMin = this.number(a ?? '')
        codeMax = this.number(b ?? '')
      }
      return fam === 4
        ? { module: 'icmp', options: [o('--icmp-type', [icmpTypeArg(4, type, codeMin, codeMax)], neg)] }
        : { module: 'icmp6', options: [o('--icmpv6-type', [icmpTypeArg(6, type, codeMin, codeMax)], neg)] }
    }
    if ((w === 'source' || w === 'destination') && this.peek() === 'IP' && this.peek(1) === 'range') {
      const options: Option[] = []
      let kind = w
      for (;;) {
        this.next() // IP
        this.next() // range
        let range = this.next()
        let neg = false
        if (range === '!') {
          neg = true
          range = this.next()
        }
        options.push(o(kind === 'source' ? '--src-range' : '--dst-range', [range], neg))
        const nextKind = this.peek()
        if ((nextKind === 'source' || nextKind === 'destination') && this.peek(1) === 'IP') {
          kind = this.next()
        } else break
      }
      return { module: 'iprange', options }
    }
    throw new Unreadable(`unknown match printout "${w}"`)
  }

  private number(s: string): number {
    if (!/^\d+$/.test(s)) throw new Unreadable(`expected a number, got "${s}"`)
    return Number(s)
  }

  /** `bootps`, `1000:cisco-sccp`, `22` → numeric `67`, `1000:2000`, `22`. */
  private portRange(value: string, proto: string): string {
    return value
      .split(':')
      .map((p) => {
        if (/^\d+$/.test(p)) return p
        const port = SERVICE_PORTS[proto]?.get(p) ?? SERVICE_PORTS.tcp!.get(p) ?? SERVICE_PORTS.udp!.get(p)
        if (port === undefined) throw new Unreadable(`unknown service name "${p}"`)
        return String(port)
      })
      .join(':')
  }
}

/** `0x17` or `FIN,SYN,RST,ACK` → `FIN,SYN,RST,ACK` (bit order, as iptables-save prints; 0 is NONE). */
function tcpFlags(s: string): string {
  let bits = 0
  if (/^0x[0-9a-fA-F]+$/.test(s)) bits = Number.parseInt(s.slice(2), 16)
  else if (s === 'NONE') bits = 0
  else if (s === 'ALL') bits = 0x3f
  else
    for (const name of s.split(',')) {
      const f = TCP_FLAGS.find(([n]) => n === name)
      if (!f) throw new Unreadable(`unknown TCP flag "${name}"`)
      bits |= f[1]
    }
  if (bits === 0) return 'NONE'
  return TCP_FLAGS.filter(([, b]) => bits & b)
    .map(([n]) => n)
    .join(',')
}

/** The protocol number of an iptables protocol name, or null. */
export function protocolNumber(name: string): number | null {
  if (/^\d+$/.test(name)) return Number(name)
  return PROTOCOL_NUMBERS.get(name) ?? null
}
