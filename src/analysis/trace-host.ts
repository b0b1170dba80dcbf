/**
 * Trace a packet between ports (or the outside) of one host: resolves the
 * endpoints against the scenario state, fills the packet's addresses and MAC
 * from the ports, follows the hybrid/iptables path, and adds each decision's
 * rule role (from explain), the security-group rule id when the compiler would
 * have emitted that line, and a suggestion for a drop in a port chain. Pure.
 */
import type { HostConfig, HostState } from '../model/types.js'
import { explainRuleset, type RuleRole } from '../netfilter/explain.js'
import type { Family, Ruleset } from '../netfilter/ir.js'
import {
  type CompiledRuleset,
  type Conntrack,
  type CtState,
  compileRuleset,
  type DecidedBy,
  formatAddr as formatAddrOf,
  type HopResult,
  type IpsetMembers,
  type Packet,
  parseAddr,
  protocolNumberOf,
  type TraceStep,
  tracePacket,
  type Verdict,
} from '../netfilter/trace.js'
import { portByPrefix, scenarioAttribution } from './attribute.js'
import { type Endpoint, hostPath, portAddress, resolveEndpoint } from './path.js'
import { type Suggestion, suggestFix } from './suggest.js'

export interface HostRulesets {
  readonly config: HostConfig
  readonly state: HostState
  readonly ipv4: Ruleset
  readonly ipv6: Ruleset
  readonly ipsets: IpsetMembers | null
  readonly brInt?: 'ovs' | 'linux'
}

export interface TraceRequest {
  readonly from: string
  readonly to: string
  readonly proto: string
  readonly family?: Family
  readonly sport?: number
  readonly dport?: number
  readonly icmpType?: number
  readonly icmpCode?: number
  readonly srcIp?: string
  readonly dstIp?: string
  readonly srcMac?: string
  readonly state?: CtState
  readonly tcpFlags?: number
}

export interface DecidedByWithRole extends DecidedBy {
  readonly role: RuleRole | 'policy'
  readonly sg_rule_id?: string
}

export interface HostHop extends Omit<HopResult, 'decided_by'> {
  readonly decided_by: DecidedByWithRole | null
}

export interface HostTrace {
  readonly verdict: Verdict
  readonly packet: {
    readonly family: Family
    readonly src: string
    readonly dst: string
    readonly proto: number
    readonly sport?: number
    readonly dport?: number
    readonly icmp_type?: number
    readonly icmp_code?: number
    readonly src_mac?: string
    readonly state: CtState
  }
  readonly hops: readonly HostHop[]
  readonly suggestion?: Suggestion
}

/** A host's rulesets compiled once for many traces. */
export class HostTracer {
  private readonly compiled = new Map<Family, CompiledRuleset>()
  private readonly roles = new Map<Family, Map<string, { role: RuleRole; sg_rule_id?: string }>>()
  constructor(readonly host: HostRulesets) {}

  rulesetFor(family: Family): CompiledRuleset {
    let c = this.compiled.get(family)
    if (!c) {
      c = compileRuleset(family === 4 ? this.host.ipv4 : this.host.ipv6, family, this.host.ipsets)
      this.compiled.set(family, c)
    }
    return c
  }

  private roleOf(family: Family, d: DecidedBy): { role: RuleRole | 'policy'; sg_rule_id?: string } {
    if (d.num === null) return { role: 'policy' }
    let m = this.roles.get(family)
    if (!m) {
      m = new Map()
      const e = explainRuleset(family === 4 ? this.host.ipv4 : this.host.ipv6, {
        lang: 'en',
        family,
        attribute: scenarioAttribution(this.host.state, this.host.config, family),
      })
      for (const c of e.chains)
        for (const r of c.rules)
          m.set(
            `${c.table} ${c.name} ${r.num}`,
            r.sg_rule_id ? { role: r.role, sg_rule_id: r.sg_rule_id } : { role: r.role },
          )
      this.roles.set(family, m)
    }
    return m.get(`${d.table} ${d.chain} ${d.num}`) ?? { role: 'unknown' }
  }

  endpoint(spec: string): Endpoint {
    const e = resolveEndpoint(this.host.state, spec)
    if (typeof e === 'string') throw new TraceInputError(e)
    return e
  }

