/**
 * Opening the store (SQLite file, `:memory:`, or PostgreSQL URL), running migrations,
 * and the one way to write: `store.write(fn)`. Every write transaction first bumps the
 * single revision counter row; that row lock serialises writers (on PostgreSQL too), so
 * revisions are committed in order and a change-feed reader never sees revision N+1
 * before N. Writes that queue up while a transaction runs share the next one (group commit),
 * each in its own savepoint with its own revision. Every change appended with `log()`
 * carries its write's revision.
 */
import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { setImmediate } from 'node:timers'
import { Worker } from 'node:worker_threads'
import SqliteDatabase from 'better-sqlite3'
import {
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  SqliteDialect,
  type Transaction,
} from 'kysely'
import pg from 'pg'
import { migrationProvider } from './migrations.js'
import type { Database } from './schema.js'

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
  defer(query: DeferrableQuery | RawStatement): Promise<void>
  /**
   * Runs a hand-written statement in the transaction and returns its rows (none for a write).
   * SQLite: at once (so never while a Kysely query of `tx` is pending).
   */
  query<R = Record<string, unknown>>(stmt: RawStatement): Promise<R[]>
  /**
   * PostgreSQL only: flushes what the write deferred and logged so far (hand-written statements
   * with a `guard`) in one statement with `check`, and only if the check's `ok` holds; returns the
   * check's row, whether the flush was applied (if not, nothing changed and everything stays
   * pending) and the write's revision (a pipelined write's, when applied, as the database gave it).
   * One round trip for a write whose checks pass.
   */
  flushIf<R = Record<string, unknown>>(check: GuardedCheck): Promise<FlushAnswer<R>>
}

/** A Kysely insert/update/delete builder of the transaction (`w.tx`). */
export interface DeferrableQuery {
  compile(): { readonly sql: string; readonly parameters: readonly unknown[] }
  execute(): Promise<unknown>
}

/**
 * A hand-written insert/update/delete for `defer`, in the store's dialect: `?` parameters on
 * SQLite, `$1`… on PostgreSQL (renumbered when it becomes a CTE; no `$` elsewhere in the text).
 */
export interface RawStatement {
  readonly sql: string
  readonly parameters: readonly unknown[]
  /** How a condition is appended (`flushIf`): `where` (an `insert … select … from (values …) v`) or `and`. */
  readonly guard?: 'where' | 'and'
}

/** The check of `flushIf`: a select of one row (PostgreSQL parameters), and when it lets the write go. */
export interface GuardedCheck {
  readonly sql: string
  readonly parameters: readonly unknown[]
  /** SQL condition on the row, its columns named `"c"."column"`. */
  readonly ok: string
}

export interface WriteOptions {
  /**
   * The write changes nothing before it returns except through `defer`, `log` and
   * `nextStandardAttrId` (it only reads through `tx`): on PostgreSQL it then needs no savepoint
   * in a batch (one round trip less).
   */
  readonly deferredOnly?: boolean
  /**
   * PostgreSQL: the write's one statement is its `flushIf`, called once, after every `log` (at least
   * one) and `nextStandardAttrId`; it reads nothing through `tx` or `query`, defers nothing after it,
   * and does not use `revision` (NaN: the database gives the revision; standard attribute ids come from
   * a block reserved ahead). Such writes queued together run as one transaction sent in one message
   * (one round trip for all), one statement after another. One that goes on although its checks failed
   * (its statements did not run) is run again on its own. Implies `deferredOnly`. SQLite: no effect.
   */
  readonly pipelined?: boolean
}

export interface Store {
  readonly db: Kysely<Database>
  readonly dialect: DialectName
  /**
   * Runs `fn` in a transaction with the next revision. Writes that arrive while a transaction
   * is in flight share the next one (group commit): each in its own savepoint, in arrival order,
   * each with its own revision; a failing write is rolled back alone. `fn` may be run again
   * (from scratch, in a new transaction) when another write of its batch broke the transaction
   * (or, pipelined, when it must run on its own: it then comes after the writes queued with it),
   * so it must have no effect outside the transaction.
   */
  write<T>(fn: (w: WriteContext) => Promise<T>, options?: WriteOptions): Promise<T>
  /**
   * Current committed revision, read after the call (never a value cached from before it).
   * SQLite: one prepared statement when no transaction is open; PostgreSQL: concurrent callers
   * share one query that started after they called.
   */
  revision(): Promise<number>
  /** Called after every committed write (same process), once per revision, in order. */
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
  /** Called with the number of writes of every batch (one transaction) when it ends. */
  readonly onBatch?: (writes: number) => void
  /** Called when an idle PostgreSQL connection fails (it is dropped and replaced). */
  readonly onPoolError?: (err: Error) => void
}

let lastSecond = Number.NaN
let lastIso = ''
export function isoSeconds(d: Date): string {
  const second = Math.floor(d.getTime() / 1000)
  if (second !== lastSecond) {
    lastIso = `${d.toISOString().slice(0, 19)}Z`
    lastSecond = second
  }
  return lastIso
}

