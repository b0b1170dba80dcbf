/**
 * compileHost: one host's state → the netfilter state Neutron 21's iptables firewall
 * drivers leave in the kernel (filter and raw tables of both families, ipsets) and
 * the conntrack deletions the change from the previous state triggers.
 *
 * Neutron keeps agent state between refreshes (conntrack zones, the order in which
 * trusted and unfiltered ports were first seen, raw rules it failed to remove); we
 * carry it explicitly in AgentMemory so that each step is computed from the previous
 * one as the agent computes it. Per-port chains are memoized on the identity of the
 * (immutable) inputs they depend on, so a change to one group only recomputes the
 * chains of the ports that use or reference it.
 */
import { parseCidr } from '../model/addresses.js'
import type { Ethertype, HostConfig, HostState, Port, SecurityGroup, SecurityGroupRule } from '../model/types.js'
import type { Chain, Rule, Ruleset, Table } from '../netfilter/ir.js'
import { renderRuleBody } from '../netfilter/render.js'
import { brqName, chainPrefix, FILTER_TOP_CHAIN, ipsetName, portChainName, qvbName, tapName } from './names.js'
import {
  COMMENTS,
  ESTABLISHED_RULE,
  eui64LinkLocal,
  FALLBACK_DROP_RULE,
  fallbackJump,
  INGRESS_ICMP6_RULES,
  INVALID_RULE,
  ipsetSgRule,
  jumpRule,
  physdevRule,
  plainSgRule,
  SPOOF_DROP_RULE,
  spoofAllowRule,
  V4_DHCP_CLIENT_RULE,
  V4_DHCP_DISCOVER_RULE,
  V4_DHCP_SPOOF_RULE,
  V6_DHCP_CLIENT_RULE,
  V6_DHCP_SPOOF_RULE,
  V6_ICMP_ALLOW_RULE,
  V6_RA_DROP_RULE,
  V6_RA_IN_RULE,
  V6_UNSPEC_RULES,
  v4DhcpReplyRule,
  v6DhcpReplyRule,
  zoneRule,
} from './rules.js'

const ZONE_START = 4097
const ZONE_MAX = 65535
const ETHERTYPES: readonly Ethertype[] = ['IPv4', 'IPv6']

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
  /** Port chains per port object + the identity of everything they depend on. */
  readonly portCache = new WeakMap<Port, { deps: readonly unknown[]; chains: PortChains }>()
}

interface PortChains {
  readonly v4: readonly Chain[]
  readonly v6: readonly Chain[]
}

type PortKind = 'filtered' | 'trusted' | 'unfiltered'

function portKind(p: Port): PortKind {
  if ((p.device_owner ?? '').startsWith('network:')) return 'trusted'
  if (!p.port_security_enabled) return 'unfiltered'
  return 'filtered'
}

function compareIds(a: Port, b: Port): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

function zoneKey(config: HostConfig, p: Port): string {
  return config.firewall_driver === 'iptables_hybrid' ? p.id.slice(3, 14) : p.network_id.slice(0, 11)
}

/** Neutron's _find_open_zone: one above the highest, else the first gap from 4097. */
function findOpenZone(zones: Map<string, number>, live: ReadonlySet<string>): number {
  const used = [...new Set(zones.values())].sort((a, b) => a - b)
  if (used.length === 0) return ZONE_START
  const last = used[used.length - 1] ?? ZONE_START
  if (last < ZONE_MAX) return Math.max(last + 1, ZONE_START)
  // Exhausted: Neutron frees the zones of removed devices, then looks for a gap.
  for (const [k] of zones) if (!live.has(k)) zones.delete(k)
  const again = [...new Set(zones.values())].sort((a, b) => a - b)
  for (let i = 0; i < again.length; i++) if ((again[i] ?? 0) - i !== ZONE_START) return i + ZONE_START
  if (again.length + ZONE_START <= ZONE_MAX) return again.length + ZONE_START
  throw new Error('conntrack zones exhausted')
}

function membersOf(state: HostState, groupId: string, ethertype: Ethertype): readonly string[] {
  return state.members[groupId]?.[ethertype] ?? []
}

/**
 * A port is stateless when the first rule of its first group (as Neutron expands it
 * without ipset) belongs to a stateless group; an empty first group means stateful.
 */
