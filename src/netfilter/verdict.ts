/**
 * Verdicts at speed: the simulator's answer (ACCEPT/DROP) for packets whose
 * steps nobody will read, as `sgwall reach` and bench/trace need.
 *
 * For each bridge pass (devices and hook known) the ruleset is specialised
 * once into a flat program: rules whose device matches (physdev, -i/-o) are
 * false for the pass are dropped, the others lose those matches, jumps and
 * gotos are inlined (RETURN becomes a branch to the end of the inlined block),
 * and what remains of each rule is a fixed-size record in one Int32Array —
 * protocol, IPv4 prefix words, port ranges, conntrack states as a bit mask,
 * indexes of ipsets, MACs, IPv6 prefixes and, for the rare other matches, of
 * the interpreter's own closures. Evaluating a pass is a forward scan over a
 * few dozen records, not a walk of rule objects across a 50,000-rule ruleset.
 *
 * Exactness: the program is the interpreter's own semantics (`trace.ts`)
 * partially evaluated on the pass. Whatever the program cannot decide — a match
 * or target the interpreter reports as not simulated, a MAC match on a packet
 * without MAC, a jump deeper than 64, a program too large, conntrack lookups —
 * makes `verdictOf` run the interpreter instead (`FALLBACK`), so the answer is
 * always the interpreter's. `verdict.test.ts` checks equality on random
 * scenarios and hand-written rulesets.
 */

import type { Option, Rule } from './ir.js'
import {
  buildIndex,
  type ChainIndex,
  type CompiledRuleset,
  type Conntrack,
  type CtState,
  candidates,
  compileOption,
  compileSet,
  compileTarget,
  type EvalContext,
  inPrefix,
  type Matcher,
  negate,
  type Packet,
  type Pass,
  type Prefix,
  parsePrefix,
  portRanges,
  protocolNumberOf,
  ruleParts,
  type SetMatcher,
  setHas,
  type TargetKind,
  tracePacket,
  UNKNOWN,
  untrackedByConntrack,
  type Verdict,
} from './trace.js'

// ---- instruction records ----

const OP = 0 // operation, below
const ARG = 1 // label (program counter) or zone
const FLAGS = 2 // which tests the record holds
const SRC = 3 // IPv4 word, or index of an IPv6 prefix
const SRC_MASK = 4
const DST = 5
const DST_MASK = 6
const PROTO = 7
const SPORT_LO = 8
const SPORT_HI = 9
const DPORT_LO = 10
const DPORT_HI = 11
const STATES = 12 // bit mask of conntrack states
const MAC = 13 // index into macs
const SET_SRC = 14 // index into sets
const SET_DST = 15
const GENERIC = 16 // index into generics
// On the first record of an indexed run (OP_RUN): the run's own operation, its end, its port index.
const RUN_OP = 17
const RUN_END = 18
const RUN_PORTS = 19
const STRIDE = 20

const OP_ACCEPT = 1
const OP_DROP = 2
/** Branch to ARG when the record matches (RETURN; end of a goto'd chain when unconditional). */
const OP_BRANCH_IF_MATCH = 3
/** Branch to ARG when the record does not match (a guarded jump: skip the inlined chain). */
const OP_BRANCH_IF_NOT = 4
const OP_ZONE = 5
const OP_NOTRACK = 6
/** The interpreter must answer (something this program cannot evaluate was reached). */
const OP_FALLBACK = 7
/**
 * No effect when it matches (a rule without target, LOG): kept only when evaluating it can
 * reach something unknown (a MAC match on a packet without MAC), which the interpreter reports.
 */
const OP_NOP = 8
/** First record of a run of rules with one action (see `indexRuns`): RUN_OP/ARG is the run's action. */
const OP_RUN = 9

const F_SRC4 = 1
const F_DST4 = 2
const F_SRC6 = 4
const F_DST6 = 8
const F_PROTO = 16
const F_SPORT = 32
const F_DPORT = 64
const F_NOFRAG = 128
const F_STATES = 256
const F_MAC = 512
const F_SET_SRC = 1024
const F_SET_DST = 2048
const F_GENERIC = 4096

const STATE_BITS: Readonly<Record<CtState, number>> = {
  NEW: 1,
  ESTABLISHED: 2,
  RELATED: 4,
  INVALID: 8,
  UNTRACKED: 16,
}

/** A chain as the engine walks it. */
interface EngineChain {
  readonly name: string
  readonly policy: string | null
  readonly rules: readonly Rule[]
  /** Device index of a long chain; null: not built yet; false: none. */
  index: ChainIndex | null | false
}

/** One pass's program (records; the objects they index are the engine's `Refs`). */
interface Program {
  readonly code: Int32Array
  /** Non-zero when the outcome does not depend on the packet: that outcome (R_*), with its zone/notrack. */
  readonly constant: number
  readonly constantZone: number
  readonly constantNotrack: boolean
}

/**
 * The objects records index (IPv6 prefixes, MACs, ipsets, closures, port indexes of runs), one
 * table per engine: evaluating a record never touches a per-pass object.
 */
