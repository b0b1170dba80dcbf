import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseScenario } from './validate.js'

const base = JSON.parse(
  readFileSync(
    join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'neutron', 'blog-walkthrough', 'scenario.json'),
    'utf8',
  ),
)
const GROUP = 'cfe9b0d1-468b-4583-ab27-0dfe0a2bb00e'

function withRule(rule: Record<string, unknown>): unknown {
  const s = structuredClone(base)
  s.security_groups[0].rules = [
    {
      id: '0bc633e0-6d73-4fdb-98f9-cee25c5e2cb7',
      direction: 'ingress',
      ethertype: 'IPv4',
      protocol: null,
      port_range_min: null,
      port_range_max: null,
      remote_ip_prefix: null,
      remote_group_id: null,
      ...rule,
    },
  ]
  s.steps = []
  return s
}

function withPort(port: Record<string, unknown>): unknown {
  const s = structuredClone(base)
  s.ports[0] = { ...s.ports[0], ...port }
  s.steps = []
  return s
}

/** Each case: the input, and the path and a fragment of the message expected among the issues. */
const invalid: Array<{ name: string; input: unknown; path: string; message: RegExp }> = [
  {
    name: 'unknown protocol',
    input: withRule({ protocol: 'tcpx' }),
    path: '$.security_groups[0].rules[0].protocol',
    message: /unknown protocol/,
  },
  {
    name: 'protocol number out of range',
    input: withRule({ protocol: 300 }),
    path: '$.security_groups[0].rules[0].protocol',
    message: /0-255/,
  },
  {
    name: 'IPv6-only protocol with IPv4',
    input: withRule({ protocol: 'ipv6-icmp' }),
    path: '$.security_groups[0].rules[0].protocol',
    message: /only valid with ethertype IPv6/,
  },
  {
    name: 'port range on a protocol without ports',
    input: withRule({ protocol: 'gre', port_range_min: 1, port_range_max: 2 }),
    path: '$.security_groups[0].rules[0].port_range_min',
    message: /only allowed with tcp/,
  },
  {
    name: 'port range without protocol',
    input: withRule({ port_range_min: 22, port_range_max: 22 }),
    path: '$.security_groups[0].rules[0].port_range_min',
    message: /protocol is any/,
  },
  {
    name: 'min > max',
    input: withRule({ protocol: 'tcp', port_range_min: 90, port_range_max: 80 }),
    path: '$.security_groups[0].rules[0].port_range_min',
    message: /greater than/,
  },
  {
    name: 'port 0',
    input: withRule({ protocol: 'tcp', port_range_min: 0, port_range_max: 10 }),
    path: '$.security_groups[0].rules[0].port_range_min',
    message: /1-65535/,
  },
  {
    name: 'ICMP code without type',
    input: withRule({ protocol: 'icmp', port_range_max: 0 }),
    path: '$.security_groups[0].rules[0].port_range_max',
    message: /without ICMP type/,
  },
  {
    name: 'ICMP type out of range',
    input: withRule({ protocol: 'icmp', port_range_min: 256 }),
    path: '$.security_groups[0].rules[0].port_range_min',
    message: /0-255/,
  },
  {
    name: 'ethertype/prefix family mismatch',
    input: withRule({ remote_ip_prefix: '2001:db8::/64' }),
    path: '$.security_groups[0].rules[0].remote_ip_prefix',
    message: /IPv6 prefix but the rule's ethertype is IPv4/,
  },
  {
    name: 'bad CIDR',
    input: withRule({ remote_ip_prefix: '10.0.0.0/33' }),
    path: '$.security_groups[0].rules[0].remote_ip_prefix',
    message: /IP address or CIDR/,
  },
  {
    name: 'both remotes',
    input: withRule({ remote_ip_prefix: '10.0.0.0/8', remote_group_id: GROUP }),
    path: '$.security_groups[0].rules[0].remote_group_id',
    message: /mutually exclusive/,
  },
  {
    name: 'unknown remote group',
    input: withRule({ remote_group_id: '11111111-2222-4333-8444-555555555555' }),
    path: '$.security_groups[0].rules[0].remote_group_id',
    message: /not in security_groups/,
  },
  {
    name: 'bad direction',
    input: withRule({ direction: 'in' }),
    path: '$.security_groups[0].rules[0].direction',
    message: /ingress/,
  },
  {
    name: 'bad ethertype',
    input: withRule({ ethertype: 'IPv5' }),
    path: '$.security_groups[0].rules[0].ethertype',
    message: /IPv4/,
  },
  {
    name: 'bad MAC',
    input: withPort({ mac_address: 'fa:16:3e:zz:00:01' }),
    path: '$.ports[0].mac_address',
    message: /MAC address/,
  },
  {
    name: 'bad fixed IP',
    input: withPort({ fixed_ips: ['192.168.1.300'] }),
    path: '$.ports[0].fixed_ips[0]',
    message: /plain IP address/,
  },
  {
    name: 'fixed IP with a prefix',
    input: withPort({ fixed_ips: ['192.168.1.3/24'] }),
    path: '$.ports[0].fixed_ips[0]',
    message: /plain IP address/,
  },
  {
    name: 'device not derived from the id',
    input: withPort({ device: 'tapc0a350e0-44' }),
    path: '$.ports[0].device',
    message: /tapc0a350e0-43/,
  },
  {
    name: 'id with characters a name cannot hold',
    input: withPort({ id: 'c0a350e0;rm -rf /' }),
    path: '$.ports[0].id',
    message: /letters, digits and dashes/,
  },
  {
    name: 'unknown group on a port',
    input: withPort({ security_groups: ['11111111-2222-4333-8444-555555555555'] }),
    path: '$.ports[0].security_groups[0]',
    message: /not in security_groups/,
  },
  {
    name: 'port security off with groups',
    input: withPort({ port_security_enabled: false }),
    path: '$.ports[0].security_groups',
    message: /port security disabled/,
  },
  {
    name: 'bad address pair',
    input: withPort({ allowed_address_pairs: [{ ip_address: 'x' }] }),
    path: '$.ports[0].allowed_address_pairs[0].ip_address',
    message: /IP address or CIDR/,
  },
  {
    name: 'unknown driver',
    input: { ...(withPort({}) as object), config: { firewall_driver: 'openvswitch', enable_ipset: true } },
    path: '$.config.firewall_driver',
    message: /iptables_hybrid/,
  },
  { name: 'unknown field', input: withPort({ colour: 'red' }), path: '$.ports[0].colour', message: /unknown field/ },
]

