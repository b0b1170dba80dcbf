/**
 * End to end on the real kernel: a lab host (network namespaces, Linux-bridge br-int,
 * hybrid plug) whose agent follows a real server. Rules and ports change through the
 * API and real packets between the lab VMs follow each change; the server restarts in
 * the middle and nothing is lost (the kernel keeps the last state meanwhile).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Agent } from '../../src/agent/loop.js'
import { type RunningServer, startServer } from '../../src/api/server.js'
import { type LabRecord, labDown, labExecArgv, labHost, labUp } from '../../src/host/lab.js'
import { runProcess } from '../../src/host/real-host.js'
import { kernelSkipReason } from './helpers.js'

const skip = kernelSkipReason(['ping'])
if (skip) console.log(`skipping agent lab test: ${skip}`)

const dir = mkdtempSync(join(tmpdir(), 'sgw-agent-lab-'))
const labRoot = join(dir, 'labs')
const labName = `ag${process.pid % 100000}`
let server: RunningServer | null = null
let port = 0
let lab: LabRecord | null = null
let agent: Agent | null = null
let running: Promise<void> | null = null

async function start(): Promise<void> {
  server = await startServer({ db: join(dir, 'sgwall.db'), auth: 'none', port, host: '127.0.0.1' })
  port = Number(new URL(server.url).port)
}

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  if (!server) throw new Error('server is down')
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? (JSON.parse(text) as Record<string, unknown>) : {}
}

async function ping(from: string, to: string): Promise<boolean> {
  if (!lab) throw new Error('no lab')
  const r = await runProcess(labExecArgv(lab, from, ['ping', '-c', '1', '-W', '1', to]))
  return r.code === 0
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for: ${what}`)
}

interface ApiPort {
  id: string
  mac_address: string
  fixed_ips: Array<{ ip_address: string }>
}

describe.skipIf(skip !== null)('agent following the server on a lab host', () => {
  let p1: ApiPort
  let p2: ApiPort
  let sg: { id: string }

  beforeAll(async () => {
    await start()
    const net = (await api('POST', '/v2.0/networks', { network: { name: 'lab' } })).network as { id: string }
    await api('POST', '/v2.0/subnets', {
      subnet: { network_id: net.id, cidr: '10.77.0.0/24', ip_version: 4, gateway_ip: null },
    })
    sg = (await api('POST', '/v2.0/security-groups', { security_group: { name: 'lab' } })).security_group as {
      id: string
    }
    const mk = async () =>
      (
        await api('POST', '/v2.0/ports', {
          port: { network_id: net.id, security_groups: [sg.id], 'binding:host_id': 'lab-host' },
        })
      ).port as ApiPort
    p1 = await mk()
    p2 = await mk()
    lab = await labUp({
      name: labName,
      brInt: 'linux',
      backend: 'nft',
      stateRoot: labRoot,
      ports: [p1, p2].map((p) => ({
        id: p.id,
        mac_address: p.mac_address,
        fixed_ips: p.fixed_ips.map((f) => f.ip_address),
      })),
    })
    agent = new Agent({
      server: server?.url ?? '',
      host: 'lab-host',
      dataplane: labHost(lab),
      waitSeconds: 1,
      sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 200))),
    })
    running = agent.run()
  }, 120_000)

  afterAll(async () => {
    agent?.stop()
    await running
    if (lab) await labDown(labName, labRoot)
    await server?.close()
    rmSync(dir, { recursive: true, force: true })
  }, 120_000)

  it('real packets follow rule changes made through the API, across a server restart', async () => {
    const ip2 = p2.fixed_ips[0]?.ip_address ?? ''
    const ip1 = p1.fixed_ips[0]?.ip_address ?? ''
    // The new group has only the default egress rules: ping between the VMs is dropped.
    await until('the agent to program the ports', async () => (agent?.currentRevision ?? -1) > 0)
    expect(await ping(p1.id, ip2)).toBe(false)

    // Allow ICMP from the group's own members (remote group, ipset).
    const rule = (
      await api('POST', '/v2.0/security-group-rules', {
        security_group_rule: {
          security_group_id: sg.id,
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: 'icmp',
          remote_group_id: sg.id,
        },
      })
    ).security_group_rule as { id: string }
    await until('ping p1 -> p2 to pass', () => ping(p1.id, ip2))
    expect(await ping(p2.id, ip1)).toBe(true)

    // The server goes away: the kernel keeps the last applied state.
    await server?.close()
    server = null
    await new Promise((r) => setTimeout(r, 500))
    expect(await ping(p1.id, ip2)).toBe(true)

    // It comes back on the same database; the rule is deleted and ping stops again.
    await start()
    await api('DELETE', `/v2.0/security-group-rules/${rule.id}`)
    await until('ping p1 -> p2 to be dropped again', async () => !(await ping(p1.id, ip2)))

    // A port whose groups are all removed through the API drops everything, both ways
    // (no group, no rule: not even egress); the other port keeps its group.
    await api('POST', '/v2.0/security-group-rules', {
      security_group_rule: { security_group_id: sg.id, direction: 'ingress', ethertype: 'IPv4', protocol: 'icmp' },
    })
    await until('ping allowed from anywhere', () => ping(p1.id, ip2))
    await api('PUT', `/v2.0/ports/${p2.id}`, { port: { security_groups: [] } })
    await until('p2 without groups drops ping', async () => !(await ping(p1.id, ip2)))
    expect(await ping(p2.id, ip1)).toBe(false)
    // Back in the group: traffic flows again.
    await api('PUT', `/v2.0/ports/${p2.id}`, { port: { security_groups: [sg.id] } })
    await until('p2 back in the group', () => ping(p1.id, ip2))
    expect(await ping(p2.id, ip1)).toBe(true)
  }, 120_000)
})