class Refs {
  readonly prefixes: Prefix[] = []
  readonly macs: string[] = []
  readonly sets: SetMatcher[] = []
  readonly generics: (readonly Matcher[])[] = []
  readonly portIndexes: PortIndex[] = []
  private readonly index = new Map<unknown, number>()
  private readonly portKeys = new Map<string, number>()

  ref<T>(list: T[], v: T): number {
    let i = this.index.get(v)
    if (i === undefined) {
      i = list.length
      list.push(v)
      this.index.set(v, i)
    }
    return i
  }

  portIndex(key: string, build: () => PortIndex): number {
    let i = this.portKeys.get(key)
    if (i === undefined) {
      i = this.portIndexes.length
      this.portIndexes.push(build())
      this.portKeys.set(key, i)
    }
    return i
  }
}

/**
 * Consecutive records with the same action (all RETURN to one place, or all ACCEPT): the first
 * that matches takes the action, so any that matches does — the run is a set, and its records can
 * be tried in any order. Indexed by destination port, the records a packet can match are a few.
 *
 * Which records of a run (offsets from its first) a destination port can match: records testing
 * exactly that port, then those without a single-port test. Shared by every run with the same
 * records (a group's rules repeat in the chains of all its ports), so it stays in the CPU caches.
 */
interface PortIndex {
  readonly byPort: ReadonlyMap<number, readonly number[]>
  readonly rest: readonly number[]
}

// ---- what a rule is, independent of the pass ----

interface RuleShape {
  /** A conjunction that can never hold (two protocols, empty port range, IPv6 extension header protocol). */
  readonly never: boolean
  /** A match the interpreter cannot evaluate: reaching the rule needs the interpreter. */
  readonly unknown: boolean
  /** Device and hook matches: decided per pass. */
  readonly statics: readonly Matcher[]
  /** The record's test fields (OP and ARG left 0). */
  readonly fields: Int32Array
  readonly prefixSrc: Prefix | null
  readonly prefixDst: Prefix | null
  readonly mac: string | null
  readonly setSrc: SetMatcher | null
  readonly setDst: SetMatcher | null
  readonly generic: readonly Matcher[]
  readonly target: TargetKind
}

const STATIC_KEYS = new Set([
  ' -i',
  ' -o',
  'physdev --physdev-in',
  'physdev --physdev-out',
  'physdev --physdev-is-bridged',
  'physdev --physdev-is-in',
  'physdev --physdev-is-out',
])
const PORT_MODULES = new Set(['tcp', 'udp', 'sctp', 'dccp'])
const MULTIPORT_PROTOS = new Set([6, 17, 33, 132, 136])

class ShapeBuilder {
  never = false
  unknown = false
  readonly statics: Matcher[] = []
  readonly fields = new Int32Array(STRIDE)
  prefixSrc: Prefix | null = null
  prefixDst: Prefix | null = null
  mac: string | null = null
  setSrc: SetMatcher | null = null
  setDst: SetMatcher | null = null
  readonly generic: Matcher[] = []

  constructor(
    private readonly family: 4 | 6,
    private readonly sets: (name: string) => SetMatcher | null,
  ) {}

  has(flag: number): boolean {
    return (this.fields[FLAGS]! & flag) !== 0
  }
  set(flag: number): void {
    this.fields[FLAGS]! |= flag
  }
  proto(n: number): void {
    if (this.has(F_PROTO)) {
      if (this.fields[PROTO] !== n) this.never = true
      return
    }
    this.set(F_PROTO)
    this.fields[PROTO] = n
  }
  range(flag: number, lo: number, hi: number, at: number): void {
    if (this.has(flag)) {
      const a = Math.max(this.fields[at]!, lo)
      const b = Math.min(this.fields[at + 1]!, hi)
      this.fields[at] = a
      this.fields[at + 1] = b
    } else {
      this.set(flag)
      this.fields[at] = lo
      this.fields[at + 1] = hi
    }
    if (this.fields[at]! > this.fields[at + 1]!) this.never = true
  }

