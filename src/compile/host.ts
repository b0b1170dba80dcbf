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
import { conntrackDeletions } from './conntrack.js'
import { computeIpsets } from './ipsets.js'
import {
  type AgentMemory,
  CompileCache,
  type CompiledHost,
  EMPTY_MEMORY,
  fixedIpsOf,
  groupRemoteRefs,
  membersOf,
  type PortChains,
  type PortEntry,
  type PortLocal,
  type SgList,
  sameRefs,
  splitPorts,
  ZONE_MAX,
  ZONE_START,
  zoneKey,
} from './state.js'

export type { AgentMemory, CompiledHost } from './state.js'
export { CompileCache, EMPTY_MEMORY } from './state.js'

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
  V4_DHCP_BROADCAST_RULE,
  V4_DHCP_CLIENT_RULE,
  V4_DHCP_DISCOVER_RULE,
  V4_DHCP_SPOOF_RULE,
  V6_DHCP_CLIENT_RULE,
  V6_DHCP_LINK_LOCAL_RULE,
  V6_DHCP_SPOOF_RULE,
  V6_ICMP_ALLOW_RULE,
  V6_RA_DROP_RULE,
  V6_RA_IN_RULE,
  V6_UNSPEC_RULES,
  v4DhcpReplyRule,
  v6DhcpReplyRule,
  zoneRule,
} from './rules.js'

function memo<T>(map: Map<string, readonly unknown[]>, key: string, make: () => readonly T[]): readonly T[] {
  let hit = map.get(key) as readonly T[] | undefined
  if (!hit) {
    hit = make()
    map.set(key, hit)
  }
  return hit
}

/**
 * Neutron's _find_open_zone: one above the highest zone ever handed out; once 65535
 * is reached, the zones of removed devices are freed and the first gap is used.
 * `highest` is the running maximum (kept by the caller so allocation stays O(1)).
 */