function isStateless(
  p: Port,
  groups: ReadonlyMap<string, SecurityGroup>,
  state: HostState,
  config: HostConfig,
): boolean {
  const owner = p.device_owner ?? ''
  if (owner.startsWith('network:') || owner.startsWith('neutron:')) return false
  const first = p.security_groups[0]
  const g = first === undefined ? undefined : groups.get(first)
  if (!g) return false
  for (const r of g.rules) {
    if (config.enable_ipset || r.remote_group_id === null) return !g.stateful
    const expands = membersOf(state, r.remote_group_id, r.ethertype).some((m) => !p.fixed_ips.includes(m))
    if (expands) return !g.stateful
  }
  return false
}

function fixedIpsOf(p: Port, ethertype: Ethertype): string[] {
  const v = ethertype === 'IPv4' ? 4 : 6
  return p.fixed_ips.filter((ip) => parseCidr(ip)?.version === v)
}

/** Keep the last copy of duplicate lines of a chain (IptablesManager's _weed_out_duplicates). */
function dedupKeepLast(rules: readonly Rule[]): Rule[] {
  const keys = rules.map(renderRuleBody)
  const seen = new Set<string>()
  const out: Rule[] = []
  for (let i = rules.length - 1; i >= 0; i--) {
    const k = keys[i] as string
    if (seen.has(k)) continue
    seen.add(k)
    out.push(rules[i] as Rule)
  }
  return out.reverse()
}

export class HostCompiler {
  constructor(
    readonly config: HostConfig,
    readonly cache: CompileCache = new CompileCache(),
  ) {}

  private get prefix(): string {
    return chainPrefix(this.config.firewall_driver)
  }

  private chain(name: string): string {
    return `${this.prefix}-${name}`
  }

  private device(p: Port): string {
    return tapName(p.id)
  }

  private bridgeDevice(p: Port): string {
    return this.config.firewall_driver === 'iptables_hybrid' ? qvbName(p.id) : brqName(p.network_id)
  }

  /** What "Set zone for …" names: the port id (hybrid) or the device minus 4 characters (iptables). */
  private zoneCommentName(p: Port): string {
    return this.config.firewall_driver === 'iptables_hybrid' ? p.id : this.device(p).slice(4)
  }

  private sgRule(r: SecurityGroupRule, variant: string, make: () => Rule): Rule {
    let byVariant = this.cache.sgRuleCache.get(r)
    if (!byVariant) {
      byVariant = new Map()
      this.cache.sgRuleCache.set(r, byVariant)
    }
    let hit = byVariant.get(variant)
    if (!hit) {
      hit = make()
      byVariant.set(variant, hit)
    }
    return hit
  }

  /** The group rules of one direction and ethertype for a port, in port group order. */
  private groupRules(
    p: Port,
    direction: 'ingress' | 'egress',
    ethertype: Ethertype,
    groups: ReadonlyMap<string, SecurityGroup>,
    state: HostState,
  ): Rule[] {
    const out: Rule[] = []
    for (const gid of p.security_groups) {
      const g = groups.get(gid)
      if (!g) continue
      for (const r of g.rules) {
        if (r.direction !== direction || r.ethertype !== ethertype) continue
        if (r.remote_group_id === null) {
          out.push(this.sgRule(r, 'plain', () => plainSgRule(r, r.remote_ip_prefix)))
        } else if (this.config.enable_ipset) {
          const name = ipsetName(ethertype, r.remote_group_id)
          out.push(this.sgRule(r, 'ipset', () => ipsetSgRule(r, name)))
        } else {
          for (const m of membersOf(state, r.remote_group_id, ethertype)) {
            if (p.fixed_ips.includes(m)) continue
            out.push(this.sgRule(r, `m:${m}`, () => plainSgRule(r, m)))
          }
        }
      }
    }
    return out
  }

  /** Provider rules + group rules, first copy kept (Neutron's seen_sg_rules), framed by state rules. */
  private sgSection(provider: readonly Rule[], sg: readonly Rule[]): Rule[] {
    const out: Rule[] = [ESTABLISHED_RULE]
    const seen = new Set<string>()
    for (const r of provider.concat(sg)) {
      const k = renderRuleBody(r)
      if (seen.has(k)) continue
      seen.add(k)
      out.push(r)
    }
    out.push(INVALID_RULE, fallbackJump(this.chain('sg-fallback')))
    return out
  }

