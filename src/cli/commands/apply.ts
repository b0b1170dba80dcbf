/** `sgwall apply`: make a host's kernel hold the desired state (only our chains, jumps and ipsets). */
import type { Command } from 'commander'
import { applyDesired } from '../../agent/apply.js'
import { renderPlanDiff } from '../../agent/plan.js'
import { addHostOptions, type HostCommandOptions, hostFromOptions, loadDesired } from '../host-options.js'

export function register(program: Command): void {
  addHostOptions(program.command('apply').description('make the kernel hold the desired firewall state'))
    .option('--json', 'print the applied plan as JSON')
    .action(async (o: HostCommandOptions & { json?: boolean }) => {
      const host = hostFromOptions(o)
      const { desired } = await loadDesired(o)
      const { plan, timings } = await applyDesired(host, desired)
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ ...plan, timings }, null, 2)}\n`)
        return
      }
      process.stdout.write(renderPlanDiff(plan))
      const ms = (n: number) => `${n.toFixed(1)} ms`
      process.stdout.write(
        `applied on ${host.description}: ${plan.chainChanges.length} chain change(s), ${plan.setChanges.length} ipset change(s), ` +
          `${plan.conntrack.length} conntrack filter(s); read ${ms(timings.read)}, plan ${ms(timings.plan)}, write ${ms(timings.write)}\n`,
      )
    })
}
