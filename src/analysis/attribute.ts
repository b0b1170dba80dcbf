/**
 * Which security-group rule of a scenario produced a port-chain rule: the
 * `attribute` callback of explain (and trace). Pure. It renders each rule of the
 * port's groups with the compiler's own rule renderer and compares the text, so
 * it names a rule exactly when the compiler would have emitted that line.
 */
import { ipsetName } from '../compile/names.js'
import { ipsetSgRule, plainSgRule } from '../compile/rules.js'
import type { Ethertype, HostConfig, HostState, Port } from '../model/types.js'
import type { Attribution, PortRef } from '../netfilter/explain.js'
import type { Family, Rule } from '../netfilter/ir.js'
import { renderRuleBody } from '../netfilter/render.js'

export type AttributeFn = (context: {
  readonly direction: 'ingress' | 'egress'
  readonly port: PortRef
  readonly rule: Rule
}) => Attribution | null

/** The port of the state whose chains carry this id prefix (first 10 characters of the id). */
export function portByPrefix(state: HostState, prefix: string): Port | undefined {
  return state.ports.find((p) => p.id.slice(0, prefix.length) === prefix)
}

export function scenarioAttribution(state: HostState, config: HostConfig, family: Family): AttributeFn {
  const ethertype: Ethertype = family === 4 ? 'IPv4' : 'IPv6'
  const cache = new Map<string, Map<string, Attribution>>()
  const table = (port: Port, direction: 'ingress' | 'egress'): Map<string, Attribution> => {
    const key = `${port.id} ${direction}`
    const hit = cache.get(key)
    if (hit) return hit
    const out = new Map<string, Attribution>()
    const add = (rule: Rule, a: Attribution): void => {
      const body = renderRuleBody(rule)
      if (!out.has(body)) out.set(body, a)
    }
    for (const groupId of port.security_groups) {
      const group = state.security_groups.find((g) => g.id === groupId)
      if (!group) continue
      for (const r of group.rules) {
        if (r.direction !== direction || r.ethertype !== ethertype) continue
        const a: Attribution = { sg_rule_id: r.id, security_group_id: group.id }
        if (r.remote_group_id === null) add(plainSgRule(r, r.remote_ip_prefix), a)
        else if (config.enable_ipset) add(ipsetSgRule(r, ipsetName(ethertype, r.remote_group_id)), a)
        else
          for (const m of state.members[r.remote_group_id]?.[ethertype] ?? []) {
            if (!port.fixed_ips.includes(m)) add(plainSgRule(r, m), a)
          }
      }
    }
    cache.set(key, out)
    return out
  }
  return ({ direction, port, rule }) => {
    const p = portByPrefix(state, port.port_id_prefix)
    if (!p) return null
    return table(p, direction).get(renderRuleBody(rule)) ?? null
  }
}

/** The ports Neutron gives chains to: port security on and not a trusted network:* port. */
export function filteredPorts(state: HostState): { id: string; device: string }[] {
  return state.ports
    .filter((p) => p.port_security_enabled && !(p.device_owner ?? '').startsWith('network:'))
    .map((p) => ({ id: p.id, device: p.device ?? `tap${p.id}`.slice(0, 14) }))
}
