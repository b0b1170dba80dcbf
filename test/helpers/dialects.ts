/**
 * Which store dialects a test runs on: STORE_DIALECTS=sqlite,postgres (default both).
 * PostgreSQL needs SGWALL_TEST_PG_URL (`source scripts/start-postgres.sh`). Without it the
 * PostgreSQL cases are skipped with a printed reason, except in CI (CI=true), where a
 * missing database is an error.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'

export interface DialectCase {
  readonly name: 'sqlite' | 'postgres'
  /** null: skipped (reason printed). */
  readonly available: boolean
}

export function storeDialects(): DialectCase[] {
  const wanted = (process.env.STORE_DIALECTS ?? 'sqlite,postgres').split(',').map((s) => s.trim())
  const out: DialectCase[] = []
  if (wanted.includes('sqlite')) out.push({ name: 'sqlite', available: true })
  if (wanted.includes('postgres')) {
    const url = process.env.SGWALL_TEST_PG_URL
    if (!url) {
      if (process.env.CI === 'true') {
        throw new Error('CI=true but SGWALL_TEST_PG_URL is not set: run `source scripts/start-postgres.sh` first')
      }
      console.warn('skipping PostgreSQL store tests: SGWALL_TEST_PG_URL is not set (source scripts/start-postgres.sh)')
      out.push({ name: 'postgres', available: false })
    } else out.push({ name: 'postgres', available: true })
  }
  return out
}

/** A fresh database URL for one test file: `:memory:` or a new PostgreSQL database. */
export async function freshDatabaseUrl(
  dialect: 'sqlite' | 'postgres',
): Promise<{ url: string; drop(): Promise<void> }> {
  if (dialect === 'sqlite') return { url: ':memory:', drop: async () => {} }
  const base = process.env.SGWALL_TEST_PG_URL
  if (!base) throw new Error('SGWALL_TEST_PG_URL is not set')
  const name = `sgwall_t_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const u = new URL(base)
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: base })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
    },
  }
}

/** Records the text of every query PostgreSQL clients send until `restore()`. */
export function spyQueries(): { sent: string[]; restore(): void } {
  const sent: string[] = []
  const original = pg.Client.prototype.query
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0]
    sent.push(typeof q === 'string' ? q : String((q as { text?: string }).text))
    return (original as (...a: unknown[]) => unknown).apply(this, args)
  } as typeof original
  return {
    sent,
    restore() {
      pg.Client.prototype.query = original
    },
  }
}
