/**
 * The seed walkthrough with real packets, on a lab host (both br-int kinds; the
 * OVS run uses iptables-nft, the Linux-bridge run iptables-legacy):
 * (a) empty group: ping to the VM is dropped, a DHCP reply gets in;
 * (b) + egress any: the VM reaches out and the replies come back (ESTABLISHED);
 * (c) + ingress icmp: ping in works; the matching rules' counters move.
 * Then spoofing (IP and MAC), allowed address pairs, and the conntrack cut.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { diffDesired } from '../../src/agent/apply.js'
import { attributeCounters } from '../../src/agent/counters.js'
import { isInSync, renderOwnedView } from '../../src/agent/plan.js'
import { compileHost, toStateResult } from '../../src/compile/index.js'
import { portChainName } from '../../src/compile/names.js'
import type { HostState } from '../../src/model/types.js'
import { group, kernelSkipReason, PacketLab, port, sgRule } from './helpers.js'

const skip = kernelSkipReason(['ovs-vswitchd', 'ovsdb-server', 'iptables-legacy-restore'])
if (skip) console.warn(`skipping walkthrough kernel tests: ${skip}`)

const VM = 'c0a350e0-4318-4a8e-9d3b-5e6f7a8b9c0d'
const VM_IP = '192.168.1.12'
const VM_MAC = 'fa:16:3e:c3:ea:d5'
const PEER = 'b1000000-0000-4000-8000-000000000001'
const PEER_IP = '192.168.1.20'
const SG = 'cfe9b0d1-468b-4583-ab27-0dfe0a2bb00e'
const IN = portChainName('iptables_hybrid', 'i', VM)
const OUT = portChainName('iptables_hybrid', 'o', VM)
const SPOOF = portChainName('iptables_hybrid', 's', VM)

const egressAny = sgRule('egress', null)
const ingressIcmp = sgRule('ingress', 'icmp')

function state(rules: HostState['security_groups'][number]['rules'], pairs: { ip_address: string }[] = []): HostState {
  return {
    security_groups: [group(SG, rules)],
    members: { [SG]: { IPv4: [VM_IP, ...pairs.map((p) => p.ip_address)] } },
    ports: [
      port(VM, VM_MAC, [VM_IP], [SG], { allowed_address_pairs: pairs }),
      // the "outside": a port without port security on the same network
      port(PEER, 'fa:16:3e:00:00:01', [PEER_IP], [], { port_security_enabled: false }),
    ],
  }
}

const labPorts = [
  { id: VM, mac_address: VM_MAC, fixed_ips: [VM_IP] },
  { id: PEER, mac_address: 'fa:16:3e:00:00:01', fixed_ips: [PEER_IP] },
]

describe.skipIf(skip !== null).each([
  ['linux', 'legacy'],
  ['ovs', 'nft'],
] as const)('walkthrough on br-int %s, iptables-%s', (brInt, backend) => {
  const root = mkdtempSync(join(tmpdir(), 'sgw-'))
  const lab = new PacketLab(`wt${brInt[0]}${process.pid % 10000}`, brInt, backend)

  beforeAll(async () => {
    await lab.up(labPorts, root)
  })
  afterAll(async () => {
    await lab.down(root)
    rmSync(root, { recursive: true, force: true })
  })

  it('(a) empty group: ping in dropped, DHCP reply allowed', async () => {
    await lab.apply(state([]))
    expect(lab.ping(PEER, VM_IP)).toBe(0)
    expect(await lab.counter('neutron-openvswi-sg-fallback', '-j DROP')).toBeGreaterThan(0)
    // a DHCP server's reply (udp 67 → 68) to the VM's address gets through
    const listen = lab.background(VM, ['timeout', '3', 'nc', '-u', '-l', '-W', '1', '-p', '68'])
    await new Promise((r) => setTimeout(r, 300))
    lab.background(PEER, ['sh', '-c', `echo offer | timeout 2 nc -u -w 1 -p 67 ${VM_IP} 68`])
    expect(await listen.done).toContain('offer')
    expect(await lab.counter(IN, `-d ${VM_IP}/32 -p udp -m udp --sport 67 --dport 68`)).toBeGreaterThan(0)
    // and the VM cannot reach out: no egress rule
    expect(lab.ping(VM, PEER_IP)).toBe(0)
  })

  it('(b) egress any: the VM reaches out and replies come back as ESTABLISHED', async () => {
    await lab.apply(state([egressAny]))
    expect(lab.ping(VM, PEER_IP, 3)).toBe(3)
    expect(await lab.counter(OUT, '=-j RETURN')).toBeGreaterThan(0)
    expect(await lab.counter(IN, '--state RELATED,ESTABLISHED')).toBeGreaterThan(0)
    expect(lab.ping(PEER, VM_IP)).toBe(0)
  })

  it('(c) ingress icmp: ping in works, its rule counts', async () => {
    await lab.apply(state([egressAny, ingressIcmp]))
    const before = await lab.counter(IN, '-p icmp -j RETURN')
    expect(lab.ping(PEER, VM_IP, 3)).toBe(3)
    // the first echo request is NEW and matches the rule; the next ones are ESTABLISHED
    expect(await lab.counter(IN, '=-p icmp -j RETURN')).toBeGreaterThan(before)
    // the counters, attributed: the ingress icmp rule by its id, fixed rules by role
    const rows = attributeCounters(
      4,
      await lab.host.iptablesSave(4, { counters: true }),
      state([egressAny, ingressIcmp]),
      lab.config,
    )
    expect(rows.find((r) => r.ruleId === ingressIcmp.id)).toMatchObject({
      chain: IN,
      role: 'security-group-rule',
      portId: VM,
    })
    expect(rows.find((r) => r.ruleId === ingressIcmp.id)!.packets).toBeGreaterThan(0)
    expect(rows.find((r) => r.ruleId === egressAny.id)!.packets).toBeGreaterThan(0)
    expect(rows.filter((r) => r.role === 'state-established' && r.chain === IN)[0]!.packets).toBeGreaterThan(0)
    // the kernel holds exactly the compiler's output
    const desired = toStateResult(compileHost(state([egressAny, ingressIcmp]), lab.config))
    expect(renderOwnedView(await lab.host.iptablesSave(4))).toBe(desired.ipv4)
    expect(isInSync(await diffDesired(lab.host, desired))).toBe(true)
  })

  it('IP and MAC spoofing from the VM are dropped; an allowed address pair is allowed, exactly', async () => {
    const ns = lab.vmNs(VM)
    lab.sh(ns, ['ip', 'addr', 'add', '192.168.1.99/32', 'dev', 'eth0'])
    lab.sh(ns, ['ip', 'addr', 'add', '192.168.1.98/32', 'dev', 'eth0'])
    const drops = await lab.counter(SPOOF, 'Drop traffic without an IP/MAC allow rule')
    expect(lab.ping(VM, PEER_IP, 2, ['-I', '192.168.1.99'])).toBe(0)
    expect(await lab.counter(SPOOF, 'Drop traffic without an IP/MAC allow rule')).toBeGreaterThan(drops)
    await lab.apply(state([egressAny, ingressIcmp], [{ ip_address: '192.168.1.99' }]))
    expect(lab.ping(VM, PEER_IP, 2, ['-I', '192.168.1.99'])).toBe(2)
    expect(lab.ping(VM, PEER_IP, 2, ['-I', '192.168.1.98'])).toBe(0)
    // MAC spoofing: the right IP from another MAC
    lab.sh(ns, ['ip', 'link', 'set', 'eth0', 'address', 'fa:16:3e:66:66:66'])
    try {
      lab.sh(ns, ['ip', 'neigh', 'flush', 'all'])
      expect(lab.ping(VM, PEER_IP, 2)).toBe(0)
    } finally {
      lab.sh(ns, ['ip', 'link', 'set', 'eth0', 'address', VM_MAC])
    }
    expect(lab.ping(VM, PEER_IP, 2)).toBe(2)
  })

  it('removing a rule cuts the flow it allowed (conntrack deletion); without the deletion it would go on', async () => {
    await lab.apply(state([egressAny, ingressIcmp]))
    for (const keepConntrack of [true, false]) {
      // one ping process = one ICMP flow (same id) for its whole life
      const flow = lab.background(PEER, ['ping', '-n', '-i', '0.1', '-c', '40', '-W', '1', VM_IP])
      await new Promise((r) => setTimeout(r, 1000))
      await lab.apply(state([egressAny]), { keepConntrack })
      const out = await flow.done
      const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]))
      const last = Math.max(...seqs)
      if (keepConntrack) {
        // the established flow outlives the rule: that is why Neutron deletes conntrack entries
        expect(last).toBeGreaterThanOrEqual(38)
      } else {
        expect(seqs.length).toBeGreaterThan(3)
        expect(last).toBeLessThan(25)
      }
      await lab.apply(state([egressAny, ingressIcmp]))
    }
  })
})