/** `url`: `postgres://…`/`postgresql://…`, `:memory:`, `sqlite:PATH`, or a file path. */
export async function openStore(url: string, options: StoreOptions = {}): Promise<Store> {
  let db: Kysely<Database>
  let dialect: DialectName
  let sqliteHandle: SqliteDatabase.Database | null = null
  let sqlitePrepare: ((sql: string) => SqliteDatabase.Statement) | null = null
  let checkpointer: (() => Promise<void>) | null = null
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
    if (path !== ':memory:') checkpointer = startCheckpointer(sqlite, path)
    sqliteHandle = sqlite
    const cached = cachingPrepare(sqlite)
    sqlitePrepare = cached.prepare
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cached.database }) })
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

  /** Writes waiting for the next batch; a batch runs them in one transaction (see `write`). */
  const queue: Pending[] = []
  /** A batch is running its transaction (before its commit on PostgreSQL, to its end on SQLite). */
  let active = false
  /** A start of the next batch is scheduled. */
  let scheduled = false
  /** Messages of pipelined writes sent and not yet answered (see runMessage). */
  let messagesInFlight = 0
  /** PostgreSQL: the connection of pipelined writes' messages (opened when first needed). */
  let lane: MessageLane | null = null
  /** Resolves when the last started batch has answered its callers (batches answer in order). */
  let lastAnswered: Promise<void> = Promise.resolve()
  /**
   * Starts the next batch unless one is active. On PostgreSQL a batch stops being active when it sends
   * its commit: the next one opens its transaction at once, on another connection, and its revision
   * lock is granted the moment the commit is done (no round trip of ours in between); a message of
   * pipelined writes stops being active once it is written on the message lane. On SQLite (one
   * connection) the next batch starts when the last one has ended.
   */
  const pump = () => {
    if (active || queue.length === 0) return
    // A batch is a run of pipelined writes (one message, see runMessage) or of other writes (runBatch).
    const kind = queue[0]!.pipelined
    // At most MESSAGES_IN_FLIGHT messages sent and not yet answered; another batch waits for them all
    // (its transaction must take its revisions after theirs).
    if (kind ? messagesInFlight >= MESSAGES_IN_FLIGHT : messagesInFlight > 0) return
    active = true
    let n = 1
    while (n < queue.length && n < MAX_BATCH && queue[n]!.pipelined === kind) n++
    const batch = queue.splice(0, n)
    let released = false
    const release = () => {
      if (released) return
      released = true
      active = false
      pump()
    }
    let inFlight = false
    const handed = () => {
      inFlight = true
      messagesInFlight++
      release()
    }
    const previous = lastAnswered
    let answered: () => void = () => undefined
    lastAnswered = new Promise<void>((r) => {
      answered = r
    })
    const run = kind
      ? runMessage(batch, previous, handed)
      : runBatch(batch, dialect === 'postgres' ? release : () => undefined, previous)
    void run.finally(() => {
      answered()
      if (inFlight) messagesInFlight--
      if (released) pump()
      else release()
    })
  }

  /**
   * A hand-written statement in the batch's transaction. SQLite: run at once on the connection
   * the transaction holds (no Kysely query of the transaction may be pending).
   */
  const raw = async <R = Record<string, unknown>>(
    tx: Transaction<Database>,
    text: string,
    params: readonly unknown[] = [],
  ): Promise<{ rows: R[] }> => {
    if (sqlitePrepare) {
      const stmt = sqlitePrepare(text)
      if (stmt.reader) return { rows: stmt.all(...params) as R[] }
      stmt.run(...params)
      return { rows: [] }
    }
    if (params.length > 0) preparedName(text)
    return tx.executeQuery<R>(CompiledQuery.raw(text, params as unknown[]))
  }

  /** Answers the callers, then calls the listeners once per revision: both before any caller continues (continuations are microtasks). */
  function announce(outcomes: Outcome[], revisions: readonly number[]): void {
    for (const o of outcomes) (o.ok ? o.p.resolve : o.p.reject)(o.value)
    for (const r of revisions)
      for (const l of listeners) {
        try {
          l(r)
        } catch {
          // A listener's failure is its own; the writes are committed and answered.
        }
      }
  }

  /**
   * One transaction for every write of `batch`, in order. Each write runs in its own savepoint
   * (on PostgreSQL a `deferredOnly` write needs none: it changes nothing before its flush), its
   * deferred statements and change rows are flushed before the next write starts (so it sees them),
   * and it gets the next revision: a write that fails is rolled back alone and its revision is
   * reused. When a failure leaves the transaction unusable (PostgreSQL aborts it on any SQL error
   * outside a savepoint), everything is rolled back, the failed write is answered, and the others
   * go back to the front of the queue and run again from scratch.
   */
  async function runBatch(batch: Pending[], committing: () => void, previous: Promise<void>): Promise<void> {
    options.onBatch?.(batch.length)
    const outcomes: Outcome[] = []
    let retry: Pending[] | null = null
    let revisions: number[] = []
    try {
      await db.transaction().execute(async (tx) => {
        // This row lock serialises writers (on PostgreSQL across server processes too). Without
        // parameters, so that on PostgreSQL it travels with the `begin` (see foldingBegin).
        const { rows } = await raw(tx, LOCK_SQL)
        const meta = rows[0]
        if (!meta) throw new Error('sgwall_meta row missing')
        const before = Number(meta.revision) - 1
        let metaRev = before + 1
        const std0 = Number(meta.standard_attr_id)
        let metaStd = std0
        let nextRev = before + 1
        let savepointOpen = false

        for (const p of batch) {
          const rev = nextRev
          // A deferredOnly write changes nothing before its flush (SQLite: its deferred statements wait for it).
          const guarded = !p.deferredOnly
          if (guarded) {
            if (dialect === 'sqlite') {
              if (savepointOpen) await raw(tx, 'release savepoint w')
              await raw(tx, 'savepoint w')
            } else await raw(tx, savepointOpen ? 'release savepoint w; savepoint w' : 'savepoint w')
            savepointOpen = true
          }
          const stdBase = metaStd
          let stdReserved = 0
          let deferred: Deferred[] = []
          const now = isoSeconds(clock())
          let seq = 0
          let changes: unknown[][] = []
          // What the meta row must become after this write: null when it already is that.
          let revWritten = rev === metaRev
          let stdWritten = 0
          const pendingMeta = (): [number, number] | null =>
            revWritten && stdReserved === stdWritten ? null : [rev, stdBase + stdReserved]
          const ctx: WriteContext = {
            tx,
            revision: rev,
            now,
            async log(change) {
              // Buffered: the change rows of the write are inserted in one statement at its end.
              seq += 1
              changes.push(changeRow(rev, seq, change, now))
            },
            async nextStandardAttrId(count = 1) {
              const first = stdBase + stdReserved + 1
              stdReserved += count
              return first
            },
            async query<R>(stmt: RawStatement) {
              return (await raw<R>(tx, stmt.sql, stmt.parameters)).rows
            },
            async defer(query) {
              if (dialect === 'postgres' || !guarded) deferred.push(query)
              else if (isRaw(query)) await raw(tx, query.sql, query.parameters)
              else await query.execute()
            },
            async flushIf<R>(check: GuardedCheck) {
              if (dialect !== 'postgres') throw new Error('flushIf is for PostgreSQL')
              const { row, applied } = await flush<R>(tx, deferred, pendingMeta(), changes, check)
              if (applied) {
                deferred = []
                changes = []
                revWritten = true
                stdWritten = stdReserved
              }
              return { row, applied, revision: rev }
            },
          }
          let flushing = false
          try {
            const value = await p.fn(ctx)
            flushing = true
            // SQLite: the meta row is written once, at the end of the batch.
            await flush(tx, deferred, dialect === 'sqlite' ? null : pendingMeta(), changes)
            metaRev = rev
            metaStd = stdBase + stdReserved
            nextRev = rev + 1
            outcomes.push({ p, ok: true, value, revision: rev })
          } catch (err) {
            let usable: boolean
            if (guarded) {
              try {
                await raw(tx, 'rollback to savepoint w')
                usable = dialect === 'postgres' || (sqliteHandle?.inTransaction ?? false)
              } catch {
                usable = false
              }
            } else if (dialect === 'postgres') usable = !(err instanceof pg.DatabaseError)
            else usable = !flushing && (sqliteHandle?.inTransaction ?? false)
            if (!usable) {
              // Answer this write; run the others again in a new transaction.
              retry = batch.filter((x) => x !== p)
              outcomes.length = 0
              outcomes.push({ p, ok: false, value: err, revision: 0 })
              throw RETRY
            }
            outcomes.push({ p, ok: false, value: err, revision: 0 })
          }
        }
        revisions = outcomes.filter((o) => o.ok).map((o) => o.revision)
        const last = revisions[revisions.length - 1]
        if (last === undefined) throw NOTHING // every write failed: leave the revision as it was
        if (dialect === 'sqlite' && (metaRev !== before + 1 || metaStd !== std0))
          await raw(tx, META_SQL.sqlite, [metaRev, metaStd])
        const cut = pruneCut(before, last)
        if (cut !== null) await pruneTo(tx, cut)
        committing()
      })
    } catch (err) {
      if (err === RETRY && retry) {
        queue.unshift(...(retry as Pending[]))
        for (const o of outcomes) o.p.reject(o.value)
        return
      }
      if (err !== NOTHING) {
        // Nothing of the batch was committed: every caller gets the error.
        for (const p of batch) p.reject(err)
        return
      }
      revisions = []
    }
    // After the batch before it (whose commit came first): callers and listeners see revisions in order.
    await previous
    announce(outcomes, revisions)
  }

  /** Change rows as inserts of at most CHANGE_CHUNK rows each. */
  async function insertChanges(tx: Transaction<Database>, changes: unknown[][]): Promise<void> {
    for (let k = 0; k < changes.length; k += CHANGE_CHUNK) {
      const chunk = changes.slice(k, k + CHANGE_CHUNK)
      await raw(tx, changesInsert(dialect, chunk.length, 0), chunk.flat())
    }
  }

  /**
   * A write's deferred statements, standard attribute id / revision (`meta`) and change rows.
   * SQLite: deferred statements already ran; the rest are two prepared statements. PostgreSQL:
   * one statement, `WITH "d0" AS (…), "d1" AS (…) INSERT INTO changes …` when there are change rows;
   * with `check`, see `guardedStatement`.
   */
  async function flush<R = Record<string, unknown>>(
    tx: Transaction<Database>,
    deferred: Deferred[],
    meta: [number, number] | null,
    changes: unknown[][],
    check?: GuardedCheck,
  ): Promise<{ row: R; applied: boolean }> {
    if (check) {
      const stmt = guardedStatement(deferred, meta, changes, check)
      const { rows } = await raw<R & { applied?: boolean }>(tx, stmt.sql, stmt.parameters)
      const row = rows[0] ?? ({} as R & { applied?: boolean })
      return { row, applied: row.applied === true }
    }
    const parts = deferred.map((q) => (isRaw(q) ? q : q.compile()))
    if (meta) parts.push({ sql: META_SQL[dialect], parameters: meta })
    if (changes.length === 0 || dialect === 'sqlite') {
      for (const q of parts) await raw(tx, q.sql, q.parameters)
      await insertChanges(tx, changes)
      return { row: {} as R, applied: true }
    }
    // PostgreSQL: one statement.
    const first = changes.slice(0, CHANGE_CHUNK)
    const { text, params } = ctes(parts)
    const main = changesInsert(dialect, first.length, params.length)
    params.push(...first.flat())
    await raw(tx, `${text} ${main}`, params)
    await insertChanges(tx, changes.slice(CHANGE_CHUNK))
    return { row: {} as R, applied: true }
  }

  /** The guarded parts of a write's statement (`ok`: the CTE its check passes in). */
  function guardedParts(deferred: Deferred[]): { sql: string; parameters: readonly unknown[] }[] {
    if (dialect !== 'postgres') throw new Error('flushIf is for PostgreSQL')
    return deferred.map((q) => {
      const g = guardable(q)
      return { sql: `${g.sql} ${g.guard}${OK}`, parameters: g.parameters }
    })
  }

  /**
   * PostgreSQL: `WITH "c" AS (check), "ok" AS (…), "d0" AS (… WHERE EXISTS ok) … SELECT "c".*, applied`:
   * everything guarded by the check, whose row is returned.
   */
  function guardedStatement(
    deferred: Deferred[],
    meta: [number, number] | null,
    changes: unknown[][],
    check: GuardedCheck,
  ): RawStatement {
    const parts = guardedParts(deferred)
    if (meta) parts.push({ sql: `${META_SQL[dialect]} and${OK}`, parameters: meta })
    if (changes.length > CHANGE_CHUNK) throw new Error('flushIf: too many change rows')
    if (changes.length > 0)
      parts.push({ sql: `${changesInsert(dialect, changes.length, 0, true)} where${OK}`, parameters: changes.flat() })
    const { text, params } = ctes([check], ['c'])
    const rest = ctes(parts, undefined, params.length)
    return {
      sql: `${text}, "ok" as (select 1 from "c" where ${check.ok})${rest.text.replace(/^with/, ',')} select "c".*,${OK} as "applied" from "c"`,
      parameters: [...params, ...rest.params],
    }
  }

  /**
   * PostgreSQL, a pipelined write's statement: as `guardedStatement`, but the revision is taken in SQL
   * (`"m"`: the meta row's revision + 1, when the check passes) and given to its change rows; the row
   * returned also says `__revision`.
   */
  function messageStatement(deferred: Deferred[], changes: unknown[][], check: GuardedCheck): RawStatement {
    if (dialect !== 'postgres') throw new Error('flushIf is for PostgreSQL')
    if (changes.length === 0 || changes.length > CHANGE_CHUNK)
      throw new Error('a pipelined write logs between 1 and 500 changes')
    // The text depends only on the texts of the check and the statements and on the number of change
    // rows: built once per such shape (renumbering every `$n` costs more than running the statement).
    // Looked up part by part: callers that reuse their texts (same string objects) cost no hashing.
    const parameters: unknown[] = check.parameters.slice()
    let node = MESSAGE_TEXTS.at(check.sql).at(check.ok).at(changes.length)
    for (const q of deferred) {
      const g = guardable(q)
      node = node.at(g.guard).at(g.sql)
      for (const v of g.parameters) parameters.push(v)
    }
    for (const c of changes) for (let k = 1; k < c.length; k++) parameters.push(c[k])
    const sql = node.get(() => messageText(deferred as RawStatement[], changes.length, check))
    return { sql, parameters }
  }

  /** `messageStatement`'s text. */
  function messageText(deferred: RawStatement[], changeCount: number, check: GuardedCheck): string {
    const parts = guardedParts(deferred)
    const tuples: string[] = []
    for (let r = 0; r < changeCount; r++) {
      const b = r * 7
      tuples.push(
        `($${b + 1}::integer, $${b + 2}::text, $${b + 3}::text, $${b + 4}::text, $${b + 5}::text, $${b + 6}::text, $${b + 7}::text)`,
      )
    }
    parts.push({
      sql: `insert into "changes" (${CHANGE_COLUMNS}) select "m"."revision", v.* from "m", (values ${tuples.join(', ')}) v`,
      parameters: new Array(changeCount * 7), // only their number counts here (the `$n` renumbering)
    })
    const { text, params } = ctes([check], ['c'])
    const rest = ctes(parts, undefined, params.length)
    return (
      `${text}, "ok" as (select 1 from "c" where ${check.ok}), ` +
      `"m" as (update "sgwall_meta" set "revision" = "revision" + 1 where "id" = 1 and${OK} returning "revision")` +
      `${rest.text.replace(/^with/, ',')} select "c".*,${OK} as "applied", (select "revision" from "m") as "__revision" from "c"`
    )
  }

  /** Standard attribute ids reserved ahead for pipelined writes: [stdNext, stdEnd). */
  let stdNext = 0
  let stdEnd = 0
  let stdReserving: Promise<unknown> = Promise.resolve()
  /** A reservation is in flight (later callers wait for it, to take ids in their order). */
  let stdWaiting = 0
  /** `count` consecutive standard attribute ids from the block reserved ahead (reserving another when short). */
  const reserveStd = (count: number): Promise<number> => {
    if (stdWaiting === 0 && stdEnd - stdNext >= count) {
      // The usual case: ids left in the block and nobody waiting before us.
      const first = stdNext
      stdNext += count
      return Promise.resolve(first)
    }
    stdWaiting++
    const next = stdReserving.then(async () => {
      if (stdEnd - stdNext < count) {
        const size = Math.max(STD_BLOCK, count)
        const row = await db
          .updateTable('sgwall_meta')
          .set((eb) => ({ standard_attr_id: eb('standard_attr_id', '+', size) }))
          .where('id', '=', 1)
          .returning('standard_attr_id')
          .executeTakeFirstOrThrow()
        stdEnd = Number(row.standard_attr_id) + 1
        stdNext = stdEnd - size
      }
      const first = stdNext
      stdNext += count
      return first
    })
    stdReserving = next
      .catch(() => undefined)
      .finally(() => {
        stdWaiting--
      })
    return next
  }

  /**
   * A pipelined write (see WriteOptions.pipelined), started: `reached` resolves when it has built its
   * statement (`stmt`) or has ended without one.
   */
  function startPipelined(p: Pending): PipelinedEntry {
    const now = isoSeconds(clock())
    const changes: unknown[][] = []
    const deferred: Deferred[] = []
    let markReached: () => void = () => undefined
    const e: PipelinedEntry = {
      p,
      stmt: null,
      applied: false,
      revision: 0,
      reached: new Promise<void>((r) => {
        markReached = r
      }),
      answer: () => undefined,
      settled: Promise.resolve({ status: 'fulfilled', value: undefined }),
    }
    const misuse = (what: string) => new Error(`a pipelined write ${what}`)
    const ctx: WriteContext = {
      // It has no transaction of its own until its message runs.
      tx: new Proxy({} as Transaction<Database>, {
        get() {
          throw misuse('uses no tx')
        },
      }),
      revision: Number.NaN,
      now,
      async log(change) {
        if (e.stmt) throw misuse('logs nothing after flushIf')
        changes.push(changeRow(0, changes.length + 1, change, now))
      },
      async nextStandardAttrId(count = 1) {
        if (e.stmt) throw misuse('reserves no standard attribute id after flushIf')
        return reserveStd(count)
      },
      async query() {
        throw misuse('reads nothing')
      },
      async defer(q) {
        if (e.stmt) throw misuse('defers nothing after flushIf')
        deferred.push(q)
      },
      flushIf<R>(check: GuardedCheck) {
        if (e.stmt) return Promise.reject(misuse('calls flushIf once'))
        e.stmt = messageStatement(deferred, changes, check)
        const answered = new Promise<FlushAnswer<R>>((resolve, reject) => {
          e.answer = (v) => (v === RERUN ? reject(v) : resolve(v as FlushAnswer<R>))
        })
        markReached()
        return answered
      },
    }
    e.settled = (async () => p.fn(ctx))().then(
      (value) => ({ status: 'fulfilled', value }) as const,
      (reason) => ({ status: 'rejected', reason }) as const,
    )
    void e.settled.then(markReached)
    return e
  }

  /**
   * A batch of pipelined writes (PostgreSQL): their statements in one message on the message lane, a
   * transaction of its own (one round trip for all; see messageLane). Each statement takes the next
   * revision in SQL when its checks pass; one whose checks fail changes nothing and the next ones go on
   * (they run after it, so they see what it did not do). A write that goes on although its checks failed,
   * and every write of a message that failed as a whole, run again on their own. `handed` is called once
   * the message is written: the next message may be built and sent behind it.
   */
  async function runMessage(batch: Pending[], previous: Promise<void>, handed: () => void): Promise<void> {
    options.onBatch?.(batch.length)
    const entries = batch.map((p) => startPipelined(p))
    await Promise.all(entries.map((e) => e.reached))
    const sent = entries.filter((e) => e.stmt)
    let rows: Record<string, unknown>[] = []
    if (sent.length > 0) {
      try {
        lane ??= messageLane(url)
        const message = lane.send(sent.map((e) => e.stmt as RawStatement))
        await message.handed.then(handed, () => undefined)
        rows = await message.rows
      } catch {
        // The message failed as a whole: no rows, its writes run again on their own.
      }
    }
    sent.forEach((e, i) => {
      const row = rows[i]
      if (!row) {
        e.answer(RERUN)
        return
      }
      e.applied = row.applied === true
      e.revision = Number(row.__revision)
      e.answer({ row, applied: e.applied, revision: e.revision })
    })
    const outcomes: Outcome[] = []
    const again: Pending[] = []
    for (const e of entries) {
      const r = await e.settled
      if (r.status === 'rejected') {
        if (r.reason === RERUN) again.push(e.p)
        else outcomes.push({ p: e.p, ok: false, value: r.reason, revision: 0 })
      } else if (!e.stmt)
        outcomes.push({
          p: e.p,
          ok: false,
          value: new Error('a pipelined write returned without flushIf'),
          revision: 0,
        })
      else if (!e.applied)
        again.push(e.p) // it went on although its checks failed: its statements did not run
      else outcomes.push({ p: e.p, ok: true, value: r.value, revision: e.revision })
    }
    // Run again, each on its own, before the writes queued after this batch (after the messages already
    // sent behind this one).
    for (const p of again) p.pipelined = false
    queue.unshift(...again)
    await previous
    const revisions = outcomes.filter((o) => o.ok).map((o) => o.revision)
    announce(outcomes, revisions)
    const last = revisions[revisions.length - 1]
    const cut = last === undefined ? null : pruneCut(revisions[0]! - 1, last)
    if (cut !== null) await db.transaction().execute((tx) => pruneTo(tx, cut))
  }

  /**
   * Every `pruneEvery` revisions the change log is pruned to its last `limit` revisions: the
   * revision to prune through when a batch's revisions after `before` up to `last` cross such a mark.
   */
  function pruneCut(before: number, last: number): number | null {
    if (Math.floor(last / pruneEvery) <= Math.floor(before / pruneEvery)) return null
    const cut = last - limit
    return cut > 0 ? cut : null
  }

  async function pruneTo(tx: Transaction<Database>, cut: number): Promise<void> {
    await tx.deleteFrom('changes').where('revision', '<=', cut).execute()
    await tx.updateTable('sgwall_meta').set({ pruned_through: cut }).where('id', '=', 1).execute()
  }

  const store: Store = {
    db,
    dialect,
    write<T>(fn: (w: WriteContext) => Promise<T>, options?: WriteOptions): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({
          fn,
          resolve: resolve as (v: unknown) => void,
          reject,
          deferredOnly: (options?.deferredOnly || options?.pipelined) ?? false,
          pipelined: dialect === 'postgres' && (options?.pipelined ?? false),
        })
        if (!active && !scheduled) {
          // Start after the current round of I/O callbacks, so that the requests read in it share
          // the transaction (on SQLite a batch otherwise runs to its end before the next one is read).
          // (The timers module's own setImmediate: fake timers in a test do not stop the store.)
          scheduled = true
          setImmediate(() => {
            scheduled = false
            pump()
          })
        }
      })
    },
    revision: revisionNow,
    onCommit(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async close() {
      await checkpointer?.()
      await lane?.close()
      await db.destroy()
    },
  }
  return store
}

