/**
 * The simulator against the real kernel. Rulesets compiled from Neutron fixture
 * scenarios and from random scenarios (fixed seed) are loaded into a hybrid-plug
 * host in namespaces (Linux-bridge br-int: three passes for port to port); random
 * crafted packets (TCP SYN, lone ACK, FIN+ACK, UDP, ICMP echo request and reply,
 * spoofed source IP or MAC, DHCP ports) are sent with scapy. For every packet the
 * kernel's outcome (delivered or not, and exactly which rule and policy counters
 * moved) must equal the trace's verdict and the rules it matched.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hostPath } from '../../src/analysis/path.js'
import { HostTracer, type TraceRequest } from '../../src/analysis/trace-host.js'
import { compileHost } from '../../src/compile/index.js'
import { tapName } from '../../src/compile/names.js'
import type { Port, Scenario, SecurityGroupRule } from '../../src/model/types.js'
import { parseScenario } from '../../src/model/validate.js'
import type { Ruleset } from '../../src/netfilter/ir.js'
import { parseIptablesSave } from '../../src/netfilter/parse-save.js'
import { renderNormalized } from '../../src/netfilter/render.js'
import type { CtState } from '../../src/netfilter/trace.js'
import { verdictOf } from '../../src/netfilter/verdict.js'
import { EXT_MAC, HybridLab, pythonScapySkipReason } from './hybrid-lab.js'
import { kernelTestSkipReason } from './netns-util.js'

const FIXTURES = join(import.meta.dirname, '../fixtures/neutron')
// `bench/trace-kernel.sh` runs this file longer: more packets, more random scenarios, another seed.
const PACKETS_PER_SCENARIO = Number(process.env.SGWALL_TRACE_PACKETS ?? 24)
const SEED = Number(process.env.SGWALL_TRACE_SEED ?? 20261129)
const RANDOM_SCENARIOS = Number(process.env.SGWALL_TRACE_SCENARIOS ?? 4)
/** Per test: ~0.25 s per packet on a loaded machine, plus the lab. */
const TIMEOUT = 120_000 + PACKETS_PER_SCENARIO * 2 * 1000

