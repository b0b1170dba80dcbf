import { describe, expect, it } from 'vitest'
import { AppError } from '../errors.js'
import { checkLinkOp, conntrackDeleteArgs, conntrackFilterMatches, parseConntrackList } from './host.js'
import { failingLineNumber, renderLinkOp } from './real-host.js'

const LIST = `ipv6     10 udp      17 99 src=2001:db8::1 dst=2001:db8:0::2 sport=1 dport=2 [UNREPLIED] src=2001:db8::2 dst=2001:db8::1 sport=2 dport=1 mark=0 zone=7 use=1
ipv4     2 tcp      6 99 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [ASSURED] mark=0 zone=4097 use=1
ipv4     2 icmp     1 29 src=10.0.0.3 dst=10.0.0.2 type=8 code=0 id=5 src=10.0.0.2 dst=10.0.0.3 type=0 code=0 id=5 mark=0 use=1
`

describe('conntrack deletions', () => {
  const entries = parseConntrackList(LIST)
  it('parses the original tuple and zone of each entry', () => {
    expect(entries).toEqual([
      { family: 'ipv6', protocol: 17, source: '2001:db8:0:0:0:0:0:1', destination: '2001:db8:0:0:0:0:0:2', zone: 7 },
      { family: 'ipv4', protocol: 6, source: '10.0.0.1', destination: '10.0.0.2', zone: 4097 },
      { family: 'ipv4', protocol: 1, source: '10.0.0.3', destination: '10.0.0.2', zone: 0 },
    ])
  })
  it('matches filters as conntrack -D does', () => {
    const m = (d: Parameters<typeof conntrackFilterMatches>[0]) =>
      entries.filter((e) => conntrackFilterMatches(d, e)).length
    expect(m({ family: 'ipv4', destination: '10.0.0.2', zone: 4097 })).toBe(1)
    expect(m({ family: 'ipv4', destination: '10.0.0.2' })).toBe(2)
    expect(m({ family: 'ipv4', protocol: 'tcp', destination: '10.0.0.2', zone: 4097 })).toBe(1)
    expect(m({ family: 'ipv4', protocol: 'udp', destination: '10.0.0.2', zone: 4097 })).toBe(0)
    expect(m({ family: 'ipv6', source: '2001:db8::1', zone: 7 })).toBe(1)
    expect(m({ family: 'ipv6', source: '2001:db8::1', zone: 8 })).toBe(0)
    expect(m({ family: 'ipv4', protocol: 'ip', destination: '10.0.0.2' })).toBe(2) // unknown name: let the kernel decide
  })
  it('renders -D arguments and rejects what is not an address or zone', () => {
    expect(conntrackDeleteArgs({ family: 'ipv4', protocol: 'tcp', destination: '10.0.0.2', zone: 4097 })).toEqual([
      '-D',
      '-p',
      'tcp',
      '-f',
      'ipv4',
      '-d',
      '10.0.0.2',
      '-w',
      '4097',
    ])
    expect(() => conntrackDeleteArgs({ family: 'ipv4', source: '10.0.0.1; reboot' })).toThrow(AppError)
    expect(() => conntrackDeleteArgs({ family: 'ipv4', zone: 70000 })).toThrow(/zone/)
  })
})

describe('link operations', () => {
  it('render as ip -batch lines', () => {
    expect(renderLinkOp({ op: 'add-bridge', name: 'qbrc0a350e0-43', mtu: 1450 }).join(' ')).toBe(
      'link add qbrc0a350e0-43 mtu 1450 type bridge stp_state 0 forward_delay 0 mcast_snooping 0',
    )
    expect(renderLinkOp({ op: 'add-veth', name: 'qvbx', peer: 'qvox', mtu: 1450 }).join(' ')).toBe(
      'link add qvbx mtu 1450 type veth peer name qvox mtu 1450',
    )
  })
  it('reject names that could smuggle arguments', () => {
    expect(() => checkLinkOp({ op: 'delete', name: 'eth0 type' })).toThrow(/not a device name/)
    expect(() => checkLinkOp({ op: 'delete', name: 'abcdefghijklmnop' })).toThrow(/not a device name/)
    expect(() => checkLinkOp({ op: 'set', name: 'eth0', address: 'zz:00:00:00:00:00' })).toThrow(/MAC/)
    expect(() => checkLinkOp({ op: 'addr-add', name: 'eth0', cidr: '300.1.1.1/32' })).toThrow(/address/)
  })
})

describe('failing line numbers of restore tools', () => {
  it.each([
    ['iptables-restore: line 7 failed', 7],
    ["iptables-nft-restore v1.8.9 (nf_tables): Chain 'x' does not exist\nError occurred at line: 4", 4],
    ['ipset v7.17: Error in line 3: The set with the given name does not exist', 3],
    ['RTNETLINK answers: File exists\nCommand failed -:2', 2],
    ['something else', null],
  ])('%s', (stderr, n) => {
    expect(failingLineNumber(stderr)).toBe(n)
  })
})
