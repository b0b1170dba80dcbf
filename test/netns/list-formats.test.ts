/**
 * The listing readers against the real iptables: every Neutron fixture document is
 * loaded into a throwaway namespace, listed with `iptables -L -v -n --line-numbers`,
 * `-L -v -n -x`, the non-numeric `--list -v`, and `iptables-save -c`; all of them
 * must read back to the fixture's ruleset (and to the same counters).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { explainRuleset } from '../../src/netfilter/explain.js'
import type { Family, Ruleset } from '../../src/netfilter/ir.js'
import { parseIptablesList } from '../../src/netfilter/parse-list.js'
import { parseIptablesSave } from '../../src/netfilter/parse-save.js'
import { renderNormalized } from '../../src/netfilter/render.js'
import { kernelTestSkipReason, Netns } from './netns-util.js'

const FIXTURES = join(import.meta.dirname, '../fixtures/neutron')
const EXTRA = join(import.meta.dirname, '../fixtures/formats/extra-matches.save')

interface Doc {
  name: string
  family: Family
  text: string
}

function documents(): Doc[] {
  const docs: Doc[] = []
  for (const dir of readdirSync(FIXTURES, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue
    const e = JSON.parse(readFileSync(join(FIXTURES, dir.name, 'expected.json'), 'utf8')) as {
      ipv4: string
      ipv6: string
    }
    if (e.ipv4) docs.push({ name: `${dir.name} ipv4`, family: 4, text: e.ipv4 })
    if (e.ipv6) docs.push({ name: `${dir.name} ipv6`, family: 6, text: e.ipv6 })
  }
  docs.push({ name: 'extra-matches ipv4', family: 4, text: readFileSync(EXTRA, 'utf8') })
  return docs
}

const upperMacs = (text: string): string =>
  text.replace(/--mac-source ([0-9a-fA-F:]{17})/g, (_m, mac: string) => `--mac-source ${mac.toUpperCase()}`)

/** What the non-numeric IPv6 listing cannot show: `-s ::/128` prints as "anywhere". */
const withoutUnspecifiedV6Source = (text: string): string => text.replace(/ -s ::\/128/g, '')

function counters(r: Ruleset): string[] {
  const out: string[] = []
  for (const t of r.tables)
    for (const c of t.chains)
      for (const [i, rule] of c.rules.entries())
        out.push(`${t.name} ${c.name} ${i + 1} ${rule.counters?.packets ?? '-'}`)
  return out.sort()
}

/** Explanation as text, independent of the order tables and chains were printed in; MACs upper case. */
function canonical(e: ReturnType<typeof explainRuleset>): string {
  const key = (t: string, c: string) => `${t} ${c}`
  const chains = [...e.chains].sort((x, y) => (key(x.table, x.name) < key(y.table, y.name) ? -1 : 1))
  const findings = [...e.findings].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1))
  return JSON.stringify({ chains, findings }).replace(/[0-9a-f]{2}(:[0-9a-f]{2}){5}/gi, (m) => m.toUpperCase())
}

const skip = kernelTestSkipReason()
if (skip) console.log(skip)

describe.skipIf(skip !== null)('listing formats read back to the same ruleset (real iptables)', () => {
  let ns: Netns
  beforeAll(() => {
    ns = new Netns('sgw-ana-list')
  })
  afterAll(() => {
    ns?.destroy()
  })

  it.each(documents().map((d) => [d.name, d] as const))('%s', (_name, doc) => {
    const ipt = doc.family === 4 ? 'iptables' : 'ip6tables'
    for (const flush of ['iptables', 'ip6tables'])
      for (const t of ['filter', 'raw']) {
        ns.exec(flush, ['-t', t, '-F'])
        ns.exec(flush, ['-t', t, '-X'])
      }
    ns.exec('ipset', ['destroy'])
    for (const [, set] of doc.text.matchAll(/--match-set (\S+)/g)) {
      ns.exec('ipset', ['-exist', 'create', set!, 'hash:net', 'family', doc.family === 4 ? 'inet' : 'inet6'])
    }
    ns.exec(`${ipt}-restore`, [], doc.text)
    const save = ns.exec(`${ipt}-save`, ['-c'])
    const numeric = ['filter', 'raw']
      .map(
        (t) =>
          `# ${ipt} -t ${t} -L -v -n --line-numbers\n${ns.exec(ipt, ['-t', t, '-L', '-v', '-n', '--line-numbers'])}`,
      )
      .join('\n')
    const exact = ['filter', 'raw']
      .map((t) => `$ ${ipt} -t ${t} -L -v -n -x\n${ns.exec(ipt, ['-t', t, '-L', '-v', '-n', '-x'])}`)
      .join('\n')
    // Non-numeric, as in the seed: filter first, then raw without a command line (PREROUTING switches table).
    const names = ['filter', 'raw'].map((t) => ns.exec(ipt, ['-t', t, '--list', '-v'])).join('\n')

    const expected = renderNormalized(parseIptablesSave(doc.text).ruleset)
    const fromSave = parseIptablesSave(save)
    expect(fromSave.issues).toEqual([])
    expect(upperMacs(renderNormalized(fromSave.ruleset))).toBe(upperMacs(expected))

    for (const [label, text, opts] of [
      ['-L -v -n --line-numbers', numeric, {}],
      ['-L -v -n -x', exact, {}],
      ['--list -v', names, { family: doc.family }],
    ] as const) {
      const parsed = parseIptablesList(text, opts)
      expect(parsed.issues, label).toEqual([])
      expect(parsed.family, label).toBe(doc.family === 6 || label !== '--list -v' ? doc.family : parsed.family)
      let want = upperMacs(expected)
      if (label === '--list -v' && doc.family === 6) want = withoutUnspecifiedV6Source(want)
      expect(upperMacs(renderNormalized(parsed.ruleset)), label).toBe(want)
      expect(counters(parsed.ruleset), label).toEqual(counters(fromSave.ruleset))
      // Same ruleset, same explanation (roles, sentences, counters, findings) whatever the format.
      if (!(label === '--list -v' && doc.family === 6)) {
        for (const lang of ['en', 'zh'] as const) {
          const a = explainRuleset(parsed.ruleset, { lang, family: doc.family })
          const b = explainRuleset(fromSave.ruleset, { lang, family: doc.family })
          expect(canonical(a), label).toBe(canonical(b))
        }
      }
    }
  })
})