  /** The (MAC, address) pairs allowed out of a port for one family (Neutron's _spoofing_rule). */
  private spoofEntries(p: Port, ethertype: Ethertype): Array<[string, string | null]> {
    const v = ethertype === 'IPv4' ? 4 : 6
    const entries: Array<[string, string | null]> = []
    const add = (mac: string, ip: string): void => {
      const c = parseCidr(ip)
      if (!c) return
      if (c.version !== v) return
      entries.push([mac, ip])
      if (v === 6) {
        const lla = eui64LinkLocal(mac)
        if (!entries.some(([m, a]) => m === mac && a === lla)) entries.push([mac, lla])
      }
    }
    for (const pair of p.allowed_address_pairs) add(pair.mac_address ?? p.mac_address, pair.ip_address)
    for (const ip of p.fixed_ips) add(p.mac_address, ip)
    if (p.fixed_ips.length === 0) entries.push([p.mac_address, null])
    return entries
  }

  private spoofRules(entries: Array<[string, string | null]>): Rule[] {
    const rules: Rule[] = []
    for (const [mac, ip] of entries) {
      let cidr: string | null = null
      if (ip !== null) {
        const c = parseCidr(ip)
        if (!c) continue
        cidr = `${c.network}/${c.prefix}`
      }
      rules.push(spoofAllowRule(cidr, mac))
    }
    rules.push(SPOOF_DROP_RULE)
    return rules
  }

  /** The i/o/s chains of one filtered port in one family. */
  private portChains(
    p: Port,
    ethertype: Ethertype,
    groups: ReadonlyMap<string, SecurityGroup>,
    state: HostState,
  ): Chain[] {
    const driver = this.config.firewall_driver
    const iChain = portChainName(driver, 'i', p.id)
    const oChain = portChainName(driver, 'o', p.id)
    const sChain = portChainName(driver, 's', p.id)
    const fixed = fixedIpsOf(p, ethertype)
    const chains: Chain[] = []

    // Ingress.
    const provider: Rule[] = []
    if (ethertype === 'IPv6') {
      if (fixed.length > 0) provider.push(V6_RA_IN_RULE)
      for (const ip of fixed) provider.push(v6DhcpReplyRule(`${ip}/128`))
      provider.push(v6DhcpReplyRule('fe80::/64'))
    } else {
      for (const ip of fixed) provider.push(v4DhcpReplyRule(`${ip}/32`))
      provider.push(v4DhcpReplyRule('255.255.255.255/32'))
    }
    const ingress: Rule[] = ethertype === 'IPv6' ? [...INGRESS_ICMP6_RULES] : []
    ingress.push(...this.sgSection(provider, this.groupRules(p, 'ingress', ethertype, groups, state)))
    chains.push({ name: iChain, policy: null, rules: dedupKeepLast(ingress) })

    // Egress and anti-spoofing.
    const entries = this.spoofEntries(p, ethertype)
    const egress: Rule[] = []
    if (ethertype === 'IPv4') egress.push(V4_DHCP_DISCOVER_RULE)
    else egress.push(...V6_UNSPEC_RULES)
    if (entries.length > 0) {
      egress.push(jumpRule(sChain))
      chains.push({ name: sChain, policy: null, rules: dedupKeepLast(this.spoofRules(entries)) })
    }
    if (ethertype === 'IPv4') egress.push(V4_DHCP_CLIENT_RULE, V4_DHCP_SPOOF_RULE)
    else egress.push(V6_RA_DROP_RULE, V6_ICMP_ALLOW_RULE, V6_DHCP_CLIENT_RULE, V6_DHCP_SPOOF_RULE)
    egress.push(...this.sgSection([], this.groupRules(p, 'egress', ethertype, groups, state)))
    chains.push({ name: oChain, policy: null, rules: dedupKeepLast(egress) })
    return chains
  }

