/**
 * The reconciler's decision, pure: desired state (the compiler's normalized
 * documents) + actual state (the kernel's iptables-save and ipset save) → the
 * smallest set of kernel writes that makes actual equal desired, touching only
 * what is ours.
 *
 * Ours: user chains whose name starts with an owned prefix (`neutron-`), rules in
 * built-in chains whose target is such a chain, ipsets whose name starts with an
 * owned prefix (`NIPv4`, `NIPv6`). Everything else is never named in the plan,
 * so it is left exactly as it was.
 *
 * No blink: one `iptables-restore --noflush` document per family. A changed chain
 * is rewritten by declaring it (`:CHAIN - [0:0]`, which flushes it under
 * --noflush) followed by its full new rule list; the kernel commits each table
 * atomically (legacy: one table replace; nft: one transaction), so no packet sees
 * a half-written chain. New chains are declared before any rule jumps to them;
 * removed chains are flushed and deleted at the end of the table, after the
 * rules that jumped to them are gone.
 *
 * ipsets: new sets and added members are written before the rules (so new rules
 * never see a set missing what they need), removed members and destroyed sets
 * after the rules (so old rules keep what they needed until they are replaced).
 * A large change to one set fills a temporary set and swaps it in.
 */

import { isValidSetName, parseIpsetSave, type SavedSet } from '../netfilter/ipset-text.js'
import { BUILTIN_CHAINS, type Chain, isBuiltinChain, type Rule, type Ruleset } from '../netfilter/ir.js'
import { renderRuleBody } from '../netfilter/render.js'
import {
  findSavedChain,
  normalizeRawBody,
  normalizeTokens,
  parseSaveText,
  ruleTarget,
  type SavedChain,
  type SavedDoc,
  type SavedTable,
  tokenizeLine,
} from '../netfilter/save-text.js'

export type Family = 4 | 6

/** What the kernel must hold: the shape of the compiler's RenderResult / expected.json. */
export interface DesiredState {
  readonly ipv4: string
  readonly ipv6: string
  readonly ipsets: Readonly<Record<string, readonly string[]>>
  /** `conntrack -D …` command lines to run once the rules are in place. */
  readonly conntrack: readonly string[]
}

/** What the kernel holds: raw tool output. */
export interface ActualState {
  readonly ipv4: string
  readonly ipv6: string
  readonly ipset: string
}

export interface Ownership {
  readonly chainPrefixes: readonly string[]
  readonly setPrefixes: readonly string[]
}

export const NEUTRON_OWNERSHIP: Ownership = { chainPrefixes: ['neutron-'], setPrefixes: ['NIPv4', 'NIPv6'] }

export interface ConntrackDeletion {
  readonly family: 'ipv4' | 'ipv6'
  readonly protocol?: string
  readonly source?: string
  readonly destination?: string
  readonly zone?: number
}

/**
 * create: new chain, declared and filled; rewrite: declared (flushed) and refilled;
 * edit: a few rules deleted/inserted by position; delete: flushed and removed;
 * jumps: our rules in a built-in chain replaced.
 */
export type ChainChangeKind = 'create' | 'rewrite' | 'edit' | 'delete' | 'jumps'

export interface ChainChange {
  readonly family: Family
  readonly table: string
  readonly chain: string
  readonly kind: ChainChangeKind
  /** Our rule bodies in the kernel before (for built-in chains: only our jumps). */
  readonly before: readonly string[]
  readonly after: readonly string[]
}

export type SetChangeKind = 'create' | 'update' | 'swap' | 'destroy'

export interface SetChange {
  readonly name: string
  readonly kind: SetChangeKind
  readonly add: readonly string[]
  readonly remove: readonly string[]
}

export interface PlanIssue {
  readonly path: string
  readonly message: string
}

export interface Plan {
  /** One `--noflush` restore document per family, null when nothing changes. */
  readonly restore: { readonly 4: string | null; readonly 6: string | null }
  /**
   * Per family, `--noflush` documents run before `restore`, wave after wave (the
   * documents of one wave side by side): they only create chains the kernel does
   * not hold, which nothing references until `restore` commits. Empty unless the
   * plan creates many rules (a first apply on a big host).
   */
  readonly createWaves: { readonly 4: readonly (readonly string[])[]; readonly 6: readonly (readonly string[])[] }
  /** `ipset restore` document run before the rules: creates, member additions, swaps. */
  readonly ipsetPrepare: string
  /** `ipset restore` document run after the rules: member removals, destroys. */
  readonly ipsetFinish: string
  readonly conntrack: readonly ConntrackDeletion[]
  readonly chainChanges: readonly ChainChange[]
  readonly setChanges: readonly SetChange[]
  /** Problems with the inputs; a plan with issues must not be applied. */
  readonly issues: readonly PlanIssue[]
}

