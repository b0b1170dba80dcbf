import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseScenario } from '../model/validate.js'
import { compileScenario, type StateResult } from './index.js'

const root = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'neutron')
const cases = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort()

/** Per-chain diff of two normalized documents, for a readable failure. */
function chainDiff(expected: string, actual: string): string {
  const byChain = (doc: string): Map<string, string[]> => {
    const m = new Map<string, string[]>()
    let table = ''
    for (const line of doc.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1)
      const name = line.startsWith('-A ')
        ? line.split(' ')[1]
        : line.startsWith(':')
          ? line.slice(1).split(' ')[0]
          : null
      if (!name) continue
      const key = `${table}/${name}`
      if (!m.has(key)) m.set(key, [])
      if (line.startsWith('-A ')) m.get(key)?.push(line)
    }
    return m
  }
  const e = byChain(expected)
  const a = byChain(actual)
  const out: string[] = []
  for (const k of new Set([...e.keys(), ...a.keys()])) {
    const el = e.get(k)
    const al = a.get(k)
    if (JSON.stringify(el) === JSON.stringify(al)) continue
    out.push(`chain ${k}:`)
    out.push(...(el ?? ['(missing)']).map((l) => `  - ${l}`))
    out.push(...(al ?? ['(missing)']).map((l) => `  + ${l}`))
  }
  return out.join('\n')
}

function compareState(label: string, expected: StateResult, actual: StateResult): void {
  for (const fam of ['ipv4', 'ipv6'] as const) {
    if (expected[fam] !== actual[fam]) {
      expect.soft(actual[fam], `${label} ${fam}:\n${chainDiff(expected[fam], actual[fam])}`).toBe(expected[fam])
    }
  }
  expect.soft(actual.ipsets, `${label} ipsets`).toEqual(expected.ipsets)
  expect.soft(actual.conntrack, `${label} conntrack`).toEqual(expected.conntrack)
}

describe('Neutron golden fixtures', () => {
  it('has the fixtures', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40)
  })
  for (const name of cases) {
    it(name, () => {
      const scenario = JSON.parse(readFileSync(join(root, name, 'scenario.json'), 'utf8'))
      const expected = JSON.parse(readFileSync(join(root, name, 'expected.json'), 'utf8'))
      const { scenario: s, issues } = parseScenario(scenario)
      expect(issues).toEqual([])
      if (!s) return
      const actual = compileScenario(s)
      compareState('initial', expected, actual)
      expect(actual.steps.length).toBe((expected.steps ?? []).length)
      for (const [i, st] of actual.steps.entries()) compareState(`step ${i + 1}`, expected.steps[i], st)
    })
  }
})
