/**
 * Adopting a running host: the conntrack zones already in the kernel's raw table.
 * A restarted agent that renumbered zones would move every port's connections to a
 * new, empty zone (Neutron's hybrid driver does, neutron-behaviour.md surprise 8);
 * sgwall reads the zones back, keyed the way the compiler keys them, so a restart
 * changes nothing in the kernel.
 */
import type { FirewallDriver } from '../model/types.js'
import type { Ruleset } from '../netfilter/ir.js'
import { type AgentMemory, EMPTY_MEMORY } from './host.js'
import { chainPrefix } from './names.js'

const SET_ZONE = /^Set zone for (\S+)$/

/** Zones found in P-PREROUTING of a raw table, as an AgentMemory seed (everything else empty). */
export function adoptZones(raw: Ruleset, driver: FirewallDriver): AgentMemory {
  const zones = new Map<string, number>()
  const chain = raw.tables
    .find((t) => t.name === 'raw')
    ?.chains.find((c) => c.name === `${chainPrefix(driver)}-PREROUTING`)
  for (const r of chain?.rules ?? []) {
    if (r.target?.name !== 'CT') continue
    const zoneOpt = r.target.options.find((o) => o.flag === '--zone')
    const zone = Number(zoneOpt?.args[0])
    if (!Number.isInteger(zone)) continue
    let commentName: string | null = null
    let physdevIn: string | null = null
    for (const m of r.matches) {
      for (const o of m.options) {
        if (o.flag === '--comment') commentName = SET_ZONE.exec(o.args[0] ?? '')?.[1] ?? null
        if (o.flag === '--physdev-in') physdevIn = o.args[0] ?? null
      }
    }
    if (driver === 'iptables_hybrid') {
      // Comment names the full port id; the compiler keys zones by id characters 3-14.
      if (commentName && commentName.length >= 14) zones.set(commentName.slice(3, 14), zone)
    } else if (physdevIn?.startsWith('brq')) {
      // One zone per network: the bridge is brq + the first 11 characters of the network id.
      zones.set(physdevIn.slice(3, 14), zone)
    }
  }
  return { ...EMPTY_MEMORY, initialized: chain !== undefined, zones }
}