  /** Place one non-negated option in a typed field; false when it must stay a closure. */
  typed(module: string | null, o: Option, ruleProto: number | null): boolean {
    const a0 = o.args[0] ?? ''
    const key = `${module ?? ''} ${o.flag}`
    switch (key) {
      case ' -s':
      case ' -d': {
        const p = parsePrefix(a0)
        if (!p || p.words.length !== (this.family === 4 ? 1 : 4)) return false
        const src = o.flag === '-s'
        if (this.has(src ? F_SRC4 | F_SRC6 : F_DST4 | F_DST6)) return false
        if (this.family === 4) {
          this.set(src ? F_SRC4 : F_DST4)
          this.fields[src ? SRC : DST] = p.words[0]! | 0
          this.fields[src ? SRC_MASK : DST_MASK] = p.masks[0]! | 0
        } else {
          this.set(src ? F_SRC6 : F_DST6)
          if (src) this.prefixSrc = p
          else this.prefixDst = p
        }
        return true
      }
      case ' -p': {
        const n = protocolNumberOf(a0)
        if (n === null) return false
        if (n === 0) return true
        if (this.family === 6 && (n === 43 || n === 44 || n === 60 || n === 51)) {
          this.never = true
          return true
        }
        this.proto(n)
        return true
      }
    }
    if (module !== null && PORT_MODULES.has(module) && (o.flag === '--sport' || o.flag === '--dport')) {
      const rs = portRanges(a0)
      if (rs?.length !== 1) return false
      this.proto(protocolNumberOf(module)!)
      this.set(F_NOFRAG)
      if (o.flag === '--sport') this.range(F_SPORT, rs[0]![0], rs[0]![1], SPORT_LO)
      else this.range(F_DPORT, rs[0]![0], rs[0]![1], DPORT_LO)
      return true
    }
    if (module === 'multiport' && (o.flag === '--sports' || o.flag === '--dports')) {
      const rs = portRanges(a0)
      if (rs?.length !== 1 || ruleProto === null || !MULTIPORT_PROTOS.has(ruleProto)) return false
      this.proto(ruleProto)
      if (o.flag === '--sports') this.range(F_SPORT, rs[0]![0], rs[0]![1], SPORT_LO)
      else this.range(F_DPORT, rs[0]![0], rs[0]![1], DPORT_LO)
      return true
    }
    if (key === 'state --state' || key === 'conntrack --ctstate') {
      let bits = 0
      for (const s of a0.split(',')) {
        const b = STATE_BITS[s as CtState]
        if (b === undefined) return false
        bits |= b
      }
      if (this.has(F_STATES)) bits &= this.fields[STATES]!
      this.set(F_STATES)
      this.fields[STATES] = bits
      if (bits === 0) this.never = true
      return true
    }
    if (key === 'mac --mac-source') {
      if (this.mac !== null) return false
      this.set(F_MAC)
      this.mac = a0.toLowerCase()
      return true
    }
    if (key === 'set --match-set') {
      const dir = o.args[1]
      if (dir !== 'src' && dir !== 'dst') return false
      if (dir === 'src' ? this.setSrc !== null : this.setDst !== null) return false
      const s = this.sets(a0)
      if (s === null) return false
      if (dir === 'src') {
        this.set(F_SET_SRC)
        this.setSrc = s
      } else {
        this.set(F_SET_DST)
        this.setDst = s
      }
      return true
    }
    // ICMP types and everything else: the interpreter's closure (exact, and rare on a hot path).
    return false
  }

  build(target: TargetKind): RuleShape {
    return {
      never: this.never,
      unknown: this.unknown,
      statics: this.statics,
      fields: this.fields,
      prefixSrc: this.prefixSrc,
      prefixDst: this.prefixDst,
      mac: this.mac,
      setSrc: this.setSrc,
      setDst: this.setDst,
      generic: this.generic,
      target,
    }
  }
}

// ---- the engine: shapes per rule text, programs per pass ----

const MAX_PROGRAM = 20_000
const MAX_DEPTH = 64
/** Chains inlined into one program (goto loops, pathological fan-out): beyond, the interpreter answers. */
const MAX_INLINED = 2_000
const MAX_NESTING = 256

class Overflow extends Error {}

const DUMMY_PACKET: Packet = { family: 4, src: [0], dst: [0], proto: 0 }

class Engine {
  /** Per table, per rule object (the compiler shares rule objects between ports). */
  private readonly shapes = new Map<string, Map<Rule, RuleShape>>()
  private readonly setCache = new Map<string, SetMatcher | null>()
  private readonly optionCache = new Map<string, SetMatcher | string>()
  private readonly byKey = new Map<string, PassPrograms>()
  private readonly chains = new Map<string, Map<string, EngineChain>>()
  private readonly chainNames = new Map<string, ReadonlySet<string>>()
  private inlined = 0

  constructor(readonly rs: CompiledRuleset) {
    for (const t of rs.source.tables) {
      this.chains.set(
        t.name,
        new Map(t.chains.map((c) => [c.name, { name: c.name, policy: c.policy, rules: c.rules, index: null }])),
      )
      this.chainNames.set(t.name, new Set(t.chains.map((c) => c.name)))
    }
  }

  readonly arena = new Arena()
  readonly refs = new Refs()

  programs(pass: Pass): PassPrograms {
    const own = (pass as WithPrograms)[PROGRAMS]
    if (own?.engine === this) return own
    const key = `${pass.bridge}\u0000${pass.physdevIn ?? ''}\u0000${pass.physdevOut ?? ''}`
    let p = this.byKey.get(key)
    if (!p) {
      p = new PassPrograms(this, this.specialise('raw', 'PREROUTING', pass), this.specialise('filter', 'FORWARD', pass))
      this.byKey.set(key, p)
    }
    // Frozen passes, or one pass used with two rulesets in turn, find theirs by devices.
    if (Object.isExtensible(pass))
      Object.defineProperty(pass, PROGRAMS, { value: p, writable: true, enumerable: false, configurable: true })
    return p
  }