  /** Everything a port's chains depend on, as identities (for the memo). */
  private portDeps(p: Port, groups: ReadonlyMap<string, SecurityGroup>, state: HostState): unknown[] {
    const deps: unknown[] = []
    for (const gid of p.security_groups) {
      const g = groups.get(gid)
      deps.push(g)
      if (!g || this.config.enable_ipset) continue
      for (const r of g.rules) if (r.remote_group_id !== null) deps.push(state.members[r.remote_group_id])
    }
    return deps
  }

  private cachedPortChains(p: Port, groups: ReadonlyMap<string, SecurityGroup>, state: HostState): PortChains {
    const deps = this.portDeps(p, groups, state)
    const hit = this.cache.portCache.get(p)
    if (hit && hit.deps.length === deps.length && hit.deps.every((d, i) => d === deps[i])) return hit.chains
    const chains = {
      v4: this.portChains(p, 'IPv4', groups, state),
      v6: this.portChains(p, 'IPv6', groups, state),
    }
    this.cache.portCache.set(p, { deps, chains })
    return chains
  }

  private zoneRules(p: Port, zone: number, stateless: boolean): Rule[] {
    const name = this.zoneCommentName(p)
    const text = stateless ? `Make ${name} stateless` : `Set zone for ${name}`
    const z = stateless ? null : zone
    const br = this.bridgeDevice(p)
    return [
      zoneRule('physdev', br, text, z),
      zoneRule('iface', br, text, z),
      zoneRule('physdev', this.device(p), text, z),
    ]
  }

  compile(state: HostState, memory: AgentMemory = EMPTY_MEMORY): CompiledHost {
    const config = this.config
    const groups = new Map(state.security_groups.map((g) => [g.id, g]))
    const filtered = state.ports.filter((p) => portKind(p) === 'filtered').sort(compareIds)
    const prevState = memory.state
    const prevFiltered = prevState ? prevState.ports.filter((p) => portKind(p) === 'filtered').sort(compareIds) : []

    // Zones: walk the ports in sorted order, hand out the next zone to new keys.
    const zones = new Map(memory.zones)
    const live = new Set(state.ports.map((p) => zoneKey(config, p)))
    for (const p of filtered) {
      const k = zoneKey(config, p)
      if (!zones.has(k)) zones.set(k, findOpenZone(zones, live))
    }

    // Trusted and unfiltered ports keep the order in which they were first seen.
    const orderOf = (kind: PortKind, prev: readonly string[]): string[] => {
      const now = state.ports.filter((p) => portKind(p) === kind).map((p) => p.id)
      const nowSet = new Set(now)
      const kept = prev.filter((id) => nowSet.has(id))
      const keptSet = new Set(kept)
      return kept.concat(now.filter((id) => !keptSet.has(id)))
    }
    const trusted = orderOf('trusted', memory.trusted)
    const unfiltered = orderOf('unfiltered', memory.unfiltered)
    const byId = new Map(state.ports.map((p) => [p.id, p]))

    // Raw zone rules: Neutron removes each previous port's rules by regenerating their
    // text with the *current* statefulness, then appends the current ports' rules.
    // Rules whose text no longer matches stay behind (surprise 1 in neutron-behaviour.md).
    const remove = new Set<string>()
    for (const p of prevFiltered) {
      const z = zones.get(zoneKey(config, p))
      if (z === undefined) continue
      for (const r of this.zoneRules(p, z, isStateless(p, groups, state, config))) remove.add(renderRuleBody(r))
    }
    const raw: Rule[] = memory.raw.filter((r) => !remove.has(renderRuleBody(r)))
    for (const p of filtered) {
      const z = zones.get(zoneKey(config, p)) as number
      raw.push(...this.zoneRules(p, z, isStateless(p, groups, state, config)))
    }
    const rawRules = dedupKeepLast(raw)

    const initialized = memory.initialized || state.ports.length > 0
    const portChains = filtered.map((p) => this.cachedPortChains(p, groups, state))
    const ipv4 = initialized
      ? this.ruleset(4, filtered, portChains, trusted, unfiltered, byId, rawRules)
      : EMPTY_RULESET
    const ipv6 = initialized
      ? this.ruleset(6, filtered, portChains, trusted, unfiltered, byId, rawRules)
      : EMPTY_RULESET

    const ipsets = config.enable_ipset ? computeIpsets(filtered, groups, state) : new Map<string, string[]>()
    const conntrack = prevState
      ? conntrackDeletions(config, prevState, memory, state, groups, zones, filtered, prevFiltered)
      : []

    const ipsetRecord: Record<string, readonly string[]> = {}
    for (const [k, v] of ipsets) ipsetRecord[k] = v
    return {
      ipv4,
      ipv6,
      ipsets: ipsetRecord,
      conntrack,
      memory: { initialized, zones, trusted, unfiltered, raw: rawRules, state, ipsets },
    }
  }

