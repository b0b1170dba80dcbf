import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Family } from './ir.js'
import { parseIptablesSave } from './parse-save.js'
import { type CtState, compileRuleset, type Packet, type Pass, parseAddr, tracePacket } from './trace.js'
import { programSize, verdictOf, verdictStats } from './verdict.js'

// Hand-written rulesets over every match and target the simulator knows (and some it does not),
// with jumps, gotos, RETURN, loops between chains, raw zones and notrack: the verdict programs must
// give the interpreter's verdict for every packet and path.

const V4 = {
  addrs: ['10.0.0.1', '10.0.0.2', '10.0.1.7', '192.168.1.1'],
  prefixes: ['10.0.0.0/24', '10.0.0.1/32', '10.0.1.0/24', '10.0.0.0/16', '0.0.0.0/0'],
  icmp: ['-p icmp -m icmp --icmp-type 8', '-p icmp -m icmp --icmp-type 0/0', '-p icmp -m icmp --icmp-type 3'],
  icmpProto: 1,
  range: '-m iprange --src-range 10.0.0.0-10.0.0.5',
}
const V6 = {
  addrs: ['2001:db8::1', '2001:db8::2', '2001:db8:1::7', 'fe80::1'],
  prefixes: ['2001:db8::/64', '2001:db8::1/128', '2001:db8:1::/48', 'fe80::/64', '::/0'],
  icmp: ['-p ipv6-icmp -m icmp6 --icmpv6-type 128', '-p ipv6-icmp -m icmp6 --icmpv6-type 135', '-p ipv6-icmp'],
  icmpProto: 58,
  range: '-m iprange --src-range 2001:db8::-2001:db8::5',
}

function fragments(family: Family): string[] {
  const f = family === 4 ? V4 : V6
  return [
    ...f.prefixes.map((p) => `-s ${p}`),
    ...f.prefixes.map((p) => `-d ${p}`),
    `! -s ${f.prefixes[0]}`,
    `! -d ${f.prefixes[2]}`,
    '-p tcp',
    '-p udp',
    '! -p tcp',
    '-p tcp -m tcp --dport 20:30',
    '-p tcp -m tcp --sport 1000:2000 --dport 22',
    '-p udp -m udp --sport 68 --dport 67',
    '-p udp -m udp --dport 67:68',
    '-p tcp -m tcp ! --dport 22',
    '-p tcp -m multiport --dports 20,22,80:90',
    '-p tcp -m multiport --dports 20:25',
    '-p udp -m multiport --sports 60:70',
    '-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN',
    '-p tcp -m tcp',
    ...f.icmp,
    '-m state --state NEW',
    '-m state --state RELATED,ESTABLISHED',
    '-m conntrack --ctstate INVALID',
    '-m state --state UNTRACKED',
    '-m conntrack ! --ctstate NEW',
    '-m mac --mac-source FA:16:3E:00:00:01',
    '-m set --match-set S1 src',
    '-m set --match-set S2 dst',
    '-m set --match-set MISSING src',
    '-m physdev --physdev-in tapa',
    '-m physdev --physdev-out tapb --physdev-is-bridged',
    '-m physdev --physdev-in tap+',
    '-m physdev ! --physdev-in tapa',
    '-m physdev --physdev-is-in',
    '-m physdev --physdev-is-bridged',
    '-i br0',
    '-o br0',
    '-i br+',
    '! -i br1',
    '-m comment --comment "a comment"',
    f.range,
    '-f',
    '-m limit --limit 5/sec',
  ]
}