export interface PlanOptions {
  readonly ownership?: Ownership
  /** A set whose change touches more members than this is rebuilt and swapped. */
  readonly swapThreshold?: number
  /** A chain change of at most this many deleted+inserted rules is an edit, not a rewrite (0: always rewrite). */
  readonly maxEdit?: number
  /** New chains are created ahead in `createWaves` when they hold at least this many rules (default: never). */
  readonly splitMinRules?: number
  /** Rules per document of a create wave (default 5000). */
  readonly splitChunkRules?: number
}

function splitOptions(options: PlanOptions): { minRules: number; chunkRules: number } {
  return { minRules: options.splitMinRules ?? Number.POSITIVE_INFINITY, chunkRules: options.splitChunkRules ?? 5000 }
}

const CHAIN_NAME = /^[A-Za-z0-9_.-]{1,28}$/
const TABLE_NAME = /^(filter|raw|mangle|nat|security)$/
const IPSET_MEMBER = /^([0-9.]{7,15}|[0-9a-fA-F:]{2,39})(\/\d{1,3})?$/

function owned(name: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => name.startsWith(p))
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function hasOwned(t: SavedTable, o: Ownership): boolean {
  return t.chains.some(
    (c) =>
      owned(c.name, o.chainPrefixes) ||
      (isBuiltinChain(t.name, c.name) && c.rules.some((r) => owned(ruleTarget(r.body) ?? '', o.chainPrefixes))),
  )
}

/**
 * A small change to a chain as positional deletes and inserts (common prefix and
 * suffix kept): rewriting a 30-rule chain to add one rule costs the kernel 30
 * rules, the edit one. Null when the middle is large (then the chain is rewritten).
 * Deletes go from the end so positions stay valid; inserts use final positions.
 * Positions come from `before`, so `before` must be what the kernel holds: the
 * kernel's own listing, or what this agent wrote last (a periodic diff catches drift).
 */
export function editScript(
  chain: string,
  before: readonly string[],
  after: readonly string[],
  maxEdit: number,
): string[] | null {
  let prefix = 0
  while (prefix < before.length && prefix < after.length && before[prefix] === after[prefix]) prefix++
  let suffix = 0
  while (
    suffix < before.length - prefix &&
    suffix < after.length - prefix &&
    before[before.length - 1 - suffix] === after[after.length - 1 - suffix]
  ) {
    suffix++
  }
  const dels = before.length - prefix - suffix
  const ins = after.length - prefix - suffix
  if (dels + ins > maxEdit || dels + ins >= after.length) return null
  const out: string[] = []
  for (let i = before.length - suffix - 1; i >= prefix; i--) out.push(`-D ${chain} ${i + 1}`)
  for (let j = prefix; j < after.length - suffix; j++) out.push(`-I ${chain} ${j + 1} ${after[j]}`)
  return out
}

/** A chain the kernel does not hold yet, with its rules: may be created ahead of the final commit. */
interface NewChain {
  readonly table: string
  readonly name: string
  readonly bodies: readonly string[]
}

/**
 * Pre-creation of new chains in separate, smaller restore commits, before the
 * final one. A new chain is referenced by nothing in the kernel until the final
 * commit adds the jumps to it (from built-in chains, rewritten or other new
 * chains), so creating it earlier changes no packet's path: the final commit
 * still switches from the old policy to the new one at once.
 *
 * Why: iptables-nft-restore keeps the chains a document names in a sorted list
 * that it walks for every rule (its cache request), so one document naming
 * thousands of chains costs time quadratic in their number; several documents of
 * a few thousand rules each cost far less, and run side by side on several cores.
 * Waves: a new chain that jumps to another new chain is created in a later wave
 * than its target (the kernel checks that a jump target exists); the documents of
 * one wave are independent.
 */
