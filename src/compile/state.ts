/**
 * The compiler's state and shared facts: what the agent remembers between refreshes
 * (AgentMemory), the caches a compiler keeps across compiles (CompileCache), and small
 * facts about ports and groups that host.ts, ipsets.ts and conntrack.ts all use.
 */
import { parseCidr } from '../model/addresses.js'
import type { Ethertype, HostConfig, HostState, Port, SecurityGroup, SecurityGroupRule } from '../model/types.js'
import type { Chain, Rule, Ruleset } from '../netfilter/ir.js'

export const ZONE_START = 4097
export const ZONE_MAX = 65535
export const ETHERTYPES: readonly Ethertype[] = ['IPv4', 'IPv6']

/** What the agent remembers between refreshes. Treat as immutable. */
export interface AgentMemory {
  /** Whether Neutron's common chains exist (after the first port was ever seen). */
  readonly initialized: boolean
  /** Zone map, keyed like Neutron's _device_key (hybrid: port id chars 3-14; iptables: network id chars 0-11). */
  readonly zones: ReadonlyMap<string, number>
  /** Trusted ports, in the order first seen. */
  readonly trusted: readonly string[]
  /** Ports without port security, in the order first processed. */
  readonly unfiltered: readonly string[]
  /** Rules of the raw P-PREROUTING chain (identical in both families). */
  readonly raw: readonly Rule[]
  /** The state this memory was computed for (conntrack deletions are computed from it). */
  readonly state: HostState | null
  /** ipset contents after the last refresh (name → members in ipset spelling). */
  readonly ipsets: ReadonlyMap<string, readonly string[]>
}

export const EMPTY_MEMORY: AgentMemory = {
  initialized: false,
  zones: new Map(),
  trusted: [],
  unfiltered: [],
  raw: [],
  state: null,
  ipsets: new Map(),
}

export interface CompiledHost {
  readonly ipv4: Ruleset
  readonly ipv6: Ruleset
  /** Every ipset that exists, name → members, ipset spelling, sorted. */
  readonly ipsets: Readonly<Record<string, readonly string[]>>
  /** `conntrack -D …` command lines issued to reach this state, sorted, unique. */
  readonly conntrack: readonly string[]
  readonly memory: AgentMemory
}

/** Caches that survive between compiles (keyed on object identity of immutable inputs). */
export class CompileCache {
  /** Rendered rule of one group rule, per (rule, ipset on, remote prefix). */
  readonly sgRuleCache = new WeakMap<SecurityGroupRule, Map<string, Rule>>()
  /** Small per-port rules (jumps, zone rules) and ipset contents, by a string key. */
  readonly keyed = new Map<string, readonly unknown[]>()
  /** ipset entries of one member list, sorted (keyed on the list's identity). */
  readonly ipsetCache = new WeakMap<readonly string[], readonly string[]>()
  readonly entries = new Map<string, PortEntry>()
  /** The memory the last compile returned, and the pieces the fast path reuses. */
  lastMemory: AgentMemory | null = null
  lastChains: { memory: AgentMemory; common: readonly Chain[]; portChains: readonly PortChains[] } | null = null
  readonly zoneKeys = new WeakMap<Port, string>()
  readonly splits = new WeakMap<readonly Port[], PortSplit>()
  /** Group rules of one port group list (ipset on: they do not depend on the port). */
  readonly sgLists = new Map<string, { groups: readonly (SecurityGroup | undefined)[]; lists: Map<string, SgList> }>()
  /** Rules that depend only on one port's own attributes. */
  readonly portLocal = new WeakMap<Port, { IPv4: PortLocal; IPv6: PortLocal }>()
  /** Remote groups referenced by one group's rules, per ethertype. */
  readonly remoteRefs = new WeakMap<SecurityGroup, ReadonlyMap<Ethertype, ReadonlySet<string>>>()
  /** Port chains per port object + the identity of everything they depend on. */
  readonly portCache = new WeakMap<Port, { deps: readonly unknown[]; chains: PortChains }>()
}

/** Per-port rules that do not depend on groups, kept across compiles (keyed by port id). */
export interface PortEntry {
  readonly networkId: string
  readonly zoneRules: Array<{ zone: number; stateless: boolean; rules: readonly Rule[] }>
  jumps: readonly Rule[] | null
}