const FILTER_TARGETS = ['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'LOG', 'MARK --set-mark 1', '']
const RAW_TARGETS = ['CT --zone 4', 'CT --zone 9', 'CT --notrack', 'ACCEPT', 'DROP', 'RETURN', '']

interface RuleSpec {
  readonly matches: number[]
  readonly target: number
  readonly chain: number
  readonly goto: boolean
}

const ruleSpec = fc.record({
  matches: fc.array(fc.nat({ max: 200 }), { maxLength: 3 }),
  target: fc.nat({ max: 20 }),
  chain: fc.nat({ max: 3 }),
  goto: fc.constantFrom(false, false, false, false, true),
})

function rulesetText(
  family: Family,
  forward: RuleSpec[],
  users: RuleSpec[][],
  raw: RuleSpec[],
  policy: boolean,
): string {
  const frags = fragments(family)
  const line = (chain: string, r: RuleSpec, targets: string[], chains: string[]): string => {
    const m = r.matches.map((i) => frags[i % frags.length]!).join(' ')
    let t: string
    if (r.target < targets.length) t = targets[r.target]! === '' ? '' : `-j ${targets[r.target]}`
    else t = `${r.goto ? '-g' : '-j'} ${chains[r.chain % chains.length]}`
    return `-A ${chain} ${m} ${t}`.replace(/ +/g, ' ').trim()
  }
  const userNames = ['c0', 'c1', 'c2', 'c3']
  const lines = ['*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':r0 - [0:0]']
  for (const r of raw) lines.push(line('PREROUTING', r, RAW_TARGETS, ['r0']))
  lines.push('-A r0 -m physdev --physdev-in tapa -j CT --zone 7', 'COMMIT')
  lines.push('*filter', ':INPUT ACCEPT [0:0]', `:FORWARD ${policy ? 'DROP' : 'ACCEPT'} [0:0]`, ':OUTPUT ACCEPT [0:0]')
  for (const n of userNames) lines.push(`:${n} - [0:0]`)
  for (const r of forward) lines.push(line('FORWARD', r, FILTER_TARGETS, userNames))
  users.forEach((rules, i) => {
    for (const r of rules) lines.push(line(userNames[i]!, r, FILTER_TARGETS, userNames))
  })
  lines.push('COMMIT', '')
  return lines.join('\n')
}

const PASSES: Pass[] = [
  { bridge: 'br0', physdevIn: 'tapa', physdevOut: 'tapb' },
  { bridge: 'br0', physdevIn: 'tapb', physdevOut: 'tapa' },
  { bridge: 'qbrx', physdevIn: 'tapc', physdevOut: null },
  { bridge: 'br1', physdevIn: null, physdevOut: 'tapb' },
  { bridge: 'br1', physdevIn: 'tapa', physdevOut: 'uplink' },
]

const STATES: CtState[] = ['NEW', 'NEW', 'ESTABLISHED', 'RELATED', 'INVALID']

const packetSpec = fc.record({
  src: fc.nat({ max: 3 }),
  dst: fc.nat({ max: 3 }),
  proto: fc.constantFrom(6, 17, 1, 47, 0),
  sport: fc.option(fc.constantFrom(22, 25, 59, 60, 67, 68, 70, 71, 999, 1000, 2000, 2001), { nil: undefined }),
  dport: fc.option(fc.constantFrom(19, 20, 21, 22, 23, 25, 26, 30, 31, 66, 67, 68, 69, 79, 80, 85, 90, 91), {
    nil: undefined,
  }),
  icmpType: fc.constantFrom(0, 3, 8, 128, 135),
  tcpFlags: fc.constantFrom(2, 16, 18, 1),
  mac: fc.constantFrom(undefined, 'fa:16:3e:00:00:01', 'fa:16:3e:00:00:02'),
  fragment: fc.constantFrom(false, false, false, true),
  state: fc.constantFrom(...STATES),
  path: fc.array(fc.nat({ max: PASSES.length - 1 }), { minLength: 1, maxLength: 3 }),
})

function packetOf(family: Family, s: typeof packetSpec extends fc.Arbitrary<infer T> ? T : never): Packet {
  const f = family === 4 ? V4 : V6
  const icmp = s.proto === 1
  return {
    family,
    src: parseAddr(f.addrs[s.src]!)!.addr,
    dst: parseAddr(f.addrs[s.dst]!)!.addr,
    proto: icmp ? f.icmpProto : s.proto,
    ...(s.sport !== undefined ? { sport: s.sport } : {}),
    ...(s.dport !== undefined ? { dport: s.dport } : {}),
    ...(icmp ? { icmpType: s.icmpType, icmpCode: 0 } : {}),
    tcpFlags: s.tcpFlags,
    ...(s.mac !== undefined ? { srcMac: s.mac } : {}),
    fragment: s.fragment,
    state: s.state,
  }
}

const IPSETS = {
  4: { S1: ['10.0.0.1', '10.0.1.0/24'], S2: ['10.0.0.2', '192.168.0.0-192.168.1.255'] },
  6: { S1: ['2001:db8::1', '2001:db8:1::/48'], S2: ['2001:db8::2'] },
}

describe('verdict programs give the interpreter verdict', () => {
  it('for every match alone and every pair of matches, on a grid of packets', () => {
    for (const family of [4, 6] as const) {
      const frags = fragments(family)
      const rulesets: string[] = []
      for (const a of frags) rulesets.push(`-A FORWARD ${a} -j ACCEPT`)
      for (let i = 0; i < frags.length; i++)
        for (let j = i + 1; j < frags.length; j += 3) rulesets.push(`-A FORWARD ${frags[i]} ${frags[j]} -j ACCEPT`)
      const packets = fc.sample(packetSpec, { numRuns: 300, seed: 99 })
      let compared = 0
      for (const [n, rule] of rulesets.entries()) {
        const text = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n${rule}\nCOMMIT\n`
        const parsed = parseIptablesSave(text)
        expect(parsed.issues).toEqual([])
        const rs = compileRuleset(parsed.ruleset, family, IPSETS[family])
        // Each match alone meets every packet; pairs meet the first 40.
        for (const p of n < frags.length ? packets : packets.slice(0, 40)) {
          const packet = packetOf(family, p)
          const path = p.path.map((i) => PASSES[i]!)
          const want = tracePacket(rs, packet, path, { record: false, detail: false }).verdict
          expect(verdictOf(rs, packet, path), `${rule}\n${JSON.stringify(packet)} ${JSON.stringify(path)}`).toBe(want)
          compared++
        }
      }
      expect(compared).toBeGreaterThan(20_000)
    }
  }, 120_000)

  for (const family of [4, 6] as const) {
    it(`on random IPv${family} rulesets, packets and paths`, () => {
      const before = { ...verdictStats }
      fc.assert(
        fc.property(
          fc.array(ruleSpec, { maxLength: 6 }),
          fc.array(fc.array(ruleSpec, { maxLength: 5 }), { minLength: 4, maxLength: 4 }),
          fc.array(ruleSpec, { maxLength: 3 }),
          fc.boolean(),
          fc.array(packetSpec, { minLength: 1, maxLength: 12 }),
          (forward, users, raw, policy, packets) => {
            const text = rulesetText(family, forward, users, raw, policy)
            const parsed = parseIptablesSave(text)
            expect(parsed.issues).toEqual([])
            const rs = compileRuleset(parsed.ruleset, family, IPSETS[family])
            for (const p of packets) {
              const packet = packetOf(family, p)
              const path = p.path.map((i) => PASSES[i]!)
              const want = tracePacket(rs, packet, path, { record: false, detail: false }).verdict
              expect(verdictOf(rs, packet, path), `${text}\n${JSON.stringify(packet)} ${JSON.stringify(path)}`).toBe(
                want,
              )
            }
          },
        ),
        { numRuns: 150, seed: family === 4 ? 4242 : 6464 },
      )
      // Both the programs and the fallback to the interpreter were exercised.
      expect(verdictStats.programs - before.programs).toBeGreaterThan(400)
      expect(verdictStats.interpreter - before.interpreter).toBeGreaterThan(50)
    }, 120_000)
  }

  it('on runs of rules with one action (indexed by destination port)', () => {
    const before = { ...verdictStats }
    const portFrags = [
      ...Array.from({ length: 12 }, (_, i) => `-p tcp -m tcp --dport ${20 + i}`),
      '-p udp -m udp --dport 67:68',
      '-p tcp -m multiport --dports 20:25',
      '-p tcp -m multiport --dports 1:1000',
      '-p tcp -m tcp --dport 80:90',
    ]
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ port: fc.nat({ max: portFrags.length - 1 }), other: fc.nat({ max: 200 }), with: fc.boolean() }),
          { minLength: 4, maxLength: 20 },
        ),
        fc.constantFrom('RETURN', 'ACCEPT', 'DROP'),
        fc.array(packetSpec, { minLength: 1, maxLength: 20 }),
        (rules, action, packets) => {
          const frags = fragments(4)
          const lines = rules.map(
            (r) => `-A c0 ${portFrags[r.port]} ${r.with ? frags[r.other % frags.length] : ''} -j ${action}`,
          )
          const text = [
            '*filter',
            ':INPUT ACCEPT [0:0]',
            ':FORWARD DROP [0:0]',
            ':OUTPUT ACCEPT [0:0]',
            ':c0 - [0:0]',
            '-A FORWARD -j c0',
            '-A FORWARD -p tcp -j ACCEPT',
            ...lines,
            '-A c0 -m state --state NEW -j DROP',
            'COMMIT',
            '',
          ].join('\n')
          const parsed = parseIptablesSave(text)
          expect(parsed.issues).toEqual([])
          const rs = compileRuleset(parsed.ruleset, 4, IPSETS[4])
          for (const p of packets) {
            const packet = packetOf(4, p)
            const path = p.path.map((i) => PASSES[i]!)
            const want = tracePacket(rs, packet, path, { record: false, detail: false }).verdict
            expect(verdictOf(rs, packet, path), `${text}\n${JSON.stringify(packet)}`).toBe(want)
          }
        },
      ),
      { numRuns: 300, seed: 777 },
    )
    expect(verdictStats.programs - before.programs).toBeGreaterThan(1000)
  }, 120_000)

  it('specialises a pass: device matches decided, chains inlined, RETURN as a branch', () => {
    const text = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD DROP [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':port-a - [0:0]',
      ':port-b - [0:0]',
      ...Array.from({ length: 40 }, (_, i) => `-A FORWARD -m physdev --physdev-in tap${i} -j port-b`),
      '-A FORWARD -m physdev --physdev-in tapa -j port-a',
      '-A port-a -m state --state RELATED,ESTABLISHED -j RETURN',
      '-A port-a -p tcp -m tcp --dport 22 -j ACCEPT',
      '-A port-a -j DROP',
      '-A port-b -j ACCEPT',
      'COMMIT',
      '',
    ].join('\n')
    const rs = compileRuleset(parseIptablesSave(text).ruleset, 4, null)
    const pass = PASSES[0]!
    // 41 FORWARD rules and port-b vanish for tapa: port-a's three rules and the policy remain.
    expect(programSize(rs, pass)).toEqual({ raw: 1, filter: 4 })
    const pkt = (dport: number, state: CtState): Packet => ({
      family: 4,
      src: parseAddr('10.0.0.1')!.addr,
      dst: parseAddr('10.0.0.2')!.addr,
      proto: 6,
      sport: 40000,
      dport,
      state,
    })
    expect(verdictOf(rs, pkt(22, 'NEW'), [pass])).toBe('ACCEPT')
    expect(verdictOf(rs, pkt(23, 'NEW'), [pass])).toBe('DROP')
    // RETURN from port-a goes back to FORWARD, which ends in its DROP policy.
    expect(verdictOf(rs, pkt(23, 'ESTABLISHED'), [pass])).toBe('DROP')
    expect(verdictOf(rs, pkt(23, 'NEW'), [PASSES[3]!])).toBe('DROP')
  })
})