function createWaves(created: readonly NewChain[], chunkRules: number): NewChain[][][] | null {
  const byTable = new Map<string, Map<string, NewChain>>()
  for (const c of created) {
    let m = byTable.get(c.table)
    if (!m) {
      m = new Map()
      byTable.set(c.table, m)
    }
    m.set(c.name, c)
  }
  const depth = new Map<NewChain, number>()
  const visiting = new Set<NewChain>()
  const depthOf = (c: NewChain): number => {
    const known = depth.get(c)
    if (known !== undefined) return known
    if (visiting.has(c)) throw new Error('loop')
    visiting.add(c)
    let d = 0
    const names = byTable.get(c.table)!
    for (const b of c.bodies) {
      const t = ruleTarget(b)
      const target = t === null || t === c.name ? undefined : names.get(t)
      if (target) d = Math.max(d, depthOf(target) + 1)
    }
    visiting.delete(c)
    depth.set(c, d)
    return d
  }
  try {
    for (const c of created) depthOf(c)
  } catch {
    return null // a jump loop among new chains: the kernel will refuse it; keep one document
  }
  const waves: NewChain[][][] = []
  const docRules = new Map<NewChain[], number>()
  for (const c of created) {
    const d = depth.get(c)!
    while (waves.length <= d) waves.push([])
    const wave = waves[d]!
    let doc = wave[wave.length - 1]
    const rules = doc ? docRules.get(doc)! : 0
    if (!doc || (rules > 0 && rules + c.bodies.length > chunkRules) || doc[0]!.table !== c.table) {
      doc = []
      wave.push(doc)
    }
    doc.push(c)
    docRules.set(doc, (docRules.get(doc) ?? 0) + c.bodies.length)
  }
  return waves
}

function renderCreateDoc(chains: readonly NewChain[]): string {
  const lines = [`*${chains[0]!.table}`]
  for (const c of chains) lines.push(`:${c.name} - [0:0]`)
  for (const c of chains) for (const b of c.bodies) lines.push(b === '' ? `-A ${c.name}` : `-A ${c.name} ${b}`)
  lines.push('COMMIT')
  return `${lines.join('\n')}\n`
}

/** Plan one family: the restore documents and the chain changes. */
function planFamily(
  family: Family,
  desired: SavedDoc,
  actual: SavedDoc,
  o: Ownership,
  issues: PlanIssue[],
  maxEdit: number,
  split: { readonly minRules: number; readonly chunkRules: number },
): { doc: string | null; waves: string[][]; changes: ChainChange[] } {
  const changes: ChainChange[] = []
  const path = `ipv${family}`
  const tableNames = new Set<string>()
  for (const t of desired.tables) tableNames.add(t.name)
  for (const t of actual.tables) if (hasOwned(t, o)) tableNames.add(t.name)
  const tables: { name: string; fills: NewChain[]; rest: string[]; created: NewChain[] }[] = []
  for (const tableName of [...tableNames].sort(byteOrder)) {
    if (!TABLE_NAME.test(tableName)) {
      issues.push({ path, message: `table ${JSON.stringify(tableName)} is not a netfilter table` })
      continue
    }
    const d = desired.tables.find((t) => t.name === tableName)
    const a = actual.tables.find((t) => t.name === tableName)
    const fills: NewChain[] = [] // chains declared (flushed or created) and filled, in order
    const created: NewChain[] = []
    const edits: string[] = []
    const builtinOps: string[] = []
    const removals: string[] = []
    // user chains
    const desiredUser = (d?.chains ?? []).filter((c) => !isBuiltinChain(tableName, c.name))
    const actualUser = (a?.chains ?? []).filter(
      (c) => !isBuiltinChain(tableName, c.name) && owned(c.name, o.chainPrefixes),
    )
    for (const c of [...desiredUser].sort((x, y) => byteOrder(x.name, y.name))) {
      if (!CHAIN_NAME.test(c.name) || !owned(c.name, o.chainPrefixes)) {
        issues.push({ path: `${path}.${tableName}.${c.name}`, message: 'desired chain is not an owned chain name' })
        continue
      }
      const after = c.rules.map((r) => r.body)
      const cur = findSavedChain(a, c.name)
      const before = cur ? cur.rules.map((r) => r.body) : []
      if (cur && sameList(before, after)) continue
      const edit = cur ? editScript(c.name, before, after, maxEdit) : null
      if (edit) {
        changes.push({ family, table: tableName, chain: c.name, kind: 'edit', before, after })
        edits.push(...edit)
        continue
      }
      changes.push({ family, table: tableName, chain: c.name, kind: cur ? 'rewrite' : 'create', before, after })
      const fill = { table: tableName, name: c.name, bodies: after }
      fills.push(fill)
      if (!cur) created.push(fill)
    }
    const desiredNames = new Set(desiredUser.map((c) => c.name))
    const gone = actualUser.filter((c) => !desiredNames.has(c.name))
    gone.sort((x, y) => byteOrder(x.name, y.name))
    for (const c of gone) {
      changes.push({
        family,
        table: tableName,
        chain: c.name,
        kind: 'delete',
        before: c.rules.map((r) => r.body),
        after: [],
      })
      removals.push(`-F ${c.name}`)
    }
    for (const c of gone) removals.push(`-X ${c.name}`)
    // built-in chains: only our jumps
    const builtinNames = new Set<string>()
    for (const c of d?.chains ?? []) if (isBuiltinChain(tableName, c.name)) builtinNames.add(c.name)
    for (const c of a?.chains ?? []) if (isBuiltinChain(tableName, c.name)) builtinNames.add(c.name)
    for (const name of builtinNames) {
      const want = (findSavedChain(d, name)?.rules ?? []).map((r) => r.body)
      for (const body of want) {
        const target = ruleTarget(body)
        if (target === null || !owned(target, o.chainPrefixes)) {
          issues.push({
            path: `${path}.${tableName}.${name}`,
            message: `desired rule in a built-in chain must jump to an owned chain: ${body}`,
          })
        }
      }
      const have = (findSavedChain(a, name)?.rules ?? [])
        .map((r) => r.body)
        .filter((b) => owned(ruleTarget(b) ?? '', o.chainPrefixes))
      if (sameList(have, want)) continue
      changes.push({ family, table: tableName, chain: name, kind: 'jumps', before: have, after: want })
      // Delete every jump of ours, then insert the desired ones at the top, in order.
      // Both happen inside the table's single commit, so no packet misses a jump.
      for (const body of have) builtinOps.push(`-D ${name} ${body}`)
      want.forEach((body, i) => {
        builtinOps.push(`-I ${name} ${i + 1} ${body}`)
      })
    }
    tables.push({ name: tableName, fills, rest: [...edits, ...builtinOps, ...removals], created })
  }
  const allCreated = tables.flatMap((t) => t.created)
  const createdRules = allCreated.reduce((n, c) => n + c.bodies.length, 0)
  const waves = createdRules >= split.minRules ? createWaves(allCreated, split.chunkRules) : null
  const lines: string[] = []
  for (const t of tables) {
    // with waves, the final document leaves out the chains they create
    const early = new Set<NewChain>(waves ? t.created : [])
    const fills = early.size ? t.fills.filter((c) => !early.has(c)) : t.fills
    if (fills.length + t.rest.length === 0) continue
    lines.push(`*${t.name}`)
    for (const c of fills) lines.push(`:${c.name} - [0:0]`)
    for (const c of fills) for (const b of c.bodies) lines.push(b === '' ? `-A ${c.name}` : `-A ${c.name} ${b}`)
    for (const l of t.rest) lines.push(l)
    lines.push('COMMIT')
  }
  return {
    doc: lines.length === 0 ? null : `${lines.join('\n')}\n`,
    waves: (waves ?? []).map((wave) => wave.map(renderCreateDoc)),
    changes,
  }
}

