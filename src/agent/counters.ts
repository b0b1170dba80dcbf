/**
 * Per-rule packet/byte counters read back from the kernel (`iptables-save -c`),
 * each attributed to what produced the rule: a security-group rule (its id and
 * group) or a fixed rule of the driver (DHCP, anti-spoofing, state, fallback,
 * zones, dispatch jumps). Pure: the caller reads the kernel.
 */
import { ipsetName, portChainName } from '../compile/names.js'
import { COMMENTS, ipsetSgRule, plainSgRule } from '../compile/rules.js'
import type { Ethertype, HostConfig, HostState, Port } from '../model/types.js'
import { renderRuleBody } from '../netfilter/render.js'
import { normalizeRuleBody, parseSaveText } from '../netfilter/save-text.js'

export type CounterRole =
  | 'security-group-rule'
  | 'hook'
  | 'dispatch'
  | 'sg-chain-accept'
  | 'state-established'
  | 'state-invalid'
  | 'fallback-jump'
  | 'fallback-drop'
  | 'spoof-jump'
  | 'spoof-allow'
  | 'spoof-drop'
  | 'dhcp-client'
  | 'dhcp-spoof-drop'
  | 'dhcp-reply'
  | 'ipv6-nd'
  | 'ipv6-ra-in'
  | 'ipv6-ra-drop'
  | 'ipv6-icmp-allow'
  | 'port-security-disabled'
  | 'trusted'
  | 'ct-zone'
  | 'notrack'
  | 'unknown'

export interface CounterRow {
  readonly family: 4 | 6
  readonly table: string
  readonly chain: string
  /** 1-based position in the chain. */
  readonly position: number
  readonly packets: number
  readonly bytes: number
  readonly role: CounterRole
  readonly portId: string | null
  readonly securityGroupId: string | null
  readonly ruleId: string | null
  readonly body: string
}

const ROLE_BY_COMMENT: ReadonlyArray<[string, CounterRole]> = [
  [COMMENTS.VM_INT_SG, 'dispatch'],
  [COMMENTS.SG_TO_VM_SG, 'dispatch'],
  [COMMENTS.INPUT_TO_SG, 'dispatch'],
  [COMMENTS.PAIR_ALLOW, 'spoof-allow'],
  [COMMENTS.PAIR_DROP, 'spoof-drop'],
  [COMMENTS.DHCP_CLIENT, 'dhcp-client'],
  [COMMENTS.DHCP_SPOOF, 'dhcp-spoof-drop'],
  [COMMENTS.UNMATCHED, 'fallback-jump'],
  [COMMENTS.INVALID_DROP, 'state-invalid'],
  [COMMENTS.ALLOW_ASSOC, 'state-established'],
  [COMMENTS.PORT_SEC_ACCEPT, 'port-security-disabled'],
  [COMMENTS.TRUSTED_ACCEPT, 'trusted'],
  [COMMENTS.IPV6_RA_DROP, 'ipv6-ra-drop'],
  [COMMENTS.IPV6_ICMP_ALLOW, 'ipv6-icmp-allow'],
  [COMMENTS.FALLBACK_DROP, 'fallback-drop'],
]

function fixedRole(chain: string, body: string): CounterRole {
  for (const [text, role] of ROLE_BY_COMMENT) if (body.includes(`"${text}"`)) return role
  if (body.includes('"Set zone for ')) return 'ct-zone'
  if (body.includes('"Make ') && body.includes(' stateless"')) return 'notrack'
  if (/--sport 67 --dport 68 -j RETURN$/.test(body) || /--sport 547 --dport 546 -j RETURN$/.test(body)) {
    return 'dhcp-reply'
  }
  if (/--icmpv6-type 13[056] -j RETURN$/.test(body)) return 'ipv6-nd'
  if (/--icmpv6-type 134 -j RETURN$/.test(body)) return 'ipv6-ra-in'
  if (body === '-j ACCEPT' && chain.endsWith('-sg-chain')) return 'sg-chain-accept'
  if (/^-j neutron-\S+-s[0-9a-f-]{10}$/.test(body)) return 'spoof-jump'
  if (/^-j neutron-/.test(body)) return 'hook'
  return 'unknown'
}