/** mulberry32: a small seeded PRNG, so the test is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
const hex = (r: () => number, n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('')
const uuid = (r: () => number) => `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-8${hex(r, 3)}-${hex(r, 12)}`

function randomScenario(r: () => number): Scenario {
  const groups = [uuid(r), uuid(r)]
  const stateful = r() > 0.3
  const enable_ipset = r() > 0.5
  const ports = [0, 1, 2].map((k): Port => {
    const off = k === 2 && r() < 0.3
    const groupsOf = off ? [] : r() < 0.5 ? [groups[0]!] : r() < 0.5 ? [groups[1]!, groups[0]!] : [groups[1]!]
    return {
      id: uuid(r),
      mac_address: `fa:16:3e:aa:00:0${k + 1}`,
      fixed_ips: [`192.168.1.${11 + k}`],
      allowed_address_pairs: !off && r() < 0.3 ? [{ ip_address: `10.30.${k}.0/24` }] : [],
      security_groups: groupsOf,
      port_security_enabled: !off,
      network_id: 'a1b2c3d4-0000-4000-8000-000000000001',
      device_owner: 'compute:nova',
    }
  })
  const rule = (_i: number): SecurityGroupRule => {
    const protocol = pick(r, ['tcp', 'tcp', 'udp', 'icmp', null] as const)
    let min: number | null = null
    let max: number | null = null
    if (protocol === 'tcp' || protocol === 'udp') {
      const p = pick(r, [
        [22, 22],
        [80, 80],
        [53, 53],
        [1000, 2000],
        [null, null],
      ] as const)
      min = p[0]
      max = p[1]
    } else if (protocol === 'icmp' && r() < 0.5) {
      min = 8
      max = r() < 0.5 ? 0 : null
    }
    const remote = r()
    return {
      id: uuid(r),
      direction: r() < 0.75 ? 'ingress' : 'egress',
      ethertype: 'IPv4',
      protocol,
      port_range_min: min,
      port_range_max: max,
      remote_ip_prefix:
        remote < 0.4 ? pick(r, ['192.168.1.0/24', '10.0.0.0/8', '8.8.8.8/32', '192.168.5.0/24', '0.0.0.0/0']) : null,
      remote_group_id: remote >= 0.4 && remote < 0.7 ? pick(r, groups) : null,
    }
  }
  const security_groups = groups.map((id, g) => {
    const n = 1 + Math.floor(r() * 4)
    const rules = Array.from({ length: n }, (_, i) => rule(g * 10 + i))
    // Most real groups let everything out (the default group does): otherwise little gets through.
    if (r() < 0.7) {
      rules.unshift({
        id: uuid(r),
        direction: 'egress',
        ethertype: 'IPv4',
        protocol: null,
        port_range_min: null,
        port_range_max: null,
        remote_ip_prefix: null,
        remote_group_id: null,
      })
    }
    // Drop rules the API would call duplicates (same fields but the id).
    const seen = new Set<string>()
    return { id, stateful, rules: rules.filter((x) => !seen.has(key(x)) && seen.add(key(x)) !== undefined) }
  })
  const members: Record<string, { IPv4: string[] }> = {}
  for (const g of groups) {
    const inGroup = ports.filter((p) => p.security_groups.includes(g))
    const v4 = inGroup.flatMap((p) => [...p.fixed_ips, ...p.allowed_address_pairs.map((a) => a.ip_address)])
    if (r() < 0.5) v4.push('192.168.1.200')
    members[g] = { IPv4: v4 }
  }
  const json = {
    description: 'random',
    config: { firewall_driver: 'iptables_hybrid', enable_ipset },
    security_groups,
    members,
    ports,
  }
  const { scenario, issues } = parseScenario(json)
  if (!scenario) throw new Error(`random scenario rejected: ${JSON.stringify(issues)}`)
  return scenario
}

function key(x: SecurityGroupRule): string {
  const { id: _id, ...rest } = x
  return JSON.stringify(rest)
}

function fixtureScenario(name: string): Scenario {
  const { scenario } = parseScenario(JSON.parse(readFileSync(join(FIXTURES, name, 'scenario.json'), 'utf8')))
  return scenario!
}

interface Probe {
  trace: TraceRequest
  from: string
  to: string
  srcIp: string
  dstIp: string
  srcMac: string
  dstMac: string
  proto: number
  sport?: number
  dport?: number
  icmpType?: number
  icmpCode?: number
  tcpFlags?: string
  state: CtState
}

const EXT_IPS6 = ['2001:db8:1::200', '2001:db8:99::5', 'fe80::99']

/** IPv6 probes: as IPv4 plus neighbour discovery, MLD and router advertisements (untracked by conntrack). */
function randomProbe6(r: () => number, ports: readonly Port[]): Probe {
  const v6 = (p: Port) => p.fixed_ips.find((ip) => ip.includes(':'))!
  const ends = [...ports.map((p) => p.id), 'ext']
  const from = pick(r, ends)
  const to = pick(
    r,
    ends.filter((e) => e !== from && !(e === 'ext' && from === 'ext')),
  )
  const portOf = (id: string) => ports.find((p) => p.id === id)
  const extIp = pick(r, EXT_IPS6)
  let srcIp = from === 'ext' ? extIp : v6(portOf(from)!)
  let srcMac = from === 'ext' ? EXT_MAC : portOf(from)!.mac_address
  const dstIp = to === 'ext' ? (from === 'ext' ? extIp : pick(r, EXT_IPS6)) : v6(portOf(to)!)
  const dstMac = to === 'ext' ? EXT_MAC : portOf(to)!.mac_address
  const spoof = r()
  if (from !== 'ext' && spoof < 0.1) srcIp = `2001:db8:30::${hex(r, 3)}`
  else if (from !== 'ext' && spoof < 0.2) srcMac = `fa:16:3e:bb:00:${hex(r, 2)}`
  const kind = pick(r, [
    'syn',
    'syn',
    'ack',
    'finack',
    'udp',
    'dhcp',
    'echo',
    'echoreply',
    'ns',
    'na',
    'ra',
    'mld',
  ] as const)
  const dport = pick(r, [22, 80, 53, 443, 5000])
  const sport = 1024 + Math.floor(r() * 60000)
  let p: Omit<Probe, 'trace' | 'from' | 'to' | 'srcIp' | 'dstIp' | 'srcMac' | 'dstMac'>
  switch (kind) {
    case 'syn':
      p = { proto: 6, sport, dport, tcpFlags: 'S', state: 'NEW' }
      break
    case 'ack':
      p = { proto: 6, sport, dport, tcpFlags: 'A', state: 'NEW' }
      break
    case 'finack':
      p = { proto: 6, sport, dport, tcpFlags: 'FA', state: 'INVALID' }
      break
    case 'udp':
      p = { proto: 17, sport, dport, state: 'NEW' }
      break
    case 'dhcp':
      p =
        r() < 0.5
          ? { proto: 17, sport: 546, dport: 547, state: 'NEW' }
          : { proto: 17, sport: 547, dport: 546, state: 'NEW' }
      break
    case 'echo':
      p = { proto: 58, icmpType: 128, icmpCode: 0, state: 'NEW' }
      break
    case 'echoreply':
      p = { proto: 58, icmpType: 129, icmpCode: 0, state: 'INVALID' }
      break
    case 'ns':
      p = { proto: 58, icmpType: 135, icmpCode: 0, state: 'NEW' }
      break
    case 'na':
      p = { proto: 58, icmpType: 136, icmpCode: 0, state: 'NEW' }
      break
    case 'ra':
      p = { proto: 58, icmpType: 134, icmpCode: 0, state: 'NEW' }
      break
    case 'mld':
      p = { proto: 58, icmpType: 131, icmpCode: 0, state: 'NEW' }
      break
  }
  const trace: TraceRequest = {
    from: from === 'ext' ? srcIp : from,
    to: to === 'ext' ? dstIp : to,
    proto: String(p.proto),
    family: 6,
    srcIp,
    dstIp,
    srcMac,
    state: p.state,
    ...(p.sport !== undefined ? { sport: p.sport } : {}),
    ...(p.dport !== undefined ? { dport: p.dport } : {}),
    ...(p.icmpType !== undefined ? { icmpType: p.icmpType, icmpCode: p.icmpCode ?? 0 } : {}),
    ...(p.tcpFlags !== undefined ? { tcpFlags: p.tcpFlags === 'S' ? 2 : p.tcpFlags === 'A' ? 16 : 17 } : {}),
  }
  return { ...p, trace, from, to, srcIp, dstIp, srcMac, dstMac }
}

