/**
 * iptables-save text at the level of rule *text*: tables, chains with policy and
 * counters, and each rule's body (everything after `-A CHAIN`) in normalized
 * spelling. The reconciler compares and rewrites chains as text, so this is all it
 * needs; the structured parser (Ruleset IR) lives beside it.
 *
 * Normalization makes the kernel's output (iptables-nft or -legacy, with or
 * without `-c`) and the compiler's normalized documents comparable as strings:
 * blanks collapsed, the `--comment` argument always in double quotes, MAC
 * addresses upper case, other tokens quoted only when they need it.
 */
import type { Counters } from './ir.js'
import { quoteToken } from './render.js'

export interface SavedRule {
  /** Normalized body: everything after `-A CHAIN`. */
  readonly body: string
  readonly counters?: Counters
}

export interface SavedChain {
  readonly name: string
  /** null for user chains (`-` in the save text). */
  readonly policy: string | null
  readonly rules: readonly SavedRule[]
  readonly counters?: Counters
}

export interface SavedTable {
  readonly name: string
  readonly chains: readonly SavedChain[]
}

export interface SavedDoc {
  readonly tables: readonly SavedTable[]
}

export interface SaveTextIssue {
  /** 1-based line number in the input. */
  readonly line: number
  readonly message: string
}

/**
 * Split one line into tokens the way iptables-restore does: blanks separate,
 * double quotes group (a backslash escapes the next character inside them).
 */
export function tokenizeLine(line: string): string[] {
  const out: string[] = []
  let i = 0
  const n = line.length
  while (i < n) {
    while (i < n && (line[i] === ' ' || line[i] === '\t')) i++
    if (i >= n) break
    let tok = ''
    while (i < n && line[i] !== ' ' && line[i] !== '\t') {
      if (line[i] === '"') {
        i++
        while (i < n && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < n) i++
          tok += line[i]
          i++
        }
        i++
      } else {
        tok += line[i]
        i++
      }
    }
    out.push(tok)
  }
  return out
}

const MAC_FLAGS = new Set(['--mac-source'])

function quoteComment(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

/** Re-render a rule body's tokens in normalized spelling. */
export function normalizeTokens(tokens: readonly string[]): string {
  const out: string[] = []
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    const prev = i > 0 ? tokens[i - 1] : undefined
    if (prev === '--comment') out.push(quoteComment(t))
    else if (prev !== undefined && MAC_FLAGS.has(prev)) out.push(t.toUpperCase())
    else out.push(quoteToken(t))
  }
  return out.join(' ')
}

export function normalizeRuleBody(body: string): string {
  return normalizeTokens(tokenizeLine(body))
}

