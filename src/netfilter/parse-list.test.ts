import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseIpset } from './parse-ipset.js'
import { parseIptablesList, parseListCounter, UNREADABLE_MODULE } from './parse-list.js'
import { renderNormalized, renderRuleBody } from './render.js'

const SEED = join(import.meta.dirname, '../../test/fixtures/seed')

describe('parseIptablesList on the seed listings (fixed by hand)', () => {
  it('reads the empty-group listing into the rules Neutron installed', () => {
    const { ruleset, issues, family } = parseIptablesList(readFileSync(join(SEED, 'empty-group.list'), 'utf8'))
    expect(issues).toEqual([])
    expect(family).toBe(4)
    expect(renderNormalized(ruleset)).toBe(
      [
        '*filter',
        ':FORWARD ACCEPT [0:0]',
        ':neutron-openvswi-FORWARD - [0:0]',
        ':neutron-openvswi-ic0a350e0-4 - [0:0]',
        ':neutron-openvswi-oc0a350e0-4 - [0:0]',
        ':neutron-openvswi-sc0a350e0-4 - [0:0]',
        ':neutron-openvswi-sg-chain - [0:0]',
        ':neutron-openvswi-sg-fallback - [0:0]',
        '-A FORWARD -j neutron-filter-top',
        '-A FORWARD -j neutron-openvswi-FORWARD',
        '-A neutron-openvswi-FORWARD -m physdev --physdev-out tapc0a350e0-43 --physdev-is-bridged -m comment --comment "Direct traffic from the VM interface to the security group chain." -j neutron-openvswi-sg-chain',
        '-A neutron-openvswi-FORWARD -m physdev --physdev-in tapc0a350e0-43 --physdev-is-bridged -m comment --comment "Direct traffic from the VM interface to the security group chain." -j neutron-openvswi-sg-chain',
        '-A neutron-openvswi-ic0a350e0-4 -m state --state RELATED,ESTABLISHED -m comment --comment "Direct packets associated with a known session to the RETURN chain." -j RETURN',
        '-A neutron-openvswi-ic0a350e0-4 -s 192.168.1.2/32 -p udp -m udp --sport 67 --dport 68 -j RETURN',
        '-A neutron-openvswi-ic0a350e0-4 -m state --state INVALID -m comment --comment "Drop packets that appear related to an existing connection (e.g. TCP ACK/FIN) but do not have an entry in conntrack." -j DROP',
        '-A neutron-openvswi-ic0a350e0-4 -m comment --comment "Send unmatched traffic to the fallback chain." -j neutron-openvswi-sg-fallback',
        '-A neutron-openvswi-oc0a350e0-4 -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -m comment --comment "Allow DHCP client traffic." -j RETURN',
        '-A neutron-openvswi-oc0a350e0-4 -j neutron-openvswi-sc0a350e0-4',
        '-A neutron-openvswi-oc0a350e0-4 -p udp -m udp --sport 68 --dport 67 -m comment --comment "Allow DHCP client traffic." -j RETURN',
        '-A neutron-openvswi-oc0a350e0-4 -p udp -m udp --sport 67 --dport 68 -m comment --comment "Prevent DHCP Spoofing by VM." -j DROP',
        '-A neutron-openvswi-oc0a350e0-4 -m state --state RELATED,ESTABLISHED -m comment --comment "Direct packets associated with a known session to the RETURN chain." -j RETURN',
        '-A neutron-openvswi-oc0a350e0-4 -m state --state INVALID -m comment --comment "Drop packets that appear related to an existing connection (e.g. TCP ACK/FIN) but do not have an entry in conntrack." -j DROP',
        '-A neutron-openvswi-oc0a350e0-4 -m comment --comment "Send unmatched traffic to the fallback chain." -j neutron-openvswi-sg-fallback',
        '-A neutron-openvswi-sc0a350e0-4 -s 192.168.1.12/32 -m mac --mac-source FA:16:3E:C3:EA:D5 -m comment --comment "Allow traffic from defined IP/MAC pairs." -j RETURN',
        '-A neutron-openvswi-sc0a350e0-4 -m comment --comment "Drop traffic without an IP/MAC allow rule." -j DROP',
        '-A neutron-openvswi-sg-chain -m physdev --physdev-out tapc0a350e0-43 --physdev-is-bridged -m comment --comment "Jump to the VM specific chain." -j neutron-openvswi-ic0a350e0-4',
        '-A neutron-openvswi-sg-chain -m physdev --physdev-in tapc0a350e0-43 --physdev-is-bridged -m comment --comment "Jump to the VM specific chain." -j neutron-openvswi-oc0a350e0-4',
        '-A neutron-openvswi-sg-fallback -m comment --comment "Default drop rule for unmatched traffic." -j DROP',
        'COMMIT',
        '',
      ].join('\n'),
    )
    const forward = ruleset.tables[0]!.chains.find((c) => c.name === 'FORWARD')!
    expect(forward.rules[0]!.counters).toEqual({ packets: 348_000, bytes: 19_000_000 })
    const ingress = ruleset.tables[0]!.chains.find((c) => c.name === 'neutron-openvswi-ic0a350e0-4')!
    expect(ingress.rules.map((r) => r.counters?.packets)).toEqual([169, 2, 0, 6])
  })

  it('reads the listings after adding rule 1 and rule 2', () => {
    const egress = parseIptablesList(readFileSync(join(SEED, 'rule1-egress.list'), 'utf8'))
    expect(egress.issues).toEqual([])
    expect(renderRuleBody(egress.ruleset.tables[0]!.chains[0]!.rules[5]!)).toBe('-j RETURN')
    const ingress = parseIptablesList(readFileSync(join(SEED, 'rule2-icmp.list'), 'utf8'))
    expect(ingress.issues).toEqual([])
    expect(renderRuleBody(ingress.ruleset.tables[0]!.chains[0]!.rules[2]!)).toBe('-p icmp -j RETURN')
  })
})