const EXT_IPS = ['192.168.1.200', '8.8.8.8', '192.168.5.5', '10.1.2.3']

function randomProbe(r: () => number, ports: readonly Port[]): Probe {
  const ends = [...ports.map((p) => p.id), 'ext']
  const from = pick(r, ends)
  const to = pick(
    r,
    ends.filter((e) => e !== from && !(e === 'ext' && from === 'ext')),
  )
  const portOf = (id: string) => ports.find((p) => p.id === id)
  const extIp = pick(r, EXT_IPS)
  let srcIp = from === 'ext' ? extIp : portOf(from)!.fixed_ips[0]!
  let srcMac = from === 'ext' ? EXT_MAC : portOf(from)!.mac_address
  const dstIp = to === 'ext' ? (from === 'ext' ? extIp : pick(r, EXT_IPS)) : portOf(to)!.fixed_ips[0]!
  const dstMac = to === 'ext' ? EXT_MAC : portOf(to)!.mac_address
  const spoof = r()
  if (from !== 'ext' && spoof < 0.1) srcIp = `10.30.${Math.floor(r() * 3)}.${1 + Math.floor(r() * 250)}`
  else if (from !== 'ext' && spoof < 0.2) srcMac = `fa:16:3e:bb:00:${hex(r, 2)}`
  const kind = pick(r, [
    'syn',
    'syn',
    'syn',
    'ack',
    'finack',
    'udp',
    'udp',
    'dhcp',
    'echo',
    'echo',
    'echoreply',
  ] as const)
  const dport = pick(r, [22, 80, 53, 1500, 443, 5000])
  const sport = 1024 + Math.floor(r() * 60000)
  let p: Omit<Probe, 'trace' | 'from' | 'to' | 'srcIp' | 'dstIp' | 'srcMac' | 'dstMac'>
  switch (kind) {
    case 'syn':
      p = { proto: 6, sport, dport, tcpFlags: 'S', state: 'NEW' }
      break
    case 'ack':
      p = { proto: 6, sport, dport, tcpFlags: 'A', state: 'NEW' } // loose tracking: a lone ACK is NEW
      break
    case 'finack':
      p = { proto: 6, sport, dport, tcpFlags: 'FA', state: 'INVALID' }
      break
    case 'udp':
      p = { proto: 17, sport, dport, state: 'NEW' }
      break
    case 'dhcp':
      p =
        r() < 0.5
          ? { proto: 17, sport: 68, dport: 67, state: 'NEW' }
          : { proto: 17, sport: 67, dport: 68, state: 'NEW' }
      break
    case 'echo':
      p = { proto: 1, icmpType: 8, state: 'NEW' }
      break
    case 'echoreply':
      p = { proto: 1, icmpType: 0, state: 'INVALID' }
      break
  }
  const trace: TraceRequest = {
    from: from === 'ext' ? srcIp : from,
    to: to === 'ext' ? dstIp : to,
    proto: String(p.proto),
    srcIp,
    dstIp,
    srcMac,
    state: p.state,
    ...(p.sport !== undefined ? { sport: p.sport } : {}),
    ...(p.dport !== undefined ? { dport: p.dport } : {}),
    ...(p.icmpType !== undefined ? { icmpType: p.icmpType, icmpCode: 0 } : {}),
    ...(p.tcpFlags !== undefined ? { tcpFlags: p.tcpFlags === 'S' ? 2 : p.tcpFlags === 'A' ? 16 : 17 } : {}),
  }
  return { ...p, trace, from, to, srcIp, dstIp, srcMac, dstMac }
}