const TARGET = /(?:^| )-[jg] ([^ "]+)/

/** The jump or goto target of a rule body (normalized spelling), or null. */
export function ruleTarget(body: string): string | null {
  const lastQuote = body.lastIndexOf('"')
  if (lastQuote < 0) return TARGET.exec(body)?.[1] ?? null
  // A quoted comment comes before the target in iptables-save's order: a -j/-g after the
  // last quote is outside every quoted string, so it is the target.
  const tail = body.slice(lastQuote + 1)
  if (tail.includes(' -j ') || tail.includes(' -g ')) {
    const m = TARGET.exec(tail)
    if (m) return m[1]!
  }
  const toks = tokenizeLine(body)
  for (let i = 0; i + 1 < toks.length; i++) {
    if (toks[i] === '-j' || toks[i] === '-g') return toks[i + 1]!
  }
  return null
}

/** Text whose tokens are already in normalized spelling when single-spaced (no escapes, no odd quoting). */
const QUOTED_COMMENT_BODY = /^[A-Za-z0-9_@%+=:,./!\-[\]$ ]*(--comment "[^"\\]*"[A-Za-z0-9_@%+=:,./!\-[\]$ ]*)*$/
const UNQUOTED_COMMENT = /--comment [^"]/
const MAC_ARG = /--mac-source ([0-9a-fA-F:]{17})/g

/**
 * Normalized body from the raw text after `-A CHAIN `: a fast path for what
 * iptables-save prints (single spaces, comments double-quoted), else the tokenizer.
 */
export function normalizeRawBody(raw: string): string {
  if (!raw.includes('  ') && !UNQUOTED_COMMENT.test(raw) && QUOTED_COMMENT_BODY.test(raw)) {
    const body = raw.trim()
    return body.includes('--mac-source')
      ? body.replace(MAC_ARG, (_, m: string) => `--mac-source ${m.toUpperCase()}`)
      : body
  }
  return normalizeRuleBody(raw)
}

const COUNTERS = /^\[(\d+):(\d+)\]$/

function parseCounters(tok: string | undefined): Counters | undefined {
  const m = tok === undefined ? null : COUNTERS.exec(tok)
  return m ? { packets: Number(m[1]), bytes: Number(m[2]) } : undefined
}

interface MutableChain {
  name: string
  policy: string | null
  rules: SavedRule[]
  counters?: Counters
}

/** Parse an iptables-save document (with or without `-c`). */
export function parseSaveText(text: string): { doc: SavedDoc; issues: SaveTextIssue[] } {
  const tables: SavedTable[] = []
  const issues: SaveTextIssue[] = []
  let table: { name: string; chains: Map<string, MutableChain> } | null = null
  const lines = text.split('\n')
  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1
    const line = lines[idx]!.trim()
    if (line === '' || line.startsWith('#')) continue
    if (line.startsWith('*')) {
      if (table) issues.push({ line: lineNo, message: `table ${line.slice(1)} starts before COMMIT of ${table.name}` })
      table = { name: line.slice(1), chains: new Map() }
      continue
    }
    if (!table) {
      issues.push({ line: lineNo, message: 'line outside a table' })
      continue
    }
    if (line === 'COMMIT') {
      tables.push({ name: table.name, chains: [...table.chains.values()] })
      table = null
      continue
    }
    if (line.startsWith(':')) {
      const toks = line.slice(1).split(/\s+/)
      const name = toks[0] ?? ''
      if (name === '') {
        issues.push({ line: lineNo, message: 'chain declaration without name' })
        continue
      }
      const policy = toks[1] === undefined || toks[1] === '-' ? null : toks[1]
      const counters = parseCounters(toks[2])
      const chain: MutableChain = { name, policy, rules: [] }
      if (counters) chain.counters = counters
      table.chains.set(name, chain)
      continue
    }
    let rest = line
    let counters: Counters | undefined
    if (rest.startsWith('[')) {
      const sp = rest.indexOf(' ')
      counters = parseCounters(sp < 0 ? rest : rest.slice(0, sp))
      rest = sp < 0 ? '' : rest.slice(sp + 1).trimStart()
    }
    const sp = rest.indexOf(' ', 3)
    const chainName = sp < 0 ? rest.slice(3) : rest.slice(3, sp)
    if (!rest.startsWith('-A ') || chainName === '' || /[\t"]/.test(chainName)) {
      issues.push({ line: lineNo, message: `expected "-A CHAIN ...", got "${line.slice(0, 60)}"` })
      continue
    }
    let chain = table.chains.get(chainName)
    if (!chain) {
      issues.push({ line: lineNo, message: `rule for undeclared chain ${chainName}` })
      chain = { name: chainName, policy: null, rules: [] }
      table.chains.set(chainName, chain)
    }
    const body = normalizeRawBody(sp < 0 ? '' : rest.slice(sp + 1))
    chain.rules.push(counters ? { body, counters } : { body })
  }
  if (table) issues.push({ line: lines.length, message: `table ${table.name} has no COMMIT` })
  return { doc: { tables }, issues }
}

export function findSavedTable(doc: SavedDoc, name: string): SavedTable | undefined {
  return doc.tables.find((t) => t.name === name)
}

const chainIndex = new WeakMap<SavedTable, Map<string, SavedChain>>()

/** The chain of a table by name (indexed: tables hold thousands of chains). */
export function findSavedChain(t: SavedTable | undefined, name: string): SavedChain | undefined {
  if (!t) return undefined
  let idx = chainIndex.get(t)
  if (!idx) {
    idx = new Map(t.chains.map((c) => [c.name, c]))
    chainIndex.set(t, idx)
  }
  return idx.get(name)
}