  private ruleset(
    family: 4 | 6,
    filtered: readonly Port[],
    portChains: readonly PortChains[],
    trusted: readonly string[],
    unfiltered: readonly string[],
    byId: ReadonlyMap<string, Port>,
    rawRules: readonly Rule[],
  ): Ruleset {
    const c = (n: string): string => this.chain(n)
    const forward: Rule[] = []
    const input: Rule[] = []
    const sgChain: Rule[] = []
    const driver = this.config.firewall_driver
    for (const p of filtered) {
      const dev = this.device(p)
      forward.push(
        physdevRule('out', dev, COMMENTS.VM_INT_SG, c('sg-chain')),
        physdevRule('in', dev, COMMENTS.VM_INT_SG, c('sg-chain')),
      )
      sgChain.push(
        physdevRule('out', dev, COMMENTS.SG_TO_VM_SG, portChainName(driver, 'i', p.id)),
        physdevRule('in', dev, COMMENTS.SG_TO_VM_SG, portChainName(driver, 'o', p.id)),
      )
      input.push(physdevRule('in', dev, COMMENTS.INPUT_TO_SG, portChainName(driver, 'o', p.id)))
    }
    for (const id of trusted) {
      const dev = tapName(id)
      forward.push(
        physdevRule('out', dev, COMMENTS.TRUSTED_ACCEPT, 'ACCEPT'),
        physdevRule('in', dev, COMMENTS.TRUSTED_ACCEPT, 'ACCEPT'),
      )
    }
    for (const id of unfiltered) {
      const p = byId.get(id)
      if (!p) continue
      const dev = this.device(p)
      forward.push(
        physdevRule('out', dev, COMMENTS.PORT_SEC_ACCEPT, 'ACCEPT'),
        physdevRule('in', dev, COMMENTS.PORT_SEC_ACCEPT, 'ACCEPT'),
      )
      input.push(physdevRule('in', dev, COMMENTS.PORT_SEC_ACCEPT, 'ACCEPT'))
    }
    sgChain.push({ matches: [], target: { name: 'ACCEPT', goto: false, options: [] } })

    const filterChains: Chain[] = [
      { name: 'INPUT', policy: 'ACCEPT', rules: [jumpRule(c('INPUT'))] },
      { name: 'FORWARD', policy: 'ACCEPT', rules: [jumpRule(FILTER_TOP_CHAIN), jumpRule(c('FORWARD'))] },
      { name: 'OUTPUT', policy: 'ACCEPT', rules: [jumpRule(FILTER_TOP_CHAIN), jumpRule(c('OUTPUT'))] },
      { name: FILTER_TOP_CHAIN, policy: null, rules: [jumpRule(c('local'))] },
      { name: c('FORWARD'), policy: null, rules: dedupKeepLast(forward) },
      { name: c('INPUT'), policy: null, rules: dedupKeepLast(input) },
      { name: c('OUTPUT'), policy: null, rules: [] },
      { name: c('local'), policy: null, rules: [] },
      { name: c('sg-chain'), policy: null, rules: sgChain },
      { name: c('sg-fallback'), policy: null, rules: [FALLBACK_DROP_RULE] },
    ]
    for (const pc of portChains) filterChains.push(...(family === 4 ? pc.v4 : pc.v6))
    const filter: Table = { name: 'filter', chains: filterChains }
    const raw: Table = {
      name: 'raw',
      chains: [
        { name: 'PREROUTING', policy: 'ACCEPT', rules: [jumpRule(c('PREROUTING'))] },
        { name: 'OUTPUT', policy: 'ACCEPT', rules: [jumpRule(c('OUTPUT'))] },
        { name: c('OUTPUT'), policy: null, rules: [] },
        { name: c('PREROUTING'), policy: null, rules: rawRules },
      ],
    }
    return { tables: [filter, raw] }
  }
}