/** At most this many writes share a transaction. */
const MAX_BATCH = 64
/**
 * Pipelined writes' messages sent and not yet answered: while one runs, the next is built and sent,
 * and PostgreSQL starts it the moment the one before commits.
 */
const MESSAGES_IN_FLIGHT = 2
const CHANGE_CHUNK = 500
const LOCK_SQL = 'update sgwall_meta set revision = revision + 1 where id = 1 returning revision, standard_attr_id'
const META_SQL: Record<DialectName, string> = {
  sqlite: 'update "sgwall_meta" set "revision" = ?, "standard_attr_id" = ? where "id" = 1',
  postgres: 'update "sgwall_meta" set "revision" = $1, "standard_attr_id" = $2 where "id" = 1',
}
const CHANGE_COLUMNS = '"revision", "seq", "resource", "resource_id", "action", "project_id", "body", "created_at"'
/**
 * `insert into changes … values (…), …` for `rows` rows, PostgreSQL parameters numbered after
 * `offset`; `select`: `insert … select * from (values …) v` with typed parameters (a `where` may follow).
 */
function changesInsert(dialect: DialectName, rows: number, offset: number, select = false): string {
  const tuples: string[] = []
  for (let r = 0; r < rows; r++) {
    if (dialect === 'sqlite') tuples.push('(?, ?, ?, ?, ?, ?, ?, ?)')
    else {
      const b = offset + r * 8
      tuples.push(
        select
          ? `($${b + 1}::integer, $${b + 2}::integer, $${b + 3}::text, $${b + 4}::text, $${b + 5}::text, $${b + 6}::text, $${b + 7}::text, $${b + 8}::text)`
          : `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, $${b + 8})`,
      )
    }
  }
  const values = `values ${tuples.join(', ')}`
  return `insert into "changes" (${CHANGE_COLUMNS}) ${select ? `select * from (${values}) v` : values}`
}

