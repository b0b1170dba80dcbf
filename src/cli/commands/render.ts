/** `sgwall render SCENARIO.json`: the netfilter state Neutron would produce, as expected.json or restore text. */
import type { Command } from 'commander'
import { compileScenario, type RenderResult } from '../../compile/index.js'
import { AppError } from '../../errors.js'
import { NEUTRON_FIXES, type NeutronFix } from '../../model/types.js'
import { readScenarioFile } from '../scenario-file.js'

export function formatIptables(result: RenderResult): string {
  const parts: string[] = []
  const states = [{ label: 'initial state', s: result }, ...result.steps.map((s, i) => ({ label: `step ${i + 1}`, s }))]
  for (const { label, s } of states) {
    parts.push(`# ==== ${label} ====`)
    parts.push('# ---- iptables-restore (IPv4) ----', s.ipv4 || '# (nothing installed)')
    parts.push('# ---- ip6tables-restore (IPv6) ----', s.ipv6 || '# (nothing installed)')
    const sets = Object.entries(s.ipsets)
    if (sets.length > 0) {
      parts.push('# ---- ipset restore ----')
      for (const [name, members] of sets) {
        parts.push(`create ${name} hash:net family ${name.startsWith('NIPv6') ? 'inet6' : 'inet'}`)
        for (const m of members) parts.push(`add ${name} ${m}`)
      }
    }
    if (s.conntrack.length > 0) parts.push('# ---- conntrack deletions ----', ...s.conntrack)
  }
  return `${parts.join('\n').replace(/\n+$/, '')}\n`
}

export function register(program: Command): void {
  program
    .command('render')
    .description('compile a host scenario into the netfilter state Neutron 21 would produce')
    .argument('<scenario>', 'scenario JSON file (shared/spec/scenario.md), or - for stdin')
    .option('--format <format>', 'json (expected.json shape) or iptables (restore documents)', 'json')
    .option('--fix <fixes>', `opt-in fixes of Neutron bugs, comma-separated: ${NEUTRON_FIXES.join(', ')}`)
    .action(async (path: string, opts: { format: string; fix?: string }) => {
      if (opts.format !== 'json' && opts.format !== 'iptables')
        throw new AppError('InvalidInput', `--format must be json or iptables, got "${opts.format}"`)
      const fixes = (opts.fix ?? '').split(',').filter((f) => f !== '')
      for (const f of fixes)
        if (!(NEUTRON_FIXES as readonly string[]).includes(f))
          throw new AppError('InvalidInput', `--fix: unknown fix "${f}" (known: ${NEUTRON_FIXES.join(', ')})`)
      const scenario = await readScenarioFile(path)
      const config = fixes.length ? { ...scenario.config, fixes: fixes as NeutronFix[] } : scenario.config
      const result = compileScenario({ ...scenario, config })
      process.stdout.write(opts.format === 'json' ? `${JSON.stringify(result, null, 2)}\n` : formatIptables(result))
    })
}
