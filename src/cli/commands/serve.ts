/** `sgwall serve`: the Neutron-compatible API server (SQLite by default, PostgreSQL with --db). */
import { join } from 'node:path'
import type { Command } from 'commander'
import type { AuthMode } from '../../api/server.js'
import { AppError } from '../../errors.js'

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve the OpenStack Networking v2.0 API (security groups, rules, ports, ...)')
    .option('--port <port>', 'TCP port', '9696')
    .option('--bind <address>', 'listen address', '127.0.0.1')
    .option('--db <url>', 'postgres://… URL or SQLite file (default: <data-dir>/sgwall.db)')
    .option('--data-dir <dir>', 'directory of the SQLite database', '.data')
    .option('--auth <mode>', 'none | builtin | keystone', 'builtin')
    .option('--keystone-url <url>', 'external Keystone (with --auth keystone)')
    .option('--dev', 'development mode: generate an admin password when SGWALL_ADMIN_PASSWORD is unset')
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const port = Number(o.port)
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new AppError('InvalidInput', `--port: '${String(o.port)}' is not a TCP port`)
      let auth = String(o.auth) as AuthMode
      if (o.keystoneUrl && o.auth === 'builtin') auth = 'keystone'
      if (auth !== 'none' && auth !== 'builtin' && auth !== 'keystone')
        throw new AppError('InvalidInput', `--auth: '${auth}' is not one of none, builtin, keystone`)
      const env = process.env
      // Loaded on use: the server's dependencies would slow every other command's start.
      const { startServer } = await import('../../api/server.js')
      const server = await startServer({
        db: (o.db as string | undefined) ?? join(String(o.dataDir), 'sgwall.db'),
        auth,
        port,
        host: String(o.bind),
        dev: Boolean(o.dev),
        logger: { level: String(o.logLevel) },
        ...(env.SGWALL_ADMIN_PASSWORD ? { adminPassword: env.SGWALL_ADMIN_PASSWORD } : {}),
        ...(o.keystoneUrl ? { keystoneUrl: String(o.keystoneUrl) } : {}),
        ...(env.SGWALL_KEYSTONE_USER ? { keystoneUser: env.SGWALL_KEYSTONE_USER } : {}),
        ...(env.SGWALL_KEYSTONE_PASSWORD ? { keystonePassword: env.SGWALL_KEYSTONE_PASSWORD } : {}),
        ...(env.SGWALL_KEYSTONE_PROJECT ? { keystoneProject: env.SGWALL_KEYSTONE_PROJECT } : {}),
      })
      const lines = [`sgwall: Neutron API on ${server.url}/v2.0/ (store: ${server.store.dialect}, auth: ${auth})`]
      if (auth === 'builtin') {
        lines.push(`  identity: ${server.url}/identity/v3 (user admin, project admin)`)
        if (!env.SGWALL_ADMIN_PASSWORD) lines.push(`  generated admin password: ${server.adminPassword}`)
        lines.push(
          `  openstack CLI: export OS_AUTH_URL=${server.url}/identity/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_PASSWORD=…`,
        )
      } else if (auth === 'none') {
        lines.push(`  openstack CLI: openstack --os-auth-type none --os-endpoint ${server.url} network list`)
        if (!/^(127\.|::1$|localhost$)/.test(String(o.bind)))
          lines.push(`  WARNING: --auth none on ${String(o.bind)}: anyone who can reach this port is admin`)
      }
      process.stderr.write(`${lines.join('\n')}\n`)
      await new Promise<void>((resolve) => {
        const stop = () => resolve()
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      await server.close()
    })
}
