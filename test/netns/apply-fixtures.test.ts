/**
 * Every Neutron fixture (and each of its steps) applied to a real kernel in a fresh
 * namespace, with both iptables backends: afterwards the kernel's normalized
 * iptables-save of our chains equals the fixture, our ipsets hold exactly the
 * fixture's members, a second diff finds nothing, and foreign rules are untouched.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyDesired, diffDesired } from '../../src/agent/apply.js'
import { type DesiredState, isInSync, ownedSets, renderForeignView, renderOwnedView } from '../../src/agent/plan.js'
import { type IptablesBackend, RealHost } from '../../src/host/real-host.js'
import { addNetns, delNetns, FOREIGN_V4, kernelSkipReason, uniqueName } from './helpers.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'neutron')
interface Expected extends DesiredState {
  readonly steps?: readonly DesiredState[]
}
const cases = readdirSync(FIXTURES).filter((n) => !n.includes('.'))
const skip = kernelSkipReason(['iptables-legacy-restore'])
if (skip) console.warn(`skipping apply-fixtures kernel tests: ${skip}`)

function sorted(s: Readonly<Record<string, readonly string[]>>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, [...v].sort()]))
}

describe.skipIf(skip !== null).each(['nft', 'legacy'] as IptablesBackend[])(
  'apply fixtures, iptables-%s',
  (backend) => {
    const ns = uniqueName(backend === 'nft' ? 'n' : 'l')
    let host: RealHost
    beforeAll(() => {
      addNetns(ns)
      host = new RealHost({ netns: ns, backend })
    })
    afterAll(() => delNetns(ns))

    it('every fixture state, in sequence, on one kernel; foreign rules untouched', async () => {
      await host.iptablesRestore(4, FOREIGN_V4)
      const foreign = renderForeignView(await host.iptablesSave(4))
      expect(foreign).toContain('DOCKER-USER')
      for (const name of cases) {
        const exp = JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8')) as Expected
        for (const [i, state] of [exp, ...(exp.steps ?? [])].entries()) {
          const where = `${name} state ${i}`
          await applyDesired(host, state)
          expect(renderOwnedView(await host.iptablesSave(4)), where).toBe(state.ipv4)
          expect(renderOwnedView(await host.iptablesSave(6)), where).toBe(state.ipv6)
          expect(sorted(ownedSets(await host.ipsetSave())), where).toEqual(sorted(state.ipsets))
          const again = await diffDesired(host, state)
          expect(isInSync(again), `${where}: ${JSON.stringify(again.chainChanges)}`).toBe(true)
          expect(renderForeignView(await host.iptablesSave(4)), where).toBe(foreign)
        }
      }
      await applyDesired(host, { ipv4: '', ipv6: '', ipsets: {}, conntrack: [] })
      expect(renderOwnedView(await host.iptablesSave(4))).toBe('')
      expect(renderOwnedView(await host.iptablesSave(6))).toBe('')
      expect(ownedSets(await host.ipsetSave())).toEqual({})
      expect(renderForeignView(await host.iptablesSave(4))).toBe(foreign)
    })

    it('every fixture state with new chains created ahead in small restore waves', async () => {
      const split = { splitMinRules: 1, splitChunkRules: 5 }
      for (const name of cases) {
        const exp = JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8')) as Expected
        for (const [i, state] of [exp, ...(exp.steps ?? [])].entries()) {
          const where = `${name} state ${i}`
          const r = await applyDesired(host, state, split)
          if (i === 0 && state.ipv4.includes(':neutron-'))
            expect(r.plan.createWaves[4].length, where).toBeGreaterThan(0)
          expect(renderOwnedView(await host.iptablesSave(4)), where).toBe(state.ipv4)
          expect(renderOwnedView(await host.iptablesSave(6)), where).toBe(state.ipv6)
          expect(isInSync(await diffDesired(host, state)), where).toBe(true)
        }
        await applyDesired(host, { ipv4: '', ipv6: '', ipsets: {}, conntrack: [] })
      }
    })

    it('a bulk ipset change is swapped in while a rule references the set', async () => {
      const set = 'NIPv4aaaaaaaa-bbbb-4ccc-8ddd-'
      const v4 = [
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':FORWARD ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':neutron-openvswi-INPUT - [0:0]',
        '-A INPUT -j neutron-openvswi-INPUT',
        `-A neutron-openvswi-INPUT -m set --match-set ${set} src -j RETURN`,
        'COMMIT',
        '',
      ].join('\n')
      const state = (base: number): DesiredState => ({
        ipv4: v4,
        ipv6: '',
        ipsets: { [set]: Array.from({ length: 100 }, (_, i) => `10.${base}.${i}.0/24`) },
        conntrack: [],
      })
      await applyDesired(host, state(1))
      const r = await applyDesired(host, state(2))
      expect(r.plan.setChanges.map((c) => c.kind)).toEqual(['swap'])
      expect(sorted(ownedSets(await host.ipsetSave()))).toEqual(sorted(state(2).ipsets))
      expect(isInSync(await diffDesired(host, state(2)))).toBe(true)
      await applyDesired(host, { ipv4: '', ipv6: '', ipsets: {}, conntrack: [] })
      expect(ownedSets(await host.ipsetSave())).toEqual({})
    })
  },
)
