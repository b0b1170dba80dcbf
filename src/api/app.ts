/**
 * The Neutron v2.0-compatible API server: `build()` returns a Fastify instance (tests use
 * `app.inject()`, `sgwall serve` listens). One error handler emits NeutronError bodies;
 * unknown errors become the generic 500 and go to the log.
 */
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Store } from '../store/index.js'
import { type Body, parseEnvelope, processAttributes } from './body.js'
import { checkIfMatch, loadTags, QUOTA_DEFAULTS, type TagResource } from './common.js'
import type { RequestContext } from './context.js'
import { validateString } from './convert.js'
import { extensions } from './extensions.js'
import { type CachedGroup, type CachedRule, GroupCache, type GroupView, toJson } from './group-cache.js'
import { applyList, type CollectionSpec, parseListOptions, type Query, selectFields, type Wire } from './listing.js'
import { type Metrics, newMetrics } from './metrics.js'
import {
  createNetworks,
  createSubnets,
  deleteNetwork,
  deleteSubnet,
  NETWORK_LIST,
  networkRows,
  networksWire,
  SUBNET_LIST,
  showNetwork,
  showSubnet,
  subnetRows,
  subnetsWire,
  updateNetwork,
  updateSubnet,
} from './networks.js'
import { badRequest, NeutronError, nerr, policy, sgNotFound } from './neutron-error.js'
import { createPorts, deletePort, PORT_LIST, portDetails, portRows, portWire, showPort, updatePort } from './ports.js'
import {
  createRbac,
  deleteQuota,
  deleteRbac,
  getQuota,
  listQuotas,
  quotaDetails,
  RBAC_LIST,
  rbacRows,
  rbacWire,
  showRbac,
  updateQuota,
  updateRbac,
} from './quotas.js'
import {
  createGroups,
  createRules,
  deleteGroup,
  deleteRule,
  ensureDefaultGroup,
  GROUP_LIST,
  RULE_ATTRS,
  RULE_LIST,
  showGroup,
  updateGroup,
} from './security-groups.js'

/** Decides who is calling; null → 401. */
export interface Authenticator {
  authenticate(req: FastifyRequest): Promise<RequestContext | null>
  /** Value of WWW-Authenticate on 401. */
  readonly realm: string
  /** Extra routes (built-in identity). */
  register?(app: FastifyInstance): void
}

export interface BuildOptions {
  readonly store: Store
  readonly auth: Authenticator
  /** pino logger options or false (tests). */
  readonly logger?: boolean | object
  readonly metrics?: Metrics
  /** Extra routes, e.g. the agent feed. */
  readonly plugins?: readonly ((app: FastifyInstance, ctxOf: (req: FastifyRequest) => RequestContext) => void)[]
}

/** noauth (Neutron `auth_strategy = noauth`): admin of `fake_project_id`, unless X-Project-Id / X-Roles say otherwise. */
export function noAuth(defaultProject = 'fake_project_id'): Authenticator {
  return {
    realm: 'noauth',
    async authenticate(req) {
      const h = req.headers
      const project =
        (h['x-project-id'] as string | undefined) ?? (h['x-tenant-id'] as string | undefined) ?? defaultProject
      const rolesHeader = h['x-roles'] as string | undefined
      const roles = rolesHeader ? rolesHeader.split(',').map((r) => r.trim().toLowerCase()) : ['admin']
      return {
        projectId: project,
        userId: (h['x-user-id'] as string | undefined) ?? 'noauth',
        isAdmin: roles.includes('admin'),
        roles,
      }
    },
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    sgwallCtx?: RequestContext
  }
}

const JSON_TYPE = 'application/json; charset=utf-8'
/** List bodies at least this long are sent gzip-encoded when the client accepts it. */
const GZIP_MIN = 64 * 1024

