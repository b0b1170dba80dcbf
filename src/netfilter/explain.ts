/**
 * Explain a ruleset the way the seed's operator annotates `iptables --list -v`:
 * every chain gets a role (port ingress, port egress, anti-spoofing, sg-chain
 * dispatch, fallback, raw zones, …) and the port it belongs to; every rule a
 * role and one sentence in English or Chinese, with its counters. Reviewer
 * findings: shadowed rules, rules that can never match, jumps to missing
 * chains, chains nothing jumps to, ports whose chains are incomplete.
 *
 * The roles come from the layout Neutron's iptables firewall drivers produce
 * (shared/spec/neutron-behaviour.md), recognised from chain names, targets and
 * matches; nothing here reads a scenario. Attribution of security-group rules
 * to their ids is a callback (`attribute`) supplied by code that knows the scenario.
 */
import ipaddr from 'ipaddr.js'
import { ICMP_NAMES, ICMPV6_NAMES, parseIcmpTypeArg } from './icmp-names.js'
import type { Family, Rule, Ruleset } from './ir.js'
import { BUILTIN_CHAINS, isBuiltinChain } from './ir.js'
import { UNREADABLE_MODULE } from './parse-list.js'
import { renderRuleBody } from './render.js'
import { onlyFacts, type RuleFacts, ruleFacts } from './rule-facts.js'

export type Lang = 'en' | 'zh'

export type ChainRole =
  | 'builtin'
  | 'filter-top'
  | 'forward-dispatch'
  | 'input-dispatch'
  | 'output'
  | 'local'
  | 'sg-chain'
  | 'fallback'
  | 'port-ingress'
  | 'port-egress'
  | 'anti-spoofing'
  | 'raw-zones'
  | 'raw-output'
  | 'unknown'

export type RuleRole =
  | 'established'
  | 'invalid-drop'
  | 'dhcp-server-reply'
  | 'dhcp-client'
  | 'dhcp-spoof-drop'
  | 'ip-mac-allow'
  | 'spoof-drop'
  | 'icmpv6-nd'
  | 'icmpv6-ra'
  | 'icmpv6-ra-drop'
  | 'icmpv6-allow'
  | 'sg-rule'
  | 'port-security-off-accept'
  | 'trusted-port-accept'
  | 'jump'
  | 'fallback-jump'
  | 'fallback-drop'
  | 'sg-chain-accept'
  | 'zone'
  | 'notrack'
  | 'unknown'

export interface PortRef {
  /** The 10 characters of the port id in the chain names. */
  readonly port_id_prefix: string
  /** The VM's tap device, when a rule of the ruleset names it. */
  readonly device: string | null
}

export interface Attribution {
  readonly sg_rule_id: string
  readonly security_group_id: string
}

export interface ExplainedRule {
  readonly num: number
  readonly pkts: number | null
  readonly bytes: number | null
  readonly rule: string
  readonly role: RuleRole
  readonly explanation: string
  readonly sg_rule_id?: string
  readonly security_group_id?: string
}

export interface ExplainedChain {
  readonly table: string
  readonly name: string
  readonly role: ChainRole
  readonly port: PortRef | null
  readonly description: string
  readonly rules: readonly ExplainedRule[]
}

export type FindingKind =
  | 'shadowed'
  | 'never-matches'
  | 'missing-chain'
  | 'unreferenced-chain'
  | 'port-incomplete'
  | 'zone-stale'
  | 'unreadable'
  | 'sg-rule-unattributed'
  | 'partial'
  | 'port-missing'
  | 'port-stale'

export interface Finding {
  readonly kind: FindingKind
  readonly table: string
  readonly chain: string
  readonly num?: number
  readonly message: string
}

export interface Explanation {
  readonly family: Family
  readonly chains: readonly ExplainedChain[]
  readonly findings: readonly Finding[]
}

export interface ExplainOptions {
  readonly lang: Lang
  readonly family: Family
  /** Names the security-group rule behind a port-chain rule of role sg-rule, when known. */
  readonly attribute?: (context: {
    readonly chain: string
    readonly direction: 'ingress' | 'egress'
    readonly port: PortRef
    readonly rule: Rule
  }) => Attribution | null
  /**
   * The ports that should have chains here (from the scenario or server): port id and device.
   * Given, the findings also name expected ports without chains and chains of unknown ports.
   */
  readonly expectedPorts?: readonly { readonly id: string; readonly device: string }[]
}

const NEUTRON_CHAIN = /^neutron-([a-z0-9_]+)-(.+)$/
const BUILTIN_TARGETS = new Set([
  'ACCEPT',
  'DROP',
  'RETURN',
  'REJECT',
  'LOG',
  'CT',
  'NOTRACK',
  'MARK',
  'CONNMARK',
  'QUEUE',
  'NFQUEUE',
  'TRACE',
  'SNAT',
  'DNAT',
  'MASQUERADE',
  'REDIRECT',
  'TCPMSS',
  'NFLOG',
])

