import { describe, expect, it } from 'vitest'
import { parseIptablesSave } from './parse-save.js'
import { compileRuleset, formatAddr, type Packet, type Pass, parseAddr, parsePrefix, tracePacket } from './trace.js'

const doc = (filter: string) =>
  parseIptablesSave(`*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n${filter}COMMIT\n`)
    .ruleset
const pass: Pass = { bridge: 'br0', physdevIn: 'tapa', physdevOut: 'tapb' }
const pkt = (over: Partial<Packet> = {}): Packet => ({
  family: 4,
  src: parseAddr('10.0.0.1')!.addr,
  dst: parseAddr('10.0.0.2')!.addr,
  proto: 6,
  sport: 1234,
  dport: 22,
  srcMac: 'fa:16:3e:00:00:01',
  ...over,
})
const run = (filter: string, p: Packet = pkt(), ipsets: Record<string, string[]> | null = null) => {
  const t = tracePacket(compileRuleset(doc(filter), 4, ipsets), p, [pass])
  const h = t.hops[0]!
  return {
    verdict: t.verdict,
    by: h.decided_by,
    matched: h.steps.filter((s) => s.matched).map((s) => `${s.chain}#${s.num ?? 'P'}`),
    h,
  }
}

describe('tracePacket semantics', () => {
  it('RETURN goes back to the caller; the end of a user chain too', () => {
    const r = run(
      ':a - [0:0]\n:b - [0:0]\n-A FORWARD -j a\n-A FORWARD -j ACCEPT\n-A a -j b\n-A a -j DROP\n-A b -j RETURN\n',
    )
    expect(r.matched).toEqual(['FORWARD#1', 'a#1', 'b#1', 'a#2'])
    expect(r.verdict).toBe('DROP')
  })
  it('a chain entered by -g returns to the caller of the chain that did the goto', () => {
    const viaC = run(
      ':a - [0:0]\n:c - [0:0]\n-A FORWARD -j c\n-A FORWARD -j ACCEPT\n-A c -g a\n-A c -j DROP\n-A a -p udp -j ACCEPT\n',
    )
    expect(viaC.matched).toEqual(['FORWARD#1', 'c#1', 'FORWARD#2'])
    expect(viaC.verdict).toBe('ACCEPT')
    const fromHook = run(':a - [0:0]\n-A FORWARD -g a\n-A FORWARD -j ACCEPT\n-A a -p udp -j ACCEPT\n')
    expect(fromHook.verdict).toBe('DROP')
    expect(fromHook.by).toMatchObject({ chain: 'FORWARD', num: null })
  })
  it('negation, wildcards, multiport, iprange, tcp flags, mac, set', () => {
    expect(run('-A FORWARD ! -s 10.0.0.0/8 -j ACCEPT\n').verdict).toBe('DROP')
    expect(
      run('-A FORWARD -i br+ -m physdev --physdev-in tap+ --physdev-out tapb --physdev-is-bridged -j ACCEPT\n').verdict,
    ).toBe('ACCEPT')
    expect(run('-A FORWARD -p tcp -m multiport --dports 20:21,22 -j ACCEPT\n').verdict).toBe('ACCEPT')
    expect(run('-A FORWARD -p tcp -m multiport ! --dports 20:21,22 -j ACCEPT\n').verdict).toBe('DROP')
    expect(run('-A FORWARD -m iprange --src-range 10.0.0.0-10.0.0.5 -j ACCEPT\n').verdict).toBe('ACCEPT')
    expect(run('-A FORWARD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT\n').verdict).toBe('ACCEPT')
    expect(
      run('-A FORWARD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT\n', pkt({ tcpFlags: 16 })).verdict,
    ).toBe('DROP')
    expect(run('-A FORWARD -m mac --mac-source FA:16:3E:00:00:01 -j ACCEPT\n').verdict).toBe('ACCEPT')
    expect(run('-A FORWARD -m set --match-set s src -j ACCEPT\n', pkt(), { s: ['10.0.0.0/30'] }).verdict).toBe('ACCEPT')
  })
  it('stops at a match it cannot evaluate, naming the rule', () => {
    const r = run(
      '-A FORWARD -p tcp -j LOG\n-A FORWARD -m hashlimit --hashlimit-above 5/sec -j DROP\n-A FORWARD -j ACCEPT\n',
    )
    expect(r.verdict).toBe('UNKNOWN')
    expect(r.by).toMatchObject({ chain: 'FORWARD', num: 2 })
    expect(r.h.unknown).toMatch(/hashlimit/)
    expect(run('-A FORWARD -m set --match-set s src -j ACCEPT\n').verdict).toBe('UNKNOWN')
    expect(
      run('-A FORWARD -m mac --mac-source FA:16:3E:00:00:01 -j ACCEPT\n', (({ srcMac: _m, ...rest }) => rest)(pkt()))
        .verdict,
    ).toBe('UNKNOWN')
  })
  it('the first CT target of raw wins, and notrack makes the packet UNTRACKED', () => {
    const rs = parseIptablesSave(
      '*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j CT --zone 9\n-A PREROUTING -j CT --notrack\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m state --state NEW -j ACCEPT\nCOMMIT\n',
    ).ruleset
    const t = tracePacket(compileRuleset(rs, 4, null), pkt(), [pass])
    expect(t.hops[0]!.zone).toBe(9)
    expect(t.verdict).toBe('ACCEPT')
  })
})

describe('addresses', () => {
  it('parses and formats IPv4 and IPv6', () => {
    for (const a of ['0.0.0.0', '192.168.1.12', '::', '2001:db8::1', 'fe80::f816:3eff:fe1a:2b73', '1:2:3:4:5:6:7:8']) {
      expect(formatAddr(parseAddr(a)!.addr)).toBe(a)
    }
    expect(parseAddr('1.2.3.256')).toBeNull()
    expect(parseAddr('1::2::3')).toBeNull()
    expect(parsePrefix('10.1.2.3/8')!.words).toEqual(parseAddr('10.0.0.0')!.addr)
  })
})
