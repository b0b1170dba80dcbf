/**
 * Opening the store (SQLite file, `:memory:`, or PostgreSQL URL), running migrations,
 * and the one way to write: `store.write(fn)`. Every write transaction first bumps the
 * single revision counter row; that row lock serialises writers (on PostgreSQL too), so
 * revisions are committed in order and a change-feed reader never sees revision N+1
 * before N. Every change appended with `log()` carries that revision.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import {
  Kysely,
  Migrator,
  type OperationNode,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  SqliteDialect,
  sql,
  type Transaction,
} from 'kysely'
import pg from 'pg'
import { migrationProvider } from './migrations.js'
import type { ChangeTable, Database } from './schema.js'

export type DialectName = 'sqlite' | 'postgres'

export interface ChangeInput {
  readonly resource: string
  readonly resource_id: string
  readonly action: 'create' | 'update' | 'delete'
  readonly project_id?: string | null
  readonly body?: unknown
}

export interface WriteContext {
  readonly tx: Transaction<Database>
  /** The revision this transaction commits as. */
  readonly revision: number
  /** Commit time, `YYYY-MM-DDTHH:MM:SSZ`. */
  readonly now: string
  log(change: ChangeInput): Promise<void>
  /** Reserves `count` consecutive standard attribute ids; returns the first. */
  nextStandardAttrId(count?: number): Promise<number>
  /**
   * Runs an insert, update or delete before commit: at once on SQLite; on PostgreSQL in the
   * statement that appends the change-log rows (data-modifying CTEs, one round trip for all).
   * Nothing later in the transaction may depend on its effect, and two deferred statements
   * must not touch the same row.
   */
  defer(query: DeferrableQuery): Promise<void>
}

/** A Kysely insert/update/delete builder of the transaction (`w.tx`). */
export interface DeferrableQuery {
  toOperationNode(): OperationNode
  execute(): Promise<unknown>
}

export interface Store {
  readonly db: Kysely<Database>
  readonly dialect: DialectName
  write<T>(fn: (w: WriteContext) => Promise<T>): Promise<T>
  /**
   * Current committed revision, read after the call (never a value cached from before it).
   * SQLite: one prepared statement when no transaction is open; PostgreSQL: concurrent callers
   * share one query that started after they called.
   */
  revision(): Promise<number>
  /** Called after every committed write (same process). */
  onCommit(listener: (revision: number) => void): () => void
  close(): Promise<void>
}

export interface StoreOptions {
  /** Keep at most this many change rows (older ones are pruned; readers behind need a snapshot). */
  readonly changeLogLimit?: number
  /** Prune the change log every this many revisions (default 1000). */
  readonly pruneEvery?: number
  /** Clock for timestamps (tests may pin it). */
  readonly clock?: () => Date
  /** Called when an idle PostgreSQL connection fails (it is dropped and replaced). */
  readonly onPoolError?: (err: Error) => void
}

