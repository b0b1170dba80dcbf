/**
 * Identity. `builtinIdentity()`: a minimal Keystone v3 served under `/identity/v3` (version
 * discovery, password auth with X-Subject-Token and a catalog whose `network` endpoint is this
 * server, token validation, and the project/user/role/role-assignment calls tempest's dynamic
 * credentials make). `keystoneAuth()`: validates tokens against an external Keystone as
 * keystonemiddleware does. Tokens of the built-in identity are kept in the store (a hash of
 * each), so they survive a restart and every server process on one database accepts them; each
 * process remembers a token it has seen for `tokenCacheMs` (a revocation made through another
 * process takes effect there within that time, as with keystonemiddleware's cache).
 */
import { createHash, randomBytes, randomUUID, scryptSync, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Store } from '../store/index.js'
import type { Authenticator } from './app.js'
import type { RequestContext } from './context.js'

const DOMAIN = { id: 'default', name: 'Default' }
const TOKEN_TTL_MS = 12 * 3600 * 1000

interface Token {
  readonly userId: string
  readonly userName: string
  readonly project: { id: string; name: string } | null
  readonly roles: { id: string; name: string }[]
  readonly expires: number
  readonly issued: number
  readonly audit: string
}

export function hashPassword(password: string): string {
  const salt = randomBytes(16)
  return `scrypt$${salt.toString('hex')}$${scryptSync(password, salt, 32).toString('hex')}`
}

export function verifyPassword(password: string, stored: string): boolean {
  const [kind, salt, hash] = stored.split('$')
  if (kind !== 'scrypt' || !salt || !hash) return false
  const got = scryptSync(password, Buffer.from(salt, 'hex'), 32)
  const want = Buffer.from(hash, 'hex')
  return got.length === want.length && timingSafeEqual(got, want)
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '.000000Z')
const hex = () => randomUUID().replaceAll('-', '')

function keystoneError(reply: FastifyReply, code: number, title: string, message: string) {
  return reply.code(code).send({ error: { code, title, message } })
}

export interface BuiltinIdentityOptions {
  readonly adminPassword: string
  readonly adminUser?: string
  readonly adminProject?: string
  readonly region?: string
  /** How long a process trusts a token it has already looked up (ms; default 5000). */
  readonly tokenCacheMs?: number
}

