/** The agent feed: change log paging, long-poll, truncation, and the per-host scenario. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshDatabaseUrl, storeDialects } from '../helpers/dialects.js'
import { type Caller, harness } from './helpers.js'

for (const d of storeDialects()) {
  describe.skipIf(!d.available)(`agent feed on ${d.name}`, () => {
    let h: Awaited<ReturnType<typeof harness>>
    let drop: () => Promise<void>
    let admin: Caller
    let demo: Caller
    beforeAll(async () => {
      const fresh = await freshDatabaseUrl(d.name)
      drop = fresh.drop
      h = await harness(fresh.url, { changeLogLimit: 5, pruneEvery: 1_000_000 })
      admin = h.as('admin-project', true)
      demo = h.as('demo')
    })
    afterAll(async () => {
      await h?.close()
      await drop?.()
    })

    it('is admin only', async () => {
      const r = await demo.req('GET', '/v2.0/sgwall/changes?since=0')
      expect(r.status).toBe(403)
      expect(r.json.NeutronError.type).toBe('PolicyNotAuthorized')
    })

    it('pages changes by revision and reports the reader position', async () => {
      const start = (await admin.req('GET', '/v2.0/sgwall/changes?since=0')).json
      expect(start.changes).toEqual([])
      const g = (await demo.req('POST', '/v2.0/security-groups', { security_group: { name: 'feed' } })).json
        .security_group
      const all = (await admin.req('GET', `/v2.0/sgwall/changes?since=${start.revision}`)).json
      const kinds = all.changes.map((c: { resource: string; action: string }) => `${c.resource}:${c.action}`)
      // the default group (4 rules) is ensured first, then the new group with its 2 rules
      expect(kinds).toEqual([
        'security_group:create',
        ...Array(4).fill('security_group_rule:create'),
        'security_group:create',
        'security_group_rule:create',
        'security_group_rule:create',
      ])
      expect(all.changes[5].id).toBe(g.id)
      const revisions = all.changes.map((c: { revision: number }) => c.revision)
      expect([...revisions].sort((a, b) => a - b)).toEqual(revisions)
      expect(all.revision).toBe(revisions[revisions.length - 1])
      const page = (await admin.req('GET', `/v2.0/sgwall/changes?since=${start.revision}&limit=1`)).json
      expect(page.changes).toHaveLength(5) // one revision = the whole default-group transaction
      expect(page.revision).toBe(page.changes[0].revision)
      const rest = (await admin.req('GET', `/v2.0/sgwall/changes?since=${page.revision}`)).json
      expect(rest.changes).toHaveLength(3)
      const none = (await admin.req('GET', `/v2.0/sgwall/changes?since=${all.revision}`)).json
      expect(none).toEqual({ revision: all.revision, changes: [] })
    })

    it('long-polls until the next commit', async () => {
      const now = (await admin.req('GET', '/v2.0/sgwall/changes?since=0&limit=10000')).json.revision
      const t0 = Date.now()
      const waiting = admin.req('GET', `/v2.0/sgwall/changes?since=${now}&wait=20`)
      await new Promise((r) => setTimeout(r, 200))
      await demo.req('POST', '/v2.0/security-groups', { security_group: { name: 'wake' } })
      const r = (await waiting).json
      expect(r.changes.length).toBeGreaterThan(0)
      expect(Date.now() - t0).toBeLessThan(10_000)
      const empty = await admin.req('GET', `/v2.0/sgwall/changes?since=${r.revision}&wait=0.3`)
      expect(empty.json.changes).toEqual([])
    })

    it('answers 410 ChangeLogTruncated when the reader is behind the retained log', async () => {
      await h.store.db.updateTable('sgwall_meta').set({ pruned_through: 3 }).where('id', '=', 1).execute()
      const r = await admin.req('GET', '/v2.0/sgwall/changes?since=1')
      expect(r.status).toBe(410)
      expect(r.json.NeutronError.type).toBe('ChangeLogTruncated')
      expect((await admin.req('GET', '/v2.0/sgwall/changes?since=3')).status).toBe(200)
      const bad = await admin.req('GET', '/v2.0/sgwall/changes?since=abc')
      expect(bad.status).toBe(400)
    })

    it('serves the scenario of one host: local ports, their groups, remote groups and members across hosts', async () => {
      const net = (await admin.req('POST', '/v2.0/networks', { network: { name: 'n', project_id: 'demo' } })).json
        .network.id
      await admin.req('POST', '/v2.0/subnets', {
        subnet: { network_id: net, cidr: '192.168.1.0/24', ip_version: 4, project_id: 'demo' },
      })
      const web = (await demo.req('POST', '/v2.0/security-groups', { security_group: { name: 'web' } })).json
        .security_group.id
      const dbg = (await demo.req('POST', '/v2.0/security-groups', { security_group: { name: 'db' } })).json
        .security_group.id
      const rule = await demo.req('POST', '/v2.0/security-group-rules', {
        security_group_rule: {
          security_group_id: web,
          direction: 'ingress',
          protocol: 'tcp',
          port_range_min: 80,
          port_range_max: 80,
          remote_group_id: dbg,
        },
      })
      expect(rule.status).toBe(201)
      const port = async (host: string, groups: string[], extra = {}) =>
        (
          await admin.req('POST', '/v2.0/ports', {
            port: {
              network_id: net,
              project_id: 'demo',
              security_groups: groups,
              'binding:host_id': host,
              device_owner: 'compute:nova',
              ...extra,
            },
          })
        ).json.port
      const local = await port('compute-1', [web], { allowed_address_pairs: [{ ip_address: '10.30.0.0/24' }] })
      const remote = await port('compute-2', [dbg])
      await port('compute-2', [web])
      const res = await admin.req('GET', '/v2.0/sgwall/hosts/compute-1/scenario')
      expect(res.status).toBe(200)
      expect(Number(res.headers['x-sgwall-revision'])).toBe(await h.store.revision())
      const s = res.json
      expect(s.config).toEqual({ firewall_driver: 'iptables_hybrid', enable_ipset: true })
      expect(s.steps).toEqual([])
      expect(s.ports).toEqual([
        {
          id: local.id,
          mac_address: local.mac_address,
          fixed_ips: [local.fixed_ips[0].ip_address],
          allowed_address_pairs: [{ ip_address: '10.30.0.0/24', mac_address: local.mac_address }],
          security_groups: [web],
          port_security_enabled: true,
          network_id: net,
          device_owner: 'compute:nova',
        },
      ])
      expect(s.security_groups.map((g: { id: string }) => g.id)).toEqual([web, dbg])
      const webRules = s.security_groups[0].rules
      expect(webRules).toContainEqual({
        id: rule.json.security_group_rule.id,
        direction: 'ingress',
        ethertype: 'IPv4',
        protocol: 'tcp',
        port_range_min: 80,
        port_range_max: 80,
        remote_ip_prefix: null,
        remote_group_id: dbg,
      })
      expect(s.members).toEqual({ [dbg]: { IPv4: [remote.fixed_ips[0].ip_address] } })
      const empty = (
        await admin.req('GET', '/v2.0/sgwall/hosts/nowhere/scenario?firewall_driver=iptables&enable_ipset=false')
      ).json
      expect(empty).toEqual({
        config: { firewall_driver: 'iptables', enable_ipset: false },
        security_groups: [],
        members: {},
        ports: [],
        steps: [],
      })
      expect((await admin.req('GET', '/v2.0/sgwall/hosts/x/scenario?firewall_driver=nft')).status).toBe(400)
    })
  })
}
