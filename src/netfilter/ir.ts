/**
 * The ruleset IR: tables, chains and rules of one address family as structured data.
 *
 * This module knows nothing about Neutron or security groups: it models any
 * iptables-save dump. Rules are kept as matches and a target (not strings), in
 * the order and spelling iptables-save prints them, so that rendering is a plain
 * walk and parse(render(x)) = x.
 */

export type Family = 4 | 6

/** One option of a match or target, e.g. `--dport 22`, `! -s 10.0.0.0/8`, `--physdev-is-bridged`. */
export interface Option {
  /** As written on the command line, with its dashes: `-s`, `--dport`, `--physdev-is-bridged`. */
  readonly flag: string
  /** `!` before the flag. */
  readonly negated: boolean
  /** The option's arguments, unquoted. */
  readonly args: readonly string[]
}

/**
 * A match. `module` is null for the built-in options that need no `-m`
 * (`-s -d -i -o -p -f`), which iptables-save prints first and together.
 */
export interface Match {
  readonly module: string | null
  readonly options: readonly Option[]
}

/** `-j NAME options…` or, when `goto` is set, `-g NAME`. */
export interface Target {
  readonly name: string
  readonly goto: boolean
  readonly options: readonly Option[]
}

export interface Counters {
  readonly packets: number
  readonly bytes: number
}

export interface Rule {
  readonly matches: readonly Match[]
  /** null: a rule without target (it only counts). */
  readonly target: Target | null
  readonly counters?: Counters
}

export interface Chain {
  readonly name: string
  /** Built-in chains have a policy (ACCEPT, DROP); user chains have none. */
  readonly policy: string | null
  readonly rules: readonly Rule[]
  readonly counters?: Counters
}

export interface Table {
  readonly name: string
  readonly chains: readonly Chain[]
}

/** All tables of one family. */
export interface Ruleset {
  readonly tables: readonly Table[]
}

/** Built-in chains per table, in the order the kernel lists them. */
export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
}

export function isBuiltinChain(table: string, chain: string): boolean {
  return BUILTIN_CHAINS[table]?.includes(chain) ?? false
}

// ---- small constructors, so that code building rules reads like iptables ----

export function opt(flag: string, ...args: string[]): Option {
  return { flag, negated: false, args }
}

export function notOpt(flag: string, ...args: string[]): Option {
  return { flag, negated: true, args }
}

export function match(module: string | null, ...options: Option[]): Match {
  return { module, options }
}

export function jump(name: string, ...options: Option[]): Target {
  return { name, goto: false, options }
}

export function goTo(name: string): Target {
  return { name, goto: true, options: [] }
}

export function rule(matches: readonly Match[], target: Target | null): Rule {
  return { matches, target }
}

export function findTable(r: Ruleset, name: string): Table | undefined {
  return r.tables.find((t) => t.name === name)
}

export function findChain(t: Table, name: string): Chain | undefined {
  return t.chains.find((c) => c.name === name)
}