/** Creates the admin user/project/roles if missing (idempotent) and returns the authenticator. */
export async function builtinIdentity(store: Store, opts: BuiltinIdentityOptions): Promise<Authenticator> {
  const db = store.db
  const region = opts.region ?? 'RegionOne'
  const adminUser = opts.adminUser ?? 'admin'
  const adminProject = opts.adminProject ?? 'admin'
  await store.write(async (w) => {
    const roleIds: Record<string, string> = {}
    for (const name of ['admin', 'member', 'reader', 'service']) {
      const r = await w.tx.selectFrom('identity_roles').select('id').where('name', '=', name).executeTakeFirst()
      roleIds[name] = r?.id ?? hex()
      if (!r) await w.tx.insertInto('identity_roles').values({ id: roleIds[name]!, name }).execute()
    }
    let project = await w.tx
      .selectFrom('identity_projects')
      .select('id')
      .where('name', '=', adminProject)
      .executeTakeFirst()
    if (!project) {
      project = { id: hex() }
      await w.tx
        .insertInto('identity_projects')
        .values({
          id: project.id,
          name: adminProject,
          domain_id: DOMAIN.id,
          description: 'Bootstrap project',
          enabled: 1,
        })
        .execute()
    }
    const user = await w.tx.selectFrom('identity_users').select('id').where('name', '=', adminUser).executeTakeFirst()
    const userId = user?.id ?? hex()
    if (!user)
      await w.tx
        .insertInto('identity_users')
        .values({
          id: userId,
          name: adminUser,
          domain_id: DOMAIN.id,
          password_hash: hashPassword(opts.adminPassword),
          default_project_id: project.id,
          enabled: 1,
        })
        .execute()
    else
      await w.tx
        .updateTable('identity_users')
        .set({ password_hash: hashPassword(opts.adminPassword) })
        .where('id', '=', userId)
        .execute()
    for (const role of ['admin', 'member', 'reader'])
      await w.tx
        .insertInto('identity_assignments')
        .values({ user_id: userId, project_id: project.id, role_id: roleIds[role]! })
        .onConflict((oc) => oc.doNothing())
        .execute()
  })

  const tokens = tokenStore(store, opts.tokenCacheMs ?? 5000)

  const rolesOf = async (userId: string, projectId: string) =>
    db
      .selectFrom('identity_assignments')
      .innerJoin('identity_roles', 'identity_roles.id', 'identity_assignments.role_id')
      .select(['identity_roles.id', 'identity_roles.name'])
      .where('identity_assignments.user_id', '=', userId)
      .where('identity_assignments.project_id', '=', projectId)
      .execute()

  const baseUrl = (req: FastifyRequest) =>
    `${(req.headers['x-forwarded-proto'] as string | undefined) ?? req.protocol}://${req.headers.host ?? 'localhost'}`

  const tokenBody = (t: Token, req: FastifyRequest, withCatalog: boolean) => {
    const base = baseUrl(req)
    const body: Record<string, unknown> = {
      methods: ['password'],
      user: { id: t.userId, name: t.userName, domain: DOMAIN, password_expires_at: null },
      audit_ids: [t.audit],
      expires_at: iso(t.expires),
      issued_at: iso(t.issued),
    }
    if (t.project) {
      body.project = { id: t.project.id, name: t.project.name, domain: DOMAIN }
      body.roles = t.roles
      body.is_domain = false
    }
    if (withCatalog && t.project)
      body.catalog = [
        {
          type: 'network',
          name: 'neutron',
          id: 'network-service',
          endpoints: ['public', 'internal', 'admin'].map((iface) => ({
            id: `network-${iface}`,
            interface: iface,
            region,
            region_id: region,
            url: base,
          })),
        },
        {
          type: 'identity',
          name: 'keystone',
          id: 'identity-service',
          endpoints: ['public', 'internal', 'admin'].map((iface) => ({
            id: `identity-${iface}`,
            interface: iface,
            region,
            region_id: region,
            url: `${base}/identity`,
          })),
        },
      ]
    return { token: body }
  }

  const versionV3 = (req: FastifyRequest) => ({
    id: 'v3.14',
    status: 'stable',
    updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${baseUrl(req)}/identity/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  })

  const json = (req: FastifyRequest): Record<string, unknown> => {
    const raw = req.body
    if (typeof raw !== 'string' || raw === '') return {}
    try {
      const v = JSON.parse(raw)
      return v && typeof v === 'object' && !Array.isArray(v) ? v : {}
    } catch {
      return {}
    }
  }

  const findProject = async (ref: unknown) => {
    if (!ref || typeof ref !== 'object') return undefined
    const r = ref as { id?: unknown; name?: unknown }
    if (typeof r.id === 'string')
      return db.selectFrom('identity_projects').selectAll().where('id', '=', r.id).executeTakeFirst()
    if (typeof r.name === 'string')
      return db.selectFrom('identity_projects').selectAll().where('name', '=', r.name).executeTakeFirst()
    return undefined
  }

  const register = (app: FastifyInstance) => {
    const requireAdmin = async (req: FastifyRequest, reply: FastifyReply): Promise<Token | null> => {
      const t = await tokens.live(req.headers['x-auth-token'] as string | undefined)
      if (!t) {
        void keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
        return null
      }
      if (!t.roles.some((r) => r.name === 'admin')) {
        void keystoneError(reply, 403, 'Forbidden', 'You are not authorized to perform the requested action.')
        return null
      }
      return t
    }

    app.get('/identity', async (req) => ({ versions: { values: [versionV3(req)] } }))
    app.get('/identity/v3', async (req) => ({ version: versionV3(req) }))

    app.post('/identity/v3/auth/tokens', async (req, reply) => {
      const body = json(req)
      const auth = (body.auth ?? {}) as Record<string, unknown>
      const identity = (auth.identity ?? {}) as Record<string, unknown>
      const methods = Array.isArray(identity.methods) ? identity.methods : []
      let userRow:
        | { id: string; name: string; password_hash: string; default_project_id: string | null; enabled: number }
        | undefined
      if (methods.includes('password')) {
        const u = ((identity.password ?? {}) as Record<string, unknown>).user as Record<string, unknown> | undefined
        const password = typeof u?.password === 'string' ? u.password : ''
        if (typeof u?.id === 'string')
          userRow = await db.selectFrom('identity_users').selectAll().where('id', '=', u.id).executeTakeFirst()
        else if (typeof u?.name === 'string')
          userRow = await db.selectFrom('identity_users').selectAll().where('name', '=', u.name).executeTakeFirst()
        if (!userRow?.enabled || !verifyPassword(password, userRow.password_hash))
          return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
      } else if (methods.includes('token')) {
        const t = await tokens.live(((identity.token ?? {}) as Record<string, unknown>).id as string | undefined)
        if (!t) return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
        userRow = await db.selectFrom('identity_users').selectAll().where('id', '=', t.userId).executeTakeFirst()
        if (!userRow)
          return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
      } else return keystoneError(reply, 400, 'Bad Request', 'Expecting to find identity methods in auth.')
      const scope = auth.scope as Record<string, unknown> | undefined
      let project: { id: string; name: string } | null = null
      if (scope?.project) {
        const p = await findProject(scope.project)
        if (!p) return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
        project = { id: p.id, name: p.name }
      } else if (!scope && userRow.default_project_id) {
        const p = await findProject({ id: userRow.default_project_id })
        if (p) project = { id: p.id, name: p.name }
      }
      const roles = project ? await rolesOf(userRow.id, project.id) : []
      if (project && roles.length === 0)
        return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
      const now = Date.now()
      const token: Token = {
        userId: userRow.id,
        userName: userRow.name,
        project,
        roles,
        issued: now,
        expires: now + TOKEN_TTL_MS,
        audit: randomBytes(8).toString('hex'),
      }
      const id = await tokens.issue(token)
      reply.code(201).header('X-Subject-Token', id)
      return tokenBody(token, req, !(req.query as Record<string, unknown>).nocatalog)
    })

    const validate = async (req: FastifyRequest, reply: FastifyReply, head: boolean) => {
      const caller = await tokens.live(req.headers['x-auth-token'] as string | undefined)
      if (!caller)
        return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
      const subjectId = req.headers['x-subject-token'] as string | undefined
      const subject = await tokens.live(subjectId)
      if (!subject) return keystoneError(reply, 404, 'Not Found', `Could not find token: ${subjectId ?? ''}.`)
      if (head) return reply.code(200).send()
      reply.header('X-Subject-Token', subjectId)
      return tokenBody(subject, req, !(req.query as Record<string, unknown>).nocatalog)
    }
    app.get('/identity/v3/auth/tokens', { exposeHeadRoute: false }, (req, reply) => validate(req, reply, false))
    app.head('/identity/v3/auth/tokens', (req, reply) => validate(req, reply, true))
    app.delete('/identity/v3/auth/tokens', async (req, reply) => {
      if (!(await tokens.live(req.headers['x-auth-token'] as string | undefined)))
        return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
      await tokens.revoke(req.headers['x-subject-token'] as string | undefined)
      return reply.code(204).send()
    })
    app.get('/identity/v3/auth/projects', async (req, reply) => {
      const t = await tokens.live(req.headers['x-auth-token'] as string | undefined)
      if (!t) return keystoneError(reply, 401, 'Unauthorized', 'The request you have made requires authentication.')
      const ids = await db
        .selectFrom('identity_assignments')
        .select('project_id')
        .distinct()
        .where('user_id', '=', t.userId)
        .execute()
      const rows = ids.length
        ? await db
            .selectFrom('identity_projects')
            .selectAll()
            .where(
              'id',
              'in',
              ids.map((r) => r.project_id),
            )
            .execute()
        : []
      return { projects: rows.map(projectWire) }
    })

    const projectWire = (p: { id: string; name: string; domain_id: string; description: string; enabled: number }) => ({
      id: p.id,
      name: p.name,
      domain_id: p.domain_id,
      description: p.description,
      enabled: p.enabled !== 0,
      is_domain: false,
      parent_id: p.domain_id,
      tags: [],
      links: {},
    })
    const userWire = (u: {
      id: string
      name: string
      domain_id: string
      default_project_id: string | null
      enabled: number
    }) => ({
      id: u.id,
      name: u.name,
      domain_id: u.domain_id,
      enabled: u.enabled !== 0,
      default_project_id: u.default_project_id ?? undefined,
      password_expires_at: null,
      options: {},
      links: {},
    })
    const qs = (req: FastifyRequest) => req.query as Record<string, string | undefined>

    app.get('/identity/v3/domains', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      return { domains: [{ ...DOMAIN, enabled: true, description: 'The default domain', links: {} }] }
    })
    app.get('/identity/v3/domains/:id', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const id = (req.params as { id: string }).id
      if (id !== DOMAIN.id) return keystoneError(reply, 404, 'Not Found', `Could not find domain: ${id}.`)
      return { domain: { ...DOMAIN, enabled: true, description: 'The default domain', links: {} } }
    })

    app.get('/identity/v3/projects', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      let q = db.selectFrom('identity_projects').selectAll()
      if (qs(req).name) q = q.where('name', '=', qs(req).name!)
      return { projects: (await q.execute()).map(projectWire) }
    })
    app.post('/identity/v3/projects', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const p = (json(req).project ?? {}) as Record<string, unknown>
      if (typeof p.name !== 'string' || !p.name)
        return keystoneError(reply, 400, 'Bad Request', "'name' is a required property")
      if (await db.selectFrom('identity_projects').select('id').where('name', '=', p.name).executeTakeFirst())
        return keystoneError(
          reply,
          409,
          'Conflict',
          `Conflict occurred attempting to store project - Duplicate entry found with name ${p.name}.`,
        )
      const row = {
        id: hex(),
        name: p.name,
        domain_id: DOMAIN.id,
        description: typeof p.description === 'string' ? p.description : '',
        enabled: p.enabled === false ? 0 : 1,
      }
      await store.write(async (w) => {
        await w.tx.insertInto('identity_projects').values(row).execute()
      })
      reply.code(201)
      return { project: projectWire(row) }
    })
    app.get('/identity/v3/projects/:id', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const id = (req.params as { id: string }).id
      const p = await db.selectFrom('identity_projects').selectAll().where('id', '=', id).executeTakeFirst()
      if (!p) return keystoneError(reply, 404, 'Not Found', `Could not find project: ${id}.`)
      return { project: projectWire(p) }
    })
    app.delete('/identity/v3/projects/:id', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const id = (req.params as { id: string }).id
      const gone = await store.write(async (w) => {
        const r = await w.tx.deleteFrom('identity_projects').where('id', '=', id).executeTakeFirst()
        await w.tx.deleteFrom('identity_assignments').where('project_id', '=', id).execute()
        return Number(r.numDeletedRows) > 0
      })
      if (!gone) return keystoneError(reply, 404, 'Not Found', `Could not find project: ${id}.`)
      return reply.code(204).send()
    })

    app.get('/identity/v3/users', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      let q = db.selectFrom('identity_users').selectAll()
      if (qs(req).name) q = q.where('name', '=', qs(req).name!)
      return { users: (await q.execute()).map(userWire) }
    })
    app.post('/identity/v3/users', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const u = (json(req).user ?? {}) as Record<string, unknown>
      if (typeof u.name !== 'string' || !u.name)
        return keystoneError(reply, 400, 'Bad Request', "'name' is a required property")
      if (await db.selectFrom('identity_users').select('id').where('name', '=', u.name).executeTakeFirst())
        return keystoneError(
          reply,
          409,
          'Conflict',
          `Conflict occurred attempting to store user - Duplicate entry found with name ${u.name}.`,
        )
      const row = {
        id: hex(),
        name: u.name,
        domain_id: DOMAIN.id,
        password_hash: hashPassword(typeof u.password === 'string' ? u.password : randomBytes(16).toString('hex')),
        default_project_id:
          typeof u.default_project_id === 'string'
            ? u.default_project_id
            : typeof u.project_id === 'string'
              ? u.project_id
              : null,
        enabled: u.enabled === false ? 0 : 1,
      }
      await store.write(async (w) => {
        await w.tx.insertInto('identity_users').values(row).execute()
      })
      reply.code(201)
      return { user: userWire(row) }
    })
    app.get('/identity/v3/users/:id', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const id = (req.params as { id: string }).id
      const u = await db.selectFrom('identity_users').selectAll().where('id', '=', id).executeTakeFirst()
      if (!u) return keystoneError(reply, 404, 'Not Found', `Could not find user: ${id}.`)
      return { user: userWire(u) }
    })
    app.delete('/identity/v3/users/:id', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const id = (req.params as { id: string }).id
      const gone = await store.write(async (w) => {
        const r = await w.tx.deleteFrom('identity_users').where('id', '=', id).executeTakeFirst()
        await w.tx.deleteFrom('identity_assignments').where('user_id', '=', id).execute()
        return Number(r.numDeletedRows) > 0
      })
      await tokens.revokeUser(id)
      if (!gone) return keystoneError(reply, 404, 'Not Found', `Could not find user: ${id}.`)
      return reply.code(204).send()
    })

    app.get('/identity/v3/roles', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      let q = db.selectFrom('identity_roles').selectAll()
      if (qs(req).name) q = q.where('name', '=', qs(req).name!)
      return { roles: (await q.execute()).map((r) => ({ ...r, domain_id: null, links: {} })) }
    })
    app.post('/identity/v3/roles', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const r = (json(req).role ?? {}) as Record<string, unknown>
      if (typeof r.name !== 'string' || !r.name)
        return keystoneError(reply, 400, 'Bad Request', "'name' is a required property")
      const existing = await db.selectFrom('identity_roles').select('id').where('name', '=', r.name).executeTakeFirst()
      if (existing) return keystoneError(reply, 409, 'Conflict', `Duplicate entry found with name ${r.name}.`)
      const row = { id: hex(), name: r.name }
      await store.write(async (w) => {
        await w.tx.insertInto('identity_roles').values(row).execute()
      })
      reply.code(201)
      return { role: { ...row, domain_id: null, links: {} } }
    })

    const assignment = async (req: FastifyRequest, reply: FastifyReply, op: 'put' | 'head' | 'delete') => {
      if (!(await requireAdmin(req, reply))) return reply
      const { p, u, r } = req.params as { p: string; u: string; r: string }
      const [proj, user, role] = await Promise.all([
        db.selectFrom('identity_projects').select('id').where('id', '=', p).executeTakeFirst(),
        db.selectFrom('identity_users').select('id').where('id', '=', u).executeTakeFirst(),
        db.selectFrom('identity_roles').select('id').where('id', '=', r).executeTakeFirst(),
      ])
      if (!proj || !user || !role)
        return keystoneError(reply, 404, 'Not Found', 'Could not find project, user or role.')
      if (op === 'put')
        await store.write(async (w) => {
          await w.tx
            .insertInto('identity_assignments')
            .values({ project_id: p, user_id: u, role_id: r })
            .onConflict((oc) => oc.doNothing())
            .execute()
        })
      else if (op === 'delete')
        await store.write(async (w) => {
          await w.tx
            .deleteFrom('identity_assignments')
            .where('project_id', '=', p)
            .where('user_id', '=', u)
            .where('role_id', '=', r)
            .execute()
        })
      else {
        const has = await db
          .selectFrom('identity_assignments')
          .select('role_id')
          .where('project_id', '=', p)
          .where('user_id', '=', u)
          .where('role_id', '=', r)
          .executeTakeFirst()
        if (!has) return keystoneError(reply, 404, 'Not Found', 'Could not find role assignment.')
      }
      return reply.code(204).send()
    }
    app.put('/identity/v3/projects/:p/users/:u/roles/:r', (req, reply) => assignment(req, reply, 'put'))
    app.head('/identity/v3/projects/:p/users/:u/roles/:r', (req, reply) => assignment(req, reply, 'head'))
    app.delete('/identity/v3/projects/:p/users/:u/roles/:r', (req, reply) => assignment(req, reply, 'delete'))
    app.get('/identity/v3/projects/:p/users/:u/roles', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const { p, u } = req.params as { p: string; u: string }
      return { roles: (await rolesOf(u, p)).map((r) => ({ ...r, domain_id: null, links: {} })) }
    })
    app.get('/identity/v3/role_assignments', async (req, reply) => {
      if (!(await requireAdmin(req, reply))) return reply
      const q = qs(req)
      let sel = db.selectFrom('identity_assignments').selectAll()
      if (q['user.id']) sel = sel.where('user_id', '=', q['user.id'])
      if (q['scope.project.id']) sel = sel.where('project_id', '=', q['scope.project.id'])
      if (q['role.id']) sel = sel.where('role_id', '=', q['role.id'])
      const rows = await sel.execute()
      return {
        role_assignments: rows.map((a) => ({
          role: { id: a.role_id },
          user: { id: a.user_id },
          scope: { project: { id: a.project_id } },
          links: {},
        })),
      }
    })
  }

  return {
    realm: '/identity/v3',
    register,
    async authenticate(req): Promise<RequestContext | null> {
      const t = await tokens.live(req.headers['x-auth-token'] as string | undefined)
      if (!t?.project) return null
      const roles = t.roles.map((r) => r.name.toLowerCase())
      return { projectId: t.project.id, userId: t.userId, isAdmin: roles.includes('admin'), roles }
    },
  }
}