export function chainRole(table: string, name: string): { role: ChainRole; portPrefix: string | null } {
  if (isBuiltinChain(table, name)) return { role: 'builtin', portPrefix: null }
  if (name === 'neutron-filter-top') return { role: 'filter-top', portPrefix: null }
  const m = NEUTRON_CHAIN.exec(name)
  if (!m) return { role: 'unknown', portPrefix: null }
  const suffix = m[2]!
  if (table === 'raw') {
    if (suffix === 'PREROUTING') return { role: 'raw-zones', portPrefix: null }
    if (suffix === 'OUTPUT') return { role: 'raw-output', portPrefix: null }
    return { role: 'unknown', portPrefix: null }
  }
  switch (suffix) {
    case 'FORWARD':
      return { role: 'forward-dispatch', portPrefix: null }
    case 'INPUT':
      return { role: 'input-dispatch', portPrefix: null }
    case 'OUTPUT':
      return { role: 'output', portPrefix: null }
    case 'local':
      return { role: 'local', portPrefix: null }
    case 'sg-chain':
      return { role: 'sg-chain', portPrefix: null }
    case 'sg-fallback':
      return { role: 'fallback', portPrefix: null }
  }
  const port = /^([ios])(.{1,10})$/.exec(suffix)
  if (port) {
    const role = port[1] === 'i' ? 'port-ingress' : port[1] === 'o' ? 'port-egress' : 'anti-spoofing'
    return { role, portPrefix: port[2]! }
  }
  return { role: 'unknown', portPrefix: null }
}

export function explainRuleset(ruleset: Ruleset, options: ExplainOptions): Explanation {
  const { lang, family } = options
  const chains: ExplainedChain[] = []
  const findings: Finding[] = []
  const devices = portDevices(ruleset)
  const partialTables = new Set<string>()
  for (const table of ruleset.tables) {
    const missingBuiltins = (BUILTIN_CHAINS[table.name] ?? []).filter((b) => !table.chains.some((c) => c.name === b))
    if (missingBuiltins.length === 0) continue
    partialTables.add(table.name)
    findings.push({
      kind: 'partial',
      table: table.name,
      chain: missingBuiltins.join(', '),
      message: t(lang, {
        en: `table ${table.name} lacks built-in chains ${missingBuiltins.join(', ')}: a partial listing, so checks for missing and unreferenced chains are skipped`,
        zh: `${table.name} 表缺少内置链 ${missingBuiltins.join('、')}：这是部分列表，因此跳过缺失链和未引用链的检查`,
      }),
    })
  }
  for (const table of ruleset.tables) {
    const partial = partialTables.has(table.name)
    const chainNames = new Set(table.chains.map((c) => c.name))
    const referenced = new Set<string>()
    for (const chain of table.chains) {
      const { role, portPrefix } = chainRole(table.name, chain.name)
      const port: PortRef | null = portPrefix
        ? { port_id_prefix: portPrefix, device: devices.get(portPrefix) ?? null }
        : null
      const facts = chain.rules.map(ruleFacts)
      const establishedAt = facts.findIndex((f) => isEstablished(f))
      const rules: ExplainedRule[] = chain.rules.map((rule, i) => {
        const f = facts[i]!
        const ctx: RoleContext = { table: table.name, chainRole: role, index: i, establishedAt, family }
        const ruleRole = classify(f, ctx)
        if (f.target && !f.goto && chainNames.has(f.target)) referenced.add(f.target)
        if (f.target && f.goto && chainNames.has(f.target)) referenced.add(f.target)
        let attribution: Attribution | null = null
        if (ruleRole === 'sg-rule' && port && options.attribute) {
          attribution = options.attribute({
            chain: chain.name,
            direction: role === 'port-ingress' ? 'ingress' : 'egress',
            port,
            rule,
          })
          if (!attribution) {
            findings.push({
              kind: 'sg-rule-unattributed',
              table: table.name,
              chain: chain.name,
              num: i + 1,
              message: t(lang, {
                en: `rule ${i + 1} looks like a security-group rule, but no rule of the port's groups in the scenario renders to it`,
                zh: `第 ${i + 1} 条看起来是安全组规则，但场景中该端口所属安全组没有一条规则会生成它`,
              }),
            })
          }
        }
        const explained: ExplainedRule = {
          num: i + 1,
          pkts: rule.counters?.packets ?? null,
          bytes: rule.counters?.bytes ?? null,
          rule: renderRuleBody(rule),
          role: ruleRole,
          explanation: explainRule(ruleRole, f, { lang, family, chainRole: role, port, devices }),
          ...(attribution ?? {}),
        }
        if (f.other.includes(`${UNREADABLE_MODULE} --text`)) {
          findings.push({
            kind: 'unreadable',
            table: table.name,
            chain: chain.name,
            num: i + 1,
            message: t(lang, {
              en: `part of rule ${i + 1} could not be read from the listing`,
              zh: `第 ${i + 1} 条规则有一部分无法从列表中读出`,
            }),
          })
        }
        const never = neverMatches(f, family, lang)
        if (never)
          findings.push({ kind: 'never-matches', table: table.name, chain: chain.name, num: i + 1, message: never })
        if (
          !partial &&
          f.target &&
          !chainNames.has(f.target) &&
          !BUILTIN_TARGETS.has(f.target) &&
          !/^[A-Z]+$/.test(f.target)
        ) {
          findings.push({
            kind: 'missing-chain',
            table: table.name,
            chain: chain.name,
            num: i + 1,
            message: t(lang, {
              en: `rule ${i + 1} jumps to ${f.target}, which does not exist in table ${table.name}`,
              zh: `第 ${i + 1} 条规则跳转到 ${f.target}，但 ${table.name} 表中没有这条链`,
            }),
          })
        }
        return explained
      })
      findings.push(...shadowFindings(table.name, chain.name, chain.rules, facts, lang))
      chains.push({
        table: table.name,
        name: chain.name,
        role,
        port,
        description: describeChain(role, port, lang, table.name),
        rules,
      })
    }
    for (const chain of partial ? [] : table.chains) {
      if (isBuiltinChain(table.name, chain.name) || referenced.has(chain.name)) continue
      // Neutron keeps these after its last port is gone (neutron-behaviour.md section 1): not stale.
      const { role } = chainRole(table.name, chain.name)
      if (role === 'sg-chain' || role === 'fallback') continue
      findings.push({
        kind: 'unreferenced-chain',
        table: table.name,
        chain: chain.name,
        message: t(lang, {
          en: `nothing jumps to chain ${chain.name}: its rules are never evaluated (stale?)`,
          zh: `没有任何规则跳转到链 ${chain.name}：它的规则永远不会被执行（残留？）`,
        }),
      })
    }
  }
  if (!partialTables.has('filter')) findings.push(...portFindings(ruleset, chains, lang))
  if (options.expectedPorts && !partialTables.has('filter')) {
    findings.push(...expectedPortFindings(chains, options.expectedPorts, lang))
  }
  return { family, chains, findings }
}

