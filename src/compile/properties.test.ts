import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type RawScenario, scenarioArbitrary } from '../../test/support/scenario-arbitrary.js'
import type { HostState, Scenario } from '../model/types.js'
import { parseScenario } from '../model/validate.js'
import { parseIptablesSave } from '../netfilter/parse-save.js'
import { renderNormalized } from '../netfilter/render.js'
import { compileScenario, HostCompiler } from './index.js'

function valid(raw: RawScenario): Scenario {
  const { scenario, issues } = parseScenario(raw)
  if (!scenario) throw new Error(`generator produced an invalid scenario: ${JSON.stringify(issues)}`)
  return scenario
}

function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs]
  let s = seed
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

const NUM_RUNS = 150

describe('compiler properties', () => {
  it('generated scenarios are valid', () => {
    fc.assert(
      fc.property(scenarioArbitrary, (raw) => {
        expect(parseScenario(raw).issues).toEqual([])
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('is deterministic: the same input gives byte-identical output', () => {
    fc.assert(
      fc.property(scenarioArbitrary, (raw) => {
        const a = JSON.stringify(compileScenario(valid(raw)))
        const b = JSON.stringify(compileScenario(valid(structuredClone(raw))))
        expect(b).toBe(a)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('does not depend on the order of groups, member keys, or filtered ports', () => {
    fc.assert(
      fc.property(scenarioArbitrary, fc.integer({ min: 1, max: 1 << 30 }), (raw, seed) => {
        const base = compileScenario(valid(raw))
        // Trusted and unfiltered ports keep their first-seen order (a Neutron behaviour),
        // so only the filtered ports are shuffled among themselves.
        const filteredIdx = raw.ports
          .map((p, i) => ({ p, i }))
          .filter(({ p }) => p.port_security_enabled && !(p.device_owner ?? '').startsWith('network:'))
        const shuffled = shuffle(
          filteredIdx.map(({ p }) => p),
          seed,
        )
        const ports = [...raw.ports]
        filteredIdx.forEach(({ i }, k) => {
          ports[i] = shuffled[k] as (typeof ports)[number]
        })
        const members = Object.fromEntries(shuffle(Object.entries(raw.members), seed + 1))
        const reordered: RawScenario = {
          ...raw,
          security_groups: shuffle(raw.security_groups, seed + 2),
          members,
          ports,
        }
        expect(JSON.stringify(compileScenario(valid(reordered)))).toBe(JSON.stringify(base))
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('a rule added to one group only changes the chains of ports that use or reference it', () => {
    fc.assert(
      fc.property(scenarioArbitrary, fc.nat(), (raw, pick) => {
        const s = valid(raw)
        const group = s.security_groups[pick % s.security_groups.length]
        if (!group) return
        const compiler = new HostCompiler(s.config)
        const before = compiler.compile(s)
        const changedGroup = {
          ...group,
          rules: [
            ...group.rules,
            {
              id: '99999999-9999-4999-8999-999999999999',
              direction: 'ingress' as const,
              ethertype: 'IPv4' as const,
              protocol: 'tcp',
              port_range_min: 4242,
              port_range_max: 4242,
              remote_ip_prefix: '203.0.113.0/24',
              remote_group_id: null,
            },
          ],
        }
        const state: HostState = {
          ...s,
          security_groups: s.security_groups.map((g) => (g === group ? changedGroup : g)),
        }
        const after = compiler.compile(state, before.memory)
        const affected = new Set(
          s.ports
            .filter(
              (p) =>
                p.security_groups.includes(group.id) ||
                p.security_groups.some((gid) =>
                  s.security_groups.find((g) => g.id === gid)?.rules.some((r) => r.remote_group_id === group.id),
                ),
            )
            .map((p) => p.id.slice(0, 10)),
        )
        for (const fam of ['ipv4', 'ipv6'] as const) {
          const chainsOf = (doc: string): Map<string, string> => {
            const m = new Map<string, string>()
            for (const line of doc.split('\n')) {
              const name = line.startsWith('-A ') ? (line.split(' ')[1] ?? '') : ''
              if (!/-[ios][0-9a-f]{8}-[0-9a-f]$/.test(name)) continue
              m.set(name, `${m.get(name) ?? ''}${line}\n`)
            }
            return m
          }
          const a = chainsOf(renderNormalized(before[fam]))
          const b = chainsOf(renderNormalized(after[fam]))
          for (const [name, text] of a) {
            const portPrefix = name.slice(-10)
            if (affected.has(portPrefix)) continue
            expect(b.get(name), `${fam} chain ${name} of an unaffected port`).toBe(text)
          }
        }
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('the group-change fast path gives the same result as a full compile', () => {
    fc.assert(
      fc.property(scenarioArbitrary, fc.nat(), fc.nat(), (raw, pick, drop) => {
        const s = valid(raw)
        const group = s.security_groups[pick % s.security_groups.length]
        if (!group) return
        // Change one group: drop one rule (if any) and add one, keeping the port list identical.
        const rules = group.rules.filter((_, i) => i !== drop % Math.max(1, group.rules.length))
        const changed = {
          ...group,
          rules: [
            ...rules,
            {
              id: '99999999-9999-4999-8999-999999999999',
              direction: 'egress' as const,
              ethertype: 'IPv6' as const,
              protocol: 'udp',
              port_range_min: 53,
              port_range_max: 53,
              remote_ip_prefix: null,
              remote_group_id: s.security_groups[drop % s.security_groups.length]?.id ?? null,
            },
          ],
        }
        const next: HostState = { ...s, security_groups: s.security_groups.map((g) => (g === group ? changed : g)) }
        const warm = new HostCompiler(s.config)
        const m1 = warm.compile(s).memory
        const fast = warm.compile(next, m1)
        const full = new HostCompiler(s.config).compile(next, new HostCompiler(s.config).compile(s).memory)
        expect(renderNormalized(fast.ipv4)).toBe(renderNormalized(full.ipv4))
        expect(renderNormalized(fast.ipv6)).toBe(renderNormalized(full.ipv6))
        expect(fast.ipsets).toEqual(full.ipsets)
        expect(fast.conntrack).toEqual(full.conntrack)
        // And the step after that (memory from the fast path) still agrees.
        const again = warm.compile(s, fast.memory)
        const againFull = new HostCompiler(s.config).compile(s, full.memory)
        expect(renderNormalized(again.ipv4)).toBe(renderNormalized(againFull.ipv4))
        expect(again.conntrack).toEqual(againFull.conntrack)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it('compiled rulesets survive parse(render(x)) unchanged', () => {
    fc.assert(
      fc.property(scenarioArbitrary, (raw) => {
        const compiled = new HostCompiler(valid(raw).config).compile(valid(raw))
        for (const rs of [compiled.ipv4, compiled.ipv6]) {
          const text = renderNormalized(rs)
          const { ruleset, issues } = parseIptablesSave(text)
          expect(issues).toEqual([])
          expect(renderNormalized(ruleset)).toBe(text)
          for (const t of rs.tables)
            for (const c of t.chains) {
              const back = ruleset.tables.find((x) => x.name === t.name)?.chains.find((x) => x.name === c.name)
              expect(back?.rules).toEqual(c.rules)
            }
        }
      }),
      { numRuns: 60 },
    )
  })

  it('a compiler reused across steps gives the same result as a fresh one', () => {
    fc.assert(
      fc.property(scenarioArbitrary, scenarioArbitrary, (raw1, raw2) => {
        const s1 = valid(raw1)
        const s2 = valid({ ...raw2, config: raw1.config })
        const warm = new HostCompiler(s1.config)
        const m1 = warm.compile(s1).memory
        const viaWarm = warm.compile(s2, m1)
        const viaCold = new HostCompiler(s1.config).compile(s2, new HostCompiler(s1.config).compile(s1).memory)
        expect(renderNormalized(viaWarm.ipv4)).toBe(renderNormalized(viaCold.ipv4))
        expect(renderNormalized(viaWarm.ipv6)).toBe(renderNormalized(viaCold.ipv6))
        expect(viaWarm.conntrack).toEqual(viaCold.conntrack)
        expect(viaWarm.ipsets).toEqual(viaCold.ipsets)
      }),
      { numRuns: NUM_RUNS },
    )
  })
})
