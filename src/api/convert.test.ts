import { describe, expect, it } from 'vitest'
import { convertBoolean, convertPort, convertProtocol, parseAddress, parsePrefix } from './convert.js'
import { NeutronError } from './neutron-error.js'

const typeOf = (f: () => unknown) => {
  try {
    f()
    return 'ok'
  } catch (e) {
    return e instanceof NeutronError ? e.type : 'other'
  }
}

describe('convert', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1/32', '10.0.0.1/32'],
    ['10.0.0.1/24', '10.0.0.1/24', '10.0.0.0/24'],
    ['0.0.0.0/0', '0.0.0.0/0', '0.0.0.0/0'],
    ['2001:DB8::1', '2001:db8::1/128', '2001:db8::1/128'],
    ['2001:db8:0:0::5/64', '2001:db8::5/64', '2001:db8::/64'],
    ['::/0', '::/0', '::/0'],
  ])('parsePrefix(%s)', (input, text, network) => {
    expect(parsePrefix(input)).toMatchObject({ text, network })
  })

  it.each([
    'garbage',
    '10.0.0.0/33',
    '192.168.1./24',
    '256',
    '3232235777',
    '010.0.0.1',
    '10.0.0.1/',
    '10.0.0.1/08',
    'fe80::1%eth0',
    '::/129',
  ])('parsePrefix rejects %s', (input) => expect(parsePrefix(input)).toBeNull())

  it('parses plain addresses canonically (RFC 5952 for IPv6)', () => {
    expect(parseAddress('2001:0DB8:0000::0001')).toEqual({ family: 'IPv6', text: '2001:db8::1' })
    expect(parseAddress('10.0.0.1/32')).toBeNull()
    expect(parseAddress(5)).toBeNull()
  })

  it('keeps protocol numbers as sent and lower-cases names', () => {
    expect(convertProtocol('TCP')).toBe('tcp')
    expect(convertProtocol(6)).toBe('6')
    expect(convertProtocol('0')).toBe('0')
    expect(convertProtocol(null)).toBeNull()
    for (const bad of ['06', '256', -1, 'any', '', ['tcp'], 1.5, true])
      expect(typeOf(() => convertProtocol(bad))).toBe('SecurityGroupRuleInvalidProtocol')
  })

  it('converts ports like Neutron (floats truncated, strings parsed)', () => {
    expect(convertPort(22.5)).toBe(22)
    expect(convertPort('80')).toBe(80)
    expect(convertPort(null)).toBeNull()
    for (const bad of [-1, 65536, 'abc', '22.5', true, {}])
      expect(typeOf(() => convertPort(bad))).toBe('SecurityGroupInvalidPortValue')
  })

  it('converts booleans from the accepted spellings only', () => {
    for (const t of [true, 'true', 'True', 1, '1']) expect(convertBoolean(t)).toBe(true)
    for (const f of [false, 'false', 'FALSE', 0, '0']) expect(convertBoolean(f)).toBe(false)
    expect(typeOf(() => convertBoolean('maybe'))).toBe('InvalidInput')
  })
})
