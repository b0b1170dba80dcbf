/**
 * How Neutron spells a protocol after `-p`: neutron-lib's IPTABLES_PROTOCOL_NAME_MAP
 * overlaid with Debian netbase's /etc/protocols (number -> name; the last name of a
 * number wins, as getprotoent iteration does). Embedded so that output never depends
 * on the host's /etc/protocols (a Neutron quirk: STYLE.md).
 */
const IPTABLES_PROTOCOL_NAMES: Readonly<Record<string, string>> = {
  'ipv6-encap': 'ipv6',
  icmpv6: 'ipv6-icmp',
  pgm: '113',
  '1': 'icmp',
  '2': 'igmp',
  '3': 'ggp',
  '4': 'ipencap',
  '5': 'st',
  '6': 'tcp',
  '8': 'egp',
  '9': 'igp',
  '12': 'pup',
  '17': 'udp',
  '20': 'hmp',
  '22': 'xns-idp',
  '27': 'rdp',
  '29': 'iso-tp4',
  '33': 'dccp',
  '36': 'xtp',
  '37': 'ddp',
  '38': 'idpr-cmtp',
  '41': 'ipv6',
  '43': 'ipv6-route',
  '44': 'ipv6-frag',
  '45': 'idrp',
  '46': 'rsvp',
  '47': 'gre',
  '50': 'esp',
  '51': 'ah',
  '57': 'skip',
  '58': 'ipv6-icmp',
  '59': 'ipv6-nonxt',
  '60': 'ipv6-opts',
  '73': 'rspf',
  '81': 'vmtp',
  '88': 'eigrp',
  '89': 'ospf',
  '93': 'ax.25',
  '94': 'ipip',
  '97': 'etherip',
  '98': 'encap',
  '103': 'pim',
  '108': 'ipcomp',
  '112': 'vrrp',
  '115': 'l2tp',
  '124': 'isis',
  '132': 'sctp',
  '133': 'fc',
  '135': 'mobility-header',
  '136': 'udplite',
  '137': 'mpls-in-ip',
  '138': 'manet',
  '139': 'hip',
  '140': 'shim6',
  '141': 'wesp',
  '142': 'rohc',
  '143': 'ethernet',
}

/** The name Neutron puts after `-p`, or null for "no -p" (any protocol, or protocol 0). */
export function iptablesProtocolName(canonical: string | null): string | null {
  if (canonical === null || canonical === '0') return null
  return IPTABLES_PROTOCOL_NAMES[canonical] ?? canonical
}

/**
 * The kernel prints `-p ip` and `-p hopopt` (protocol 0) as no protocol match at all
 * (neutron-behaviour.md, "Kernel vs. Neutron spelling").
 */
export function kernelProtocolName(neutronName: string | null): string | null {
  if (neutronName === 'ip' || neutronName === 'hopopt') return null
  return neutronName
}

/** `-m MODULE` Neutron adds after `-p` when the rule has a port or ICMP type (IPTABLES_PROTOCOL_MAP). */
export const PROTOCOL_MATCH_MODULE: Readonly<Record<string, string>> = {
  dccp: 'dccp',
  icmp: 'icmp',
  'ipv6-icmp': 'icmp6',
  sctp: 'sctp',
  tcp: 'tcp',
  udp: 'udp',
}

/** Protocols that support --dport/--sport/multiport (SG_PORT_PROTO_NAMES). */
export const PORT_PROTOCOLS: ReadonlySet<string> = new Set(['dccp', 'sctp', 'tcp', 'udp', 'udplite'])
/** udplite has no match module of its own: always `-m multiport`. */
export const MULTIPORT_ONLY_PROTOCOLS: ReadonlySet<string> = new Set(['udplite'])
