/**
 * `sgwall agent --server URL --host NAME [--netns NS] [--dataplane kernel|simulated]`:
 * follow the server and keep this host's firewall equal to it.
 */
import type { Command } from 'commander'
import { Agent, type AgentEvent, passwordToken } from '../../agent/loop.js'
import { AppError } from '../../errors.js'
import { FakeHost } from '../../host/fake-host.js'
import type { Host } from '../../host/host.js'
import { type IptablesBackend, RealHost } from '../../host/real-host.js'

export interface AgentCliOptions {
  readonly server: string
  readonly host: string
  readonly netns?: string
  readonly backend: string
  readonly dataplane: string
  readonly firewallDriver: string
  readonly ipset: boolean
  readonly osUsername?: string
  readonly osProjectName?: string
}

export function dataplaneFor(o: Pick<AgentCliOptions, 'dataplane' | 'netns' | 'backend'>): Host {
  if (o.dataplane === 'simulated') return new FakeHost()
  if (o.dataplane !== 'kernel')
    throw new AppError('InvalidInput', `--dataplane must be kernel or simulated, got "${o.dataplane}"`)
  if (o.backend !== 'nft' && o.backend !== 'legacy')
    throw new AppError('InvalidInput', `--backend must be nft or legacy, got "${o.backend}"`)
  return new RealHost({ backend: o.backend as IptablesBackend, ...(o.netns ? { netns: o.netns } : {}) })
}

export function logAgentEvent(e: AgentEvent): void {
  const at = new Date().toISOString()
  if (e.kind === 'applied')
    process.stderr.write(
      `${at} agent: revision ${e.revision} applied in ${e.ms.toFixed(1)} ms (${e.changedChains} chain changes)\n`,
    )
  else if (e.kind === 'error') process.stderr.write(`${at} agent: ${e.message}; retrying in ${e.retryInMs} ms\n`)
}

export function makeAgent(o: AgentCliOptions, password: string | undefined): Agent {
  let server: URL
  try {
    server = new URL(o.server)
  } catch {
    throw new AppError('InvalidInput', `--server: "${o.server}" is not a URL`)
  }
  if (!/^[A-Za-z0-9._-]{1,255}$/.test(o.host))
    throw new AppError('InvalidInput', `--host: "${o.host}" must be 1-255 letters, digits, dots, dashes or underscores`)
  if (o.firewallDriver !== 'iptables_hybrid' && o.firewallDriver !== 'iptables')
    throw new AppError(
      'InvalidInput',
      `--firewall-driver must be iptables_hybrid or iptables, got "${o.firewallDriver}"`,
    )
  const base = server.href.replace(/\/$/, '')
  return new Agent({
    server: base,
    host: o.host,
    dataplane: dataplaneFor(o),
    firewallDriver: o.firewallDriver,
    enableIpset: o.ipset,
    ...(password
      ? { token: passwordToken(`${base}/identity/v3`, o.osUsername ?? 'admin', password, o.osProjectName ?? 'admin') }
      : {}),
    onEvent: logAgentEvent,
  })
}

export function register(program: Command): void {
  program
    .command('agent')
    .description("follow the server's change feed and keep this host's firewall equal to it")
    .requiredOption('--server <url>', 'sgwall server, e.g. http://127.0.0.1:9696')
    .requiredOption('--host <name>', 'this host (binding:host_id of its ports)')
    .option('--netns <name>', 'program the firewall of this network namespace')
    .option('--backend <backend>', 'iptables backend: nft or legacy', 'nft')
    .option('--dataplane <kind>', 'kernel or simulated (in memory, no root needed)', 'kernel')
    .option('--firewall-driver <driver>', 'iptables_hybrid or iptables', 'iptables_hybrid')
    .option('--no-ipset', 'one rule per remote group member instead of ipsets')
    .option('--os-username <name>', 'identity user (password from OS_PASSWORD)', 'admin')
    .option('--os-project-name <name>', 'identity project', 'admin')
    .action(async (o: AgentCliOptions) => {
      const agent = makeAgent(o, process.env.OS_PASSWORD)
      const stop = () => agent.stop()
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      await agent.run()
    })
}
