/**
 * The path a packet takes through a compute host, as bridge passes for the
 * simulator (kernel-notes.md): hybrid plug — leaving VM A crosses qbrA
 * (physdev-in tapA, out qvbA), arriving at VM B crosses qbrB (physdev-in qvbB,
 * out tapB), with a middle br-int pass only when br-int is a Linux bridge;
 * plain iptables driver — one pass on the network's brq bridge. Traffic to or
 * from outside the host crosses one port bridge (plus br-int if Linux). Pure.
 */
import { brqName, qbrName, qvbName, qvoName, tapName } from '../compile/names.js'
import type { HostConfig, HostState, Port } from '../model/types.js'
import type { Family } from '../netfilter/ir.js'
import { type Pass, parseAddr } from '../netfilter/trace.js'

/** Name used for the host's uplink on a bridge (the physical or tunnel interface). */
export const UPLINK = 'uplink'

export type Endpoint =
  | { readonly kind: 'port'; readonly port: Port }
  | { readonly kind: 'external'; readonly address: string }

/** A port id, a unique port id prefix, a device name (tap…), or an IP address outside the host. */
export function resolveEndpoint(state: HostState, spec: string): Endpoint | string {
  const byDevice = state.ports.find((p) => (p.device ?? tapName(p.id)) === spec)
  if (byDevice) return { kind: 'port', port: byDevice }
  const byId = state.ports.filter((p) => p.id.startsWith(spec))
  if (byId.length === 1) return { kind: 'port', port: byId[0]! }
  if (byId.length > 1) return `"${spec}" matches ${byId.length} ports; give more of the id`
  const local = state.ports.find((p) => p.fixed_ips.includes(spec))
  if (local) return { kind: 'port', port: local }
  if (parseAddr(spec)) return { kind: 'external', address: spec }
  return `"${spec}" is not a port id, device or IP address of this host's scenario`
}

export function portAddress(port: Port, family: Family): string | null {
  return port.fixed_ips.find((ip) => (parseAddr(ip)?.family ?? 0) === family) ?? null
}

export function hostPath(config: HostConfig, from: Endpoint, to: Endpoint, brInt: 'ovs' | 'linux' = 'ovs'): Pass[] {
  if (config.firewall_driver === 'iptables') {
    const brOf = (e: Endpoint) => (e.kind === 'port' ? brqName(e.port.network_id) : null)
    const dev = (e: Endpoint) => (e.kind === 'port' ? (e.port.device ?? tapName(e.port.id)) : UPLINK)
    const a = brOf(from)
    const b = brOf(to)
    if (a !== null && a === b) return [{ bridge: a, physdevIn: dev(from), physdevOut: dev(to) }]
    const out: Pass[] = []
    if (a !== null) out.push({ bridge: a, physdevIn: dev(from), physdevOut: UPLINK })
    if (b !== null) out.push({ bridge: b, physdevIn: UPLINK, physdevOut: dev(to) })
    return out
  }
  const out: Pass[] = []
  if (from.kind === 'port') {
    out.push({
      bridge: qbrName(from.port.id),
      physdevIn: from.port.device ?? tapName(from.port.id),
      physdevOut: qvbName(from.port.id),
    })
  }
  if (brInt === 'linux') {
    out.push({
      bridge: 'br-int',
      physdevIn: from.kind === 'port' ? qvoName(from.port.id) : UPLINK,
      physdevOut: to.kind === 'port' ? qvoName(to.port.id) : UPLINK,
    })
  }
  if (to.kind === 'port') {
    out.push({
      bridge: qbrName(to.port.id),
      physdevIn: qvbName(to.port.id),
      physdevOut: to.port.device ?? tapName(to.port.id),
    })
  }
  return out
}
