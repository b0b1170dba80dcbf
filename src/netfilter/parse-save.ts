/**
 * iptables-save / iptables-restore text → Ruleset IR (the inverse of render.ts).
 *
 * Accepts what `iptables-save` and `ip6tables-save` print, with or without `-c`
 * (`[p:b]` rule prefixes), and what iptables-restore reads (`-A -I -N -P -F -X -D`,
 * `-c P B` inside a rule, quoted arguments, `#` comments). Every line that is
 * not understood is returned as a ParseIssue naming its line number; nothing is
 * skipped silently. A rule line that cannot be read is left out of the ruleset
 * (and reported); a table without COMMIT is kept (and reported).
 */
import type { Chain, Counters, Match, Option, Rule, Ruleset, Table, Target } from './ir.js'
import { isBuiltinChain } from './ir.js'

export interface ParseIssue {
  /** 1-based line number in the input text. */
  readonly line: number
  readonly message: string
  /** The offending line as given. */
  readonly text: string
}

/** One shell-like word of a rule line. `quoted`: written (partly) in double quotes, so never a flag. */
export interface Token {
  readonly text: string
  readonly quoted: boolean
}

/**
 * Split a line into words the way iptables-restore does: blanks separate words,
 * double quotes group (with `\"` and `\\` escapes inside them). Returns an error
 * message for an unterminated quote.
 */
export function tokenize(line: string): { tokens: Token[]; error: string | null } {
  const tokens: Token[] = []
  let i = 0
  const n = line.length
  while (i < n) {
    while (i < n && isBlank(line.charCodeAt(i))) i++
    if (i >= n) break
    let text = ''
    let quoted = false
    while (i < n && !isBlank(line.charCodeAt(i))) {
      const c = line[i]
      if (c === '"') {
        quoted = true
        i++
        let closed = false
        while (i < n) {
          const q = line[i]
          if (q === '\\' && i + 1 < n && (line[i + 1] === '"' || line[i + 1] === '\\')) {
            text += line[i + 1]
            i += 2
          } else if (q === '"') {
            closed = true
            i++
            break
          } else {
            text += q
            i++
          }
        }
        if (!closed) return { tokens, error: 'unterminated double quote' }
      } else {
        text += c
        i++
      }
    }
    tokens.push({ text, quoted })
  }
  return { tokens, error: null }
}

function isBlank(code: number): boolean {
  return code === 32 || code === 9 || code === 13 || code === 11 || code === 12
}

const CORE_FLAGS: Readonly<Record<string, string>> = {
  '-s': '-s',
  '--source': '-s',
  '--src': '-s',
  '-d': '-d',
  '--destination': '-d',
  '--dst': '-d',
  '-i': '-i',
  '--in-interface': '-i',
  '-o': '-o',
  '--out-interface': '-o',
  '-p': '-p',
  '--protocol': '-p',
  '-f': '-f',
  '--fragment': '-f',
}

function isFlag(t: Token): boolean {
  return !t.quoted && t.text.length > 1 && t.text.startsWith('-')
}

function isBang(t: Token): boolean {
  return !t.quoted && t.text === '!'
}

interface MutableOption {
  flag: string
  negated: boolean
  args: string[]
}

interface MutableMatch {
  module: string | null
  options: MutableOption[]
}

/** Result of reading the words of one rule (everything after `-A CHAIN`). */
export interface RuleArgsResult {
  readonly rule: Rule | null
  readonly error: string | null
}

/**
 * Read the words of a rule body into a Rule: core options (`-s -d -i -o -p -f`)
 * into one leading match with module null, each `-m X` a new match, `-j`/`-g`
 * the target with the options after it, `-c P B` the counters.
 */