/** Port id prefix → tap device, from the physdev rules that jump to port chains. */
function portDevices(ruleset: Ruleset): Map<string, string> {
  const out = new Map<string, string>()
  for (const table of ruleset.tables) {
    for (const chain of table.chains) {
      for (const rule of chain.rules) {
        const f = ruleFacts(rule)
        if (!f.target) continue
        const { portPrefix } = chainRole(table.name, f.target)
        const dev = f.physdevOut?.value ?? f.physdevIn?.value
        if (portPrefix && dev && !out.has(portPrefix)) out.set(portPrefix, dev)
      }
    }
  }
  return out
}

interface RoleContext {
  table: string
  chainRole: ChainRole
  index: number
  establishedAt: number
  family: Family
}

function isEstablished(f: RuleFacts): boolean {
  return (
    f.states !== null &&
    !f.states.negated &&
    f.states.value.includes('ESTABLISHED') &&
    f.target === 'RETURN' &&
    onlyCore(f, ['states'])
  )
}

const onlyCore = onlyFacts

const isPort = (n: Negatable | null, v: string): boolean => n !== null && !n.negated && n.value === v
type Negatable = { value: string; negated: boolean }

function classify(f: RuleFacts, c: RoleContext): RuleRole {
  const target = f.target
  const jumpsToNeutron = target !== null && (target.startsWith('neutron-') || !BUILTIN_TARGETS.has(target))
  switch (c.chainRole) {
    case 'builtin':
    case 'filter-top':
    case 'raw-output':
    case 'output':
    case 'local':
      return jumpsToNeutron ? 'jump' : 'unknown'
    case 'forward-dispatch':
    case 'input-dispatch':
      if (jumpsToNeutron) return 'jump'
      if (target === 'ACCEPT' && (f.physdevIn || f.physdevOut)) {
        if (f.comment?.includes('trusted')) return 'trusted-port-accept'
        return 'port-security-off-accept'
      }
      return 'unknown'
    case 'sg-chain':
      if (jumpsToNeutron) return 'jump'
      if (target === 'ACCEPT' && onlyCore(f, [])) return 'sg-chain-accept'
      return 'unknown'
    case 'fallback':
      return target === 'DROP' ? 'fallback-drop' : 'unknown'
    case 'anti-spoofing':
      if (target === 'RETURN' && f.macSource && onlyCore(f, ['source', 'macSource'])) return 'ip-mac-allow'
      if (target === 'DROP' && onlyCore(f, [])) return 'spoof-drop'
      return 'unknown'
    case 'raw-zones':
      if (target === 'CT' && f.targetArgs['--zone']) return 'zone'
      if (target === 'CT' && f.targetArgs['--notrack']) return 'notrack'
      return 'unknown'
    case 'port-ingress':
    case 'port-egress':
      return classifyPortRule(f, c)
    case 'unknown':
      return 'unknown'
  }
}

function classifyPortRule(f: RuleFacts, c: RoleContext): RuleRole {
  const ingress = c.chainRole === 'port-ingress'
  const target = f.target
  if (isEstablished(f)) return 'established'
  if (
    target === 'DROP' &&
    f.states &&
    !f.states.negated &&
    f.states.value.join() === 'INVALID' &&
    onlyCore(f, ['states'])
  )
    return 'invalid-drop'
  if (target !== null && /-sg-fallback$/.test(target) && onlyCore(f, [])) return 'fallback-jump'
  if (target !== null && chainRole('filter', target).role === 'anti-spoofing') return 'jump'
  const udp = isPort(f.protocol, 'udp')
  const server = c.family === 4 ? ['67', '68'] : ['547', '546']
  const isServerReply = udp && isPort(f.sport, server[0]!) && isPort(f.dport, server[1]!)
  const isClient = udp && isPort(f.sport, server[1]!) && isPort(f.dport, server[0]!)
  if (isServerReply && onlyCore(f, ['protocol', 'sport', 'dport', 'source', 'destination'])) {
    if (ingress && target === 'RETURN') return 'dhcp-server-reply'
    if (!ingress && target === 'DROP') return 'dhcp-spoof-drop'
  }
  if (
    isClient &&
    !ingress &&
    target === 'RETURN' &&
    onlyCore(f, ['protocol', 'sport', 'dport', 'source', 'destination'])
  )
    return 'dhcp-client'
  const icmp6 = isPort(f.protocol, 'ipv6-icmp')
  const type = f.icmpType && !f.icmpType.negated ? f.icmpType.value : null
  const beforeEstablished = c.establishedAt < 0 || c.index < c.establishedAt
  if (icmp6 && ingress && target === 'RETURN' && onlyCore(f, ['protocol', 'icmpType'])) {
    if (beforeEstablished && (type === '130' || type === '135' || type === '136')) return 'icmpv6-nd'
    if (type === '134') return 'icmpv6-ra'
  }
  if (icmp6 && !ingress && beforeEstablished) {
    if (target === 'RETURN' && (type === '131' || type === '135' || type === '143') && f.source?.value === '::/128')
      return 'icmpv6-nd'
    if (target === 'DROP' && type === '134' && onlyCore(f, ['protocol', 'icmpType'])) return 'icmpv6-ra-drop'
    if (target === 'RETURN' && type === null && onlyCore(f, ['protocol'])) return 'icmpv6-allow'
  }
  if (target === 'RETURN' && c.establishedAt >= 0 && c.index > c.establishedAt && f.comment === null) return 'sg-rule'
  return 'unknown'
}

