/**
 * Reachability: for every ordered pair of ports with an address of the family,
 * whether a NEW connection (proto/dport) is let through. Uses the same compiled
 * rulesets as trace, without recording steps. Pure.
 */
import type { Family } from '../netfilter/ir.js'
import { type Packet, type Pass, parseAddr, protocolNumberOf, type Verdict } from '../netfilter/trace.js'
import { verdictOf } from '../netfilter/verdict.js'
import { hostPath, portAddress } from './path.js'
import { type HostTracer, TraceInputError } from './trace-host.js'

export interface ReachMatrix {
  readonly family: Family
  readonly proto: string
  readonly dport: number | null
  /** Port ids, rows (from) and columns (to). */
  readonly ports: readonly string[]
  /** verdicts[i][j]: from ports[i] to ports[j]; null on the diagonal. */
  readonly verdicts: readonly (readonly (Verdict | null)[])[]
}

export function reachMatrix(tracer: HostTracer, q: { proto: string; family: Family; dport?: number }): ReachMatrix {
  const proto = protocolNumberOf(q.proto)
  if (proto === null) throw new TraceInputError(`unknown protocol "${q.proto}"`)
  const host = tracer.host
  const ports = host.state.ports.filter((p) => portAddress(p, q.family) !== null)
  const rs = tracer.rulesetFor(q.family)
  const addrs = ports.map((p) => parseAddr(portAddress(p, q.family)!)!.addr)
  const eps = ports.map((port) => ({ kind: 'port', port }) as const)
  // With an OVS br-int and the hybrid driver a path is [leave A's qbr, enter B's qbr]: build each pass once.
  const twoPass = host.config.firewall_driver === 'iptables_hybrid' && (host.brInt ?? 'ovs') === 'ovs'
  const outside = { kind: 'external', address: '0.0.0.0' } as const
  const leave = twoPass ? eps.map((e) => hostPath(host.config, e, outside)[0]!) : []
  const enter = twoPass ? eps.map((e) => hostPath(host.config, outside, e)[0]!) : []
  const verdicts: (Verdict | null)[][] = []
  const ports4 = proto === 6 || proto === 17 || proto === 132 || proto === 33
  const icmp = proto === 1 || proto === 58
  for (let i = 0; i < ports.length; i++) {
    const row: (Verdict | null)[] = new Array(ports.length)
    // One packet per row, its destination changed per column (no allocation per pair).
    const packet: { -readonly [K in keyof Packet]: Packet[K] } = {
      family: q.family,
      src: addrs[i]!,
      dst: addrs[i]!,
      proto,
      srcMac: ports[i]!.mac_address.toLowerCase(),
      ...(ports4 ? { sport: 40000, dport: q.dport ?? 0 } : {}),
      ...(icmp ? { icmpType: q.family === 4 ? 8 : 128, icmpCode: 0 } : {}),
    }
    const leaveI = twoPass ? leave[i]! : null
    const path: Pass[] = twoPass ? [leaveI!, leaveI!] : []
    for (let j = 0; j < ports.length; j++) {
      if (i === j) {
        row[j] = null
        continue
      }
      packet.dst = addrs[j]!
      if (twoPass) path[1] = enter[j]!
      row[j] = verdictOf(rs, packet, twoPass ? path : hostPath(host.config, eps[i]!, eps[j]!, host.brInt ?? 'ovs'))
    }
    verdicts.push(row)
  }
  return { family: q.family, proto: q.proto, dport: q.dport ?? null, ports: ports.map((p) => p.id), verdicts }
}

export function renderReach(m: ReachMatrix): string {
  const short = m.ports.map((p) => p.slice(0, 8))
  const lines = [
    `IPv${m.family} ${m.proto}${m.dport !== null ? ` dport ${m.dport}` : ''}: row → column (✓ accept, · drop, ? unknown)`,
  ]
  lines.push(`${' '.repeat(9)}${short.join(' ')}`)
  const cell = { ACCEPT: '✓       ', DROP: '·       ', UNKNOWN: '?       ' } as const
  for (const [i, row] of m.verdicts.entries()) {
    const parts: string[] = new Array(row.length)
    for (let j = 0; j < row.length; j++) {
      const v = row[j]
      parts[j] = v === null || v === undefined ? '-       ' : cell[v]
    }
    lines.push(`${short[i]} ${parts.join(' ')}`)
  }
  return `${lines.join('\n')}\n`
}
