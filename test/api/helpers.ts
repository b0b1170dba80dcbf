/** Test harness: a server on an in-memory (or PostgreSQL) store with noauth, per-project callers. */
import type { FastifyInstance } from 'fastify'
import { build, noAuth } from '../../src/api/app.js'
import { feedRoutes } from '../../src/api/feed.js'
import { openStore, type Store, type StoreOptions } from '../../src/store/index.js'

export interface Caller {
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<Res>
}
export interface Res {
  status: number
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON
  json: any
  raw: string
  headers: Record<string, unknown>
}

export async function harness(
  url = ':memory:',
  storeOptions: StoreOptions = {},
): Promise<{
  app: FastifyInstance
  store: Store
  as(project: string, admin?: boolean): Caller
  close(): Promise<void>
}> {
  const store = await openStore(url, storeOptions)
  const app = await build({ store, auth: noAuth(), plugins: [feedRoutes(store)] })
  const as = (project: string, admin = false): Caller => ({
    async req(method, path, body, headers = {}) {
      const res = await app.inject({
        method: method as 'GET',
        url: path,
        headers: {
          'content-type': 'application/json',
          'x-project-id': project,
          'x-roles': admin ? 'admin' : 'member',
          ...headers,
        },
        ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
      })
      let json: unknown = null
      try {
        json = res.body ? JSON.parse(res.body) : null
      } catch {
        json = null
      }
      return { status: res.statusCode, json, raw: res.body, headers: res.headers }
    },
  })
  return {
    app,
    store,
    as,
    async close() {
      await app.close()
      await store.close()
    },
  }
}

/** Password authentication against a built-in identity (`POST /identity/v3/auth/tokens`), project-scoped. */
export function passwordLogin(base: string, user: string, password: string, project: string): Promise<Response> {
  return fetch(`${base}/identity/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password } } },
        scope: { project: { name: project, domain: { name: 'Default' } } },
      },
    }),
  })
}
