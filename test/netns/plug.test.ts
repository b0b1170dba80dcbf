/**
 * Hybrid plug on the real kernel, both br-int kinds: the devices os-vif makes
 * (qbr STP off, forward delay 0, multicast snooping off; qvb/qvo with the MTU;
 * qvo on br-int with its external-ids), idempotence, and unplug removing exactly
 * what plug made while iptables (ours and foreign) stays as it was.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyDesired } from '../../src/agent/apply.js'
import { compileHost, toStateResult } from '../../src/compile/index.js'
import { type LabRecord, labBrInt, labDown, labHost, labUp } from '../../src/host/lab.js'
import { hybridDevices, plugPorts, unplugPorts } from '../../src/host/plug.js'
import type { RealHost } from '../../src/host/real-host.js'
import { FOREIGN_V4, group, inNs, kernelSkipReason, port, sgRule } from './helpers.js'

const skip = kernelSkipReason(['ovs-vswitchd', 'ovsdb-server'])
if (skip) console.warn(`skipping plug kernel tests: ${skip}`)

const A = 'f0a350e0-4318-4a8e-9d3b-5e6f7a8b9c0d'
const B = 'f1000000-0000-4000-8000-000000000001'
const SG = 'cfe9b0d1-468b-4583-ab27-0dfe0a2bb00e'

interface IpLink {
  ifname: string
  mtu: number
  master?: string
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> }
}

function links(ns: string): Map<string, IpLink> {
  const all = JSON.parse(inNs(ns, ['ip', '-j', '-d', 'link', 'show'])) as IpLink[]
  return new Map(all.map((l) => [l.ifname, l]))
}

/** iptables-save without its `# Generated … on <date>` lines. */
function withoutComments(save: string): string {
  return save
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n')
}

function linkShape(ns: string): string {
  return [...links(ns).values()]
    .map((l) => `${l.ifname} ${l.mtu} ${l.master ?? '-'} ${l.linkinfo?.info_kind ?? '-'}`)
    .sort()
    .join('\n')
}

describe.skipIf(skip !== null).each(['ovs', 'linux'] as const)('plug/unplug on br-int %s', (kind) => {
  const root = mkdtempSync(join(tmpdir(), 'sgw-'))
  let rec: LabRecord
  let host: RealHost
  beforeAll(async () => {
    rec = await labUp({
      name: `pl${kind[0]}${process.pid % 10000}`,
      brInt: kind,
      backend: 'nft',
      mtu: 1450,
      withoutVms: true,
      stateRoot: root,
      ports: [
        { id: A, mac_address: 'fa:16:3e:00:00:0a', fixed_ips: ['10.0.0.10'] },
        { id: B, mac_address: 'fa:16:3e:00:00:0b', fixed_ips: ['10.0.0.11'] },
      ],
    })
    host = labHost(rec)
  })
  afterAll(async () => {
    if (rec) await labDown(rec.name, root)
    rmSync(root, { recursive: true, force: true })
  })

  it('makes what os-vif makes, and a second plug changes nothing', async () => {
    const l = links(rec.hostNetns)
    const d = hybridDevices(A)
    const qbr = l.get(d.qbr)!
    expect(qbr.linkinfo?.info_kind).toBe('bridge')
    expect(qbr.linkinfo?.info_data).toMatchObject({ stp_state: 0, forward_delay: 0, mcast_snooping: 0 })
    expect(qbr.mtu).toBe(1450)
    expect(l.get(d.tap)).toMatchObject({ master: d.qbr, mtu: 1450 })
    expect(l.get(d.qvb)).toMatchObject({ master: d.qbr, mtu: 1450 })
    expect(l.get(d.qvo)!.mtu).toBe(1450)
    if (kind === 'linux') expect(l.get(d.qvo)!.master).toBe('br-int')
    else {
      const ports = await host.ovsListPorts('br-int')
      expect(ports.find((p) => p.name === d.qvo)?.externalIds).toEqual({
        'iface-id': A,
        'attached-mac': 'fa:16:3e:00:00:0a',
        'iface-status': 'active',
        'vm-uuid': A,
      })
    }
    expect(inNs(rec.hostNetns, ['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables']).trim()).toBe('1')
    const shape = linkShape(rec.hostNetns)
    await plugPorts(host, labBrInt(rec), [
      { portId: A, mac: 'fa:16:3e:00:00:0a', mtu: 1450 },
      { portId: B, mac: 'fa:16:3e:00:00:0b', mtu: 1450 },
    ])
    expect(linkShape(rec.hostNetns)).toBe(shape)
  })

  it('unplug removes exactly qbr, qvb, qvo (and the OVS port); iptables stays as it was', async () => {
    await host.iptablesRestore(4, FOREIGN_V4)
    const state = {
      security_groups: [group(SG, [sgRule('ingress', 'tcp', { min: 22, max: 22 })])],
      members: { [SG]: { IPv4: ['10.0.0.10', '10.0.0.11'] } },
      ports: [port(A, 'fa:16:3e:00:00:0a', ['10.0.0.10'], [SG]), port(B, 'fa:16:3e:00:00:0b', ['10.0.0.11'], [SG])],
    }
    await applyDesired(
      host,
      toStateResult(compileHost(state, { firewall_driver: 'iptables_hybrid', enable_ipset: true })),
    )
    const save = await host.iptablesSave(4)
    const before = linkShape(rec.hostNetns)
    await unplugPorts(host, labBrInt(rec), [A])
    await unplugPorts(host, labBrInt(rec), [A]) // idempotent
    const d = hybridDevices(A)
    const gone = new Set([d.qbr, d.qvb, d.qvo])
    const expected = before
      .split('\n')
      .filter((line) => !gone.has(line.split(' ')[0]!))
      .map((line) => (line.startsWith(`${d.tap} `) ? line.replace(` ${d.qbr} `, ' - ') : line))
      .join('\n')
    expect(linkShape(rec.hostNetns)).toBe(expected)
    if (kind === 'ovs') expect((await host.ovsListPorts('br-int')).map((p) => p.name)).toEqual([hybridDevices(B).qvo])
    expect(withoutComments(await host.iptablesSave(4))).toBe(withoutComments(save))
  })
})