function t(lang: Lang, s: { en: string; zh: string }): string {
  return s[lang]
}

function describeChain(role: ChainRole, port: PortRef | null, lang: Lang, table: string): string {
  const p = port ? portLabel(port, lang) : ''
  switch (role) {
    case 'builtin':
      return t(lang, {
        en: `built-in chain of the ${table} table`,
        zh: `${table} 表的内置链`,
      })
    case 'filter-top':
      return t(lang, {
        en: 'hook for all Neutron agents (runs first)',
        zh: '所有 Neutron agent 共用的入口链（最先执行）',
      })
    case 'forward-dispatch':
      return t(lang, {
        en: 'sends bridged traffic of each VM port to the security-group chain',
        zh: '把每个虚拟机端口经过网桥的流量送往安全组链',
      })
    case 'input-dispatch':
      return t(lang, {
        en: "sends traffic from VMs to the host itself to the port's egress chain",
        zh: '把虚拟机发往宿主机本身的流量送往该端口的出方向链',
      })
    case 'output':
      return t(lang, { en: 'Neutron hook in OUTPUT (normally empty)', zh: 'Neutron 在 OUTPUT 中的挂载点（通常为空）' })
    case 'local':
      return t(lang, { en: 'local hook (normally empty)', zh: '本地挂载点（通常为空）' })
    case 'sg-chain':
      return t(lang, {
        en: 'security-group dispatch: picks the ingress or egress chain of the port by physdev, then accepts',
        zh: '安全组分发链：按 physdev 选出端口的入方向或出方向链，最后放行',
      })
    case 'fallback':
      return t(lang, { en: 'fallback: drops whatever no rule allowed', zh: '兜底链：丢弃所有未被允许的流量' })
    case 'port-ingress':
      return t(lang, { en: `port ingress: traffic to the VM of ${p}`, zh: `端口入方向：发往 ${p} 虚拟机的流量` })
    case 'port-egress':
      return t(lang, { en: `port egress: traffic from the VM of ${p}`, zh: `端口出方向：从 ${p} 虚拟机发出的流量` })
    case 'anti-spoofing':
      return t(lang, {
        en: `anti-spoofing for ${p}: only the port's own IP/MAC pairs may send`,
        zh: `${p} 的防欺骗链：只允许端口自己的 IP/MAC 对发送`,
      })
    case 'raw-zones':
      return t(lang, {
        en: 'raw table: puts each port in its own conntrack zone (or makes it stateless)',
        zh: 'raw 表：为每个端口设置独立的 conntrack zone（或设为无状态）',
      })
    case 'raw-output':
      return t(lang, {
        en: 'Neutron hook in raw OUTPUT (normally empty)',
        zh: 'Neutron 在 raw OUTPUT 中的挂载点（通常为空）',
      })
    case 'unknown':
      return t(lang, { en: 'not a Neutron chain', zh: '不是 Neutron 的链' })
  }
}

function portLabel(port: PortRef, lang: Lang): string {
  const word = lang === 'en' ? 'port' : '端口'
  return port.device ? `${word} ${port.port_id_prefix} (${port.device})` : `${word} ${port.port_id_prefix}`
}

interface ExplainContext {
  lang: Lang
  family: Family
  chainRole: ChainRole
  port: PortRef | null
  devices: Map<string, string>
}

