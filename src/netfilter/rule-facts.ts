/**
 * Read the common matches of a Rule into plain facts (protocol, addresses,
 * ports, ICMP type, conntrack state, physdev, MAC, ipset, comment), for code
 * that reasons about rules (explain, shadowing). Options the facts do not cover
 * are listed in `other`, so callers can tell a rule they fully understand.
 */
import type { Option, Rule } from './ir.js'

export interface Negatable<T> {
  readonly value: T
  readonly negated: boolean
}

export interface RuleFacts {
  source: Negatable<string> | null
  destination: Negatable<string> | null
  inInterface: Negatable<string> | null
  outInterface: Negatable<string> | null
  protocol: Negatable<string> | null
  fragment: Negatable<true> | null
  sport: Negatable<string> | null
  dport: Negatable<string> | null
  icmpType: Negatable<string> | null
  states: Negatable<string[]> | null
  physdevIn: Negatable<string> | null
  physdevOut: Negatable<string> | null
  physdevIsBridged: Negatable<true> | null
  macSource: Negatable<string> | null
  set: Negatable<{ name: string; flags: string }> | null
  comment: string | null
  /** Options not read into the facts above, as `module flag`. */
  other: string[]
  target: string | null
  goto: boolean
  targetArgs: Readonly<Record<string, readonly string[]>>
}

const neg = <T>(o: Option, value: T): Negatable<T> => ({ value, negated: o.negated })

export function ruleFacts(rule: Rule): RuleFacts {
  const f: RuleFacts = {
    source: null,
    destination: null,
    inInterface: null,
    outInterface: null,
    protocol: null,
    fragment: null,
    sport: null,
    dport: null,
    icmpType: null,
    states: null,
    physdevIn: null,
    physdevOut: null,
    physdevIsBridged: null,
    macSource: null,
    set: null,
    comment: null,
    other: [],
    target: rule.target?.name ?? null,
    goto: rule.target?.goto ?? false,
    targetArgs: Object.fromEntries((rule.target?.options ?? []).map((o) => [o.flag, o.args])),
  }
  for (const m of rule.matches) {
    for (const o of m.options) {
      const a0 = o.args[0] ?? ''
      const key = `${m.module ?? ''} ${o.flag}`
      switch (key) {
        case ' -s':
          f.source = neg(o, a0)
          break
        case ' -d':
          f.destination = neg(o, a0)
          break
        case ' -i':
          f.inInterface = neg(o, a0)
          break
        case ' -o':
          f.outInterface = neg(o, a0)
          break
        case ' -p':
          f.protocol = neg(o, a0)
          break
        case ' -f':
          f.fragment = neg(o, true)
          break
        case 'tcp --sport':
        case 'udp --sport':
        case 'sctp --sport':
        case 'dccp --sport':
        case 'multiport --sports':
          f.sport = neg(o, a0)
          break
        case 'tcp --dport':
        case 'udp --dport':
        case 'sctp --dport':
        case 'dccp --dport':
        case 'multiport --dports':
          f.dport = neg(o, a0)
          break
        case 'icmp --icmp-type':
        case 'icmp6 --icmpv6-type':
          f.icmpType = neg(o, a0)
          break
        case 'state --state':
        case 'conntrack --ctstate':
          f.states = neg(o, a0.split(','))
          break
        case 'physdev --physdev-in':
          f.physdevIn = neg(o, a0)
          break
        case 'physdev --physdev-out':
          f.physdevOut = neg(o, a0)
          break
        case 'physdev --physdev-is-bridged':
          f.physdevIsBridged = neg(o, true)
          break
        case 'mac --mac-source':
          f.macSource = neg(o, a0)
          break
        case 'set --match-set':
          f.set = neg(o, { name: a0, flags: o.args[1] ?? '' })
          break
        case 'comment --comment':
          f.comment = a0
          break
        default:
          f.other.push(key.trim())
      }
    }
  }
  return f
}

/** Whether the facts hold nothing but the named fields (and a comment). */
export function onlyFacts(f: RuleFacts, allowed: readonly (keyof RuleFacts)[]): boolean {
  if (f.other.length > 0) return false
  const checked: (keyof RuleFacts)[] = [
    'source',
    'destination',
    'inInterface',
    'outInterface',
    'protocol',
    'fragment',
    'sport',
    'dport',
    'icmpType',
    'states',
    'physdevIn',
    'physdevOut',
    'physdevIsBridged',
    'macSource',
    'set',
  ]
  return checked.every((k) => allowed.includes(k) || f[k] === null)
}
