/**
 * compile: security groups + ports of one host → the netfilter state Neutron 21's
 * iptables firewall drivers produce. Pure: no I/O, no clock, no randomness.
 */

import type { Scenario } from '../model/types.js'
import { applyStep } from '../model/validate.js'
import { renderNormalized } from '../netfilter/render.js'
import { type AgentMemory, type CompiledHost, HostCompiler } from './host.js'

export type { AgentMemory, CompiledHost } from './host.js'
export { CompileCache, compileHost, EMPTY_MEMORY, HostCompiler } from './host.js'

/** One state in the expected.json shape. */
export interface StateResult {
  readonly ipv4: string
  readonly ipv6: string
  readonly ipsets: Readonly<Record<string, readonly string[]>>
  readonly conntrack: readonly string[]
}

export interface RenderResult extends StateResult {
  readonly steps: readonly StateResult[]
}

export function toStateResult(c: CompiledHost): StateResult {
  return { ipv4: renderNormalized(c.ipv4), ipv6: renderNormalized(c.ipv6), ipsets: c.ipsets, conntrack: c.conntrack }
}

/** Compile a scenario and each of its steps, each step from the agent state the previous one left. */
export function compileScenarioStates(s: Scenario): CompiledHost[] {
  const compiler = new HostCompiler(s.config)
  const out: CompiledHost[] = []
  let state = { security_groups: s.security_groups, members: s.members, ports: s.ports }
  let memory: AgentMemory | undefined
  let current = compiler.compile(state, memory)
  out.push(current)
  for (const step of s.steps) {
    state = applyStep(state, step)
    memory = current.memory
    current = compiler.compile(state, memory)
    out.push(current)
  }
  return out
}

export function compileScenario(s: Scenario): RenderResult {
  const [first, ...rest] = compileScenarioStates(s).map(toStateResult)
  if (!first) throw new Error('bug: no initial state')
  return { ...first, steps: rest }
}