function findOpenZone(zones: Map<string, number>, highest: number, live: ReadonlySet<string>): number {
  if (zones.size === 0) return ZONE_START
  if (highest < ZONE_MAX) return Math.max(highest + 1, ZONE_START)
  for (const [k] of zones) if (!live.has(k)) zones.delete(k)
  const used = [...new Set(zones.values())].sort((a, b) => a - b)
  for (let i = 0; i < used.length; i++) if ((used[i] ?? 0) - i !== ZONE_START) return i + ZONE_START
  if (used.length + ZONE_START <= ZONE_MAX) return used.length + ZONE_START
  throw new Error('conntrack zones exhausted')
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
  private readonly fallback: Rule

  constructor(
    readonly config: HostConfig,
    readonly cache: CompileCache = new CompileCache(),
  ) {
    this.fallback = fallbackJump(this.chain('sg-fallback'))
  }

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

  /**
   * The group rules of a port for one direction and ethertype, first copy kept (Neutron's
   * seen_sg_rules). With ipset they do not depend on the port, so ports with the same
   * group list share one list.
   */
  private sgList(
    p: Port,
    direction: 'ingress' | 'egress',
    ethertype: Ethertype,
    groups: ReadonlyMap<string, SecurityGroup>,
    state: HostState,
  ): SgList {
    const make = (): SgList => {
      const rules: Rule[] = []
      const texts = new Set<string>()
      for (const r of this.groupRules(p, direction, ethertype, groups, state)) {
        const k = renderRuleBody(r)
        if (texts.has(k)) continue
        texts.add(k)
        rules.push(r)
      }
      return { rules, texts, fixedIcmp6: INGRESS_ICMP6_RULES.filter((r) => !texts.has(renderRuleBody(r))) }
    }
    if (!this.config.enable_ipset) return make()
    const key = p.security_groups.join(' ')
    const current = p.security_groups.map((g) => groups.get(g))
    let entry = this.cache.sgLists.get(key)
    if (!entry || entry.groups.length !== current.length || entry.groups.some((g, i) => g !== current[i])) {
      entry = { groups: current, lists: new Map() }
      this.cache.sgLists.set(key, entry)
    }
    const sub = direction + ethertype
    let list = entry.lists.get(sub)
    if (!list) {
      list = make()
      entry.lists.set(sub, list)
    }
    return list
  }

  /** RELATED,ESTABLISHED, provider rules + group rules (first copy kept), INVALID, fallback jump. */
  /** Appends RELATED,ESTABLISHED, provider rules + group rules (first copy kept), INVALID, fallback jump. */
  private sgSection(out: Rule[], local: PortLocal | null, sg: SgList): void {
    out.push(ESTABLISHED_RULE)
    if (local !== null) {
      for (const r of local.provider) out.push(r)
      let clash = false
      for (const k of local.providerTexts) if (sg.texts.has(k)) clash = true
      if (clash) {
        for (const r of sg.rules) if (!local.providerTexts.has(renderRuleBody(r))) out.push(r)
      } else for (const r of sg.rules) out.push(r)
    } else for (const r of sg.rules) out.push(r)
    out.push(INVALID_RULE, this.fallback)
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

  /**
   * The spoof chain's rules. Two entries with the same (MAC, network) make the same line,
   * and IptablesManager keeps the last copy of a duplicate line: so do we, keyed on the
   * pair (cheaper than comparing rendered text, and the same thing for these rules).
   */
  private spoofRules(entries: Array<[string, string | null]>): Rule[] {
    const keyed: Array<[string, string | null, string]> = []
    for (const [mac, ip] of entries) {
      let cidr: string | null = null
      if (ip !== null) {
        const c = parseCidr(ip)
        if (!c) continue
        cidr = `${c.network}/${c.prefix}`
      }
      keyed.push([mac.toUpperCase(), cidr, `${mac.toUpperCase()} ${cidr}`])
    }
    const last = new Map<string, number>()
    keyed.forEach(([, , k], i) => {
      last.set(k, i)
    })
    const rules: Rule[] = []
    keyed.forEach(([mac, cidr, k], i) => {
      if (last.get(k) === i) rules.push(spoofAllowRule(cidr, mac))
    })
    rules.push(SPOOF_DROP_RULE)
    return rules
  }

  /** Rules that depend only on the port itself (addresses, MAC): built once per port object. */
  private portLocal(p: Port, ethertype: Ethertype): PortLocal {
    let both = this.cache.portLocal.get(p)
    if (!both) {
      both = { IPv4: this.makePortLocal(p, 'IPv4'), IPv6: this.makePortLocal(p, 'IPv6') }
      this.cache.portLocal.set(p, both)
    }
    return both[ethertype]
  }

  private makePortLocal(p: Port, ethertype: Ethertype): PortLocal {
    const fixed = fixedIpsOf(p, ethertype)
    const provider: Rule[] = []
    if (ethertype === 'IPv6') {
      if (fixed.length > 0) provider.push(V6_RA_IN_RULE)
      for (const ip of fixed) provider.push(v6DhcpReplyRule(`${ip}/128`))
      provider.push(V6_DHCP_LINK_LOCAL_RULE)
    } else {
      for (const ip of fixed) provider.push(v4DhcpReplyRule(`${ip}/32`))
      provider.push(V4_DHCP_BROADCAST_RULE)
    }
    const entries = this.spoofEntries(p, ethertype)
    const driver = this.config.firewall_driver
    const sChain = portChainName(driver, 's', p.id)
    // Provider rules are distinct lines (one per fixed IP). Of them, only the RA rule can
    // equal a group rule: the DHCP ones carry --sport, which group rules never have.
    const uniqueProvider = provider.filter((r, i) => provider.indexOf(r) === i)
    const providerTexts: ReadonlySet<string> = uniqueProvider.includes(V6_RA_IN_RULE)
      ? new Set([renderRuleBody(V6_RA_IN_RULE)])
      : EMPTY_TEXTS
    const names = { iChain: portChainName(driver, 'i', p.id), oChain: portChainName(driver, 'o', p.id) }
    const fixGap = this.config.fixes?.includes('spoof-missing-family') ?? false
    return entries.length > 0 || fixGap
      ? {
          ...names,
          provider: uniqueProvider,
          providerTexts,
          spoof: { name: sChain, policy: null, rules: this.spoofRules(entries) },
          jumpToSpoof: jumpRule(sChain),
        }
      : { ...names, provider: uniqueProvider, providerTexts, spoof: null, jumpToSpoof: null }
  }

  /** The i/o/s chains of one filtered port in one family. */
  private portChains(
    p: Port,
    ethertype: Ethertype,
    groups: ReadonlyMap<string, SecurityGroup>,
    state: HostState,
  ): Chain[] {
    const local = this.portLocal(p, ethertype)
    const chains: Chain[] = []

    const sgIn = this.sgList(p, 'ingress', ethertype, groups, state)
    const ingress: Rule[] = []
    // IptablesManager keeps the last copy of a duplicate line: a group rule equal to a
    // fixed ICMPv6 rule removes the fixed one (neutron-behaviour.md, surprise 2).
    if (ethertype === 'IPv6') for (const r of sgIn.fixedIcmp6) ingress.push(r)
    this.sgSection(ingress, local, sgIn)
    chains.push({ name: local.iChain, policy: null, rules: ingress })

    const egress: Rule[] = ethertype === 'IPv4' ? [V4_DHCP_DISCOVER_RULE] : [...V6_UNSPEC_RULES]
    if (local.spoof && local.jumpToSpoof) {
      egress.push(local.jumpToSpoof)
      chains.push(local.spoof)
    }
    if (ethertype === 'IPv4') egress.push(V4_DHCP_CLIENT_RULE, V4_DHCP_SPOOF_RULE)
    else egress.push(V6_RA_DROP_RULE, V6_ICMP_ALLOW_RULE, V6_DHCP_CLIENT_RULE, V6_DHCP_SPOOF_RULE)
    // Group rules carry no comment and never jump, so they cannot repeat a fixed egress rule.
    this.sgSection(egress, null, this.sgList(p, 'egress', ethertype, groups, state))
    chains.push({ name: local.oChain, policy: null, rules: egress })
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

  private zoneKey(p: Port): string {
    let k = this.cache.zoneKeys.get(p)
    if (k === undefined) {
      k = zoneKey(this.config, p)
      this.cache.zoneKeys.set(p, k)
    }
    return k
  }

  private entry(p: Port): PortEntry {
    let e = this.cache.entries.get(p.id)
    if (!e || e.networkId !== p.network_id) {
      e = { networkId: p.network_id, zoneRules: [], jumps: null }
      this.cache.entries.set(p.id, e)
    }
    return e
  }

  private zoneRules(p: Port, zone: number, stateless: boolean): readonly Rule[] {
    const e = this.entry(p)
    for (const v of e.zoneRules) if (v.zone === zone && v.stateless === stateless) return v.rules
    const rules = this.makeZoneRules(p, zone, stateless)
    e.zoneRules.push({ zone, stateless, rules })
    return rules
  }

  private makeZoneRules(p: Port, zone: number, stateless: boolean): Rule[] {
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
    const prev = memory.state
    // Fast path: the same port list (by identity) as the previous compile, only groups
    // changed. Everything that does not depend on a changed group is reused.
    if (prev && prev.ports === state.ports && this.cache.lastMemory === memory) {
      const quick = this.compileGroupChange(state, memory, prev)
      if (quick) return quick
    }
    return this.finish(this.compileFull(state, memory))
  }

  private finish(c: CompiledHost): CompiledHost {
    this.cache.lastMemory = c.memory
    return c
  }

  /** Groups whose object changed between two states (added, removed or replaced), by id. */
  private changedGroups(
    prev: HostState,
    state: HostState,
  ): Map<string, [SecurityGroup | undefined, SecurityGroup | undefined]> {
    const before = new Map(prev.security_groups.map((g) => [g.id, g]))
    const out = new Map<string, [SecurityGroup | undefined, SecurityGroup | undefined]>()
    for (const g of state.security_groups) {
      const old = before.get(g.id)
      if (old !== g) out.set(g.id, [old, g])
      before.delete(g.id)
    }
    for (const [id, g] of before) out.set(id, [g, undefined])
    return out
  }

  private compileGroupChange(state: HostState, memory: AgentMemory, prev: HostState): CompiledHost | null {
    const config = this.config
    // With ipset off, chains and statefulness also depend on members: take the full path.
    if (!config.enable_ipset || prev.members !== state.members) return null
    const changed = this.changedGroups(prev, state)
    const statelessOf = (g: SecurityGroup | undefined): boolean => !!g && g.rules.length > 0 && !g.stateful
    let refsChanged = false
    for (const [old, now] of changed.values()) {
      if (statelessOf(old) !== statelessOf(now)) return null
      const a = old ? groupRemoteRefs(old, this.cache) : null
      const b = now ? groupRemoteRefs(now, this.cache) : null
      if (!sameRefs(a, b)) refsChanged = true
    }
    const last = this.cache.lastChains
    if (!last || last.memory !== memory) return null
    const groups = new Map(state.security_groups.map((g) => [g.id, g]))
    const filtered = splitPorts(state.ports, this.cache).filtered
    const portChains = filtered.map((p, i) => {
      const affected = p.security_groups.some((gid) => changed.has(gid))
      return affected ? this.cachedPortChains(p, groups, state) : (last.portChains[i] as PortChains)
    })
    const ipv4 = this.ruleset(4, last.common, portChains, memory.raw)
    const ipv6 = this.ruleset(6, last.common, portChains, memory.raw)
    const ipsets = refsChanged ? computeIpsets(filtered, groups, state, this.cache) : memory.ipsets
    const conntrack = conntrackDeletions(
      config,
      prev,
      memory,
      state,
      groups,
      memory.zones,
      filtered,
      filtered,
      this.cache,
      {
        portsSame: true,
        membersSame: !refsChanged,
      },
    )
    const result = this.result(ipv4, ipv6, ipsets, conntrack, { ...memory, state, ipsets })
    this.cache.lastChains = { memory: result.memory, common: last.common, portChains }
    return this.finish(result)
  }

  private result(
    ipv4: Ruleset,
    ipv6: Ruleset,
    ipsets: ReadonlyMap<string, readonly string[]>,
    conntrack: readonly string[],
    memory: AgentMemory,
  ): CompiledHost {
    const ipsetRecord: Record<string, readonly string[]> = {}
    for (const [k, v] of ipsets) ipsetRecord[k] = v
    return { ipv4, ipv6, ipsets: ipsetRecord, conntrack, memory }
  }

  private compileFull(state: HostState, memory: AgentMemory): CompiledHost {
    const config = this.config
    const groups = new Map(state.security_groups.map((g) => [g.id, g]))
    const split = splitPorts(state.ports, this.cache)
    const filtered = split.filtered
    const prevState = memory.state
    const prevFiltered = prevState ? splitPorts(prevState.ports, this.cache).filtered : []

    // Zones: walk the ports in sorted order, hand out the next zone to new keys.
    let zones = memory.zones as Map<string, number>
    let copied = false
    let highest = 0
    for (const z of zones.values()) if (z > highest) highest = z
    let live: Set<string> | null = null
    for (const p of filtered) {
      const k = this.zoneKey(p)
      if (zones.has(k)) continue
      if (!copied) {
        zones = new Map(zones)
        copied = true
      }
      if (highest >= ZONE_MAX) live ??= new Set(state.ports.map((q) => zoneKey(config, q)))
      const z = findOpenZone(zones, highest, live ?? new Set())
      zones.set(k, z)
      if (z > highest) highest = z
    }

    // Trusted and unfiltered ports keep the order in which they were first seen.
    const orderOf = (now: readonly string[], prev: readonly string[]): readonly string[] => {
      if (prev.length === 0) return now
      const nowSet = new Set(now)
      const kept = prev.filter((id) => nowSet.has(id))
      const keptSet = new Set(kept)
      return kept.concat(now.filter((id) => !keptSet.has(id)))
    }
    const trusted = orderOf(split.trusted, memory.trusted)
    const unfiltered = orderOf(split.unfiltered, memory.unfiltered)

    // Raw zone rules: Neutron removes each previous port's rules by regenerating their
    // text with the *current* statefulness, then appends the current ports' rules.
    // Rules whose text no longer matches stay behind (surprise 1 in neutron-behaviour.md).
    const removeRules = new Set<Rule>()
    for (const p of prevFiltered) {
      const z = zones.get(this.zoneKey(p))
      if (z === undefined) continue
      for (const r of this.zoneRules(p, z, isStateless(p, groups, state, config))) removeRules.add(r)
    }
    // Rules from this compiler are the same objects; rules read back from elsewhere match by text.
    const fixStale = config.fixes?.includes('stale-raw-rules') ?? false
    let leftovers = fixStale ? [] : memory.raw.filter((r) => !removeRules.has(r))
    if (leftovers.length > 0) {
      const removeTexts = new Set([...removeRules].map(renderRuleBody))
      leftovers = leftovers.filter((r) => !removeTexts.has(renderRuleBody(r)))
    }
    const raw: Rule[] = [...leftovers]
    for (const p of filtered) {
      const z = zones.get(this.zoneKey(p)) as number
      for (const r of this.zoneRules(p, z, isStateless(p, groups, state, config))) raw.push(r)
    }
    // Fresh zone rules name one device each; only leftovers can repeat a line.
    const rawRules = leftovers.length > 0 ? dedupKeepLast(raw) : raw

    const initialized = memory.initialized || state.ports.length > 0
    const portChains = filtered.map((p) => this.cachedPortChains(p, groups, state))
    const common = initialized ? this.commonChains(filtered, trusted, unfiltered) : null
    const ipv4 = common ? this.ruleset(4, common, portChains, rawRules) : EMPTY_RULESET
    const ipv6 = common ? this.ruleset(6, common, portChains, rawRules) : EMPTY_RULESET

    const ipsets = config.enable_ipset
      ? computeIpsets(filtered, groups, state, this.cache)
      : new Map<string, readonly string[]>()
    const conntrack = prevState
      ? conntrackDeletions(config, prevState, memory, state, groups, zones, filtered, prevFiltered, this.cache, {
          portsSame: false,
          membersSame: false,
        })
      : []
    const result = this.result(ipv4, ipv6, ipsets, conntrack, {
      initialized,
      zones,
      trusted,
      unfiltered,
      raw: rawRules,
      state,
      ipsets,
    })
    this.cache.lastChains = common ? { memory: result.memory, common, portChains } : null
    return result
  }

  /** The filter chains both families share (built-in jumps, per-port jumps, sg-chain, fallback). */
  private commonChains(filtered: readonly Port[], trusted: readonly string[], unfiltered: readonly string[]): Chain[] {
    const c = (n: string): string => this.chain(n)
    const forward: Rule[] = []
    const input: Rule[] = []
    const sgChain: Rule[] = []
    const driver = this.config.firewall_driver
    for (const p of filtered) {
      const e = this.entry(p)
      e.jumps ??= ((): Rule[] => {
        const dev = this.device(p)
        return [
          physdevRule('out', dev, COMMENTS.VM_INT_SG, c('sg-chain')),
          physdevRule('in', dev, COMMENTS.VM_INT_SG, c('sg-chain')),
          physdevRule('out', dev, COMMENTS.SG_TO_VM_SG, portChainName(driver, 'i', p.id)),
          physdevRule('in', dev, COMMENTS.SG_TO_VM_SG, portChainName(driver, 'o', p.id)),
          physdevRule('in', dev, COMMENTS.INPUT_TO_SG, portChainName(driver, 'o', p.id)),
        ]
      })()
      const [f1, f2, s1, s2, i1] = e.jumps as [Rule, Rule, Rule, Rule, Rule]
      forward.push(f1, f2)
      sgChain.push(s1, s2)
      input.push(i1)
    }
    for (const id of trusted) {
      const [t1, t2] = memo(this.cache.keyed, `t ${id}`, () => {
        const dev = tapName(id)
        return [
          physdevRule('out', dev, COMMENTS.TRUSTED_ACCEPT, 'ACCEPT'),
          physdevRule('in', dev, COMMENTS.TRUSTED_ACCEPT, 'ACCEPT'),
        ]
      }) as [Rule, Rule]
      forward.push(t1, t2)
    }
    for (const id of unfiltered) {
      const [u1, u2, u3] = memo(this.cache.keyed, `u ${id}`, () => {
        const dev = tapName(id)
        return [
          physdevRule('out', dev, COMMENTS.PORT_SEC_ACCEPT, 'ACCEPT'),
          physdevRule('in', dev, COMMENTS.PORT_SEC_ACCEPT, 'ACCEPT'),
          physdevRule('in', dev, COMMENTS.PORT_SEC_ACCEPT, 'ACCEPT'),
        ]
      }) as [Rule, Rule, Rule]
      forward.push(u1, u2)
      input.push(u3)
    }
    sgChain.push(ACCEPT_RULE)
    return [
      { name: 'INPUT', policy: 'ACCEPT', rules: [jumpRule(c('INPUT'))] },
      { name: 'FORWARD', policy: 'ACCEPT', rules: [jumpRule(FILTER_TOP_CHAIN), jumpRule(c('FORWARD'))] },
      { name: 'OUTPUT', policy: 'ACCEPT', rules: [jumpRule(FILTER_TOP_CHAIN), jumpRule(c('OUTPUT'))] },
      { name: FILTER_TOP_CHAIN, policy: null, rules: [jumpRule(c('local'))] },
      // One device per port, so these lines are unique (no duplicate weeding needed).
      { name: c('FORWARD'), policy: null, rules: forward },
      { name: c('INPUT'), policy: null, rules: input },
      { name: c('OUTPUT'), policy: null, rules: [] },
      { name: c('local'), policy: null, rules: [] },
      { name: c('sg-chain'), policy: null, rules: sgChain },
      { name: c('sg-fallback'), policy: null, rules: [FALLBACK_DROP_RULE] },
    ]
  }

  private ruleset(
    family: 4 | 6,
    common: readonly Chain[],
    portChains: readonly PortChains[],
    rawRules: readonly Rule[],
  ): Ruleset {
    const c = (n: string): string => this.chain(n)
    const filterChains: Chain[] = [...common]
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

const EMPTY_TEXTS: ReadonlySet<string> = new Set()

const ACCEPT_RULE: Rule = { matches: [], target: { name: 'ACCEPT', goto: false, options: [] } }

/** Compile one state with a fresh compiler (convenience for callers without a long-lived compiler). */
export function compileHost(state: HostState, config: HostConfig, memory?: AgentMemory): CompiledHost {
  return new HostCompiler(config).compile(state, memory)
}