export function isoSeconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`
}

/** `url`: `postgres://…`/`postgresql://…`, `:memory:`, `sqlite:PATH`, or a file path. */
export async function openStore(url: string, options: StoreOptions = {}): Promise<Store> {
  let db: Kysely<Database>
  let dialect: DialectName
  let sqliteHandle: SqliteDatabase.Database | null = null
  if (/^postgres(ql)?:\/\//.test(url)) {
    dialect = 'postgres'
    // int8 (count(*), sums) as numbers: our counts stay far below 2^53.
    pg.types.setTypeParser(20, (v: string) => Number.parseInt(v, 10))
    const pool = new pg.Pool({ connectionString: url, max: 10 })
    // An idle pooled connection that the server terminates (restart, failover, a dropped
    // database) emits 'error' on the pool; unhandled, it would crash the process. The pool
    // already discards that client; the next query opens a new connection.
    pool.on('error', (err) => options.onPoolError?.(err))
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: foldingBegin(pool) }) })
  } else {
    dialect = 'sqlite'
    const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    const sqlite = new SqliteDatabase(path)
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('synchronous = NORMAL')
    sqlite.pragma('busy_timeout = 5000')
    sqliteHandle = sqlite
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachingPrepare(sqlite) }) })
  }
  const migrator = new Migrator({ db, provider: migrationProvider })
  const { error } = await migrator.migrateToLatest()
  if (error) {
    await db.destroy()
    throw error
  }
  const limit = options.changeLogLimit ?? 100_000
  const pruneEvery = options.pruneEvery ?? 1000
  const clock = options.clock ?? (() => new Date())
  const listeners = new Set<(revision: number) => void>()
  const readRevision = async () => {
    const row = await db.selectFrom('sgwall_meta').select('revision').where('id', '=', 1).executeTakeFirstOrThrow()
    return Number(row.revision)
  }
  let revisionNow: () => Promise<number>
  if (sqliteHandle) {
    const sqlite = sqliteHandle
    const stmt = sqlite.prepare('select revision from sgwall_meta where id = 1').pluck()
    // Outside a transaction the one connection sees exactly the committed state; inside one
    // (a write in progress on this connection) read through Kysely, which waits for it to end.
    revisionNow = () => (sqlite.inTransaction ? readRevision() : Promise.resolve(Number(stmt.get())))
  } else revisionNow = coalesced(readRevision)

  const store: Store = {
    db,
    dialect,
    async write<T>(fn: (w: WriteContext) => Promise<T>): Promise<T> {
      const { result, revision } = await db.transaction().execute(async (tx) => {
        // This row lock serialises writers; the standard attribute id counter is read with it and
        // written back once at the end when ids were reserved.
        // Without parameters, so that on PostgreSQL it travels with the `begin` (see foldingBegin).
        const { rows } = await sql<{
          revision: number
          standard_attr_id: number
        }>`update sgwall_meta set revision = revision + 1 where id = 1 returning revision, standard_attr_id`.execute(tx)
        const meta = rows[0]
        if (!meta) throw new Error('sgwall_meta row missing')
        const stdBase = Number(meta.standard_attr_id)
        let stdReserved = 0
        const deferred: DeferrableQuery[] = []
        const rev = Number(meta.revision)
        const now = isoSeconds(clock())
        let seq = 0
        const pendingChanges: ChangeTable[] = []
        const ctx: WriteContext = {
          tx,
          revision: rev,
          now,
          async log(change) {
            // Buffered: all change rows of the transaction are inserted in one statement before commit.
            seq += 1
            pendingChanges.push({
              revision: rev,
              seq,
              resource: change.resource,
              resource_id: change.resource_id,
              action: change.action,
              project_id: change.project_id ?? null,
              body: change.body === undefined || change.body === null ? null : JSON.stringify(change.body),
              created_at: now,
            })
          },
          async nextStandardAttrId(count = 1) {
            const first = stdBase + stdReserved + 1
            stdReserved += count
            return first
          },
          async defer(query) {
            if (dialect === 'postgres') deferred.push(query)
            else await query.execute()
          },
        }
        const result = await fn(ctx)
        const tail: DeferrableQuery[] = [...deferred]
        if (stdReserved > 0)
          tail.push(
            tx
              .updateTable('sgwall_meta')
              .set({ standard_attr_id: stdBase + stdReserved })
              .where('id', '=', 1),
          )
        if (pendingChanges.length === 0) for (const q of tail) await q.execute()
        for (let k = 0; k < pendingChanges.length; k += 500) {
          const insert = tx.insertInto('changes').values(pendingChanges.slice(k, k + 500))
          if (k > 0 || tail.length === 0) await insert.execute()
          else if (dialect === 'sqlite') {
            for (const q of tail) await q.execute()
            await insert.execute()
          } else {
            // PostgreSQL: one statement, `WITH d0 AS (…), d1 AS (…) INSERT INTO changes …`.
            // Kysely only reads each builder's operation node, so the chain is typed loosely.
            let chain = tx as unknown as CteChain
            tail.forEach((q, n) => {
              chain = chain.with(`d${n}`, () => q)
            })
            await chain
              .insertInto('changes')
              .values(pendingChanges.slice(k, k + 500))
              .execute()
          }
        }
        if (rev % pruneEvery === 0) {
          // Prune the change log every `pruneEvery` revisions, keeping the last `limit` revisions.
          const cut = rev - limit
          if (cut > 0) {
            await tx.deleteFrom('changes').where('revision', '<=', cut).execute()
            await tx.updateTable('sgwall_meta').set({ pruned_through: cut }).where('id', '=', 1).execute()
          }
        }
        return { result, revision: rev }
      })
      for (const l of listeners) l(revision)
      return result
    },
    revision: revisionNow,
    onCommit(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async close() {
      await db.destroy()
    },
  }
  return store
}