export function parseRuleArgs(tokens: readonly Token[]): RuleArgsResult {
  const core: MutableOption[] = []
  const modules: MutableMatch[] = []
  let target: { name: string; goto: boolean; options: MutableOption[] } | null = null
  let counters: Counters | undefined
  // Where options go: the current -m match, or the target once -j/-g was read.
  let current: MutableOption[] | null = null
  let last: MutableOption | null = null
  let negateNext = false
  let i = 0
  while (i < tokens.length) {
    const t = tokens[i]!
    if (isBang(t)) {
      if (negateNext) return { rule: null, error: `double "!" at word ${i + 1}` }
      negateNext = true
      i++
      continue
    }
    if (!isFlag(t)) {
      if (negateNext && last !== null && !last.negated && last.args.length === 0) {
        // Old spelling `--dport ! 22`: the "!" negates the option before it.
        last.negated = true
        negateNext = false
      }
      if (negateNext) return { rule: null, error: `"!" before the argument "${t.text}"` }
      if (last === null) return { rule: null, error: `argument "${t.text}" without an option before it` }
      last.args.push(t.text)
      i++
      continue
    }
    const flag = t.text
    if (flag === '-m' || flag === '--match') {
      if (negateNext) return { rule: null, error: `"!" before ${flag}` }
      const name = tokens[i + 1]
      if (name === undefined || isFlag(name) || isBang(name))
        return { rule: null, error: `${flag} without a module name` }
      const m: MutableMatch = { module: name.text, options: [] }
      modules.push(m)
      current = m.options
      last = null
      i += 2
      continue
    }
    if (flag === '-j' || flag === '--jump' || flag === '-g' || flag === '--goto') {
      if (negateNext) return { rule: null, error: `"!" before ${flag}` }
      if (target !== null) return { rule: null, error: `second target ${flag}` }
      const name = tokens[i + 1]
      if (name === undefined || isFlag(name) || isBang(name))
        return { rule: null, error: `${flag} without a target name` }
      target = { name: name.text, goto: flag === '-g' || flag === '--goto', options: [] }
      current = target.options
      last = null
      i += 2
      continue
    }
    if (flag === '-c' || flag === '--set-counters') {
      const p = tokens[i + 1]
      const b = tokens[i + 2]
      const packets = p ? parseCounter(p.text) : null
      const bytes = b ? parseCounter(b.text) : null
      if (negateNext || packets === null || bytes === null) {
        return { rule: null, error: `${flag} needs two counter values (packets bytes)` }
      }
      counters = { packets, bytes }
      last = null
      i += 3
      continue
    }
    const coreFlag = CORE_FLAGS[flag]
    const o: MutableOption = { flag: coreFlag ?? flag, negated: negateNext, args: [] }
    negateNext = false
    if (coreFlag !== undefined) {
      core.push(o)
    } else {
      if (current === null)
        return { rule: null, error: `option ${flag} outside of a match (no -m before it) or target` }
      current.push(o)
    }
    last = o
    i++
  }
  if (negateNext) return { rule: null, error: '"!" at the end of the rule' }
  const matches: Match[] = []
  if (core.length > 0) matches.push({ module: null, options: core.map(freezeOption) })
  for (const m of modules) matches.push({ module: m.module, options: m.options.map(freezeOption) })
  const tgt: Target | null = target
    ? { name: target.name, goto: target.goto, options: target.options.map(freezeOption) }
    : null
  if (tgt?.goto && tgt.options.length > 0) return { rule: null, error: `-g ${tgt.name} takes no options` }
  const rule: Rule = counters ? { matches, target: tgt, counters } : { matches, target: tgt }
  return { rule, error: null }
}

function freezeOption(o: MutableOption): Option {
  return { flag: o.flag, negated: o.negated, args: o.args }
}

function parseCounter(s: string): number | null {
  if (!/^\d+$/.test(s)) return null
  const v = Number(s)
  return Number.isSafeInteger(v) ? v : null
}

const COUNTER_PREFIX = /^\[(\d+):(\d+)\]\s*/
const CHAIN_LINE = /^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$/

interface TableBuilder {
  name: string
  chains: Map<string, { policy: string | null; rules: Rule[]; counters?: Counters }>
  startLine: number
  startText: string
}

/**
 * Parse an iptables-save / ip6tables-save / iptables-restore document.
 *
 * Chain counters: `[0:0]` on a `:CHAIN` line is what every dump prints when
 * nothing was counted, so it leaves `counters` unset (as render.ts prints it);
 * other values are kept. Rule counters are kept whenever given (`[p:b]` or `-c`).
 */