describe('parseIptablesList tolerance and reporting', () => {
  const listing = [
    'Chain INPUT (policy DROP 12 packets, 3456 bytes)',
    'num pkts bytes target prot opt in out source destination',
    '1 0 0 ACCEPT 6 -- eth0 !lo 10.0.0.0/8 0.0.0.0/0 tcp dpt:22',
    '',
    'Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)',
    '    pkts      bytes target     prot opt in     out     source               destination',
    '  1234567  99999999 CT         0    --  *      *       0.0.0.0/0            0.0.0.0/0            CT zone 7',
  ].join('\n')

  it('finds columns by the header, takes any blanks, switches to raw at PREROUTING', () => {
    const { ruleset, issues } = parseIptablesList(listing)
    expect(issues).toEqual([])
    expect(renderNormalized(ruleset)).toBe(
      [
        '*filter',
        ':INPUT DROP [0:0]',
        '-A INPUT -s 10.0.0.0/8 -i eth0 ! -o lo -p tcp -m tcp --dport 22 -j ACCEPT',
        'COMMIT',
        '*raw',
        ':PREROUTING ACCEPT [0:0]',
        '-A PREROUTING -j CT --zone 7',
        'COMMIT',
        '',
      ].join('\n'),
    )
    expect(ruleset.tables[0]!.chains[0]!.counters).toEqual({ packets: 12, bytes: 3456 })
    expect(ruleset.tables[1]!.chains[0]!.rules[0]!.counters).toEqual({ packets: 1234567, bytes: 99999999 })
  })

  it('reads the listing without -v (no counters, no in/out columns)', () => {
    const { ruleset, issues } = parseIptablesList(
      [
        'Chain FORWARD (policy ACCEPT)',
        'target     prot opt source               destination',
        'ACCEPT     udp  --  anywhere             anywhere             udp spt:bootps dpt:bootpc',
      ].join('\n'),
    )
    expect(issues).toEqual([])
    expect(renderRuleBody(ruleset.tables[0]!.chains[0]!.rules[0]!)).toBe(
      '-p udp -m udp --sport 67 --dport 68 -j ACCEPT',
    )
  })

  it('reports what it cannot read with the line number and keeps an unreadable placeholder', () => {
    const text = [
      '    0     0 ACCEPT all -- any any anywhere anywhere', // 1: before a chain header
      'Chain X (1 references)', // 2
      ' pkts bytes target prot opt in out source destination', // 3
      '    0     0 ACCEPT all -- any any anywhere anywhere frobnicate 7', // 4: unknown match printout
      '    0     0 ACCEPT all -- any any somehost.example anywhere', // 5: resolved host name
      '   x0     0 ACCEPT all -- any any anywhere anywhere', // 6: bad counters
      '    0     0 ACCEPT all any any anywhere anywhere', // 7: no opt column
      'Chain Y (what)', // 8
    ].join('\n')
    const { ruleset, issues } = parseIptablesList(text)
    expect(issues.map((i) => i.line)).toEqual([1, 4, 5, 6, 7, 8])
    for (const i of issues) expect(i.text).toBe(text.split('\n')[i.line - 1])
    const x = ruleset.tables[0]!.chains[0]!
    expect(x.rules).toHaveLength(1)
    expect(x.rules[0]!.matches.at(-1)).toEqual({
      module: UNREADABLE_MODULE,
      options: [{ flag: '--text', negated: false, args: ['frobnicate 7'] }],
    })
  })

  it('warns when a chain is listed twice with different rules', () => {
    const chain = (target: string) =>
      `Chain X (0 references)\n pkts bytes target prot opt in out source destination\n 0 0 ${target} all -- any any anywhere anywhere\n`
    expect(parseIptablesList(chain('DROP') + chain('DROP')).issues).toEqual([])
    const twice = parseIptablesList(chain('DROP') + chain('ACCEPT'))
    expect(twice.issues.map((i) => i.line)).toEqual([4])
    expect(renderRuleBody(twice.ruleset.tables[0]!.chains[0]!.rules[0]!)).toBe('-j ACCEPT')
  })

  it('reads K/M/G counters', () => {
    expect(parseListCounter('348K')).toBe(348_000)
    expect(parseListCounter('19M')).toBe(19_000_000)
    expect(parseListCounter('2G')).toBe(2_000_000_000)
    expect(parseListCounter('1.5K')).toBeNull()
  })
})

