/**
 * bench/trace: the 1000-port host of bench/compile. Verdicts per second for
 * random packets between its ports (rules compiled once into the evaluation
 * structure, steps not recorded), the same with every step recorded (what
 * `sgwall trace` prints), and `reach` over all 1000 × 999 pairs.
 * Prints medians; no assertions. Packets come from a fixed-seed PRNG.
 */

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hostPath } from '../src/analysis/path.js'
import { reachMatrix } from '../src/analysis/reach.js'
import { HostTracer } from '../src/analysis/trace-host.js'
import { compileHost } from '../src/compile/index.js'
import { type Packet, parseAddr, tracePacket } from '../src/netfilter/trace.js'
import { verdictOf } from '../src/netfilter/verdict.js'
import { BENCH_CONFIG, makeHost } from './host-shape.js'

const PORTS = Number(process.env.BENCH_PORTS ?? 1000)
const PACKETS = Number(process.env.BENCH_PACKETS ?? 200_000)
const RUNS = Number(process.env.BENCH_RUNS ?? 5)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9

let seed = 12345
const rand = () => {
  seed = (seed * 1103515245 + 12345) >>> 0
  return seed / 4294967296
}

const state = makeHost(PORTS)
let t = process.hrtime.bigint()
const compiled = compileHost(state, BENCH_CONFIG)
const compileS = seconds(t)
const tracer = new HostTracer({
  config: BENCH_CONFIG,
  state,
  ipv4: compiled.ipv4,
  ipv6: compiled.ipv6,
  ipsets: compiled.ipsets,
})
t = process.hrtime.bigint()
const rs = tracer.rulesetFor(4)
// The interpreter's closures (what `sgwall trace` walks) are built on first use; verdicts do not need them.
void rs.tables
const evalCompileS = seconds(t)

// Random packets between ports (tcp/udp to the rules' port range, some outside it), paths precomputed per pair.
const eps = state.ports.map((port) => ({ kind: 'port', port }) as const)
const addrs = state.ports.map((p) => parseAddr(p.fixed_ips[0]!)!.addr)
const work: { packet: Packet; path: ReturnType<typeof hostPath> }[] = []
const outside = { kind: 'external', address: '0.0.0.0' } as const
const leave = eps.map((e) => hostPath(BENCH_CONFIG, e, outside)[0]!)
const enter = eps.map((e) => hostPath(BENCH_CONFIG, outside, e)[0]!)
for (let i = 0; i < 4096; i++) {
  const b0 = Math.floor(rand() * PORTS)
  if (i % 3 === 0) {
    // From outside, out of a prefix an ingress rule of one of the port's groups allows.
    const g = Number.parseInt(state.ports[b0]!.security_groups[0]!.slice(0, 8), 16) & 0xff
    const j = 2 * Math.floor(rand() * 10)
    work.push({
      packet: {
        family: 4,
        src: parseAddr(`10.${g}.${j}.5`)!.addr,
        dst: addrs[b0]!,
        proto: j % 5 === 4 ? 17 : 6,
        sport: 40000,
        dport: 1000 + j,
        state: 'NEW',
      },
      path: [enter[b0]!],
    })
    continue
  }
  const a = Math.floor(rand() * PORTS)
  let b = Math.floor(rand() * PORTS)
  if (b === a) b = (b + 1) % PORTS
  const proto = rand() < 0.8 ? 6 : 17
  const packet: Packet = {
    family: 4,
    src: addrs[a]!,
    dst: addrs[b]!,
    proto,
    sport: 40000,
    dport: rand() < 0.5 ? 1000 + 6 * Math.floor(rand() * 4) : 990 + Math.floor(rand() * 140),
    srcMac: state.ports[a]!.mac_address,
    state: 'NEW',
  }
  work.push({ packet, path: [leave[a]!, enter[b]!] })
}

