/**
 * bench/apply: a lab host with 1000 hybrid-plugged ports (bare taps, no VM
 * namespaces), the compiler's bench shape (bench/host-shape.ts). Measures the
 * full apply into an empty kernel (planned from the compiler's Rulesets) and the time from "one rule added to one group
 * used by 200 ports" to the kernel holding the new state (compile + render + plan +
 * write), then checks the kernel equals the desired state. Prints medians.
 *
 *   npm run build && node dist/bench/apply.js      (root; BENCH_PORTS, BENCH_RUNS, BENCH_FULL_RUNS,
 *   BENCH_BACKEND=nft|legacy, BENCH_BRINT=linux|ovs)
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { applyCompiled, applyCompiledChange, applyDesired, diffDesired } from '../src/agent/apply.js'
import { isInSync } from '../src/agent/plan.js'
import { HostCompiler, toStateResult } from '../src/compile/index.js'
import { labDown, labHost, labUp } from '../src/host/lab.js'
import type { IptablesBackend } from '../src/host/real-host.js'
import { addRule, BENCH_CONFIG, groupId, makeHost } from './host-shape.js'

const PORTS = Number(process.env.BENCH_PORTS ?? 1000)
const RUNS = Number(process.env.BENCH_RUNS ?? 7)
const FULL_RUNS = Number(process.env.BENCH_FULL_RUNS ?? 3)
const BACKEND = (process.env.BENCH_BACKEND ?? 'nft') as IptablesBackend
const BRINT = (process.env.BENCH_BRINT ?? 'linux') as 'linux' | 'ovs'

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}
const f = (n: number) => `${n.toFixed(1)} ms`

/** CPU milliseconds used so far by this process and its finished children (/proc/self/stat, 10 ms ticks). */
function cpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')
  // after "pid (comm) ": state is field 3, utime..cstime are fields 14..17
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) * 10
}
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