function explainRule(role: RuleRole, f: RuleFacts, c: ExplainContext): string {
  const { lang } = c
  const dev = f.physdevOut?.value ?? f.physdevIn?.value ?? f.inInterface?.value ?? ''
  const toVm = f.physdevOut !== null
  switch (role) {
    case 'established':
      return t(lang, {
        en: 'Let packets of connections already established (and related ones) through.',
        zh: '放行已建立连接（及相关连接）的数据包。',
      })
    case 'invalid-drop':
      return t(lang, {
        en: 'Drop packets that look like part of a connection (e.g. a stray TCP ACK/FIN) but have no conntrack entry.',
        zh: '丢弃看似属于某个连接（如孤立的 TCP ACK/FIN）但在 conntrack 中没有记录的数据包。',
      })
    case 'dhcp-server-reply':
      return t(lang, {
        en: `Let DHCP replies from a server (UDP ${c.family === 4 ? '67 → 68' : '547 → 546'}) reach the VM${f.destination ? ` at ${f.destination.value}` : ''}.`,
        zh: `放行 DHCP 服务器发给虚拟机${f.destination ? `（${f.destination.value}）` : ''}的应答（UDP ${c.family === 4 ? '67 → 68' : '547 → 546'}）。`,
      })
    case 'dhcp-client':
      return t(lang, {
        en: `Let the VM ask for an address by DHCP (UDP ${c.family === 4 ? '68 → 67' : '546 → 547'}${f.source?.value === '0.0.0.0/32' ? ', broadcast before it has an address' : ''}).`,
        zh: `允许虚拟机通过 DHCP 申请地址（UDP ${c.family === 4 ? '68 → 67' : '546 → 547'}${f.source?.value === '0.0.0.0/32' ? '，尚无地址时的广播' : ''}）。`,
      })
    case 'dhcp-spoof-drop':
      return t(lang, {
        en: 'Drop DHCP server replies sent by the VM: a VM may not act as a DHCP server.',
        zh: '丢弃虚拟机发出的 DHCP 服务器应答：虚拟机不允许充当 DHCP 服务器。',
      })
    case 'ip-mac-allow':
      return t(lang, {
        en: `Allow packets from MAC ${f.macSource?.value ?? '?'}${f.source ? ` with source ${f.source.value}` : ' with any source address'} (an allowed IP/MAC pair of the port).`,
        zh: `允许源 MAC 为 ${f.macSource?.value ?? '?'}${f.source ? `、源地址为 ${f.source.value}` : '、任意源地址'}的数据包（端口允许的 IP/MAC 对）。`,
      })
    case 'spoof-drop':
      return t(lang, {
        en: 'Drop everything else the VM sends: its source IP/MAC is not one of the port’s.',
        zh: '丢弃虚拟机发出的其他所有数据包：其源 IP/MAC 不属于该端口。',
      })
    case 'icmpv6-nd':
      return t(lang, {
        en: `Allow ICMPv6 ${icmpLabel(6, f.icmpType?.value ?? '')} (neighbour discovery / multicast listener), needed for IPv6 to work.`,
        zh: `放行 ICMPv6 ${icmpLabel(6, f.icmpType?.value ?? '')}（邻居发现 / 组播侦听），IPv6 正常工作所必需。`,
      })
    case 'icmpv6-ra':
      return t(lang, {
        en: 'Let router advertisements (ICMPv6 134) reach the VM.',
        zh: '放行发往虚拟机的路由器通告（ICMPv6 134）。',
      })
    case 'icmpv6-ra-drop':
      return t(lang, {
        en: 'Drop router advertisements sent by the VM: a VM may not act as a router.',
        zh: '丢弃虚拟机发出的路由器通告：虚拟机不允许充当路由器。',
      })
    case 'icmpv6-allow':
      return t(lang, { en: 'Let all other ICMPv6 out of the VM.', zh: '放行虚拟机发出的其他所有 ICMPv6。' })
    case 'sg-rule':
      return sgRuleSentence(f, c)
    case 'port-security-off-accept':
      return t(lang, {
        en: `Accept all traffic ${toVm ? 'to' : 'from'} ${dev}: port security is disabled on this port.`,
        zh: `放行${toVm ? '发往' : '来自'} ${dev} 的所有流量：该端口关闭了端口安全。`,
      })
    case 'trusted-port-accept':
      return t(lang, {
        en: `Accept all traffic ${toVm ? 'to' : 'from'} ${dev}: a trusted network port (router, DHCP, …).`,
        zh: `放行${toVm ? '发往' : '来自'} ${dev} 的所有流量：受信任的网络端口（路由器、DHCP 等）。`,
      })
    case 'jump':
      return jumpSentence(f, c)
    case 'fallback-jump':
      return t(lang, {
        en: 'Send everything no rule above allowed to the fallback chain (dropped).',
        zh: '把以上规则都未放行的流量送往兜底链（丢弃）。',
      })
    case 'fallback-drop':
      return t(lang, { en: 'Drop: no rule allowed this packet.', zh: '丢弃：没有任何规则允许此数据包。' })
    case 'sg-chain-accept':
      return t(lang, {
        en: 'Accept what the port chains returned (their RETURN means allowed).',
        zh: '放行端口链返回的流量（端口链中的 RETURN 表示允许）。',
      })
    case 'zone':
    case 'notrack': {
      const where = f.physdevIn
        ? t(lang, { en: `entering the bridge from ${f.physdevIn.value}`, zh: `从 ${f.physdevIn.value} 进入网桥的` })
        : t(lang, { en: `arriving on ${dev}`, zh: `从 ${dev} 接口收到的` })
      const note = f.inInterface
        ? t(lang, {
            en: ' (for bridged traffic -i is the bridge, so this rule does not match it)',
            zh: '（对经过网桥的流量，-i 是网桥本身，因此此规则不会匹配）',
          })
        : ''
      if (role === 'zone') {
        const zone = f.targetArgs['--zone']?.[0] ?? '?'
        return t(lang, {
          en: `Track packets ${where} in conntrack zone ${zone}${note}.`,
          zh: `将${where}数据包放入 conntrack zone ${zone} 跟踪${note}。`,
        })
      }
      return t(lang, {
        en: `Do not track packets ${where} (stateless port)${note}.`,
        zh: `不跟踪${where}数据包（无状态端口）${note}。`,
      })
    }
    case 'unknown':
      return genericSentence(f, c)
  }
}

function jumpSentence(f: RuleFacts, c: ExplainContext): string {
  const { lang } = c
  const target = f.target ?? ''
  const { role, portPrefix } = chainRole(c.chainRole === 'raw-zones' ? 'raw' : 'filter', target)
  const dev = f.physdevOut?.value ?? f.physdevIn?.value
  const dir = f.physdevOut
    ? t(lang, { en: `going to ${dev}`, zh: `发往 ${dev} 的` })
    : f.physdevIn
      ? t(lang, { en: `coming from ${dev}`, zh: `来自 ${dev} 的` })
      : t(lang, { en: 'all', zh: '所有' })
  const port = portPrefix
    ? portLabel({ port_id_prefix: portPrefix, device: c.devices.get(portPrefix) ?? null }, lang)
    : ''
  switch (role) {
    case 'port-ingress':
      return t(lang, {
        en: `Check traffic ${dir} against the ingress rules of ${port}.`,
        zh: `用 ${port} 的入方向规则检查${dir}流量。`,
      })
    case 'port-egress':
      return t(lang, {
        en: `Check traffic ${dir} against the egress rules of ${port}.`,
        zh: `用 ${port} 的出方向规则检查${dir}流量。`,
      })
    case 'anti-spoofing':
      return t(lang, {
        en: `Check the source IP/MAC against the port's allowed pairs (chain ${target}).`,
        zh: `按端口允许的 IP/MAC 对检查源地址（链 ${target}）。`,
      })
    case 'sg-chain':
      return t(lang, { en: `Send traffic ${dir} to the security-group chain.`, zh: `把${dir}流量送往安全组链。` })
    default:
      return t(lang, {
        en: `Continue in chain ${target} for ${dir} packets.`,
        zh: `${dir}数据包继续进入链 ${target}。`,
      })
  }
}