/** Parse a `conntrack -D …` command line of the compiler's output. */
export function parseConntrackCommand(line: string): ConntrackDeletion | string {
  const toks = tokenizeLine(line)
  if (toks[0] !== 'conntrack' || toks[1] !== '-D') return 'must start with "conntrack -D"'
  let family: 'ipv4' | 'ipv6' | undefined
  const d: { protocol?: string; source?: string; destination?: string; zone?: number } = {}
  for (let i = 2; i < toks.length; i += 2) {
    const flag = toks[i]!
    const v = toks[i + 1]
    if (v === undefined) return `option ${flag} has no value`
    switch (flag) {
      case '-f':
        if (v !== 'ipv4' && v !== 'ipv6') return `-f ${v}: must be ipv4 or ipv6`
        family = v
        break
      case '-p':
        if (!/^[a-z0-9-]{1,16}$/.test(v)) return `-p ${v}: not a protocol`
        d.protocol = v
        break
      case '-s':
      case '-d':
        if (!IPSET_MEMBER.test(v)) return `${flag} ${v}: not an address`
        if (flag === '-s') d.source = v
        else d.destination = v
        break
      case '-w': {
        const z = Number(v)
        if (!Number.isInteger(z) || z < 0 || z > 65535) return `-w ${v}: not a zone`
        d.zone = z
        break
      }
      default:
        return `option ${flag} is not supported`
    }
  }
  if (family === undefined) return 'missing -f ipv4|ipv6'
  return { family, ...d }
}

function setFamily(name: string, members: readonly string[]): 'inet' | 'inet6' {
  if (name.startsWith('NIPv6')) return 'inet6'
  if (name.startsWith('NIPv4')) return 'inet'
  return members.some((m) => m.includes(':')) ? 'inet6' : 'inet'
}

/** The temporary name used to rebuild a set before swapping it in (31 characters at most). */
export function swapSetName(name: string): string {
  return `${name.slice(0, 29)}-n`
}

