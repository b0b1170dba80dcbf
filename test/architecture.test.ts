/**
 * The pure core (model, netfilter, compile, agent/plan.ts) does no I/O, reads no clock,
 * no randomness and no environment; netfilter knows nothing about Neutron.
 * Enforced by scanning the sources (like rust-analyzer's tidy checks).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')

function sources(dir: string): string[] {
  const abs = join(root, dir)
  if (!existsSync(abs)) return []
  if (statSync(abs).isFile()) return [abs]
  return readdirSync(abs, { recursive: true })
    .map((f) => join(abs, String(f)))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
}

const FORBIDDEN: Array<[RegExp, string]> = [
  [/from 'node:(fs|fs\/promises|child_process|net|http|https|dgram|os)'/, 'I/O module import'],
  [/\bprocess\.(env|argv|stdout|stderr|exit)/, 'process access'],
  [/\bDate\.now\(|new Date\(/, 'clock'],
  [/\bMath\.random\(/, 'randomness'],
  [/\bperformance\.now\(/, 'clock'],
]

describe('architecture', () => {
  const core = ['src/model', 'src/netfilter', 'src/compile', 'src/agent/plan.ts'].flatMap(sources)

  it('finds the core sources', () => {
    expect(core.length).toBeGreaterThan(5)
  })

  for (const file of core) {
    it(`${relative(root, file)} is pure`, () => {
      const text = readFileSync(file, 'utf8')
      for (const [re, what] of FORBIDDEN) expect(text, `${what} in ${relative(root, file)}`).not.toMatch(re)
    })
  }

  it('netfilter/ imports nothing from model/, compile/ or the shell', () => {
    for (const file of sources('src/netfilter')) {
      const text = readFileSync(file, 'utf8')
      expect(text, relative(root, file)).not.toMatch(/from '\.\.\/(model|compile|agent|host|store|api|cli)\//)
    }
  })

  it('only src/host/ spawns processes', () => {
    for (const file of sources('src')) {
      if (relative(root, file).startsWith('src/host/')) continue
      expect(readFileSync(file, 'utf8'), relative(root, file)).not.toMatch(/from 'node:child_process'/)
    }
  })
})