function protoLabel(p: string): string {
  if (p === 'ipv6-icmp') return 'ICMPv6'
  if (/^[a-z]+$/.test(p) && p.length <= 7) return p.toUpperCase()
  return `protocol ${p}`
}

function icmpLabel(family: Family, arg: string): string {
  const parsed = parseIcmpTypeArg(family, arg)
  if (!parsed) return arg
  const names = family === 4 ? ICMP_NAMES : ICMPV6_NAMES
  const named = names.find(
    (n) => n.type === parsed.type && n.codeMin === parsed.codeMin && n.codeMax === parsed.codeMax && n.name !== 'any',
  )
  const base =
    parsed.codeMin === 0 && parsed.codeMax === 255
      ? `type ${parsed.type}`
      : `type ${parsed.type} code ${parsed.codeMin}`
  if (arg === 'any') return 'any type'
  return named ? `${base} (${named.name})` : base
}

function portsLabel(v: string, lang: Lang): string {
  const parts = v.split(',').map((p) => p.replace(':', '-'))
  const many = parts.length > 1 || parts[0]!.includes('-')
  return t(lang, { en: `${many ? 'ports' : 'port'} ${parts.join(', ')}`, zh: `端口 ${parts.join('、')}` })
}

function sgRuleSentence(f: RuleFacts, c: ExplainContext): string {
  const { lang, family } = c
  const ingress = c.chainRole === 'port-ingress'
  const proto = f.protocol ? protoLabel(f.protocol.value) : ''
  const what: string[] = []
  if (f.protocol) what.push(proto)
  if (f.dport) what.push(portsLabel(f.dport.value, lang))
  if (f.icmpType) what.push(icmpLabel(family, f.icmpType.value))
  const remote = ingress ? f.source : f.destination
  let peer = ''
  if (remote)
    peer = t(lang, {
      en: ` ${ingress ? 'from' : 'to'} ${remote.value}`,
      zh: `${ingress ? '来自' : '发往'} ${remote.value} 的`,
    })
  if (f.set) {
    peer = t(lang, {
      en: ` ${ingress ? 'from' : 'to'} members of remote group ${f.set.value.name.slice(5)}… (ipset ${f.set.value.name})`,
      zh: `${ingress ? '来自' : '发往'}远端安全组 ${f.set.value.name.slice(5)}… 成员（ipset ${f.set.value.name}）的`,
    })
  }
  const whatEn = what.length > 0 ? what.join(' ') : 'all traffic'
  const dirZh = ingress ? '入站' : '出站'
  const whatZh = what.length > 0 ? `${dirZh} ${what.join(' ')} ` : `所有${dirZh}`
  return t(lang, {
    en: `Security-group rule: allow ${ingress ? 'incoming' : 'outgoing'} ${whatEn}${peer}.`,
    zh: `安全组规则：允许${peer}${whatZh}流量。`,
  })
}

function genericSentence(f: RuleFacts, c: ExplainContext): string {
  const { lang } = c
  const target = f.target
  const conds: string[] = []
  if (f.protocol) conds.push(`${f.protocol.negated ? '!' : ''}${protoLabel(f.protocol.value)}`)
  if (f.source) conds.push(`${lang === 'en' ? 'from' : '源'} ${f.source.negated ? '!' : ''}${f.source.value}`)
  if (f.destination)
    conds.push(`${lang === 'en' ? 'to' : '目的'} ${f.destination.negated ? '!' : ''}${f.destination.value}`)
  if (f.dport) conds.push(portsLabel(f.dport.value, lang))
  if (f.states) conds.push(`state ${f.states.negated ? '!' : ''}${f.states.value.join(',')}`)
  if (f.physdevIn) conds.push(`physdev-in ${f.physdevIn.value}`)
  if (f.physdevOut) conds.push(`physdev-out ${f.physdevOut.value}`)
  if (f.other.length > 0) conds.push(f.other.join(' '))
  const when = conds.length > 0 ? conds.join(', ') : t(lang, { en: 'any packet', zh: '任意数据包' })
  const action =
    target === null
      ? t(lang, { en: 'only count it', zh: '只计数' })
      : target === 'ACCEPT' || target === 'DROP' || target === 'RETURN' || target === 'REJECT'
        ? target
        : t(lang, { en: `${f.goto ? 'go to' : 'jump to'} ${target}`, zh: `${f.goto ? '转到' : '跳转到'} ${target}` })
  return t(lang, {
    en: `Not a rule Neutron writes: for ${when}, ${action}.`,
    zh: `不是 Neutron 生成的规则：对 ${when}，执行 ${action}。`,
  })
}

const IPV6_EXTENSION_PROTOCOLS = new Set(['ipv6-route', 'ipv6-frag', 'ipv6-opts', 'ah', '43', '44', '60', '51'])