function planSets(
  desired: Readonly<Record<string, readonly string[]>>,
  actualSets: readonly SavedSet[],
  o: Ownership,
  swapThreshold: number,
  issues: PlanIssue[],
): { prepare: string[]; finish: string[]; changes: SetChange[] } {
  const prepare: string[] = []
  const finish: string[] = []
  const changes: SetChange[] = []
  const actual = new Map(actualSets.filter((s) => owned(s.name, o.setPrefixes)).map((s) => [s.name, s]))
  const desiredNames = Object.keys(desired).sort(byteOrder)
  const tmpNames = new Set(desiredNames.map(swapSetName))
  // leftovers of an interrupted swap: unreferenced, safe to destroy first
  for (const name of [...actual.keys()].sort(byteOrder)) {
    if (tmpNames.has(name) && !(name in desired)) {
      prepare.push(`destroy ${name}`)
      actual.delete(name)
    }
  }
  for (const name of desiredNames) {
    const members = desired[name]!
    if (!isValidSetName(name) || !owned(name, o.setPrefixes)) {
      issues.push({ path: `ipsets.${name}`, message: 'not an owned ipset name (31 characters at most)' })
      continue
    }
    const bad = members.find((m) => !IPSET_MEMBER.test(m))
    if (bad !== undefined) {
      issues.push({ path: `ipsets.${name}`, message: `member ${JSON.stringify(bad)} is not an address or CIDR` })
      continue
    }
    const family = setFamily(name, members)
    const want = [...new Set(members)].sort(byteOrder)
    const cur = actual.get(name)
    if (!cur) {
      changes.push({ name, kind: 'create', add: want, remove: [] })
      prepare.push(`create ${name} hash:net family ${family}`)
      for (const m of want) prepare.push(`add ${name} ${m}`)
      continue
    }
    if (cur.type !== 'hash:net' || cur.family !== family) {
      issues.push({
        path: `ipsets.${name}`,
        message: `kernel set is ${cur.type} family ${cur.family}, expected hash:net family ${family}; destroy it first`,
      })
      continue
    }
    const have = new Set(cur.members)
    const wantSet = new Set(want)
    const add = want.filter((m) => !have.has(m))
    const remove = [...have].filter((m) => !wantSet.has(m)).sort(byteOrder)
    if (add.length + remove.length === 0) continue
    if (add.length + remove.length > swapThreshold) {
      const tmp = swapSetName(name)
      changes.push({ name, kind: 'swap', add, remove })
      prepare.push(`create ${tmp} hash:net family ${family}`)
      for (const m of want) prepare.push(`add ${tmp} ${m}`)
      prepare.push(`swap ${name} ${tmp}`, `destroy ${tmp}`)
    } else {
      changes.push({ name, kind: 'update', add, remove })
      for (const m of add) prepare.push(`add ${name} ${m}`)
      for (const m of remove) finish.push(`del ${name} ${m}`)
    }
  }
  for (const name of [...actual.keys()].sort(byteOrder)) {
    if (name in desired) continue
    changes.push({ name, kind: 'destroy', add: [], remove: [...actual.get(name)!.members] })
    finish.push(`destroy ${name}`)
  }
  return { prepare, finish, changes }
}

/**
 * The last few parsed documents (pure memo keyed by content): an agent plans each
 * change against the state it planned last, so that document is parsed once.
 */
const parsedDocs = new Map<string, ReturnType<typeof parseSaveText>>()

function parseMemo(text: string): ReturnType<typeof parseSaveText> {
  let r = parsedDocs.get(text)
  if (r) return r
  r = parseSaveText(text)
  parsedDocs.set(text, r)
  if (parsedDocs.size > 6) parsedDocs.delete(parsedDocs.keys().next().value!)
  return r
}

function parseDoc(text: string, path: string, issues: PlanIssue[]): SavedDoc {
  const { doc, issues: parseIssues } = parseMemo(text)
  for (const i of parseIssues) issues.push({ path: `${path} line ${i.line}`, message: i.message })
  return doc
}

function conntrackDeletions(lines: readonly string[], issues: PlanIssue[]): ConntrackDeletion[] {
  const out: ConntrackDeletion[] = []
  const seen = new Set<string>()
  lines.forEach((line, i) => {
    const r = parseConntrackCommand(line)
    if (typeof r === 'string') issues.push({ path: `conntrack[${i}]`, message: `${r}: ${line}` })
    else if (!seen.has(JSON.stringify(r))) {
      seen.add(JSON.stringify(r))
      out.push(r)
    }
  })
  return out
}

/** Compute the plan that makes the kernel hold `desired`. Pure. */
export function planApply(desired: DesiredState, actual: ActualState, options: PlanOptions = {}): Plan {
  const issues: PlanIssue[] = []
  const d4 = parseDoc(desired.ipv4, 'desired.ipv4', issues)
  const d6 = parseDoc(desired.ipv6, 'desired.ipv6', issues)
  return planFromDocs(d4, d6, desired, actual, options, issues)
}