  /** Build the packet a request describes (addresses and MAC default to the ports' own). */
  packet(req: TraceRequest, from: Endpoint, to: Endpoint): Packet {
    const explicit = [
      req.srcIp,
      req.dstIp,
      from.kind === 'external' ? from.address : null,
      to.kind === 'external' ? to.address : null,
    ]
      .filter((x): x is string => !!x)
      .map((x) => parseAddr(x))
    if (explicit.some((x) => x === null)) throw new TraceInputError('an address is not a valid IPv4 or IPv6 address')
    const family: Family = req.family ?? explicit[0]?.family ?? 4
    if (explicit.some((x) => x!.family !== family))
      throw new TraceInputError(`addresses of both families given for an IPv${family} packet`)
    const addrOf = (e: Endpoint, given: string | undefined, side: string): string => {
      if (given) return given
      if (e.kind === 'external') return e.address
      const a = portAddress(e.port, family)
      if (!a) throw new TraceInputError(`port ${e.port.id} has no IPv${family} address; give --${side}-ip`)
      return a
    }
    const proto = protocolNumberOf(req.proto)
    if (proto === null) throw new TraceInputError(`unknown protocol "${req.proto}"`)
    const mac = req.srcMac ?? (from.kind === 'port' ? from.port.mac_address : undefined)
    return {
      family,
      src: parseAddr(addrOf(from, req.srcIp, 'src'))!.addr,
      dst: parseAddr(addrOf(to, req.dstIp, 'dst'))!.addr,
      proto: family === 6 && proto === 1 ? 58 : proto,
      ...(req.sport !== undefined ? { sport: req.sport } : proto === 6 || proto === 17 ? { sport: 40000 } : {}),
      ...(req.dport !== undefined ? { dport: req.dport } : {}),
      ...(req.icmpType !== undefined
        ? { icmpType: req.icmpType }
        : proto === 1 || proto === 58
          ? { icmpType: family === 4 ? 8 : 128 }
          : {}),
      ...(req.icmpCode !== undefined ? { icmpCode: req.icmpCode } : proto === 1 || proto === 58 ? { icmpCode: 0 } : {}),
      ...(mac !== undefined ? { srcMac: mac.toLowerCase() } : {}),
      ...(req.tcpFlags !== undefined ? { tcpFlags: req.tcpFlags } : {}),
      state: req.state ?? 'NEW',
    }
  }

  trace(req: TraceRequest, options: { conntrack?: Conntrack; record?: boolean } = {}): HostTrace {
    const from = this.endpoint(req.from)
    const to = this.endpoint(req.to)
    const packet = this.packet(req, from, to)
    const path = hostPath(this.host.config, from, to, this.host.brInt ?? 'ovs')
    const t = tracePacket(this.rulesetFor(packet.family), packet, path, options)
    const hops: HostHop[] = t.hops.map((h) => ({
      ...h,
      decided_by: h.decided_by ? { ...h.decided_by, ...this.roleOf(packet.family, h.decided_by) } : null,
    }))
    const suggestion = suggestFix(t, packet, packet.family, (p) => portByPrefix(this.host.state, p))
    const fmt = (a: readonly number[]) => formatAddrOf(a)
    return {
      verdict: t.verdict,
      packet: {
        family: packet.family,
        src: fmt(packet.src),
        dst: fmt(packet.dst),
        proto: packet.proto,
        ...(packet.sport !== undefined ? { sport: packet.sport } : {}),
        ...(packet.dport !== undefined ? { dport: packet.dport } : {}),
        ...(packet.icmpType !== undefined ? { icmp_type: packet.icmpType } : {}),
        ...(packet.icmpCode !== undefined ? { icmp_code: packet.icmpCode } : {}),
        ...(packet.srcMac !== undefined ? { src_mac: packet.srcMac } : {}),
        state: packet.state ?? 'NEW',
      },
      hops,
      ...(suggestion ? { suggestion } : {}),
    }
  }
}

/** Bad trace input (unknown endpoint, missing address): the CLI maps it to InvalidInput. */
export class TraceInputError extends Error {}

/** Text rendering of a host trace: each hop, every rule evaluated, the decision. */
export function renderHostTrace(t: HostTrace, verbose: boolean): string {
  const lines: string[] = []
  const p = t.packet
  const ports =
    p.dport !== undefined
      ? ` ${p.sport ?? '*'} → ${p.dport}`
      : p.icmp_type !== undefined
        ? ` type ${p.icmp_type}/${p.icmp_code ?? 0}`
        : ''
  lines.push(
    `packet: IPv${p.family} ${p.src} → ${p.dst} proto ${p.proto}${ports}${p.src_mac ? ` mac ${p.src_mac}` : ''} state ${p.state}`,
  )
  for (const [i, h] of t.hops.entries()) {
    lines.push(
      `hop ${i + 1}: bridge ${h.bridge} (physdev-in ${h.physdev_in ?? '-'}, physdev-out ${h.physdev_out ?? '-'}) zone ${h.zone} state ${h.state}: ${h.verdict}`,
    )
    const steps: readonly TraceStep[] = verbose ? h.steps : h.steps.filter((s) => s.matched)
    for (const s of steps)
      lines.push(`   ${s.matched ? '✓' : '·'} ${s.table} ${s.chain}${s.num !== null ? ` #${s.num}` : ''}: ${s.rule}`)
    const d = h.decided_by
    if (d) {
      lines.push(
        `   decided by ${d.table} ${d.chain}${d.num !== null ? ` #${d.num}` : ''} (${d.role}${d.sg_rule_id ? `, security-group rule ${d.sg_rule_id}` : ''}): ${d.rule}`,
      )
    }
    if (h.unknown) lines.push(`   cannot evaluate: ${h.unknown}`)
  }
  lines.push(`verdict: ${t.verdict}`)
  if (t.suggestion) lines.push(`suggestion: ${t.suggestion.text}`)
  return `${lines.join('\n')}\n`
}
