/** Assembles store + identity + API + agent feed into a listening server (`sgwall serve`, tests, bench). */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { AppError } from '../errors.js'
import { openStore, type Store } from '../store/index.js'
import { type Authenticator, build, noAuth } from './app.js'
import { feedRoutes } from './feed.js'
import { builtinIdentity, keystoneAuth } from './identity.js'
import { newMetrics } from './metrics.js'

export type AuthMode = 'none' | 'builtin' | 'keystone'

export interface ServerOptions {
  /** Store URL: `postgres://…`, a SQLite file path, or `:memory:`. */
  readonly db: string
  readonly auth: AuthMode
  readonly port?: number
  readonly host?: string
  /** Built-in identity admin password (required unless `dev`). */
  readonly adminPassword?: string
  /** Development mode: a random admin password is generated (and returned) when none is given. */
  readonly dev?: boolean
  readonly keystoneUrl?: string
  readonly keystoneUser?: string
  readonly keystonePassword?: string
  readonly keystoneProject?: string
  readonly logger?: boolean | object
  /** Built-in identity: how long a process trusts a token it has looked up (ms; default 5000). */
  readonly tokenCacheMs?: number
}

export interface RunningServer {
  readonly app: FastifyInstance
  readonly store: Store
  /** `http://host:port` */
  readonly url: string
  readonly adminPassword: string | null
  close(): Promise<void>
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const store = await openStore(opts.db)
  try {
    let auth: Authenticator
    let adminPassword: string | null = null
    if (opts.auth === 'none') auth = noAuth()
    else if (opts.auth === 'builtin') {
      adminPassword = opts.adminPassword ?? null
      if (!adminPassword) {
        if (!opts.dev)
          throw new AppError(
            'InvalidInput',
            'built-in identity needs an admin password: set SGWALL_ADMIN_PASSWORD (or pass --dev to generate one)',
          )
        adminPassword = randomBytes(12).toString('base64url')
      }
      auth = await builtinIdentity(store, {
        adminPassword,
        ...(opts.tokenCacheMs !== undefined ? { tokenCacheMs: opts.tokenCacheMs } : {}),
      })
    } else {
      const { keystoneUrl: url, keystoneUser: user, keystonePassword: password, keystoneProject: project } = opts
      if (!url || !user || !password || !project)
        throw new AppError(
          'InvalidInput',
          '--auth keystone needs --keystone-url and SGWALL_KEYSTONE_USER, SGWALL_KEYSTONE_PASSWORD, SGWALL_KEYSTONE_PROJECT',
        )
      auth = keystoneAuth({ url, user, password, project })
    }
    const app = await build({
      store,
      auth,
      metrics: newMetrics(),
      logger: opts.logger ?? false,
      plugins: [feedRoutes(store)],
    })
    const address = await app.listen({ port: opts.port ?? 9696, host: opts.host ?? '127.0.0.1' })
    return {
      app,
      store,
      url: address.replace('[::1]', 'localhost'),
      adminPassword,
      async close() {
        // Stop accepting, then drop every open connection: a long-poll feed request
        // (up to 60 s) or a client's keep-alive socket must not hold the shutdown.
        const closing = app.close()
        app.server.closeAllConnections()
        await closing
        await store.close()
      },
    }
  } catch (err) {
    await store.close()
    throw err
  }
}