/**
 * planApply with the desired state as the compiler hands it over (Rulesets): the chains are
 * taken as they are, without rendering the whole document and parsing it back; each rule's
 * body is rendered once per Rule object (the compiler reuses them between compiles), so a
 * periodic full reconcile of an agent costs little more than reading the kernel. Same plan
 * as `planApply(toStateResult(desired), actual)`.
 */
export function planApplyCompiled(desired: CompiledState, actual: ActualState, options: PlanOptions = {}): Plan {
  return planFromDocs(savedDoc(desired.ipv4), savedDoc(desired.ipv6), desired, actual, options, [])
}

/**
 * A Ruleset as a SavedDoc. Unlike its normalized rendering it keeps the compiler's chain order
 * and pristine tables: planFamily's result does not depend on either (the equality test checks).
 */
function savedDoc(r: Ruleset): SavedDoc {
  return { tables: r.tables.map((t) => ({ name: t.name, chains: t.chains.map(savedChain) })) }
}

function planFromDocs(
  d4: SavedDoc,
  d6: SavedDoc,
  desired: { readonly ipsets: Readonly<Record<string, readonly string[]>>; readonly conntrack: readonly string[] },
  actual: ActualState,
  options: PlanOptions,
  issues: PlanIssue[],
): Plan {
  const o = options.ownership ?? NEUTRON_OWNERSHIP
  const a4 = parseDoc(actual.ipv4, 'actual.ipv4', [])
  const a6 = parseDoc(actual.ipv6, 'actual.ipv6', [])
  const maxEdit = options.maxEdit ?? 4
  const split = splitOptions(options)
  const f4 = planFamily(4, d4, a4, o, issues, maxEdit, split)
  const f6 = planFamily(6, d6, a6, o, issues, maxEdit, split)
  const sets = planSets(desired.ipsets, parseIpsetSave(actual.ipset).sets, o, options.swapThreshold ?? 64, issues)
  return assemble(f4, f6, sets, conntrackDeletions(desired.conntrack, issues), issues)
}

type FamilyPlan = ReturnType<typeof planFamily>

/** The plan from its family documents, ipset lines and conntrack deletions. */
function assemble(
  f4: FamilyPlan,
  f6: FamilyPlan,
  sets: ReturnType<typeof planSets>,
  conntrack: ConntrackDeletion[],
  issues: PlanIssue[],
): Plan {
  return {
    restore: { 4: f4.doc, 6: f6.doc },
    createWaves: { 4: f4.waves, 6: f6.waves },
    ipsetPrepare: sets.prepare.length ? `${sets.prepare.join('\n')}\n` : '',
    ipsetFinish: sets.finish.length ? `${sets.finish.join('\n')}\n` : '',
    conntrack,
    chainChanges: [...f4.changes, ...f6.changes],
    setChanges: sets.changes,
    issues,
  }
}

/** True when the kernel already holds the desired rules and sets (conntrack deletions aside). */
export function isInSync(plan: Plan): boolean {
  return plan.chainChanges.length === 0 && plan.setChanges.length === 0
}

/** A human-readable difference: one block per changed chain or set. */
export function renderPlanDiff(plan: Plan): string {
  const out: string[] = []
  for (const c of plan.chainChanges) {
    out.push(`${c.kind} ipv${c.family} ${c.table} ${c.chain}`)
    const after = new Set(c.after)
    const before = new Set(c.before)
    for (const b of c.before) if (!after.has(b)) out.push(`  - ${b}`)
    for (const a of c.after) if (!before.has(a)) out.push(`  + ${a}`)
    if (
      c.kind !== 'delete' &&
      c.kind !== 'create' &&
      [...before].every((b) => after.has(b)) &&
      before.size === after.size
    ) {
      out.push('  (same rules, different order)')
    }
  }
  for (const s of plan.setChanges) {
    out.push(`${s.kind} ipset ${s.name}`)
    for (const m of s.remove) out.push(`  - ${m}`)
    for (const m of s.add) out.push(`  + ${m}`)
  }
  return out.length ? `${out.join('\n')}\n` : ''
}

/** Re-render a rule body in normalized spelling (for callers comparing text). */
export function normalizeBody(body: string): string {
  return normalizeTokens(tokenizeLine(body))
}

/**
 * The part of a kernel iptables-save that is ours, in the normalized form of the
 * compiler's output (`shared/spec/scenario.md`): tables alphabetical, built-in
 * chains in kernel order holding only our jumps (policy shown as ACCEPT), then
 * our chains by name.
 */