interface CteChain {
  with(name: string, body: () => DeferrableQuery): CteChain
  insertInto(table: 'changes'): { values(rows: ChangeTable[]): { execute(): Promise<unknown> } }
}

/**
 * Concurrent callers of `read` share one call that started after they called: while a read
 * is running, later callers wait for the next one (started when it ends), never for the
 * running one, whose answer may predate them.
 */
export function coalesced<T>(read: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null
  let next: Promise<T> | null = null
  const start = (): Promise<T> => {
    const p = read().finally(() => {
      if (running === p) running = null
    })
    running = p
    return p
  }
  return () => {
    if (!running) return start()
    if (!next) {
      const after = running.then(
        () => undefined,
        () => undefined,
      )
      next = after.then(() => {
        next = null
        return start()
      })
    }
    return next
  }
}

/**
 * better-sqlite3 behind Kysely with prepared statements reused by SQL text (Kysely prepares
 * every query anew, which costs more than running most of ours). A statement still being
 * iterated is not shared.
 */
function cachingPrepare(sqlite: SqliteDatabase.Database): SqliteDatabase.Database {
  const cache = new Map<string, SqliteDatabase.Statement>()
  const prepare = (sql: string) => {
    const hit = cache.get(sql)
    if (hit && !hit.busy) return hit
    const stmt = sqlite.prepare(sql)
    if (!hit) {
      if (cache.size >= 1000) cache.clear()
      cache.set(sql, stmt)
    }
    return stmt
  }
  return new Proxy(sqlite, {
    get(target, prop) {
      if (prop === 'prepare') return prepare
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

/**
 * The PostgreSQL pool as Kysely sees it, with clients that hold back a bare `begin` and send it
 * in one simple-protocol message with the next statement when that statement has no parameters
 * (the write path's revision bump): one round trip less per transaction, inside the revision lock's
 * critical path. A transaction that ends before any statement sends nothing.
 */
function foldingBegin(pool: pg.Pool): PostgresPool {
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>()
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let held = false
    const ok = (command: string) => ({ command, rowCount: 0, rows: [] })
    const query = async (text: string, values?: readonly unknown[]) => {
      const bare = values === undefined || values.length === 0
      if (text === 'begin' && bare && !held) {
        held = true
        return ok('BEGIN')
      }
      if (held) {
        held = false
        if (bare && (text === 'commit' || text === 'rollback')) return ok(text.toUpperCase())
        if (bare) {
          const res = (await client.query(`begin; ${text}`)) as unknown as pg.QueryResult | pg.QueryResult[]
          return Array.isArray(res) ? res[res.length - 1] : res
        }
        await client.query('begin')
      }
      return client.query(text, values as unknown[] | undefined)
    }
    return {
      query,
      release(discard?: boolean) {
        held = false
        client.release(discard)
      },
    } as unknown as PostgresPoolClient
  }
  return {
    async connect() {
      const client = await pool.connect()
      let w = wrappers.get(client)
      if (!w) {
        w = wrap(client)
        wrappers.set(client, w)
      }
      return w
    },
    end: () => pool.end(),
  }
}
