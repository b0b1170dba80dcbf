/**
 * Executes a plan through a Host, in the order that never opens a hole:
 * ipset additions → iptables (IPv4 and IPv6 concurrently; one --noflush restore
 * each) → ipset removals → conntrack deletions (one batch).
 */
import { AppError } from '../errors.js'
import type { Host } from '../host/host.js'
import {
  type ActualState,
  actualFromDesired,
  type CompiledState,
  type DesiredState,
  type Plan,
  type PlanOptions,
  planApply,
  planApplyCompiled,
  planChange,
} from './plan.js'

export async function readActual(host: Host): Promise<ActualState> {
  const [ipv4, ipv6, ipset] = await Promise.all([host.iptablesSave(4), host.iptablesSave(6), host.ipsetSave()])
  return { ipv4, ipv6, ipset }
}

export interface ApplyReport {
  readonly plan: Plan
  /** Milliseconds: reading the kernel, planning, writing. */
  readonly timings: { readonly read: number; readonly plan: number; readonly write: number }
}

/** Waits for every promise; then throws the first failure, if any (no process is left running). */
async function allOrFirstError(ps: readonly Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(ps)).find((r) => r.status === 'rejected')
  if (failed) throw failed.reason
}

/** One family: the create waves (documents of a wave side by side), then the final document. */
async function restoreFamily(host: Host, plan: Plan, family: 4 | 6): Promise<void> {
  for (const wave of plan.createWaves[family]) {
    await allOrFirstError(wave.map((doc) => host.iptablesRestore(family, doc)))
  }
  const doc = plan.restore[family]
  if (doc !== null) await host.iptablesRestore(family, doc)
}

function withHostDefaults(host: Host, options: PlanOptions): PlanOptions {
  const split = host.restoreSplit
  if (!split || options.splitMinRules !== undefined) return options
  return { ...options, splitMinRules: split.minRules, splitChunkRules: split.chunkRules }
}

/** Runs the kernel writes of a plan. Throws InvalidInput when the plan has issues. */
export async function executePlan(host: Host, plan: Plan): Promise<void> {
  if (plan.issues.length) {
    throw new AppError(
      'InvalidInput',
      `desired state has ${plan.issues.length} problem(s); nothing applied`,
      plan.issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
    )
  }
  if (plan.ipsetPrepare !== '') await host.ipsetRestore(plan.ipsetPrepare)
  // The two families are independent tables, each committed atomically: run them side by
  // side (both start after the ipset additions, the removals wait for both).
  await allOrFirstError([restoreFamily(host, plan, 4), restoreFamily(host, plan, 6)])
  if (plan.ipsetFinish !== '') await host.ipsetRestore(plan.ipsetFinish)
  if (plan.conntrack.length) await host.conntrackDelete(plan.conntrack)
}

/** Read the kernel, plan against what it holds, write: the timings of each. */
async function readPlanWrite(host: Host, planFor: (actual: ActualState) => Plan): Promise<ApplyReport> {
  const t0 = performance.now()
  const actual = await readActual(host)
  const t1 = performance.now()
  const plan = planFor(actual)
  const t2 = performance.now()
  await executePlan(host, plan)
  const t3 = performance.now()
  return { plan, timings: { read: t1 - t0, plan: t2 - t1, write: t3 - t2 } }
}

/** Make the host hold `desired`: read, plan, write. */
export function applyDesired(host: Host, desired: DesiredState, options: PlanOptions = {}): Promise<ApplyReport> {
  return readPlanWrite(host, (actual) => planApply(desired, actual, withHostDefaults(host, options)))
}

/** applyDesired with the desired state as the compiler's Rulesets (no render-and-parse of whole documents). */
export function applyCompiled(host: Host, desired: CompiledState, options: PlanOptions = {}): Promise<ApplyReport> {
  return readPlanWrite(host, (actual) => planApplyCompiled(desired, actual, withHostDefaults(host, options)))
}

/** The difference between the kernel and `desired` (an in-sync host gives a plan without changes). */
export async function diffDesired(host: Host, desired: DesiredState, options: PlanOptions = {}): Promise<Plan> {
  return planApply(desired, await readActual(host), withHostDefaults(host, options))
}

/**
 * Apply a change on top of the state this agent wrote last (`previous`), without
 * re-reading the kernel: the hot path for one rule changed on a big host.
 */
export async function applyChange(
  host: Host,
  previous: DesiredState,
  next: DesiredState,
  options: PlanOptions = {},
): Promise<ApplyReport> {
  const t1 = performance.now()
  const plan = planApply(next, actualFromDesired(previous), withHostDefaults(host, options))
  const t2 = performance.now()
  await executePlan(host, plan)
  const t3 = performance.now()
  return { plan, timings: { read: 0, plan: t2 - t1, write: t3 - t2 } }
}

/**
 * Apply the change between two compiled states (the compiler's Rulesets), assuming
 * the kernel holds `prev`: only chains the compiler rebuilt are looked at.
 */
export async function applyCompiledChange(
  host: Host,
  prev: CompiledState,
  next: CompiledState,
  options: PlanOptions = {},
): Promise<ApplyReport> {
  const t1 = performance.now()
  const plan = planChange(prev, next, withHostDefaults(host, options))
  const t2 = performance.now()
  await executePlan(host, plan)
  const t3 = performance.now()
  return { plan, timings: { read: 0, plan: t2 - t1, write: t3 - t2 } }
}