interface SgOrigin {
  readonly groupId: string
  readonly ruleId: string
}

/** For one port and direction: rendered body → the first security-group rule that renders to it. */
function sgRuleBodies(
  state: HostState,
  config: HostConfig,
  port: Port,
  direction: 'ingress' | 'egress',
  ethertype: Ethertype,
): Map<string, SgOrigin> {
  const out = new Map<string, SgOrigin>()
  const add = (body: string, o: SgOrigin): void => {
    const n = normalizeRuleBody(body)
    if (!out.has(n)) out.set(n, o)
  }
  for (const gid of port.security_groups) {
    const g = state.security_groups.find((x) => x.id === gid)
    if (!g) continue
    for (const r of g.rules) {
      if (r.direction !== direction || r.ethertype !== ethertype) continue
      const origin = { groupId: g.id, ruleId: r.id }
      if (r.remote_group_id === null) {
        add(renderRuleBody(plainSgRule(r, r.remote_ip_prefix)), origin)
      } else if (config.enable_ipset) {
        add(renderRuleBody(ipsetSgRule(r, ipsetName(ethertype, r.remote_group_id))), origin)
      } else {
        for (const m of state.members[r.remote_group_id]?.[ethertype] ?? []) {
          add(renderRuleBody(plainSgRule(r, m)), origin)
        }
      }
    }
  }
  return out
}

/** Attribute every counter of our chains in one family's `iptables-save -c`. */
export function attributeCounters(
  family: 4 | 6,
  saveWithCounters: string,
  state: HostState,
  config: HostConfig,
  chainPrefix = 'neutron-',
): CounterRow[] {
  const ethertype: Ethertype = family === 4 ? 'IPv4' : 'IPv6'
  const chainPort = new Map<string, { port: Port; direction: 'ingress' | 'egress' | null }>()
  for (const p of state.ports) {
    chainPort.set(portChainName(config.firewall_driver, 'i', p.id), { port: p, direction: 'ingress' })
    chainPort.set(portChainName(config.firewall_driver, 'o', p.id), { port: p, direction: 'egress' })
    chainPort.set(portChainName(config.firewall_driver, 's', p.id), { port: p, direction: null })
  }
  const bodyCache = new Map<string, Map<string, SgOrigin>>()
  const rows: CounterRow[] = []
  const { doc } = parseSaveText(saveWithCounters)
  for (const t of doc.tables) {
    for (const c of t.chains) {
      const ours = c.name.startsWith(chainPrefix)
      c.rules.forEach((r, i) => {
        if (!ours && !r.body.includes(`-j ${chainPrefix}`)) return
        const cp = chainPort.get(c.name)
        let origin: SgOrigin | undefined
        if (cp?.direction) {
          let bodies = bodyCache.get(c.name)
          if (!bodies) {
            bodies = sgRuleBodies(state, config, cp.port, cp.direction, ethertype)
            bodyCache.set(c.name, bodies)
          }
          origin = bodies.get(r.body)
        }
        rows.push({
          family,
          table: t.name,
          chain: c.name,
          position: i + 1,
          packets: r.counters?.packets ?? 0,
          bytes: r.counters?.bytes ?? 0,
          role: origin ? 'security-group-rule' : fixedRole(c.name, r.body),
          portId: cp?.port.id ?? null,
          securityGroupId: origin?.groupId ?? null,
          ruleId: origin?.ruleId ?? null,
          body: r.body,
        })
      })
    }
  }
  return rows
}

/** A fixed-width table of counter rows. */
export function formatCounters(rows: readonly CounterRow[], onlyNonZero = false): string {
  const shown = onlyNonZero ? rows.filter((r) => r.packets > 0) : rows
  const lines = ['PACKETS    BYTES        FAM TABLE  CHAIN                        ROLE                    RULE']
  for (const r of shown) {
    lines.push(
      [
        String(r.packets).padEnd(10),
        String(r.bytes).padEnd(12),
        `v${r.family} `,
        r.table.padEnd(6),
        `${r.chain}#${r.position}`.padEnd(28),
        r.role.padEnd(23),
        r.ruleId ?? '',
      ].join(' '),
    )
  }
  return `${lines.join('\n')}\n`
}
