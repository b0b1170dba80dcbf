/** `sgwall explain FILE`: every chain and rule of a dump, with its role and a one-sentence explanation. */
import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { filteredPorts, scenarioAttribution } from '../../analysis/attribute.js'
import { readDump } from '../../analysis/read-dump.js'
import { AppError } from '../../errors.js'
import { applyStep } from '../../model/validate.js'
import { type ExplainOptions, explainRuleset, type Lang, renderExplanationText } from '../../netfilter/explain.js'
import type { Family } from '../../netfilter/ir.js'
import { readScenarioFile } from '../scenario-file.js'

export async function readTextFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new AppError('InvalidInput', `cannot read ${what} ${path}: ${(err as Error).message}`)
  }
}

export function parseFamilyOption(value: string | undefined): Family | undefined {
  if (value === undefined) return undefined
  if (value === '4' || value === '6') return Number(value) as Family
  throw new AppError('InvalidInput', `--family must be 4 or 6, got "${value}"`)
}

export function register(program: Command): void {
  program
    .command('explain')
    .description('explain every chain and rule of an iptables-save dump or iptables -L listing')
    .argument('<file>', 'iptables-save / ip6tables-save output (with or without -c) or iptables -L -v [-n] listing')
    .option('--lang <lang>', 'en or zh', 'en')
    .option('--json', 'machine-readable output')
    .option('--family <family>', '4 or 6 (default: detected from the dump)')
    .option('--scenario <file>', 'scenario JSON: name the security-group rule behind each rule')
    .action(async (file: string, opts: { lang: string; json?: boolean; family?: string; scenario?: string }) => {
      if (opts.lang !== 'en' && opts.lang !== 'zh')
        throw new AppError('InvalidInput', `--lang must be en or zh, got "${opts.lang}"`)
      const lang: Lang = opts.lang
      const dump = readDump(await readTextFile(file, 'dump'), parseFamilyOption(opts.family))
      let scenarioOptions: Pick<ExplainOptions, 'attribute' | 'expectedPorts'> = {}
      if (opts.scenario) {
        const s = await readScenarioFile(opts.scenario)
        const state = s.steps.reduce(applyStep, {
          security_groups: s.security_groups,
          members: s.members,
          ports: s.ports,
        })
        scenarioOptions = {
          attribute: scenarioAttribution(state, s.config, dump.family),
          expectedPorts: filteredPorts(state),
        }
      }
      const e = explainRuleset(dump.ruleset, { lang, family: dump.family, ...scenarioOptions })
      for (const i of dump.issues) process.stderr.write(`warning: ${file}:${i.line}: ${i.message}: ${i.text}\n`)
      if (opts.json) {
        const out = {
          format: dump.format,
          family: dump.family,
          issues: dump.issues,
          chains: e.chains,
          findings: e.findings,
        }
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
      } else process.stdout.write(renderExplanationText(e, lang))
    })
}
