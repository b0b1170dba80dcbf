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
  const restores: Promise<void>[] = []
  if (plan.restore[4] !== null) restores.push(host.iptablesRestore(4, plan.restore[4]))
  if (plan.restore[6] !== null) restores.push(host.iptablesRestore(6, plan.restore[6]))
  const failed = (await Promise.allSettled(restores)).find((r) => r.status === 'rejected')
  if (failed) throw failed.reason
  if (plan.ipsetFinish !== '') await host.ipsetRestore(plan.ipsetFinish)
  if (plan.conntrack.length) await host.conntrackDelete(plan.conntrack)
}

/** Make the host hold `desired`: read, plan, write. */
export async function applyDesired(host: Host, desired: DesiredState, options: PlanOptions = {}): Promise<ApplyReport> {
  const t0 = performance.now()
  const actual = await readActual(host)
  const t1 = performance.now()
  const plan = planApply(desired, actual, options)
  const t2 = performance.now()
  await executePlan(host, plan)
  const t3 = performance.now()
  return { plan, timings: { read: t1 - t0, plan: t2 - t1, write: t3 - t2 } }
}

/** The difference between the kernel and `desired` (an in-sync host gives a plan without changes). */
export async function diffDesired(host: Host, desired: DesiredState, options: PlanOptions = {}): Promise<Plan> {
  return planApply(desired, await readActual(host), options)
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
  const plan = planApply(next, actualFromDesired(previous), options)
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
  const plan = planChange(prev, next, options)
  const t2 = performance.now()
  await executePlan(host, plan)
  const t3 = performance.now()
  return { plan, timings: { read: 0, plan: t2 - t1, write: t3 - t2 } }
}