export function renderOwnedView(saveText: string, ownership: Ownership = NEUTRON_OWNERSHIP): string {
  const { doc } = parseSaveText(saveText)
  const lines: string[] = []
  for (const t of [...doc.tables].sort((a, b) => byteOrder(a.name, b.name))) {
    const builtins = BUILTIN_CHAINS[t.name] ?? []
    const user = t.chains
      .filter((c) => !builtins.includes(c.name) && owned(c.name, ownership.chainPrefixes))
      .sort((a, b) => byteOrder(a.name, b.name))
    const jumps = new Map(
      builtins.map((b) => [
        b,
        (findSavedChain(t, b)?.rules ?? [])
          .map((r) => r.body)
          .filter((x) => owned(ruleTarget(x) ?? '', ownership.chainPrefixes)),
      ]),
    )
    if (user.length === 0 && [...jumps.values()].every((j) => j.length === 0)) continue
    lines.push(`*${t.name}`)
    // Policies of built-in chains are not ours (a Docker host has FORWARD DROP): shown as the compiler does.
    for (const b of builtins) lines.push(`:${b} ACCEPT [0:0]`)
    for (const c of user) lines.push(`:${c.name} - [0:0]`)
    for (const b of builtins) for (const body of jumps.get(b) ?? []) lines.push(`-A ${b} ${body}`)
    for (const c of user) for (const r of c.rules) lines.push(r.body === '' ? `-A ${c.name}` : `-A ${c.name} ${r.body}`)
    lines.push('COMMIT')
  }
  return lines.length ? `${lines.join('\n')}\n` : ''
}

/** Our ipsets as name → sorted members (the `ipsets` shape of the compiler's output). */
export function ownedSets(ipsetSave: string, ownership: Ownership = NEUTRON_OWNERSHIP): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const s of parseIpsetSave(ipsetSave).sets) {
    if (owned(s.name, ownership.setPrefixes)) out[s.name] = [...s.members].sort(byteOrder)
  }
  return out
}

/**
 * Everything in a kernel iptables-save that is *not* ours, normalized (tables
 * that hold nothing else are left out): apply and unplug must leave it unchanged.
 */
export function renderForeignView(saveText: string, ownership: Ownership = NEUTRON_OWNERSHIP): string {
  const { doc } = parseSaveText(saveText)
  const lines: string[] = []
  for (const t of [...doc.tables].sort((a, b) => byteOrder(a.name, b.name))) {
    const builtins = BUILTIN_CHAINS[t.name] ?? []
    const chains = t.chains
      .filter((c) => builtins.includes(c.name) || !owned(c.name, ownership.chainPrefixes))
      .map((c) => ({
        name: c.name,
        policy: c.policy,
        rules: c.rules.map((r) => r.body).filter((b) => !owned(ruleTarget(b) ?? '', ownership.chainPrefixes)),
      }))
      .sort((a, b) => {
        const ia = builtins.indexOf(a.name)
        const ib = builtins.indexOf(b.name)
        if (ia >= 0 || ib >= 0) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib)
        return byteOrder(a.name, b.name)
      })
    const pristine = chains.every((c) => builtins.includes(c.name) && c.policy === 'ACCEPT' && c.rules.length === 0)
    if (pristine) continue
    lines.push(`*${t.name}`)
    for (const c of chains) lines.push(`:${c.name} ${c.policy ?? '-'} [0:0]`)
    for (const c of chains) for (const b of c.rules) lines.push(b === '' ? `-A ${c.name}` : `-A ${c.name} ${b}`)
    lines.push('COMMIT')
  }
  return lines.length ? `${lines.join('\n')}\n` : ''
}

/**
 * The kernel state an agent wrote last, as ActualState: lets the agent plan a
 * change without re-reading the kernel (a periodic `diff` catches drift).
 */
export function actualFromDesired(d: DesiredState): ActualState {
  const lines: string[] = []
  for (const name of Object.keys(d.ipsets).sort(byteOrder)) {
    const members = d.ipsets[name]!
    lines.push(`create ${name} hash:net family ${setFamily(name, members)}`)
    for (const m of members) lines.push(`add ${name} ${m}`)
  }
  return { ipv4: d.ipv4, ipv6: d.ipv6, ipset: lines.length ? `${lines.join('\n')}\n` : '' }
}

/** A compiled state as the compiler hands it over: Rulesets (IR), ipsets, conntrack deletions. */
export interface CompiledState {
  readonly ipv4: Ruleset
  readonly ipv6: Ruleset
  readonly ipsets: Readonly<Record<string, readonly string[]>>
  readonly conntrack: readonly string[]
}

/** Rendered, normalized body per Rule object (the compiler reuses Rule objects between compiles). */
const bodyCache = new WeakMap<Rule, string>()

function ruleBody(r: Rule): string {
  let b = bodyCache.get(r)
  if (b === undefined) {
    b = normalizeRawBody(renderRuleBody(r))
    bodyCache.set(r, b)
  }
  return b
}