  private setMatcher(name: string): SetMatcher | null {
    if (this.setCache.has(name)) return this.setCache.get(name)!
    const members = this.rs.ipsets?.[name]
    const s = members ? compileSet(members, this.rs.family) : null
    const v = typeof s === 'string' ? null : s
    this.setCache.set(name, v)
    return v
  }

  private shape(table: string, rule: Rule): RuleShape {
    let shapes = this.shapes.get(table)
    if (!shapes) {
      shapes = new Map()
      this.shapes.set(table, shapes)
    }
    const hit = shapes.get(rule)
    if (hit) return hit
    const b = new ShapeBuilder(this.rs.family, (n) => this.setMatcher(n))
    const { parts, proto: ruleProto } = ruleParts(rule)
    for (const part of parts) {
      if (part.kind === 'proto') b.proto(part.proto)
      else if (part.kind === 'unknown') b.unknown = true
      else {
        const { module, option: o } = part
        const key = `${module ?? ''} ${o.flag}`
        if (!o.negated && !STATIC_KEYS.has(key) && b.typed(module, o, ruleProto)) continue
        const compiled = compileOption(module, o, this.rs.family, this.rs.ipsets, ruleProto, this.optionCache)
        if (typeof compiled === 'string') {
          b.unknown = true
          continue
        }
        const matcher = o.negated ? negate(compiled) : compiled
        if (STATIC_KEYS.has(key)) b.statics.push(matcher)
        else {
          b.set(F_GENERIC)
          b.generic.push(matcher)
        }
      }
    }
    const s = b.build(compileTarget(rule, this.chainNames.get(table)!))
    shapes.set(rule, s)
    return s
  }

  private specialise(table: string, hook: 'PREROUTING' | 'FORWARD', pass: Pass): Program {
    const chains = this.chains.get(table)
    const start = chains?.get(hook)
    const out = new ProgramWriter(this.refs)
    if (!chains || !start) {
      out.emit(OP_ACCEPT, 0, null)
      return out.finish()
    }
    try {
      const ctx: EvalContext = { packet: DUMMY_PACKET, pass, hook, state: 'NEW' }
      const end = out.label()
      this.inlined = 0
      this.emitChain(table, chains, start, ctx, 0, 0, end, out)
      out.bind(end)
      out.emit(start.policy === 'DROP' ? OP_DROP : OP_ACCEPT, 0, null)
      return out.finish()
    } catch (e) {
      if (!(e instanceof Overflow)) throw e
      const w = new ProgramWriter(this.refs)
      w.emit(OP_FALLBACK, 0, null)
      return w.finish()
    }
  }

  /** Emit a chain's rules for this pass; RETURN (and the end of a goto'd chain) branch to `ret`. */
  private emitChain(
    table: string,
    chains: ReadonlyMap<string, EngineChain>,
    chain: EngineChain,
    ctx: EvalContext,
    depth: number,
    nesting: number,
    ret: Label,
    out: ProgramWriter,
  ): void {
    if (++this.inlined > MAX_INLINED || nesting > MAX_NESTING) throw new Overflow()
    const ir = chain.rules
    // Long chains (Neutron's dispatch and zone chains) get a device index, built on first use.
    if (chain.index === null && ir.length >= 16) chain.index = buildIndex(ir) ?? false
    const cand = chain.index ? candidates(chain.index, ctx.pass) : null
    const n = cand ? cand.length : ir.length
    for (let k = 0; k < n; k++) {
      const i = cand ? cand[k]! : k
      const s = this.shape(table, ir[i]!)
      if (s.never) continue
      let live = true
      for (const m of s.statics) {
        const v = m(ctx)
        if (v === UNKNOWN) {
          out.emit(OP_FALLBACK, 0, null)
          return
        }
        if (!v) {
          live = false
          break
        }
      }
      if (!live) continue
      if (s.unknown) {
        out.emit(OP_FALLBACK, 0, null)
        return
      }
      const always = s.fields[FLAGS] === 0
      const t = s.target
      switch (t.kind) {
        case 'accept':
          out.emit(OP_ACCEPT, 0, s)
          if (always) return
          break
        case 'drop':
          out.emit(OP_DROP, 0, s)
          if (always) return
          break
        case 'return':
          out.branch(OP_BRANCH_IF_MATCH, ret, s)
          if (always) return
          break
        case 'jump':
        case 'goto': {
          const isGoto = t.kind === 'goto'
          if (!isGoto && depth >= MAX_DEPTH) {
            out.emit(OP_FALLBACK, 0, s)
            if (always) return
            break
          }
          const after = out.label()
          if (!always) out.branch(OP_BRANCH_IF_NOT, after, s)
          const target = chains.get(t.chain)!
          if (isGoto) {
            this.emitChain(table, chains, target, ctx, depth, nesting + 1, ret, out)
            out.branch(OP_BRANCH_IF_MATCH, ret, null)
          } else this.emitChain(table, chains, target, ctx, depth + 1, nesting + 1, after, out)
          out.bind(after)
          if (always && isGoto) return
          break
        }
        case 'zone':
          out.emit(OP_ZONE, t.zone, s)
          break
        case 'notrack':
          out.emit(OP_NOTRACK, 0, s)
          break
        case 'continue':
        case 'none':
          if ((s.fields[FLAGS]! & (F_MAC | F_GENERIC)) !== 0) out.emit(OP_NOP, 0, s)
          break
        case 'unknown':
          out.emit(OP_FALLBACK, 0, s)
          if (always) return
          break
      }
    }
  }
}

