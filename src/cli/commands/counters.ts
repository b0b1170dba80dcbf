/** `sgwall counters`: per-rule counters of our chains, attributed to security-group rules and fixed rules. */
import type { Command } from 'commander'
import { attributeCounters, formatCounters } from '../../agent/counters.js'
import { AppError } from '../../errors.js'
import { addHostOptions, type HostCommandOptions, hostFromOptions, loadDesired } from '../host-options.js'

export function register(program: Command): void {
  addHostOptions(program.command('counters').description('read per-rule counters and attribute them to rules'))
    .option('--json', 'print rows as JSON')
    .option('--all', 'also show rules that counted nothing')
    .action(async (o: HostCommandOptions & { json?: boolean; all?: boolean }) => {
      if (o.scenario === undefined) throw new AppError('InvalidInput', 'counters needs --scenario (to name the rules)')
      const host = hostFromOptions(o)
      const { state, config } = await loadDesired(o)
      const rows = [
        ...attributeCounters(4, await host.iptablesSave(4, { counters: true }), state!, config!),
        ...attributeCounters(6, await host.iptablesSave(6, { counters: true }), state!, config!),
      ]
      if (o.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`)
      else process.stdout.write(formatCounters(rows, !o.all))
    })
}
