/**
 * The Neutron v2.0-compatible API server. What it does: the OpenStack Networking wire format for
 * security groups, rules, networks, subnets, ports, quotas, RBAC and tags (shared/spec/neutron-api.md),
 * identity (noauth, built-in Keystone v3, external Keystone), and the agent feed. What it must not do:
 * touch the kernel or compile rules. Design goals: Neutron-exact errors, one transaction per write with
 * its change-log rows, never a 500 for bad input.
 */
export { type Authenticator, type BuildOptions, build, noAuth } from './app.js'
export { feedRoutes, hostScenario, readChanges } from './feed.js'
export { builtinIdentity, keystoneAuth } from './identity.js'
export { type RunningServer, type ServerOptions, startServer } from './server.js'