export function parseIptablesSave(text: string): { ruleset: Ruleset; issues: ParseIssue[] } {
  const issues: ParseIssue[] = []
  const tables: Table[] = []
  const lines = text.split('\n')
  let cur: TableBuilder | null = null

  const finishTable = (tb: TableBuilder): void => {
    const chains: Chain[] = []
    for (const [name, c] of tb.chains) {
      const chain: Chain = c.counters
        ? { name, policy: c.policy, rules: c.rules, counters: c.counters }
        : { name, policy: c.policy, rules: c.rules }
      chains.push(chain)
    }
    const existing = tables.findIndex((t) => t.name === tb.name)
    if (existing >= 0) tables.splice(existing, 1)
    tables.push({ name: tb.name, chains })
  }

  for (let ln = 0; ln < lines.length; ln++) {
    const raw = lines[ln]!
    const lineNo = ln + 1
    const line = raw.replace(/\r$/, '').trim()
    const issue = (message: string): void => {
      issues.push({ line: lineNo, message, text: raw })
    }
    if (line === '' || line.startsWith('#')) continue
    if (line.startsWith('*')) {
      if (cur) {
        issue(`table ${line.slice(1)} starts before COMMIT of table ${cur.name}`)
        finishTable(cur)
      }
      const name = line.slice(1).trim()
      if (!/^[a-z]+$/.test(name)) {
        issue(`bad table name "${name}"`)
        cur = null
        continue
      }
      const prior = tables.find((t) => t.name === name)
      cur = { name, chains: new Map(), startLine: lineNo, startText: raw }
      if (prior) {
        // A second block for the same table continues it (as iptables-restore --noflush would).
        for (const c of prior.chains) {
          cur.chains.set(c.name, {
            policy: c.policy,
            rules: [...c.rules],
            ...(c.counters ? { counters: c.counters } : {}),
          })
        }
      }
      continue
    }
    if (line === 'COMMIT') {
      if (!cur) issue('COMMIT outside of a table')
      else finishTable(cur)
      cur = null
      continue
    }
    if (!cur) {
      issue('line outside of a table (no *table line before it)')
      continue
    }
    if (line.startsWith(':')) {
      const m = CHAIN_LINE.exec(line)
      if (!m) {
        issue('bad chain line (expected ":NAME POLICY [packets:bytes]")')
        continue
      }
      const name = m[1]!
      const policyWord = m[2]!
      const builtin = isBuiltinChain(cur.name, name)
      if (builtin && policyWord === '-') {
        issue(`built-in chain ${name} needs a policy`)
        continue
      }
      if (!builtin && policyWord !== '-') {
        issue(`user chain ${name} cannot have policy ${policyWord}`)
        continue
      }
      if (cur.chains.has(name) && !builtin) {
        issue(`chain ${name} declared twice`)
        continue
      }
      const packets = m[3] !== undefined ? parseCounter(m[3]) : 0
      const bytes = m[4] !== undefined ? parseCounter(m[4]) : 0
      if (packets === null || bytes === null) {
        issue('chain counters out of range')
        continue
      }
      const entry: { policy: string | null; rules: Rule[]; counters?: Counters } = {
        policy: builtin ? policyWord : null,
        rules: cur.chains.get(name)?.rules ?? [],
      }
      if (packets !== 0 || bytes !== 0) entry.counters = { packets, bytes }
      cur.chains.set(name, entry)
      continue
    }
    let body = line
    let prefixCounters: Counters | undefined
    const cm = COUNTER_PREFIX.exec(body)
    if (cm) {
      const packets = parseCounter(cm[1]!)
      const bytes = parseCounter(cm[2]!)
      if (packets === null || bytes === null) {
        issue('rule counters out of range')
        continue
      }
      prefixCounters = { packets, bytes }
      body = body.slice(cm[0].length)
    }
    const { tokens, error } = tokenize(body)
    if (error) {
      issue(error)
      continue
    }
    const cmd = tokens[0]!
    const command = cmd.quoted ? '' : cmd.text
    const chainTok = tokens[1]
    const chainName = chainTok?.text
    switch (command) {
      case '-A':
      case '--append':
      case '-I':
      case '--insert': {
        if (chainName === undefined) {
          issue(`${command} without a chain name`)
          continue
        }
        let rest = tokens.slice(2)
        let position: number | null = null
        if (command === '-I' || command === '--insert') {
          const maybeNum = rest[0]
          if (maybeNum && !maybeNum.quoted && /^\d+$/.test(maybeNum.text)) {
            position = Number(maybeNum.text)
            rest = rest.slice(1)
            if (position < 1) {
              issue('rule position must be at least 1')
              continue
            }
          } else position = 1
        }
        const parsed = parseRuleArgs(rest)
        if (!parsed.rule) {
          issue(parsed.error ?? 'unreadable rule')
          continue
        }
        let r = parsed.rule
        if (prefixCounters) r = { ...r, counters: prefixCounters }
        let chain = cur.chains.get(chainName)
        if (!chain) {
          issue(`rule for chain ${chainName}, which is not declared in table ${cur.name}`)
          chain = { policy: isBuiltinChain(cur.name, chainName) ? 'ACCEPT' : null, rules: [] }
          cur.chains.set(chainName, chain)
        }
        if (position === null) chain.rules.push(r)
        else {
          if (position > chain.rules.length + 1) {
            issue(`rule position ${position} is past the end of chain ${chainName} (${chain.rules.length} rules)`)
            continue
          }
          chain.rules.splice(position - 1, 0, r)
        }
        continue
      }
      case '-N':
      case '--new-chain': {
        if (chainName === undefined || tokens.length !== 2) {
          issue('-N needs exactly one chain name')
          continue
        }
        if (cur.chains.has(chainName)) {
          issue(`chain ${chainName} already exists`)
          continue
        }
        cur.chains.set(chainName, { policy: null, rules: [] })
        continue
      }
      case '-P':
      case '--policy': {
        const policy = tokens[2]?.text
        const chain = chainName !== undefined ? cur.chains.get(chainName) : undefined
        if (chainName === undefined || policy === undefined || tokens.length !== 3) {
          issue('-P needs a chain and a policy')
          continue
        }
        if (!isBuiltinChain(cur.name, chainName)) {
          issue(`-P: ${chainName} is not a built-in chain of table ${cur.name}`)
          continue
        }
        if (chain) chain.policy = policy
        else cur.chains.set(chainName, { policy, rules: [] })
        continue
      }
      case '-F':
      case '--flush': {
        if (chainName === undefined) {
          for (const c of cur.chains.values()) c.rules.length = 0
          continue
        }
        const chain = cur.chains.get(chainName)
        if (!chain) issue(`-F: no chain ${chainName} in table ${cur.name}`)
        else chain.rules.length = 0
        continue
      }
      case '-X':
      case '--delete-chain': {
        const names =
          chainName === undefined ? [...cur.chains.keys()].filter((c) => !isBuiltinChain(cur!.name, c)) : [chainName]
        for (const name of names) {
          if (isBuiltinChain(cur.name, name)) issue(`-X: cannot delete built-in chain ${name}`)
          else if (!cur.chains.has(name)) issue(`-X: no chain ${name} in table ${cur.name}`)
          else cur.chains.delete(name)
        }
        continue
      }
      case '-D':
      case '--delete': {
        const chain = chainName !== undefined ? cur.chains.get(chainName) : undefined
        if (!chain) {
          issue(`-D: no chain ${chainName ?? '(none given)'} in table ${cur.name}`)
          continue
        }
        const rest = tokens.slice(2)
        const first = rest[0]
        if (rest.length === 1 && first && !first.quoted && /^\d+$/.test(first.text)) {
          const num = Number(first.text)
          if (num < 1 || num > chain.rules.length) issue(`-D: chain ${chainName} has no rule ${num}`)
          else chain.rules.splice(num - 1, 1)
          continue
        }
        const parsed = parseRuleArgs(rest)
        if (!parsed.rule) {
          issue(parsed.error ?? 'unreadable rule')
          continue
        }
        const key = ruleKey(parsed.rule)
        const idx = chain.rules.findIndex((r) => ruleKey(r) === key)
        if (idx < 0) issue(`-D: no such rule in chain ${chainName}`)
        else chain.rules.splice(idx, 1)
        continue
      }
      default:
        issue(`unknown command "${cmd.text}" (expected -A, -I, -N, -P, -F, -X, -D, :CHAIN, *table or COMMIT)`)
    }
  }
  if (cur) {
    issues.push({ line: cur.startLine, message: `table ${cur.name} has no COMMIT`, text: cur.startText })
    finishTable(cur)
  }
  return { ruleset: { tables }, issues }
}

function ruleKey(r: Rule): string {
  return JSON.stringify([r.matches, r.target])
}
