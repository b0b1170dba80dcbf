import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { compileHost } from '../compile/index.js'
import type { Scenario } from '../model/types.js'
import { parseScenario } from '../model/validate.js'
import { HostTracer, renderHostTrace, type TraceRequest } from './trace-host.js'

const FIXTURES = join(import.meta.dirname, '../../test/fixtures/neutron')

function tracer(name: string, brInt: 'ovs' | 'linux' = 'ovs'): { t: HostTracer; s: Scenario } {
  const { scenario } = parseScenario(JSON.parse(readFileSync(join(FIXTURES, name, 'scenario.json'), 'utf8')))
  const s = scenario!
  const c = compileHost(s, s.config)
  return { t: new HostTracer({ config: s.config, state: s, ipv4: c.ipv4, ipv6: c.ipv6, ipsets: c.ipsets, brInt }), s }
}

interface Flow extends TraceRequest {
  name: string
  expect: 'ACCEPT' | 'DROP'
  role?: string
}

// ports-sharing-groups: f3d1c2b4 (.61, groups all+ssh), 0b9e8d7c (.62, all), 7a6b5c4d (.63, ssh+all);
// group "all" allows egress any and ingress from its members; "ssh" allows tcp 22 from 192.168.0.0/16.
const FLOWS: Flow[] = [
  {
    name: 'member to member, tcp 22',
    from: 'f3d1c2b4',
    to: '0b9e8d7c',
    proto: 'tcp',
    dport: 22,
    expect: 'ACCEPT',
    role: 'sg-chain-accept',
  },
  { name: 'member to member, udp', from: '0b9e8d7c', to: '7a6b5c4d', proto: 'udp', dport: 53, expect: 'ACCEPT' },
  {
    name: 'outside non-member to .62 ssh',
    from: '8.8.8.8',
    to: '0b9e8d7c',
    proto: 'tcp',
    dport: 22,
    expect: 'DROP',
    role: 'fallback-drop',
  },
  {
    name: 'outside 192.168/16 to .61 ssh',
    from: '192.168.5.5',
    to: 'f3d1c2b4',
    proto: 'tcp',
    dport: 22,
    expect: 'ACCEPT',
  },
  {
    name: 'outside 192.168/16 to .61 http',
    from: '192.168.5.5',
    to: 'f3d1c2b4',
    proto: 'tcp',
    dport: 80,
    expect: 'DROP',
  },
  {
    name: 'spoofed source',
    from: 'f3d1c2b4',
    to: '0b9e8d7c',
    proto: 'icmp',
    srcIp: '10.9.9.9',
    expect: 'DROP',
    role: 'spoof-drop',
  },
  {
    name: 'spoofed MAC',
    from: 'f3d1c2b4',
    to: '0b9e8d7c',
    proto: 'icmp',
    srcMac: 'fa:16:3e:00:00:99',
    expect: 'DROP',
    role: 'spoof-drop',
  },
  {
    name: 'established reply from outside',
    from: '8.8.8.8',
    to: '0b9e8d7c',
    proto: 'tcp',
    dport: 40000,
    state: 'ESTABLISHED',
    expect: 'ACCEPT',
  },
  {
    name: 'invalid from outside',
    from: '8.8.8.8',
    to: '0b9e8d7c',
    proto: 'tcp',
    dport: 22,
    state: 'INVALID',
    expect: 'DROP',
    role: 'invalid-drop',
  },
  {
    name: 'VM acting as DHCP server',
    from: 'f3d1c2b4',
    to: '0b9e8d7c',
    proto: 'udp',
    sport: 67,
    dport: 68,
    expect: 'DROP',
    role: 'dhcp-spoof-drop',
  },
]

