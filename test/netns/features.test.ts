/**
 * The rest of the firewall's promises, with real packets on a Linux-bridge lab
 * (iptables-nft): a VM acting as DHCP server is dropped; remote-group rules via
 * ipset and via per-IP rules; a member leaving a remote group cuts its
 * established flow; a stateless group; port security off; IPv6 (ND, ping, RA from
 * the VM dropped).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { portChainName } from '../../src/compile/names.js'
import type { HostState } from '../../src/model/types.js'
import { group, kernelSkipReason, PacketLab, port, sgRule } from './helpers.js'

const skip = kernelSkipReason(['python3'])
if (skip) console.warn(`skipping feature kernel tests: ${skip}`)

const A = 'a7000000-0000-4000-8000-00000000000a'
const B = 'b7000000-0000-4000-8000-00000000000b'
const C = 'c7000000-0000-4000-8000-00000000000c'
const IP = { A: '10.9.0.10', B: '10.9.0.11', C: '10.9.0.12' }
const IP6 = { A: '2001:db8:9::a', B: '2001:db8:9::b', C: '2001:db8:9::c' }
const MAC = { A: 'fa:16:3e:09:00:0a', B: 'fa:16:3e:09:00:0b', C: 'fa:16:3e:09:00:0c' }
const SG = 'a8000000-0000-4000-8000-000000000001'
const SL = 'a8000000-0000-4000-8000-000000000002'

const egress4 = sgRule('egress', null)
const egress6 = sgRule('egress', null, { ethertype: 'IPv6' })
const fromGroup = sgRule('ingress', 'icmp', { remoteGroup: SG })
const icmp6In = sgRule('ingress', 'ipv6-icmp', { ethertype: 'IPv6' })

function state(options: { members?: string[]; stateless?: boolean } = {}): HostState {
  const groups = [group(SG, [egress4, egress6, fromGroup, icmp6In])]
  if (options.stateless) groups.push(group(SL, [sgRule('ingress', 'icmp'), sgRule('egress', null)], false))
  return {
    security_groups: groups,
    members: { [SG]: { IPv4: options.members ?? [IP.A, IP.B], IPv6: [IP6.A, IP6.B] } },
    ports: [
      port(A, MAC.A, [IP.A, IP6.A], [SG]),
      port(B, MAC.B, [IP.B, IP6.B], options.stateless ? [SL] : [SG]),
      // C: port security off (no chains, no anti-spoofing)
      port(C, MAC.C, [IP.C, IP6.C], [], { port_security_enabled: false }),
    ],
  }
}

describe.skipIf(skip !== null)('firewall features with real packets (br-int linux, iptables-nft)', () => {
  const root = mkdtempSync(join(tmpdir(), 'sgw-'))
  const lab = new PacketLab(`ft${process.pid % 10000}`, 'linux', 'nft')
  beforeAll(async () => {
    await lab.up(
      [
        { id: A, mac_address: MAC.A, fixed_ips: [IP.A, IP6.A] },
        { id: B, mac_address: MAC.B, fixed_ips: [IP.B, IP6.B] },
        { id: C, mac_address: MAC.C, fixed_ips: [IP.C, IP6.C] },
      ],
      root,
    )
  })
  afterAll(async () => {
    await lab.down(root)
    rmSync(root, { recursive: true, force: true })
  })

  for (const enable_ipset of [true, false]) {
    it(`remote group (${enable_ipset ? 'ipset' : 'one rule per member'}): members get in, others do not`, async () => {
      lab.reconfigure({ firewall_driver: 'iptables_hybrid', enable_ipset })
      await lab.apply(state())
      expect(lab.ping(B, IP.A, 2)).toBe(2)
      expect(lab.ping(C, IP.A, 2)).toBe(0)
      const save = await lab.host.iptablesSave(4)
      expect(save.includes('--match-set NIPv4a8000000-0000-4000-8000- src')).toBe(enable_ipset)
    })
  }

  it('a member leaving the remote group cuts its established flow', async () => {
    lab.reconfigure({ firewall_driver: 'iptables_hybrid', enable_ipset: true })
    await lab.apply(state())
    const flow = lab.background(B, ['ping', '-n', '-i', '0.1', '-c', '40', '-W', '1', IP.A])
    await new Promise((r) => setTimeout(r, 1000))
    const r = await lab.apply(state({ members: [IP.A] }))
    expect(r.plan.conntrack.length).toBeGreaterThan(0)
    const seqs = [...(await flow.done).matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]))
    expect(seqs.length).toBeGreaterThan(3)
    expect(Math.max(...seqs)).toBeLessThan(25)
  })

  it('a VM acting as DHCP server is dropped', async () => {
    await lab.apply(state())
    const out = portChainName('iptables_hybrid', 'o', A)
    const before = await lab.counter(out, 'Prevent DHCP Spoofing by VM')
    const listen = lab.background(C, ['timeout', '3', 'nc', '-u', '-l', '-W', '1', '-p', '68'])
    await new Promise((r) => setTimeout(r, 300))
    lab.background(A, ['sh', '-c', `echo offer | timeout 2 nc -u -w 1 -p 67 ${IP.C} 68`])
    expect(await listen.done).not.toContain('offer')
    expect(await lab.counter(out, 'Prevent DHCP Spoofing by VM')).toBeGreaterThan(before)
  })

  it('a stateless group: NOTRACK, traffic in and out by explicit rules', async () => {
    await lab.apply(state({ stateless: true }))
    const raw = await lab.host.iptablesSave(4)
    expect(raw).toMatch(/Make b7000000-0000-4000-8000-00000000000b stateless" -j CT --notrack/)
    expect(lab.ping(C, IP.B, 2)).toBe(2) // ingress icmp in, egress any lets the reply out
    expect(lab.ping(B, IP.C, 2)).toBe(2) // egress any out, ingress icmp lets the reply in
    // B's packets take the NOTRACK rule on its bridge (C's bridge, port security off, still tracks them)
    expect(await lab.counter('neutron-openvswi-PREROUTING', 'stateless" -j CT --notrack')).toBeGreaterThan(0)
  })

  it('port security off: anything goes out, even a spoofed source', async () => {
    // A admits icmp from its group; the group's member list names the spoofed address
    await lab.apply(state({ members: [IP.A, IP.B, '10.9.0.99'] }))
    lab.sh(lab.vmNs(C), ['ip', 'addr', 'add', '10.9.0.99/32', 'dev', 'eth0'])
    const accepted = 'Accept all packets when port security is disabled'
    const before = await lab.counter('neutron-openvswi-FORWARD', accepted)
    expect(lab.ping(C, IP.A, 2, ['-I', '10.9.0.99'])).toBe(2)
    expect(await lab.counter('neutron-openvswi-FORWARD', accepted)).toBeGreaterThan(before)
    expect(await lab.host.iptablesSave(4)).not.toContain(portChainName('iptables_hybrid', 's', C))
  })

  it('IPv6: neighbour discovery and ping6 work, a router advertisement from the VM is dropped', async () => {
    await lab.apply(state())
    const r = lab.sh(lab.vmNs(C), ['ping', '-6', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', IP6.A])
    expect(r).toContain('2 received')
    const out = portChainName('iptables_hybrid', 'o', A)
    const before = await lab.counter(out, 'Drop IPv6 Router Advts from VM Instance', 6)
    lab.sh(lab.vmNs(A), [
      '/usr/bin/python3', // Debian's python3-scapy, not a pyenv interpreter
      '-c',
      "from scapy.all import *; sendp(Ether(dst='33:33:00:00:00:01')/IPv6(dst='ff02::1')/ICMPv6ND_RA(), iface='eth0', count=2, verbose=0)",
    ])
    expect(await lab.counter(out, 'Drop IPv6 Router Advts from VM Instance', 6)).toBeGreaterThanOrEqual(before + 2)
  })
})