const RETRY = Symbol('retry the batch')
/** A pipelined write whose message failed as a whole: run it again on its own. */
const RERUN = Symbol('run the write again')
/** The guard every part of a flushIf statement carries. */
const OK = ' exists (select 1 from "ok")'
/** Standard attribute ids reserved at a time for pipelined writes. */
const STD_BLOCK = 1000
const NOTHING = Symbol('nothing to commit')

interface Pending {
  readonly fn: (w: WriteContext) => Promise<unknown>
  readonly resolve: (v: unknown) => void
  readonly reject: (err: unknown) => void
  readonly deferredOnly: boolean
  /** See WriteOptions.pipelined; cleared when the write is to run again on its own. */
  pipelined: boolean
}

type Deferred = DeferrableQuery | RawStatement

/** How a write of a batch ended: its value or error, and its revision when it committed. */
interface Outcome {
  readonly p: Pending
  readonly ok: boolean
  readonly value: unknown
  readonly revision: number
}

interface PipelinedEntry {
  readonly p: Pending
  /** Its guarded statement, once flushIf was called. */
  stmt: RawStatement | null
  applied: boolean
  /** The revision its statement took (when applied). */
  revision: number
  readonly reached: Promise<void>
  /** Settles its flushIf: the statement's row, or RERUN. */
  answer: (v: FlushAnswer | typeof RERUN) => void
  settled: Promise<PromiseSettledResult<unknown>>
}