/** Accept-Encoding allows gzip (`gzip` or `*` with a non-zero q). */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false
  for (const part of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const [name = '', ...params] = part.split(';').map((x) => x.trim().toLowerCase())
    if (name !== 'gzip' && name !== '*') continue
    const q = params.find((p) => p.startsWith('q='))
    if (q === undefined || Number(q.slice(2)) > 0) return true
  }
  return false
}

const NOT_FOUND = { type: 'HTTPNotFound', message: 'The resource could not be found.' } as const

export async function build(opts: BuildOptions): Promise<FastifyInstance> {
  const { auth } = opts
  const metrics = opts.metrics ?? newMetrics()
  // Every write transaction is timed for /metrics (sgwall_store_duration_seconds{op="write"}).
  const store: Store = {
    ...opts.store,
    async write(fn, options) {
      const t0 = performance.now()
      try {
        return await opts.store.write(fn, options)
      } finally {
        metrics.observeStore('write', (performance.now() - t0) / 1000)
      }
    },
  }
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 4 * 1024 * 1024,
    genReqId: () => `req-${randomUUID()}`,
    // Neutron accepts a `.json` format suffix (tempest uses `/quotas/<p>/details.json`).
    rewriteUrl: (req) => {
      const url = req.url ?? '/'
      return url.includes('.json') ? url.replace(/^([^?]*?)\.json(?=\?|$)/, '$1') : url
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1000 },
    // Errors Fastify raises before routing (bad URL encoding, bad content type) keep the Neutron shape.
    frameworkErrors: (error, _req, res) => {
      const reply = res as unknown as FastifyReply
      void reply
        .code(400)
        .header('X-Openstack-Request-Id', `req-${randomUUID()}`)
        .send({ NeutronError: { type: 'HTTPBadRequest', message: error.message, detail: '' } })
    },
  })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body))

  app.addHook('onRequest', async (req, reply) => {
    reply.header('X-Openstack-Request-Id', req.id)
    const path = req.url.split('?')[0] ?? ''
    if (path === '/' || path === '/metrics' || path.startsWith('/identity')) return
    const ctx = await auth.authenticate(req)
    if (!ctx) {
      reply
        .code(401)
        .header('WWW-Authenticate', `Keystone uri="${auth.realm}"`)
        .send({
          error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' },
        })
      return reply
    }
    req.sgwallCtx = ctx
    return undefined
  })
  app.addHook('onResponse', async (req, reply) => {
    metrics.observeRequest(req.method, req.routeOptions.url ?? 'unknown', reply.statusCode, reply.elapsedTime / 1000)
  })

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof NeutronError) return reply.code(err.status).send(err.toBody())
    const e = err as { statusCode?: number; code?: string; message?: string }
    if (e.statusCode === 413)
      return reply
        .code(413)
        .send({ NeutronError: { type: 'HTTPRequestEntityTooLarge', message: 'Request entity too large.', detail: '' } })
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500)
      return reply
        .code(400)
        .send({ NeutronError: { type: 'HTTPBadRequest', message: e.message ?? 'Bad request', detail: '' } })
    req.log.error({ err }, 'internal error')
    return reply.code(500).send({
      NeutronError: {
        type: 'HTTPInternalServerError',
        message: 'Request Failed: internal server error while processing your request.',
        detail: '',
      },
    })
  })
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ NeutronError: { ...NOT_FOUND, detail: '' } }))

  const ctxOf = (req: FastifyRequest): RequestContext => {
    if (!req.sgwallCtx) throw nerr('HTTPForbidden', 'No request context')
    return req.sgwallCtx
  }
  const baseUrl = (req: FastifyRequest) => {
    const proto = (req.headers['x-forwarded-proto'] as string | undefined) ?? req.protocol
    return `${proto}://${req.headers.host ?? 'localhost'}`
  }
  const ifMatch = (req: FastifyRequest) => req.headers['if-match']
  const q = (req: FastifyRequest) => req.query as Query
  const fieldsOf = (req: FastifyRequest): string[] | null => {
    const f = q(req).fields
    return f === undefined ? null : Array.isArray(f) ? f : [f]
  }

  app.get('/', async (req) => ({
    versions: [{ id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: `${baseUrl(req)}/v2.0/` }] }],
  }))
  app.get('/v2.0/', async (req) => ({
    resources: ['network', 'subnet', 'port', 'security_group', 'security_group_rule'].map((name) => {
      const collection = `${name.replaceAll('_', '-')}s`
      return { name, collection, links: [{ rel: 'self', href: `${baseUrl(req)}/v2.0/${collection}` }] }
    }),
  }))
  app.get('/v2.0/extensions', async () => ({ extensions }))
  app.get<{ Params: { alias: string } }>('/v2.0/extensions/:alias', async (req) => {
    const ext = extensions.find((e) => e.alias === req.params.alias)
    if (!ext) throw nerr('ExtensionNotFound', `Extension with alias ${req.params.alias} does not exist`)
    return { extension: ext }
  })
  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', metrics.contentType)
    return metrics.render()
  })

  // -------------------------------------------------------------- generic collection wiring
  interface Collection {
    readonly path: string
    readonly resource: string
    readonly spec: CollectionSpec
    list(req: FastifyRequest, ctx: RequestContext): Promise<Wire[]>
    /** Optional fast path: the whole response body (no filters, fields, sort or paging), maybe gzip-encoded. */
    listJson?(req: FastifyRequest, ctx: RequestContext, gzip: boolean): Promise<{ body: Buffer; gzip: boolean }>
    /** Optional fast path: the whole response body when the query has only `fields`. */
    listFieldsBody?(req: FastifyRequest, ctx: RequestContext, fields: readonly string[]): Promise<Buffer>
    /** Optional fast path: the response body of `GET {path}/{id}` without `fields`. */
    showBody?(ctx: RequestContext, id: string): Promise<Buffer>
    show(ctx: RequestContext, id: string): Promise<Wire>
    create(ctx: RequestContext, items: Body[], bulk: boolean): Promise<Wire[]>
    update?(ctx: RequestContext, id: string, item: Body, ifMatch: string | string[] | undefined): Promise<Wire>
    remove(ctx: RequestContext, id: string, ifMatch: string | string[] | undefined): Promise<void>
    collectionNotFound(): NeutronError
  }

  const wire = (c: Collection) => {
    const coll = c.spec.collection
    app.get(`/v2.0/${c.path}`, async (req, reply) => {
      const ctx = ctxOf(req)
      const opts = parseListOptions(q(req), c.spec)
      const keys = Object.keys(q(req))
      if (c.listFieldsBody && keys.length === 1 && keys[0] === 'fields' && opts.fields)
        return reply.type(JSON_TYPE).send(await c.listFieldsBody(req, ctx, opts.fields))
      if (c.listJson && keys.length === 0) {
        const out = await c.listJson(req, ctx, acceptsGzip(req.headers['accept-encoding']))
        reply.header('Vary', 'Accept-Encoding')
        if (out.gzip) reply.header('Content-Encoding', 'gzip')
        return reply.type(JSON_TYPE).send(out.body)
      }
      const objects = await c.list(req, ctx)
      const out = applyList(objects, opts, `${baseUrl(req)}/v2.0/${c.path}`, q(req))
      // Same text as JSON.stringify({[coll]: items, [coll_links]: links}), with the read view's memoized item texts.
      let text = `{${JSON.stringify(coll)}:[${out.items.map(toJson).join(',')}]`
      if (out.links) text += `,${JSON.stringify(`${coll}_links`)}:${JSON.stringify(out.links)}`
      return reply.type(JSON_TYPE).send(`${text}}`)
    })
    app.post(`/v2.0/${c.path}`, async (req, reply) => {
      const ctx = ctxOf(req)
      const { items, bulk } = parseEnvelope(req.body, c.resource, coll, true)
      const created = await c.create(ctx, items, bulk)
      reply.code(201)
      return bulk ? { [coll]: created } : { [c.resource]: created[0] }
    })
    app.get<{ Params: { id: string } }>(`/v2.0/${c.path}/:id`, async (req, reply) => {
      if (c.showBody && q(req).fields === undefined)
        return reply.type(JSON_TYPE).send(await c.showBody(ctxOf(req), req.params.id))
      const obj = await c.show(ctxOf(req), req.params.id)
      return reply.type(JSON_TYPE).send(`{${JSON.stringify(c.resource)}:${toJson(selectFields(obj, fieldsOf(req)))}}`)
    })
    app.put<{ Params: { id: string } }>(`/v2.0/${c.path}/:id`, async (req) => {
      const ctx = ctxOf(req)
      const { items } = parseEnvelope(req.body, c.resource, coll, false)
      if (!c.update) {
        processAttributes(items[0]!, RULE_ATTRS, 'put', ctx)
        throw badRequest('Security group rules are immutable and cannot be updated.')
      }
      return { [c.resource]: await c.update(ctx, req.params.id, items[0]!, ifMatch(req)) }
    })
    app.delete<{ Params: { id: string } }>(`/v2.0/${c.path}/:id`, async (req, reply) => {
      await c.remove(ctxOf(req), req.params.id, ifMatch(req))
      return reply.code(204).send()
    })
    app.put(`/v2.0/${c.path}`, async () => {
      throw c.collectionNotFound()
    })
    app.delete(`/v2.0/${c.path}`, async () => {
      throw c.collectionNotFound()
    })
  }

  const projectFilter = (req: FastifyRequest): string[] => {
    const v = [q(req).project_id, q(req).tenant_id].flat().filter((x): x is string => typeof x === 'string')
    return v
  }
  const groupCache = new GroupCache(store)
  /** Groups visible to ctx (admin: all), in creation order; groups shared to ctx get `shared: true`. */
  const visibleGroups = (view: GroupView, ctx: RequestContext): Wire[] => {
    const out: Wire[] = []
    for (const g of view.list()) {
      if (g.projectId === ctx.projectId) out.push(g.wire)
      else if (view.isSharedWith(g.id, ctx.projectId)) out.push(g.sharedWire)
      else if (ctx.isAdmin) out.push(g.wire)
    }
    return out
  }
  /** The group if ctx may see it, and whether it is shared with ctx (not owned). */
  const visibleGroup = (view: GroupView, ctx: RequestContext, id: string): [CachedGroup, boolean] => {
    const g = view.groups.get(id)
    if (!g) throw sgNotFound(id)
    if (g.projectId === ctx.projectId) return [g, false]
    if (view.isSharedWith(id, ctx.projectId)) return [g, true]
    if (ctx.isAdmin) return [g, false]
    throw sgNotFound(id)
  }
  const ruleVisible = (r: CachedRule, ctx: RequestContext) =>
    ctx.isAdmin || r.row.project_id === ctx.projectId || r.group.projectId === ctx.projectId
  /** The current read view, after making sure the listed projects have their default group. */
  const ensureForList = async (req: FastifyRequest, ctx: RequestContext): Promise<GroupView> => {
    const view = await groupCache.fresh()
    const wanted = projectFilter(req)
    const targets = wanted.length ? wanted.filter((p) => p === ctx.projectId || ctx.isAdmin) : [ctx.projectId]
    let wrote = false
    for (const p of new Set(targets))
      if (!view.hasDefault(p)) {
        await ensureDefaultGroup(store, p)
        wrote = true
      }
    return wrote ? groupCache.fresh() : view
  }

  wire({
    path: 'security-groups',
    resource: 'security_group',
    spec: GROUP_LIST,
    async list(req, ctx) {
      return visibleGroups(await ensureForList(req, ctx), ctx)
    },
    async listJson(req, ctx, gzip) {
      const view = await ensureForList(req, ctx)
      const key = `${ctx.isAdmin ? 'admin' : 'member'}:${ctx.projectId}`
      const make = () => `{"security_groups":[${visibleGroups(view, ctx).map(toJson).join(',')}]}`
      const body = view.body(key, make)
      // Large lists go compressed to clients that accept it (openstacksdk and the CLI do): ~54 MB of JSON
      // for 5000 groups of 20 rules is mostly repeated keys.
      if (gzip && body.length >= GZIP_MIN) return { body: await view.gzipBody(key, make), gzip: true }
      return { body, gzip: false }
    },
    async listFieldsBody(req, ctx, fields) {
      // `openstack security group list` asks for the same few fields every time: one body per revision.
      const view = await ensureForList(req, ctx)
      return view.body(
        `${ctx.isAdmin ? 'admin' : 'member'}:${ctx.projectId}?fields=${fields.join(',')}`,
        () =>
          `{"security_groups":[${visibleGroups(view, ctx)
            .map((g) => JSON.stringify(selectFields(g, fields)))
            .join(',')}]}`,
      )
    },
    async show(ctx, id) {
      const [g, shared] = visibleGroup(await groupCache.fresh(), ctx, id)
      return shared ? g.sharedWire : g.wire
    },
    async showBody(ctx, id) {
      const [g, shared] = visibleGroup(await groupCache.fresh(), ctx, id)
      return g.showBody(shared)
    },
    create: (ctx, items) => createGroups(store, ctx, items),
    update: (ctx, id, item, im) => updateGroup(store, ctx, id, item, im),
    remove: (ctx, id, im) => deleteGroup(store, ctx, id, im),
    collectionNotFound: () => nerr('SecurityGroupNotFound', 'Security group None does not exist'),
  })

  wire({
    path: 'security-group-rules',
    resource: 'security_group_rule',
    spec: RULE_LIST,
    async list(req, ctx) {
      const view = await ensureForList(req, ctx)
      const sg = q(req).security_group_id
      let rules: readonly CachedRule[]
      if (sg === undefined) rules = view.ruleList()
      else {
        const ids = [...new Set(Array.isArray(sg) ? sg : [sg])]
        rules = ids.flatMap((id) => view.groups.get(id)?.rules ?? [])
        if (ids.length > 1) rules = [...rules].sort((a, b) => a.row.standard_attr_id - b.row.standard_attr_id)
      }
      const out: Wire[] = []
      for (const r of rules) if (ruleVisible(r, ctx)) out.push(r.wire)
      return out
    },
    async show(ctx, id) {
      const r = (await groupCache.fresh()).rules.get(id)
      if (r && ruleVisible(r, ctx)) return r.wire
      throw nerr('SecurityGroupRuleNotFound', `Security group rule ${id} does not exist`)
    },
    create: (ctx, items, bulk) => createRules(store, ctx, items, bulk),
    remove: (ctx, id) => deleteRule(store, ctx, id),
    collectionNotFound: () => nerr('SecurityGroupRuleNotFound', 'Security group rule None does not exist'),
  })

  wire({
    path: 'networks',
    resource: 'network',
    spec: NETWORK_LIST,
    list: async (_req, ctx) => networksWire(store.db, await networkRows(store.db, ctx)),
    show: (ctx, id) => showNetwork(store.db, ctx, id),
    create: (ctx, items) => createNetworks(store, ctx, items),
    update: (ctx, id, item, im) => updateNetwork(store, ctx, id, item, im),
    remove: (ctx, id, im) => deleteNetwork(store, ctx, id, im),
    collectionNotFound: () => nerr('NetworkNotFound', 'Network None could not be found.'),
  })

  wire({
    path: 'subnets',
    resource: 'subnet',
    spec: SUBNET_LIST,
    list: async (_req, ctx) => subnetsWire(store.db, await subnetRows(store.db, ctx)),
    show: (ctx, id) => showSubnet(store.db, ctx, id),
    create: (ctx, items) => createSubnets(store, ctx, items),
    update: (ctx, id, item, im) => updateSubnet(store, ctx, id, item, im),
    remove: (ctx, id, im) => deleteSubnet(store, ctx, id, im),
    collectionNotFound: () => nerr('SubnetNotFound', 'Subnet None could not be found.'),
  })

  wire({
    path: 'ports',
    resource: 'port',
    spec: PORT_LIST,
    list: async (_req, ctx) => {
      const rows = await portRows(store.db, ctx)
      return (await portDetails(store.db, rows, true)).map((d) => portWire(d, ctx))
    },
    show: (ctx, id) => showPort(store.db, ctx, id),
    create: (ctx, items) => createPorts(store, ctx, items),
    update: (ctx, id, item, im) => updatePort(store, ctx, id, item, im),
    remove: (ctx, id, im) => deletePort(store, ctx, id, im),
    collectionNotFound: () => nerr('PortNotFound', 'Port None could not be found.'),
  })

  wire({
    path: 'rbac-policies',
    resource: 'rbac_policy',
    spec: RBAC_LIST,
    list: async (_req, ctx) => (await rbacRows(store.db, ctx)).map(rbacWire),
    show: (ctx, id) => showRbac(store.db, ctx, id),
    async create(ctx, items) {
      const out: Wire[] = []
      for (const it of items) out.push(await createRbac(store, ctx, it))
      return out
    },
    update: (ctx, id, item) => updateRbac(store, ctx, id, item),
    remove: (ctx, id) => deleteRbac(store, ctx, id),
    collectionNotFound: () => nerr('RbacPolicyNotFound', 'RBAC policy None not found'),
  })

  // -------------------------------------------------------------- tags sub-API
  const tagTables: Record<
    string,
    {
      type: TagResource
      table: 'security_groups' | 'ports' | 'networks' | 'subnets'
      show: (ctx: RequestContext, id: string) => Promise<Wire>
    }
  > = {
    'security-groups': {
      type: 'security_groups',
      table: 'security_groups',
      show: (c, id) => showGroup(store.db, c, id),
    },
    ports: { type: 'ports', table: 'ports', show: (c, id) => showPort(store.db, c, id) },
    networks: { type: 'networks', table: 'networks', show: (c, id) => showNetwork(store.db, c, id) },
    subnets: { type: 'subnets', table: 'subnets', show: (c, id) => showSubnet(store.db, c, id) },
  }
  const validTag = (t: unknown): string => {
    const r = validateString(255)(t)
    if (r || t === '') throw badRequest(`Invalid input for tags. Reason: ${r ?? "'' is not a valid tag"}.`)
    return t as string
  }
  for (const [path, t] of Object.entries(tagTables)) {
    const parent = async (req: FastifyRequest<{ Params: { id: string } }>, write: boolean) => {
      const ctx = ctxOf(req)
      const obj = await t.show(ctx, req.params.id)
      if (write && !ctx.isAdmin && obj.project_id !== ctx.projectId)
        throw policy(`rule:update_${t.type.slice(0, -1)}:tags`)
      return obj
    }
    const setTags = async (id: string, projectId: unknown, mutate: (cur: string[]) => string[]) =>
      store.write(async (w) => {
        const cur = (await loadTags(w.tx, t.type, [id])).get(id) ?? []
        const next = [...new Set(mutate(cur))].sort()
        const same = next.length === cur.length && next.every((x, k) => x === cur[k])
        if (same) return next
        await w.tx.deleteFrom('tags').where('resource_type', '=', t.type).where('resource_id', '=', id).execute()
        if (next.length)
          await w.tx
            .insertInto('tags')
            .values(next.map((tag) => ({ resource_type: t.type, resource_id: id, tag })))
            .execute()
        await w.tx
          .updateTable(t.table)
          .set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: w.now }))
          .where('id', '=', id)
          .execute()
        await w.log({ resource: t.type.slice(0, -1), resource_id: id, action: 'update', project_id: String(projectId) })
        return next
      })
    app.get<{ Params: { id: string } }>(`/v2.0/${path}/:id/tags`, async (req) => ({
      tags: (await parent(req, false)).tags,
    }))
    app.get<{ Params: { id: string; tag: string } }>(`/v2.0/${path}/:id/tags/:tag`, async (req, reply) => {
      const obj = await parent(req, false)
      if (!(obj.tags as string[]).includes(req.params.tag))
        throw nerr('TagNotFound', `Tag ${req.params.tag} could not be found.`)
      return reply.code(204).send()
    })
    app.put<{ Params: { id: string; tag: string } }>(`/v2.0/${path}/:id/tags/:tag`, async (req, reply) => {
      const obj = await parent(req, true)
      checkIfMatch(ifMatch(req), obj.revision_number as number)
      const tag = validTag(req.params.tag)
      await setTags(req.params.id, obj.project_id, (cur) => [...cur, tag])
      return reply.code(201).send('null')
    })
    app.put<{ Params: { id: string } }>(`/v2.0/${path}/:id/tags`, async (req) => {
      const obj = await parent(req, true)
      checkIfMatch(ifMatch(req), obj.revision_number as number)
      const raw = typeof req.body === 'string' && req.body !== '' ? safeParse(req.body) : undefined
      const tags =
        raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>).tags : undefined
      if (!Array.isArray(tags)) throw badRequest('Invalid input for tags. Reason: body must be {"tags": [...]}.')
      const list = tags.map(validTag)
      return { tags: await setTags(req.params.id, obj.project_id, () => list) }
    })
    app.delete<{ Params: { id: string; tag: string } }>(`/v2.0/${path}/:id/tags/:tag`, async (req, reply) => {
      const obj = await parent(req, true)
      if (!(obj.tags as string[]).includes(req.params.tag))
        throw nerr('TagNotFound', `Tag ${req.params.tag} could not be found.`)
      await setTags(req.params.id, obj.project_id, (cur) => cur.filter((x) => x !== req.params.tag))
      return reply.code(204).send()
    })
    app.delete<{ Params: { id: string } }>(`/v2.0/${path}/:id/tags`, async (req, reply) => {
      const obj = await parent(req, true)
      await setTags(req.params.id, obj.project_id, () => [])
      return reply.code(204).send()
    })
  }

  // -------------------------------------------------------------- quotas
  app.get('/v2.0/quotas', async (req) => listQuotas(store.db, ctxOf(req)))
  app.get('/v2.0/quotas/tenant', async (req) => ({ tenant: { tenant_id: ctxOf(req).projectId } }))
  app.get('/v2.0/quotas/project', async (req) => ({ project: { project_id: ctxOf(req).projectId } }))
  app.get<{ Params: { p: string } }>('/v2.0/quotas/:p', async (req) => getQuota(store.db, ctxOf(req), req.params.p))
  app.get<{ Params: { p: string } }>('/v2.0/quotas/:p/default', async (req) => {
    ctxOf(req)
    return { quota: { ...QUOTA_DEFAULTS } }
  })
  app.get<{ Params: { p: string } }>('/v2.0/quotas/:p/details', async (req) =>
    quotaDetails(store.db, ctxOf(req), req.params.p),
  )
  app.put<{ Params: { p: string } }>('/v2.0/quotas/:p', async (req) =>
    updateQuota(store, ctxOf(req), req.params.p, req.body),
  )
  app.delete<{ Params: { p: string } }>('/v2.0/quotas/:p', async (req, reply) => {
    await deleteQuota(store, ctxOf(req), req.params.p)
    return reply.code(204).send()
  })

  auth.register?.(app)
  for (const p of opts.plugins ?? []) p(app, ctxOf)
  return app
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s)
  } catch {
    throw nerr('MalformedRequestBody', 'Malformed request body: Cannot understand JSON.')
  }
}

export type { FastifyReply }