const EMPTY_RULESET: Ruleset = { tables: [] }

/** The remote groups (per ethertype) that a port's rules reference. */
function remoteGroupsOf(p: Port, groups: ReadonlyMap<string, SecurityGroup>): Map<Ethertype, Set<string>> {
  const out = new Map<Ethertype, Set<string>>([
    ['IPv4', new Set()],
    ['IPv6', new Set()],
  ])
  for (const gid of p.security_groups) {
    const g = groups.get(gid)
    if (!g) continue
    for (const r of g.rules) if (r.remote_group_id !== null) out.get(r.ethertype)?.add(r.remote_group_id)
  }
  return out
}

/** ipset(8) spelling of a member: host address bare, network as address/prefix; /0 split in halves. */
function ipsetEntries(member: string): string[] {
  const c = parseCidr(member)
  if (!c) return []
  const max = c.version === 4 ? 32 : 128
  if (c.prefix === 0) return c.version === 4 ? ['0.0.0.0/1', '128.0.0.0/1'] : ['::/1', '8000::/1']
  return [c.prefix === max ? c.network : `${c.network}/${c.prefix}`]
}

function compareIpsetEntries(a: string, b: string): number {
  const x = parseCidr(a)
  const y = parseCidr(b)
  if (!x || !y) return a < b ? -1 : 1
  if (x.version !== y.version) return x.version - y.version
  const bx = x.network.includes(':') ? expand6(x.network) : expand4(x.network)
  const by = y.network.includes(':') ? expand6(y.network) : expand4(y.network)
  if (bx !== by) return bx < by ? -1 : 1
  return x.prefix - y.prefix
}

function expand4(a: string): string {
  return a
    .split('.')
    .map((o) => o.padStart(3, '0'))
    .join('.')
}

function expand6(a: string): string {
  const [head = '', tail = ''] = a.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = a.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
  const fill = a.includes('::') ? new Array(8 - h.length - t.length).fill('0') : []
  return [...h, ...fill, ...t].map((x) => x.padStart(4, '0')).join(':')
}

function computeIpsets(
  filtered: readonly Port[],
  groups: ReadonlyMap<string, SecurityGroup>,
  state: HostState,
): Map<string, string[]> {
  const referenced = new Map<string, [Ethertype, string]>()
  for (const p of filtered)
    for (const [eth, set] of remoteGroupsOf(p, groups))
      for (const gid of set) referenced.set(ipsetName(eth, gid), [eth, gid])
  const names = [...referenced.keys()].sort()
  const out = new Map<string, string[]>()
  for (const name of names) {
    const [eth, gid] = referenced.get(name) as [Ethertype, string]
    const entries = new Set<string>()
    for (const m of membersOf(state, gid, eth)) for (const e of ipsetEntries(m)) entries.add(e)
    out.set(name, [...entries].sort(compareIpsetEntries))
  }
  return out
}

