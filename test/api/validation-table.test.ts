/**
 * The validation table of shared/spec/neutron-api.md §12 (observed on Neutron 21.0.0),
 * as data: request → status, error type, message (exact where the spec quotes it).
 * Caller: non-admin `demo`; `alt` is another project; `admin` has the admin role.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Caller, harness } from './helpers.js'

const PROTO_LIST =
  "[None, 'ah', 'dccp', 'egp', 'esp', 'gre', 'hopopt', 'icmp', 'igmp', 'ip', 'ipip', 'ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route', 'ospf', 'pgm', 'rsvp', 'sctp', 'tcp', 'udp', 'udplite', 'vrrp']"
const badProto = (v: string) =>
  `Security group rule protocol ${v} not supported. Only protocol values ${PROTO_LIST} and integer representations [0 to 255] are supported.`
const U = '00000000-1111-4222-8333-444444444444'

interface Row {
  name: string
  method?: string
  path?: string
  /** For rule rows: merged into {security_group_id: sg, direction: ingress}. */
  rule?: Record<string, unknown>
  body?: unknown
  status: number
  type?: string
  message?: string
  stored?: Record<string, unknown>
  /** Rule rows that need their own group (so earlier rows cannot make them duplicates). */
  fresh?: boolean
}

const ruleRows: Row[] = [
  {
    name: 'protocol TCP lower-cased',
    rule: { protocol: 'TCP', port_range_min: 22, port_range_max: 22 },
    status: 201,
    stored: { protocol: 'tcp', port_range_min: 22, port_range_max: 22, ethertype: 'IPv4' },
  },
  {
    name: 'protocol "6" kept',
    rule: { protocol: '6', port_range_min: 22, port_range_max: 22 },
    status: 201,
    stored: { protocol: '6' },
  },
  {
    name: 'protocol 6 number → "6"',
    rule: { protocol: 6, port_range_min: 22, port_range_max: 22 },
    status: 201,
    stored: { protocol: '6' },
  },
  {
    name: 'protocol "06" (Neutron 500; we 400)',
    rule: { protocol: '06' },
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto('06'),
  },
  { name: 'protocol "0"', rule: { protocol: '0' }, status: 201, stored: { protocol: '0' } },
  { name: 'protocol "255"', rule: { protocol: '255' }, status: 201, stored: { protocol: '255' } },
  {
    name: 'protocol "256"',
    rule: { protocol: '256' },
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto('256'),
  },
  {
    name: 'protocol -1',
    rule: { protocol: -1 },
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto('-1'),
  },
  {
    name: 'protocol foo',
    rule: { protocol: 'foo' },
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto('foo'),
  },
  {
    name: 'protocol any',
    rule: { protocol: 'any' },
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto('any'),
  },
  {
    name: 'protocol ""',
    rule: { protocol: '' },
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto(''),
  },
  {
    name: 'protocol null',
    rule: { protocol: null, remote_ip_prefix: '10.1.0.0/16' },
    status: 201,
    stored: { protocol: null, remote_ip_prefix: '10.1.0.0/16', normalized_cidr: '10.1.0.0/16' },
  },
  {
    name: 'protocol ["tcp"] (Neutron 500; we 400)',
    rule: { protocol: ['tcp'] },
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto("['tcp']"),
  },
  {
    name: 'icmpv6 with IPv6',
    rule: { protocol: 'icmpv6', ethertype: 'IPv6' },
    status: 201,
    stored: { ethertype: 'IPv6', protocol: 'ipv6-icmp' },
  },
  {
    name: 'icmp with IPv6',
    rule: { protocol: 'icmp', ethertype: 'IPv6', remote_ip_prefix: '2001:db8::/32' },
    status: 201,
    stored: { protocol: 'ipv6-icmp', remote_ip_prefix: '2001:db8::/32', normalized_cidr: '2001:db8::/32' },
  },
  {
    name: '"1" with IPv6 → "58"',
    rule: { protocol: '1', ethertype: 'IPv6', remote_ip_prefix: '2001:db9::/32' },
    status: 201,
    stored: { protocol: '58' },
  },
  {
    name: 'icmpv6 with IPv4',
    rule: { protocol: 'icmpv6', ethertype: 'IPv4' },
    status: 400,
    type: 'SecurityGroupEthertypeConflictWithProtocol',
    message: 'Invalid ethertype IPv4 for protocol icmpv6.',
  },
  {
    name: 'ipv6-icmp with IPv4',
    rule: { protocol: 'ipv6-icmp', ethertype: 'IPv4' },
    status: 400,
    type: 'SecurityGroupEthertypeConflictWithProtocol',
    message: 'Invalid ethertype IPv4 for protocol ipv6-icmp.',
  },
  {
    name: '"58" with IPv4',
    rule: { protocol: '58', ethertype: 'IPv4' },
    status: 400,
    type: 'SecurityGroupEthertypeConflictWithProtocol',
    message: 'Invalid ethertype IPv4 for protocol 58.',
  },
  {
    name: 'ipv6-route with IPv4',
    rule: { protocol: 'ipv6-route', ethertype: 'IPv4' },
    status: 400,
    type: 'SecurityGroupEthertypeConflictWithProtocol',
    message: 'Invalid ethertype IPv4 for protocol ipv6-route.',
  },
  {
    name: '"43" with IPv4',
    rule: { protocol: '43', ethertype: 'IPv4' },
    status: 400,
    type: 'SecurityGroupEthertypeConflictWithProtocol',
    message: 'Invalid ethertype IPv4 for protocol 43.',
  },
  {
    name: 'ipv6-encap with IPv6',
    rule: { protocol: 'ipv6-encap', ethertype: 'IPv6' },
    status: 201,
    stored: { protocol: 'ipv6-encap', ethertype: 'IPv6' },
  },
  {
    name: 'tcp 22-22 with prefix',
    rule: { protocol: 'tcp', port_range_min: 22, port_range_max: 22, remote_ip_prefix: '10.2.0.0/16' },
    status: 201,
    stored: { remote_ip_prefix: '10.2.0.0/16', normalized_cidr: '10.2.0.0/16' },
  },
  {
    name: 'tcp "80"-"81" strings',
    rule: { protocol: 'tcp', port_range_min: '80', port_range_max: '81' },
    status: 201,
    stored: { port_range_min: 80, port_range_max: 81 },
  },
  {
    name: 'tcp 1-65535 → null/null',
    rule: { protocol: 'tcp', port_range_min: 1, port_range_max: 65535 },
    status: 201,
    stored: { protocol: 'tcp', port_range_min: null, port_range_max: null },
  },
  {
    name: 'tcp min only',
    rule: { protocol: 'tcp', port_range_min: 80 },
    status: 400,
    type: 'SecurityGroupInvalidPortRange',
    message: 'For TCP/UDP protocols, port_range_min must be <= port_range_max',
  },
  {
    name: 'tcp max only',
    rule: { protocol: 'tcp', port_range_max: 80 },
    status: 400,
    type: 'SecurityGroupInvalidPortRange',
    message: 'For TCP/UDP protocols, port_range_min must be <= port_range_max',
  },
  {
    name: 'tcp 90-80',
    rule: { protocol: 'tcp', port_range_min: 90, port_range_max: 80 },
    status: 400,
    type: 'SecurityGroupInvalidPortRange',
    message: 'For TCP/UDP protocols, port_range_min must be <= port_range_max',
  },
  {
    name: 'tcp 0-0',
    rule: { protocol: 'tcp', port_range_min: 0, port_range_max: 0 },
    status: 400,
    type: 'SecurityGroupInvalidPortValue',
    message: 'Invalid value for port 0',
  },
  {
    name: 'tcp 0-80',
    rule: { protocol: 'tcp', port_range_min: 0, port_range_max: 80 },
    status: 400,
    type: 'SecurityGroupInvalidPortValue',
    message: 'Invalid value for port 0',
  },
  {
    name: 'tcp 65536',
    rule: { protocol: 'tcp', port_range_min: 65536, port_range_max: 65536 },
    status: 400,
    type: 'SecurityGroupInvalidPortValue',
    message: 'Invalid value for port 65536',
  },
  {
    name: 'tcp -1',
    rule: { protocol: 'tcp', port_range_min: -1, port_range_max: 1 },
    status: 400,
    type: 'SecurityGroupInvalidPortValue',
    message: 'Invalid value for port -1',
  },
  {
    name: 'tcp abc',
    rule: { protocol: 'tcp', port_range_min: 'abc', port_range_max: 1 },
    status: 400,
    type: 'SecurityGroupInvalidPortValue',
    message: 'Invalid value for port abc',
  },
  {
    name: 'tcp 22.5',
    rule: { protocol: 'tcp', port_range_min: 22.5, port_range_max: 23 },
    status: 201,
    stored: { port_range_min: 22, port_range_max: 23 },
  },
  {
    name: 'protocol "6" with 443',
    rule: { protocol: '6', port_range_min: 443, port_range_max: 443 },
    status: 201,
    stored: { protocol: '6', port_range_min: 443 },
  },
  {
    name: 'udp 1000-2000',
    rule: { protocol: 'udp', port_range_min: 1000, port_range_max: 2000 },
    status: 201,
    stored: { protocol: 'udp' },
  },
  {
    name: 'sctp 9',
    rule: { protocol: 'sctp', port_range_min: 9, port_range_max: 9 },
    status: 201,
    stored: { protocol: 'sctp' },
  },
  {
    name: 'dccp 9',
    rule: { protocol: 'dccp', port_range_min: 9, port_range_max: 9 },
    status: 201,
    stored: { protocol: 'dccp' },
  },
  {
    name: 'udplite 9',
    rule: { protocol: 'udplite', port_range_min: 9, port_range_max: 9 },
    status: 201,
    stored: { protocol: 'udplite' },
  },
  {
    name: '"132" 10',
    rule: { protocol: '132', port_range_min: 10, port_range_max: 10 },
    status: 201,
    stored: { protocol: '132' },
  },
  {
    name: 'gre with ports',
    rule: { protocol: 'gre', port_range_min: 1, port_range_max: 1 },
    status: 400,
    type: 'SecurityGroupInvalidProtocolForPort',
    message: 'Ports cannot be specified for protocol 47. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.',
  },
  {
    name: '"47" with ports',
    rule: { protocol: '47', port_range_min: 1, port_range_max: 1 },
    status: 400,
    type: 'SecurityGroupInvalidProtocolForPort',
    message: 'Ports cannot be specified for protocol 47. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.',
  },
  {
    name: 'ports without protocol',
    rule: { port_range_min: 22, port_range_max: 22 },
    status: 400,
    type: 'SecurityGroupProtocolRequiredWithPorts',
    message: 'Must also specify protocol if port range is given.',
  },
  {
    name: '1-65535 without protocol',
    rule: { port_range_min: 1, port_range_max: 65535, remote_ip_prefix: '10.3.0.0/16' },
    status: 201,
    stored: { protocol: null, port_range_min: null },
  },
  {
    name: 'icmp 8/0',
    rule: { protocol: 'icmp', port_range_min: 8, port_range_max: 0 },
    status: 201,
    stored: { port_range_min: 8, port_range_max: 0 },
  },
  {
    name: 'icmp type 3',
    rule: { protocol: 'icmp', port_range_min: 3 },
    status: 201,
    stored: { port_range_min: 3, port_range_max: null },
  },
  {
    name: 'icmp 0/0',
    rule: { protocol: 'icmp', port_range_min: 0, port_range_max: 0 },
    status: 201,
    stored: { port_range_min: 0, port_range_max: 0 },
  },
  {
    name: 'icmp code without type',
    rule: { protocol: 'icmp', port_range_max: 0 },
    status: 400,
    type: 'SecurityGroupMissingIcmpType',
    message: 'ICMP code (port-range-max) 0 is provided but ICMP type (port-range-min) is missing.',
  },
  {
    name: 'icmp type 256',
    rule: { protocol: 'icmp', port_range_min: 256 },
    status: 400,
    type: 'SecurityGroupInvalidIcmpValue',
    message: 'Invalid value for ICMP type (port_range_min) 256. It must be 0 to 255.',
  },
  {
    name: 'icmp code 256',
    rule: { protocol: 'icmp', port_range_min: 8, port_range_max: 256 },
    status: 400,
    type: 'SecurityGroupInvalidIcmpValue',
    message: 'Invalid value for ICMP code (port_range_max) 256. It must be 0 to 255.',
  },
  {
    name: 'icmp 255/255',
    rule: { protocol: 'icmp', port_range_min: 255, port_range_max: 255 },
    status: 201,
    stored: { port_range_min: 255 },
  },
  {
    name: 'icmp 1/65535 canonicalised',
    rule: { protocol: 'icmp', port_range_min: 1, port_range_max: 65535, remote_ip_prefix: '10.4.0.0/16' },
    status: 201,
    stored: { port_range_min: null, port_range_max: null },
  },
  {
    name: '"1" type 8',
    rule: { protocol: '1', port_range_min: 8, port_range_max: 0, remote_ip_prefix: '10.5.0.0/16' },
    status: 201,
    stored: { protocol: '1' },
  },
  {
    name: 'ipv6-icmp 135',
    rule: { protocol: 'ipv6-icmp', ethertype: 'IPv6', port_range_min: 135 },
    status: 201,
    stored: { port_range_min: 135 },
  },
  { name: 'ethertype ipv6', rule: { ethertype: 'ipv6', protocol: 'udp' }, status: 201, stored: { ethertype: 'IPv6' } },
  {
    name: 'ethertype IPv5',
    rule: { ethertype: 'IPv5' },
    status: 400,
    type: 'SecurityGroupRuleInvalidEtherType',
    message: "Security group rule for ethertype 'IPv5' not supported. Allowed values are ['IPv4', 'IPv6'].",
  },
  {
    name: 'ethertype null',
    rule: { ethertype: null },
    status: 400,
    type: 'SecurityGroupRuleInvalidEtherType',
    message: "Security group rule for ethertype 'None' not supported. Allowed values are ['IPv4', 'IPv6'].",
  },
  {
    name: 'ethertype omitted',
    rule: { protocol: 'udp', port_range_min: 5, port_range_max: 5 },
    status: 201,
    stored: { ethertype: 'IPv4' },
  },
  {
    name: 'prefix 10.0.0.1 → /32',
    rule: { protocol: 'tcp', remote_ip_prefix: '10.0.0.1' },
    status: 201,
    stored: { remote_ip_prefix: '10.0.0.1/32', normalized_cidr: '10.0.0.1/32' },
  },
  {
    name: 'prefix 10.0.0.1/24 kept',
    rule: { protocol: 'tcp', remote_ip_prefix: '10.0.0.1/24' },
    status: 201,
    stored: { remote_ip_prefix: '10.0.0.1/24', normalized_cidr: '10.0.0.0/24' },
  },
  {
    name: 'prefix 2001:db8::1',
    rule: { protocol: 'tcp', ethertype: 'IPv6', remote_ip_prefix: '2001:db8::1' },
    status: 201,
    stored: { remote_ip_prefix: '2001:db8::1/128', normalized_cidr: '2001:db8::1/128' },
  },
  {
    name: 'prefix 2001:DB8::/64',
    rule: { protocol: 'udp', ethertype: 'IPv6', remote_ip_prefix: '2001:DB8::/64' },
    status: 201,
    stored: { remote_ip_prefix: '2001:db8::/64' },
  },
  {
    name: 'IPv6 prefix with IPv4',
    rule: { protocol: 'tcp', remote_ip_prefix: '2001:db8::/64' },
    status: 400,
    type: 'SecurityGroupRuleParameterConflict',
    message: 'Conflicting value ethertype IPv4 for CIDR 2001:db8::/64',
  },
  {
    name: 'IPv4 prefix with IPv6',
    rule: { protocol: 'tcp', ethertype: 'IPv6', remote_ip_prefix: '10.0.0.0/8' },
    status: 400,
    type: 'SecurityGroupRuleParameterConflict',
    message: 'Conflicting value ethertype IPv6 for CIDR 10.0.0.0/8',
  },
  {
    name: 'prefix garbage',
    rule: { remote_ip_prefix: 'garbage' },
    status: 400,
    type: 'InvalidCIDR',
    message: 'Invalid CIDR garbage given as IP prefix.',
  },
  {
    name: 'prefix /33',
    rule: { remote_ip_prefix: '10.0.0.0/33' },
    status: 400,
    type: 'InvalidCIDR',
    message: 'Invalid CIDR 10.0.0.0/33 given as IP prefix.',
  },
  {
    name: 'prefix 192.168.1./24',
    rule: { remote_ip_prefix: '192.168.1./24' },
    status: 400,
    type: 'InvalidCIDR',
    message: 'Invalid CIDR 192.168.1./24 given as IP prefix.',
  },
  {
    name: 'prefix 256',
    rule: { remote_ip_prefix: '256' },
    status: 400,
    type: 'InvalidCIDR',
    message: 'Invalid CIDR 256 given as IP prefix.',
  },
  {
    name: 'prefix 0.0.0.0/0 stored',
    rule: { protocol: 'tcp', port_range_min: 3, port_range_max: 3, remote_ip_prefix: '0.0.0.0/0' },
    status: 201,
    stored: { remote_ip_prefix: '0.0.0.0/0', normalized_cidr: '0.0.0.0/0' },
  },
  {
    name: 'prefix "" → null',
    rule: { protocol: 'tcp', port_range_min: 4, port_range_max: 4, remote_ip_prefix: '' },
    status: 201,
    stored: { remote_ip_prefix: null },
  },
  {
    name: 'prefix + remote group',
    rule: { remote_ip_prefix: '10.0.0.0/8', remote_group_id: '{sg2}' },
    status: 400,
    type: 'SecurityGroupMultipleRemoteEntites',
    message: 'Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.',
  },
  {
    name: 'remote group + address group',
    rule: { remote_group_id: '{sg2}', remote_address_group_id: U },
    status: 400,
    type: 'SecurityGroupMultipleRemoteEntites',
    message: 'Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.',
  },
  {
    name: 'remote group other',
    rule: { protocol: 'tcp', remote_group_id: '{sg2}' },
    status: 201,
    stored: { remote_group_id: '{sg2}' },
  },
  {
    name: 'remote group self',
    rule: { protocol: 'udp', remote_group_id: '{sg}' },
    status: 201,
    stored: { remote_group_id: '{sg}' },
  },
  {
    name: 'remote group missing',
    rule: { remote_group_id: U },
    status: 404,
    type: 'SecurityGroupNotFound',
    message: `Security group ${U} does not exist`,
  },
  {
    name: 'remote group abc',
    rule: { remote_group_id: 'abc' },
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group abc does not exist',
  },
  {
    name: 'remote address group missing',
    rule: { remote_address_group_id: U },
    status: 404,
    type: 'AddressGroupNotFound',
    message: `Address group ${U} could not be found.`,
  },
  {
    name: 'direction in',
    rule: { direction: 'in' },
    status: 400,
    type: 'HTTPBadRequest',
    message: 'Invalid input for direction. Reason: in is not in valid_values.',
  },
  {
    name: 'direction egress',
    rule: { direction: 'egress', protocol: 'tcp', port_range_min: 7, port_range_max: 7 },
    status: 201,
    stored: { direction: 'egress' },
  },
  {
    name: 'security group missing',
    rule: { security_group_id: U },
    status: 404,
    type: 'SecurityGroupNotFound',
    message: `Security group ${U} does not exist`,
  },
  {
    name: 'security group abc',
    rule: { security_group_id: 'abc' },
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group abc does not exist',
  },
  {
    name: 'unknown attribute',
    rule: { foo: 'bar' },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Unrecognized attribute(s) 'foo'",
  },
  {
    name: 'id in POST',
    rule: { id: '00000000-0000-0000-0000-000000000001' },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Attribute 'id' not allowed in POST",
  },
  {
    name: 'description hello',
    rule: { protocol: 'tcp', port_range_min: 8, port_range_max: 8, description: 'hello' },
    status: 201,
    stored: { description: 'hello' },
  },
  {
    name: 'description 256',
    rule: { protocol: 'tcp', description: 'x'.repeat(256) },
    status: 400,
    type: 'HTTPBadRequest',
    message: `Invalid input for description. Reason: '${'x'.repeat(256)}' exceeds maximum length of 255.`,
  },
  {
    name: 'bad port on a missing group reports the port',
    rule: { security_group_id: U, protocol: 'tcp', port_range_min: 90, port_range_max: 80 },
    status: 400,
    type: 'SecurityGroupInvalidPortRange',
  },
]