describe('parseIpset', () => {
  const save = [
    'create NIPv4abc hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x5be8ef4c',
    'add NIPv4abc 10.0.0.0/24',
    'add NIPv4abc 192.168.1.12',
    'create empty hash:net family inet6 hashsize 1024 maxelem 65536',
  ].join('\n')
  const list = [
    'Name: NIPv4abc',
    'Type: hash:net',
    'Revision: 7',
    'Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x5be8ef4c',
    'Size in memory: 552',
    'References: 0',
    'Number of entries: 2',
    'Members:',
    '10.0.0.0/24',
    '192.168.1.12 packets 0 bytes 0',
    '',
    'Name: empty',
    'Type: hash:net',
    'Header: family inet6 hashsize 1024 maxelem 65536',
    'Number of entries: 0',
    'Members:',
  ].join('\n')

  it('reads save and list forms to the same sets', () => {
    const a = parseIpset(save)
    const b = parseIpset(list)
    expect(a.issues).toEqual([])
    expect(b.issues).toEqual([])
    expect(a.sets).toEqual([
      { name: 'NIPv4abc', type: 'hash:net', family: 'inet', members: ['10.0.0.0/24', '192.168.1.12'] },
      { name: 'empty', type: 'hash:net', family: 'inet6', members: [] },
    ])
    expect(b.sets).toEqual(a.sets)
  })

  it('reports bad lines and count mismatches', () => {
    const r = parseIpset(
      'add nope 1.2.3.4\ncreate s hash:net\nadd s not-an-ip\nName: t\nNumber of entries: 3\nMembers:\n1.1.1.1\n',
    )
    expect(r.issues.map((i) => i.line)).toEqual([1, 3, 4])
  })
})