function neverMatches(f: RuleFacts, family: Family, lang: Lang): string | null {
  const p = f.protocol && !f.protocol.negated ? f.protocol.value : null
  if (p === null) return null
  if (family === 6 && IPV6_EXTENSION_PROTOCOLS.has(p)) {
    return t(lang, {
      en: `-p ${p} never matches in ip6tables: it is an IPv6 extension header, which ip6tables skips to find the protocol`,
      zh: `-p ${p} 在 ip6tables 中永远不会匹配：它是 IPv6 扩展头，ip6tables 会跳过扩展头寻找上层协议`,
    })
  }
  if (family === 4 && (p === 'ipv6-icmp' || p === '58')) {
    return t(lang, { en: 'ICMPv6 never occurs in IPv4 packets', zh: 'IPv4 数据包中不会出现 ICMPv6' })
  }
  if (family === 6 && (p === 'icmp' || p === '1')) {
    return t(lang, { en: 'IPv6 uses ICMPv6 (58), never ICMP (1)', zh: 'IPv6 使用 ICMPv6（58），不会出现 ICMP（1）' })
  }
  return null
}

// ---- shadowing ----

const TERMINATING = new Set(['ACCEPT', 'DROP', 'REJECT', 'RETURN'])

interface Condition {
  key: string
  /** For address options: the prefix, so that containment can be checked. */
  prefix?: { flag: string; addr: ipaddr.IPv4 | ipaddr.IPv6; bits: number }
}

function conditions(rule: Rule): Condition[] {
  const out: Condition[] = []
  for (const m of rule.matches) {
    if (m.module === 'comment') continue
    if (m.module !== null && m.options.length === 0) out.push({ key: `-m ${m.module}` })
    for (const o of m.options) {
      const key = `${m.module ?? ''} ${o.negated ? '!' : ''}${o.flag} ${o.args.join(' ')}`
      if (m.module === null && (o.flag === '-s' || o.flag === '-d') && !o.negated) {
        const prefix = parsePrefix(o.args[0] ?? '')
        if (prefix) {
          out.push({ key, prefix: { flag: o.flag, ...prefix } })
          continue
        }
      }
      out.push({ key })
    }
  }
  return out
}

function parsePrefix(s: string): { addr: ipaddr.IPv4 | ipaddr.IPv6; bits: number } | null {
  try {
    const [addr, bits] = ipaddr.parseCIDR(s)
    return { addr, bits }
  } catch {
    return null
  }
}

/** Whether every packet matching `later` also matches `earlier` (by a conservative syntactic check). */
function covers(earlier: Condition[], later: Condition[]): boolean {
  return earlier.every((e) => {
    if (later.some((l) => l.key === e.key)) return true
    if (!e.prefix) return false
    const ep = e.prefix
    return later.some((l) => {
      const lp = l.prefix
      return (
        lp !== undefined &&
        lp.flag === ep.flag &&
        lp.addr.kind() === ep.addr.kind() &&
        lp.bits >= ep.bits &&
        (lp.addr as ipaddr.IPv4).match(ep.addr as ipaddr.IPv4, ep.bits)
      )
    })
  })
}

function shadowFindings(
  table: string,
  chain: string,
  rules: readonly Rule[],
  facts: RuleFacts[],
  lang: Lang,
): Finding[] {
  const out: Finding[] = []
  const conds = rules.map(conditions)
  for (let j = 0; j < rules.length; j++) {
    for (let i = 0; i < j; i++) {
      const ti = facts[i]!.target
      if (ti === null || !TERMINATING.has(ti) || facts[i]!.goto) continue
      if (!covers(conds[i]!, conds[j]!)) continue
      out.push({
        kind: 'shadowed',
        table,
        chain,
        num: j + 1,
        message: t(lang, {
          en: `rule ${j + 1} is never reached: rule ${i + 1} (${ti}) matches every packet it would match`,
          zh: `第 ${j + 1} 条规则永远不会被执行：第 ${i + 1} 条（${ti}）已匹配它能匹配的所有数据包`,
        }),
      })
      break
    }
  }
  return out
}

// ---- ports: chains and jumps that belong together ----

function portFindings(ruleset: Ruleset, chains: readonly ExplainedChain[], lang: Lang): Finding[] {
  const out: Finding[] = []
  const filterChains = chains.filter((c) => c.table === 'filter')
  const ports = new Map<string, Set<ChainRole>>()
  for (const c of filterChains) {
    if (!c.port) continue
    let roles = ports.get(c.port.port_id_prefix)
    if (!roles) {
      roles = new Set()
      ports.set(c.port.port_id_prefix, roles)
    }
    roles.add(c.role)
  }
  const hasRaw = ruleset.tables.some((tb) => tb.name === 'raw')
  const zoneDevices = new Set<string>()
  for (const c of chains) {
    if (c.role !== 'raw-zones') continue
    for (const r of c.rules) if (r.role === 'zone' || r.role === 'notrack') zoneDevices.add(deviceOfRule(r.rule) ?? '')
  }
  const devices = portDevices(ruleset)
  for (const [prefix, roles] of ports) {
    const chainName = filterChains.find((c) => c.port?.port_id_prefix === prefix)!.name
    for (const need of ['port-ingress', 'port-egress'] as const) {
      if (!roles.has(need)) {
        out.push({
          kind: 'port-incomplete',
          table: 'filter',
          chain: chainName,
          message: t(lang, {
            en: `port ${prefix} has no ${need === 'port-ingress' ? 'ingress' : 'egress'} chain`,
            zh: `端口 ${prefix} 缺少${need === 'port-ingress' ? '入方向' : '出方向'}链`,
          }),
        })
      }
    }
    const dev = devices.get(prefix)
    if (hasRaw && dev && !zoneDevices.has(dev)) {
      out.push({
        kind: 'port-incomplete',
        table: 'raw',
        chain: chainName,
        message: t(lang, {
          en: `port ${prefix} (${dev}) has no conntrack zone rule in the raw table`,
          zh: `端口 ${prefix}（${dev}）在 raw 表中没有 conntrack zone 规则`,
        }),
      })
    }
  }
  const knownTaps = new Set(devices.values())
  for (const c of chains) {
    if (c.role !== 'raw-zones') continue
    for (const r of c.rules) {
      const dev = deviceOfRule(r.rule)
      if (dev?.startsWith('tap') && !knownTaps.has(dev) && filterChains.length > 0) {
        out.push({
          kind: 'zone-stale',
          table: 'raw',
          chain: c.name,
          num: r.num,
          message: t(lang, {
            en: `rule ${r.num} sets a zone for ${dev}, which has no port chains (stale)`,
            zh: `第 ${r.num} 条为 ${dev} 设置了 zone，但该设备没有端口链（残留）`,
          }),
        })
      }
    }
  }
  return out
}

