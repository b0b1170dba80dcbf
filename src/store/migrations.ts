/**
 * Schema migrations, in code (no files to ship). Column types are the portable subset of
 * SQLite and PostgreSQL: text, integer. Add a new entry for every change; never edit one.
 */
import type { Kysely, Migration, MigrationProvider } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations run before the typed schema exists
type AnyDb = Kysely<any>

const standard = (t: ReturnType<AnyDb['schema']['createTable']>, withName = true) => {
  let table = t.addColumn('id', 'text', (c) => c.primaryKey()).addColumn('project_id', 'text', (c) => c.notNull())
  if (withName) table = table.addColumn('name', 'text', (c) => c.notNull())
  return table
    .addColumn('description', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('revision_number', 'integer', (c) => c.notNull())
    .addColumn('standard_attr_id', 'integer', (c) => c.notNull())
}

const m0001: Migration = {
  async up(db: AnyDb) {
    await standard(db.schema.createTable('security_groups'))
      .addColumn('stateful', 'integer', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('security_groups_project').on('security_groups').column('project_id').execute()
    await standard(db.schema.createTable('security_group_rules'), false)
      .addColumn('security_group_id', 'text', (c) => c.notNull())
      .addColumn('direction', 'text', (c) => c.notNull())
      .addColumn('ethertype', 'text', (c) => c.notNull())
      .addColumn('protocol', 'text')
      .addColumn('port_range_min', 'integer')
      .addColumn('port_range_max', 'integer')
      .addColumn('remote_ip_prefix', 'text')
      .addColumn('normalized_cidr', 'text')
      .addColumn('remote_group_id', 'text')
      .addColumn('remote_address_group_id', 'text')
      .execute()
    await db.schema.createIndex('sg_rules_group').on('security_group_rules').column('security_group_id').execute()
    await db.schema.createIndex('sg_rules_remote').on('security_group_rules').column('remote_group_id').execute()
    await db.schema.createIndex('sg_rules_project').on('security_group_rules').column('project_id').execute()
    await standard(db.schema.createTable('networks'))
      .addColumn('admin_state_up', 'integer', (c) => c.notNull())
      .addColumn('shared', 'integer', (c) => c.notNull())
      .addColumn('port_security_enabled', 'integer', (c) => c.notNull())
      .addColumn('mtu', 'integer', (c) => c.notNull())
      .addColumn('router_external', 'integer', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .execute()
    await standard(db.schema.createTable('subnets'))
      .addColumn('network_id', 'text', (c) => c.notNull())
      .addColumn('ip_version', 'integer', (c) => c.notNull())
      .addColumn('cidr', 'text', (c) => c.notNull())
      .addColumn('gateway_ip', 'text')
      .addColumn('allocation_pools', 'text', (c) => c.notNull())
      .addColumn('enable_dhcp', 'integer', (c) => c.notNull())
      .addColumn('dns_nameservers', 'text', (c) => c.notNull())
      .addColumn('host_routes', 'text', (c) => c.notNull())
      .addColumn('ipv6_address_mode', 'text')
      .addColumn('ipv6_ra_mode', 'text')
      .execute()
    await db.schema.createIndex('subnets_network').on('subnets').column('network_id').execute()
    await standard(db.schema.createTable('ports'))
      .addColumn('network_id', 'text', (c) => c.notNull())
      .addColumn('admin_state_up', 'integer', (c) => c.notNull())
      .addColumn('mac_address', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text', (c) => c.notNull())
      .addColumn('device_owner', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('port_security_enabled', 'integer', (c) => c.notNull())
      .addColumn('binding_host_id', 'text', (c) => c.notNull())
      .addColumn('binding_vnic_type', 'text', (c) => c.notNull())
      .addColumn('binding_profile', 'text', (c) => c.notNull())
      .addColumn('extra_dhcp_opts', 'text', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('ports_network').on('ports').column('network_id').execute()
    await db.schema.createIndex('ports_host').on('ports').column('binding_host_id').execute()
    await db.schema
      .createTable('port_fixed_ips')
      .addColumn('port_id', 'text', (c) => c.notNull())
      .addColumn('subnet_id', 'text', (c) => c.notNull())
      .addColumn('network_id', 'text', (c) => c.notNull())
      .addColumn('ip_address', 'text', (c) => c.notNull())
      .addColumn('position', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('port_fixed_ips_pk', ['subnet_id', 'ip_address'])
      .execute()
    await db.schema.createIndex('port_fixed_ips_port').on('port_fixed_ips').column('port_id').execute()
    await db.schema
      .createTable('port_address_pairs')
      .addColumn('port_id', 'text', (c) => c.notNull())
      .addColumn('ip_address', 'text', (c) => c.notNull())
      .addColumn('mac_address', 'text', (c) => c.notNull())
      .addColumn('position', 'integer', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('port_address_pairs_port').on('port_address_pairs').column('port_id').execute()
    await db.schema
      .createTable('port_security_groups')
      .addColumn('port_id', 'text', (c) => c.notNull())
      .addColumn('security_group_id', 'text', (c) => c.notNull())
      .addColumn('position', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('port_security_groups_pk', ['port_id', 'security_group_id'])
      .execute()
    await db.schema.createIndex('port_sg_group').on('port_security_groups').column('security_group_id').execute()
    await db.schema
      .createTable('tags')
      .addColumn('resource_type', 'text', (c) => c.notNull())
      .addColumn('resource_id', 'text', (c) => c.notNull())
      .addColumn('tag', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('tags_pk', ['resource_type', 'resource_id', 'tag'])
      .execute()
    await db.schema
      .createTable('quotas')
      .addColumn('project_id', 'text', (c) => c.notNull())
      .addColumn('resource', 'text', (c) => c.notNull())
      .addColumn('hard_limit', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('quotas_pk', ['project_id', 'resource'])
      .execute()
    await db.schema
      .createTable('rbac_policies')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('project_id', 'text', (c) => c.notNull())
      .addColumn('object_type', 'text', (c) => c.notNull())
      .addColumn('object_id', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('target_tenant', 'text', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('rbac_object').on('rbac_policies').column('object_id').execute()
    await db.schema
      .createTable('changes')
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('resource', 'text', (c) => c.notNull())
      .addColumn('resource_id', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('project_id', 'text')
      .addColumn('body', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('changes_pk', ['revision', 'seq'])
      .execute()
    await db.schema
      .createTable('sgwall_meta')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('standard_attr_id', 'integer', (c) => c.notNull())
      .addColumn('pruned_through', 'integer', (c) => c.notNull())
      .execute()
    await db.insertInto('sgwall_meta').values({ id: 1, revision: 0, standard_attr_id: 0, pruned_through: 0 }).execute()
    await db.schema
      .createTable('identity_projects')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('domain_id', 'text', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('enabled', 'integer', (c) => c.notNull())
      .execute()
    await db.schema
      .createTable('identity_users')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('domain_id', 'text', (c) => c.notNull())
      .addColumn('password_hash', 'text', (c) => c.notNull())
      .addColumn('default_project_id', 'text')
      .addColumn('enabled', 'integer', (c) => c.notNull())
      .execute()
    await db.schema
      .createTable('identity_roles')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .execute()
    await db.schema
      .createTable('identity_assignments')
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('project_id', 'text', (c) => c.notNull())
      .addColumn('role_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('identity_assignments_pk', ['user_id', 'project_id', 'role_id'])
      .execute()
  },
}

const m0002: Migration = {
  async up(db: AnyDb) {
    // ensureDefaultGroup looks up (project_id, name = 'default') on every list.
    await db.schema
      .createIndex('security_groups_project_name')
      .on('security_groups')
      .columns(['project_id', 'name'])
      .execute()
    await db.schema.createIndex('sg_rules_std').on('security_group_rules').column('standard_attr_id').execute()
  },
}

const m0003: Migration = {
  async up(db: AnyDb) {
    // Duplicate-rule check on every rule create: candidates with the same group, direction,
    // ethertype and port range, without reading every rule of a large group. Its first column
    // serves every lookup by group, so the single-column index goes (one b-tree less per write).
    await db.schema
      .createIndex('sg_rules_dup')
      .on('security_group_rules')
      .columns(['security_group_id', 'direction', 'ethertype', 'port_range_min', 'port_range_max'])
      .execute()
    await db.schema.dropIndex('sg_rules_group').execute()
  },
}

const m0004: Migration = {
  async up(db: AnyDb) {
    // Tokens of the built-in identity, so that they survive a restart and every server process
    // on one database accepts them. Only a hash of the token is stored.
    await db.schema
      .createTable('identity_tokens')
      .addColumn('id_hash', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('expires', 'bigint', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('identity_tokens_user').on('identity_tokens').column('user_id').execute()
  },
}

export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_lookup_indexes': m0002,
  '0003_rule_duplicate_index': m0003,
  '0004_identity_tokens': m0004,
}

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
}
