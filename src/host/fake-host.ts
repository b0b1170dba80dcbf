/**
 * FakeHost: the Host interface in memory, for fast unit tests of the agent.
 *
 * It keeps netfilter state as parsed save text and interprets restore documents
 * with `--noflush` semantics (chain declaration flushes a user chain, `-A -I -D -F
 * -X -N`, one atomic commit per table), ipset restore documents
 * (create/add/del/swap/destroy, with the kernel's refusals) and conntrack
 * deletions against a list of entries. `failNextRestore` makes the next restore
 * fail, as a kernel refusal would. Like the real tools, a failing document
 * changes nothing in the table that failed.
 */
import { isBuiltinChain } from '../netfilter/ir.js'
import { normalizeTokens, parseSaveText, ruleTarget, tokenizeLine } from '../netfilter/save-text.js'
import {
  type ConntrackDeletion,
  checkLinkOp,
  checkSysctl,
  conntrackDeleteArgs,
  type Family,
  type Host,
  HostCommandError,
  type LinkInfo,
  type LinkOp,
  type OvsPort,
} from './host.js'

interface FakeChain {
  policy: string | null
  rules: string[]
  counters: { packets: number; bytes: number }[]
}
type FakeTable = Map<string, FakeChain>
type FakeFamily = Map<string, FakeTable>

export interface FakeConntrackEntry {
  readonly family: 'ipv4' | 'ipv6'
  readonly protocol: string
  readonly source: string
  readonly destination: string
  readonly zone: number
}

const STANDARD_TARGETS = /^[A-Z][A-Z0-9_]*$/

function cloneTable(t: FakeTable): FakeTable {
  return new Map([...t].map(([k, c]) => [k, { policy: c.policy, rules: [...c.rules], counters: [...c.counters] }]))
}

function emptyTable(name: string): FakeTable {
  const t: FakeTable = new Map()
  const builtins: Record<string, string[]> = {
    filter: ['INPUT', 'FORWARD', 'OUTPUT'],
    raw: ['PREROUTING', 'OUTPUT'],
    mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
    nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
    security: ['INPUT', 'FORWARD', 'OUTPUT'],
  }
  for (const b of builtins[name] ?? []) t.set(b, { policy: 'ACCEPT', rules: [], counters: [] })
  return t
}

export class FakeHost implements Host {
  readonly description = 'fake host (in memory)'
  private readonly families: Record<Family, FakeFamily> = { 4: new Map(), 6: new Map() }
  readonly sets = new Map<string, { type: string; family: string; members: Set<string> }>()
  conntrackEntries: FakeConntrackEntry[] = []
  readonly links = new Map<
    string,
    {
      master: string | null
      mtu: number
      up: boolean
      address: string | null
      kind: string | null
      peer: string | null
    }
  >()
  readonly ovsPorts = new Map<string, { bridge: string; externalIds: Record<string, string> }>()
  readonly sysctls = new Map<string, string>()
  /** Every restore document received, in order (for inspection, not for asserting call order). */
  readonly restoreLog: { family: Family; doc: string }[] = []
  private failNext: string | null = null

  /** The next iptables or ipset restore fails with this stderr. */
  failNextRestore(stderr = 'iptables-restore: line 2 failed'): void {
    this.failNext = stderr
  }

  /** Load an iptables-save document as the current state of one family (e.g. foreign rules). */
  loadSave(family: Family, text: string): void {
    const { doc } = parseSaveText(text)
    for (const t of doc.tables) {
      const table = emptyTable(t.name)
      for (const c of t.chains) {
        table.set(c.name, {
          policy: c.policy,
          rules: c.rules.map((r) => r.body),
          counters: c.rules.map((r) => r.counters ?? { packets: 0, bytes: 0 }),
        })
      }
      this.families[family].set(t.name, table)
    }
  }

  /** Set the packet counter of one rule (1-based position), as traffic would. */
  setCounter(
    family: Family,
    table: string,
    chain: string,
    position: number,
    packets: number,
    bytes = packets * 100,
  ): void {
    const c = this.families[family].get(table)?.get(chain)
    if (!c || position < 1 || position > c.rules.length) throw new Error(`no rule ${table}/${chain}#${position}`)
    c.counters[position - 1] = { packets, bytes }
  }

