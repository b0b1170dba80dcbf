import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { NeutronFix, Scenario } from '../model/types.js'
import { parseScenario } from '../model/validate.js'
import { compileScenario } from './index.js'

function load(name: string, fixes: NeutronFix[] = []): Scenario {
  const raw = JSON.parse(
    readFileSync(join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'neutron', name, 'scenario.json'), 'utf8'),
  )
  raw.config.fixes = fixes
  const s = parseScenario(raw).scenario
  if (!s) throw new Error(name)
  return s
}

function chain(doc: string, name: string): string[] {
  return doc.split('\n').filter((l) => l.startsWith(`-A ${name} `))
}

describe('opt-in fixes of Neutron bugs', () => {
  it('stale-raw-rules: a port whose statefulness flips keeps only its current raw rules', () => {
    const quirky = compileScenario(load('step-stateless-group-first-rule'))
    const fixed = compileScenario(load('step-stateless-group-first-rule', ['stale-raw-rules']))
    const pre = 'neutron-openvswi-PREROUTING'
    // Neutron: zone rules stay in front of the new notrack rules (6 rules), the port stays stateful.
    expect(chain(quirky.steps[0]?.ipv4 ?? '', pre)).toHaveLength(6)
    const rules = chain(fixed.steps[0]?.ipv4 ?? '', pre)
    expect(rules).toHaveLength(3)
    expect(rules.every((r) => r.includes('-j CT --notrack'))).toBe(true)
    const back = chain(fixed.steps[1]?.ipv4 ?? '', pre)
    expect(back).toHaveLength(3)
    expect(back.every((r) => r.includes('-j CT --zone 4097'))).toBe(true)
  })

  it('spoof-missing-family: an IPv4-only port gets an IPv6 anti-spoofing chain that drops', () => {
    const quirky = compileScenario(load('blog-walkthrough'))
    const fixed = compileScenario(load('blog-walkthrough', ['spoof-missing-family']))
    const s = 'neutron-openvswi-sc0a350e0-4'
    expect(chain(quirky.ipv6, s)).toEqual([])
    expect(chain(fixed.ipv6, s)).toEqual([
      `-A ${s} -m comment --comment "Drop traffic without an IP/MAC allow rule." -j DROP`,
    ])
    expect(chain(fixed.ipv6, 'neutron-openvswi-oc0a350e0-4')).toContain(`-A neutron-openvswi-oc0a350e0-4 -j ${s}`)
    // IPv4 is unchanged.
    expect(fixed.ipv4).toBe(quirky.ipv4)
  })

  it('rejects unknown fixes with the path', () => {
    const raw = JSON.parse(
      readFileSync(
        join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'neutron', 'blog-walkthrough', 'scenario.json'),
        'utf8',
      ),
    )
    raw.config.fixes = ['make-it-fast']
    expect(parseScenario(raw).issues).toEqual([
      {
        path: '$.config.fixes[0]',
        message: 'unknown fix "make-it-fast" (known: stale-raw-rules, spoof-missing-family)',
      },
    ])
  })
})