/** Neutron's IpConntrackManager command: `conntrack -D [-p P] -f FAM -d|-s LOCAL -w ZONE [-s|-d REMOTE]`. */
function conntrackDeletions(
  config: HostConfig,
  prev: HostState,
  memory: AgentMemory,
  state: HostState,
  groups: ReadonlyMap<string, SecurityGroup>,
  zones: ReadonlyMap<string, number>,
  filtered: readonly Port[],
  prevFiltered: readonly Port[],
): string[] {
  const cmds = new Set<string>()
  const prevGroups = new Map(prev.security_groups.map((g) => [g.id, g]))
  const emit = (
    devices: readonly Port[],
    ethertype: Ethertype,
    direction: 'ingress' | 'egress',
    protocol: string | null,
    remote: string | null,
  ): void => {
    const fam = ethertype === 'IPv4' ? 'ipv4' : 'ipv6'
    for (const d of devices) {
      const zone = zones.get(zoneKey(config, d))
      if (zone === undefined) continue
      for (const ip of fixedIpsOf(d, ethertype)) {
        let cmd = 'conntrack -D'
        if (protocol !== null) cmd += ` -p ${protocol === '0' ? 'ip' : protocol}`
        cmd += ` -f ${fam} ${direction === 'ingress' ? '-d' : '-s'} ${ip} -w ${zone}`
        if (remote !== null) cmd += ` ${direction === 'ingress' ? '-s' : '-d'} ${remote}`
        cmds.add(cmd)
      }
    }
  }

  // 1. Rules deleted from a group: the group's ports, by protocol/family/direction.
  const prevUsed = new Set(prevFiltered.flatMap((p) => p.security_groups))
  for (const g of state.security_groups) {
    const old = prevGroups.get(g.id)
    if (!old || old === g || !prevUsed.has(g.id)) continue
    const now = new Set(g.rules.map(ruleKey))
    const deleted = old.rules.filter((r) => !now.has(ruleKey(r)))
    if (deleted.length === 0) continue
    const devices = filtered.filter((p) => p.security_groups.includes(g.id))
    for (const r of deleted) emit(devices, r.ethertype, r.direction, r.protocol, null)
  }

  // 2. A port that left one of its groups: all its entries, both families.
  const prevById = new Map(prevFiltered.map((p) => [p.id, p]))
  for (const p of filtered) {
    const before = prevById.get(p.id)
    if (!before) continue
    if (before.security_groups.some((g) => !p.security_groups.includes(g)))
      for (const eth of ETHERTYPES) for (const dir of ['ingress', 'egress'] as const) emit([p], eth, dir, null, null)
  }

  // 3. A port removed: all its entries, both families (with its last known addresses).
  const nowIds = new Set(filtered.map((p) => p.id))
  const nowAll = new Set(state.ports.map((p) => p.id))
  for (const p of prevFiltered) {
    if (nowIds.has(p.id) || nowAll.has(p.id)) continue
    for (const eth of ETHERTYPES) for (const dir of ['ingress', 'egress'] as const) emit([p], eth, dir, null, null)
  }

  // 4. Members that left a remote group: entries between each referencing port and the member.
  const prevRefs = new Map<Ethertype, Set<string>>([
    ['IPv4', new Set()],
    ['IPv6', new Set()],
  ])
  for (const p of prevFiltered)
    for (const [eth, set] of remoteGroupsOf(p, prevGroups)) for (const g of set) prevRefs.get(eth)?.add(g)
  const nowRefs = new Map<Ethertype, Set<string>>([
    ['IPv4', new Set()],
    ['IPv6', new Set()],
  ])
  for (const p of filtered)
    for (const [eth, set] of remoteGroupsOf(p, groups)) for (const g of set) nowRefs.get(eth)?.add(g)
  for (const eth of ETHERTYPES) {
    for (const gid of prevRefs.get(eth) ?? []) {
      if (!nowRefs.get(eth)?.has(gid)) continue
      let left: string[]
      if (config.enable_ipset) {
        const name = ipsetName(eth, gid)
        const before = memory.ipsets.get(name) ?? []
        const after = new Set(membersOf(state, gid, eth).flatMap(ipsetEntries))
        left = before.filter((e) => !after.has(e)).map((e) => e.split('/')[0] as string)
      } else {
        const after = new Set(membersOf(state, gid, eth))
        left = membersOf(prev, gid, eth).filter((m) => !after.has(m))
      }
      if (left.length === 0) continue
      const devices = prevFiltered.filter((p) =>
        p.security_groups.some((sg) => prevGroups.get(sg)?.rules.some((r) => r.remote_group_id === gid)),
      )
      for (const m of left) {
        emit(devices, eth, 'ingress', null, m)
        emit(devices, eth, 'egress', null, m)
      }
    }
  }
  return [...cmds].sort()
}

function ruleKey(r: SecurityGroupRule): string {
  return JSON.stringify([
    r.id,
    r.direction,
    r.ethertype,
    r.protocol,
    r.port_range_min,
    r.port_range_max,
    r.remote_ip_prefix,
    r.remote_group_id,
  ])
}

/** Compile one state with a fresh compiler (convenience for callers without a long-lived compiler). */
export function compileHost(state: HostState, config: HostConfig, memory?: AgentMemory): CompiledHost {
  return new HostCompiler(config).compile(state, memory)
}
