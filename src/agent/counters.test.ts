import { describe, expect, it } from 'vitest'
import { compileHost, toStateResult } from '../compile/index.js'
import { portChainName } from '../compile/names.js'
import { FakeHost } from '../host/fake-host.js'
import type { HostConfig, HostState } from '../model/types.js'
import { applyDesired } from './apply.js'
import { attributeCounters, formatCounters } from './counters.js'

const config: HostConfig = { firewall_driver: 'iptables_hybrid', enable_ipset: true }
const PORT = 'c0a350e0-4318-4a8e-9d3b-5e6f7a8b9c0d'
const SG = 'cfe9b0d1-468b-4583-ab27-0dfe0a2bb00e'
const R_EGRESS = '11111111-0000-4000-8000-000000000001'
const R_ICMP = '11111111-0000-4000-8000-000000000002'
const R_SSH = '11111111-0000-4000-8000-000000000003'
const R_SELF = '11111111-0000-4000-8000-000000000004'

const state: HostState = {
  security_groups: [
    {
      id: SG,
      stateful: true,
      rules: [
        {
          id: R_EGRESS,
          direction: 'egress',
          ethertype: 'IPv4',
          protocol: null,
          port_range_min: null,
          port_range_max: null,
          remote_ip_prefix: null,
          remote_group_id: null,
        },
        {
          id: R_ICMP,
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: 'icmp',
          port_range_min: null,
          port_range_max: null,
          remote_ip_prefix: null,
          remote_group_id: null,
        },
        {
          id: R_SSH,
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: 'tcp',
          port_range_min: 22,
          port_range_max: 22,
          remote_ip_prefix: '10.0.0.0/8',
          remote_group_id: null,
        },
        {
          id: R_SELF,
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: null,
          port_range_min: null,
          port_range_max: null,
          remote_ip_prefix: null,
          remote_group_id: SG,
        },
      ],
    },
  ],
  members: { [SG]: { IPv4: ['192.168.1.12'] } },
  ports: [
    {
      id: PORT,
      mac_address: 'fa:16:3e:c3:ea:d5',
      fixed_ips: ['192.168.1.12'],
      allowed_address_pairs: [],
      security_groups: [SG],
      port_security_enabled: true,
      network_id: '5486845f-a199-4cce-bd66-10c4a3f7c8f3',
    },
  ],
}

describe('attributeCounters', () => {
  it('names the security-group rule or the fixed rule behind every counter', async () => {
    const host = new FakeHost()
    await applyDesired(host, toStateResult(compileHost(state, config)))
    const inChain = portChainName('iptables_hybrid', 'i', PORT)
    const save = await host.iptablesSave(4)
    const inRules = save.split('\n').filter((l) => l.startsWith(`-A ${inChain} `))
    const icmpPos = inRules.findIndex((l) => l.endsWith('-p icmp -j RETURN')) + 1
    host.setCounter(4, 'filter', inChain, icmpPos, 7)
    const rows = attributeCounters(4, await host.iptablesSave(4, { counters: true }), state, config)
    const byRule = (id: string) => rows.filter((r) => r.ruleId === id)
    expect(byRule(R_ICMP)).toHaveLength(1)
    expect(byRule(R_ICMP)[0]).toMatchObject({
      packets: 7,
      chain: inChain,
      role: 'security-group-rule',
      securityGroupId: SG,
      portId: PORT,
    })
    expect(byRule(R_SSH)[0]!.body).toBe('-s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j RETURN')
    expect(byRule(R_SELF)[0]!.body).toContain('--match-set NIPv4cfe9b0d1-468b-4583-ab27- src')
    expect(byRule(R_EGRESS)[0]!.chain).toBe(portChainName('iptables_hybrid', 'o', PORT))
    const roles = new Set(rows.map((r) => r.role))
    for (const role of [
      'state-established',
      'state-invalid',
      'fallback-jump',
      'fallback-drop',
      'spoof-allow',
      'spoof-drop',
      'dhcp-client',
      'dhcp-spoof-drop',
      'dhcp-reply',
      'dispatch',
      'hook',
      'ct-zone',
      'sg-chain-accept',
      'spoof-jump',
    ] as const) {
      expect(roles, role).toContain(role)
    }
    expect(rows.filter((r) => r.role === 'unknown')).toEqual([])
    expect(formatCounters(rows, true)).toContain(R_ICMP)
  })
})
