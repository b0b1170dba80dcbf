/** `sgwall diff`: compare the kernel with the desired state; exit 0 when equal, 1 on drift. */
import type { Command } from 'commander'
import { diffDesired } from '../../agent/apply.js'
import { isInSync, renderPlanDiff } from '../../agent/plan.js'
import { AppError } from '../../errors.js'
import { addHostOptions, type HostCommandOptions, hostFromOptions, loadDesired } from '../host-options.js'

export function register(program: Command): void {
  addHostOptions(
    program.command('diff').description('show how the kernel differs from the desired state (exit 1: drift)'),
  ).action(async (o: HostCommandOptions) => {
    const host = hostFromOptions(o)
    const { desired } = await loadDesired(o)
    const plan = await diffDesired(host, desired)
    if (plan.issues.length) {
      throw new AppError(
        'InvalidInput',
        'desired state has problems',
        plan.issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      )
    }
    if (isInSync(plan)) {
      process.stdout.write(`in sync (${host.description})\n`)
      return
    }
    process.stdout.write(renderPlanDiff(plan))
    process.exitCode = 1
  })
}