/** What `flushIf` answers. */
export interface FlushAnswer<R = Record<string, unknown>> {
  readonly row: R
  readonly applied: boolean
  readonly revision: number
}

/** A change-log row (the columns of CHANGE_COLUMNS). */
function changeRow(rev: number, seq: number, change: ChangeInput, now: string): unknown[] {
  return [
    rev,
    seq,
    change.resource,
    change.resource_id,
    change.action,
    change.project_id ?? null,
    change.body === undefined || change.body === null ? null : JSON.stringify(change.body),
    now,
  ]
}

/**
 * PostgreSQL: statements as data-modifying CTEs `with "name" as (…), …` (names `d0`, `d1`, … unless given),
 * their `$n` parameters renumbered after `offset`.
 */
function ctes(
  parts: readonly { sql: string; parameters: readonly unknown[] }[],
  names?: readonly string[],
  offset = 0,
): { text: string; params: unknown[] } {
  let text = ''
  const params: unknown[] = []
  for (const [n, q] of parts.entries()) {
    const base = offset + params.length
    text += `${text ? ',' : 'with'} "${names?.[n] ?? `d${n}`}" as (${q.sql.replace(/\$(\d+)/g, (_, i) => `$${Number(i) + base}`)})`
    params.push(...q.parameters)
  }
  return { text, params }
}

