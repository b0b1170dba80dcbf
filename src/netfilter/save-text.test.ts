import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { normalizeRawBody, normalizeRuleBody, parseSaveText, ruleTarget, tokenizeLine } from './save-text.js'

const FIXTURES = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'neutron')

describe('save text', () => {
  it('the fast path normalizes exactly like the tokenizer, on every fixture rule and odd spellings', () => {
    const bodies: string[] = [
      '-m comment --comment single -j ACCEPT',
      '-m comment --comment "two words" -j ACCEPT',
      '-s 10.0.0.1/32 -m mac --mac-source fa:16:3e:aa:bb:cc -m comment --comment "Allow traffic from defined IP/MAC pairs." -j RETURN',
      '-m comment --comment "say \\"hi\\"" -j ACCEPT',
      '-p tcp  -m tcp --dport 22 -j ACCEPT',
      '-m comment --comment "a;b" -j LOG --log-prefix "x y"',
      '',
    ]
    for (const name of readdirSync(FIXTURES).filter((n) => !n.includes('.'))) {
      const e = JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8')) as {
        ipv4: string
        ipv6: string
      }
      for (const doc of [e.ipv4, e.ipv6]) {
        for (const line of doc.split('\n')) if (line.startsWith('-A ')) bodies.push(line.split(' ').slice(2).join(' '))
      }
    }
    for (const b of bodies) expect(normalizeRawBody(b), b).toBe(normalizeRuleBody(b))
    expect(normalizeRawBody('-m comment --comment single -j ACCEPT')).toBe('-m comment --comment "single" -j ACCEPT')
    expect(normalizeRawBody('-m mac --mac-source fa:16:3e:aa:bb:cc -j RETURN')).toBe(
      '-m mac --mac-source FA:16:3E:AA:BB:CC -j RETURN',
    )
  })

  it('parses counters, policies and rules, and names bad lines', () => {
    const { doc, issues } = parseSaveText(
      '# comment\n*filter\n:INPUT DROP [5:300]\n:x - [0:0]\n[3:180] -A INPUT -j x\n-A x\nbogus\nCOMMIT\n',
    )
    expect(doc.tables[0]!.chains[0]).toEqual({
      name: 'INPUT',
      policy: 'DROP',
      counters: { packets: 5, bytes: 300 },
      rules: [{ body: '-j x', counters: { packets: 3, bytes: 180 } }],
    })
    expect(doc.tables[0]!.chains[1]!.rules).toEqual([{ body: '' }])
    expect(issues).toEqual([{ line: 7, message: 'expected "-A CHAIN ...", got "bogus"' }])
  })

  it('finds targets and tokenizes quotes', () => {
    expect(ruleTarget('-m comment --comment "x -j FAKE" -j neutron-a')).toBe('neutron-a')
    expect(ruleTarget('-p tcp -g neutron-b')).toBe('neutron-b')
    expect(ruleTarget('-p tcp')).toBeNull()
    // a -j inside the last quoted string is not the target (the tokenizer decides)
    expect(ruleTarget('-m comment --comment "only -j FAKE"')).toBeNull()
    expect(ruleTarget('-j LOG --log-prefix "a -j FAKE "')).toBe('LOG')
    expect(ruleTarget('-m comment --comment "a" -m comment --comment "b -g FAKE" -j neutron-c')).toBe('neutron-c')
    // the fast path agrees with the tokenizer on every fixture rule
    for (const name of readdirSync(FIXTURES).filter((n) => !n.includes('.'))) {
      const exp = JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8')) as {
        ipv4: string
        ipv6: string
      }
      for (const line of `${exp.ipv4}${exp.ipv6}`.split('\n').filter((l) => l.startsWith('-A '))) {
        const body = line.slice(line.indexOf(' ', 3) + 1)
        const toks = tokenizeLine(body)
        const i = toks.findIndex((t, k) => (t === '-j' || t === '-g') && k + 1 < toks.length)
        expect(ruleTarget(body), line).toBe(i < 0 ? null : toks[i + 1])
      }
    }
    expect(tokenizeLine('a "b c" "d\\"e"')).toEqual(['a', 'b c', 'd"e'])
  })
})
