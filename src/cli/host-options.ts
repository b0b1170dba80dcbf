/**
 * Options shared by the commands that work on a host's kernel (apply, diff,
 * counters): which namespace and iptables backend, and where the desired state
 * comes from (a scenario compiled here, or an expected.json document).
 */
import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { DesiredState } from '../agent/plan.js'
import { compileScenarioStates, toStateResult } from '../compile/index.js'
import { AppError } from '../errors.js'
import { type IptablesBackend, RealHost } from '../host/real-host.js'
import type { HostConfig, HostState } from '../model/types.js'
import { applyStep } from '../model/validate.js'
import { readScenarioFile } from './scenario-file.js'

export interface HostCommandOptions {
  readonly netns?: string
  readonly backend: string
  readonly scenario?: string
  readonly expected?: string
  readonly step?: string
}

export function addHostOptions(cmd: Command): Command {
  return cmd
    .option('--netns <name>', 'network namespace of the host (default: the current one)')
    .option('--backend <backend>', 'iptables backend: nft or legacy', 'nft')
    .option('--scenario <file>', 'desired state: a host scenario (shared/spec/scenario.md)')
    .option('--expected <file>', 'desired state: an expected.json document (instead of --scenario)')
    .option('--step <n>', 'which state of the scenario: 0 = initial, default = the last step')
}

export function hostFromOptions(o: HostCommandOptions): RealHost {
  if (o.backend !== 'nft' && o.backend !== 'legacy') {
    throw new AppError('InvalidInput', `--backend must be nft or legacy, got ${JSON.stringify(o.backend)}`)
  }
  return new RealHost({ backend: o.backend as IptablesBackend, ...(o.netns === undefined ? {} : { netns: o.netns }) })
}

function stepIndex(o: HostCommandOptions, count: number): number {
  if (o.step === undefined) return count - 1
  const n = Number(o.step)
  if (!Number.isInteger(n) || n < 0 || n >= count) {
    throw new AppError('InvalidInput', `--step must be an integer 0-${count - 1}, got ${JSON.stringify(o.step)}`)
  }
  return n
}

export interface LoadedDesired {
  readonly desired: DesiredState
  /** Present when the desired state came from a scenario (for counter attribution). */
  readonly state: HostState | null
  readonly config: HostConfig | null
}

export async function loadDesired(o: HostCommandOptions): Promise<LoadedDesired> {
  if ((o.scenario === undefined) === (o.expected === undefined)) {
    throw new AppError('InvalidInput', 'give exactly one of --scenario FILE or --expected FILE')
  }
  if (o.scenario !== undefined) {
    const s = await readScenarioFile(o.scenario)
    const states = compileScenarioStates(s)
    const i = stepIndex(o, states.length)
    let state: HostState = { security_groups: s.security_groups, members: s.members, ports: s.ports }
    for (const step of s.steps.slice(0, i)) state = applyStep(state, step)
    return { desired: toStateResult(states[i]!), state, config: s.config }
  }
  let json: unknown
  try {
    json = JSON.parse(await readFile(o.expected!, 'utf8'))
  } catch (e) {
    throw new AppError('InvalidInput', `cannot read --expected ${o.expected}: ${(e as Error).message}`)
  }
  const docs = [json, ...(((json as { steps?: unknown[] }).steps ?? []) as unknown[])]
  const d = docs[stepIndex(o, docs.length)] as Partial<DesiredState> | undefined
  if (
    !d ||
    typeof d.ipv4 !== 'string' ||
    typeof d.ipv6 !== 'string' ||
    typeof d.ipsets !== 'object' ||
    d.ipsets === null ||
    !Array.isArray(d.conntrack)
  ) {
    throw new AppError(
      'InvalidInput',
      `--expected ${o.expected}: needs ipv4, ipv6 (strings), ipsets (object), conntrack (array)`,
    )
  }
  return {
    desired: { ipv4: d.ipv4, ipv6: d.ipv6, ipsets: d.ipsets, conntrack: d.conntrack },
    state: null,
    config: null,
  }
}
