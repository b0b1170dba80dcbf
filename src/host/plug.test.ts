import { describe, expect, it } from 'vitest'
import { FakeHost } from './fake-host.js'
import { hybridDevices, plugPorts, unplugPorts } from './plug.js'

const A = 'c0a350e0-4318-4a8e-9d3b-5e6f7a8b9c0d'
const B = 'b1000000-0000-4000-8000-000000000001'

async function hostWithTaps(): Promise<FakeHost> {
  const h = new FakeHost()
  await h.linkBatch([
    { op: 'add-bridge', name: 'br-int' },
    { op: 'add-tap', name: hybridDevices(A).tap },
    { op: 'add-tap', name: hybridDevices(B).tap },
    { op: 'add-tap', name: 'tapforeign' },
  ])
  return h
}

function snapshot(h: FakeHost) {
  return JSON.stringify({ links: [...h.links].sort(), ovs: [...h.ovsPorts].sort(), sysctls: [...h.sysctls].sort() })
}

describe.each(['ovs', 'linux'] as const)('hybrid plug, br-int %s', (kind) => {
  const brInt = { kind, name: 'br-int' }
  const specs = [
    { portId: A, mac: 'fa:16:3e:c3:ea:d5', mtu: 1450 },
    { portId: B, mac: 'fa:16:3e:00:00:01', mtu: 1450 },
  ]

  it('builds tap → qbr → qvb/qvo → br-int with the MTU everywhere, idempotently', async () => {
    const h = await hostWithTaps()
    await plugPorts(h, brInt, specs)
    const d = hybridDevices(A)
    expect(h.links.get(d.qbr)).toMatchObject({ kind: 'bridge', mtu: 1450, up: true })
    expect(h.links.get(d.tap)).toMatchObject({ master: d.qbr, mtu: 1450, up: true })
    expect(h.links.get(d.qvb)).toMatchObject({ master: d.qbr, mtu: 1450, up: true })
    expect(h.links.get(d.qvo)).toMatchObject({ mtu: 1450, up: true, master: kind === 'linux' ? 'br-int' : null })
    expect(h.sysctls.get('net.bridge.bridge-nf-call-iptables')).toBe('1')
    expect(h.sysctls.get(`net.ipv6.conf.${d.qbr}.disable_ipv6`)).toBe('1')
    if (kind === 'ovs') {
      expect(h.ovsPorts.get(d.qvo)).toEqual({
        bridge: 'br-int',
        externalIds: { 'iface-id': A, 'attached-mac': 'fa:16:3e:c3:ea:d5', 'iface-status': 'active', 'vm-uuid': A },
      })
    }
    const once = snapshot(h)
    await plugPorts(h, brInt, specs)
    expect(snapshot(h)).toBe(once)
  })

  it('repairs a half-plugged port and unplug removes exactly what plug made', async () => {
    const h = await hostWithTaps()
    const before = snapshot(h)
    await plugPorts(h, brInt, specs)
    const d = hybridDevices(B)
    await h.linkBatch([{ op: 'delete', name: d.qvb }]) // qvo goes with it
    await plugPorts(h, brInt, specs)
    expect(h.links.get(d.qvb)).toMatchObject({ master: d.qbr })
    await unplugPorts(h, brInt, [A, B])
    await unplugPorts(h, brInt, [A, B])
    // the same devices as before plug (the taps stay, no longer enslaved), no OVS port
    const names = (links: [string, { master: string | null }][]) => links.map(([n, l]) => `${n}>${l.master}`)
    expect(names(JSON.parse(snapshot(h)).links)).toEqual(names(JSON.parse(before).links))
    expect(h.ovsPorts.size).toBe(0)
  })

  it('refuses a port whose tap does not exist, and bad input', async () => {
    const h = await hostWithTaps()
    await expect(
      plugPorts(h, brInt, [{ portId: 'deadbeef-0000-4000-8000-000000000000', mac: 'fa:16:3e:00:00:09', mtu: 1500 }]),
    ).rejects.toThrow(/tap device/)
    await expect(plugPorts(h, brInt, [{ ...specs[0]!, mtu: 20 }])).rejects.toThrow(/MTU/)
    await expect(plugPorts(h, brInt, [{ ...specs[0]!, mac: 'nope' }])).rejects.toThrow(/MAC/)
  })
})