function expectedPortFindings(
  chains: readonly ExplainedChain[],
  expected: readonly { readonly id: string; readonly device: string }[],
  lang: Lang,
): Finding[] {
  const out: Finding[] = []
  const present = new Map<string, string>()
  for (const c of chains)
    if (c.table === 'filter' && c.port && !present.has(c.port.port_id_prefix))
      present.set(c.port.port_id_prefix, c.name)
  for (const p of expected) {
    if ([...present.keys()].some((prefix) => p.id.startsWith(prefix))) continue
    out.push({
      kind: 'port-missing',
      table: 'filter',
      chain: '-',
      message: t(lang, {
        en: `port ${p.id} (${p.device}) should be filtered here but has no chains: its traffic is not checked by any security group`,
        zh: `端口 ${p.id}（${p.device}）应在此处过滤，但没有任何链：它的流量不受任何安全组检查`,
      }),
    })
  }
  for (const [prefix, chain] of present) {
    if (expected.some((p) => p.id.startsWith(prefix))) continue
    out.push({
      kind: 'port-stale',
      table: 'filter',
      chain,
      message: t(lang, {
        en: `chains for port ${prefix}…, which the scenario does not have on this host (stale)`,
        zh: `存在端口 ${prefix}… 的链，但场景中此主机没有该端口（残留）`,
      }),
    })
  }
  return out
}

function deviceOfRule(body: string): string | null {
  const m = /--physdev-in (\S+)|-i (\S+)/.exec(body)
  return m ? (m[1] ?? m[2] ?? null) : null
}

// ---- text output ----

const ROLE_LABELS: Record<Lang, Record<RuleRole, string>> = {
  en: {
    established: 'established',
    'invalid-drop': 'invalid drop',
    'dhcp-server-reply': 'DHCP reply',
    'dhcp-client': 'DHCP client',
    'dhcp-spoof-drop': 'DHCP spoof drop',
    'ip-mac-allow': 'IP/MAC allow',
    'spoof-drop': 'spoof drop',
    'icmpv6-nd': 'ICMPv6 ND',
    'icmpv6-ra': 'ICMPv6 RA',
    'icmpv6-ra-drop': 'RA drop',
    'icmpv6-allow': 'ICMPv6 allow',
    'sg-rule': 'SG rule',
    'port-security-off-accept': 'no port security',
    'trusted-port-accept': 'trusted port',
    jump: 'jump',
    'fallback-jump': 'to fallback',
    'fallback-drop': 'fallback drop',
    'sg-chain-accept': 'accept',
    zone: 'zone',
    notrack: 'notrack',
    unknown: 'unknown',
  },
  zh: {
    established: '已建立连接',
    'invalid-drop': '丢弃异常包',
    'dhcp-server-reply': 'DHCP 应答',
    'dhcp-client': 'DHCP 客户端',
    'dhcp-spoof-drop': '防 DHCP 欺骗',
    'ip-mac-allow': 'IP/MAC 放行',
    'spoof-drop': '防欺骗丢弃',
    'icmpv6-nd': 'ICMPv6 邻居发现',
    'icmpv6-ra': 'ICMPv6 路由通告',
    'icmpv6-ra-drop': '丢弃路由通告',
    'icmpv6-allow': 'ICMPv6 放行',
    'sg-rule': '安全组规则',
    'port-security-off-accept': '无端口安全',
    'trusted-port-accept': '受信任端口',
    jump: '跳转',
    'fallback-jump': '转兜底',
    'fallback-drop': '兜底丢弃',
    'sg-chain-accept': '放行',
    zone: 'zone',
    notrack: '不跟踪',
    unknown: '未知',
  },
}

/** The explanation as text for a terminal, chain by chain, then the findings. */
export function renderExplanationText(e: Explanation, lang: Lang): string {
  const lines: string[] = []
  for (const c of e.chains) {
    lines.push(`Chain ${c.name} [${c.table}] — ${c.description}`)
    for (const r of c.rules) {
      const counters = r.pkts === null ? '' : ` (${r.pkts} pkts, ${r.bytes} bytes)`
      const id = r.sg_rule_id
        ? lang === 'en'
          ? ` [rule ${r.sg_rule_id} of group ${r.security_group_id}]`
          : ` [安全组 ${r.security_group_id} 的规则 ${r.sg_rule_id}]`
        : ''
      lines.push(`  ${String(r.num).padStart(3)}  ${ROLE_LABELS[lang][r.role]}${counters}: ${r.rule}`)
      lines.push(`       ${r.explanation}${id}`)
    }
    lines.push('')
  }
  if (e.findings.length > 0) {
    lines.push(lang === 'en' ? 'Findings:' : '审查发现：')
    for (const f of e.findings) lines.push(`  - [${f.kind}] ${f.chain}${f.num ? ` #${f.num}` : ''}: ${f.message}`)
  } else lines.push(lang === 'en' ? 'Findings: none' : '审查发现：无')
  return `${lines.join('\n')}\n`
}