const otherRows: Row[] = [
  {
    name: 'direction omitted',
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: { security_group_rule: { security_group_id: '{sg}' } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Failed to parse request. Required attribute 'direction' not specified",
  },
  {
    name: 'security_group_id omitted',
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: { security_group_rule: {} },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Failed to parse request. Required attribute 'security_group_id' not specified",
  },
  {
    name: 'no envelope key',
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: {},
    status: 400,
    type: 'HTTPBadRequest',
    message: "Unable to find 'security_group_rule' in request body",
  },
  {
    name: 'not JSON',
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: 'this is not json',
    status: 400,
    type: 'MalformedRequestBody',
    message: 'Malformed request body: Cannot understand JSON.',
  },
  {
    name: 'empty body',
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: '',
    status: 400,
    type: 'HTTPBadRequest',
    message: 'Resource body required',
  },
  {
    name: 'JSON not an object',
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: '[1]',
    status: 400,
    type: 'HTTPBadRequest',
    message: 'Body contains invalid data',
  },
  {
    name: 'bulk empty list',
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: { security_group_rules: [] },
    status: 400,
    type: 'HTTPBadRequest',
    message: 'Resources required',
  },
  {
    name: 'GET unknown rule',
    method: 'GET',
    path: `/v2.0/security-group-rules/${U}`,
    status: 404,
    type: 'SecurityGroupRuleNotFound',
    message: `Security group rule ${U} does not exist`,
  },
  {
    name: 'DELETE unknown rule',
    method: 'DELETE',
    path: `/v2.0/security-group-rules/${U}`,
    status: 404,
    type: 'SecurityGroupRuleNotFound',
    message: `Security group rule ${U} does not exist`,
  },
  {
    name: 'create group name+description',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'probe-x', description: 'd' } },
    status: 201,
    stored: { name: 'probe-x', description: 'd', stateful: true, shared: false, revision_number: 1 },
  },
  {
    name: 'create group without name',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: {} },
    status: 201,
    stored: { name: '', description: '', stateful: true },
  },
  {
    name: 'create stateless',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'probe-sl', stateful: false } },
    status: 201,
    stored: { stateful: false },
  },
  {
    name: 'stateful "false"',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'probe-sl2', stateful: 'false' } },
    status: 201,
    stored: { stateful: false },
  },
  {
    name: 'stateful maybe',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p', stateful: 'maybe' } },
    status: 400,
    type: 'InvalidInput',
    message: "Invalid input for operation: 'maybe' cannot be converted to boolean.",
  },
  {
    name: 'name default',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'default' } },
    status: 409,
    type: 'SecurityGroupDefaultAlreadyExists',
    message: 'Default security group already exists.',
  },
  {
    name: 'name DeFault',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'DeFault' } },
    status: 409,
    type: 'SecurityGroupDefaultAlreadyExists',
    message: 'Default security group already exists.',
  },
  {
    name: 'name 256',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'n'.repeat(256) } },
    status: 400,
    type: 'HTTPBadRequest',
    message: `Invalid input for name. Reason: '${'n'.repeat(256)}' exceeds maximum length of 255.`,
  },
  {
    name: 'name 255',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'n'.repeat(255) } },
    status: 201,
  },
  {
    name: 'name 5',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 5 } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Invalid input for name. Reason: '5' is not a valid string.",
  },
  {
    name: 'rules in POST',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p', security_group_rules: [] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Attribute 'security_group_rules' not allowed in POST",
  },
  {
    name: 'id in group POST',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p', id: '00000000-0000-0000-0000-000000000002' } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Attribute 'id' not allowed in POST",
  },
  {
    name: 'shared in POST',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p', shared: true } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Attribute 'shared' not allowed in POST",
  },
  {
    name: 'tags in POST',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p', tags: ['a'] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Attribute 'tags' not allowed in POST",
  },
  {
    name: 'rename',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: { name: 'probe-sg2-renamed' } },
    status: 200,
    stored: { name: 'probe-sg2-renamed' },
  },
  {
    name: 'rename to default',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: { name: 'default' } },
    status: 409,
    type: 'SecurityGroupDefaultAlreadyExists',
    message: 'Default security group already exists.',
  },
  {
    name: 'rename the default group',
    method: 'PUT',
    path: '/v2.0/security-groups/{default_sg}',
    body: { security_group: { name: 'other' } },
    status: 409,
    type: 'SecurityGroupCannotUpdateDefault',
    message: 'Updating default security group not allowed.',
  },
  {
    name: 'PUT default name on default',
    method: 'PUT',
    path: '/v2.0/security-groups/{default_sg}',
    body: { security_group: { name: 'default' } },
    status: 409,
    type: 'SecurityGroupDefaultAlreadyExists',
    message: 'Default security group already exists.',
  },
  {
    name: 'default group description',
    method: 'PUT',
    path: '/v2.0/security-groups/{default_sg}',
    body: { security_group: { description: 'Default security group' } },
    status: 200,
    stored: { name: 'default' },
  },
  {
    name: 'PUT security_group_rules',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: { security_group_rules: [] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: 'Cannot update read-only attribute security_group_rules',
  },
  {
    name: 'stateful toggle unused',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: { stateful: false } },
    status: 200,
    stored: { stateful: false },
  },
  {
    name: 'stateful toggle back',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: { stateful: true } },
    status: 200,
    stored: { stateful: true },
  },
  {
    name: 'stateful toggle on used group',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg_used}',
    body: { security_group: { stateful: false } },
    status: 409,
    type: 'SecurityGroupInUse',
    message: 'Security Group {sg_used} in use.',
  },
  {
    name: 'same stateful on used group',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg_used}',
    body: { security_group: { stateful: true } },
    status: 200,
  },
  {
    name: 'PUT empty object',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: {} },
    status: 200,
  },
  {
    name: 'PUT tenant_id',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: { tenant_id: 'x' } },
    status: 400,
    type: 'HTTPBadRequest',
    message:
      "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges",
  },
  {
    name: 'delete used group',
    method: 'DELETE',
    path: '/v2.0/security-groups/{sg_used}',
    status: 409,
    type: 'SecurityGroupInUse',
    message: 'Security Group {sg_used} in use.',
  },
  {
    name: 'delete default (non-admin)',
    method: 'DELETE',
    path: '/v2.0/security-groups/{default_sg}',
    status: 409,
    type: 'SecurityGroupCannotRemoveDefault',
    message: 'Insufficient rights for removing default security group.',
  },
  {
    name: 'GET unknown group',
    method: 'GET',
    path: `/v2.0/security-groups/${U}`,
    status: 404,
    type: 'SecurityGroupNotFound',
    message: `Security group ${U} does not exist`,
  },
  {
    name: 'GET not-a-uuid',
    method: 'GET',
    path: '/v2.0/security-groups/not-a-uuid',
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group not-a-uuid does not exist',
  },
  {
    name: 'DELETE unknown group',
    method: 'DELETE',
    path: `/v2.0/security-groups/${U}`,
    status: 404,
    type: 'SecurityGroupNotFound',
    message: `Security group ${U} does not exist`,
  },
  {
    name: 'group for another project',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p', tenant_id: 'someoneelse' } },
    status: 400,
    type: 'HTTPBadRequest',
    message:
      "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges",
  },
  {
    name: 'tenant_id != project_id',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p', tenant_id: 'demo', project_id: 'x' } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "'project_id' and 'tenant_id' do not match",
  },
  {
    name: 'project_id own',
    method: 'POST',
    path: '/v2.0/security-groups',
    body: { security_group: { name: 'p-own', project_id: 'demo' } },
    status: 201,
    stored: { project_id: 'demo', tenant_id: 'demo' },
  },
  {
    name: 'filter unknown',
    method: 'GET',
    path: '/v2.0/security-groups?bogus=1',
    status: 400,
    type: 'HTTPBadRequest',
    message: "['bogus'] is invalid attribute for filtering",
  },
  {
    name: 'filter non-filter attr',
    method: 'GET',
    path: '/v2.0/security-groups?security_group_rules=x',
    status: 400,
    type: 'HTTPBadRequest',
    message: "['security_group_rules'] is invalid attribute for filtering",
  },
  {
    name: 'sort_key bogus',
    method: 'GET',
    path: '/v2.0/security-groups?sort_key=bogus&sort_dir=asc',
    status: 400,
    type: 'HTTPBadRequest',
    message: "['bogus'] is invalid attribute for sort_keys",
  },
  {
    name: 'sort_dir up',
    method: 'GET',
    path: '/v2.0/security-groups?sort_key=name&sort_dir=up',
    status: 400,
    type: 'HTTPBadRequest',
    message: "['up'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'",
  },
  {
    name: 'two sort keys one dir',
    method: 'GET',
    path: '/v2.0/security-groups?sort_key=name&sort_key=id&sort_dir=asc',
    status: 400,
    type: 'HTTPBadRequest',
    message: 'The number of sort_keys and sort_dirs must be same',
  },
  {
    name: 'limit -1',
    method: 'GET',
    path: '/v2.0/security-groups?limit=-1',
    status: 400,
    type: 'BadRequest',
    message: "Bad limit request: Limit must be an integer 0 or greater and not '-1'.",
  },
  {
    name: 'limit abc',
    method: 'GET',
    path: '/v2.0/security-groups?limit=abc',
    status: 400,
    type: 'BadRequest',
    message: "Bad limit request: Limit must be an integer 0 or greater and not 'abc'.",
  },
  {
    name: 'rules ?protocol=foo',
    method: 'GET',
    path: '/v2.0/security-group-rules?protocol=foo',
    status: 400,
    type: 'SecurityGroupRuleInvalidProtocol',
    message: badProto('foo'),
  },
  {
    name: 'rules ?port_range_min=abc',
    method: 'GET',
    path: '/v2.0/security-group-rules?port_range_min=abc',
    status: 400,
    type: 'SecurityGroupInvalidPortValue',
    message: 'Invalid value for port abc',
  },
  {
    name: 'groups ?stateful=False',
    method: 'GET',
    path: '/v2.0/security-groups?stateful=False',
    status: 400,
    type: 'HTTPBadRequest',
    message: "['stateful'] is invalid attribute for filtering",
  },
  {
    name: 'rules ?tags',
    method: 'GET',
    path: '/v2.0/security-group-rules?tags=a',
    status: 400,
    type: 'HTTPBadRequest',
    message: "['tags'] is invalid attribute for filtering",
  },
  {
    name: 'PUT on collection',
    method: 'PUT',
    path: '/v2.0/security-groups',
    body: {},
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group None does not exist',
  },
  {
    name: 'DELETE on collection',
    method: 'DELETE',
    path: '/v2.0/security-groups',
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group None does not exist',
  },
  {
    name: 'unknown collection',
    method: 'GET',
    path: '/v2.0/security-groupz',
    status: 404,
    type: 'HTTPNotFound',
    message: 'The resource could not be found.',
  },
  {
    name: 'PUT on a rule (Neutron 500; we 400)',
    method: 'PUT',
    path: '/v2.0/security-group-rules/{rule}',
    body: { security_group_rule: { description: 'x' } },
    status: 400,
    type: 'HTTPBadRequest',
    message: 'Cannot update read-only attribute description',
  },
  {
    name: 'port with unknown group',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', security_groups: [U] } },
    status: 404,
    type: 'SecurityGroupNotFound',
    message: `Security group ${U} does not exist`,
  },
  {
    name: 'port with group abc',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', security_groups: ['abc'] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Invalid input for security_groups. Reason: 'abc' is not a valid UUID.",
  },
  {
    name: 'port groups null',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', security_groups: null } },
    status: 201,
    stored: { security_groups: [], port_security_enabled: true },
  },
  {
    name: 'port groups []',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', security_groups: [] } },
    status: 201,
    stored: { security_groups: [], port_security_enabled: true },
  },
  {
    name: 'port without groups',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}' } },
    status: 201,
    stored: { security_groups: ['{default_sg}'], port_security_enabled: true },
  },
  {
    name: 'port stateful + stateless',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', security_groups: ['{sg}', '{sg_stateless}'] } },
    status: 409,
    type: 'SecurityGroupConflict',
    message:
      'Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.',
  },
  {
    name: 'port security off + group',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', port_security_enabled: false, security_groups: ['{sg}'] } },
    status: 400,
    type: 'PortSecurityAndIPRequiredForSecurityGroups',
    message: 'Port security must be enabled and port must have an IP address in order to use security groups.',
  },
  {
    name: 'port security off, no groups',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', port_security_enabled: false } },
    status: 201,
    stored: { security_groups: [], port_security_enabled: false },
  },
  {
    name: 'port security off + pairs',
    method: 'POST',
    path: '/v2.0/ports',
    body: {
      port: {
        network_id: '{net}',
        port_security_enabled: false,
        security_groups: [],
        allowed_address_pairs: [{ ip_address: '10.9.9.9' }],
      },
    },
    status: 409,
    type: 'AddressPairAndPortSecurityRequired',
    message: 'Port Security must be enabled in order to have allowed address pairs on a port.',
  },
  {
    name: 'disable port security while grouped',
    method: 'PUT',
    path: '/v2.0/ports/{port}',
    body: { port: { port_security_enabled: false } },
    status: 409,
    type: 'PortSecurityPortHasSecurityGroup',
    message:
      'Port has security group associated. Cannot disable port security or IP address until security group is removed.',
  },
  {
    name: 'port same group twice',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', security_groups: ['{sg}', '{sg}'] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Invalid input for security_groups. Reason: Duplicate items in the list: '{sg}'.",
  },
  {
    name: "port using another project's group",
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', security_groups: ['{alt_sg}'] } },
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group {alt_sg} does not exist',
  },
  {
    name: "rule on another project's group",
    method: 'POST',
    path: '/v2.0/security-group-rules',
    body: { security_group_rule: { security_group_id: '{alt_sg}', direction: 'ingress', protocol: 'tcp' } },
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group {alt_sg} does not exist',
  },
  {
    name: "GET another project's group",
    method: 'GET',
    path: '/v2.0/security-groups/{alt_sg}',
    status: 404,
    type: 'SecurityGroupNotFound',
    message: 'Security group {alt_sg} does not exist',
  },
  {
    name: 'binding:host_id by non-admin',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', 'binding:host_id': 'h1' } },
    status: 403,
    type: 'PolicyNotAuthorized',
    message: '(rule:create_port and rule:create_port:binding:host_id) is disallowed by policy',
  },
  {
    name: 'address pairs not a list',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', allowed_address_pairs: 'x' } },
    status: 400,
    type: 'HTTPBadRequest',
    message: 'Allowed address pairs must be a list.',
  },
  {
    name: 'address pair without ip',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', allowed_address_pairs: [{ mac_address: 'fa:16:3e:00:00:01' }] } },
    status: 400,
    type: 'AllowedAddressPairsMissingIP',
    message: 'AllowedAddressPair must contain ip_address',
  },
  {
    name: 'address pair bad ip',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', allowed_address_pairs: [{ ip_address: 'not-an-ip' }] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "'not-an-ip' is not a valid IP address",
  },
  {
    name: 'address pair bad mac',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', allowed_address_pairs: [{ ip_address: '10.1.1.1', mac_address: 'zz' }] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "'zz' is not a valid MAC address",
  },
  {
    name: 'address pair extra key',
    method: 'POST',
    path: '/v2.0/ports',
    body: { port: { network_id: '{net}', allowed_address_pairs: [{ ip_address: '10.1.1.1', foo: 1 }] } },
    status: 400,
    type: 'HTTPBadRequest',
    message: "Unrecognized attribute(s) 'foo'",
  },
  {
    name: 'address pair duplicate',
    method: 'POST',
    path: '/v2.0/ports',
    body: {
      port: { network_id: '{net}', allowed_address_pairs: [{ ip_address: '10.1.1.1' }, { ip_address: '10.1.1.1' }] },
    },
    status: 400,
    type: 'DuplicateAddressPairInRequest',
    message: 'Request contains duplicate address pair: mac_address None ip_address 10.1.1.1.',
  },
  {
    name: 'address pairs > 10',
    method: 'POST',
    path: '/v2.0/ports',
    body: {
      port: {
        network_id: '{net}',
        allowed_address_pairs: Array.from({ length: 11 }, (_, k) => ({ ip_address: `10.1.1.${k}` })),
      },
    },
    status: 400,
    type: 'AllowedAddressPairExhausted',
    message: 'The number of allowed address pair exceeds the maximum 10.',
  },
  {
    name: 'address pairs CIDR and v6 accepted',
    method: 'POST',
    path: '/v2.0/ports',
    body: {
      port: {
        network_id: '{net}',
        allowed_address_pairs: [{ ip_address: '10.0.0.0/8' }, { ip_address: '2001:db8::5' }],
      },
    },
    status: 201,
  },
  {
    name: 'non-admin quota update',
    method: 'PUT',
    path: '/v2.0/quotas/demo',
    body: { quota: { security_group: 5 } },
    status: 403,
    type: 'PolicyNotAuthorized',
    message: 'rule:update_quota is disallowed by policy',
  },
  {
    name: 'If-Match mismatch',
    method: 'PUT',
    path: '/v2.0/security-groups/{sg2}',
    body: { security_group: { description: 'z' } },
    status: 412,
    type: 'RevisionNumberConstraintFailed',
    message: 'Constrained to 999, but current revision is {sg2_rev}',
  },
]