const isRaw = (q: Deferred): q is RawStatement => typeof (q as RawStatement).sql === 'string'

/** A deferred statement `flushIf` can guard: hand-written, saying how a condition is appended. */
function guardable(q: Deferred): RawStatement & { readonly guard: 'where' | 'and' } {
  if (!isRaw(q)) throw new Error('flushIf needs hand-written deferred statements')
  if (!q.guard) throw new Error('flushIf needs deferred statements that say how to guard them')
  return q as RawStatement & { readonly guard: 'where' | 'and' }
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
function cachingPrepare(sqlite: SqliteDatabase.Database): {
  database: SqliteDatabase.Database
  prepare: (sql: string) => SqliteDatabase.Statement
} {
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
  const database = new Proxy(sqlite, {
    get(target, prop) {
      if (prop === 'prepare') return prepare
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { database, prepare }
}

/** WAL size (pages) past which a commit checkpoints on the event loop, with the checkpointer worker running. */
const WAL_PAGES = 4000

/** Runs in a worker thread: checkpoints the WAL of `workerData.path` every `workerData.everyMs`. */
const CHECKPOINTER = `
const { workerData, parentPort } = require('node:worker_threads')
const Database = require(workerData.module)
const db = new Database(workerData.path)
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)') } catch {}
}, workerData.everyMs)
parentPort.on('message', () => {
  clearInterval(timer)
  db.close()
  parentPort.close()
})
`

/**
 * SQLite: WAL checkpoints in a worker thread with its own connection, instead of inside a commit on
 * the event loop (a checkpoint copies hundreds of pages and syncs, 10-35 ms on the bench's store: every
 * request in flight waited for it). PASSIVE checkpoints never block the writer; the writer restarts
 * the WAL after a complete one. Should the worker fail, the connection checkpoints itself again.
 * Returns the function that stops the worker.
 */
function startCheckpointer(sqlite: SqliteDatabase.Database, path: string): () => Promise<void> {
  const worker = new Worker(CHECKPOINTER, {
    eval: true,
    workerData: { path, module: createRequire(import.meta.url).resolve('better-sqlite3'), everyMs: 100 },
  })
  worker.unref()
  // The writer restarts the WAL only after a complete checkpoint: under a steady write load the worker is
  // always a few frames behind, so past this size the commit checkpoints what is left (little) itself.
  sqlite.pragma(`wal_autocheckpoint = ${WAL_PAGES}`)
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
  let stopping = false
  worker.once('error', () => undefined)
  void exited.then(() => {
    if (!stopping && sqlite.open) sqlite.pragma('wal_autocheckpoint = 1000') // SQLite's default
  })
  return async () => {
    stopping = true
    worker.ref() // until it has closed its connection
    worker.postMessage('stop')
    await exited
  }
}

/**
 * Hand-written PostgreSQL statements run as named prepared statements (parsed and planned once
 * per connection): text → name, for the first `MAX_PREPARED` texts.
 */
const PREPARED = new Map<string, string>()
const MAX_PREPARED = 500
function preparedName(text: string): void {
  if (!PREPARED.has(text) && PREPARED.size < MAX_PREPARED) PREPARED.set(text, `sgw${PREPARED.size + 1}`)
}

/**
 * Texts looked up by a sequence of keys (a trie): `root.at(a).at(b).text`. Past `max` nodes it starts
 * again empty (the texts are built again when needed).
 */
export class TextCache {
  text: string | undefined = undefined
  private readonly next = new Map<string | number, TextCache>()
  private readonly root: TextCache
  private nodes = 0
  constructor(
    private readonly max = 10_000,
    root?: TextCache,
  ) {
    this.root = root ?? this
  }
  /** The text, built by `make` the first time. */
  get(make: () => string): string {
    if (this.text === undefined) this.text = make()
    return this.text
  }
  at(key: string | number): TextCache {
    let n = this.next.get(key)
    if (n === undefined) {
      if (this.root.nodes >= this.max) this.root.clear()
      n = new TextCache(this.max, this.root)
      this.next.set(key, n)
      this.root.nodes++
    }
    return n
  }
  private clear(): void {
    this.next.clear()
    this.nodes = 0
  }
}

/** Pipelined statements' texts by the texts they are built of (see messageStatement). */
const MESSAGE_TEXTS = new TextCache()

/** Pipelined statements' texts → their names for `prepare` (another namespace than PREPARED's). */
const PIPELINED = new Map<string, string>()
/** A text's name, or null past the bound (the text is then prepared and deallocated in its message). */
function pipelineName(text: string): string | null {
  let name = PIPELINED.get(text)
  if (name === undefined && PIPELINED.size < MAX_PREPARED) {
    name = `sgwp${PIPELINED.size + 1}`
    PIPELINED.set(text, name)
  }
  return name ?? null
}

/**
 * The text of a message (see messageLane): the meta row locked, then per statement `execute name(literals)`,
 * after `prepare name as …` when the connection has not prepared it (`known`, to which the names it
 * prepares are added). A statement past the bound of remembered texts is prepared under a name of its own
 * and deallocated right after its execute (rare: texts that differ only by the number of rules in a bulk
 * create), so that the connection keeps no statement it will not run again.
 */
export function laneMessage(stmts: readonly RawStatement[], known: Set<string>): string {
  let text = 'select 1 from "sgwall_meta" where "id" = 1 for update;\n'
  for (const st of stmts) {
    const args = st.parameters.map(literal).join(', ')
    const name = pipelineName(st.sql)
    if (name === null) {
      // A name no other message uses: should this one fail before its deallocate, the statement it left
      // is deallocated when the connection's names are read again.
      const once = `${ONCE_PREFIX}${++onceCount}`
      text += `prepare ${once} as ${st.sql};\nexecute ${once}(${args});\ndeallocate ${once};\n`
      continue
    }
    if (!known.has(name)) {
      // Prepared before the executes of this message and every later one (a failed message does
      // not undo a prepare; whether it got that far is read again after it).
      text += `prepare ${name} as ${st.sql};\n`
      known.add(name)
    }
    text += `execute ${name}(${args});\n`
  }
  return text
}
const ONCE_PREFIX = 'sgwp_once'
let onceCount = 0

/**
 * A parameter as a PostgreSQL literal for `execute`: `NULL`, a finite number, a boolean, or an
 * escape string `E'…'` (backslashes and quotes doubled, which is right whatever
 * standard_conforming_strings says). A string with a NUL character (which no text column can hold)
 * or any other value is refused: the message then fails and its writes run again on their own.
 */
const NEEDS_ESCAPE = /[\\'\0]/
export function literal(v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`literal: ${v} is not a finite number`)
    return String(v)
  }
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (typeof v === 'string') {
    if (!NEEDS_ESCAPE.test(v)) return `E'${v}'`
    if (v.includes('\0')) throw new Error('literal: a string with a NUL character')
    return `E'${v.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
  }
  throw new Error(`literal: a ${typeof v} is not a statement parameter here`)
}

/**
 * PostgreSQL: the connection pipelined writes' messages go on, in pg's pipeline mode: a message is
 * written at once, without waiting for the answers to those before it, and PostgreSQL runs them one
 * after another in the order sent. Each message is a transaction of its own: `select … for update` of
 * the meta row (so that every statement after it sees what earlier writers committed), the statements —
 * `prepare`d once per connection, run with `execute name(literals…)` — in one simple-protocol message,
 * which PostgreSQL runs as one implicit transaction (an error rolls it back whole).
 */
interface MessageLane {
  /**
   * Sends one message. `handed`: it is written (every later `send` runs after it); `rows`: the first
   * row of each statement's result, or the error that rolled the message back.
   */
  send(stmts: readonly RawStatement[]): { handed: Promise<void>; rows: Promise<Record<string, unknown>[]> }
  close(): Promise<void>
}

/** The message lane's `application_name`. */
export const LANE_NAME = 'sgwall-lane'

function messageLane(url: string): MessageLane {
  let client: Promise<pg.Client> | null = null
  /** Names prepared on the connection (null: to be read again, after a failed message). */
  let known: Set<string> | null = new Set()
  /** Sends are written in call order. */
  let tail: Promise<unknown> = Promise.resolve()
  const connect = (): Promise<pg.Client> => {
    if (!client) {
      // Named for pg_stat_activity: the one connection that holds the pipelined writes' messages.
      const c = new pg.Client({
        connectionString: url,
        pipeline: true,
        application_name: LANE_NAME,
      } as pg.ClientConfig)
      const opened = c.connect().then(() => c)
      client = opened
      known = new Set()
      const drop = () => {
        if (client === opened) client = null
      }
      // A broken connection fails what is in flight (those writes run again on their own); the next
      // message opens a new one.
      c.on('error', drop)
      c.on('end', drop)
      opened.catch(drop)
    }
    return client
  }
  return {
    send(stmts) {
      const written = tail.then(async () => {
        const c = await connect()
        if (!known) {
          const { rows } = await c.query<{ name: string }>('select name from pg_prepared_statements')
          for (const { name } of rows) if (name.startsWith(ONCE_PREFIX)) await c.query(`deallocate ${name}`)
          known = new Set(rows.map((r) => r.name).filter((n) => !n.startsWith(ONCE_PREFIX)))
        }
        const text = laneMessage(stmts, known)
        return { result: c.query(text) as unknown as Promise<pg.QueryResult[]> }
      })
      tail = written.catch(() => undefined)
      const rows = written.then(async ({ result }) => {
        let res: pg.QueryResult[]
        try {
          res = await result
        } catch (err) {
          known = null
          throw err
        }
        // the lock, then the prepares, executes and deallocates
        const rows = res
          .slice(1)
          .filter((r) => r.command !== 'PREPARE' && r.command !== 'DEALLOCATE')
          .map((r) => r.rows[0] as Record<string, unknown>)
        if (rows.length !== stmts.length)
          throw new Error(`pipeline: ${rows.length} results for ${stmts.length} statements`)
        return rows
      })
      return { handed: written.then(() => undefined), rows }
    },
    async close() {
      await tail
      const c = client
      client = null
      if (c) await (await c.catch(() => null))?.end()
    },
  }
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
      const name = bare ? undefined : PREPARED.get(text)
      if (name) return client.query({ name, text, values: values as unknown[] })
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