interface Label {
  pc: number
  readonly refs: number[]
}

class ProgramWriter {
  private code = new Int32Array(STRIDE * 64)
  private n = 0
  constructor(private readonly refs: Refs) {}

  label(): Label {
    return { pc: -1, refs: [] }
  }
  bind(l: Label): void {
    l.pc = this.n
    for (const r of l.refs) this.code[r * STRIDE + ARG] = this.n
  }
  branch(op: number, l: Label, s: RuleShape | null): void {
    const at = this.emit(op, l.pc, s)
    if (l.pc < 0) l.refs.push(at)
  }
  emit(op: number, arg: number, s: RuleShape | null): number {
    if (this.n >= MAX_PROGRAM) throw new Overflow()
    if ((this.n + 1) * STRIDE > this.code.length) {
      const bigger = new Int32Array(this.code.length * 2)
      bigger.set(this.code)
      this.code = bigger
    }
    const b = this.n * STRIDE
    if (s) {
      this.code.set(s.fields, b)
      const r = this.refs
      if (s.prefixSrc) this.code[b + SRC] = r.ref(r.prefixes, s.prefixSrc)
      if (s.prefixDst) this.code[b + DST] = r.ref(r.prefixes, s.prefixDst)
      if (s.mac !== null) this.code[b + MAC] = r.ref(r.macs, s.mac)
      if (s.setSrc) this.code[b + SET_SRC] = r.ref(r.sets, s.setSrc)
      if (s.setDst) this.code[b + SET_DST] = r.ref(r.sets, s.setDst)
      if (s.generic.length > 0) this.code[b + GENERIC] = r.ref(r.generics, s.generic)
    }
    this.code[b + OP] = op
    this.code[b + ARG] = arg
    return this.n++
  }
  finish(): Program {
    return withConstant(this.code.slice(0, this.n * STRIDE))
  }
}

const MIN_RUN = 4

function portIndexOf(code: Int32Array, i: number, j: number, refs: Refs): number {
  // The index depends only on each record's destination port test.
  const parts: string[] = []
  for (let k = i; k < j; k++) {
    const r = k * STRIDE
    parts.push((code[r + FLAGS]! & F_DPORT) === 0 ? '-' : `${code[r + DPORT_LO]}:${code[r + DPORT_HI]}`)
  }
  return refs.portIndex(parts.join(','), () => buildPortIndex(code, i, j))
}

function buildPortIndex(code: Int32Array, i: number, j: number): PortIndex {
  const byPort = new Map<number, number[]>()
  const rest: number[] = []
  for (let k = i; k < j; k++) {
    const r = k * STRIDE
    const lo = code[r + DPORT_LO]!
    if ((code[r + FLAGS]! & F_DPORT) === 0 || code[r + DPORT_HI] !== lo) {
      rest.push(k - i)
      continue
    }
    const l = byPort.get(lo)
    if (l) l.push(k - i)
    else byPort.set(lo, [k - i])
  }
  return { byPort, rest }
}

/** Turn runs of same-action records into indexed sets (in place). Branch targets inside a run end it. */
function indexRuns(code: Int32Array, refs: Refs): void {
  const n = code.length / STRIDE
  const target = new Uint8Array(n + 1)
  for (let k = 0; k < n; k++) {
    const op = code[k * STRIDE + OP]
    if (op === OP_BRANCH_IF_MATCH || op === OP_BRANCH_IF_NOT) target[code[k * STRIDE + ARG]!] = 1
  }
  for (let i = 0; i < n; ) {
    const b = i * STRIDE
    const op = code[b + OP]!
    const arg = code[b + ARG]!
    if ((op !== OP_ACCEPT && op !== OP_DROP && op !== OP_BRANCH_IF_MATCH) || code[b + FLAGS] === 0) {
      i++
      continue
    }
    let j = i + 1
    while (
      j < n &&
      code[j * STRIDE + OP] === op &&
      code[j * STRIDE + ARG] === arg &&
      code[j * STRIDE + FLAGS] !== 0 &&
      target[j] === 0
    )
      j++
    if (j - i < MIN_RUN) {
      i = j
      continue
    }
    code[b + OP] = OP_RUN
    code[b + RUN_OP] = op
    code[b + RUN_END] = j
    code[b + RUN_PORTS] = portIndexOf(code, i, j, refs)
    i = j
  }
}

