/**
 * No blink (Neutron's `preventing_firewall_blink`): while flows run that both the
 * old and the new state allow, large changes are applied back and forth; not one
 * packet of them is dropped, and not one packet of a flow both states forbid gets
 * through. Each UDP datagram comes from a fresh socket, so every packet is a NEW
 * connection that must traverse the security-group rules being rewritten.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HostState, Port } from '../../src/model/types.js'
import { group, kernelSkipReason, PacketLab, port, sgRule } from './helpers.js'

const skip = kernelSkipReason(['python3'])
if (skip) console.warn(`skipping no-blink kernel test: ${skip}`)

const VM = 'd0a350e0-4318-4a8e-9d3b-5e6f7a8b9c0d'
const VM_IP = '192.168.7.12'
const PEER = 'e1000000-0000-4000-8000-000000000001'
const PEER_IP = '192.168.7.20'
const SG = 'afe9b0d1-468b-4583-ab27-0dfe0a2bb00e'

const base = [sgRule('egress', null), sgRule('ingress', 'icmp'), sgRule('ingress', 'udp', { min: 7000, max: 7000 })]
const variantA = Array.from({ length: 150 }, (_, i) => sgRule('ingress', 'tcp', { min: 10000 + i, max: 10000 + i }))
const variantB = Array.from({ length: 150 }, (_, i) =>
  sgRule('ingress', 'tcp', { min: 20000 + i, max: 20000 + i, prefix: `10.${i}.0.0/16` }),
)

/** Extra ports (not plugged) so that each apply rewrites many chains. */
function extraPorts(n: number, offset: number): Port[] {
  return Array.from({ length: n }, (_, i) => {
    const h = (i + offset).toString(16).padStart(8, '0')
    return port(
      `${h}-0000-4000-8000-00000000aaaa`,
      'fa:16:3e:aa:00:01',
      [`10.77.${Math.floor(i / 200)}.${(i % 200) + 1}`],
      [SG],
    )
  })
}

function state(variant: 'A' | 'B'): HostState {
  const extra = extraPorts(60, variant === 'A' ? 0 : 30)
  return {
    security_groups: [group(SG, [...base, ...(variant === 'A' ? variantA : variantB)])],
    members: { [SG]: { IPv4: [VM_IP, ...extra.flatMap((p) => p.fixed_ips)] } },
    ports: [
      port(VM, 'fa:16:3e:c3:ea:d6', [VM_IP], [SG]),
      port(PEER, 'fa:16:3e:00:00:02', [PEER_IP], [], { port_security_enabled: false }),
      ...extra,
    ],
  }
}

const RECEIVER = `
import socket, select, time
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(('0.0.0.0', 7000))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(('0.0.0.0', 7001))
n = {7000: 0, 7001: 0}; last = time.time(); start = time.time()
while time.time() - last < 2.5 and time.time() - start < 40:
    r, _, _ = select.select([a, b], [], [], 0.2)
    for s in r:
        s.recv(100); n[s.getsockname()[1]] += 1; last = time.time()
print(n[7000], n[7001], flush=True)
`
const SENDER = `
import socket, time, sys
count = int(sys.argv[1])
for i in range(count):
    for port in (7000, 7001):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b'x', ('${VM_IP}', port)); s.close()
    time.sleep(0.004)
print(count, flush=True)
`

describe.skipIf(skip !== null).each([['linux', 'nft'] as const, ['linux', 'legacy'] as const])(
  'no blink on br-int %s, iptables-%s',
  (brInt, backend) => {
    const root = mkdtempSync(join(tmpdir(), 'sgw-'))
    const lab = new PacketLab(`nb${backend[0]}${process.pid % 10000}`, brInt, backend)
    beforeAll(async () => {
      await lab.up(
        [
          { id: VM, mac_address: 'fa:16:3e:c3:ea:d6', fixed_ips: [VM_IP] },
          { id: PEER, mac_address: 'fa:16:3e:00:00:02', fixed_ips: [PEER_IP] },
        ],
        root,
      )
    })
    afterAll(async () => {
      await lab.down(root)
      rmSync(root, { recursive: true, force: true })
    })

    it('continuous allowed flows lose nothing and forbidden ones get nothing through big applies', async () => {
      await lab.apply(state('A'))
      expect(lab.ping(PEER, VM_IP, 2)).toBe(2) // warm up ARP
      const receiver = lab.background(VM, ['python3', '-c', RECEIVER])
      await new Promise((r) => setTimeout(r, 500))
      const sent = 600
      const ping = lab.background(PEER, ['ping', '-n', '-q', '-i', '0.005', '-c', '800', VM_IP])
      const sender = lab.background(PEER, ['python3', '-c', SENDER, String(sent)])
      const applies: string[] = []
      for (let i = 0; i < 6; i++) {
        const r = await lab.apply(state(i % 2 === 0 ? 'B' : 'A'))
        applies.push(`${r.plan.chainChanges.length} chains in ${Math.round(r.timings.write)} ms`)
      }
      expect(Number((await sender.done).trim())).toBe(sent)
      const pingOut = await ping.done
      const [ok, forbidden] = (await receiver.done).trim().split(' ').map(Number)
      console.log(
        `no-blink ${brInt}/${backend}: applies ${applies.join(', ')}; ping: ${/\d+% packet loss/.exec(pingOut)?.[0]}`,
      )
      expect(pingOut).toContain(' 0% packet loss')
      expect(ok).toBe(sent)
      expect(forbidden).toBe(0)
    })
  },
)