const savedChainCache = new WeakMap<Chain, SavedChain>()

function savedChain(c: Chain): SavedChain {
  let s = savedChainCache.get(c)
  if (!s) {
    s = { name: c.name, policy: c.policy, rules: c.rules.map((r) => ({ body: ruleBody(r) })) }
    savedChainCache.set(c, s)
  }
  return s
}

/** Adds a changed chain pair to the partial documents (a chain equal by content is left out). */
function addChanged(old: Chain | undefined, c: Chain, d: SavedChain[], a: SavedChain[]): void {
  // a rebuilt chain made of the same Rule objects (the compiler reuses them) is unchanged
  if (old && old.rules.length === c.rules.length && old.rules.every((r, i) => r === c.rules[i])) return
  const sc = savedChain(c)
  const so = old ? savedChain(old) : undefined
  if (so && so.rules.length === sc.rules.length && so.rules.every((r, i) => r.body === sc.rules[i]!.body)) return
  d.push(sc)
  if (so) a.push(so)
}

/**
 * The chains of two Rulesets that may differ, as partial save documents: a chain
 * object the compiler reused (same identity) is unchanged and left out of both
 * sides, so the planner never looks at it. The compiler keeps its chain order
 * between compiles, so the chains are walked side by side; name maps are built
 * only from the first place where the two lists stop lining up.
 */
function changedChains(prev: Ruleset, next: Ruleset): { desired: SavedDoc; actual: SavedDoc } {
  const desired: SavedTable[] = []
  const actual: SavedTable[] = []
  const names = new Set([...prev.tables.map((t) => t.name), ...next.tables.map((t) => t.name)])
  for (const name of names) {
    const pt = prev.tables.find((t) => t.name === name)
    const nt = next.tables.find((t) => t.name === name)
    if (pt === nt) continue
    const pc = pt?.chains ?? []
    const nc = nt?.chains ?? []
    const d: SavedChain[] = []
    const a: SavedChain[] = []
    let i = 0
    for (const n = Math.min(pc.length, nc.length); i < n && pc[i]!.name === nc[i]!.name; i++) {
      if (pc[i] !== nc[i]) addChanged(pc[i], nc[i]!, d, a)
    }
    if (i < pc.length || i < nc.length) {
      const p = new Map(pc.slice(i).map((c) => [c.name, c]))
      const seen = new Set<string>()
      for (const c of nc.slice(i)) {
        seen.add(c.name)
        const old = p.get(c.name)
        if (old !== c) addChanged(old, c, d, a)
      }
      for (const [cn, c] of p) if (!seen.has(cn)) a.push(savedChain(c))
    }
    if (d.length) desired.push({ name, chains: d })
    if (a.length) actual.push({ name, chains: a })
  }
  return { desired: { tables: desired }, actual: { tables: actual } }
}

/**
 * Plan a change from the state this agent wrote last (`prev`) to `next`, both as
 * the compiler's Rulesets: only chains the compiler rebuilt are rendered and
 * compared (the hot path of "one rule added to a group"). Same plan shape as
 * planApply; the same assumption as any plan from memory: the kernel holds `prev`.
 */
export function planChange(prev: CompiledState, next: CompiledState, options: PlanOptions = {}): Plan {
  const o = options.ownership ?? NEUTRON_OWNERSHIP
  const issues: PlanIssue[] = []
  const maxEdit = options.maxEdit ?? 4
  const c4 = changedChains(prev.ipv4, next.ipv4)
  const c6 = changedChains(prev.ipv6, next.ipv6)
  const split = splitOptions(options)
  const f4 = planFamily(4, c4.desired, c4.actual, o, issues, maxEdit, split)
  const f6 = planFamily(6, c6.desired, c6.actual, o, issues, maxEdit, split)
  // Only sets whose member list changed (prev was planned, so validated, when it was written).
  const nextSets: Record<string, readonly string[]> = {}
  const prevSets: SavedSet[] = []
  for (const [name, members] of Object.entries(next.ipsets)) {
    const before = Object.hasOwn(prev.ipsets, name) ? prev.ipsets[name] : undefined
    if (before !== undefined && (before === members || sameList(before, members))) continue
    nextSets[name] = members
    if (before !== undefined)
      prevSets.push({ name, type: 'hash:net', family: setFamily(name, before), members: before })
  }
  for (const [name, members] of Object.entries(prev.ipsets)) {
    if (!Object.hasOwn(next.ipsets, name)) {
      prevSets.push({ name, type: 'hash:net', family: setFamily(name, members), members })
    }
  }
  const sets = planSets(nextSets, prevSets, o, options.swapThreshold ?? 64, issues)
  return assemble(f4, f6, sets, conntrackDeletions(next.conntrack, issues), issues)
}
