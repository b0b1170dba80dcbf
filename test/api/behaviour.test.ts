/** Neutron behaviours of spec §3-§9 beyond single validation rows, on every store dialect. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshDatabaseUrl, storeDialects } from '../helpers/dialects.js'
import { type Caller, harness } from './helpers.js'

for (const d of storeDialects()) {
  describe.skipIf(!d.available)(`API behaviour on ${d.name}`, () => {
    let h: Awaited<ReturnType<typeof harness>>
    let drop: () => Promise<void>
    let demo: Caller
    let alt: Caller
    let admin: Caller
    beforeAll(async () => {
      const fresh = await freshDatabaseUrl(d.name)
      drop = fresh.drop
      h = await harness(fresh.url)
      demo = h.as('demo')
      alt = h.as('alt')
      admin = h.as('admin-project', true)
    })
    afterAll(async () => {
      await h?.close()
      await drop?.()
    })
    const group = async (c: Caller, name: string, extra = {}) => {
      const r = await c.req('POST', '/v2.0/security-groups', { security_group: { name, ...extra } })
      expect(r.status, r.raw).toBe(201)
      return r.json.security_group
    }
    const rule = (c: Caller, sg: string, body: object) =>
      c.req('POST', '/v2.0/security-group-rules', {
        security_group_rule: { security_group_id: sg, direction: 'ingress', ...body },
      })

    it('creates the default group lazily with its 4 rules; new groups get 2 egress rules and revision 1', async () => {
      const list = await demo.req('GET', '/v2.0/security-groups')
      expect(list.status).toBe(200)
      const def = list.json.security_groups.find((g: { name: string }) => g.name === 'default')
      expect(def).toMatchObject({ description: 'Default security group', stateful: true, project_id: 'demo' })
      const rules = def.security_group_rules.map(
        (r: Record<string, unknown>) =>
          `${r.direction}/${r.ethertype}/${r.remote_group_id === def.id ? 'self' : r.remote_group_id}`,
      )
      expect(rules.sort()).toEqual(['egress/IPv4/null', 'egress/IPv6/null', 'ingress/IPv4/self', 'ingress/IPv6/self'])
      expect(def.security_group_rules.every((r: { description: unknown }) => r.description === null)).toBe(true)
      expect(def.security_group_rules[0]).toHaveProperty('standard_attr_id')
      const g = await group(demo, 'web')
      expect(g.revision_number).toBe(1)
      expect(g.security_group_rules).toHaveLength(2)
      expect(g.security_group_rules.map((r: { direction: string }) => r.direction)).toEqual(['egress', 'egress'])
      // a second list does not create a second default group
      const again = await demo.req('GET', '/v2.0/security-groups?name=default')
      expect(again.json.security_groups).toHaveLength(1)
    })

    it('has exactly the wire keys of spec §5.1, §6.1, §7.1', async () => {
      const k = h.as('keys')
      const g = await group(k, 'keys')
      expect(Object.keys(g).sort()).toEqual(
        [
          'id',
          'name',
          'stateful',
          'tenant_id',
          'description',
          'shared',
          'security_group_rules',
          'tags',
          'created_at',
          'updated_at',
          'revision_number',
          'project_id',
        ].sort(),
      )
      const top = [
        'id',
        'tenant_id',
        'security_group_id',
        'ethertype',
        'direction',
        'protocol',
        'port_range_min',
        'port_range_max',
        'remote_ip_prefix',
        'remote_address_group_id',
        'normalized_cidr',
        'remote_group_id',
        'description',
        'created_at',
        'updated_at',
        'revision_number',
        'project_id',
      ]
      expect(Object.keys(g.security_group_rules[0]).sort()).toEqual([...top, 'standard_attr_id', 'tags'].sort())
      const r = (await k.req('GET', `/v2.0/security-group-rules/${g.security_group_rules[0].id}`)).json
        .security_group_rule
      expect(Object.keys(r).sort()).toEqual([...top].sort())
      expect(r.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
      const net = (await k.req('POST', '/v2.0/networks', { network: { name: 'kn' } })).json.network
      expect(net.revision_number).toBe(1)
      const port = (await k.req('POST', '/v2.0/ports', { port: { network_id: net.id } })).json.port
      const memberKeys = [
        'admin_state_up',
        'allowed_address_pairs',
        'binding:vnic_type',
        'created_at',
        'description',
        'device_id',
        'device_owner',
        'extra_dhcp_opts',
        'fixed_ips',
        'id',
        'mac_address',
        'name',
        'network_id',
        'port_security_enabled',
        'project_id',
        'revision_number',
        'security_groups',
        'status',
        'tags',
        'tenant_id',
        'updated_at',
      ]
      expect(Object.keys(port).sort()).toEqual(memberKeys)
      expect(port).toMatchObject({ revision_number: 1, status: 'DOWN', fixed_ips: [] })
      const asAdmin = (await admin.req('GET', `/v2.0/ports/${port.id}`)).json.port
      expect(Object.keys(asAdmin).sort()).toEqual(
        [...memberKeys, 'binding:host_id', 'binding:profile', 'binding:vif_details', 'binding:vif_type'].sort(),
      )
      expect(asAdmin['binding:vif_type']).toBe('unbound')
      expect((await k.req('DELETE', `/v2.0/ports/${port.id}`)).status).toBe(204)
    })

    it('detects duplicates after normalisation (spec §6.6)', async () => {
      const sg = (await group(demo, 'dups')).id
      const ok = async (b: object) => expect((await rule(demo, sg, b)).status).toBe(201)
      const dup = async (b: object) => {
        const r = await rule(demo, sg, b)
        expect(r.status, r.raw).toBe(409)
        expect(r.json.NeutronError.type).toBe('SecurityGroupRuleExists')
        expect(r.json.NeutronError.message).toMatch(/^Security group rule already exists\. Rule id is [0-9a-f-]{36}\.$/)
      }
      await ok({ protocol: 'tcp', port_range_min: 100, port_range_max: 100 })
      await dup({ protocol: 'tcp', port_range_min: 100, port_range_max: 100 })
      await dup({ protocol: '6', port_range_min: 100, port_range_max: 100 })
      await dup({ protocol: 'TCP', port_range_min: 100, port_range_max: 100, description: 'b' })
      await ok({ protocol: 'tcp', port_range_min: 102, port_range_max: 102 })
      await dup({ protocol: 'tcp', port_range_min: 102, port_range_max: 102, remote_ip_prefix: '0.0.0.0/0' })
      await ok({ protocol: 'tcp', port_range_min: 104, port_range_max: 104, remote_ip_prefix: '10.0.0.1/24' })
      await ok({ protocol: 'tcp', port_range_min: 104, port_range_max: 104, remote_ip_prefix: '10.0.0.0/24' })
      await ok({ protocol: 'tcp', port_range_min: 1, port_range_max: 65535, remote_ip_prefix: '10.6.0.0/16' })
      await dup({ protocol: 'tcp', remote_ip_prefix: '10.6.0.0/16' })
      await ok({ protocol: 'icmp', remote_ip_prefix: '10.7.0.0/16' })
      await dup({ protocol: '1', remote_ip_prefix: '10.7.0.0/16' })
      await ok({ protocol: 'icmpv6', ethertype: 'IPv6' })
      await dup({ protocol: '58', ethertype: 'IPv6' })
      await dup({ protocol: 'icmp', ethertype: 'IPv6' })
      await dup({ direction: 'egress', ethertype: 'IPv4' })
    })

    it('bulk rule create: all or nothing, one group, duplicates in POST', async () => {
      const sg = (await group(demo, 'bulk')).id
      const sg2 = (await group(demo, 'bulk2')).id
      const post = (rules: object[]) =>
        demo.req('POST', '/v2.0/security-group-rules', {
          security_group_rules: rules.map((r) => ({ security_group_id: sg, direction: 'ingress', ...r })),
        })
      const two = await post([
        { protocol: 'tcp', port_range_min: 110, port_range_max: 110 },
        { protocol: 'tcp', port_range_min: 111, port_range_max: 111 },
      ])
      expect(two.status).toBe(201)
      expect(two.json.security_group_rules).toHaveLength(2)
      const same = await post([
        { protocol: 'tcp', port_range_min: 112, port_range_max: 112 },
        { protocol: 'tcp', port_range_min: 112, port_range_max: 112 },
      ])
      expect(same.json.NeutronError).toMatchObject({
        type: 'DuplicateSecurityGroupRuleInPost',
        message: 'Duplicate Security Group Rule in POST.',
      })
      const span = await post([
        { protocol: 'tcp', port_range_min: 113, port_range_max: 113 },
        { security_group_id: sg2, protocol: 'udp' },
      ])
      expect(span.json.NeutronError).toMatchObject({
        type: 'SecurityGroupNotSingleGroupRules',
        message: 'Only allowed to update rules for one security profile at a time',
      })
      const bad = await post([
        { protocol: 'tcp', port_range_min: 114, port_range_max: 114 },
        { protocol: 'tcp', port_range_min: 115, port_range_max: 1 },
      ])
      expect(bad.json.NeutronError.type).toBe('SecurityGroupInvalidPortRange')
      const rules = await demo.req('GET', `/v2.0/security-group-rules?security_group_id=${sg}&port_range_min=114`)
      expect(rules.json.security_group_rules).toEqual([])
      const groups = await demo.req('POST', '/v2.0/security-groups', {
        security_groups: [{ name: 'a' }, { name: 'b' }],
      })
      expect(groups.status).toBe(201)
      expect(groups.json.security_groups.map((g: { name: string }) => g.name)).toEqual(['a', 'b'])
    })

    it('creating/deleting a rule bumps the group revision; If-Match guards PUT/DELETE', async () => {
      const g = await group(demo, 'rev')
      const r = await rule(demo, g.id, { protocol: 'udp', port_range_min: 53, port_range_max: 53 })
      expect(r.json.security_group_rule.revision_number).toBe(0)
      const after = (await demo.req('GET', `/v2.0/security-groups/${g.id}`)).json.security_group
      expect(after.revision_number).toBe(2)
      const bad = await demo.req(
        'PUT',
        `/v2.0/security-groups/${g.id}`,
        { security_group: { name: 'x' } },
        { 'if-match': 'revision_number=1' },
      )
      expect(bad.status).toBe(412)
      expect(bad.json.NeutronError.message).toBe('Constrained to 1, but current revision is 2')
      const good = await demo.req(
        'PUT',
        `/v2.0/security-groups/${g.id}`,
        { security_group: { name: 'x' } },
        { 'if-match': 'revision_number=2' },
      )
      expect(good.status).toBe(200)
      expect(good.json.security_group.revision_number).toBe(3)
      const malformed = await demo.req('DELETE', `/v2.0/security-groups/${g.id}`, undefined, { 'if-match': 'rev=3' })
      expect(malformed.status).toBe(400)
      expect(malformed.json.NeutronError.type).toBe('BadRequest')
      expect(
        (await demo.req('DELETE', `/v2.0/security-groups/${g.id}`, undefined, { 'if-match': 'revision_number=3' }))
          .status,
      ).toBe(204)
    })

    it('concurrent writers never lose an update (revision_number counts every rule)', async () => {
      const c = h.as('concurrent')
      const g = await group(c, 'busy')
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, k) =>
          rule(c, g.id, { protocol: 'tcp', port_range_min: 7000 + k, port_range_max: 7000 + k }),
        ),
      )
      expect(results.map((r) => r.status)).toEqual(Array(16).fill(201))
      const dupes = await Promise.all(
        Array.from({ length: 4 }, () => rule(c, g.id, { protocol: 'udp', port_range_min: 9, port_range_max: 9 })),
      )
      expect(dupes.map((r) => r.status).sort()).toEqual([201, 409, 409, 409])
      const after = (await c.req('GET', `/v2.0/security-groups/${g.id}`)).json.security_group
      expect(after.security_group_rules).toHaveLength(2 + 16 + 1)
      expect(after.revision_number).toBe(1 + 16 + 1)
    })

    it('deleting a group deletes rules in other groups that name it as remote group', async () => {
      const a = await group(demo, 'a-remote')
      const b = await group(demo, 'b-remote')
      const r = await rule(demo, b.id, { protocol: 'tcp', remote_group_id: a.id })
      expect(r.status).toBe(201)
      const revBefore = (await demo.req('GET', `/v2.0/security-groups/${b.id}`)).json.security_group.revision_number
      expect((await demo.req('DELETE', `/v2.0/security-groups/${a.id}`)).status).toBe(204)
      expect((await demo.req('GET', `/v2.0/security-group-rules/${r.json.security_group_rule.id}`)).status).toBe(404)
      const bAfter = (await demo.req('GET', `/v2.0/security-groups/${b.id}`)).json.security_group
      expect(bAfter.security_group_rules).toHaveLength(2)
      expect(bAfter.revision_number).toBe(revBefore + 1)
    })

    it('isolates projects: 404 for others, admin sees all', async () => {
      const g = await group(alt, 'alt-private')
      expect((await demo.req('GET', `/v2.0/security-groups/${g.id}`)).status).toBe(404)
      expect((await demo.req('PUT', `/v2.0/security-groups/${g.id}`, { security_group: { name: 'x' } })).status).toBe(
        404,
      )
      expect((await demo.req('DELETE', `/v2.0/security-groups/${g.id}`)).status).toBe(404)
      const rid = g.security_group_rules[0].id
      expect((await demo.req('GET', `/v2.0/security-group-rules/${rid}`)).status).toBe(404)
      expect((await demo.req('DELETE', `/v2.0/security-group-rules/${rid}`)).status).toBe(404)
      const demoList = (await demo.req('GET', '/v2.0/security-groups')).json.security_groups
      expect(demoList.every((x: { project_id: string }) => x.project_id === 'demo')).toBe(true)
      const demoRules = (await demo.req('GET', '/v2.0/security-group-rules')).json.security_group_rules
      expect(demoRules.every((x: { project_id: string }) => x.project_id === 'demo')).toBe(true)
      const all = (await admin.req('GET', '/v2.0/security-groups')).json.security_groups
      expect(all.some((x: { id: string }) => x.id === g.id)).toBe(true)
      // admin creates a rule in alt's group, owned by alt
      const ar = await admin.req('POST', '/v2.0/security-group-rules', {
        security_group_rule: {
          security_group_id: g.id,
          direction: 'ingress',
          protocol: 'udp',
          port_range_min: 9,
          port_range_max: 9,
          project_id: 'alt',
        },
      })
      expect(ar.status).toBe(201)
      expect(ar.json.security_group_rule.project_id).toBe('alt')
      // admin may delete another project's default group; it is recreated on the next list
      const altDefault = (await alt.req('GET', '/v2.0/security-groups?name=default')).json.security_groups[0].id
      expect((await admin.req('DELETE', `/v2.0/security-groups/${altDefault}`)).status).toBe(204)
      const recreated = (await alt.req('GET', '/v2.0/security-groups?name=default')).json.security_groups
      expect(recreated).toHaveLength(1)
      expect(recreated[0].id).not.toBe(altDefault)
    })

    it('enforces quotas (409 OverQuota); group create counts 2 rules', async () => {
      const q = h.as('quota-project')
      expect(
        (await admin.req('PUT', '/v2.0/quotas/quota-project', { quota: { security_group: 3 } })).json.quota
          .security_group,
      ).toBe(3)
      await group(q, 'q1')
      await group(q, 'q2')
      const over = await q.req('POST', '/v2.0/security-groups', { security_group: { name: 'q3' } })
      expect(over.status).toBe(409)
      expect(over.json.NeutronError).toMatchObject({
        type: 'OverQuota',
        message: "Quota exceeded for resources: ['security_group'].",
      })
      await admin.req('PUT', '/v2.0/quotas/quota-project', { quota: { security_group: -1, security_group_rule: 0 } })
      const noRules = await q.req('POST', '/v2.0/security-groups', { security_group: { name: 'q4' } })
      expect(noRules.json.NeutronError.message).toBe("Quota exceeded for resources: ['security_group_rule'].")
      const details = await q.req('GET', '/v2.0/quotas/quota-project/details')
      expect(details.json.quota.security_group).toEqual({ limit: -1, used: 3, reserved: 0 })
      expect((await admin.req('DELETE', '/v2.0/quotas/quota-project')).status).toBe(204)
      expect((await q.req('GET', '/v2.0/quotas/quota-project')).json.quota.security_group).toBe(10)
      const bad = await admin.req('PUT', '/v2.0/quotas/x', { quota: { security_group: -2 } })
      expect(bad.json.NeutronError.message).toBe(
        "Invalid input for security_group. Reason: '-2' is too small - must be at least '-1'.",
      )
      const big = await admin.req('PUT', '/v2.0/quotas/x', { quota: { security_group: 2147483648 } })
      expect(big.json.NeutronError.message).toBe(
        "Invalid input for security_group. Reason: '2147483648' is too large - must be no larger than '2147483647'.",
      )
      const str = await admin.req('PUT', '/v2.0/quotas/x', { quota: { security_group: 'value' } })
      expect(str.json.NeutronError).toMatchObject({
        type: 'InvalidInput',
        message: "Invalid input for operation: 'value' is not an integer.",
      })
    })

    it('shares a group via RBAC: visible, usable, rules addable, not updatable', async () => {
      const g = await group(demo, 'shareme')
      const p = await demo.req('POST', '/v2.0/rbac-policies', {
        rbac_policy: {
          object_type: 'security_group',
          object_id: g.id,
          action: 'access_as_shared',
          target_tenant: 'alt',
        },
      })
      expect(p.status, p.raw).toBe(201)
      const seen = await alt.req('GET', `/v2.0/security-groups/${g.id}`)
      expect(seen.status).toBe(200)
      expect(seen.json.security_group.shared).toBe(true)
      expect((await demo.req('GET', `/v2.0/security-groups/${g.id}`)).json.security_group.shared).toBe(false)
      expect((await rule(alt, g.id, { protocol: 'tcp', port_range_min: 5, port_range_max: 5 })).status).toBe(201)
      const upd = await alt.req('PUT', `/v2.0/security-groups/${g.id}`, { security_group: { name: 'x' } })
      expect(upd.json.NeutronError).toMatchObject({
        type: 'PolicyNotAuthorized',
        message: 'rule:update_security_group is disallowed by policy',
      })
      const net = (await alt.req('POST', '/v2.0/networks', { network: { name: 'altnet' } })).json.network.id
      const port = await alt.req('POST', '/v2.0/ports', { port: { network_id: net, security_groups: [g.id] } })
      expect(port.status, port.raw).toBe(201)
      expect((await demo.req('DELETE', `/v2.0/rbac-policies/${p.json.rbac_policy.id}`)).status).toBe(409)
      const bad = await demo.req('POST', '/v2.0/rbac-policies', {
        rbac_policy: {
          object_type: 'security_group',
          object_id: g.id,
          action: 'access_as_external',
          target_tenant: 'alt',
        },
      })
      expect(bad.json.NeutronError.message).toBe(
        "Invalid action 'access_as_external' for object type 'security_group'. Valid actions: ('access_as_shared',)",
      )
      expect((await alt.req('DELETE', `/v2.0/ports/${port.json.port.id}`)).status).toBe(204)
      expect((await demo.req('DELETE', `/v2.0/rbac-policies/${p.json.rbac_policy.id}`)).status).toBe(204)
      expect((await alt.req('GET', `/v2.0/security-groups/${g.id}`)).status).toBe(404)
    })

    it('lists with filters, fields, sorting and pagination', async () => {
      const p = h.as('lister')
      for (const n of ['c', 'a', 'b']) await group(p, n)
      const names = async (qs: string) =>
        (await p.req('GET', `/v2.0/security-groups?${qs}`)).json.security_groups.map((g: { name: string }) => g.name)
      expect(await names('sort_key=name&sort_dir=desc&fields=name')).toEqual(['default', 'c', 'b', 'a'])
      expect(await names('sort_key=name&sort_dir=asc')).toEqual(['a', 'b', 'c', 'default'])
      const page = await p.req('GET', '/v2.0/security-groups?limit=1&sort_key=name&sort_dir=asc')
      expect(page.json.security_groups).toHaveLength(1)
      expect(page.json.security_groups_links.map((l: { rel: string }) => l.rel)).toEqual(['next', 'previous'])
      const next = new URL(page.json.security_groups_links[0].href)
      const page2 = await p.req('GET', `${next.pathname}${next.search}`)
      expect(page2.json.security_groups.map((g: { name: string }) => g.name)).toEqual(['b'])
      const last = await p.req('GET', '/v2.0/security-groups?limit=1000')
      expect(last.json.security_groups_links.map((l: { rel: string }) => l.rel)).toEqual(['previous'])
      expect((await p.req('GET', '/v2.0/security-groups?limit=0')).json.security_groups).toHaveLength(4)
      const keys = (await p.req('GET', '/v2.0/security-groups?fields=id&fields=bogus&name=a')).json.security_groups
      expect(keys).toHaveLength(1)
      expect(Object.keys(keys[0])).toEqual(['id'])
      expect(await names('name=')).toEqual([])
      expect(await names('shared=false&name=a')).toEqual(['a'])
      expect(await names('shared=True&name=a')).toEqual([])
      const sg = (await p.req('GET', '/v2.0/security-groups?name=a')).json.security_groups[0].id
      await rule(p, sg, { protocol: 'tcp', port_range_min: 22, port_range_max: 22 })
      await rule(p, sg, { protocol: '6', port_range_min: 23, port_range_max: 23, remote_ip_prefix: '10.0.0.1' })
      await rule(p, sg, { protocol: 'udp', ethertype: 'IPv6' })
      const rules = async (qs: string) =>
        (await p.req('GET', `/v2.0/security-group-rules?security_group_id=${sg}&${qs}`)).json.security_group_rules
      expect(await rules('protocol=TCP')).toHaveLength(1)
      expect(await rules('protocol=6')).toHaveLength(1)
      expect(await rules('ethertype=ipv6&direction=ingress')).toHaveLength(1)
      expect(await rules('remote_ip_prefix=10.0.0.1')).toHaveLength(1)
      // normalized_cidr is accepted and ignored, as in Neutron 21 (spec §4.1)
      expect(await rules('normalized_cidr=10.99.0.0/24')).toHaveLength(5)
      const unknownMarker = await p.req(
        'GET',
        '/v2.0/security-groups?limit=1&marker=00000000-1111-4222-8333-444444444444',
      )
      expect(unknownMarker.json.security_groups).toHaveLength(1)
      const reverse = await p.req('GET', '/v2.0/security-groups?limit=1&page_reverse=true')
      expect(reverse.json.security_groups_links.map((l: { rel: string }) => l.rel)).toEqual(['next', 'previous'])
      const only = await rules('fields=protocol&direction=ingress')
      expect(only.map((r: object) => Object.keys(r))).toEqual([['protocol'], ['protocol'], ['protocol']])
      const show = await p.req('GET', `/v2.0/security-groups/${sg}?fields=name`)
      expect(show.json).toEqual({ security_group: { name: 'a' } })
    })

    it('tags sub-API and tag filters', async () => {
      const g = await group(demo, 'tagged')
      const base = `/v2.0/security-groups/${g.id}/tags`
      expect((await demo.req('PUT', `${base}/red`)).status).toBe(201)
      expect((await demo.req('PUT', base, { tags: ['blue', 'green'] })).json).toEqual({ tags: ['blue', 'green'] })
      expect((await demo.req('GET', `${base}/blue`)).status).toBe(204)
      const missing = await demo.req('GET', `${base}/red`)
      expect(missing.json.NeutronError).toMatchObject({ type: 'TagNotFound', message: 'Tag red could not be found.' })
      const found = (await demo.req('GET', '/v2.0/security-groups?tags=blue,green&fields=id')).json.security_groups
      expect(found.map((x: { id: string }) => x.id)).toEqual([g.id])
      expect(
        (await demo.req('GET', '/v2.0/security-groups?not-tags-any=blue&fields=id')).json.security_groups.some(
          (x: { id: string }) => x.id === g.id,
        ),
      ).toBe(false)
      expect((await demo.req('DELETE', `${base}/blue`)).status).toBe(204)
      expect((await demo.req('GET', base)).json).toEqual({ tags: ['green'] })
      expect((await demo.req('DELETE', base)).status).toBe(204)
      expect((await demo.req('GET', `/v2.0/security-groups/${g.id}`)).json.security_group.tags).toEqual([])
    })

    it('ports: allocation, MAC, group updates, port security toggling, default group recreated', async () => {
      const p = h.as('porter')
      const net = (await p.req('POST', '/v2.0/networks', { network: { name: 'pn', admin_state_up: true } })).json
        .network.id
      const sub = await p.req('POST', '/v2.0/subnets', {
        subnet: { network_id: net, cidr: '10.100.0.0/28', ip_version: 4, name: 's' },
      })
      expect(sub.json.subnet).toMatchObject({
        gateway_ip: '10.100.0.1',
        allocation_pools: [{ start: '10.100.0.2', end: '10.100.0.14' }],
      })
      const sub6 = await p.req('POST', '/v2.0/subnets', {
        subnet: { network_id: net, cidr: '2001:db8:1::/64', ip_version: 6 },
      })
      expect(sub6.status).toBe(201)
      const g = await group(p, 'pg')
      const port = (await p.req('POST', '/v2.0/ports', { port: { network_id: net, security_groups: [g.id] } })).json
        .port
      expect(port.mac_address).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/)
      expect(port.fixed_ips.map((f: { ip_address: string }) => f.ip_address)).toEqual(['10.100.0.2', '2001:db8:1::2'])
      expect(port).not.toHaveProperty('binding:host_id')
      const second = (await p.req('POST', '/v2.0/ports', { port: { network_id: net } })).json.port
      expect(second.fixed_ips[0].ip_address).toBe('10.100.0.3')
      const taken = await p.req('POST', '/v2.0/ports', {
        port: { network_id: net, fixed_ips: [{ ip_address: '10.100.0.3' }] },
      })
      expect(taken.json.NeutronError.type).toBe('IpAddressAlreadyAllocated')
      // a failed update leaves the groups unchanged
      const stateless = await group(p, 'sl', { stateful: false })
      const fail = await p.req('PUT', `/v2.0/ports/${port.id}`, { port: { security_groups: [g.id, stateless.id] } })
      expect(fail.status).toBe(409)
      expect((await p.req('GET', `/v2.0/ports/${port.id}`)).json.port.security_groups).toEqual([g.id])
      // --disable-port-security --no-security-group in one PUT
      const off = await p.req('PUT', `/v2.0/ports/${port.id}`, {
        port: { port_security_enabled: false, security_groups: [] },
      })
      expect(off.status, off.raw).toBe(200)
      expect(off.json.port).toMatchObject({ port_security_enabled: false, security_groups: [] })
      // ports filtered by group
      const byGroup = (await p.req('GET', `/v2.0/ports?security_groups=${g.id}`)).json.ports
      expect(byGroup).toEqual([])
      const byIp = (await p.req('GET', '/v2.0/ports?fixed_ips=ip_address=10.100.0.3')).json.ports
      expect(byIp.map((x: { id: string }) => x.id)).toEqual([second.id])
      // admin deletes the project's default group; a port update recreates it
      const def = second.security_groups[0]
      expect((await p.req('PUT', `/v2.0/ports/${second.id}`, { port: { security_groups: [] } })).status).toBe(200)
      expect((await admin.req('DELETE', `/v2.0/security-groups/${def}`)).status).toBe(204)
      expect((await p.req('PUT', `/v2.0/ports/${second.id}`, { port: { name: 'renamed' } })).status).toBe(200)
      const defaults = (await admin.req('GET', '/v2.0/security-groups?project_id=porter&name=default')).json
        .security_groups
      expect(defaults).toHaveLength(1)
      // admin binds a port to a host and sees the binding
      const bound = await admin.req('PUT', `/v2.0/ports/${second.id}`, { port: { 'binding:host_id': 'compute-1' } })
      expect(bound.json.port['binding:host_id']).toBe('compute-1')
      const inUse = await p.req('DELETE', `/v2.0/networks/${net}`)
      expect(inUse.json.NeutronError.type).toBe('NetworkInUse')
      expect((await p.req('DELETE', `/v2.0/ports/${port.id}`)).status).toBe(204)
      expect((await p.req('DELETE', `/v2.0/ports/${second.id}`)).status).toBe(204)
      expect((await p.req('DELETE', `/v2.0/networks/${net}`)).status).toBe(204)
    })

    it('answers GET / with a self link and /v2.0/extensions', async () => {
      const root = await demo.req('GET', '/')
      expect(root.json.versions[0]).toMatchObject({ id: 'v2.0', status: 'CURRENT' })
      expect(root.json.versions[0].links[0].rel).toBe('self')
      const ext = await demo.req('GET', '/v2.0/extensions')
      expect(ext.json.extensions.map((e: { alias: string }) => e.alias)).toContain('security-group')
      expect((await demo.req('GET', '/v2.0/extensions/tag-ports-during-bulk-creation')).status).toBe(404)
      expect((await demo.req('GET', '/v2.0/extensions/security-group')).json.extension.alias).toBe('security-group')
      await h.as('metrics-project').req('GET', '/v2.0/security-groups') // creates its default group: a write
      const metrics = await h.app.inject({ method: 'GET', url: '/metrics' })
      expect(metrics.body).toMatch(
        /sgwall_http_requests_total\{method="GET",route="\/v2.0\/extensions",status="200"\} 1/,
      )
      expect(metrics.body).toMatch(/sgwall_store_duration_seconds_count\{op="write"\} [1-9]/)
      // the `.json` format suffix is accepted (tempest: /quotas/<p>/details.json)
      expect((await demo.req('GET', '/v2.0/quotas/demo/details.json')).json.quota.security_group.limit).toBe(10)
      expect((await demo.req('GET', '/v2.0/security-groups.json?name=default')).json.security_groups).toHaveLength(1)
    })

    it('logs every change with a monotonic revision', async () => {
      const logger = h.as('logger')
      await logger.req('GET', '/v2.0/security-groups')
      const before = await h.store.revision()
      const g = await group(logger, 'logged')
      const rows = await h.store.db
        .selectFrom('changes')
        .selectAll()
        .where('revision', '>', before)
        .orderBy('revision')
        .orderBy('seq')
        .execute()
      expect(rows.map((r) => `${r.resource}:${r.action}`)).toEqual([
        'security_group:create',
        'security_group_rule:create',
        'security_group_rule:create',
      ])
      expect(rows[0]!.resource_id).toBe(g.id)
    })
  })
}