function withConstant(code: Int32Array): Program {
  // Follow the records from the start while they test nothing: if that reaches a verdict, it is the program's.
  let constant = 0
  let zone = -1
  let notrack = false
  const n = code.length / STRIDE
  for (let pc = 0, guard = 0; pc < n && guard <= n; guard++) {
    const b = pc * STRIDE
    if (code[b + FLAGS] !== 0) break
    const op = code[b + OP]
    if (op === OP_ACCEPT || op === OP_DROP || op === OP_FALLBACK) {
      constant = op === OP_ACCEPT ? R_ACCEPT : op === OP_DROP ? R_DROP : R_FALLBACK
      break
    }
    if (op === OP_BRANCH_IF_MATCH) pc = code[b + ARG]!
    else {
      if (op === OP_ZONE && zone < 0 && !notrack) zone = code[b + ARG]!
      if (op === OP_NOTRACK && zone < 0) notrack = true
      pc++
    }
  }
  return {
    code,
    constant,
    constantZone: zone,
    constantNotrack: notrack,
  }
}

/**
 * The program for packets of one protocol in one conntrack state: records
 * whose protocol or state test fails are removed (a guard that fails becomes an
 * unconditional branch), and those tests are dropped from the others. A second
 * partial evaluation, this time on the packet: a TCP packet never looks at the
 * DHCP rules, a NEW one never at the ESTABLISHED rule. A variant whose outcome
 * is decided before any test is a single unconditional record.
 */
function variantCode(p: Program, proto: number, stateBit: number, refs: Refs): Int32Array {
  const src = p.code
  const n = src.length / STRIDE
  const newPc = new Int32Array(n + 1)
  const kept: number[] = []
  const flags: number[] = []
  const ops: number[] = []
  for (let i = 0; i < n; i++) {
    newPc[i] = kept.length
    const b = i * STRIDE
    const f = src[b + FLAGS]!
    const fails =
      ((f & F_PROTO) !== 0 && src[b + PROTO] !== proto) || ((f & F_STATES) !== 0 && (src[b + STATES]! & stateBit) === 0)
    const op = src[b + OP]!
    if (fails) {
      // A failing guard always branches; any other failing record does nothing.
      if (op === OP_BRANCH_IF_NOT) {
        kept.push(i)
        flags.push(0)
        ops.push(OP_BRANCH_IF_MATCH)
      }
      continue
    }
    kept.push(i)
    flags.push(f & ~(F_PROTO | F_STATES))
    ops.push(op)
  }
  newPc[n] = kept.length
  const code = new Int32Array(kept.length * STRIDE)
  for (let k = 0; k < kept.length; k++) {
    const from = kept[k]! * STRIDE
    const b = k * STRIDE
    code.set(src.subarray(from, from + STRIDE), b)
    code[b + FLAGS] = flags[k]!
    code[b + OP] = ops[k]!
    if (ops[k] === OP_BRANCH_IF_MATCH || ops[k] === OP_BRANCH_IF_NOT) code[b + ARG] = newPc[src[from + ARG]!]!
  }
  const c = withConstant(code).constant
  if (c === 0) {
    indexRuns(code, refs)
    return code
  }
  const one = new Int32Array(STRIDE)
  one[OP] = c === R_ACCEPT ? OP_ACCEPT : c === R_DROP ? OP_DROP : OP_FALLBACK
  return one
}

const MAX_VARIANTS = 8

/**
 * Every filter variant of every pass of one ruleset lives in one growing Int32Array, so running a
 * pass follows few pointers (random ports make each pointer followed a cache miss). Each pass has a
 * header there, `[count, key, offset, key, offset, …]`, naming its variants' offsets.
 */
class Arena {
  data = new Int32Array(1 << 16)
  used = 0
  alloc(n: number): number {
    if (this.used + n > this.data.length) {
      let size = this.data.length * 2
      while (this.used + n > size) size *= 2
      const bigger = new Int32Array(size)
      bigger.set(this.data.subarray(0, this.used))
      this.data = bigger
    }
    const at = this.used
    this.used += n
    return at
  }
}

/** A pass's programs. */
class PassPrograms {
  /** The raw program's outcome when it does not depend on the packet (Neutron's zone rules): read without a detour. */
  readonly rawConstant: number
  readonly rawZone: number
  readonly rawNotrack: boolean
  /** Offset of this pass's variant header in the arena. */
  readonly header: number
  constructor(
    readonly engine: Engine,
    readonly raw: Program,
    readonly filter: Program,
  ) {
    this.rawConstant = raw.constant
    this.rawZone = raw.constantZone
    this.rawNotrack = raw.constantNotrack
    this.header = engine.arena.alloc(1 + 2 * MAX_VARIANTS)
  }

