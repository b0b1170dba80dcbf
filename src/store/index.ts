/**
 * The store: Kysely schema, migrations and the write path (SQLite by default,
 * PostgreSQL for many hosts). What it must not do: decide Neutron semantics (that is
 * src/api) or touch the kernel. Design goals: every API write atomic (its own savepoint in a
 * transaction shared by the writes that queued up meanwhile), a change log row for every change in
 * that same transaction with the write's revision, revisions committed in order.
 */
export {
  type ChangeInput,
  type DeferrableQuery,
  type DialectName,
  type GuardedCheck,
  isoSeconds,
  LANE_NAME,
  openStore,
  type RawStatement,
  type Store,
  type StoreOptions,
  TextCache,
  type WriteContext,
  type WriteOptions,
} from './db.js'
export type { Database } from './schema.js'
