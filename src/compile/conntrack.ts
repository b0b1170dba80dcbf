/**
 * The conntrack deletions Neutron's IpConntrackManager issues when a host changes
 * (neutron-behaviour.md 8): rules deleted from a group, ports leaving a group or the
 * host, members leaving a remote group. Computed from the previous and the new state.
 */
import { parseCidr } from '../model/addresses.js'
import type { Ethertype, HostConfig, HostState, Port, SecurityGroup, SecurityGroupRule } from '../model/types.js'
import { ipsetEntries } from './ipsets.js'
import { ipsetName } from './names.js'
import {
  type AgentMemory,
  type CompileCache,
  ETHERTYPES,
  fixedIpsOf,
  membersOf,
  remoteRefsOfPorts,
  zoneKey,
} from './state.js'

/** Neutron's IpConntrackManager command: `conntrack -D [-p P] -f FAM -d|-s LOCAL -w ZONE [-s|-d REMOTE]`. */
export function conntrackDeletions(
  config: HostConfig,
  prev: HostState,
  memory: AgentMemory,
  state: HostState,
  groups: ReadonlyMap<string, SecurityGroup>,
  zones: ReadonlyMap<string, number>,
  filtered: readonly Port[],
  prevFiltered: readonly Port[],
  cache: CompileCache,
  known: { portsSame: boolean; membersSame: boolean },
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
  for (const g of state.security_groups) {
    const old = prevGroups.get(g.id)
    if (!old || old === g) continue
    // Only groups the agent had (used by a filtered port before) have rules to compare.
    if (!prevFiltered.some((p) => p.security_groups.includes(g.id))) continue
    const now = new Set(g.rules.map((r) => ruleKey(r, g.stateful)))
    const deleted = old.rules.filter((r) => !now.has(ruleKey(r, old.stateful)))
    if (deleted.length === 0) continue
    const devices = filtered.filter((p) => p.security_groups.includes(g.id))
    for (const r of deleted) emit(devices, r.ethertype, r.direction, r.protocol, null)
  }

  if (!known.portsSame) portDeletions(prevFiltered, filtered, state, emit)
  if (known.portsSame && known.membersSame) return [...cmds].sort()
  memberDeletions()
  return [...cmds].sort()

  function memberDeletions(): void {
    // 4. Members that left a remote group: entries between each referencing port and the member.
    const prevRefs = remoteRefsOfPorts(prevFiltered, prevGroups, cache)
    const nowRefs = remoteRefsOfPorts(filtered, groups, cache)
    for (const eth of ETHERTYPES) {
      for (const gid of prevRefs.get(eth) ?? []) {
        if (!nowRefs.get(eth)?.has(gid)) continue
        if (prev.members[gid]?.[eth] === state.members[gid]?.[eth]) continue
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
  }
}

type Emit = (
  devices: readonly Port[],
  ethertype: Ethertype,
  direction: 'ingress' | 'egress',
  protocol: string | null,
  remote: string | null,
) => void

/** Deletions for ports that left a group (2) or left the host (3). */
function portDeletions(prevFiltered: readonly Port[], filtered: readonly Port[], state: HostState, emit: Emit): void {
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
}

/**
 * A rule as the agent receives it from the server (securitygroups_rpc_base): no id, the
 * group's statefulness, the remote prefix as its normalized network. Two rules with the
 * same key are one rule to the agent; a rule is "deleted" when its key disappears.
 */
function ruleKey(r: SecurityGroupRule, stateful: boolean): string {
  const prefix = r.remote_ip_prefix === null ? null : parseCidr(r.remote_ip_prefix)
  return JSON.stringify([
    r.direction,
    r.ethertype,
    stateful,
    r.protocol,
    r.port_range_min,
    r.port_range_max,
    prefix ? `${prefix.network}/${prefix.prefix}` : null,
    r.remote_group_id,
  ])
}
