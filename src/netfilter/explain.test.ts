import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { explainRuleset, renderExplanationText } from './explain.js'
import type { Family } from './ir.js'
import { parseIptablesList } from './parse-list.js'
import { parseIptablesSave } from './parse-save.js'

const ROOT = join(import.meta.dirname, '../../test/fixtures')

function fixtureDocs(): { name: string; family: Family; text: string }[] {
  const out: { name: string; family: Family; text: string }[] = []
  for (const dir of readdirSync(join(ROOT, 'neutron'), { withFileTypes: true })) {
    if (!dir.isDirectory()) continue
    const e = JSON.parse(readFileSync(join(ROOT, 'neutron', dir.name, 'expected.json'), 'utf8')) as {
      ipv4: string
      ipv6: string
      steps?: { ipv4: string; ipv6: string }[]
    }
    out.push(
      { name: `${dir.name} ipv4`, family: 4, text: e.ipv4 },
      { name: `${dir.name} ipv6`, family: 6, text: e.ipv6 },
    )
    for (const [i, s] of (e.steps ?? []).entries()) {
      out.push({ name: `${dir.name} step ${i + 1} ipv4`, family: 4, text: s.ipv4 })
      out.push({ name: `${dir.name} step ${i + 1} ipv6`, family: 6, text: s.ipv6 })
    }
  }
  return out
}

describe('explain gives every rule of every Neutron fixture a role', () => {
  it.each(fixtureDocs().map((d) => [d.name, d] as const))('%s', (_n, d) => {
    const e = explainRuleset(parseIptablesSave(d.text).ruleset, { lang: 'en', family: d.family })
    const unknown = e.chains.flatMap((c) =>
      c.rules.filter((r) => r.role === 'unknown').map((r) => `${c.name} #${r.num}: ${r.rule}`),
    )
    expect(unknown).toEqual([])
    expect(e.chains.filter((c) => c.role === 'unknown').map((c) => c.name)).toEqual([])
    // Neutron's own output has no dangling jumps, orphan chains or incomplete ports.
    expect(
      e.findings.filter((f) =>
        ['missing-chain', 'unreferenced-chain', 'port-incomplete', 'zone-stale'].includes(f.kind),
      ),
    ).toEqual([])
  })
})

describe('explain goldens', () => {
  const seed = parseIptablesList(readFileSync(join(ROOT, 'seed/empty-group.list'), 'utf8')).ruleset
  const blog = readFileSync(join(ROOT, 'neutron/blog-walkthrough/expected.json'), 'utf8')
  const blogDocs = JSON.parse(blog) as { ipv4: string; ipv6: string }
  const rule1 = parseIptablesList(readFileSync(join(ROOT, 'seed/rule1-egress.list'), 'utf8')).ruleset

  for (const lang of ['en', 'zh'] as const) {
    it(`seed listing (${lang})`, async () => {
      const text = renderExplanationText(explainRuleset(seed, { lang, family: 4 }), lang)
      await expect(text).toMatchFileSnapshot(`__snapshots__/explain-seed.${lang}.txt`)
    })
    it(`seed after rule 1 (${lang})`, async () => {
      const text = renderExplanationText(explainRuleset(rule1, { lang, family: 4 }), lang)
      await expect(text).toMatchFileSnapshot(`__snapshots__/explain-seed-rule1.${lang}.txt`)
    })
    it(`blog-walkthrough ipv6 (${lang})`, async () => {
      const e = explainRuleset(parseIptablesSave(blogDocs.ipv6).ruleset, { lang, family: 6 })
      await expect(renderExplanationText(e, lang)).toMatchFileSnapshot(`__snapshots__/explain-blog-ipv6.${lang}.txt`)
    })
  }

  it('seed listing roles, in the order the seed annotates them', () => {
    const e = explainRuleset(seed, { lang: 'en', family: 4 })
    const roles = (name: string) => e.chains.find((c) => c.name === name)!.rules.map((r) => r.role)
    expect(roles('neutron-openvswi-ic0a350e0-4')).toEqual([
      'established',
      'dhcp-server-reply',
      'invalid-drop',
      'fallback-jump',
    ])
    expect(roles('neutron-openvswi-oc0a350e0-4')).toEqual([
      'dhcp-client',
      'jump',
      'dhcp-client',
      'dhcp-spoof-drop',
      'established',
      'invalid-drop',
      'fallback-jump',
    ])
    expect(roles('neutron-openvswi-sc0a350e0-4')).toEqual(['ip-mac-allow', 'spoof-drop'])
  })
})

describe('explain findings', () => {
  const doc = (rules: string) =>
    parseIptablesSave(
      `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:neutron-openvswi-sg-chain - [0:0]\n:orphan - [0:0]\n${rules}COMMIT\n`,
    ).ruleset

  it('flags shadowed rules, including by a wider prefix', () => {
    const e = explainRuleset(
      doc(
        '-A FORWARD -j neutron-openvswi-sg-chain\n-A neutron-openvswi-sg-chain -s 10.0.0.0/8 -j ACCEPT\n-A neutron-openvswi-sg-chain -s 10.1.0.0/16 -p tcp -j DROP\n-A neutron-openvswi-sg-chain -s 11.0.0.0/8 -j DROP\n',
      ),
      { lang: 'en', family: 4 },
    )
    expect(e.findings.filter((f) => f.kind === 'shadowed').map((f) => f.num)).toEqual([2])
  })

  it('flags jumps to missing chains, orphan chains and never-matching protocols', () => {
    const e = explainRuleset(doc('-A FORWARD -j neutron-openvswi-gone\n-A FORWARD -p ipv6-frag -j DROP\n'), {
      lang: 'en',
      family: 6,
    })
    expect(e.findings.map((f) => [f.kind, f.chain, f.num])).toEqual([
      ['missing-chain', 'FORWARD', 1],
      ['never-matches', 'FORWARD', 2],
      ['unreferenced-chain', 'orphan', undefined],
    ])
  })

  it('flags a port whose egress chain is missing and a zone for a port without chains', () => {
    const text = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':neutron-openvswi-ia-4 - [0:0]',
      ':neutron-openvswi-sg-chain - [0:0]',
      '-A FORWARD -j neutron-openvswi-sg-chain',
      '-A neutron-openvswi-sg-chain -m physdev --physdev-out tapa-43 --physdev-is-bridged -j neutron-openvswi-ia-4',
      'COMMIT',
      '*raw',
      ':PREROUTING ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':neutron-openvswi-PREROUTING - [0:0]',
      '-A PREROUTING -j neutron-openvswi-PREROUTING',
      '-A neutron-openvswi-PREROUTING -m physdev --physdev-in tapgone-1 -j CT --zone 4097',
      'COMMIT',
    ].join('\n')
    const e = explainRuleset(parseIptablesSave(text).ruleset, { lang: 'en', family: 4 })
    expect(e.findings.map((f) => f.kind)).toEqual(['port-incomplete', 'port-incomplete', 'zone-stale'])
  })
})
