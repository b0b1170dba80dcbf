/**
 * bench/apply: a lab host with 1000 hybrid-plugged ports (bare taps, no VM
 * namespaces), the compiler's bench shape (bench/host-shape.ts). Measures the
 * full apply into an empty kernel and the time from "one rule added to one group
 * used by 200 ports" to the kernel holding the new state (compile + render + plan +
 * write), then checks the kernel equals the desired state. Prints medians.
 *
 *   npm run build && node dist/bench/apply.js      (root; BENCH_PORTS, BENCH_RUNS,
 *   BENCH_BACKEND=nft|legacy, BENCH_BRINT=linux|ovs)
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { applyChange, applyDesired, diffDesired } from '../src/agent/apply.js'
import { type DesiredState, isInSync } from '../src/agent/plan.js'
import { HostCompiler, toStateResult } from '../src/compile/index.js'
import { labDown, labHost, labUp } from '../src/host/lab.js'
import type { IptablesBackend } from '../src/host/real-host.js'
import { addRule, BENCH_CONFIG, groupId, makeHost } from './host-shape.js'

const PORTS = Number(process.env.BENCH_PORTS ?? 1000)
const RUNS = Number(process.env.BENCH_RUNS ?? 7)
const BACKEND = (process.env.BENCH_BACKEND ?? 'nft') as IptablesBackend
const BRINT = (process.env.BENCH_BRINT ?? 'linux') as 'linux' | 'ovs'

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}
const f = (n: number) => `${n.toFixed(1)} ms`

const EMPTY: DesiredState = { ipv4: '', ipv6: '', ipsets: {}, conntrack: [] }

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/apply needs root (network namespaces)')
  const state = makeHost(PORTS)
  const changed = addRule(state, 3)
  const users = state.ports.filter((p) => p.security_groups.includes(groupId(3))).length
  const root = mkdtempSync(join(tmpdir(), 'sgwb-'))
  const name = `bench${process.pid % 10000}`
  let t = performance.now()
  const rec = await labUp({
    name,
    brInt: BRINT,
    backend: BACKEND,
    withoutVms: true,
    stateRoot: root,
    ports: state.ports.map((p) => ({ id: p.id, mac_address: p.mac_address, fixed_ips: p.fixed_ips })),
  })
  const plugMs = performance.now() - t
  try {
    const host = labHost(rec)
    console.log(
      `bench/apply: ${PORTS} dual-stack ports plugged (br-int ${BRINT}, no VMs) in ${f(plugMs)}; iptables-${BACKEND}`,
    )

    // full apply into an empty kernel: compile + render + read + plan + write
    const full: number[] = []
    const fullWrite: number[] = []
    let rules = 0
    for (let i = 0; i < Math.min(RUNS, 3); i++) {
      await applyDesired(host, EMPTY)
      t = performance.now()
      const compiled = new HostCompiler(BENCH_CONFIG).compile(state)
      const desired = toStateResult(compiled)
      const r = await applyDesired(host, desired)
      full.push(performance.now() - t)
      fullWrite.push(r.timings.write)
      rules = (desired.ipv4.match(/\n-A /g)?.length ?? 0) + (desired.ipv6.match(/\n-A /g)?.length ?? 0)
    }
    console.log(
      `  full apply (compile+render+read+plan+write)  median ${f(median(full))} (write ${f(median(fullWrite))}); ${rules} rules; target <= 2000 ms`,
    )

    // one rule added to a group used by `users` ports, and removed again, alternately
    const compiler = new HostCompiler(BENCH_CONFIG)
    let memory = compiler.compile(state).memory
    let current = toStateResult(compiler.compile(state, memory))
    await applyDesired(host, current)
    const hot: number[] = []
    const parts = { compile: [] as number[], render: [] as number[], plan: [] as number[], write: [] as number[] }
    let chains = 0
    for (let i = 0; i < RUNS; i++) {
      const target = i % 2 === 0 ? changed : state
      t = performance.now()
      const c = compiler.compile(target, memory)
      const t1 = performance.now()
      const next = toStateResult(c)
      const t2 = performance.now()
      const r = await applyChange(host, current, next)
      hot.push(performance.now() - t)
      parts.compile.push(t1 - t)
      parts.render.push(t2 - t1)
      parts.plan.push(r.timings.plan)
      parts.write.push(r.timings.write)
      chains = r.plan.chainChanges.length
      memory = c.memory
      current = next
    }
    console.log(
      `  one rule added to a group of ${users} ports -> kernel holds it   median ${f(median(hot))} ` +
        `(compile ${f(median(parts.compile))}, render ${f(median(parts.render))}, plan ${f(median(parts.plan))}, ` +
        `write ${f(median(parts.write))}; ${chains} chains rewritten); target <= 50 ms; Neutron 21: 36000 ms, ratio ${(36000 / median(hot)).toFixed(0)}x`,
    )
    const check = await diffDesired(host, current)
    console.log(`  kernel equals the desired state after the changes: ${isInSync(check) ? 'yes' : 'NO'}`)
    if (!isInSync(check)) process.exitCode = 1
  } finally {
    await labDown(name, root)
    rmSync(root, { recursive: true, force: true })
  }
}

await main()