async function runProbes(
  labs: HybridLab[],
  name: string,
  scenario: Scenario,
  ipv4: Ruleset,
  ipv4Text: string,
  ipsets: Readonly<Record<string, readonly string[]>>,
  index: number,
  count = PACKETS_PER_SCENARIO,
  family: 4 | 6 = 4,
): Promise<string[]> {
  const ports = scenario.ports.filter((p) => p.fixed_ips.some((ip) => ip.includes(family === 4 ? '.' : ':')))
  const lab = new HybridLab(ports)
  labs.push(lab)
  lab.load(ipv4Text, ipsets, family)
  const tracer = new HostTracer({
    config: scenario.config,
    state: scenario,
    ipv4: family === 4 ? ipv4 : { tables: [] },
    ipv6: family === 6 ? ipv4 : { tables: [] },
    ipsets,
    brInt: 'linux',
  })
  const r = prng(SEED + 7919 * index)
  const mismatches: string[] = []
  let delivered = 0
  const reasons = new Map<string, number>()
  for (let i = 0; i < count; i++) {
    const probe = family === 4 ? randomProbe(r, ports) : randomProbe6(r, ports)
    lab.flushConntrack()
    const before = lab.counters()
    const got = await lab.probe({
      src_ns: probe.from === 'ext' ? lab.ext.name : lab.vms.get(probe.from)!.name,
      dst_ns: probe.to === 'ext' ? lab.ext.name : lab.vms.get(probe.to)!.name,
      src_mac: probe.srcMac,
      dst_mac: probe.dstMac,
      src_ip: probe.srcIp,
      dst_ip: probe.dstIp,
      proto: probe.proto,
      ...(probe.sport !== undefined ? { sport: probe.sport, dport: probe.dport! } : {}),
      ...(probe.icmpType !== undefined ? { icmp_type: probe.icmpType, icmp_code: probe.icmpCode ?? 0 } : {}),
      ...(probe.tcpFlags !== undefined ? { tcp_flags: probe.tcpFlags } : {}),
      ip_id: 1000 + i,
    })
    const after = lab.counters()
    // Every counter that moved, with how much: a rule crossed in two passes moves by two.
    const moved = [...after]
      .filter(([k, v]) => v !== (before.get(k) ?? 0))
      .map(([k, v]) => `${k} +${v - (before.get(k) ?? 0)}`)
      .sort()
    const trace = tracer.trace(probe.trace)
    // The verdict-only programs (reach, bench/trace) must agree with the kernel too.
    const ends = { from: tracer.endpoint(probe.trace.from), to: tracer.endpoint(probe.trace.to) }
    const fast = verdictOf(
      tracer.rulesetFor(family),
      tracer.packet(probe.trace, ends.from, ends.to),
      hostPath(scenario.config, ends.from, ends.to, 'linux'),
    )
    const hits = new Map<string, number>()
    for (const h of trace.hops)
      for (const s of h.steps) {
        if (!s.matched) continue
        const k = `${s.table} ${s.chain} ${s.num === null ? 'policy' : s.num}`
        hits.set(k, (hits.get(k) ?? 0) + 1)
      }
    const traced = [...hits].map(([k, n]) => `${k} +${n}`).sort()
    if (got) delivered++
    const last = trace.hops.at(-1)?.decided_by
    const reason = `${trace.verdict} by ${last?.role ?? '-'}`
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
    const want = got ? 'ACCEPT' : 'DROP'
    const same = trace.verdict === want && fast === want && JSON.stringify(moved) === JSON.stringify(traced)
    if (!same) {
      mismatches.push(
        `packet ${i} ${JSON.stringify(probe.trace)}: kernel ${want}, trace ${trace.verdict}, verdictOf ${fast}\n  kernel moved: ${moved.join(' | ')}\n  trace matched: ${traced.join(' | ')}`,
      )
    }
  }
  console.log(
    `${name}: ${count} packets, ${delivered} delivered, ${mismatches.length} mismatches; ${[...reasons].map(([k, n]) => `${n}× ${k}`).join(', ')}`,
  )
  return mismatches
}

