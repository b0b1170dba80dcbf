/**
 * The Neutron error catalogue: every `NeutronError.type` this server emits and its HTTP
 * status (neutron-lib faults: NotFound 404, Conflict/InUse 409, BadRequest 400,
 * NotAuthorized 403). `Record<…>` makes a new type fail the build until it has a status.
 */
export type NeutronErrorType =
  | 'HTTPBadRequest'
  | 'HTTPNotFound'
  | 'HTTPForbidden'
  | 'HTTPConflict'
  | 'HTTPRequestEntityTooLarge'
  | 'HTTPInternalServerError'
  | 'BadRequest'
  | 'MalformedRequestBody'
  | 'InvalidInput'
  | 'InvalidCIDR'
  | 'PolicyNotAuthorized'
  | 'OverQuota'
  | 'RevisionNumberConstraintFailed'
  | 'SecurityGroupNotFound'
  | 'SecurityGroupRuleNotFound'
  | 'SecurityGroupInUse'
  | 'SecurityGroupDefaultAlreadyExists'
  | 'SecurityGroupCannotUpdateDefault'
  | 'SecurityGroupCannotRemoveDefault'
  | 'SecurityGroupRuleExists'
  | 'DuplicateSecurityGroupRuleInPost'
  | 'SecurityGroupNotSingleGroupRules'
  | 'SecurityGroupRulesNotSingleTenant'
  | 'SecurityGroupRuleInvalidProtocol'
  | 'SecurityGroupRuleInvalidEtherType'
  | 'SecurityGroupInvalidPortValue'
  | 'SecurityGroupInvalidPortRange'
  | 'SecurityGroupInvalidIcmpValue'
  | 'SecurityGroupMissingIcmpType'
  | 'SecurityGroupInvalidProtocolForPort'
  | 'SecurityGroupProtocolRequiredWithPorts'
  | 'SecurityGroupEthertypeConflictWithProtocol'
  | 'SecurityGroupRuleParameterConflict'
  | 'SecurityGroupMultipleRemoteEntites'
  | 'SecurityGroupConflict'
  | 'AddressGroupNotFound'
  | 'TagNotFound'
  | 'NetworkNotFound'
  | 'NetworkInUse'
  | 'SubnetInUse'
  | 'SubnetNotFound'
  | 'PortNotFound'
  | 'IpAddressAlreadyAllocated'
  | 'InvalidIpForSubnet'
  | 'IpAddressGenerationFailure'
  | 'MacAddressInUse'
  | 'PortSecurityAndIPRequiredForSecurityGroups'
  | 'PortSecurityPortHasSecurityGroup'
  | 'AddressPairAndPortSecurityRequired'
  | 'AllowedAddressPairsMissingIP'
  | 'DuplicateAddressPairInRequest'
  | 'AllowedAddressPairExhausted'
  | 'RbacPolicyNotFound'
  | 'RbacPolicyInUse'
  | 'InvalidActionForType'
  | 'ExtensionNotFound'
  | 'ChangeLogTruncated'

export const neutronStatus: Record<NeutronErrorType, number> = {
  HTTPBadRequest: 400,
  HTTPNotFound: 404,
  HTTPForbidden: 403,
  HTTPConflict: 409,
  HTTPRequestEntityTooLarge: 413,
  HTTPInternalServerError: 500,
  BadRequest: 400,
  MalformedRequestBody: 400,
  InvalidInput: 400,
  InvalidCIDR: 400,
  PolicyNotAuthorized: 403,
  OverQuota: 409,
  RevisionNumberConstraintFailed: 412,
  SecurityGroupNotFound: 404,
  SecurityGroupRuleNotFound: 404,
  SecurityGroupInUse: 409,
  SecurityGroupDefaultAlreadyExists: 409,
  SecurityGroupCannotUpdateDefault: 409,
  SecurityGroupCannotRemoveDefault: 409,
  SecurityGroupRuleExists: 409,
  DuplicateSecurityGroupRuleInPost: 409,
  SecurityGroupNotSingleGroupRules: 400,
  SecurityGroupRulesNotSingleTenant: 400,
  SecurityGroupRuleInvalidProtocol: 400,
  SecurityGroupRuleInvalidEtherType: 400,
  SecurityGroupInvalidPortValue: 400,
  SecurityGroupInvalidPortRange: 400,
  SecurityGroupInvalidIcmpValue: 400,
  SecurityGroupMissingIcmpType: 400,
  SecurityGroupInvalidProtocolForPort: 400,
  SecurityGroupProtocolRequiredWithPorts: 400,
  SecurityGroupEthertypeConflictWithProtocol: 400,
  SecurityGroupRuleParameterConflict: 400,
  SecurityGroupMultipleRemoteEntites: 400,
  SecurityGroupConflict: 409,
  AddressGroupNotFound: 404,
  TagNotFound: 404,
  NetworkNotFound: 404,
  NetworkInUse: 409,
  SubnetInUse: 409,
  SubnetNotFound: 404,
  PortNotFound: 404,
  IpAddressAlreadyAllocated: 409,
  InvalidIpForSubnet: 400,
  IpAddressGenerationFailure: 409,
  MacAddressInUse: 409,
  PortSecurityAndIPRequiredForSecurityGroups: 400,
  PortSecurityPortHasSecurityGroup: 409,
  AddressPairAndPortSecurityRequired: 409,
  AllowedAddressPairsMissingIP: 400,
  DuplicateAddressPairInRequest: 400,
  AllowedAddressPairExhausted: 400,
  RbacPolicyNotFound: 404,
  RbacPolicyInUse: 409,
  InvalidActionForType: 400,
  ExtensionNotFound: 404,
  ChangeLogTruncated: 410,
}

export class NeutronError extends Error {
  readonly status: number
  constructor(
    readonly type: NeutronErrorType,
    message: string,
  ) {
    super(message)
    this.name = 'NeutronError'
    this.status = neutronStatus[type]
  }
  toBody() {
    return { NeutronError: { type: this.type, message: this.message, detail: '' } }
  }
}

export const nerr = (type: NeutronErrorType, message: string) => new NeutronError(type, message)
export const badRequest = (message: string) => new NeutronError('HTTPBadRequest', message)
export const invalidInput = (attr: string, reason: string) =>
  new NeutronError('HTTPBadRequest', `Invalid input for ${attr}. Reason: ${reason}.`)
export const sgNotFound = (id: unknown) => nerr('SecurityGroupNotFound', `Security group ${pyStr(id)} does not exist`)
export const policy = (rule: string) => nerr('PolicyNotAuthorized', `${rule} is disallowed by policy`)

/** Python's str() of a JSON value, as Neutron's messages print them. */
export function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None'
  if (v === true) return 'True'
  if (v === false) return 'False'
  if (typeof v === 'string') return v
  if (typeof v === 'number') return String(v)
  return pyRepr(v)
}

/** Python's repr() of a JSON value. */
export function pyRepr(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`
  if (v && typeof v === 'object')
    return `{${Object.entries(v)
      .map(([k, x]) => `'${k}': ${pyRepr(x)}`)
      .join(', ')}}`
  return pyStr(v)
}