  async iptablesSave(family: Family, options: { counters?: boolean } = {}): Promise<string> {
    const lines: string[] = []
    for (const [name, t] of this.families[family]) {
      lines.push(`*${name}`)
      for (const [cn, c] of t) lines.push(`:${cn} ${c.policy ?? '-'} [0:0]`)
      for (const [cn, c] of t) {
        c.rules.forEach((body, i) => {
          const cnt = c.counters[i] ?? { packets: 0, bytes: 0 }
          const prefix = options.counters ? `[${cnt.packets}:${cnt.bytes}] ` : ''
          lines.push(`${prefix}-A ${cn}${body === '' ? '' : ` ${body}`}`)
        })
      }
      lines.push('COMMIT')
    }
    return lines.length ? `${lines.join('\n')}\n` : ''
  }

  private fail(argv: string[], stderr: string, doc: string, lineNo: number | null): never {
    throw new HostCommandError(argv, 1, stderr, lineNo === null ? null : (doc.split('\n')[lineNo - 1] ?? null))
  }

  async iptablesRestore(family: Family, doc: string): Promise<void> {
    const argv = [family === 4 ? 'iptables-restore' : 'ip6tables-restore', '--noflush']
    this.restoreLog.push({ family, doc })
    if (this.failNext !== null) {
      const msg = this.failNext
      this.failNext = null
      this.fail(argv, msg, doc, 2)
    }
    const state = this.families[family]
    const pending = new Map<string, FakeTable>()
    let name: string | null = null
    let table: FakeTable | null = null
    const lines = doc.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const lineNo = i + 1
      const line = lines[i]!.trim()
      const failLine = (why: string): never => this.fail(argv, `${argv[0]}: line ${lineNo} failed: ${why}`, doc, lineNo)
      if (line === '' || line.startsWith('#')) continue
      if (line.startsWith('*')) {
        name = line.slice(1)
        table = cloneTable(pending.get(name) ?? state.get(name) ?? emptyTable(name))
        continue
      }
      if (!table || name === null) failLine('no table')
      const t = table as FakeTable
      if (line === 'COMMIT') {
        pending.set(name as string, t)
        table = null
        continue
      }
      if (line.startsWith(':')) {
        const [cn = '', policy = '-'] = line.slice(1).split(/\s+/)
        const c = t.get(cn)
        if (isBuiltinChain(name as string, cn)) {
          if (c && policy !== '-') c.policy = policy
        } else if (c) {
          c.rules = []
          c.counters = []
        } else t.set(cn, { policy: null, rules: [], counters: [] })
        continue
      }
      const toks = tokenizeLine(line)
      const cmd = toks[0]
      const cn = toks[1] ?? ''
      const c = t.get(cn)
      if (!c && cmd !== '-N') failLine(`chain ${cn} does not exist`)
      const chain = c as FakeChain
      const checkTarget = (body: string): void => {
        const target = ruleTarget(body)
        if (target !== null && !STANDARD_TARGETS.test(target) && !t.has(target)) failLine(`no chain/target ${target}`)
        for (const m of body.matchAll(/--match-set (\S+)/g)) {
          if (!this.sets.has(m[1]!)) failLine(`set ${m[1]} does not exist`)
        }
      }
      switch (cmd) {
        case '-N':
          if (c) failLine(`chain ${cn} already exists`)
          t.set(cn, { policy: null, rules: [], counters: [] })
          break
        case '-A': {
          const body = normalizeTokens(toks.slice(2))
          checkTarget(body)
          chain.rules.push(body)
          chain.counters.push({ packets: 0, bytes: 0 })
          break
        }
        case '-I': {
          let rest = toks.slice(2)
          let pos = 1
          if (rest[0] !== undefined && /^\d+$/.test(rest[0])) {
            pos = Number(rest[0])
            rest = rest.slice(1)
          }
          if (pos < 1 || pos > chain.rules.length + 1) failLine(`index ${pos} out of range`)
          const body = normalizeTokens(rest)
          checkTarget(body)
          chain.rules.splice(pos - 1, 0, body)
          chain.counters.splice(pos - 1, 0, { packets: 0, bytes: 0 })
          break
        }
        case '-D': {
          const rest = toks.slice(2)
          let idx: number
          if (rest.length === 1 && /^\d+$/.test(rest[0]!)) idx = Number(rest[0]) - 1
          else idx = chain.rules.indexOf(normalizeTokens(rest))
          if (idx < 0 || idx >= chain.rules.length) failLine('rule does not exist')
          chain.rules.splice(idx, 1)
          chain.counters.splice(idx, 1)
          break
        }
        case '-F':
          chain.rules = []
          chain.counters = []
          break
        case '-X': {
          if (isBuiltinChain(name as string, cn)) failLine('cannot delete a built-in chain')
          if (chain.rules.length) failLine(`chain ${cn} is not empty`)
          for (const [other, oc] of t) {
            if (other !== cn && oc.rules.some((r) => ruleTarget(r) === cn)) failLine(`chain ${cn} is referenced`)
          }
          t.delete(cn)
          break
        }
        default:
          failLine(`unknown command ${cmd}`)
      }
    }
    if (table) this.fail(argv, `${argv[0]}: COMMIT expected at line ${lines.length}`, doc, null)
    for (const [n, t] of pending) state.set(n, t)
  }

  async ipsetSave(): Promise<string> {
    const lines: string[] = []
    for (const [name, s] of this.sets) {
      lines.push(`create ${name} ${s.type} family ${s.family} hashsize 1024 maxelem 65536`)
      for (const m of s.members) lines.push(`add ${name} ${m}`)
    }
    return lines.length ? `${lines.join('\n')}\n` : ''
  }

  private setReferenced(name: string): boolean {
    for (const fam of [4, 6] as const) {
      for (const t of this.families[fam].values()) {
        for (const c of t.values()) if (c.rules.some((r) => r.includes(`--match-set ${name} `))) return true
      }
    }
    return false
  }

  async ipsetRestore(doc: string): Promise<void> {
    const argv = ['ipset', 'restore']
    if (this.failNext !== null) {
      const msg = this.failNext
      this.failNext = null
      this.fail(argv, msg, doc, 1)
    }
    // ipset restore is not transactional: lines before a failure stay applied, as in the kernel.
    const lines = doc.split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim()
      if (line === '') continue
      const toks = line.split(/\s+/)
      const failLine = (why: string): never =>
        this.fail(argv, `ipset v7.17: Error in line ${i + 1}: ${why}`, doc, i + 1)
      const name = toks[1] ?? ''
      const s = this.sets.get(name)
      switch (toks[0]) {
        case 'create': {
          if (s) failLine('Set cannot be created: set with the same name already exists')
          const fi = toks.indexOf('family')
          this.sets.set(name, {
            type: toks[2] ?? '',
            family: fi > 0 ? (toks[fi + 1] ?? 'inet') : 'inet',
            members: new Set(),
          })
          break
        }
        case 'add':
          if (!s) failLine('The set with the given name does not exist')
          if (s!.members.has(toks[2]!)) failLine("Element cannot be added to the set: it's already added")
          s!.members.add(toks[2]!)
          break
        case 'del':
          if (!s) failLine('The set with the given name does not exist')
          if (!s!.members.delete(toks[2]!)) failLine("Element cannot be deleted from the set: it's not added")
          break
        case 'swap': {
          const other = this.sets.get(toks[2] ?? '')
          if (!s || !other) failLine('The set with the given name does not exist')
          if (s!.type !== other!.type || s!.family !== other!.family) failLine('The sets cannot be swapped')
          this.sets.set(name, other!)
          this.sets.set(toks[2]!, s!)
          break
        }
        case 'destroy':
          if (!s) failLine('The set with the given name does not exist')
          if (this.setReferenced(name)) failLine('Set cannot be destroyed: it is in use by a kernel component')
          this.sets.delete(name)
          break
        default:
          failLine(`unknown command ${toks[0]}`)
      }
    }
  }

  async conntrackDelete(batch: readonly ConntrackDeletion[]): Promise<void> {
    for (const d of batch) {
      conntrackDeleteArgs(d) // validates
      this.conntrackEntries = this.conntrackEntries.filter(
        (e) =>
          !(
            e.family === d.family &&
            (d.protocol === undefined || d.protocol === e.protocol) &&
            (d.source === undefined || d.source === e.source) &&
            (d.destination === undefined || d.destination === e.destination) &&
            (d.zone === undefined || d.zone === e.zone)
          ),
      )
    }
  }

  async listLinks(): Promise<LinkInfo[]> {
    return [...this.links].map(([name, l]) => ({
      name,
      master: l.master,
      mtu: l.mtu,
      up: l.up,
      address: l.address,
      kind: l.kind,
    }))
  }

  async linkBatch(ops: readonly LinkOp[]): Promise<void> {
    ops.forEach((op, i) => {
      checkLinkOp(op)
      const fail = (why: string): never =>
        this.fail(['ip', '-batch', '-'], `${why}\nCommand failed -:${i + 1}`, JSON.stringify(op), null)
      const l = this.links.get(op.name)
      switch (op.op) {
        case 'add-bridge':
          if (l) fail('RTNETLINK answers: File exists')
          this.links.set(op.name, {
            master: null,
            mtu: op.mtu ?? 1500,
            up: false,
            address: null,
            kind: 'bridge',
            peer: null,
          })
          break
        case 'add-veth':
          if (l || (op.peerNetns === undefined && this.links.has(op.peer))) fail('RTNETLINK answers: File exists')
          this.links.set(op.name, {
            master: null,
            mtu: op.mtu ?? 1500,
            up: false,
            address: null,
            kind: 'veth',
            peer: op.peer,
          })
          if (op.peerNetns === undefined) {
            this.links.set(op.peer, {
              master: null,
              mtu: op.mtu ?? 1500,
              up: false,
              address: null,
              kind: 'veth',
              peer: op.name,
            })
          }
          break
        case 'set':
          if (!l) fail(`Cannot find device "${op.name}"`)
          if (op.master !== undefined) {
            if (!this.links.has(op.master)) fail(`Cannot find device "${op.master}"`)
            l!.master = op.master
          }
          if (op.mtu !== undefined) l!.mtu = op.mtu
          if (op.address !== undefined) l!.address = op.address
          if (op.up !== undefined) l!.up = op.up
          break
        case 'delete':
          if (!l) fail(`Cannot find device "${op.name}"`)
          this.links.delete(op.name)
          if (l!.peer !== null) this.links.delete(l!.peer)
          for (const other of this.links.values()) if (other.master === op.name) other.master = null
          break
        case 'addr-add':
        case 'route-default':
          if (!l) fail(`Cannot find device "${op.name}"`)
          break
        case 'add-tap':
          if (l) fail('ioctl(TUNSETIFF): Device or resource busy')
          this.links.set(op.name, { master: null, mtu: 1500, up: false, address: null, kind: 'tun', peer: null })
          break
      }
    })
  }

  async sysctlSet(entries: Readonly<Record<string, string>>): Promise<void> {
    for (const [k, v] of Object.entries(entries)) checkSysctl(k, v)
    for (const [k, v] of Object.entries(entries)) this.sysctls.set(k, v)
  }

  async ovsAddPorts(bridge: string, ports: readonly OvsPort[]): Promise<void> {
    for (const p of ports) this.ovsPorts.set(p.name, { bridge, externalIds: { ...p.externalIds } })
  }

  async ovsDelPorts(bridge: string, ports: readonly string[]): Promise<void> {
    for (const p of ports) if (this.ovsPorts.get(p)?.bridge === bridge) this.ovsPorts.delete(p)
  }

  async ovsListPorts(bridge: string): Promise<OvsPort[]> {
    return [...this.ovsPorts]
      .filter(([, p]) => p.bridge === bridge)
      .map(([name, p]) => ({ name, externalIds: p.externalIds }))
  }
}