/** A hand-written ruleset over the lab's devices using the matches Neutron does not emit. */
function handWritten(ports: readonly Port[]): string {
  const [a, b, c] = ports.map((p) => ({ tap: tapName(p.id), mac: p.mac_address, ip: p.fixed_ips[0]! }))
  return [
    '*raw',
    ':PREROUTING ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    `-A PREROUTING -m physdev --physdev-in ${a!.tap} -j CT --zone 7`,
    `-A PREROUTING -m physdev --physdev-in ${c!.tap} -j CT --notrack`,
    '-A PREROUTING -m physdev --physdev-in qvb+ -j CT --zone 9',
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':x-in - [0:0]',
    ':x-tcp - [0:0]',
    ':x-log - [0:0]',
    '-A FORWARD -m physdev ! --physdev-is-bridged -j DROP',
    '-A FORWARD -i br-int -m physdev --physdev-in uplink -m iprange --src-range 8.8.8.0-8.8.8.10 -j DROP',
    '-A FORWARD -i br-int -j ACCEPT',
    '-A FORWARD -m physdev --physdev-in tap+ -j x-in',
    `-A FORWARD -m physdev --physdev-out ${b!.tap} --physdev-is-bridged -p tcp -g x-tcp`,
    '-A FORWARD -m physdev --physdev-out tap+ -m conntrack --ctstate INVALID -j DROP',
    '-A FORWARD -m conntrack --ctstate UNTRACKED -p udp -j ACCEPT',
    '-A FORWARD -p icmp -m icmp --icmp-type 8 -j x-log',
    '-A FORWARD -p udp -m multiport --dports 53,1000:2000 -j ACCEPT',
    '-A FORWARD -m set --match-set sgwtest dst -j ACCEPT',
    `-A FORWARD -d ${c!.ip.replace(/\.\d+$/, '.0')}/255.255.255.128 ! -s 10.0.0.0/8 -p udp -j ACCEPT`,
    `-A x-in -m physdev --physdev-in ${a!.tap} -m mac ! --mac-source ${a!.mac.toUpperCase()} -j DROP`,
    '-A x-in -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m multiport ! --dports 22,80 -j RETURN',
    '-A x-in -p tcp -m tcp --tcp-flags SYN,ACK ACK -j DROP',
    '-A x-in -m state --state NEW -p udp -m udp --sport 67:68 -j DROP',
    '-A x-in -p tcp -m tcp --dport 80 -j ACCEPT',
    '-A x-tcp -p tcp -m tcp --dport 22 -j ACCEPT',
    '-A x-tcp -p tcp -m tcp ! --dport 1000:2000 -j DROP',
    '-A x-log -j LOG --log-prefix "sgwall-test "',
    '-A x-log -m comment --comment "echo requests" -j ACCEPT',
    'COMMIT',
    '',
  ].join('\n')
}

