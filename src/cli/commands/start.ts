/**
 * `sgwall start` (what `npm start` runs): the API server on embedded SQLite with the
 * built-in identity, plus a local agent following it. The agent's dataplane is
 * simulated (in memory) unless `--dataplane kernel` is given: programming the real
 * host's firewall is something to ask for, never a default.
 */
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import { AppError } from '../../errors.js'
import { makeAgent } from './agent.js'

export function register(program: Command): void {
  program
    .command('start')
    .description('run the server (SQLite, built-in identity) and a local agent')
    .option('--port <port>', 'TCP port of the API', '9696')
    .option('--data-dir <dir>', 'directory of the SQLite database', '.data')
    .option('--host <name>', "this host's name for the local agent", hostname())
    .option('--dataplane <kind>', 'simulated (default) or kernel (programs this host)', 'simulated')
    .option('--netns <name>', 'with --dataplane kernel: program this network namespace instead')
    .action(async (o: { port: string; dataDir: string; host: string; dataplane: string; netns?: string }) => {
      const port = Number(o.port)
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new AppError('InvalidInput', `--port: "${o.port}" is not a TCP port`)
      const password = process.env.SGWALL_ADMIN_PASSWORD
      // Loaded on use: the server's dependencies would slow every other command's start.
      const { startServer } = await import('../../api/server.js')
      const server = await startServer({
        db: join(o.dataDir, 'sgwall.db'),
        auth: 'builtin',
        port,
        host: '127.0.0.1',
        dev: true,
        ...(password ? { adminPassword: password } : {}),
      })
      const adminPassword = password ?? server.adminPassword ?? ''
      const agent = makeAgent(
        {
          server: server.url,
          host: o.host.replace(/[^A-Za-z0-9._-]/g, '-'),
          dataplane: o.dataplane,
          backend: 'nft',
          firewallDriver: 'iptables_hybrid',
          ipset: true,
          ...(o.netns ? { netns: o.netns } : {}),
        },
        adminPassword,
      )
      process.stdout.write(
        [
          `sgwall is running: Neutron API ${server.url}/v2.0/ (SQLite in ${o.dataDir}/)`,
          `  log in: user admin, project admin, password ${password ? '(SGWALL_ADMIN_PASSWORD)' : adminPassword}`,
          '  point the openstack CLI at it:',
          `    export OS_AUTH_URL=${server.url}/identity/v3 OS_USERNAME=admin OS_PROJECT_NAME=admin \\`,
          `           OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_PASSWORD='${password ? '…' : adminPassword}'`,
          '    openstack security group list',
          `  local agent: host "${o.host}", dataplane ${o.dataplane}${o.netns ? ` (netns ${o.netns})` : ''}`,
          '  (ports with binding:host_id set to this host are firewalled by it; Ctrl-C stops everything)',
          '',
        ].join('\n'),
      )
      const running = agent.run()
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      agent.stop()
      await running
      await server.close()
    })
}
