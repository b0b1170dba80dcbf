/**
 * Built-in identity tokens live in the store: they survive a server restart and every server
 * process on one database accepts them; revocation (token, user) reaches the other processes.
 * Real HTTP on loopback, SQLite file and PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningServer, startServer } from '../../src/api/server.js'
import { freshDatabaseUrl, storeDialects } from '../helpers/dialects.js'
import { passwordLogin } from './helpers.js'

const password = 'tok-test-secret'

const login = passwordLogin

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies of the identity API
const readJson = async (r: Response): Promise<any> => r.json()

const groups = (base: string, token: string) =>
  fetch(`${base}/v2.0/security-groups`, { headers: { 'x-auth-token': token } }).then((r) => r.status)

describe.each(storeDialects())('built-in identity tokens in the store ($name)', ({ name, available }) => {
  let dir = ''
  let url = ''
  let drop = async () => {}
  const servers: RunningServer[] = []
  const start = async () => {
    const s = await startServer({ db: url, auth: 'builtin', port: 0, adminPassword: password, tokenCacheMs: 0 })
    servers.push(s)
    return s
  }
  beforeAll(async () => {
    if (!available) return
    if (name === 'sqlite') {
      dir = mkdtempSync(join(tmpdir(), 'sgwall-tokens-'))
      url = join(dir, 'sgwall.db')
    } else ({ url, drop } = await freshDatabaseUrl('postgres'))
  })
  afterAll(async () => {
    for (const s of servers) await s.close().catch(() => {})
    await drop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it.skipIf(!available)(
    'a token issued by one process works on another and after a restart; revocation reaches both',
    async () => {
      const a = await start()
      const b = await start()
      const res = await login(a.url, 'admin', password, 'admin')
      expect(res.status).toBe(201)
      const token = res.headers.get('x-subject-token')!
      expect(await groups(a.url, token)).toBe(200)
      expect(await groups(b.url, token)).toBe(200)
      // B validates A's token through the identity API too.
      const check = await fetch(`${b.url}/identity/v3/auth/tokens`, {
        headers: { 'x-auth-token': token, 'x-subject-token': token },
      })
      expect(check.status).toBe(200)
      expect((await readJson(check)).token.user.name).toBe('admin')

      // A restarts: the token still works there.
      await a.close()
      const a2 = await start()
      expect(await groups(a2.url, token)).toBe(200)

      // The database holds a hash, never the token itself.
      const rows = await a2.store.db.selectFrom('identity_tokens').select(['id_hash', 'body']).execute()
      expect(rows.length).toBeGreaterThan(0)
      for (const r of rows) {
        expect(r.id_hash).not.toBe(token)
        expect(r.body).not.toContain(token)
      }

      // Revoked through A2: refused by A2 and by B.
      const second = (await login(b.url, 'admin', password, 'admin')).headers.get('x-subject-token')!
      const del = await fetch(`${a2.url}/identity/v3/auth/tokens`, {
        method: 'DELETE',
        headers: { 'x-auth-token': second, 'x-subject-token': token },
      })
      expect(del.status).toBe(204)
      expect(await groups(a2.url, token)).toBe(401)
      expect(await groups(b.url, token)).toBe(401)
      expect(await groups(b.url, second)).toBe(200)
    },
  )

  it.skipIf(!available)('deleting a user on one process ends its tokens on the other', async () => {
    const [a, b] = [servers.at(-2)!, servers.at(-1)!]
    const admin = (await login(a.url, 'admin', password, 'admin')).headers.get('x-subject-token')!
    const call = (base: string, method: string, path: string, body?: unknown) =>
      fetch(`${base}/identity/v3${path}`, {
        method,
        headers: { 'x-auth-token': admin, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      })
    const project = (
      await readJson(await call(a.url, 'POST', '/projects', { project: { name: 'p-tok', domain_id: 'default' } }))
    ).project
    const user = (
      await readJson(
        await call(a.url, 'POST', '/users', { user: { name: 'u-tok', password: 'pw-tok', domain_id: 'default' } }),
      )
    ).user
    const roles = (await readJson(await call(a.url, 'GET', '/roles?name=member'))).roles
    expect((await call(a.url, 'PUT', `/projects/${project.id}/users/${user.id}/roles/${roles[0].id}`)).status).toBe(204)
    const token = (await login(b.url, 'u-tok', 'pw-tok', 'p-tok')).headers.get('x-subject-token')!
    expect(await groups(a.url, token)).toBe(200)
    expect((await call(a.url, 'DELETE', `/users/${user.id}`)).status).toBe(204)
    expect(await groups(b.url, token)).toBe(401)
    expect(await groups(a.url, token)).toBe(401)
  })

  it.skipIf(!available)('malformed and unknown tokens are refused without a crash', async () => {
    const b = servers.at(-1)!
    for (const t of ['', 'x', 'f'.repeat(48), 'F'.repeat(48), `${'a'.repeat(47)}'`, 'a'.repeat(4000)])
      expect(await groups(b.url, t)).toBe(401)
  })
})