describe('parseScenario', () => {
  it('accepts the blog walkthrough', () => {
    const r = parseScenario(base)
    expect(r.issues).toEqual([])
    expect(r.scenario?.steps.length).toBe(2)
  })

  for (const c of invalid) {
    it(`rejects: ${c.name}`, () => {
      const r = parseScenario(c.input)
      expect(r.scenario).toBeNull()
      const hit = r.issues.find((i) => i.path === c.path)
      expect(hit, JSON.stringify(r.issues)).toBeDefined()
      expect(hit?.message).toMatch(c.message)
    })
  }

  it('reports every problem at once', () => {
    const s = withRule({ protocol: 'tcpx', direction: 'up', remote_ip_prefix: 'nope' }) as { ports: unknown[] }
    ;(s.ports[0] as Record<string, unknown>).mac_address = 'bad'
    const r = parseScenario(s)
    expect(r.issues.map((i) => i.path).sort()).toEqual([
      '$.ports[0].mac_address',
      '$.security_groups[0].rules[0].direction',
      '$.security_groups[0].rules[0].protocol',
      '$.security_groups[0].rules[0].remote_ip_prefix',
    ])
  })

  it('rejects duplicate ids and duplicate rules', () => {
    const s = withRule({ protocol: 'tcp', port_range_min: 22, port_range_max: 22 }) as {
      security_groups: Array<{ rules: unknown[] }>
    }
    const g = s.security_groups[0] as { rules: Array<Record<string, unknown>> }
    g.rules.push({ ...(g.rules[0] as object), id: '0bc633e0-6d73-4fdb-98f9-cee25c5e2cb8', protocol: '6' })
    g.rules.push({ ...(g.rules[0] as object) })
    const r = parseScenario(s)
    const messages = r.issues.map((i) => `${i.path}: ${i.message}`).join('\n')
    expect(messages).toMatch(/rules\[1\]: duplicate of the rule at/)
    expect(messages).toMatch(/rules\[2\]\.id: duplicate rule id/)
  })

  it('rejects two ports whose ids give the same chain names, accepts ids that differ within 10 characters', () => {
    const s = withPort({}) as { ports: Array<Record<string, unknown>> }
    const p = s.ports[0]!
    const id = p.id as string
    const { device: _device, ...rest } = p
    const twin = { ...rest, id: `${id.slice(0, 10)}9${id.slice(11)}`, mac_address: 'fa:16:3e:00:00:99' }
    const r = parseScenario({ ...s, ports: [p, twin] })
    const hit = r.issues.find((i) => i.path === '$.ports[1].id')
    expect(hit?.message).toMatch(/same per-port chain names .*first 10 characters/)
    const apart = { ...twin, id: `${id.slice(0, 9)}f${id.slice(10)}` }
    expect(parseScenario({ ...s, ports: [p, apart] }).issues).toEqual([])
  })

  it('applies the API canonicalization', () => {
    const r = parseScenario(
      withRule({ protocol: 'TCP', port_range_min: 1, port_range_max: 65535, remote_ip_prefix: '10.0.0.1' }),
    )
    const rule = r.scenario?.security_groups[0]?.rules[0]
    expect(rule).toMatchObject({
      protocol: 'tcp',
      port_range_min: null,
      port_range_max: null,
      remote_ip_prefix: '10.0.0.1/32',
    })
    const v6 = parseScenario(withRule({ ethertype: 'ipv6', protocol: 1 })).scenario?.security_groups[0]?.rules[0]
    expect(v6).toMatchObject({ ethertype: 'IPv6', protocol: '58' })
    const v6icmp = parseScenario(withRule({ ethertype: 'IPv6', protocol: 'icmp' })).scenario?.security_groups[0]
      ?.rules[0]
    expect(v6icmp?.protocol).toBe('ipv6-icmp')
  })

  it('rejects a port that mixes stateful and stateless groups', () => {
    const s = structuredClone(base)
    s.security_groups.push({ id: '22222222-2222-4222-8222-222222222222', stateful: false, rules: [] })
    s.ports[0].security_groups.push('22222222-2222-4222-8222-222222222222')
    s.steps = []
    const r = parseScenario(s)
    expect(r.issues.map((i) => i.message)).toContain('a port cannot mix stateful and stateless security groups')
  })

  it('validates steps against the state they change', () => {
    const s = structuredClone(base)
    s.steps[0].ports[0].mac_address = 'nope'
    const r = parseScenario(s)
    expect(r.issues.map((i) => i.path)).toEqual(['$.steps[0].ports[0].mac_address'])
  })
})
