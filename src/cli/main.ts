/**
 * The `sgwall` command line. Each command lives in `commands/<name>.ts` and exports
 * `register(program)`; this file only wires them and maps errors to exit codes.
 */
import { Command } from 'commander'
import { AppError, exitCode } from '../errors.js'
import { register as registerAgent } from './commands/agent.js'
import { register as registerApply } from './commands/apply.js'
import { register as registerCounters } from './commands/counters.js'
import { register as registerDiff } from './commands/diff.js'
import { register as registerExplain } from './commands/explain.js'
import { register as registerLab } from './commands/lab.js'
import { register as registerRender } from './commands/render.js'
import { register as registerServe } from './commands/serve.js'
import { register as registerStart } from './commands/start.js'
import { register as registerTrace } from './commands/trace.js'

const program = new Command()
program
  .name('sgwall')
  .description('OpenStack-style security groups: compile, apply, analyse, serve')
  .showHelpAfterError()
program.exitOverride()

registerRender(program)
registerExplain(program)
registerTrace(program)
registerApply(program)
registerDiff(program)
registerCounters(program)
registerLab(program)
registerServe(program)
registerAgent(program)
registerStart(program)

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof AppError) {
    process.stderr.write(`error: ${err.message}\n${err.detail ? `${err.detail}\n` : ''}`)
    process.exitCode = exitCode[err.type]
  } else if (err && typeof err === 'object' && 'code' in err && String(err.code).startsWith('commander.')) {
    const code = String(err.code)
    process.exitCode = code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2
  } else {
    process.stderr.write(`error: internal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 70
  }
}