const skip = kernelTestSkipReason(['ip', 'iptables', 'ipset', 'bridge', 'conntrack']) ?? pythonScapySkipReason()
if (skip) console.log(skip)

const rand = prng(SEED)
const SCENARIOS: [string, Scenario][] = [
  ['fixture ports-sharing-groups', fixtureScenario('ports-sharing-groups')],
  ['fixture stateless-group', fixtureScenario('stateless-group')],
  ['fixture port-security-disabled', fixtureScenario('port-security-disabled')],
  ...Array.from({ length: RANDOM_SCENARIOS }, (_, i): [string, Scenario] => [`random ${i + 1}`, randomScenario(rand)]),
]

describe.skipIf(skip !== null)('trace equals the kernel (hybrid plug, Linux br-int)', () => {
  const labs: HybridLab[] = []
  afterAll(() => {
    for (const l of labs) l.destroy()
  })

  it.each(SCENARIOS.map(([n, s], i) => [n, s, i] as const))(
    '%s',
    { timeout: TIMEOUT },
    async (name, scenario, index) => {
      const compiled = compileHost(scenario, scenario.config)
      const mismatches = await runProbes(
        labs,
        name,
        scenario,
        compiled.ipv4,
        renderNormalized(compiled.ipv4),
        compiled.ipsets,
        index,
      )
      expect(mismatches).toEqual([])
    },
  )

  it.each(['default-sg-dualstack', 'stateless-group', 'remote-ip-prefix-v6', 'allowed-address-pairs'])(
    'IPv6: fixture %s',
    { timeout: TIMEOUT },
    async (fixture) => {
      const scenario = fixtureScenario(fixture)
      const compiled = compileHost(scenario, scenario.config)
      const mismatches = await runProbes(
        labs,
        `IPv6 ${fixture}`,
        scenario,
        compiled.ipv6,
        renderNormalized(compiled.ipv6),
        compiled.ipsets,
        50 + fixture.length,
        PACKETS_PER_SCENARIO,
        6,
      )
      expect(mismatches).toEqual([])
    },
  )

  it('hand-written chains: goto, RETURN, negation, wildcards, multiport, iprange, tcp flags, conntrack, mac, set, LOG, notrack', {
    timeout: TIMEOUT,
  }, async () => {
    const scenario = fixtureScenario('ports-sharing-groups')
    const text = handWritten(scenario.ports)
    const { ruleset, issues } = parseIptablesSave(text)
    expect(issues).toEqual([])
    const sets = { sgwtest: ['192.168.1.62', '8.8.8.0/29'] }
    const mismatches = await runProbes(
      labs,
      'hand-written',
      scenario,
      ruleset,
      text,
      sets,
      99,
      Math.ceil((PACKETS_PER_SCENARIO * 5) / 3),
    )
    expect(mismatches).toEqual([])
  })
})