  /** Offset in the arena of the filter variant for (proto, state), built on first use; -1: use `filter`. */
  filterAt(proto: number, stateBit: number): number {
    const key = (stateBit << 8) | proto
    const h = this.header
    let t = this.engine.arena.data
    const count = t[h]!
    for (let i = 0; i < count; i++) if (t[h + 1 + 2 * i] === key) return t[h + 2 + 2 * i]!
    // Rare (many protocols or states through one pass): the whole program answers.
    if (count === MAX_VARIANTS) return -1
    const code = variantCode(this.filter, proto, stateBit, this.engine.refs)
    const at = this.engine.arena.alloc(code.length)
    t = this.engine.arena.data
    t.set(code, at)
    t[h] = count + 1
    t[h + 1 + 2 * count] = key
    t[h + 2 + 2 * count] = at
    return at
  }
}

/** Where a pass keeps its programs (a property on the caller's pass object: no table lookup per pass). */
const PROGRAMS = Symbol('sgwall verdict programs')
type WithPrograms = { [PROGRAMS]?: PassPrograms }

// ---- evaluation ----

const R_ACCEPT = 1
const R_DROP = 2
const R_FALLBACK = 3

// Results of a raw pass besides the verdict (the evaluator is synchronous).
let outZone = -1
let outNotrack = false

const genericCtx: EvalContext = {
  packet: DUMMY_PACKET,
  pass: { bridge: '', physdevIn: null, physdevOut: null },
  hook: 'FORWARD',
  state: 'NEW',
}

// The packet being evaluated, unpacked once per pass (the evaluator is synchronous).
let curPkt: Packet = DUMMY_PACKET
let curPass: Pass = genericCtx.pass
let curHook: 'PREROUTING' | 'FORWARD' = 'FORWARD'
let curState: CtState = 'NEW'
let curStateBit = 1
let curSrc0 = 0
let curDst0 = 0
let curProto = 0
let curSport = -1
let curDport = -1
let curFrag = false

const M_NO = 0
const M_YES = 1
const M_FALLBACK = 2

/** Does the record at `b` match the current packet? */
function matchAt(code: Int32Array, b: number, p: Refs): number {
  const f = code[b + FLAGS]!
  if (f === 0) return M_YES
  if ((f & F_PROTO) !== 0 && curProto !== code[b + PROTO]) return M_NO
  if ((f & F_SRC4) !== 0 && (curSrc0 & code[b + SRC_MASK]!) !== code[b + SRC]) return M_NO
  if ((f & F_DST4) !== 0 && (curDst0 & code[b + DST_MASK]!) !== code[b + DST]) return M_NO
  if ((f & F_DPORT) !== 0 && (curDport < code[b + DPORT_LO]! || curDport > code[b + DPORT_HI]!)) return M_NO
  if ((f & F_SPORT) !== 0 && (curSport < code[b + SPORT_LO]! || curSport > code[b + SPORT_HI]!)) return M_NO
  if ((f & F_NOFRAG) !== 0 && curFrag) return M_NO
  if ((f & F_STATES) !== 0 && (code[b + STATES]! & curStateBit) === 0) return M_NO
  if ((f & F_SRC6) !== 0 && !inPrefix(curPkt.src, p.prefixes[code[b + SRC]!]!)) return M_NO
  if ((f & F_DST6) !== 0 && !inPrefix(curPkt.dst, p.prefixes[code[b + DST]!]!)) return M_NO
  if ((f & F_SET_SRC) !== 0 && !setHas(p.sets[code[b + SET_SRC]!]!, curPkt.src)) return M_NO
  if ((f & F_SET_DST) !== 0 && !setHas(p.sets[code[b + SET_DST]!]!, curPkt.dst)) return M_NO
  if ((f & F_MAC) !== 0) {
    if (curPkt.srcMac === undefined) return M_FALLBACK
    if (curPkt.srcMac !== p.macs[code[b + MAC]!]) return M_NO
  }
  if ((f & F_GENERIC) !== 0) {
    const gs = p.generics[code[b + GENERIC]!]!
    genericCtx.packet = curPkt
    genericCtx.pass = curPass
    genericCtx.hook = curHook
    genericCtx.state = curState
    for (let i = 0; i < gs.length; i++) {
      const v = gs[i]!(genericCtx)
      if (v === UNKNOWN) return M_FALLBACK
      if (!v) return M_NO
    }
  }
  return M_YES
}

/** Whether any of the records at these offsets from `first` matches. */
function anyMatch(code: Int32Array, first: number, offsets: readonly number[], p: Refs): number {
  for (let i = 0; i < offsets.length; i++) {
    const r = matchAt(code, first + offsets[i]! * STRIDE, p)
    if (r !== M_NO) return r
  }
  return M_NO
}

