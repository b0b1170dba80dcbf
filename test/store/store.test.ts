import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LANE_NAME, openStore, type Store, type WriteContext } from '../../src/store/index.js'
import { freshDatabaseUrl, spyQueries, storeDialects } from '../helpers/dialects.js'

for (const d of storeDialects()) {
  describe.skipIf(!d.available)(`store on ${d.name}`, () => {
    let store: Store
    let drop: () => Promise<void>
    const batches: number[] = []
    beforeAll(async () => {
      const fresh = await freshDatabaseUrl(d.name)
      drop = fresh.drop
      store = await openStore(fresh.url, { onBatch: (n) => batches.push(n) })
    })
    afterAll(async () => {
      await store?.close()
      await drop?.()
    })

    const group = (id: string, now: string, std: number) => ({
      id,
      project_id: 'p1',
      name: id,
      description: '',
      created_at: now,
      updated_at: now,
      revision_number: 0,
      standard_attr_id: std,
      stateful: 1,
    })

    it('migrates and starts at revision 0', async () => {
      expect(store.dialect).toBe(d.name)
      expect(await store.revision()).toBe(0)
    })

    it('writes a row and its change log entry in one transaction', async () => {
      await store.write(async (w) => {
        await w.tx
          .insertInto('security_groups')
          .values(group('g1', w.now, await w.nextStandardAttrId()))
          .execute()
        await w.log({
          resource: 'security_group',
          resource_id: 'g1',
          action: 'create',
          project_id: 'p1',
          body: { a: 1 },
        })
      })
      expect(await store.revision()).toBe(1)
      const changes = await store.db.selectFrom('changes').selectAll().execute()
      expect(changes).toHaveLength(1)
      expect(changes[0]).toMatchObject({ revision: 1, seq: 1, resource: 'security_group', action: 'create' })
      expect(JSON.parse(changes[0]!.body!)).toEqual({ a: 1 })
    })

    it('rolls back the row, the log and the revision when the write fails', async () => {
      const before = await store.revision()
      await expect(
        store.write(async (w) => {
          await w.tx
            .insertInto('security_groups')
            .values(group('g2', w.now, await w.nextStandardAttrId()))
            .execute()
          await w.log({ resource: 'security_group', resource_id: 'g2', action: 'create' })
          throw new Error('boom')
        }),
      ).rejects.toThrow('boom')
      expect(await store.revision()).toBe(before)
      expect(await store.db.selectFrom('security_groups').where('id', '=', 'g2').selectAll().execute()).toEqual([])
      expect(await store.db.selectFrom('changes').where('resource_id', '=', 'g2').selectAll().execute()).toEqual([])
    })

    it('serialises concurrent read-modify-write transactions (no lost update, revisions in commit order)', async () => {
      const n = 20
      await Promise.all(
        Array.from({ length: n }, () =>
          store.write(async (w) => {
            const row = await w.tx
              .selectFrom('security_groups')
              .select('revision_number')
              .where('id', '=', 'g1')
              .executeTakeFirstOrThrow()
            await w.tx
              .updateTable('security_groups')
              .set({ revision_number: row.revision_number + 1 })
              .where('id', '=', 'g1')
              .execute()
            await w.log({
              resource: 'security_group',
              resource_id: 'g1',
              action: 'update',
              body: row.revision_number + 1,
            })
          }),
        ),
      )
      const g = await store.db
        .selectFrom('security_groups')
        .selectAll()
        .where('id', '=', 'g1')
        .executeTakeFirstOrThrow()
      expect(g.revision_number).toBe(n)
      const log = await store.db
        .selectFrom('changes')
        .selectAll()
        .where('action', '=', 'update')
        .orderBy('revision')
        .execute()
      // Revision order equals the order in which the counter was read: body i+1 at the i-th revision.
      expect(log.map((c) => Number(c.body))).toEqual(Array.from({ length: n }, (_, i) => i + 1))
    })

    it('rolls back a failing write of a batch alone; the others commit with consecutive revisions', async () => {
      const before = await store.revision()
      const batchesBefore = batches.length
      const insert = (id: string) => async (w: WriteContext) => {
        await w.tx
          .insertInto('security_groups')
          .values(group(id, w.now, await w.nextStandardAttrId()))
          .execute()
        await w.log({ resource: 'security_group', resource_id: id, action: 'create' })
        return w.revision
      }
      // g1 exists: a duplicate key, in a savepoint (SQLite, or a write that is not deferredOnly) or, on
      // PostgreSQL for a deferredOnly write, breaking the transaction (the others then run again).
      const duplicate = (deferredOnly: boolean) =>
        store.write(
          async (w) => {
            await w.defer(w.tx.insertInto('security_groups').values(group('g1', w.now, await w.nextStandardAttrId())))
            await w.log({ resource: 'security_group', resource_id: 'g1', action: 'create' })
          },
          { deferredOnly },
        )
      const results = await Promise.allSettled([
        store.write(insert('b1')),
        duplicate(true),
        store.write(insert('b2')),
        duplicate(false),
        store.write(async () => {
          throw new Error('refused')
        }),
        store.write(insert('b3')),
      ])
      expect(results.map((r) => r.status)).toEqual([
        'fulfilled',
        'rejected',
        'fulfilled',
        'rejected',
        'rejected',
        'fulfilled',
      ])
      const revs = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      expect(revs).toEqual([before + 1, before + 2, before + 3])
      expect(await store.revision()).toBe(before + 3)
      const log = await store.db
        .selectFrom('changes')
        .selectAll()
        .where('revision', '>', before)
        .orderBy('revision')
        .execute()
      expect(log.map((c) => [Number(c.revision), c.resource_id])).toEqual([
        [before + 1, 'b1'],
        [before + 2, 'b2'],
        [before + 3, 'b3'],
      ])
      expect(Math.max(...batches.slice(batchesBefore))).toBeGreaterThan(1)
    })

    // A pipelined insert of group `id` (PostgreSQL), applied when no group `id` exists; `ok`: the check's
    // condition instead; `proceed`: when the check fails it goes on all the same (its statements then run
    // after the message).
    const insert = (id: string, opts: { proceed?: boolean; ok?: string; name?: string } = {}) =>
      store.write(
        async (w) => {
          const std = await w.nextStandardAttrId()
          await w.defer({
            sql:
              'insert into "security_groups" ("id", "project_id", "name", "description", "created_at", "updated_at", ' +
              '"revision_number", "standard_attr_id", "stateful") select * from (values ($1::text, $2::text, $3::text, ' +
              "'', $4::text, $4::text, 0, $5::integer, 1)) v",
            parameters: [id, 'p1', opts.name ?? id, w.now, std],
            guard: 'where',
          })
          await w.log({ resource: 'security_group', resource_id: id, action: 'create' })
          const { applied, revision } = await w.flushIf<{ n: number }>({
            sql: 'select count(*)::integer as "n" from "security_groups" where "id" = $1',
            parameters: [id],
            ok: opts.ok ?? '"c"."n" = 0',
          })
          if (!applied && !opts.proceed) throw new Error(`${id} exists`)
          return revision
        },
        { pipelined: true },
      )

    // PostgreSQL only (pipelining needs it; on SQLite `pipelined` has no effect).
    if (d.name === 'postgres')
      it('runs queued pipelined writes as one transaction in one message, revisions taken in SQL, in order', async () => {
        const before = await store.revision()
        await store.write(async (w) => {
          await w.tx
            .insertInto('security_groups')
            .values(group('taken', w.now, await w.nextStandardAttrId()))
            .execute()
          await w.log({ resource: 'security_group', resource_id: 'taken', action: 'create' })
        })
        const { sent, restore } = spyQueries()
        let results: PromiseSettledResult<number>[]
        try {
          results = await Promise.allSettled([
            insert('pa'),
            insert('taken'), // its check fails: it changes nothing, the ones after it go on
            insert('pb'),
            insert('pc'),
            store.write(
              async () => {
                throw new Error('refused before flushIf')
              },
              { pipelined: true },
            ),
            insert('pd'),
            insert('pe', { ok: 'false', proceed: true }), // not applied but goes on: run again on its own, after the message
            insert('pf'),
          ])
        } finally {
          restore()
        }
        expect(results.map((r) => (r.status === 'fulfilled' ? r.value - before : String(r.reason)))).toEqual([
          2,
          'Error: taken exists',
          3,
          4,
          'Error: refused before flushIf',
          5,
          7,
          6,
        ])
        expect(await store.revision()).toBe(before + 7)
        const log = await store.db
          .selectFrom('changes')
          .selectAll()
          .where('revision', '>', before + 1)
          .orderBy('revision')
          .orderBy('seq')
          .execute()
        expect(log.map((c) => [Number(c.revision) - before, c.seq, c.resource_id])).toEqual([
          [2, 1, 'pa'],
          [3, 1, 'pb'],
          [4, 1, 'pc'],
          [5, 1, 'pd'],
          [6, 1, 'pf'],
          [7, 1, 'pe'],
        ])
        const rows = await store.db
          .selectFrom('security_groups')
          .select(['id', 'standard_attr_id'])
          .where('id', 'in', ['pa', 'pb', 'pc', 'pd', 'pe', 'pf'])
          .orderBy('standard_attr_id')
          .execute()
        expect(rows.map((r) => r.id)).toEqual(['pa', 'pb', 'pc', 'pd', 'pf', 'pe'])
        // Standard attribute ids stay unique and the meta row continues after them.
        const next = await store.write((w) => w.nextStandardAttrId())
        expect(next).toBeGreaterThan(Math.max(...rows.map((r) => Number(r.standard_attr_id))))
        // One message carried the whole transaction: eight writes, seven statements (one refused before).
        const messages = sent.filter((t) => t.includes('execute sgwp'))
        expect(messages).toHaveLength(1)
        expect(messages[0]).toMatch(/^select 1 from "sgwall_meta" where "id" = 1 for update;\n/)
        expect(messages[0]?.match(/execute sgwp/g)).toHaveLength(7)
      })

    // PostgreSQL only (pipelining needs it; on SQLite `pipelined` has no effect).
    if (d.name === 'postgres')
      it('runs the writes of a failed pipelined message again, each on its own: the failing one fails alone', async () => {
        const before = await store.revision()
        // A NUL character cannot be a literal (nor a PostgreSQL text value): the message is refused, the
        // writes run again one by one, and only that one fails (PostgreSQL refuses the parameter).
        const results = await Promise.allSettled([
          insert('qa'),
          insert('qb', { name: 'q\u0000b' }),
          insert('qc', { name: "q'c\\" }),
        ])
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
        expect(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value - before] : []))).toEqual([1, 2])
        const names = await store.db
          .selectFrom('security_groups')
          .select(['id', 'name'])
          .where('id', 'in', ['qa', 'qb', 'qc'])
          .orderBy('id')
          .execute()
        expect(names).toEqual([
          { id: 'qa', name: 'qa' },
          { id: 'qc', name: "q'c\\" },
        ])
      })

    // PostgreSQL only (pipelining needs it; on SQLite `pipelined` has no effect).
    if (d.name === 'postgres')
      it('sends the next pipelined message while one runs: a failure of the first leaves the one behind it whole', async () => {
        const before = await store.revision()
        const { sent, restore } = spyQueries()
        let results: PromiseSettledResult<number>[]
        try {
          // Its check sleeps, then fails (division by zero): the message stays in flight, then is rolled back.
          const failing = store.write(
            async (w) => {
              await w.defer({
                sql: 'insert into "security_groups" ("id", "project_id", "name", "description", "created_at", "updated_at", "revision_number", "standard_attr_id", "stateful") select * from (values ($1::text, $2::text, $1::text, \'\', $3::text, $3::text, 0, $4::integer, 1)) v',
                parameters: ['slow', 'p1', w.now, await w.nextStandardAttrId()],
                guard: 'where',
              })
              await w.log({ resource: 'security_group', resource_id: 'slow', action: 'create' })
              const { revision } = await w.flushIf<{ n: number }>({
                sql: 'select pg_sleep(0.3)::text as "s", (1 / (select count(*) from "security_groups" where "id" = $1))::integer as "n"',
                parameters: ['slow'],
                ok: 'true',
              })
              return revision
            },
            { pipelined: true },
          )
          await new Promise((r) => setTimeout(r, 100))
          results = await Promise.allSettled([failing, insert('ob1'), insert('ob2')])
        } finally {
          restore()
        }
        expect(results.map((r) => (r.status === 'fulfilled' ? r.value - before : 'rejected'))).toEqual([
          'rejected',
          1,
          2,
        ])
        expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/division by zero/)
        // The second message went out while the first was running, before the failed write ran again alone.
        const second = sent.findIndex((t) => t.includes('execute sgwp') && t.includes("E'ob1'"))
        const rerun = sent.findIndex((t) => !t.includes('execute sgwp') && t.includes('pg_sleep'))
        const first = sent.findIndex((t) => t.includes('execute sgwp') && t.includes("E'slow'"))
        expect(first).toBeGreaterThanOrEqual(0)
        expect(second).toBeGreaterThan(first)
        expect(rerun).toBeGreaterThan(second)
        expect(await logAfter(store, before)).toEqual([
          [1, 'ob1'],
          [2, 'ob2'],
        ])
      })

    if (d.name === 'postgres')
      it('runs the writes of a message whose connection died again on their own; the next message opens a new connection', async () => {
        const before = await store.revision()
        expect((await insert('la')) - before).toBe(1) // the lane is open
        const lanes = () =>
          sql<{
            pid: number
          }>`select pid from pg_stat_activity where application_name = ${LANE_NAME} and datname = current_database()`
            .execute(store.db)
            .then((r) => r.rows.map((x) => x.pid))
        const [first] = await lanes()
        expect(first).toBeDefined()
        const killed = await sql<{ ok: boolean }>`select pg_terminate_backend(${first}::integer) as ok`.execute(
          store.db,
        )
        expect(killed.rows).toEqual([{ ok: true }])
        // pg_terminate_backend only signals it: wait until it is gone.
        for (let k = 0; k < 200 && (await lanes()).includes(first!); k++) await new Promise((r) => setTimeout(r, 10))
        expect(await lanes()).toEqual([])
        const { sent, restore } = spyQueries()
        let results: PromiseSettledResult<number>[]
        try {
          results = await Promise.allSettled([insert('lb'), insert('lc')])
          results.push(...(await Promise.allSettled([insert('ld')])))
        } finally {
          restore()
        }
        expect(results.map((r) => (r.status === 'fulfilled' ? r.value - before : String(r.reason)))).toEqual([2, 3, 4])
        // A new connection carries the messages again.
        const now = await lanes()
        expect(now).toHaveLength(1)
        expect(now[0]).not.toBe(first)
        expect(sent.some((t) => t.includes('execute sgwp') && t.includes("E'ld'"))).toBe(true)
        expect(await logAfter(store, before)).toEqual([
          [1, 'la'],
          [2, 'lb'],
          [3, 'lc'],
          [4, 'ld'],
        ])
      })

    if (d.name === 'postgres')
      it('keeps pipelined writes consecutive and in order under a steady load, messages overlapping', async () => {
        const run = await steadyLoad(d.name, 300, (s2, k) =>
          s2.write(
            async (w) => {
              await w.defer({
                sql: 'update "sgwall_meta" set "pruned_through" = "pruned_through" where "id" = $1',
                parameters: [1],
                guard: 'and',
              })
              await w.log({ resource: 'security_group', resource_id: `w${k}`, action: 'create' })
              return (await w.flushIf({ sql: 'select pg_sleep(0.0005)::text as "s"', parameters: [], ok: 'true' }))
                .revision
            },
            { pipelined: true },
          ),
        )
        expect(run.answers).toEqual(Array.from({ length: 300 }, (_, i) => i + 1))
        expect(run.seen).toEqual(run.answers)
        expect(run.log).toEqual(run.answers.map((r) => [r, `w${r - 1}`]))
        // Some message was started before the one before it had been answered.
        expect(run.events).toMatch(/start start/)
      })

    it('keeps revisions consecutive and in order under a steady load (PostgreSQL: the next batch opens while one commits)', async () => {
      const before = await store.revision()
      const run = await steadyLoad(d.name, 200, (s2, k) =>
        s2.write(async (w) => {
          await w.log({ resource: 'security_group', resource_id: `w${k}`, action: 'create' })
          return w.revision
        }),
      )
      expect([...run.answers].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
      expect(run.seen).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
      expect(run.log.map(([r]) => r)).toEqual(run.seen)
      // PostgreSQL: some batch started before the one before it had committed.
      if (d.name === 'postgres') expect(run.events).toMatch(/start start/)
      expect(await store.revision()).toBe(before)
    })

    it('hands out unique standard attribute ids', async () => {
      const ids = await Promise.all(Array.from({ length: 5 }, () => store.write((w) => w.nextStandardAttrId())))
      expect(new Set(ids).size).toBe(5)
      // Reserved ids are written back: the next transaction continues after them.
      const a = await store.write((w) => w.nextStandardAttrId(3))
      const b = await store.write((w) => w.nextStandardAttrId())
      expect(b).toBe(a + 3)
    })

    it('runs deferred statements before commit, and a write in few round trips on PostgreSQL', async () => {
      const now = '2026-01-01T00:00:00Z'
      const { sent, restore } = spyQueries()
      let rev = 0
      try {
        rev = await store.write(
          async (w) => {
            await w.defer(
              w.tx.insertInto('security_groups').values(group('deferred', now, await w.nextStandardAttrId())),
            )
            await w.log({ resource: 'security_group', resource_id: 'deferred', action: 'create' })
            return w.revision
          },
          { deferredOnly: true },
        )
      } finally {
        restore()
      }
      const row = await store.db
        .selectFrom('security_groups')
        .selectAll()
        .where('id', '=', 'deferred')
        .executeTakeFirst()
      expect(row?.standard_attr_id).toBeGreaterThan(0)
      const change = await store.db.selectFrom('changes').selectAll().where('revision', '=', rev).execute()
      expect(change.map((c) => c.resource_id)).toEqual(['deferred'])
      if (d.name === 'postgres') {
        // begin + revision, the insert/standard-id/change-log statement, commit
        expect(sent).toHaveLength(3)
        expect(sent[0]).toMatch(/^begin; update sgwall_meta/)
        expect(sent[1]).toMatch(/^with "d0" as \(insert into "security_groups"/)
        expect(sent[2]).toBe('commit')
      }
    })
  })
}

