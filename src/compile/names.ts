/**
 * Every kernel name sgwall uses (devices, chains, ipsets, comments) is derived here,
 * from ids that validation has already checked. Limits: 15 characters for a device
 * (IFNAMSIZ-1), 28 for a chain (XT_EXTENSION_MAXNAMELEN-1), 31 for an ipset.
 */
import type { Ethertype, FirewallDriver } from '../model/types.js'

export const DEVICE_NAME_MAX = 15
export const CHAIN_NAME_MAX = 28
export const IPSET_NAME_MAX = 31

/** Characters allowed in every name we derive (ids are UUID-like: hex and dashes). */
const NAME_CHARS = /^[A-Za-z0-9_.-]+$/

export type PortChainKind = 'i' | 'o' | 's'

/** Chain prefix: Neutron's binary name truncated to 16 characters. */
export function chainPrefix(driver: FirewallDriver): string {
  return driver === 'iptables_hybrid' ? 'neutron-openvswi' : 'neutron-linuxbri'
}

/** The chain shared by both drivers (IptablesManager's unwrapped top chain). */
export const FILTER_TOP_CHAIN = 'neutron-filter-top'

export function wrappedChain(driver: FirewallDriver, name: string): string {
  return checkChain(`${chainPrefix(driver)}-${name}`)
}

/** Per-port chain: prefix + kind + first 10 characters of the port id. */
export function portChainName(driver: FirewallDriver, kind: PortChainKind, portId: string): string {
  return checkChain(`${chainPrefix(driver)}-${kind}${portId.slice(0, 10)}`)
}

function devName(prefix: string, portId: string): string {
  return checkDevice((prefix + portId).slice(0, 14))
}

/** The VM's tap device: `tap` + first 11 characters of the port id. */
export function tapName(portId: string): string {
  return devName('tap', portId)
}
export function qbrName(portId: string): string {
  return devName('qbr', portId)
}
export function qvbName(portId: string): string {
  return devName('qvb', portId)
}
export function qvoName(portId: string): string {
  return devName('qvo', portId)
}
/** Linux bridge of a network (linuxbridge agent): `brq` + first 11 characters of the network id. */
export function brqName(networkId: string): string {
  return devName('brq', networkId)
}

/** ipset of a remote group: `NIPv4`/`NIPv6` + first 24 characters of the group id. */
export function ipsetName(ethertype: Ethertype, groupId: string): string {
  const name = `N${ethertype}${groupId.slice(0, 24)}`
  if (name.length > IPSET_NAME_MAX || !NAME_CHARS.test(name)) throw new Error(`bug: bad ipset name ${name}`)
  return name
}

/** Whether a name belongs to sgwall/Neutron (what the agent may touch). */
export function isOurChain(name: string): boolean {
  return name.startsWith('neutron-')
}
export function isOurIpset(name: string): boolean {
  return name.startsWith('NIPv4') || name.startsWith('NIPv6')
}

function checkChain(name: string): string {
  if (name.length > CHAIN_NAME_MAX || !NAME_CHARS.test(name)) throw new Error(`bug: bad chain name ${name}`)
  return name
}

function checkDevice(name: string): string {
  if (name.length > DEVICE_NAME_MAX || !NAME_CHARS.test(name)) throw new Error(`bug: bad device name ${name}`)
  return name
}

/** Characters a port/group/network id may contain so that derived names stay valid. */
export const ID_PATTERN = /^[A-Za-z0-9-]{11,64}$/
