import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseScenario } from '../model/validate.js'
import { explainRuleset } from '../netfilter/explain.js'
import { parseIptablesSave } from '../netfilter/parse-save.js'
import { filteredPorts, scenarioAttribution } from './attribute.js'

const FIXTURES = join(import.meta.dirname, '../../test/fixtures/neutron')
const cases = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)

describe('every security-group rule line of a fixture is attributed to its rule id', () => {
  it.each(cases)('%s', (name) => {
    const { scenario } = parseScenario(JSON.parse(readFileSync(join(FIXTURES, name, 'scenario.json'), 'utf8')))
    expect(scenario).not.toBeNull()
    const s = scenario!
    const expected = JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8')) as {
      ipv4: string
      ipv6: string
    }
    const state = { security_groups: s.security_groups, members: s.members, ports: s.ports }
    for (const family of [4, 6] as const) {
      const e = explainRuleset(parseIptablesSave(family === 4 ? expected.ipv4 : expected.ipv6).ruleset, {
        lang: 'en',
        family,
        attribute: scenarioAttribution(state, s.config, family),
        expectedPorts: filteredPorts(state),
      })
      expect(e.findings.filter((f) => f.kind === 'sg-rule-unattributed')).toEqual([])
      expect(e.findings.filter((f) => f.kind === 'port-missing' || f.kind === 'port-stale')).toEqual([])
      const ruleIds = new Set(s.security_groups.flatMap((g) => g.rules.map((r) => r.id)))
      for (const c of e.chains)
        for (const r of c.rules) {
          if (r.role === 'sg-rule') expect(ruleIds.has(r.sg_rule_id!), `${c.name} #${r.num}`).toBe(true)
        }
    }
  })

  it('names the group and rule of a known line', () => {
    const dir = join(FIXTURES, 'remote-ip-prefix-v4')
    const { scenario } = parseScenario(JSON.parse(readFileSync(join(dir, 'scenario.json'), 'utf8')))
    const s = scenario!
    const doc = (JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { ipv4: string }).ipv4
    const e = explainRuleset(parseIptablesSave(doc).ruleset, {
      lang: 'en',
      family: 4,
      attribute: scenarioAttribution(s, s.config, 4),
    })
    const sg = e.chains.flatMap((c) => c.rules.filter((r) => r.role === 'sg-rule'))
    expect(sg.length).toBeGreaterThan(0)
    for (const r of sg) {
      const group = s.security_groups.find((g) => g.id === r.security_group_id)!
      expect(group.rules.some((x) => x.id === r.sg_rule_id)).toBe(true)
    }
  })
})

describe('checking a dump against the scenario', () => {
  it('names ports without chains and chains of ports the scenario does not have', () => {
    const other = parseScenario(
      JSON.parse(readFileSync(join(FIXTURES, 'ports-sharing-groups', 'scenario.json'), 'utf8')),
    ).scenario!
    const doc = (
      JSON.parse(readFileSync(join(FIXTURES, 'blog-walkthrough', 'expected.json'), 'utf8')) as { ipv4: string }
    ).ipv4
    const e = explainRuleset(parseIptablesSave(doc).ruleset, {
      lang: 'en',
      family: 4,
      expectedPorts: filteredPorts(other),
    })
    expect(e.findings.filter((f) => f.kind === 'port-missing')).toHaveLength(3)
    expect(e.findings.filter((f) => f.kind === 'port-stale').map((f) => f.message)).toEqual([
      'chains for port c0a350e0-4…, which the scenario does not have on this host (stale)',
    ])
  })
})
