/**
 * The host scenario of `shared/spec/scenario.md`: what one compute host's firewall
 * needs to know. Field names keep Neutron's wire spelling so JSON, DB columns,
 * fixtures and code share one vocabulary. All values are readonly data.
 */

export type Ethertype = 'IPv4' | 'IPv6'
export type Direction = 'ingress' | 'egress'
export type FirewallDriver = 'iptables_hybrid' | 'iptables'

export interface SecurityGroupRule {
  readonly id: string
  readonly direction: Direction
  /** Canonical spelling after validation: 'IPv4' | 'IPv6'. */
  readonly ethertype: Ethertype
  /**
   * Canonical API value: lower-case name or decimal number as a string, null = any
   * (validation canonicalizes what the scenario gives: names, integers, "any").
   */
  readonly protocol: string | null
  readonly port_range_min: number | null
  readonly port_range_max: number | null
  readonly remote_ip_prefix: string | null
  readonly remote_group_id: string | null
}

export interface SecurityGroup {
  readonly id: string
  readonly stateful: boolean
  readonly rules: readonly SecurityGroupRule[]
}

export interface GroupMembers {
  readonly IPv4?: readonly string[]
  readonly IPv6?: readonly string[]
}

/** Per group id: every member address the server knows, per ethertype. */
export type Members = Readonly<Record<string, GroupMembers>>

export interface AllowedAddressPair {
  readonly ip_address: string
  readonly mac_address?: string
}

export interface Port {
  readonly id: string
  readonly device?: string
  readonly mac_address: string
  readonly fixed_ips: readonly string[]
  readonly allowed_address_pairs: readonly AllowedAddressPair[]
  readonly security_groups: readonly string[]
  readonly port_security_enabled: boolean
  readonly network_id: string
  readonly device_owner?: string
}

/**
 * Opt-in corrections of Neutron bugs (off by default: the default is fidelity).
 * - `stale-raw-rules`: when a port's statefulness flips, remove its old zone/notrack
 *   rules instead of leaving them in front of the new ones (surprise 1).
 * - `spoof-missing-family`: give a port an anti-spoofing chain (drop only) for a family
 *   it has no address of, so "egress any" cannot send from any source (surprise 7).
 */
export type NeutronFix = 'stale-raw-rules' | 'spoof-missing-family'
export const NEUTRON_FIXES: readonly NeutronFix[] = ['stale-raw-rules', 'spoof-missing-family']

export interface HostConfig {
  readonly firewall_driver: FirewallDriver
  readonly enable_ipset: boolean
  /** Opt-in bug fixes; absent or empty = exactly Neutron. */
  readonly fixes?: readonly NeutronFix[]
}

/** The complete state of one host at one moment. */
export interface HostState {
  readonly security_groups: readonly SecurityGroup[]
  readonly members: Members
  readonly ports: readonly Port[]
}

/** A later state: any omitted key keeps its previous value. */
export interface ScenarioStep {
  readonly description?: string
  readonly security_groups?: readonly SecurityGroup[]
  readonly members?: Members
  readonly ports?: readonly Port[]
}

export interface Scenario extends HostState {
  readonly description?: string
  readonly config: HostConfig
  readonly steps: readonly ScenarioStep[]
}

/** One problem in an input document, with the JSON path of the offending value. */
export interface Issue {
  readonly path: string
  readonly message: string
}
