/** `GET /v2.0/extensions`: exactly the extensions this server implements (spec §10). */
const UPDATED = '2012-10-05T10:00:00-00:00'

const LIST: readonly [alias: string, name: string, description: string][] = [
  ['security-group', 'security-group', 'The security groups extension.'],
  ['stateful-security-group', 'Stateful security group', 'Indicates if the security group is stateful or not'],
  ['standard-attr-description', 'standard-attr-description', 'Extension to add descriptions to standard attributes'],
  [
    'standard-attr-timestamp',
    'Resource timestamps',
    'Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.',
  ],
  [
    'standard-attr-revisions',
    'Resource revision numbers',
    'This extension will display the revision number of neutron resources.',
  ],
  [
    'standard-attr-tag',
    'Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip',
    'Enables to set tag on resources with standard attribute.',
  ],
  ['project-id', 'project_id field enabled', 'Extension that indicates that project_id field is enabled.'],
  ['port-security', 'Port Security', 'Provides port security'],
  ['allowed-address-pairs', 'Allowed Address Pairs', 'Provides allowed address pairs'],
  ['binding', 'Port Binding', 'Expose port bindings of a virtual port to external application'],
  [
    'security-groups-normalized-cidr',
    'Security group rule normalized CIDR',
    'Add new field with normalized remote_ip_prefix cidr in SG rule',
  ],
  [
    'security-groups-shared-filtering',
    'Security group filtering on the shared field',
    'Support filtering security groups on the shared field',
  ],
  [
    'port-security-groups-filtering',
    'Port filtering on security groups',
    'Provides security groups filtering when listing ports',
  ],
  [
    'rbac-policies',
    'RBAC Policies',
    'Allows creation and modification of policies that control tenant access to resources.',
  ],
  ['rbac-security-groups', 'Add security_group type to RBAC', 'Add security_group type to RBAC'],
  ['quotas', 'Quota management support', 'Expose functions for quotas management per project'],
  ['quota_details', 'Quota details management support', 'Expose functions for quotas usage statistics per project'],
  [
    'revision-if-match',
    'If-Match constraints based on revision_number',
    'Extension indicating that If-Match based on revision_number is supported.',
  ],
  ['pagination', 'Pagination support', 'Extension that indicates that pagination is enabled.'],
  ['sorting', 'Sorting support', 'Extension that indicates that sorting is enabled.'],
  ['filter-validation', 'Filter parameters validation', 'Provides validation on filter parameters.'],
  [
    'empty-string-filtering',
    'Empty String Filtering Extension',
    'Allow filtering by attributes with empty string value',
  ],
  ['external-net', 'Neutron external network', 'Adds external network attribute to network resource.'],
  ['net-mtu', 'Network MTU', 'Provides MTU attribute for a network resource.'],
  ['extra_dhcp_opt', 'Neutron Extra DHCP options', 'Extra options configuration for DHCP.'],
]

export const extensions = LIST.map(([alias, name, description]) => ({
  name,
  alias,
  description,
  updated: UPDATED,
  links: [],
}))