function run(
  code: Int32Array,
  start: number,
  p: Refs,
  pkt: Packet,
  pass: Pass,
  hook: 'PREROUTING' | 'FORWARD',
  state: CtState,
): number {
  curPkt = pkt
  curPass = pass
  curHook = hook
  curState = state
  curStateBit = STATE_BITS[state]
  curSrc0 = pkt.src[0]! | 0
  curDst0 = pkt.dst[0]! | 0
  curProto = pkt.proto
  // Ports are 0-65535: -1 fails every range test, as an absent port must.
  curSport = pkt.sport ?? -1
  curDport = pkt.dport ?? -1
  curFrag = pkt.fragment === true
  outZone = -1
  outNotrack = false
  let pc = 0
  for (;;) {
    const b = start + pc * STRIDE
    const op = code[b + OP]!
    pc++
    if (op === OP_RUN) {
      // A run of rules with one action: any match takes it; the port index names the candidates.
      const ports = p.portIndexes[code[b + RUN_PORTS]!]!
      const byPort = curDport >= 0 ? ports.byPort.get(curDport) : undefined
      let r = byPort !== undefined ? anyMatch(code, b, byPort, p) : M_NO
      if (r === M_NO) r = anyMatch(code, b, ports.rest, p)
      if (r === M_FALLBACK) return R_FALLBACK
      const hit = r === M_YES
      if (!hit) {
        pc = code[b + RUN_END]!
        continue
      }
      const runOp = code[b + RUN_OP]!
      if (runOp === OP_ACCEPT) return R_ACCEPT
      if (runOp === OP_DROP) return R_DROP
      pc = code[b + ARG]!
      continue
    }
    const r = matchAt(code, b, p)
    if (r === M_FALLBACK) return R_FALLBACK
    const m = r === M_YES
    switch (op) {
      case OP_ACCEPT:
        if (m) return R_ACCEPT
        break
      case OP_DROP:
        if (m) return R_DROP
        break
      case OP_BRANCH_IF_MATCH:
        if (m) pc = code[b + ARG]!
        break
      case OP_BRANCH_IF_NOT:
        if (!m) pc = code[b + ARG]!
        break
      case OP_ZONE:
        if (m && outZone < 0 && !outNotrack) outZone = code[b + ARG]!
        break
      case OP_NOTRACK:
        if (m && outZone < 0) outNotrack = true
        break
      case OP_FALLBACK:
        if (m) return R_FALLBACK
        break
    }
  }
}

const engines = new WeakMap<CompiledRuleset, Engine>()
let lastEngine: Engine | null = null

function engineOf(rs: CompiledRuleset): Engine {
  if (lastEngine?.rs === rs) return lastEngine
  let e = engines.get(rs)
  if (!e) {
    e = new Engine(rs)
    engines.set(rs, e)
  }
  lastEngine = e
  return e
}

/** How often the programs answered and how often the interpreter had to (tests check both happen). */
export const verdictStats = { programs: 0, interpreter: 0 }

function interpret(rs: CompiledRuleset, packet: Packet, path: readonly Pass[], conntrack?: Conntrack): Verdict {
  verdictStats.interpreter++
  return tracePacket(rs, packet, path, { record: false, detail: false, ...(conntrack ? { conntrack } : {}) }).verdict
}

/**
 * The verdict `tracePacket` would give, without recording steps. With a
 * conntrack table (flows seen so far) the interpreter answers; without one,
 * the per-pass programs do, falling back to the interpreter on anything they
 * cannot decide.
 */
export function verdictOf(rs: CompiledRuleset, packet: Packet, path: readonly Pass[], conntrack?: Conntrack): Verdict {
  if (conntrack || packet.src.length !== (rs.family === 4 ? 1 : 4) || packet.dst.length !== packet.src.length)
    return interpret(rs, packet, path, conntrack)
  const e = engineOf(rs)
  const given: CtState = packet.state ?? 'NEW'
  const untrackedIcmp = untrackedByConntrack(packet)
  for (let i = 0; i < path.length; i++) {
    const pass = path[i]!
    const progs = e.programs(pass)
    let r = progs.rawConstant
    if (r !== 0) {
      outZone = progs.rawZone
      outNotrack = progs.rawNotrack
    } else r = run(progs.raw.code, 0, e.refs, packet, pass, 'PREROUTING', 'NEW')
    if (r === R_FALLBACK) return interpret(rs, packet, path)
    if (r === R_DROP) {
      verdictStats.programs++
      return 'DROP'
    }
    const state: CtState = outNotrack || untrackedIcmp ? 'UNTRACKED' : given
    const at = progs.filterAt(packet.proto, STATE_BITS[state])
    const f =
      at >= 0
        ? run(e.arena.data, at, e.refs, packet, pass, 'FORWARD', state)
        : run(progs.filter.code, 0, e.refs, packet, pass, 'FORWARD', state)
    if (f === R_FALLBACK) return interpret(rs, packet, path)
    if (f === R_DROP) {
      verdictStats.programs++
      return 'DROP'
    }
  }
  verdictStats.programs++
  return 'ACCEPT'
}

/** For tests and benchmarks: how many records the programs of a pass have. */
export function programSize(rs: CompiledRuleset, pass: Pass): { raw: number; filter: number } {
  const p = engineOf(rs).programs(pass)
  return { raw: p.raw.code.length / STRIDE, filter: p.filter.code.length / STRIDE }
}