describe('spec §12 validation table (non-admin caller)', () => {
  let h: Awaited<ReturnType<typeof harness>>
  let demo: Caller
  const vars: Record<string, string> = {}
  const sub = (v: unknown): unknown => {
    if (typeof v === 'string') return v.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m)
    if (Array.isArray(v)) return v.map(sub)
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, sub(x)]))
    return v
  }

  beforeAll(async () => {
    h = await harness()
    demo = h.as('demo')
    const admin = h.as('admin-project', true)
    expect(
      (
        await admin.req('PUT', '/v2.0/quotas/demo', {
          quota: { security_group: -1, security_group_rule: -1, port: -1 },
        })
      ).status,
    ).toBe(200)
    const mk = async (c: Caller, name: string, extra = {}) =>
      (await c.req('POST', '/v2.0/security-groups', { security_group: { name, ...extra } })).json.security_group
        .id as string
    vars.sg = await mk(demo, 'probe-sg')
    vars.sg2 = await mk(demo, 'probe-sg2')
    vars.sg_used = await mk(demo, 'probe-used')
    vars.sg_stateless = await mk(demo, 'probe-stateless', { stateful: false })
    vars.alt_sg = await mk(h.as('alt'), 'alt-sg')
    const groups = (await demo.req('GET', '/v2.0/security-groups?name=default')).json.security_groups
    vars.default_sg = groups[0].id
    const net = (await demo.req('POST', '/v2.0/networks', { network: { name: 'n' } })).json.network.id
    vars.net = net
    expect(
      (await demo.req('POST', '/v2.0/subnets', { subnet: { network_id: net, cidr: '10.100.0.0/24', ip_version: 4 } }))
        .status,
    ).toBe(201)
    const port = await demo.req('POST', '/v2.0/ports', { port: { network_id: net, security_groups: [vars.sg_used] } })
    vars.port = port.json.port.id
    const rule = await demo.req('POST', '/v2.0/security-group-rules', {
      security_group_rule: {
        security_group_id: vars.sg,
        direction: 'ingress',
        protocol: 'tcp',
        port_range_min: 9000,
        port_range_max: 9000,
      },
    })
    vars.rule = rule.json.security_group_rule.id
    vars.sg2_rev = String(
      (await demo.req('GET', `/v2.0/security-groups/${vars.sg2}`)).json.security_group.revision_number,
    )
  })
  afterAll(async () => h?.close())

  const check = async (row: Row) => {
    let method = row.method ?? 'POST'
    let path = row.path ?? '/v2.0/security-group-rules'
    let body = row.body
    const headers: Record<string, string> = {}
    if (row.name === 'If-Match mismatch') {
      headers['if-match'] = 'revision_number=999'
      vars.sg2_rev = String(
        (await demo.req('GET', `/v2.0/security-groups/${vars.sg2}`)).json.security_group.revision_number,
      )
    }
    if (row.rule) {
      let sg = vars.sg!
      if (row.status === 201) {
        sg = (await demo.req('POST', '/v2.0/security-groups', { security_group: { name: `fresh-${row.name}` } })).json
          .security_group.id
      }
      method = 'POST'
      path = '/v2.0/security-group-rules'
      body = { security_group_rule: { security_group_id: sg, direction: 'ingress', ...(sub(row.rule) as object) } }
    } else body = sub(body)
    const res = await demo.req(method, sub(path) as string, body, headers)
    expect(res.status, res.raw).toBe(row.status)
    expect(res.headers['content-type']).toMatch(/application\/json/)
    if (row.status >= 400) {
      expect(Object.keys(res.json.NeutronError).sort()).toEqual(['detail', 'message', 'type'])
      expect(res.json.NeutronError.detail).toBe('')
      if (row.type) expect(res.json.NeutronError.type).toBe(row.type)
      if (row.message) expect(res.json.NeutronError.message).toBe(sub(row.message))
    } else if (row.stored) {
      const obj = Object.values(res.json as Record<string, unknown>)[0]
      expect(obj).toMatchObject(sub(row.stored) as object)
    }
  }

  for (const row of ruleRows) it(`rule: ${row.name}`, () => check(row))
  for (const row of otherRows) it(row.name, () => check(row))
})
