/**
 * native/sgwall-gai.so, the LD_PRELOAD shim RealHost gives iptables-restore:
 * - it is built (scripts/build-native.sh, run by `npm ci`/`npm run build`);
 * - with it, a restore of port matches opens no NETLINK_ROUTE socket (without it,
 *   glibc dumps every address of the namespace for each `-m udp` port: the cost
 *   that made a full apply on a 4000-device host take a minute);
 * - the kernel ends up with exactly the rules a restore without the shim writes,
 *   on both backends and both families.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultRestorePreload, type IptablesBackend, RealHost } from '../../src/host/real-host.js'
import { addNetns, delNetns, inNs, kernelSkipReason, sh, uniqueName } from './helpers.js'

const skip = kernelSkipReason(['iptables-legacy-restore', 'strace'])
if (skip) console.warn(`skipping restore-shim kernel tests: ${skip}`)

function doc(family: 4 | 6): string {
  const net = family === 4 ? '10.0.0.0/24' : '2001:db8::/64'
  const bcast = family === 4 ? '255.255.255.255/32' : 'ff02::1:2/128'
  return [
    '*filter',
    ':neutron-openvswi-ishim - [0:0]',
    `-A neutron-openvswi-ishim -d ${bcast} -p udp -m udp --sport 67 --dport 68 -j RETURN`,
    `-A neutron-openvswi-ishim -s ${net} -p udp -m udp --dport 1000:1100 -j RETURN`,
    `-A neutron-openvswi-ishim -s ${net} -p udp -m udp --sport 0:65535 -j RETURN`,
    `-A neutron-openvswi-ishim -s ${net} -p udp -m udp --dport 65535 -j RETURN`,
    `-A neutron-openvswi-ishim -s ${net} -p udp -m udp --dport 0 -j RETURN`,
    `-A neutron-openvswi-ishim -s ${net} -p udp -m udp --dport 1:65534 -j RETURN`,
    `-A neutron-openvswi-ishim -s ${net} -p udp -m udp ! --dport 53 -j RETURN`,
    `-A neutron-openvswi-ishim -p tcp -m tcp --sport 22 --dport 1024:65535 -j RETURN`,
    '-A neutron-openvswi-ishim -j DROP',
    'COMMIT',
    '',
  ].join('\n')
}

/** Our chain's rules as iptables-save prints them. */
function ours(save: string): string[] {
  return save.split('\n').filter((l) => l.startsWith('-A neutron-openvswi-ishim'))
}

describe.skipIf(skip !== null)('iptables-restore LD_PRELOAD shim', () => {
  const withShim = uniqueName('g')
  const without = uniqueName('g')
  beforeAll(() => {
    addNetns(withShim)
    addNetns(without)
    // a few devices with addresses, so an address dump has something to return
    for (const ns of [withShim, without]) {
      const batch = Array.from(
        { length: 20 },
        (_, i) => `link add d${i} type bridge\naddr add 10.9.${i}.1/24 dev d${i}`,
      )
      inNs(ns, ['ip', '-batch', '-'], `${batch.join('\n')}\n`)
    }
  })
  afterAll(() => {
    delNetns(withShim)
    delNetns(without)
  })

  it('is built and found by RealHost', () => {
    const path = defaultRestorePreload()
    expect(path, 'native/build/sgwall-gai.so missing: run scripts/build-native.sh (needs gcc)').not.toBeNull()
    expect(readFileSync(path!).subarray(0, 4).toString('latin1')).toBe('\x7fELF')
  })

  it('a restore with the shim opens no NETLINK_ROUTE socket; without it, one per udp port at least', () => {
    const path = defaultRestorePreload()
    expect(path).not.toBeNull()
    const socketsOf = (preload: boolean): number => {
      const file = `/tmp/sgwall-shim-${process.pid}-${preload ? 'y' : 'n'}.trace`
      const ns = preload ? withShim : without
      const argv = ['ip', 'netns', 'exec', ns]
      if (preload) argv.push('env', `LD_PRELOAD=${path!}`)
      argv.push('strace', '-f', '-e', 'trace=socket', '-o', file, 'iptables-nft-restore', '--noflush')
      sh(argv, doc(4))
      const text = readFileSync(file, 'utf8')
      sh(['rm', '-f', file])
      return text.split('\n').filter((l) => l.includes('NETLINK_ROUTE')).length
    }
    expect(socketsOf(true)).toBe(0)
    // 2 + 1 + 1 + 1 + 1 + 1 + 1 numeric udp ports, each a getaddrinfo with AI_ADDRCONFIG
    expect(socketsOf(false)).toBeGreaterThanOrEqual(8)
  })

  it.each(['nft', 'legacy'] as IptablesBackend[])(
    'iptables-%s: the kernel holds the same rules with and without the shim, both families',
    async (backend) => {
      const a = new RealHost({ netns: withShim, backend })
      const b = new RealHost({ netns: without, backend, restorePreload: null })
      for (const family of [4, 6] as const) {
        await a.iptablesRestore(family, doc(family))
        await b.iptablesRestore(family, doc(family))
        const got = ours(await a.iptablesSave(family))
        expect(got).toHaveLength(9)
        expect(got).toEqual(ours(await b.iptablesSave(family)))
        expect(got.join('\n')).toContain('--sport 67 --dport 68')
        expect(got.join('\n')).toContain('--dport 1000:1100')
      }
    },
  )
})