/** A port list split by kind; filtered ports sorted by id. */
export interface PortSplit {
  readonly filtered: readonly Port[]
  readonly trusted: readonly string[]
  readonly unfiltered: readonly string[]
}

export interface PortLocal {
  readonly iChain: string
  readonly oChain: string
  /** Provider rules, first copy kept, and their texts. */
  readonly provider: readonly Rule[]
  readonly providerTexts: ReadonlySet<string>
  readonly spoof: Chain | null
  readonly jumpToSpoof: Rule | null
}

export interface PortChains {
  readonly v4: readonly Chain[]
  readonly v6: readonly Chain[]
}

export type PortKind = 'filtered' | 'trusted' | 'unfiltered'

export function portKind(p: Port): PortKind {
  if ((p.device_owner ?? '').startsWith('network:')) return 'trusted'
  if (!p.port_security_enabled) return 'unfiltered'
  return 'filtered'
}

export function splitPorts(ports: readonly Port[], cache: CompileCache): PortSplit {
  let hit = cache.splits.get(ports)
  if (!hit) {
    const filtered: Port[] = []
    const trusted: string[] = []
    const unfiltered: string[] = []
    for (const p of ports) {
      const k = portKind(p)
      if (k === 'filtered') filtered.push(p)
      else if (k === 'trusted') trusted.push(p.id)
      else unfiltered.push(p.id)
    }
    filtered.sort(compareIds)
    hit = { filtered, trusted, unfiltered }
    cache.splits.set(ports, hit)
  }
  return hit
}

/** Group rules of one direction/ethertype, deduplicated (first copy kept), with their texts. */
export interface SgList {
  readonly rules: readonly Rule[]
  readonly texts: ReadonlySet<string>
  /** The fixed ingress ICMPv6 rules that no group rule of this list repeats. */
  readonly fixedIcmp6: readonly Rule[]
}

export function compareIds(a: Port, b: Port): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

export function zoneKey(config: HostConfig, p: Port): string {
  return config.firewall_driver === 'iptables_hybrid' ? p.id.slice(3, 14) : p.network_id.slice(0, 11)
}

export function membersOf(state: HostState, groupId: string, ethertype: Ethertype): readonly string[] {
  return state.members[groupId]?.[ethertype] ?? []
}

export function fixedIpsOf(p: Port, ethertype: Ethertype): string[] {
  const v = ethertype === 'IPv4' ? 4 : 6
  return p.fixed_ips.filter((ip) => parseCidr(ip)?.version === v)
}

/** The remote groups (per ethertype) that one group's rules reference (memoized per group object). */
export function sameRefs(
  a: ReadonlyMap<Ethertype, ReadonlySet<string>> | null,
  b: ReadonlyMap<Ethertype, ReadonlySet<string>> | null,
): boolean {
  for (const eth of ETHERTYPES) {
    const x = a?.get(eth) ?? new Set<string>()
    const y = b?.get(eth) ?? new Set<string>()
    if (x.size !== y.size) return false
    for (const v of x) if (!y.has(v)) return false
  }
  return true
}

export function groupRemoteRefs(g: SecurityGroup, cache: CompileCache): ReadonlyMap<Ethertype, ReadonlySet<string>> {
  let hit = cache.remoteRefs.get(g)
  if (!hit) {
    const m = new Map<Ethertype, Set<string>>([
      ['IPv4', new Set()],
      ['IPv6', new Set()],
    ])
    for (const r of g.rules) if (r.remote_group_id !== null) m.get(r.ethertype)?.add(r.remote_group_id)
    hit = m
    cache.remoteRefs.set(g, hit)
  }
  return hit
}

/** The remote groups (per ethertype) that any of these ports' rules reference. */
export function remoteRefsOfPorts(
  ports: readonly Port[],
  groups: ReadonlyMap<string, SecurityGroup>,
  cache: CompileCache,
): Map<Ethertype, Set<string>> {
  const out = new Map<Ethertype, Set<string>>([
    ['IPv4', new Set()],
    ['IPv6', new Set()],
  ])
  const done = new Set<string>()
  for (const p of ports)
    for (const gid of p.security_groups) {
      if (done.has(gid)) continue
      done.add(gid)
      const g = groups.get(gid)
      if (!g) continue
      for (const [eth, set] of groupRemoteRefs(g, cache)) for (const r of set) out.get(eth)?.add(r)
    }
  return out
}
