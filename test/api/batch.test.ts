/**
 * Group commit: API writes issued at once share transactions (batches), each in its own
 * savepoint with its own revision. Their answers and the resulting state and change feed must
 * be exactly those of running the same writes one after another in the order the batch ran them.
 */
import { afterAll, describe, expect, it } from 'vitest'
import type { RequestContext } from '../../src/api/context.js'
import { readChanges } from '../../src/api/feed.js'
import {
  createGroups,
  createRules,
  deleteGroup,
  deleteRule,
  ensureDefaultGroup,
  updateGroup,
} from '../../src/api/security-groups.js'
import { openStore, type Store } from '../../src/store/index.js'
import { freshDatabaseUrl, spyQueries, storeDialects } from '../helpers/dialects.js'

const ctx: RequestContext = { projectId: 'p', userId: 'u', isAdmin: false, roles: ['member'] }

interface World {
  store: Store
  batches: number[]
  /** name → id of groups and of the rules made in the setup */
  ids: Map<string, string>
  close(): Promise<void>
}

const drops: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const d of drops) await d()
})

async function world(dialect: 'sqlite' | 'postgres'): Promise<World> {
  const fresh = await freshDatabaseUrl(dialect)
  drops.push(fresh.drop)
  const batches: number[] = []
  const store = await openStore(fresh.url, { onBatch: (n) => batches.push(n) })
  const ids = new Map<string, string>()
  await ensureDefaultGroup(store, 'p')
  for (const name of ['A', 'B', 'C', 'D']) {
    const [g] = await createGroups(store, ctx, [{ name }])
    ids.set(name, g!.id as string)
  }
  const [r] = await createRules(
    store,
    ctx,
    [
      {
        security_group_id: ids.get('A'),
        direction: 'ingress',
        protocol: 'tcp',
        port_range_min: 22,
        port_range_max: 22,
      },
    ],
    false,
  )
  ids.set('A:22', r!.id as string)
  // Quotas: 5 groups; rules: default group 4 + 4 groups × 2 + 1 = 13 used, 12 more allowed.
  await store.write(async (w) => {
    await w.tx
      .insertInto('quotas')
      .values([
        { project_id: 'p', resource: 'security_group', hard_limit: 5 },
        { project_id: 'p', resource: 'security_group_rule', hard_limit: 25 },
      ])
      .execute()
  })
  return { store, batches, ids, close: () => store.close() }
}

type Op = [label: string, run: (s: Store, ids: Map<string, string>) => Promise<unknown>]

const tcp =
  (group: string, port: number, extra: Record<string, unknown> = {}) =>
  (ids: Map<string, string>) => ({
    security_group_id: ids.get(group) ?? group,
    direction: 'ingress',
    protocol: 'tcp',
    port_range_min: port,
    port_range_max: port,
    ...extra,
  })

const rule =
  (group: string, port: number, extra: Record<string, unknown> = {}) =>
  (s: Store, ids: Map<string, string>) =>
    createRules(s, ctx, [tcp(group, port, extra)(ids)], false)

