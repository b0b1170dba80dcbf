/**
 * The message lane remembers the names of at most 500 statement texts (its own file: that bound is
 * process-wide, and the tests here fill it). Past it a statement is prepared, run and deallocated within its message, so the one
 * long-lived connection keeps no prepared statement it will not run again.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { laneMessage, openStore, type RawStatement, type Store } from '../../src/store/db.js'
import { freshDatabaseUrl, storeDialects } from '../helpers/dialects.js'

const postgres = storeDialects().find((d) => d.name === 'postgres')

const statement = (sql: string, parameters: unknown[] = []): RawStatement => ({ sql, parameters })

describe('message lane: statement texts past the remembered bound', () => {
  describe.skipIf(!postgres?.available)('on PostgreSQL', () => {
    let store: Store
    let drop: () => Promise<void>
    beforeAll(async () => {
      const fresh = await freshDatabaseUrl('postgres')
      drop = fresh.drop
      store = await openStore(fresh.url)
    })
    afterAll(async () => {
      await store?.close()
      await drop?.()
    })

    /** A pipelined write whose check counts the lane's prepared statements named `like` (its own check text: `tag`). */
    const write = (tag: number, like: string) =>
      store.write(
        async (w) => {
          await w.defer({
            sql: 'update "sgwall_meta" set "pruned_through" = "pruned_through" where "id" = $1',
            parameters: [1],
            guard: 'and',
          })
          await w.log({ resource: 'security_group', resource_id: `t${tag}`, action: 'create' })
          const { row, applied, revision } = await w.flushIf<{ n: number }>({
            sql: `select count(*)::integer as "n", ${tag} as "tag" from pg_prepared_statements where name like $1`,
            parameters: [like],
            ok: 'true',
          })
          expect(applied).toBe(true)
          return { n: Number(row.n), revision }
        },
        { pipelined: true },
      )

    it('runs statements past the bound and leaves none of them prepared', async () => {
      // Remembered before the bound is reached: this check's text keeps its name.
      const before = await write(-1, 'sgwp\\_once%')
      expect(before.n).toBe(0)
      for (let k = 0; k < 600; k++) laneMessage([statement(`select ${k} as "fill"`)], new Set())
      // Past the bound: each prepared in its message under a name of its own and deallocated after it.
      const a = await write(1, 'sgwp\\_once%')
      const b = await write(2, 'sgwp\\_once%')
      expect(a.n).toBe(1) // itself, while it runs
      expect(b.n).toBe(1)
      const after = await write(-1, 'sgwp\\_once%')
      expect(after.n).toBe(0)
      // One that fails before its deallocate (division by zero) leaves its statement prepared until the
      // connection's names are read again, before the next message.
      const failing = store.write(
        async (w) => {
          await w.log({ resource: 'security_group', resource_id: 'x', action: 'create' })
          await w.defer({ sql: 'select $1::integer', parameters: [1], guard: 'where' })
          return w.flushIf({
            sql: 'select (1 / (select count(*) from "sgwall_meta" where "id" = $1))::integer as "n"',
            parameters: [0],
            ok: 'true',
          })
        },
        { pipelined: true },
      )
      await expect(failing).rejects.toThrow(/division by zero/)
      const clean = await write(-1, 'sgwp\\_once%')
      expect(clean.n).toBe(0)
      expect([a.revision, b.revision, after.revision, clean.revision]).toEqual([
        before.revision + 1,
        before.revision + 2,
        before.revision + 3,
        before.revision + 4,
      ])
    })
  })

  it('prepares a remembered text once per connection; one past the bound in each message, deallocated after it', async () => {
    // A fresh module: its bound of remembered texts empty.
    vi.resetModules()
    const { laneMessage } = await import('../../src/store/db.js')
    const known = new Set<string>()
    const probe = statement('select $1::integer as "n"', [1])
    const first = laneMessage([probe, probe], known)
    expect(first.match(/prepare sgwp\d+ as/g)).toHaveLength(1)
    expect(first.match(/execute sgwp\d+\(1\)/g)).toHaveLength(2)
    expect(laneMessage([probe], known)).not.toMatch(/prepare/)
    // Fill the bound with other texts.
    for (let k = 0; k < 600; k++) laneMessage([statement(`select ${k} as "n"`)], known)
    const past = laneMessage([statement('select 9999 as "n"'), statement('select 9998 as "n"')], known)
    expect(past).toMatch(/prepare (sgwp_once\d+) as select 9999 as "n";\nexecute \1\(\);\ndeallocate \1;\n/)
    expect(past).toMatch(/prepare (sgwp_once\d+) as select 9998 as "n";\nexecute \1\(\);\ndeallocate \1;\n/)
    // Again: prepared again under a new name (never remembered), and the remembered ones stay as they were.
    const names = (t: string) => [...t.matchAll(/prepare (sgwp_once\d+)/g)].map((m) => m[1])
    const again = laneMessage([statement('select 9999 as "n"')], known)
    expect(names(again)).toHaveLength(1)
    expect(names(past)).not.toContain(names(again)[0])
    expect(laneMessage([probe], known)).not.toMatch(/prepare/)
  })
})
