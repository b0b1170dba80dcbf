/**
 * The in-memory read view of security groups (src/api/group-cache.ts) against the store:
 * two servers on one database, where every write goes through one and every read through
 * the other, must answer exactly what the writer answers; a view behind a pruned change log
 * rebuilds; large lists go gzip-encoded only to clients that accept it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { acceptsGzip } from '../../src/api/app.js'
import { freshDatabaseUrl, storeDialects } from '../helpers/dialects.js'
import { type Caller, harness } from './helpers.js'

type Harness = Awaited<ReturnType<typeof harness>>

for (const d of storeDialects()) {
  describe.skipIf(!d.available)(`read view on ${d.name}`, () => {
    let writer: Harness
    let reader: Harness
    let drop: () => Promise<void>
    let dir = ''
    beforeAll(async () => {
      let url: string
      if (d.name === 'sqlite') {
        dir = mkdtempSync(join(tmpdir(), 'sgwall-view-'))
        url = join(dir, 'db.sqlite')
        drop = async () => rmSync(dir, { recursive: true, force: true })
      } else ({ url, drop } = await freshDatabaseUrl('postgres'))
      // A tiny change log on the reader's side is pruned quickly: its view must rebuild.
      writer = await harness(url, { changeLogLimit: 5, pruneEvery: 1 })
      reader = await harness(url)
    })
    afterAll(async () => {
      await reader?.close()
      await writer?.close()
      await drop?.()
    })

    /** Every read a client can make about `groups`/`rules`, through `c`. */
    const snapshot = async (c: Caller, groups: string[], rules: string[]) => {
      const out: unknown[] = []
      for (const path of [
        '/v2.0/security-groups',
        '/v2.0/security-groups?fields=id&fields=name&fields=tags',
        '/v2.0/security-group-rules',
        ...groups.map((g) => `/v2.0/security-group-rules?security_group_id=${g}`),
        ...groups.map((g) => `/v2.0/security-groups/${g}`),
        ...rules.map((r) => `/v2.0/security-group-rules/${r}`),
      ]) {
        const res = await c.req('GET', path)
        out.push([path, res.status, res.raw])
      }
      return out
    }

    it('a second server sees every committed change at once (creates, deletes, tags, RBAC, pruned log)', async () => {
      const w = writer.as('p1', true)
      const r = reader.as('p1', true)
      const other = reader.as('p2')
      expect((await r.req('GET', '/v2.0/security-groups')).status).toBe(200) // builds p1's view (and default group)
      const g = (await w.req('POST', '/v2.0/security-groups', { security_group: { name: 'web' } })).json.security_group
      expect((await r.req('GET', `/v2.0/security-groups/${g.id}`)).status).toBe(200) // the view now holds the group
      const rule = (
        await w.req('POST', '/v2.0/security-group-rules', {
          security_group_rule: {
            security_group_id: g.id,
            direction: 'ingress',
            protocol: 'tcp',
            port_range_min: 22,
            port_range_max: 22,
          },
        })
      ).json.security_group_rule
      const groups = [g.id]
      const rules = [rule.id, ...g.security_group_rules.map((x: { id: string }) => x.id)]
      expect(await snapshot(r, groups, rules)).toEqual(await snapshot(w, groups, rules))
      const shown = (await r.req('GET', `/v2.0/security-groups/${g.id}`)).json.security_group
      expect(shown.security_group_rules.map((x: { id: string }) => x.id)).toContain(rule.id)
      expect(shown.revision_number).toBe(2)

      expect((await w.req('PUT', `/v2.0/security-groups/${g.id}/tags/blue`)).status).toBe(201)
      expect((await r.req('GET', `/v2.0/security-groups/${g.id}`)).json.security_group.tags).toEqual(['blue'])
      expect((await w.req('PUT', `/v2.0/security-groups/${g.id}`, { security_group: { name: 'web2' } })).status).toBe(
        200,
      )
      expect(await snapshot(r, groups, rules)).toEqual(await snapshot(w, groups, rules))

      expect((await other.req('GET', `/v2.0/security-groups/${g.id}`)).status).toBe(404)
      const share = await w.req('POST', '/v2.0/rbac-policies', {
        rbac_policy: {
          object_type: 'security_group',
          object_id: g.id,
          action: 'access_as_shared',
          target_tenant: 'p2',
        },
      })
      expect(share.status).toBe(201)
      const seen = await other.req('GET', `/v2.0/security-groups/${g.id}`)
      expect(seen.status).toBe(200)
      expect(seen.json.security_group.shared).toBe(true)
      expect(
        (await other.req('GET', '/v2.0/security-groups')).json.security_groups.map((x: { id: string }) => x.id),
      ).toContain(g.id)
      expect((await w.req('DELETE', `/v2.0/rbac-policies/${share.json.rbac_policy.id}`)).status).toBe(204)
      expect((await other.req('GET', `/v2.0/security-groups/${g.id}`)).status).toBe(404)

      // More than the writer's change log keeps: the reader's view is behind the pruned log.
      const extra: string[] = []
      for (let k = 0; k < 8; k++)
        extra.push(
          (
            await w.req('POST', '/v2.0/security-group-rules', {
              security_group_rule: {
                security_group_id: g.id,
                direction: 'egress',
                protocol: 'udp',
                port_range_min: 100 + k,
                port_range_max: 100 + k,
              },
            })
          ).json.security_group_rule.id,
        )
      expect(await snapshot(r, groups, [...rules, ...extra])).toEqual(await snapshot(w, groups, [...rules, ...extra]))

      expect((await w.req('DELETE', `/v2.0/security-group-rules/${rule.id}`)).status).toBe(204)
      expect((await r.req('GET', `/v2.0/security-group-rules/${rule.id}`)).status).toBe(404)
      expect((await w.req('DELETE', `/v2.0/security-groups/${g.id}`)).status).toBe(204)
      expect((await r.req('GET', `/v2.0/security-groups/${g.id}`)).status).toBe(404)
      expect((await r.req('GET', `/v2.0/security-group-rules/${extra[0]}`)).status).toBe(404)
      expect(await snapshot(r, groups, rules)).toEqual(await snapshot(w, groups, rules))
    })

    it('sends a large full list gzip-encoded only when the client accepts gzip', async () => {
      const w = writer.as('p3', true)
      expect(
        (await w.req('PUT', '/v2.0/quotas/p3', { quota: { security_group: -1, security_group_rule: -1 } })).status,
      ).toBe(200)
      const many = Array.from({ length: 80 }, (_, k) => ({ name: `g${k}`, description: 'x'.repeat(200) }))
      expect((await w.req('POST', '/v2.0/security-groups', { security_groups: many })).status).toBe(201)
      const plain = await reader.app.inject({
        method: 'GET',
        url: '/v2.0/security-groups',
        headers: { 'x-project-id': 'p3', 'x-roles': 'member' },
      })
      expect(plain.headers['content-encoding']).toBeUndefined()
      expect(plain.rawPayload.length).toBeGreaterThan(64 * 1024)
      const zipped = await reader.app.inject({
        method: 'GET',
        url: '/v2.0/security-groups',
        headers: { 'x-project-id': 'p3', 'x-roles': 'member', 'accept-encoding': 'gzip, deflate' },
      })
      expect(zipped.headers['content-encoding']).toBe('gzip')
      expect(zipped.headers.vary).toBe('Accept-Encoding')
      expect(zipped.rawPayload.length).toBeLessThan(plain.rawPayload.length / 5)
      expect(gunzipSync(zipped.rawPayload).toString()).toBe(plain.body)
      expect(JSON.parse(plain.body).security_groups).toHaveLength(81)
      // A fields-only list (cached body) is the full list with only those fields, in order.
      const some = await reader.as('p3').req('GET', '/v2.0/security-groups?fields=name&fields=id&fields=shared')
      expect(some.json).toEqual({
        security_groups: JSON.parse(plain.body).security_groups.map((g: Record<string, unknown>) => ({
          name: g.name,
          id: g.id,
          shared: g.shared,
        })),
      })
      expect(Object.keys(some.json.security_groups[0])).toEqual(['name', 'id', 'shared'])
    })
  })
}

describe('acceptsGzip', () => {
  it('reads Accept-Encoding tokens and q values', () => {
    expect(acceptsGzip(undefined)).toBe(false)
    expect(acceptsGzip('gzip, deflate')).toBe(true)
    expect(acceptsGzip('deflate, br')).toBe(false)
    expect(acceptsGzip('gzip;q=0')).toBe(false)
    expect(acceptsGzip('gzip;q=0.5')).toBe(true)
    expect(acceptsGzip('*')).toBe(true)
    expect(acceptsGzip('identity')).toBe(false)
  })
})
