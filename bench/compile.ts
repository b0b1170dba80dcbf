/**
 * bench/compile: full compile of a 1000-port host, and recompiling after one rule is
 * added to one group (npm run bench:compile). Prints medians of wall time and of this
 * process's CPU time (steadier on a shared machine); no assertions.
 */
import { HostCompiler } from '../src/compile/index.js'
import { renderNormalized } from '../src/netfilter/render.js'
import { addRule, BENCH_CONFIG, makeHost } from './host-shape.js'

const PORTS = Number(process.env.BENCH_PORTS ?? 1000)
const RUNS = Number(process.env.BENCH_RUNS ?? 21)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}

interface Sample {
  wall: number
  cpu: number
}

function measure<T>(f: () => T): [T, Sample] {
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const out = f()
  const wall = Number(process.hrtime.bigint() - t0) / 1e6
  const c = process.cpuUsage(c0)
  return [out, { wall, cpu: (c.user + c.system) / 1000 }]
}

function fmt(xs: Sample[]): string {
  return `wall ${median(xs.map((x) => x.wall)).toFixed(2)} ms, cpu ${median(xs.map((x) => x.cpu)).toFixed(2)} ms`
}

const gc = (globalThis as { gc?: () => void }).gc
const state = makeHost(PORTS)
const group = state.security_groups[3]?.id ?? ''
const portsUsingGroup = state.ports.filter((p) => p.security_groups.includes(group)).length

const full: Sample[] = []
const render: Sample[] = []
const incr: Sample[] = []
let rules = 0
let heap = 0
for (let i = 0; i < RUNS; i++) {
  gc?.()
  const compiler = new HostCompiler(BENCH_CONFIG)
  const [first, s1] = measure(() => compiler.compile(state))
  full.push(s1)
  const [texts, s2] = measure(() => [renderNormalized(first.ipv4), renderNormalized(first.ipv6)])
  render.push(s2)
  rules = texts.reduce((n, t) => n + (t.match(/\n-A /g)?.length ?? 0), 0)
  gc?.()
  // The agent's case: the state it applied last, then one rule added to one group;
  // ten such changes in a row, each measured.
  let current = state
  let memory = first.memory
  gc?.() // measure the recompiles, not the collection of the full compile's garbage
  for (let n = 0; n < 10; n++) {
    current = addRule(current, 3, n)
    const next = current
    const [out, s3] = measure(() => compiler.compile(next, memory))
    memory = out.memory
    incr.push(s3)
  }
  heap = Math.max(heap, process.memoryUsage().heapUsed)
}
const rss = process.memoryUsage().rss
const fullMs = median(full.map((x) => x.wall))
const incrMs = median(incr.map((x) => x.wall))
console.log(`bench/compile: ${PORTS} dual-stack ports, 10 groups x 20 rules, ${rules} rules (v4+v6), ${RUNS} runs`)
console.log(
  `  full compile (to the IR)        ${fmt(full)}   target <= 100 ms; Neutron 21: 3200 ms (${(3200 / fullMs).toFixed(0)}x)`,
)
console.log(`  render both families to text     ${fmt(render)}`)
console.log(
  `  one rule added (${portsUsingGroup} ports use it)  ${fmt(incr)}   target <= 5 ms; Neutron 21: 36000 ms (${(36000 / incrMs).toFixed(0)}x)`,
)
console.log(
  `  memory: peak heap ${(heap / 2 ** 20).toFixed(0)} MB, rss ${(rss / 2 ** 20).toFixed(0)} MB   target <= 200 MB`,
)
