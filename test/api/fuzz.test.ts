/**
 * Bad input never yields a 500: malformed bodies, headers, query strings and ids (fast-check)
 * always get a Neutron-shaped 4xx (or a success); and project B never reads or changes A's resources.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Caller, harness, type Res } from './helpers.js'

const COLLECTIONS = ['security-groups', 'security-group-rules', 'networks', 'subnets', 'ports', 'rbac-policies']
const RESOURCES: Record<string, string> = {
  'security-groups': 'security_group',
  'security-group-rules': 'security_group_rule',
  networks: 'network',
  subnets: 'subnet',
  ports: 'port',
  'rbac-policies': 'rbac_policy',
}
const ATTRS = [
  'name',
  'description',
  'stateful',
  'security_group_id',
  'direction',
  'protocol',
  'port_range_min',
  'port_range_max',
  'ethertype',
  'remote_ip_prefix',
  'remote_group_id',
  'network_id',
  'cidr',
  'ip_version',
  'gateway_ip',
  'fixed_ips',
  'security_groups',
  'port_security_enabled',
  'allowed_address_pairs',
  'binding:host_id',
  'mac_address',
  'tenant_id',
  'project_id',
  'object_type',
  'object_id',
  'action',
  'target_tenant',
  'tags',
  'id',
  'shared',
  'mtu',
  'allocation_pools',
]

const scalar = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(
    'tcp',
    'icmp',
    'IPv6',
    'ingress',
    '10.0.0.0/8',
    '::/0',
    '00000000-1111-4222-8333-444444444444',
    '65536',
    '-1',
    '',
    'default',
  ),
)
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom(...ATTRS, 'ip_address', 'subnet_id', 'foo'), tie('v'), { maxKeys: 3 }),
  ),
})).v

function assertShape(r: Res, what: string) {
  expect(r.status, `${what} → ${r.status} ${r.raw}`).toBeLessThan(500)
  if (r.status >= 400 && r.status !== 401) {
    expect(r.json, `${what} → ${r.raw}`).toBeTypeOf('object')
    expect(Object.keys(r.json.NeutronError).sort(), what).toEqual(['detail', 'message', 'type'])
    expect(typeof r.json.NeutronError.message).toBe('string')
  }
}

describe('fuzz: never a 500, always a Neutron-shaped error', () => {
  let h: Awaited<ReturnType<typeof harness>>
  let a: Caller
  let b: Caller
  const ids: Record<string, string> = {}
  beforeAll(async () => {
    h = await harness()
    a = h.as('project-a')
    b = h.as('project-b')
    const unlimited = {
      security_group: -1,
      security_group_rule: -1,
      port: -1,
      network: -1,
      subnet: -1,
      rbac_policy: -1,
    }
    await h.as('admin', true).req('PUT', '/v2.0/quotas/project-a', { quota: unlimited })
    ids.sg = (await a.req('POST', '/v2.0/security-groups', { security_group: { name: 'a-sg' } })).json.security_group.id
    ids.rule = (await a.req('GET', `/v2.0/security-groups/${ids.sg}`)).json.security_group.security_group_rules[0].id
    ids.net = (await a.req('POST', '/v2.0/networks', { network: { name: 'a-net' } })).json.network.id
    ids.subnet = (
      await a.req('POST', '/v2.0/subnets', { subnet: { network_id: ids.net, cidr: '10.1.0.0/24', ip_version: 4 } })
    ).json.subnet.id
    ids.port = (
      await a.req('POST', '/v2.0/ports', { port: { network_id: ids.net, security_groups: [ids.sg] } })
    ).json.port.id
  })
  afterAll(async () => h?.close())

  it('random resource bodies on POST and PUT', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...COLLECTIONS),
        fc.boolean(),
        fc.dictionary(fc.constantFrom(...ATTRS), value, { maxKeys: 6 }),
        async (coll, put, attrs) => {
          const body = { [RESOURCES[coll]!]: attrs }
          const target = put
            ? `/v2.0/${coll}/${coll === 'ports' ? ids.port : coll === 'networks' ? ids.net : ids.sg}`
            : `/v2.0/${coll}`
          const r = await a.req(put ? 'PUT' : 'POST', target, body)
          assertShape(r, `${put ? 'PUT' : 'POST'} ${target} ${JSON.stringify(body)}`)
        },
      ),
      { numRuns: 600 },
    )
  })

  it('random raw bodies, content types and If-Match headers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...COLLECTIONS),
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.constantFrom('', '{', 'null', '[]', '{"security_group": []}', '{"security_groups": [1]}'),
        ),
        fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', ''),
        async (coll, raw, ifMatch, ctype) => {
          const headers: Record<string, string> = { 'content-type': ctype }
          if (ifMatch !== undefined) headers['if-match'] = ifMatch.replace(/[^\x20-\x7e]/g, '')
          const r = await a.req('POST', `/v2.0/${coll}`, raw, headers)
          assertShape(r, `POST ${coll} ${JSON.stringify(raw)}`)
          const u = await a.req('PUT', `/v2.0/security-groups/${ids.sg}`, raw, headers)
          assertShape(u, `PUT sg ${JSON.stringify(raw)} if-match ${ifMatch}`)
        },
      ),
      { numRuns: 400 },
    )
  })

  it('random query strings and ids', async () => {
    const key = fc.oneof(
      fc.constantFrom(
        'fields',
        'sort_key',
        'sort_dir',
        'limit',
        'marker',
        'page_reverse',
        'name',
        'protocol',
        'port_range_min',
        'remote_ip_prefix',
        'ethertype',
        'shared',
        'tags',
        'fixed_ips',
        'admin_state_up',
        'revision_number',
        'tenant_id',
      ),
      fc.string({ maxLength: 8 }),
    )
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...COLLECTIONS, 'quotas', 'sgwall/changes'),
        fc.array(fc.tuple(key, fc.string({ maxLength: 12 })), { maxLength: 5 }),
        fc.option(fc.string({ maxLength: 50 }), { nil: undefined }),
        async (coll, pairs, id) => {
          const qs = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')
          const path = id === undefined ? `/v2.0/${coll}` : `/v2.0/${coll}/${encodeURIComponent(id)}`
          const r = await a.req('GET', `${path}?${qs}`)
          assertShape(r, `GET ${path}?${qs}`)
          if (id !== undefined) assertShape(await a.req('DELETE', path), `DELETE ${path}`)
        },
      ),
      { numRuns: 500 },
    )
    for (const raw of [
      '/v2.0/security-groups/%',
      '/v2.0/security-groups?%zz=1',
      '/v2.0/ports?fixed_ips=%E0%A4%A',
      '/v2.0/networks/%00',
    ])
      assertShape(await a.req('GET', raw), raw)
  })

  it('plausible rule bodies: 4xx or a rule that satisfies the scenario.md invariants', async () => {
    const port = fc.oneof(fc.integer({ min: -2, max: 65537 }), fc.constantFrom(null, 0, 1, 65535, '22', '22.5', 'x'))
    const PORTS = new Set(['tcp', 'udp', 'sctp', 'dccp', 'udplite', '6', '17', '132', '33', '136'])
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            direction: fc.constantFrom('ingress', 'egress'),
            ethertype: fc.constantFrom('IPv4', 'IPv6', 'ipv6', 'IPV4'),
            protocol: fc.constantFrom(
              null,
              'tcp',
              'TCP',
              'udp',
              'icmp',
              'icmpv6',
              'ipv6-icmp',
              'gre',
              '6',
              '1',
              '58',
              '47',
              6,
              132,
              '255',
              'sctp',
            ),
            port_range_min: port,
            port_range_max: port,
            remote_ip_prefix: fc.constantFrom(
              null,
              '',
              '10.0.0.1',
              '10.0.0.1/24',
              '0.0.0.0/0',
              '::/0',
              '2001:db8::1',
              '2001:DB8::/48',
            ),
            remote_group_id: fc.constantFrom(null, 'self'),
          },
          { requiredKeys: ['direction'] },
        ),
        async (raw) => {
          const body: Record<string, unknown> = { ...raw, security_group_id: ids.sg }
          if (body.remote_group_id === 'self') body.remote_group_id = ids.sg
          const r = await a.req('POST', '/v2.0/security-group-rules', { security_group_rule: body })
          assertShape(r, JSON.stringify(body))
          if (r.status !== 201) return
          const x = r.json.security_group_rule
          if (x.port_range_min !== null || x.port_range_max !== null) {
            expect(x.protocol).not.toBeNull()
            if (PORTS.has(x.protocol)) {
              expect(x.port_range_min).toBeGreaterThanOrEqual(1)
              expect(x.port_range_max).toBeGreaterThanOrEqual(x.port_range_min)
            } else {
              expect(['icmp', '1', 'ipv6-icmp', '58']).toContain(x.protocol)
              expect(x.port_range_min).not.toBeNull()
            }
          }
          if (x.ethertype === 'IPv6') expect(['icmp', 'icmpv6', '1']).not.toContain(x.protocol)
          else expect(['ipv6-icmp', 'icmpv6', '58']).not.toContain(x.protocol)
          if (x.remote_ip_prefix) expect(x.remote_ip_prefix.includes(':')).toBe(x.ethertype === 'IPv6')
          expect(x.remote_ip_prefix !== null && x.remote_group_id !== null).toBe(false)
          expect((await a.req('DELETE', `/v2.0/security-group-rules/${x.id}`)).status).toBe(204)
        },
      ),
      { numRuns: 400 },
    )
  })

  it("project B never reads or changes project A's resources", async () => {
    const targets: [string, string][] = [
      ['security-groups', ids.sg!],
      ['security-group-rules', ids.rule!],
      ['networks', ids.net!],
      ['subnets', ids.subnet!],
      ['ports', ids.port!],
    ]
    for (const [coll, id] of targets) {
      const show = await b.req('GET', `/v2.0/${coll}/${id}`)
      expect(show.status, `${coll} show`).toBe(404)
      const list = await b.req('GET', `/v2.0/${coll}`)
      expect(JSON.stringify(list.json)).not.toContain(id)
      const put = await b.req('PUT', `/v2.0/${coll}/${id}`, { [RESOURCES[coll]!]: { name: 'stolen' } })
      expect([400, 404], `${coll} put ${put.raw}`).toContain(put.status)
      expect((await b.req('DELETE', `/v2.0/${coll}/${id}`)).status, `${coll} delete`).toBe(404)
      expect((await b.req('PUT', `/v2.0/${coll}/${id}/tags/x`)).status).toBeGreaterThanOrEqual(400)
    }
    const rule = await b.req('POST', '/v2.0/security-group-rules', {
      security_group_rule: { security_group_id: ids.sg, direction: 'ingress' },
    })
    expect(rule.status).toBe(404)
    const port = await b.req('POST', '/v2.0/ports', { port: { network_id: ids.net } })
    expect(port.status).toBe(404)
    const share = await b.req('POST', '/v2.0/rbac-policies', {
      rbac_policy: {
        object_type: 'security_group',
        object_id: ids.sg,
        action: 'access_as_shared',
        target_tenant: 'project-b',
      },
    })
    expect(share.status).toBeGreaterThanOrEqual(400)
    const stillA = await a.req('GET', `/v2.0/security-groups/${ids.sg}`)
    expect(stillA.json.security_group.name).not.toBe('stolen')
    expect((await b.req('GET', '/v2.0/sgwall/changes?since=0')).status).toBe(403)
  })
})
