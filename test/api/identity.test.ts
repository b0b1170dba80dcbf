/** Built-in Keystone v3 and external-Keystone token validation, over real HTTP on loopback. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningServer, startServer } from '../../src/api/server.js'
import { passwordLogin } from './helpers.js'

const json = async (res: Response) => {
  const t = await res.text()
  return t ? JSON.parse(t) : null
}

describe('built-in identity', () => {
  let s: RunningServer
  const password = 'id-test-secret'
  const login = (user: string, pass: string, project: string) => passwordLogin(s.url, user, pass, project)
  beforeAll(async () => {
    s = await startServer({ db: ':memory:', auth: 'builtin', port: 0, adminPassword: password })
  })
  afterAll(async () => s?.close())

  it('refuses to start without an admin password outside dev mode', async () => {
    await expect(startServer({ db: ':memory:', auth: 'builtin', port: 0 })).rejects.toThrow(/SGWALL_ADMIN_PASSWORD/)
    const dev = await startServer({ db: ':memory:', auth: 'builtin', port: 0, dev: true })
    expect(dev.adminPassword).toMatch(/^[A-Za-z0-9_-]{16}$/)
    await dev.close()
  })

  it('serves version discovery', async () => {
    const v = await json(await fetch(`${s.url}/identity/v3`))
    expect(v.version).toMatchObject({ id: 'v3.14', status: 'stable' })
    expect(v.version.links[0].href).toBe(`${s.url}/identity/v3/`)
    const all = await json(await fetch(`${s.url}/identity`))
    expect(all.versions.values[0].id).toBe('v3.14')
  })

  it('issues a token with a network endpoint pointing at this server, and validates it', async () => {
    const res = await login('admin', password, 'admin')
    expect(res.status).toBe(201)
    const token = res.headers.get('x-subject-token')!
    const body = await json(res)
    const network = body.token.catalog.find((c: { type: string }) => c.type === 'network')
    expect(network.endpoints.map((e: { url: string }) => e.url)).toContain(s.url)
    expect(body.token.roles.map((r: { name: string }) => r.name)).toContain('admin')
    const check = await fetch(`${s.url}/identity/v3/auth/tokens`, {
      headers: { 'x-auth-token': token, 'x-subject-token': token },
    })
    expect(check.status).toBe(200)
    expect((await json(check)).token.project.name).toBe('admin')
    const bogus = await fetch(`${s.url}/identity/v3/auth/tokens`, {
      headers: { 'x-auth-token': token, 'x-subject-token': 'nope' },
    })
    expect(bogus.status).toBe(404)
    expect((await login('admin', 'wrong', 'admin')).status).toBe(401)
  })

  it('answers 401 (Keystone-style body) without a valid token; GET / needs none', async () => {
    const r = await fetch(`${s.url}/v2.0/security-groups`, { headers: { 'x-auth-token': 'garbage' } })
    expect(r.status).toBe(401)
    expect(r.headers.get('www-authenticate')).toMatch(/^Keystone uri=/)
    expect(await json(r)).toEqual({
      error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' },
    })
    expect((await fetch(`${s.url}/`)).status).toBe(200)
  })

  it('supports the calls tempest dynamic credentials make, and isolates the new project', async () => {
    const adminToken = (await login('admin', password, 'admin')).headers.get('x-subject-token')!
    const call = (method: string, path: string, body?: unknown, token = adminToken) =>
      fetch(`${s.url}/identity/v3${path}`, {
        method,
        headers: { 'x-auth-token': token, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      })
    const project = (
      await json(await call('POST', '/projects', { project: { name: 'tempest-p', domain_id: 'default' } }))
    ).project
    const user = (
      await json(await call('POST', '/users', { user: { name: 'tempest-u', password: 'pw', project_id: project.id } }))
    ).user
    const member = (await json(await call('GET', '/roles?name=member'))).roles[0]
    expect((await call('PUT', `/projects/${project.id}/users/${user.id}/roles/${member.id}`)).status).toBe(204)
    expect((await call('HEAD', `/projects/${project.id}/users/${user.id}/roles/${member.id}`)).status).toBe(204)
    const ra = await json(await call('GET', `/role_assignments?user.id=${user.id}&scope.project.id=${project.id}`))
    expect(ra.role_assignments).toEqual([
      { role: { id: member.id }, user: { id: user.id }, scope: { project: { id: project.id } }, links: {} },
    ])
    const userRes = await login('tempest-u', 'pw', 'tempest-p')
    expect(userRes.status).toBe(201)
    const userToken = userRes.headers.get('x-subject-token')!
    expect((await call('GET', '/projects', undefined, userToken)).status).toBe(403)
    const net = (tok: string, path: string, init: RequestInit = {}) =>
      fetch(`${s.url}/v2.0${path}`, { ...init, headers: { 'x-auth-token': tok, 'content-type': 'application/json' } })
    const g = await json(
      await net(adminToken, '/security-groups', {
        method: 'POST',
        body: JSON.stringify({ security_group: { name: 'admins' } }),
      }),
    )
    const mine = await json(await net(userToken, '/security-groups'))
    expect(mine.security_groups.map((x: { name: string; project_id: string }) => [x.name, x.project_id])).toEqual([
      ['default', project.id],
    ])
    expect((await net(userToken, `/security-groups/${g.security_group.id}`)).status).toBe(404)
    const own = await net(userToken, '/security-groups', {
      method: 'POST',
      body: JSON.stringify({ security_group: { name: 'u' } }),
    })
    expect((await json(own)).security_group.project_id).toBe(project.id)
    expect((await call('DELETE', `/users/${user.id}`)).status).toBe(204)
    expect((await net(userToken, '/security-groups')).status).toBe(401)
    expect((await call('DELETE', `/projects/${project.id}`)).status).toBe(204)
  })

  it('a second server validates tokens against this one with --keystone-url (service user)', async () => {
    const ext = await startServer({
      db: ':memory:',
      auth: 'keystone',
      port: 0,
      keystoneUrl: `${s.url}/identity/v3`,
      keystoneUser: 'admin',
      keystonePassword: password,
      keystoneProject: 'admin',
    })
    try {
      const token = (await login('admin', password, 'admin')).headers.get('x-subject-token')!
      const ok = await fetch(`${ext.url}/v2.0/security-groups`, { headers: { 'x-auth-token': token } })
      expect(ok.status).toBe(200)
      const bad = await fetch(`${ext.url}/v2.0/security-groups`, { headers: { 'x-auth-token': 'forged' } })
      expect(bad.status).toBe(401)
      expect(bad.headers.get('www-authenticate')).toBe(`Keystone uri="${s.url}/identity/v3"`)
    } finally {
      await ext.close()
    }
  })
})
