/**
 * Table types of the sgwall store (Kysely). Booleans are stored as integers 0/1 and
 * timestamps as `YYYY-MM-DDTHH:MM:SSZ` text in both dialects, so SQLite and PostgreSQL
 * rows look the same to the repositories. JSON-valued attributes are stored as text.
 */
import type { Generated } from 'kysely'

export interface StandardColumns {
  id: string
  project_id: string
  name: string
  description: string | null
  created_at: string
  updated_at: string
  revision_number: number
  standard_attr_id: number
}

export interface SecurityGroupTable extends StandardColumns {
  stateful: number
}

export interface SecurityGroupRuleTable extends Omit<StandardColumns, 'name'> {
  security_group_id: string
  direction: string
  ethertype: string
  protocol: string | null
  port_range_min: number | null
  port_range_max: number | null
  remote_ip_prefix: string | null
  normalized_cidr: string | null
  remote_group_id: string | null
  remote_address_group_id: string | null
}

export interface NetworkTable extends StandardColumns {
  admin_state_up: number
  shared: number
  port_security_enabled: number
  mtu: number
  router_external: number
  status: string
}

export interface SubnetTable extends StandardColumns {
  network_id: string
  ip_version: number
  cidr: string
  gateway_ip: string | null
  /** JSON: [{start, end}] */
  allocation_pools: string
  enable_dhcp: number
  /** JSON string[] */
  dns_nameservers: string
  /** JSON [{destination, nexthop}] */
  host_routes: string
  ipv6_address_mode: string | null
  ipv6_ra_mode: string | null
}

export interface PortTable extends StandardColumns {
  network_id: string
  admin_state_up: number
  mac_address: string
  device_id: string
  device_owner: string
  status: string
  port_security_enabled: number
  binding_host_id: string
  binding_vnic_type: string
  /** JSON object */
  binding_profile: string
  /** JSON list */
  extra_dhcp_opts: string
}

export interface PortFixedIpTable {
  port_id: string
  subnet_id: string
  network_id: string
  ip_address: string
  position: number
}

export interface PortAddressPairTable {
  port_id: string
  ip_address: string
  mac_address: string
  position: number
}

export interface PortSecurityGroupTable {
  port_id: string
  security_group_id: string
  position: number
}

export interface TagTable {
  resource_type: string
  resource_id: string
  tag: string
}

export interface QuotaTable {
  project_id: string
  resource: string
  hard_limit: number
}

export interface RbacPolicyTable {
  id: string
  project_id: string
  object_type: string
  object_id: string
  action: string
  target_tenant: string
}

/** One row per committed change; `revision` is the transaction's revision, `seq` its order inside it. */
export interface ChangeTable {
  revision: number
  seq: number
  resource: string
  resource_id: string
  action: string
  project_id: string | null
  /** JSON of the object after the change (null after a delete). */
  body: string | null
  created_at: string
}

/** Single row (id = 1): the store's revision and the standard attribute id counter. */
export interface MetaTable {
  id: number
  revision: number
  standard_attr_id: number
  /** Lowest revision still present in the change log minus one; older `since` values need a snapshot. */
  pruned_through: number
}

export interface IdentityProjectTable {
  id: string
  name: string
  domain_id: string
  description: string
  enabled: number
}

export interface IdentityUserTable {
  id: string
  name: string
  domain_id: string
  /** scrypt$salt$hash (hex) */
  password_hash: string
  default_project_id: string | null
  enabled: number
}

export interface IdentityRoleTable {
  id: string
  name: string
}

export interface IdentityAssignmentTable {
  user_id: string
  project_id: string
  role_id: string
}

export interface IdentityTokenTable {
  /** sha256 (hex) of the token id */
  id_hash: string
  user_id: string
  /** milliseconds since the epoch */
  expires: number
  /** the token's JSON (user, project, roles, issued, expires, audit id) */
  body: string
}

export interface Database {
  security_groups: SecurityGroupTable
  security_group_rules: SecurityGroupRuleTable
  networks: NetworkTable
  subnets: SubnetTable
  ports: PortTable
  port_fixed_ips: PortFixedIpTable
  port_address_pairs: PortAddressPairTable
  port_security_groups: PortSecurityGroupTable
  tags: TagTable
  quotas: QuotaTable
  rbac_policies: RbacPolicyTable
  changes: ChangeTable
  sgwall_meta: MetaTable
  identity_projects: IdentityProjectTable
  identity_users: IdentityUserTable
  identity_roles: IdentityRoleTable
  identity_assignments: IdentityAssignmentTable
  identity_tokens: IdentityTokenTable
}

export type Unused = Generated<number>
