/**
 * The agent follows the server: a real server (SQLite file, no auth) on loopback, an
 * agent with the in-memory dataplane; changes made through the API reach the dataplane,
 * and a server restart loses nothing. With the built-in identity, an agent whose token is
 * revoked authenticates again.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Agent, type AgentEvent, passwordToken } from '../../src/agent/loop.js'
import { type RunningServer, startServer } from '../../src/api/server.js'
import { FakeHost } from '../../src/host/fake-host.js'
import { passwordLogin } from '../api/helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'sgwall-agent-'))
const db = join(dir, 'sgwall.db')
let server: RunningServer | null = null
let port = 0

async function start(): Promise<RunningServer> {
  const s = await startServer({ db, auth: 'none', port, host: '127.0.0.1' })
  port = Number(new URL(s.url).port)
  return s
}

/** A Neutron response body: resources keyed by their singular name (loosely typed on purpose). */
// biome-ignore lint/suspicious/noExplicitAny: test-side JSON access, the assertions check the shapes
type Json = Record<string, any>

async function api(method: string, path: string, body?: unknown): Promise<Json> {
  if (!server) throw new Error('no server')
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : {}
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for: ${what}`)
}

afterAll(async () => {
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('agent follows the server', () => {
  const host = new FakeHost()
  const events: AgentEvent[] = []
  let agent: Agent

  it('applies the host scenario and each change made through the API, across a server restart', async () => {
    server = await start()
    const net = (await api('POST', '/v2.0/networks', { network: { name: 'n1' } })).network
    await api('POST', '/v2.0/subnets', { subnet: { network_id: net.id, cidr: '192.168.50.0/24', ip_version: 4 } })
    const sg = (await api('POST', '/v2.0/security-groups', { security_group: { name: 'web' } })).security_group
    const p = (
      await api('POST', '/v2.0/ports', {
        port: { network_id: net.id, security_groups: [sg.id], 'binding:host_id': 'compute-1' },
      })
    ).port
    const chain = `neutron-openvswi-i${p.id.slice(0, 10)}`

    agent = new Agent({
      server: server.url,
      host: 'compute-1',
      dataplane: host,
      waitSeconds: 1,
      resyncSeconds: 2,
      sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 100))),
      onEvent: (e) => events.push(e),
    })
    const running = agent.run()

    await until('the port chain', async () => (await host.iptablesSave(4)).includes(`:${chain}`))
    const ip = p.fixed_ips[0].ip_address as string
    expect(await host.iptablesSave(4)).toContain(
      `-A ${chain} -d ${ip}/32 -p udp -m udp --sport 67 --dport 68 -j RETURN`,
    )

    // A rule added through the API reaches the dataplane.
    const rule = (
      await api('POST', '/v2.0/security-group-rules', {
        security_group_rule: {
          security_group_id: sg.id,
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: 'tcp',
          port_range_min: 8080,
          port_range_max: 8080,
        },
      })
    ).security_group_rule
    await until('the tcp 8080 rule', async () =>
      (await host.iptablesSave(4)).includes(`-A ${chain} -p tcp -m tcp --dport 8080 -j RETURN`),
    )

    // The server restarts; meanwhile the dataplane keeps the last applied state.
    await server.close()
    server = null
    await new Promise((r) => setTimeout(r, 300))
    expect(await host.iptablesSave(4)).toContain(`-A ${chain} -p tcp -m tcp --dport 8080 -j RETURN`)
    server = await start()
    await api('DELETE', `/v2.0/security-group-rules/${rule.id}`)
    await until('the rule to go after the restart', async () => {
      const save = await host.iptablesSave(4)
      return save.includes(`:${chain}`) && !save.includes('--dport 8080')
    })
    expect(events.some((e) => e.kind === 'error')).toBe(true)

    // Drift: someone flushes the port's ingress chain; the periodic reconcile repairs it.
    await host.iptablesRestore(4, `*filter\n:${chain} - [0:0]\nCOMMIT\n`)
    expect(await host.iptablesSave(4)).not.toContain(`-A ${chain} -m state`)
    await until('the flushed chain to be repaired', async () =>
      (await host.iptablesSave(4)).includes(`-A ${chain} -m state`),
    )

    agent.stop()
    await running
  }, 60_000)

  it('re-authenticates when the server refuses its token (built-in identity, token revoked)', async () => {
    const password = 'agent-test-secret'
    const idServer = await startServer({ db: ':memory:', auth: 'builtin', port: 0, adminPassword: password })
    try {
      const source = passwordToken(`${idServer.url}/identity/v3`, 'admin', password, 'admin')
      const issued: string[] = []
      const token = async (fresh?: boolean) => {
        const t = await source(fresh)
        if (issued.at(-1) !== t) issued.push(t)
        return t
      }
      const admin = await token()
      const call = async (method: string, path: string, body?: unknown): Promise<Json> => {
        const res = await fetch(`${idServer.url}${path}`, {
          method,
          headers: { 'Content-Type': 'application/json', 'X-Auth-Token': admin },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        })
        const text = await res.text()
        if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
        return text ? JSON.parse(text) : {}
      }
      const net = (await call('POST', '/v2.0/networks', { network: { name: 'n2' } })).network
      await call('POST', '/v2.0/subnets', { subnet: { network_id: net.id, cidr: '192.168.60.0/24', ip_version: 4 } })
      const sg = (await call('POST', '/v2.0/security-groups', { security_group: { name: 'db' } })).security_group
      const p = (
        await call('POST', '/v2.0/ports', {
          port: { network_id: net.id, security_groups: [sg.id], 'binding:host_id': 'compute-2' },
        })
      ).port
      const chain = `neutron-openvswi-i${p.id.slice(0, 10)}`
      const dataplane = new FakeHost()
      const a = new Agent({
        server: idServer.url,
        host: 'compute-2',
        dataplane,
        token,
        waitSeconds: 1,
        sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 100))),
      })
      const running = a.run()
      await until('the port chain', async () => (await dataplane.iptablesSave(4)).includes(`:${chain}`))
      // Revoke the agent's token (another admin session does it); the next change must still arrive.
      const other = (await passwordLogin(idServer.url, 'admin', password, 'admin')).headers.get('x-subject-token')!
      const del = await fetch(`${idServer.url}/identity/v3/auth/tokens`, {
        method: 'DELETE',
        headers: { 'X-Auth-Token': other, 'X-Subject-Token': admin },
      })
      expect(del.status).toBe(204)
      const rules = `${idServer.url}/v2.0/security-group-rules`
      const add = await fetch(rules, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Auth-Token': other },
        body: JSON.stringify({
          security_group_rule: {
            security_group_id: sg.id,
            direction: 'ingress',
            protocol: 'tcp',
            port_range_min: 5432,
            port_range_max: 5432,
          },
        }),
      })
      expect(add.status).toBe(201)
      await until('the tcp 5432 rule after the token was revoked', async () =>
        (await dataplane.iptablesSave(4)).includes(`-A ${chain} -p tcp -m tcp --dport 5432 -j RETURN`),
      )
      expect(issued.length).toBeGreaterThanOrEqual(2)
      a.stop()
      await running
    } finally {
      await idServer.close()
    }
  }, 60_000)
})
