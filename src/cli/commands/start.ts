/**
 * `sgwall start` (what `npm start` runs): the main job as far as it is built.
 * Today: render the seed walkthrough scenario and print the chains of each step.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { compileScenario } from '../../compile/index.js'
import { readScenarioFile } from '../scenario-file.js'
import { formatIptables } from './render.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')

export function register(program: Command): void {
  program
    .command('start')
    .description('run the main job: render the seed walkthrough scenario and print its chains')
    .option('--scenario <file>', 'scenario to render', join(root, 'examples', 'blog-walkthrough.json'))
    .action(async (opts: { scenario: string }) => {
      const scenario = await readScenarioFile(opts.scenario)
      process.stdout.write(`sgwall: ${scenario.description ?? opts.scenario}\n\n`)
      process.stdout.write(formatIptables(compileScenario(scenario)))
    })
}