describe('packet flows through compiled rulesets (ports-sharing-groups)', () => {
  const { t } = tracer('ports-sharing-groups')
  it.each(FLOWS.map((f) => [f.name, f] as const))('%s', (_n, f) => {
    const r = t.trace(f)
    const info = renderHostTrace(r, false)
    expect(r.verdict, info).toBe(f.expect)
    if (f.role) expect(r.hops.at(-1)!.decided_by!.role, info).toBe(f.role)
  })

  it('follows two qbr passes with an OVS br-int and three with a Linux br-int', () => {
    const req: TraceRequest = { from: 'f3d1c2b4', to: '0b9e8d7c', proto: 'tcp', dport: 22 }
    expect(t.trace(req).hops.map((h) => [h.bridge, h.physdev_in, h.physdev_out, h.zone])).toEqual([
      ['qbrf3d1c2b4-9e', 'tapf3d1c2b4-9e', 'qvbf3d1c2b4-9e', 4099],
      ['qbr0b9e8d7c-6a', 'qvb0b9e8d7c-6a', 'tap0b9e8d7c-6a', 4097],
    ])
    const linux = tracer('ports-sharing-groups', 'linux').t.trace(req)
    expect(linux.hops.map((h) => [h.bridge, h.zone, h.decided_by?.role])).toEqual([
      ['qbrf3d1c2b4-9e', 4099, 'sg-chain-accept'],
      ['br-int', 0, 'policy'],
      ['qbr0b9e8d7c-6a', 4097, 'sg-chain-accept'],
    ])
  })

  it('suggests the security-group rule that would allow a dropped packet', () => {
    const r = t.trace({ from: '8.8.8.8', to: '0b9e8d7c', proto: 'tcp', dport: 22 })
    expect(r.suggestion).toMatchObject({
      kind: 'security-group-rule',
      security_group_id: expect.stringMatching(/^fbf25720/),
      rule: {
        direction: 'ingress',
        ethertype: 'IPv4',
        protocol: 'tcp',
        port_range_min: 22,
        port_range_max: 22,
        remote_ip_prefix: '8.8.8.8/32',
      },
    })
    const spoof = t.trace({ from: 'f3d1c2b4', to: '0b9e8d7c', proto: 'icmp', srcIp: '10.9.9.9' })
    expect(spoof.suggestion?.kind).toBe('anti-spoofing')
  })

  it('names the security-group rule that accepted the packet', () => {
    const r = t.trace({ from: '192.168.5.5', to: 'f3d1c2b4', proto: 'tcp', dport: 22 })
    const ingress = r.hops[0]!.steps.filter((s) => s.matched && s.chain.includes('-if3d1c2b4'))
    expect(ingress.at(-1)!.rule).toBe('-s 192.168.0.0/16 -p tcp -m tcp --dport 22 -j RETURN')
  })
})

describe('stateless ports and ICMPv6 neighbour discovery are untracked', () => {
  it('a stateless port sees UNTRACKED packets: replies match no RELATED,ESTABLISHED rule', () => {
    const { t } = tracer('stateless-group')
    const r = t.trace({ from: '8.8.8.8', to: '05e1f7d2', proto: 'udp', dport: 5000, state: 'ESTABLISHED' })
    expect(r.hops[0]!.state).toBe('UNTRACKED')
    expect(r.verdict).toBe('DROP')
  })
  it('neighbour solicitation to a port is accepted before the state rules', () => {
    const { t } = tracer('default-sg-dualstack')
    const port = t.host.state.ports[0]!.id
    const r = t.trace({ from: 'fe80::1', to: port, proto: 'ipv6-icmp', icmpType: 135, family: 6 })
    expect(r.hops.at(-1)!.state).toBe('UNTRACKED')
    expect(r.verdict).toBe('ACCEPT')
  })
})

describe('port security disabled', () => {
  it('accepts anything to and from the port', () => {
    const { t } = tracer('port-security-disabled')
    const r = t.trace({ from: '8.8.8.8', to: '8e82f035', proto: 'tcp', dport: 9999 })
    expect(r.verdict).toBe('ACCEPT')
    expect(r.hops[0]!.decided_by!.role).toBe('port-security-off-accept')
  })
})

describe('the device index skips only rules that cannot match', () => {
  it('record on (full scan) and off (indexed) give the same verdict and deciding rule', async () => {
    const { makeHost, BENCH_CONFIG } = await import('../../bench/host-shape.js')
    const state = makeHost(40)
    const c = compileHost(state, BENCH_CONFIG)
    const t = new HostTracer({ config: BENCH_CONFIG, state, ipv4: c.ipv4, ipv6: c.ipv6, ipsets: c.ipsets })
    const rs = t.rulesetFor(4)
    const { tracePacket } = await import('../netfilter/trace.js')
    const { hostPath } = await import('./path.js')
    let seed = 7
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0
      return seed / 4294967296
    }
    let accepted = 0
    for (let i = 0; i < 400; i++) {
      const a = Math.floor(rand() * 40)
      const b = (a + 1 + Math.floor(rand() * 39)) % 40
      // From outside, out of a prefix an ingress rule of the port's first group (b % 10) allows on port 1000 + j.
      const j = [2, 4, 8, 10, 14, 16][Math.floor(rand() * 6)]!
      const outside = rand() < 0.4
      const from = outside ? `10.${b % 10}.${j}.5` : state.ports[a]!.id
      const req = outside
        ? { from, to: state.ports[b]!.id, proto: j % 5 === 4 ? 'udp' : 'tcp', dport: rand() < 0.7 ? 1000 + j : 999 }
        : { from, to: state.ports[b]!.id, proto: rand() < 0.8 ? 'tcp' : 'udp', dport: 995 + Math.floor(rand() * 30) }
      const ep = (s: string) => t.endpoint(s)
      const packet = t.packet(req, ep(req.from), ep(req.to))
      const path = hostPath(BENCH_CONFIG, ep(req.from), ep(req.to))
      const full = tracePacket(rs, packet, path, { record: true })
      const fast = tracePacket(rs, packet, path, { record: false })
      expect(fast.verdict).toBe(full.verdict)
      expect(fast.hops.map((h) => h.decided_by)).toEqual(full.hops.map((h) => h.decided_by))
      if (full.verdict === 'ACCEPT') accepted++
    }
    expect(accepted).toBeGreaterThan(10)
  })
})
