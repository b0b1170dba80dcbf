import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  brqName,
  CHAIN_NAME_MAX,
  DEVICE_NAME_MAX,
  IPSET_NAME_MAX,
  ipsetName,
  portChainName,
  qbrName,
  qvbName,
  qvoName,
  tapName,
  wrappedChain,
} from './names.js'

describe('kernel names', () => {
  it('derive Neutron spellings', () => {
    const id = 'c0a350e0-4318-4a8e-9d3b-5e6f7a8b9c0d'
    expect(tapName(id)).toBe('tapc0a350e0-43')
    expect(qbrName(id)).toBe('qbrc0a350e0-43')
    expect(qvbName(id)).toBe('qvbc0a350e0-43')
    expect(qvoName(id)).toBe('qvoc0a350e0-43')
    expect(brqName('5486845f-a199-4cce-bd66-10c4a3f7c8f3')).toBe('brq5486845f-a1')
    expect(portChainName('iptables_hybrid', 'i', id)).toBe('neutron-openvswi-ic0a350e0-4')
    expect(portChainName('iptables', 's', id)).toBe('neutron-linuxbri-sc0a350e0-4')
    expect(wrappedChain('iptables_hybrid', 'sg-fallback')).toBe('neutron-openvswi-sg-fallback')
    expect(ipsetName('IPv4', '5f1e2d3c-4b5a-4968-8776-aaaaaaaaaaaa')).toBe('NIPv45f1e2d3c-4b5a-4968-8776-')
  })

  it('stay within the kernel limits for any UUID', () => {
    fc.assert(
      fc.property(fc.uuid(), (id) => {
        for (const n of [tapName(id), qbrName(id), qvbName(id), qvoName(id), brqName(id)])
          expect(n.length).toBeLessThanOrEqual(DEVICE_NAME_MAX)
        for (const k of ['i', 'o', 's'] as const)
          for (const d of ['iptables_hybrid', 'iptables'] as const)
            expect(portChainName(d, k, id).length).toBeLessThanOrEqual(CHAIN_NAME_MAX)
        expect(ipsetName('IPv6', id).length).toBeLessThanOrEqual(IPSET_NAME_MAX)
      }),
    )
  })

  it('refuse characters that must never reach a restore document', () => {
    expect(() => tapName('a b"c')).toThrow(/bad device name/)
    expect(() => portChainName('iptables', 'i', 'x;y')).toThrow(/bad chain name/)
  })
})