const OPS: Op[] = [
  ['A:80', rule('A', 80)],
  ['A:80 again', rule('A', 80)],
  ['A:80 udp (a candidate, not a duplicate)', rule('A', 80, { protocol: 'udp' })],
  ['A:22 exists', rule('A', 22)],
  ['A:81 as 81-81 with protocol 6', rule('A', 81, { protocol: '6' })],
  ['A:81 as tcp', rule('A', 81)],
  ['delete C', (s, ids) => deleteGroup(s, ctx, ids.get('C')!, undefined)],
  ['C:1 after delete', rule('C', 1)],
  ['A:443 from C after delete', rule('A', 443, { remote_group_id: 'C' })],
  ['A:444 from D', (s, ids) => rule('A', 444, { remote_group_id: ids.get('D') })(s, ids)],
  ['B bulk 1000 1001', (s, ids) => createRules(s, ctx, [tcp('B', 1000)(ids), tcp('B', 1001)(ids)], true)],
  ['B bulk dup in post', (s, ids) => createRules(s, ctx, [tcp('B', 2000)(ids), tcp('B', 2000)(ids)], true)],
  ['B:1001 exists from bulk', rule('B', 1001)],
  // After "delete C" and "delete D" (these run first: a group create reads before it writes) two more groups fit: the third of this bulk is over it, so the first two are
  // rolled back with it (the write's savepoint), and the next two single creates fit.
  ['groups E F G', (s) => createGroups(s, ctx, [{ name: 'E' }, { name: 'F' }, { name: 'G' }])],
  ['group H', (s) => createGroups(s, ctx, [{ name: 'H' }])],
  ['group I', (s) => createGroups(s, ctx, [{ name: 'I' }])],
  ['group J over quota', (s) => createGroups(s, ctx, [{ name: 'J' }])],
  ['delete A:22', (s, ids) => deleteRule(s, ctx, ids.get('A:22')!)],
  ['A:22 again after delete', rule('A', 22)],
  [
    'rename B with wrong If-Match',
    (s, ids) => updateGroup(s, ctx, ids.get('B')!, { name: 'B2' }, 'revision_number=99'),
  ],
  // (Its answer is read after the commit, when later writes may have changed the group: only the outcome counts.)
  ['rename B', async (s, ids) => Boolean(await updateGroup(s, ctx, ids.get('B')!, { name: 'B2' }, undefined))],
  // Fill the rule quota: some of these are over it.
  ...Array.from({ length: 8 }, (_, k): Op => [`D:${3000 + k}`, rule('D', 3000 + k)]),
  ['delete D (cascades to A:444)', (s, ids) => deleteGroup(s, ctx, ids.get('D')!, undefined)],
  ['D:4000 after delete', rule('D', 4000)],
]

/** An answer without ids and timestamps (ids of the setup named; others replaced by "ID"). */
function answer(w: World, r: PromiseSettledResult<unknown>): unknown {
  const names = new Map([...w.ids].map(([k, v]) => [v, k]))
  const scrub = (v: unknown): unknown =>
    JSON.parse(
      JSON.stringify(v ?? null).replace(
        /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
        (id) => names.get(id) ?? 'ID',
      ),
      (k, x) => (k === 'created_at' || k === 'updated_at' || k === 'standard_attr_id' ? 'T' : x),
    )
  if (r.status === 'fulfilled') return { ok: scrub(r.value) }
  const e = r.reason as { type?: string; message?: string }
  return { error: e.type ?? 'unexpected', message: scrub(e.message) }
}

/** Rules and groups (content), and the change feed from revision 0. */
async function state(w: World) {
  const names = new Map([...w.ids].map(([k, v]) => [v, k]))
  const rules = await w.store.db
    .selectFrom('security_group_rules')
    .innerJoin('security_groups', 'security_groups.id', 'security_group_rules.security_group_id')
    .select(['security_groups.name', 'direction', 'protocol', 'port_range_min', 'remote_group_id'])
    .execute()
  const groups = await w.store.db.selectFrom('security_groups').select(['name', 'revision_number']).execute()
  const page = await readChanges(w.store, 0, 10_000)
  if (page === 'truncated') throw new Error('truncated')
  return {
    rules: rules
      .map(
        (r) =>
          `${r.name} ${r.direction} ${r.protocol} ${r.port_range_min} ${r.remote_group_id === null ? null : (names.get(r.remote_group_id) ?? 'ID')}`,
      )
      .sort(),
    groups: groups.map((g) => `${g.name} ${g.revision_number}`).sort(),
    revision: page.revision,
    feed: page.changes,
  }
}

