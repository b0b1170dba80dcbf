/**
 * bench/compile: full compile of a 1000-port host and recompiling after one rule is
 * added to one group (npm run bench:compile). Prints medians; no assertions.
 */
import { HostCompiler } from '../src/compile/index.js'
import { renderNormalized } from '../src/netfilter/render.js'
import { addRule, BENCH_CONFIG, makeHost } from './host-shape.js'

const PORTS = Number(process.env.BENCH_PORTS ?? 1000)
const RUNS = Number(process.env.BENCH_RUNS ?? 15)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6
}

const gc = (globalThis as { gc?: () => void }).gc
const state = makeHost(PORTS)
const changed = addRule(state, 3)
const portsUsingGroup = state.ports.filter((p) => p.security_groups.includes(state.security_groups[3]?.id ?? '')).length

const full: number[] = []
const fullRender: number[] = []
const incr: number[] = []
let rules = 0
let heap = 0
for (let i = 0; i < RUNS; i++) {
  gc?.()
  const compiler = new HostCompiler(BENCH_CONFIG)
  let t = process.hrtime.bigint()
  const first = compiler.compile(state)
  full.push(ms(t))
  t = process.hrtime.bigint()
  const v4 = renderNormalized(first.ipv4)
  const v6 = renderNormalized(first.ipv6)
  fullRender.push(ms(t))
  rules = (v4.match(/\n-A /g)?.length ?? 0) + (v6.match(/\n-A /g)?.length ?? 0)
  t = process.hrtime.bigint()
  compiler.compile(changed, first.memory)
  incr.push(ms(t))
  heap = Math.max(heap, process.memoryUsage().heapUsed)
}
const rss = process.memoryUsage().rss
console.log(`bench/compile: ${PORTS} dual-stack ports, 10 groups x 20 rules, ${rules} rules rendered (v4+v6)`)
console.log(
  `  full compile (IR)             median ${median(full).toFixed(1)} ms   (target <= 100 ms; Neutron 21: 3200 ms, ratio ${(3200 / median(full)).toFixed(0)}x)`,
)
console.log(`  full compile + render text    median ${(median(full) + median(fullRender)).toFixed(1)} ms`)
console.log(
  `  one rule added (${portsUsingGroup} ports use the group) median ${median(incr).toFixed(2)} ms   (target <= 5 ms; Neutron 21: 36000 ms, ratio ${(36000 / median(incr)).toFixed(0)}x)`,
)
console.log(
  `  memory: peak heap ${(heap / 2 ** 20).toFixed(0)} MB, rss ${(rss / 2 ** 20).toFixed(0)} MB (target <= 200 MB)`,
)
