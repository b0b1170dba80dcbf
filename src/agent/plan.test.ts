import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compileScenarioStates, toStateResult } from '../compile/index.js'
import { FakeHost } from '../host/fake-host.js'
import { HostCommandError } from '../host/host.js'
import { parseScenario } from '../model/validate.js'
import { applyCompiled, applyCompiledChange, applyDesired, diffDesired, readActual } from './apply.js'
import {
  type DesiredState,
  isInSync,
  parseConntrackCommand,
  planApply,
  planApplyCompiled,
  renderForeignView,
  renderOwnedView,
} from './plan.js'

const FIXTURES = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'neutron')

interface Expected extends DesiredState {
  readonly steps?: readonly DesiredState[]
}

function loadExpected(name: string): Expected {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8')) as Expected
}

const FOREIGN_V4 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
`

function foreignPart(save: string): string {
  return renderForeignView(save)
}

function sortedSets(s: Readonly<Record<string, readonly string[]>>): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(s)
      .map(([k, v]) => [k, [...v].sort()] as const)
      .sort(),
  )
}

async function expectHolds(host: FakeHost, d: DesiredState): Promise<void> {
  expect(renderOwnedView(await host.iptablesSave(4))).toBe(d.ipv4)
  expect(renderOwnedView(await host.iptablesSave(6))).toBe(d.ipv6)
  const sets: Record<string, string[]> = {}
  for (const [k, v] of host.sets) sets[k] = [...v.members]
  expect(sortedSets(sets)).toEqual(sortedSets(d.ipsets))
  expect(isInSync(await diffDesired(host, d))).toBe(true)
}

describe('planApply on FakeHost, every Neutron fixture and its steps', () => {
  const cases = readdirSync(FIXTURES).filter((n) => !n.includes('.'))
  it.each(cases)('%s', async (name) => {
    const exp = loadExpected(name)
    const host = new FakeHost()
    host.loadSave(4, FOREIGN_V4)
    const foreignBefore = foreignPart(await host.iptablesSave(4))
    for (const state of [exp, ...(exp.steps ?? [])]) {
      await applyDesired(host, state)
      await expectHolds(host, state)
      expect(foreignPart(await host.iptablesSave(4))).toBe(foreignBefore)
    }
    // and back to nothing: every chain, jump and set of ours goes, foreign rules stay
    await applyDesired(host, { ipv4: '', ipv6: '', ipsets: {}, conntrack: [] })
    expect(renderOwnedView(await host.iptablesSave(4))).toBe('')
    expect(host.sets.size).toBe(0)
    expect(foreignPart(await host.iptablesSave(4))).toBe(foreignBefore)
  })
})

describe('plan shape', () => {
  const walk = loadExpected('blog-walkthrough')
  const twoPorts = loadExpected('ports-sharing-groups')

  it('rewrites a changed chain by declaring it and listing all its rules, never flush-then-add', async () => {
    const host = new FakeHost()
    await applyDesired(host, twoPorts)
    // change one rule of one port chain only
    const changed: DesiredState = {
      ...twoPorts,
      ipv4: twoPorts.ipv4.replace(
        /(-A (neutron-openvswi-i[^ ]+) -m state --state INVALID)/,
        '-A $2 -p tcp -m tcp --dport 9 -j RETURN\n$1',
      ),
    }
    expect(changed.ipv4).not.toBe(twoPorts.ipv4)
    const { plan } = await applyDesired(host, changed, { maxEdit: 0 })
    const doc = plan.restore[4]!
    expect(plan.restore[6]).toBeNull()
    expect(plan.chainChanges.map((c) => c.kind)).toEqual(['rewrite'])
    const chain = plan.chainChanges[0]!.chain
    expect(doc.split('\n')).toContain(`:${chain} - [0:0]`)
    expect(doc).not.toMatch(/^-F /m)
    expect(doc).not.toMatch(/^-D /m)
    expect(
      doc
        .split('\n')
        .filter((l) => l.startsWith('-A '))
        .every((l) => l.startsWith(`-A ${chain} `)),
    ).toBe(true)
    await expectHolds(host, changed)
  })

  it('a small change is an edit: positional inserts and deletes inside one commit', async () => {
    const host = new FakeHost()
    await applyDesired(host, twoPorts)
    const changed: DesiredState = {
      ...twoPorts,
      ipv4: twoPorts.ipv4.replace(
        /(-A (neutron-openvswi-i[^ ]+) -m state --state INVALID)/,
        '-A $2 -p tcp -m tcp --dport 9 -j RETURN\n$1',
      ),
    }
    const { plan } = await applyDesired(host, changed)
    expect(plan.chainChanges.map((c) => c.kind)).toEqual(['edit'])
    const chain = plan.chainChanges[0]!.chain
    const pos = plan.chainChanges[0]!.after.indexOf('-p tcp -m tcp --dport 9 -j RETURN') + 1
    expect(plan.restore[4]).toBe(`*filter\n-I ${chain} ${pos} -p tcp -m tcp --dport 9 -j RETURN\nCOMMIT\n`)
    await expectHolds(host, changed)
    // and back: one positional delete
    const back = await applyDesired(host, twoPorts)
    expect(back.plan.restore[4]).toBe(`*filter\n-D ${chain} ${pos}\nCOMMIT\n`)
    await expectHolds(host, twoPorts)
  })

  it('declares new chains before rules jump to them and deletes old chains after the jumps go', () => {
    const plan = planApply(walk, { ipv4: '', ipv6: '', ipset: '' })
    const lines = plan.restore[4]!.split('\n')
    const firstRule = lines.findIndex((l) => l.startsWith('-'))
    expect(lines.slice(1, firstRule).every((l) => l.startsWith(':'))).toBe(true)
    const back = planApply({ ipv4: '', ipv6: '', ipsets: {}, conntrack: [] }, { ipv4: walk.ipv4, ipv6: '', ipset: '' })
    const b = back.restore[4]!.split('\n').slice(0, back.restore[4]!.split('\n').indexOf('COMMIT'))
    expect(b[0]).toBe('*filter')
    const lastDelete = b.findLastIndex((l) => l.startsWith('-D '))
    const firstX = b.findIndex((l) => l.startsWith('-X '))
    expect(lastDelete).toBeGreaterThan(0)
    expect(firstX).toBeGreaterThan(lastDelete)
  })

  it('a big creation goes ahead in waves of new chains; jump targets exist at each commit; the final commit makes them live', async () => {
    const host = new FakeHost()
    host.loadSave(4, FOREIGN_V4)
    const actual = { ipv4: await host.iptablesSave(4), ipv6: await host.iptablesSave(6), ipset: '' }
    const plan = planApply(walk, actual, { splitMinRules: 1, splitChunkRules: 6 })
    const waves = plan.createWaves[4]
    expect(waves.length).toBeGreaterThan(1)
    expect(waves.some((w) => w.length > 1)).toBe(true)
    const builtinTargets = new Set(['ACCEPT', 'DROP', 'RETURN', 'REJECT', 'LOG', 'CT', 'DOCKER-USER'])
    const created = new Set<string>() // "table chain"
    for (const wave of waves) {
      const inWave = new Set<string>()
      for (const doc of wave) {
        const lines = doc.trimEnd().split('\n')
        const table = lines[0]!.slice(1)
        expect(['filter', 'raw']).toContain(table)
        expect(lines.at(-1)).toBe('COMMIT')
        for (const l of lines.filter((x) => x.startsWith(':'))) {
          const key = `${table} ${l.slice(1, l.indexOf(' '))}`
          expect(created.has(key) || inWave.has(key), key).toBe(false)
          inWave.add(key)
        }
        // only new chains, filled by appends; every jump goes to a chain of an earlier wave or a built-in target
        for (const l of lines.filter((x) => x.startsWith('-'))) {
          expect(l.startsWith('-A ')).toBe(true)
          const target = / -[jg] (\S+)/.exec(l)?.[1]
          if (target !== undefined && target !== l.split(' ')[1]) {
            expect(builtinTargets.has(target) || created.has(`${table} ${target}`), l).toBe(true)
          }
        }
      }
      for (const n of inWave) created.add(n)
    }
    // the final document declares none of them and holds the jumps from the built-in chains
    const final = plan.restore[4]!
    for (const n of created) expect(final).not.toContain(`:${n.split(' ')[1]} `)
    expect(final).toMatch(/-I FORWARD 1 -j neutron-/)
    await applyDesired(host, walk, { splitMinRules: 1, splitChunkRules: 6 })
    await expectHolds(host, walk)
    // small plans stay one document per family
    expect(planApply(walk, actual).createWaves).toEqual({ 4: [], 6: [] })
  })

  it('an in-sync kernel gives an empty plan; a foreign edit of our chain is drift', async () => {
    const host = new FakeHost()
    await applyDesired(host, walk)
    expect(isInSync(await diffDesired(host, walk))).toBe(true)
    await host.iptablesRestore(4, '*filter\n-A neutron-openvswi-sg-fallback -j ACCEPT\nCOMMIT\n')
    const drift = await diffDesired(host, walk)
    expect(drift.chainChanges.map((c) => `${c.kind} ${c.chain}`)).toEqual(['rewrite neutron-openvswi-sg-fallback'])
    await applyDesired(host, walk)
    await expectHolds(host, walk)
  })

  it('a missing jump in a built-in chain is repaired without touching foreign rules there', async () => {
    const host = new FakeHost()
    host.loadSave(4, FOREIGN_V4)
    await applyDesired(host, walk)
    await host.iptablesRestore(4, '*filter\n-D FORWARD -j neutron-openvswi-FORWARD\nCOMMIT\n')
    const drift = await diffDesired(host, walk)
    expect(drift.chainChanges.map((c) => `${c.kind} ${c.chain}`)).toEqual(['jumps FORWARD'])
    await applyDesired(host, walk)
    const save = await host.iptablesSave(4)
    expect(save).toContain('-A FORWARD -j DOCKER-USER')
    expect(save).toContain('-A FORWARD -i docker0 -o docker0 -j ACCEPT')
    await expectHolds(host, walk)
  })

  it('a failed restore changes nothing and reports the command, stderr and line', async () => {
    const host = new FakeHost()
    await applyDesired(host, walk)
    const before = await host.iptablesSave(4)
    host.failNextRestore('iptables-restore: line 2 failed')
    const err = await applyDesired(host, twoPorts).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HostCommandError)
    const e = err as HostCommandError
    expect(e.type).toBe('HostCommandFailed')
    expect(e.command[0]).toBe('ipset')
    expect(e.failingLine).not.toBeNull()
    expect(await host.iptablesSave(4)).toBe(before)
  })

  it('large set changes are swapped in, small ones added before and removed after the rules', () => {
    const name = 'NIPv4aaaaaaaa-bbbb-cccc-dddd-'
    const actual = { ipv4: '', ipv6: '', ipset: `create ${name} hash:net family inet\nadd ${name} 10.0.0.1\n` }
    const small = planApply({ ipv4: '', ipv6: '', ipsets: { [name]: ['10.0.0.2'] }, conntrack: [] }, actual)
    expect(small.ipsetPrepare).toBe(`add ${name} 10.0.0.2\n`)
    expect(small.ipsetFinish).toBe(`del ${name} 10.0.0.1\n`)
    const many = Array.from({ length: 100 }, (_, i) => `10.1.0.${i}`)
    const big = planApply({ ipv4: '', ipv6: '', ipsets: { [name]: many }, conntrack: [] }, actual)
    expect(big.setChanges[0]!.kind).toBe('swap')
    expect(big.ipsetPrepare).toContain(`swap ${name} ${name.slice(0, 29)}-n`)
    expect(big.ipsetFinish).toBe('')
  })

  it('rejects bad input with the path of the problem and plans nothing unowned', () => {
    const p = planApply(
      {
        ipv4: '*filter\n:INPUT ACCEPT [0:0]\n:evil - [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n',
        ipv6: '',
        ipsets: { 'NIPv4x y': ['10.0.0.1'], NIPv4ok: ['10.0.0.1; rm -rf /'] },
        conntrack: ['conntrack -D -f ipv4 -d 10.0.0.1 --mark 1', 'rm -rf /'],
      },
      { ipv4: '', ipv6: '', ipset: '' },
    )
    const paths = p.issues.map((i) => i.path)
    expect(paths).toEqual(
      expect.arrayContaining([
        'ipv4.filter.evil',
        'ipv4.filter.INPUT',
        'ipsets.NIPv4x y',
        'ipsets.NIPv4ok',
        'conntrack[0]',
        'conntrack[1]',
      ]),
    )
  })

  it('parses the conntrack deletions of the fixtures', () => {
    expect(parseConntrackCommand('conntrack -D -p tcp -f ipv4 -d 192.168.1.102 -w 4097')).toEqual({
      family: 'ipv4',
      protocol: 'tcp',
      destination: '192.168.1.102',
      zone: 4097,
    })
    for (const n of readdirSync(FIXTURES).filter((x) => !x.includes('.'))) {
      const e = loadExpected(n)
      for (const line of [...e.conntrack, ...(e.steps ?? []).flatMap((s) => s.conntrack)]) {
        expect(typeof parseConntrackCommand(line), line).toBe('object')
      }
    }
  })
})

describe('property: from any kernel state to any desired state', () => {
  const states: DesiredState[] = readdirSync(FIXTURES)
    .filter((n) => !n.includes('.'))
    .flatMap((n) => {
      const e = loadExpected(n)
      return [e, ...(e.steps ?? [])]
    })

  it('after apply the kernel holds the target, foreign rules stay, a second plan is empty', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(states.length - 1), { minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.nat(),
        async (path, dropSeed, maxEdit) => {
          const host = new FakeHost()
          host.loadSave(4, FOREIGN_V4)
          const foreign = renderForeignView(await host.iptablesSave(4))
          for (const i of path) {
            const target = states[i]!
            // drift: someone deleted one rule of ours in the kernel
            const save = await host.iptablesSave(4)
            const ours = save.split('\n').filter((l) => l.startsWith('-A neutron-'))
            const victim = ours.length ? ours[dropSeed % ours.length]! : null
            if (victim)
              await host.iptablesRestore(4, `*filter\n${victim.replace(/^-A/, '-D')}\nCOMMIT\n`).catch(() => {})
            // odd seeds: new chains created ahead in small waves
            const split = maxEdit % 2 === 1 ? { splitMinRules: 1, splitChunkRules: 1 + (dropSeed % 9) } : {}
            await applyDesired(host, target, { maxEdit: maxEdit % 8, ...split })
            await expectHolds(host, target)
            expect(renderForeignView(await host.iptablesSave(4))).toBe(foreign)
          }
        },
      ),
      { numRuns: 60 },
    )
  })
})

describe('planChange from the compiler Rulesets (hot path)', () => {
  const names = readdirSync(FIXTURES).filter((n) => !n.includes('.'))
  it.each(names)('%s: every step applied as a change holds the compiler output', async (name) => {
    const { scenario } = parseScenario(JSON.parse(readFileSync(join(FIXTURES, name, 'scenario.json'), 'utf8')))
    const states = compileScenarioStates(scenario!)
    const host = new FakeHost()
    host.loadSave(4, FOREIGN_V4)
    await applyDesired(host, toStateResult(states[0]!))
    for (let i = 1; i < states.length; i++) {
      await applyCompiledChange(host, states[i - 1]!, states[i]!)
      await expectHolds(host, toStateResult(states[i]!))
    }
  })
})

describe('planApplyCompiled: the plan from the Rulesets equals the plan from the rendered text', () => {
  const names = readdirSync(FIXTURES).filter((n) => !n.includes('.'))
  const compiled = names.flatMap((name) => {
    const { scenario } = parseScenario(JSON.parse(readFileSync(join(FIXTURES, name, 'scenario.json'), 'utf8')))
    return compileScenarioStates(scenario!)
  })
  it('for every fixture state against kernels holding nothing, foreign rules, itself, or another state (with drift)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(compiled.length - 1),
        fc.option(fc.nat(compiled.length - 1)),
        fc.nat(),
        fc.nat(7),
        async (i, j, dropSeed, maxEdit) => {
          const host = new FakeHost()
          host.loadSave(4, FOREIGN_V4)
          if (j !== null) await applyDesired(host, toStateResult(compiled[j]!))
          const save = await host.iptablesSave(4)
          const filter = save.slice(save.indexOf('*filter'), save.indexOf('COMMIT', save.indexOf('*filter')))
          const ours = filter.split('\n').filter((l) => l.startsWith('-A neutron-'))
          if (ours.length && dropSeed % 3 === 0)
            await host.iptablesRestore(4, `*filter\n${ours[dropSeed % ours.length]!.replace(/^-A/, '-D')}\nCOMMIT\n`)
          const actual = await readActual(host)
          const split = dropSeed % 2 ? { splitMinRules: 1, splitChunkRules: 1 + (dropSeed % 5) } : {}
          const options = { maxEdit, ...split }
          const fromText = planApply(toStateResult(compiled[i]!), actual, options)
          expect(planApplyCompiled(compiled[i]!, actual, options)).toEqual(fromText)
          expect(fromText.issues).toEqual([])
        },
      ),
      { numRuns: 200 },
    )
  })
  it('applyCompiled makes the kernel hold the compiler output', async () => {
    const host = new FakeHost()
    host.loadSave(4, FOREIGN_V4)
    for (const c of compiled.slice(0, 20)) {
      await applyCompiled(host, c)
      await expectHolds(host, toStateResult(c))
    }
  })
})
