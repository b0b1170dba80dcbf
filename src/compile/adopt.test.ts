import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseScenario } from '../model/validate.js'
import { parseIptablesSave } from '../netfilter/parse-save.js'
import { renderNormalized } from '../netfilter/render.js'
import { adoptZones } from './adopt.js'
import { HostCompiler } from './index.js'

function scenario(name: string) {
  const raw = JSON.parse(
    readFileSync(join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'neutron', name, 'scenario.json'), 'utf8'),
  )
  const s = parseScenario(raw).scenario
  if (!s) throw new Error(name)
  return s
}

describe('adoptZones', () => {
  for (const name of ['ports-sharing-groups', 'iptables-driver', 'step-add-port-zone-allocation']) {
    it(`a restarted agent keeps the zones of ${name}`, () => {
      const s = scenario(name)
      // The agent ran through every step, then restarts on the same kernel state.
      const compiler = new HostCompiler(s.config)
      let state = { security_groups: s.security_groups, members: s.members, ports: s.ports }
      let last = compiler.compile(state)
      for (const step of s.steps) {
        state = {
          security_groups: step.security_groups ?? state.security_groups,
          members: step.members ?? state.members,
          ports: step.ports ?? state.ports,
        }
        last = compiler.compile(state, last.memory)
      }
      const kernel = parseIptablesSave(renderNormalized(last.ipv4)).ruleset
      const seed = adoptZones(kernel, s.config.firewall_driver)
      const restarted = new HostCompiler(s.config).compile(state, seed)
      expect(renderNormalized(restarted.ipv4)).toBe(renderNormalized(last.ipv4))
      expect(renderNormalized(restarted.ipv6)).toBe(renderNormalized(last.ipv6))
    })
  }

  it('a fresh agent without adoption would renumber (why adoption matters)', () => {
    const s = scenario('step-add-port-zone-allocation')
    const compiler = new HostCompiler(s.config)
    let last = compiler.compile(s)
    let state = { security_groups: s.security_groups, members: s.members, ports: s.ports }
    for (const step of s.steps) {
      state = { ...state, ...step }
      last = compiler.compile(state, last.memory)
    }
    const fresh = new HostCompiler(s.config).compile(state)
    expect(renderNormalized(fresh.ipv4)).not.toBe(renderNormalized(last.ipv4))
  })
})