// ------------------------------------------------------------------ token store

const hashToken = (id: string) => createHash('sha256').update(id).digest('hex')

/** Tokens of the built-in identity: rows in `identity_tokens`, with a short per-process cache. */
function tokenStore(store: Store, cacheMs: number) {
  const db = store.db
  const cache = new Map<string, { token: Token; checked: number }>()
  let issued = 0
  return {
    async issue(token: Token): Promise<string> {
      const id = randomBytes(24).toString('hex')
      await db
        .insertInto('identity_tokens')
        .values({ id_hash: hashToken(id), user_id: token.userId, expires: token.expires, body: JSON.stringify(token) })
        .execute()
      cache.set(id, { token, checked: Date.now() })
      // Expired rows are pruned now and then (a token past its expiry is refused anyway).
      if (++issued % 100 === 1) await db.deleteFrom('identity_tokens').where('expires', '<', Date.now()).execute()
      return id
    },
    async live(id: string | undefined): Promise<Token | null> {
      // Our ids are 48 hex digits: anything else is not worth a lookup.
      if (!id || !/^[0-9a-f]{48}$/.test(id)) return null
      const now = Date.now()
      const hit = cache.get(id)
      if (hit && now - hit.checked < cacheMs) {
        if (hit.token.expires >= now) return hit.token
        cache.delete(id)
        return null
      }
      const row = await db
        .selectFrom('identity_tokens')
        .select(['body', 'expires'])
        .where('id_hash', '=', hashToken(id))
        .executeTakeFirst()
      if (!row || Number(row.expires) < now) {
        cache.delete(id)
        return null
      }
      const token = JSON.parse(row.body) as Token
      if (cache.size > 10_000) cache.clear()
      cache.set(id, { token, checked: now })
      return token
    },
    async revoke(id: string | undefined): Promise<void> {
      if (!id) return
      cache.delete(id)
      await db.deleteFrom('identity_tokens').where('id_hash', '=', hashToken(id)).execute()
    },
    async revokeUser(userId: string): Promise<void> {
      for (const [k, v] of cache) if (v.token.userId === userId) cache.delete(k)
      await db.deleteFrom('identity_tokens').where('user_id', '=', userId).execute()
    },
  }
}