// Warm-up: the first verdict through a pass specialises its programs (lazily); timed separately.
t = process.hrtime.bigint()
for (const w of work) verdictOf(rs, w.packet, w.path)
const warmS = seconds(t)
const rates: number[] = []
const cpuRates: number[] = []
let accepted = 0
for (let r = 0; r < RUNS; r++) {
  accepted = 0
  const c0 = process.cpuUsage()
  t = process.hrtime.bigint()
  for (let i = 0; i < PACKETS; i++) {
    const w = work[i & 4095]!
    if (verdictOf(rs, w.packet, w.path) === 'ACCEPT') accepted++
  }
  rates.push(PACKETS / seconds(t))
  const c = process.cpuUsage(c0)
  cpuRates.push(PACKETS / ((c.user + c.system) / 1e6))
}
const recorded: number[] = []
for (let r = 0; r < RUNS; r++) {
  t = process.hrtime.bigint()
  const n = Math.floor(PACKETS / 20)
  for (let i = 0; i < n; i++) {
    const w = work[i & 4095]!
    tracePacket(rs, w.packet, w.path, { record: true })
  }
  recorded.push(n / seconds(t))
}
const reach: number[] = []
const reachCold: number[] = []
let pairs = 0
for (let r = 0; r < Math.min(RUNS, 3); r++) {
  // Cold: a new tracer compiles the ruleset to the evaluation structure and specialises every pass.
  t = process.hrtime.bigint()
  const cold = new HostTracer({
    config: BENCH_CONFIG,
    state,
    ipv4: compiled.ipv4,
    ipv6: compiled.ipv6,
    ipsets: compiled.ipsets,
  })
  reachMatrix(cold, { proto: 'tcp', family: 4, dport: 1000 })
  reachCold.push(seconds(t))
  t = process.hrtime.bigint()
  const m = reachMatrix(tracer, { proto: 'tcp', family: 4, dport: 1000 })
  reach.push(seconds(t))
  pairs = m.ports.length * (m.ports.length - 1)
}

console.log(`  (verdict runs: ${rates.map((r) => Math.round(r / 1000)).join(', ')} thousand/s)`)
const v = median(rates)
console.log(
  `bench/trace: ${PORTS} ports, ${compiled.ipv4.tables.reduce((n, tb) => n + tb.chains.reduce((k, c) => k + c.rules.length, 0), 0)} IPv4 rules`,
)
console.log(
  `  compileHost: ${compileS.toFixed(2)} s; interpreter closures (traces with steps): ${(evalCompileS * 1000).toFixed(0)} ms`,
)
console.log(
  `  verdict programs for the passes of the 4096 packets (built by the first verdict through each pass and protocol): ${(warmS * 1000).toFixed(0)} ms`,
)
console.log(
  `  verdicts/s (no steps recorded): median ${Math.round(v).toLocaleString('en')} over ${RUNS} runs of ${PACKETS} packets (${((100 * accepted) / PACKETS).toFixed(1)} % accepted), per CPU second ${Math.round(median(cpuRates)).toLocaleString('en')}; target 1,000,000: ratio ${(v / 1e6).toFixed(2)}`,
)
console.log(`  traces/s with every step recorded: median ${Math.round(median(recorded)).toLocaleString('en')}`)
console.log(
  `  reach ${pairs.toLocaleString('en')} pairs: median ${median(reach).toFixed(2)} s warm, ${median(reachCold).toFixed(2)} s cold (evaluation structure built inside); target 2 s: ratio ${(median(reachCold) / 2).toFixed(2)}`,
)

// The command a user runs, end to end: node start, read and validate the scenario, compile, reach, print.
const dir = mkdtempSync(join(tmpdir(), 'sgwall-bench-trace-'))
const file = join(dir, 'host.json')
writeFileSync(file, JSON.stringify({ description: 'bench/trace host', config: BENCH_CONFIG, ...state, steps: [] }))
const bin = join(import.meta.dirname, '..', '..', 'bin', 'sgwall')
const cli: number[] = []
for (let r = 0; r < 3; r++) {
  t = process.hrtime.bigint()
  const out = spawnSync(process.execPath, [bin, 'reach', '--scenario', file, '--proto', 'tcp', '--dport', '1000'], {
    maxBuffer: 64 << 20,
  })
  cli.push(seconds(t))
  if (out.status !== 0) throw new Error(`sgwall reach failed: ${out.stderr}`)
}
rmSync(dir, { recursive: true, force: true })
console.log(
  `  \`sgwall reach --scenario\` (1000 ports, whole command, 10 MB of matrix printed): median ${median(cli).toFixed(2)} s`,
)