for (const d of storeDialects()) {
  describe.skipIf(!d.available)(`group commit on ${d.name}`, () => {
    it('creates 600 rules in one bulk (change rows in several statements)', async () => {
      const w = await world(d.name)
      try {
        await w.store.write(async (x) => {
          await x.tx.updateTable('quotas').set({ hard_limit: -1 }).where('project_id', '=', 'p').execute()
        })
        const before = await w.store.revision()
        const items = Array.from({ length: 600 }, (_, k) => tcp('B', 10_000 + k)(w.ids))
        const rows = await createRules(w.store, ctx, items, true)
        expect(rows).toHaveLength(600)
        const page = await readChanges(w.store, before, 10_000)
        if (page === 'truncated') throw new Error('truncated')
        expect(page.changes.map((c) => c.revision)).toEqual(Array(600).fill(before + 1))
        expect(page.changes.map((c) => c.id)).toEqual(rows.map((r) => r.id))
      } finally {
        await w.close()
      }
    })

    // PostgreSQL only (the pipelined path).
    if (d.name === 'postgres')
      it('creates a rule beside one of another protocol, remote or prefix on the same ports in one pass; a real duplicate is refused', async () => {
        const w = await world(d.name)
        try {
          // A:22 tcp exists; these share its group, direction, ethertype and ports but are no duplicates.
          const others = [
            { protocol: 'udp' },
            { protocol: '6', remote_ip_prefix: '10.0.0.0/8' },
            { protocol: 'tcp', remote_group_id: w.ids.get('B') },
          ]
          const { sent, restore } = spyQueries()
          try {
            for (const extra of others) await createRules(w.store, ctx, [tcp('A', 22, extra)(w.ids)], false)
          } finally {
            restore()
          }
          // Each went in its one-message transaction; none had to run again on its own.
          expect(sent.filter((t) => t.includes('execute sgwp'))).toHaveLength(3)
          expect(sent.filter((t) => /^(with|insert)/.test(t) && t.includes('"security_group_rules"'))).toEqual([])
          // The same rule spelled differently (protocol number, the whole address space) is a duplicate.
          for (const extra of [{ protocol: '6' }, { remote_ip_prefix: '0.0.0.0/0' }])
            await expect(createRules(w.store, ctx, [tcp('A', 22, extra)(w.ids)], false)).rejects.toMatchObject({
              type: 'SecurityGroupRuleExists',
            })
        } finally {
          await w.close()
        }
      })

    it('concurrent writes answer and change exactly as the same writes run one after another', async () => {
      const batched = await world(d.name)
      const serial = await world(d.name)
      try {
        // Concurrently; record the order in which the writes actually ran (a write run again, after a
        // broken batch or on its own after a pipelined message, counts where it ran last).
        let order: string[] = []
        const before = batched.batches.length
        const results = await Promise.allSettled(
          OPS.map(([label, run]) =>
            run(
              {
                ...batched.store,
                write: (fn, o) =>
                  batched.store.write((w) => {
                    order = [...order.filter((l) => l !== label), label]
                    return fn(w)
                  }, o),
              },
              batched.ids,
            ),
          ),
        )
        const sizes = batched.batches.slice(before)
        expect(Math.max(...sizes)).toBeGreaterThan(5)
        expect(order).toHaveLength(OPS.length)
        const byLabel = new Map(OPS.map(([label], k) => [label, answer(batched, results[k]!)]))
        const serialAnswers = new Map<string, unknown>()
        for (const label of order) {
          const run = OPS.find(([l]) => l === label)![1]
          const [r] = await Promise.allSettled([run(serial.store, serial.ids)])
          serialAnswers.set(label, answer(serial, r!))
        }
        expect(byLabel).toEqual(serialAnswers)
        // Some of everything happened.
        const kinds = [...byLabel.values()].map((a) => (a as { error?: string }).error ?? 'ok')
        for (const k of [
          'ok',
          'SecurityGroupRuleExists',
          'SecurityGroupNotFound',
          'DuplicateSecurityGroupRuleInPost',
          'OverQuota',
          'RevisionNumberConstraintFailed',
        ])
          expect(kinds).toContain(k)
        const a = await state(batched)
        const b = await state(serial)
        expect(a.rules).toEqual(b.rules)
        expect(a.groups).toEqual(b.groups)
        // The feed: every change once, in order, one revision per successful write.
        const strip = (f: typeof a.feed) =>
          f.map((c) => answer(batched, { status: 'fulfilled', value: { ...c, revision: 0 } }))
        const stripB = (f: typeof b.feed) =>
          f.map((c) => answer(serial, { status: 'fulfilled', value: { ...c, revision: 0 } }))
        expect(strip(a.feed)).toEqual(stripB(b.feed))
        expect(a.revision).toBe(b.revision)
        const revs = a.feed.map((c) => c.revision)
        expect(revs).toEqual(b.feed.map((c) => c.revision))
        for (let k = 1; k < revs.length; k++) expect(revs[k]!).toBeGreaterThanOrEqual(revs[k - 1]!)
        expect(new Set(a.feed.map((c) => `${c.revision}/${c.seq}`)).size).toBe(a.feed.length)
      } finally {
        await batched.close()
        await serial.close()
      }
    })
  })
}