// ------------------------------------------------------------------ external Keystone

export interface KeystoneOptions {
  readonly url: string
  readonly user: string
  readonly password: string
  readonly project: string
  readonly cacheSeconds?: number
}

/** Validates tokens against an external Keystone (`GET /v3/auth/tokens`), as keystonemiddleware. */
export function keystoneAuth(opts: KeystoneOptions): Authenticator {
  const base = opts.url.replace(/\/+$/, '').replace(/\/v3$/, '')
  const cacheMs = (opts.cacheSeconds ?? 60) * 1000
  const cache = new Map<string, { ctx: RequestContext | null; until: number }>()
  let service: { token: string; until: number } | null = null

  const serviceToken = async (): Promise<string> => {
    if (service && service.until > Date.now()) return service.token
    const res = await fetch(`${base}/v3/auth/tokens?nocatalog=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: opts.user, domain: { id: 'default' }, password: opts.password } },
          },
          scope: { project: { name: opts.project, domain: { id: 'default' } } },
        },
      }),
    })
    const token = res.headers.get('x-subject-token')
    if (res.status !== 201 || !token) throw new Error(`keystone: service authentication failed (${res.status})`)
    service = { token, until: Date.now() + 10 * 60 * 1000 }
    return token
  }

  return {
    realm: `${base}/v3`,
    async authenticate(req) {
      const token = req.headers['x-auth-token'] as string | undefined
      if (!token) return null
      const hit = cache.get(token)
      if (hit && hit.until > Date.now()) return hit.ctx
      let res = await fetch(`${base}/v3/auth/tokens?nocatalog=1`, {
        headers: { 'x-auth-token': await serviceToken(), 'x-subject-token': token },
      })
      if (res.status === 401) {
        service = null
        res = await fetch(`${base}/v3/auth/tokens?nocatalog=1`, {
          headers: { 'x-auth-token': await serviceToken(), 'x-subject-token': token },
        })
      }
      let ctx: RequestContext | null = null
      if (res.status === 200) {
        const body = (await res.json()) as {
          token?: {
            project?: { id?: string }
            user?: { id?: string }
            roles?: { name?: string }[]
            expires_at?: string
          }
        }
        const t = body.token
        if (t?.project?.id) {
          const roles = (t.roles ?? []).map((r) => String(r.name).toLowerCase())
          ctx = { projectId: t.project.id, userId: t.user?.id ?? '', isAdmin: roles.includes('admin'), roles }
        }
      }
      cache.set(token, { ctx, until: Date.now() + cacheMs })
      if (cache.size > 10_000) cache.delete(cache.keys().next().value as string)
      return ctx
    },
  }
}