/**
 * `count` writes arriving all the time (one per event-loop turn, whatever the answers) on a fresh store:
 * their answers, the revisions listeners saw, the batch starts and commits (`start`, `commit`), the change log.
 */
async function steadyLoad(
  dialect: 'sqlite' | 'postgres',
  count: number,
  write: (store: Store, k: number) => Promise<number>,
): Promise<{ answers: number[]; seen: number[]; events: string; log: [number, string][] }> {
  const events: string[] = []
  const local = await freshDatabaseUrl(dialect)
  const store = await openStore(local.url, { onBatch: () => events.push('start') })
  const seen: number[] = []
  const off = store.onCommit((r) => {
    seen.push(r)
    events.push('commit')
  })
  try {
    const pending: Promise<number>[] = []
    for (let k = 0; k < count; k++) {
      pending.push(write(store, k))
      await new Promise((r) => setTimeout(r, 0))
    }
    const answers = await Promise.all(pending)
    const log = await store.db.selectFrom('changes').select(['revision', 'resource_id']).orderBy('revision').execute()
    return { answers, seen, events: events.join(' '), log: log.map((c) => [Number(c.revision), c.resource_id]) }
  } finally {
    off()
    await store.close()
    await local.drop()
  }
}

/** The change log after revision `before`: [revision - before, resource id]. */
async function logAfter(store: Store, before: number): Promise<[number, string][]> {
  const log = await store.db
    .selectFrom('changes')
    .select(['revision', 'resource_id'])
    .where('revision', '>', before)
    .orderBy('revision')
    .execute()
  return log.map((c) => [Number(c.revision) - before, c.resource_id])
}