/** Bench-only reset between full applies: flush filter and raw (no --noflush), destroy all sets. */
function resetKernel(ns: string): void {
  for (const fam of ['iptables', 'ip6tables']) {
    execFileSync('ip', ['netns', 'exec', ns, `${fam}-${BACKEND}-restore`], { input: '*filter\nCOMMIT\n*raw\nCOMMIT\n' })
  }
  execFileSync('ip', ['netns', 'exec', ns, 'ipset', 'destroy'])
}

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

    // full apply into an empty kernel: compile + read + plan (from the Rulesets) + write
    const full: number[] = []
    const fullCpu: number[] = []
    const fullWrite: number[] = []
    let rules = 0
    for (let i = 0; i < FULL_RUNS; i++) {
      resetKernel(rec.hostNetns)
      t = performance.now()
      const c0 = cpuMs()
      const compiled = new HostCompiler(BENCH_CONFIG).compile(state)
      const r = await applyCompiled(host, compiled)
      full.push(performance.now() - t)
      fullCpu.push(cpuMs() - c0)
      fullWrite.push(r.timings.write)
      rules = [compiled.ipv4, compiled.ipv6].reduce(
        (n, rs) => n + rs.tables.reduce((m, t) => m + t.chains.reduce((k, c) => k + c.rules.length, 0), 0),
        0,
      )
    }
    // (3) the final documents written as they are into the reset kernel, both families side by side
    const floorFull: number[] = []
    {
      const desired = toStateResult(new HostCompiler(BENCH_CONFIG).compile(state))
      resetKernel(rec.hostNetns)
      const sets = (await diffDesired(host, desired)).ipsetPrepare
      for (let i = 0; i < FULL_RUNS; i++) {
        resetKernel(rec.hostNetns)
        await host.ipsetRestore(sets)
        t = performance.now()
        await Promise.all([host.iptablesRestore(4, desired.ipv4), host.iptablesRestore(6, desired.ipv6)])
        floorFull.push(performance.now() - t)
      }
    }
    console.log(
      `  full apply (compile+read+plan+write)  median ${f(median(full))} (write ${f(median(fullWrite))}; ` +
        `CPU incl. children ${f(median(fullCpu))}; runs ${full.map((x) => x.toFixed(0)).join(' ')}); ${rules} rules; ` +
        `target <= 2000 ms; load ${load()}\n` +
        `  same documents restored as they are (no planning, no waves; both families side by side) median ${f(median(floorFull))} ` +
        `(${floorFull.map((x) => x.toFixed(0)).join(' ')})`,
    )

    // one rule added to a group used by `users` ports, and removed again, alternately;
    // the agent plans from the compiler's Rulesets of the state it wrote last
    const compiler = new HostCompiler(BENCH_CONFIG)
    let prev = compiler.compile(state)
    await applyDesired(host, toStateResult(prev))
    const hot: number[] = []
    const hotCpu: number[] = []
    const byKind = { add: [] as number[], remove: [] as number[] }
    const parts = { compile: [] as number[], plan: [] as number[], write: [] as number[] }
    let chains = 0
    let lines = 0
    let changeDocs: Record<4 | 6, string | null> = { 4: null, 6: null }
    for (let i = 0; i < RUNS; i++) {
      const target = i % 2 === 0 ? changed : state
      t = performance.now()
      const c0 = cpuMs()
      const next = compiler.compile(target, prev.memory)
      const t1 = performance.now()
      const r = await applyCompiledChange(host, prev, next)
      hot.push(performance.now() - t)
      hotCpu.push(cpuMs() - c0)
      byKind[i % 2 === 0 ? 'add' : 'remove'].push(performance.now() - t)
      parts.compile.push(t1 - t)
      parts.plan.push(r.timings.plan)
      parts.write.push(r.timings.write)
      chains = r.plan.chainChanges.length
      if (i === 0) changeDocs = { 4: r.plan.restore[4], 6: r.plan.restore[6] }
      lines = (r.plan.restore[4] ?? '').split('\n').length + (r.plan.restore[6] ?? '').split('\n').length
      prev = next
    }
    const current = toStateResult(prev)

    // Floors: what the kernel and iptables-restore cost for the same writes without any of our
    // work (same Host path: spawn, namespace, restore shim). (1) one positional insert of the
    // added rule into one port chain and its deletion; (2) the whole change's restore document
    // (200 positional inserts) alone; (3) after a reset, the final documents of the full apply
    // written as they are (no reading, planning or create waves).
    const [fam, doc] = (Object.entries(changeDocs).find(([, d]) => d !== null) ?? []) as [string, string]
    const family = Number(fam) as 4 | 6
    const firstInsert = doc.split('\n').find((l) => l.startsWith('-I '))!
    const [, chain, pos] = firstInsert.split(' ')
    const oneIns = `*filter\n${firstInsert}\nCOMMIT\n`
    const oneDel = `*filter\n-D ${chain} ${pos}\nCOMMIT\n`
    const floorOne: number[] = []
    const floorDoc: number[] = []
    for (let i = 0; i < RUNS; i++) {
      t = performance.now()
      await host.iptablesRestore(family, oneIns)
      floorOne.push(performance.now() - t)
      await host.iptablesRestore(family, oneDel)
    }
    const undo = doc.replace(/^-I (\S+) \d+ /gm, '-D $1 ')
    for (let i = 0; i < RUNS; i++) {
      t = performance.now()
      await host.iptablesRestore(family, doc)
      floorDoc.push(performance.now() - t)
      await host.iptablesRestore(family, undo)
    }
    console.log(
      `  floor: one positional insert (1 rule, 1 chain, IPv${family}) median ${f(median(floorOne))} ` +
        `(${floorOne.map((x) => x.toFixed(0)).join(' ')}); the change's document alone median ${f(median(floorDoc))} ` +
        `(${floorDoc.map((x) => x.toFixed(0)).join(' ')})`,
    )
    console.log(
      `  one rule added to a group of ${users} ports -> kernel holds it   median ${f(median(hot))} ` +
        `(compile ${f(median(parts.compile))}, plan ${f(median(parts.plan))}, write ${f(median(parts.write))}; ` +
        `${chains} chains edited, ${lines} restore lines); target <= 50 ms; Neutron 21: 36000 ms, ratio ${(36000 / median(hot)).toFixed(0)}x\n` +
        `    added: median ${f(median(byKind.add))} (${byKind.add.map((x) => x.toFixed(0)).join(' ')}); ` +
        `removed: median ${f(median(byKind.remove))} (${byKind.remove.map((x) => x.toFixed(0)).join(' ')}); ` +
        `CPU incl. children median ${f(median(hotCpu))}; load ${load()}`,
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
