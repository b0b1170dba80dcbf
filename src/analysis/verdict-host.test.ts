import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { scenarioArbitrary } from '../../test/support/scenario-arbitrary.js'
import { compileHost } from '../compile/index.js'
import { parseScenario } from '../model/validate.js'
import type { Family } from '../netfilter/ir.js'
import { type CtState, tracePacket } from '../netfilter/trace.js'
import { verdictOf, verdictStats } from '../netfilter/verdict.js'
import { hostPath, portAddress } from './path.js'
import { HostTracer, TraceInputError } from './trace-host.js'

// Neutron's own rulesets (random scenarios through the compiler), every pair of endpoints, both
// br-int kinds: the verdict programs answer as the interpreter does.
describe('verdict programs on compiled host rulesets', () => {
  it('equal the interpreter for every port pair, protocol and state', () => {
    const before = verdictStats.programs
    let compared = 0
    fc.assert(
      fc.property(scenarioArbitrary, fc.constantFrom<'ovs' | 'linux'>('ovs', 'linux'), (raw, brInt) => {
        const s = parseScenario(raw).scenario!
        const c = compileHost(s, s.config)
        const tracer = new HostTracer({
          config: s.config,
          state: s,
          ipv4: c.ipv4,
          ipv6: c.ipv6,
          ipsets: c.ipsets,
          brInt,
        })
        for (const family of [4, 6] as Family[]) {
          const outside = family === 4 ? ['10.9.0.5', '192.0.2.1'] : ['2001:db8:9::5', '2001:db8:77::1']
          const ends = [...s.ports.filter((p) => portAddress(p, family)).map((p) => p.id), ...outside]
          const rs = tracer.rulesetFor(family)
          for (const from of ends)
            for (const to of ends) {
              if (from === to || (outside.includes(from) && outside.includes(to))) continue
              for (const [proto, dport] of [
                ['tcp', 22],
                ['tcp', 80],
                ['udp', 53],
                ['icmp', undefined],
              ] as const)
                for (const state of ['NEW', 'ESTABLISHED', 'INVALID'] as CtState[]) {
                  let packet: ReturnType<HostTracer['packet']>
                  const f = tracer.endpoint(from)
                  const t = tracer.endpoint(to)
                  try {
                    packet = tracer.packet({ from, to, proto, family, state, ...(dport ? { dport } : {}) }, f, t)
                  } catch (e) {
                    if (e instanceof TraceInputError) continue
                    throw e
                  }
                  const path = hostPath(s.config, f, t, brInt)
                  const want = tracePacket(rs, packet, path, { record: false, detail: false }).verdict
                  expect(verdictOf(rs, packet, path), `${from} → ${to} ${proto} ${dport} ${state}`).toBe(want)
                  compared++
                }
            }
        }
      }),
      { numRuns: 60, seed: 2026 },
    )
    expect(compared).toBeGreaterThan(2000)
    expect(verdictStats.programs - before).toBeGreaterThan(compared / 2)
  }, 120_000)
})
