/**
 * Ruleset IR → text: iptables-restore documents and the normalized iptables-save
 * form of `shared/spec/scenario.md` (tables alphabetical, built-in chains in kernel
 * order then user chains in byte order, no counters, comments in double quotes).
 */
import type { Chain, Match, Option, Rule, Ruleset, Table, Target } from './ir.js'
import { BUILTIN_CHAINS } from './ir.js'

const SAFE_TOKEN = /^[A-Za-z0-9_@%+=:,./!\-[\]$]+$/

/** Quote a token for iptables-restore when it holds anything but safe characters. */
export function quoteToken(token: string): string {
  if (token !== '' && SAFE_TOKEN.test(token)) return token
  return `"${token.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

function quoteComment(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

function renderOption(o: Option, out: string[]): void {
  if (o.negated) out.push('!')
  out.push(o.flag)
  const isComment = o.flag === '--comment'
  for (const a of o.args) out.push(isComment ? quoteComment(a) : quoteToken(a))
}

function renderMatch(m: Match, out: string[]): void {
  if (m.module !== null) out.push('-m', m.module)
  for (const o of m.options) renderOption(o, out)
}

function renderTarget(t: Target, out: string[]): void {
  out.push(t.goto ? '-g' : '-j', t.name)
  for (const o of t.options) renderOption(o, out)
}

const bodyCache = new WeakMap<Rule, string>()

/** The rule's body: everything after `-A CHAIN`, in iptables-save spelling (memoized per rule object). */
export function renderRuleBody(r: Rule): string {
  const hit = bodyCache.get(r)
  if (hit !== undefined) return hit
  const out: string[] = []
  for (const m of r.matches) renderMatch(m, out)
  if (r.target) renderTarget(r.target, out)
  const body = out.join(' ')
  bodyCache.set(r, body)
  return body
}

export function renderRule(chain: string, r: Rule): string {
  const body = renderRuleBody(r)
  return body === '' ? `-A ${chain}` : `-A ${chain} ${body}`
}

/** Chains in normalized order: built-ins in kernel order, then user chains in byte order. */
export function sortedChains(t: Table): Chain[] {
  const builtins = BUILTIN_CHAINS[t.name] ?? []
  const byName = new Map(t.chains.map((c) => [c.name, c]))
  const out: Chain[] = []
  for (const b of builtins) {
    const c = byName.get(b)
    if (c) out.push(c)
  }
  const user = t.chains.filter((c) => !builtins.includes(c.name))
  user.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return out.concat(user)
}

/** A table that holds nothing but empty built-in chains with policy ACCEPT. */
export function isPristineTable(t: Table): boolean {
  const builtins = BUILTIN_CHAINS[t.name] ?? []
  return t.chains.every((c) => builtins.includes(c.name) && c.policy === 'ACCEPT' && c.rules.length === 0)
}

/** One table in normalized iptables-save form (`*name` … `COMMIT`). */
export function renderTable(t: Table, lines: string[]): void {
  const chains = sortedChains(t)
  lines.push(`*${t.name}`)
  for (const c of chains) lines.push(`:${c.name} ${c.policy ?? '-'} [0:0]`)
  for (const c of chains) for (const r of c.rules) lines.push(renderRule(c.name, r))
  lines.push('COMMIT')
}

/**
 * The normalized iptables-save document of a ruleset: "" when every table is pristine.
 */
export function renderNormalized(r: Ruleset): string {
  const tables = r.tables.filter((t) => !isPristineTable(t))
  tables.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  if (tables.length === 0) return ''
  const lines: string[] = []
  for (const t of tables) renderTable(t, lines)
  return `${lines.join('\n')}\n`
}
