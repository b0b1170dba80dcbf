/**
 * The unmodified `openstack` CLI (Debian python3-openstackclient) against a real server on a
 * loopback port: once with `--os-auth-type none --os-endpoint`, once with password auth against
 * the built-in identity (including creating a non-admin project/user through the identity API).
 * Skips with a printed reason when the CLI is not installed (fails in CI).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { type RunningServer, startServer } from '../../src/api/server.js'

const OPENSTACK = '/usr/bin/openstack'
const have = existsSync(OPENSTACK)
if (!have) {
  if (process.env.CI === 'true')
    throw new Error('CI=true but the openstack CLI is missing (apt-get install python3-openstackclient)')
  console.warn('skipping openstack CLI tests: /usr/bin/openstack not found (apt-get install python3-openstackclient)')
}

interface Out {
  code: number
  stdout: string
  stderr: string
}

function run(args: string[], env: Record<string, string>): Promise<Out> {
  return new Promise((resolve) => {
    execFile(
      OPENSTACK,
      args,
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })
}

type Osc = (...args: string[]) => Promise<Out>

/** The same CLI session in both auth modes. */
async function exercise(osc: Osc) {
  const ok = async (...args: string[]) => {
    const r = await osc(...args)
    expect(r.code, `openstack ${args.join(' ')}\n${r.stderr}`).toBe(0)
    return r.stdout.trim() ? JSON.parse(r.stdout) : null
  }
  const fails = async (pattern: RegExp, ...args: string[]) => {
    const r = await osc(...args)
    expect(r.code, `openstack ${args.join(' ')} should fail\n${r.stdout}`).not.toBe(0)
    expect(r.stderr).toMatch(pattern)
  }
  const net = await ok('network', 'create', 'cli-net', '-f', 'json')
  expect(net).toMatchObject({ name: 'cli-net', status: 'ACTIVE' })
  const sub4 = await ok(
    'subnet',
    'create',
    'cli-sub4',
    '--network',
    'cli-net',
    '--subnet-range',
    '10.20.0.0/24',
    '-f',
    'json',
  )
  expect(sub4).toMatchObject({ cidr: '10.20.0.0/24', gateway_ip: '10.20.0.1', ip_version: 4 })
  const sub6 = await ok(
    'subnet',
    'create',
    'cli-sub6',
    '--network',
    'cli-net',
    '--ip-version',
    '6',
    '--subnet-range',
    '2001:db8:20::/64',
    '-f',
    'json',
  )
  expect(sub6.ip_version).toBe(6)

  const web = await ok('security', 'group', 'create', 'web', '-f', 'json')
  expect(web).toMatchObject({ name: 'web', description: 'web', stateful: true })
  const db = await ok('security', 'group', 'create', 'db', '--description', 'database', '-f', 'json')
  const sl = await ok('security', 'group', 'create', 'sl', '--stateless', '-f', 'json')
  expect(sl.stateful).toBe(false)

  const r22 = await ok(
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--protocol',
    'tcp',
    '--dst-port',
    '22',
    '--ingress',
    '-f',
    'json',
  )
  expect(r22).toMatchObject({
    protocol: 'tcp',
    port_range_min: 22,
    port_range_max: 22,
    remote_ip_prefix: '0.0.0.0/0',
    direction: 'ingress',
  })
  const range = await ok(
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--protocol',
    'tcp',
    '--dst-port',
    '8000:8080',
    '-f',
    'json',
  )
  expect(range).toMatchObject({ port_range_min: 8000, port_range_max: 8080 })
  const icmp = await ok(
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--protocol',
    'icmp',
    '--icmp-type',
    '8',
    '--icmp-code',
    '0',
    '-f',
    'json',
  )
  expect(icmp).toMatchObject({ protocol: 'icmp', port_range_min: 8, port_range_max: 0 })
  const remote = await ok(
    'security',
    'group',
    'rule',
    'create',
    'db',
    '--protocol',
    'tcp',
    '--dst-port',
    '5432',
    '--remote-group',
    'web',
    '-f',
    'json',
  )
  expect(remote).toMatchObject({ remote_group_id: web.id, remote_ip_prefix: null })
  const v6 = await ok(
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--ethertype',
    'IPv6',
    '--protocol',
    'ipv6-icmp',
    '-f',
    'json',
  )
  expect(v6).toMatchObject({ ether_type: 'IPv6', protocol: 'ipv6-icmp', remote_ip_prefix: '::/0' })
  const egress = await ok(
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--egress',
    '--protocol',
    'udp',
    '--dst-port',
    '53',
    '--remote-ip',
    '10.0.0.0/8',
    '-f',
    'json',
  )
  expect(egress).toMatchObject({ direction: 'egress', protocol: 'udp', remote_ip_prefix: '10.0.0.0/8' })
  const sctp = await ok('security', 'group', 'rule', 'create', 'web', '--protocol', '132', '-f', 'json')
  expect(sctp.protocol).toBe('132')
  await ok('security', 'group', 'rule', 'create', 'sl', '--protocol', 'any', '--remote-ip', '10.9.0.0/16', '-f', 'json')

  const rules = await ok('security', 'group', 'rule', 'list', 'web', '-f', 'json')
  expect(rules).toHaveLength(8) // 2 default egress + 6
  const tcpIn = await ok('security', 'group', 'rule', 'list', 'web', '--ingress', '--protocol', 'tcp', '-f', 'json')
  expect(tcpIn).toHaveLength(2)
  const shown = await ok('security', 'group', 'show', 'web', '-f', 'json')
  expect(shown.rules).toHaveLength(8)
  const groups = await ok('security', 'group', 'list', '-f', 'json')
  expect(groups.map((g: { Name: string }) => g.Name).sort()).toEqual(['db', 'default', 'sl', 'web'])

  // error cases: the Neutron message reaches the user, exit status 1
  await fails(
    /Security group rule already exists/,
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--protocol',
    'tcp',
    '--dst-port',
    '22',
  )
  await fails(
    /Security group rule protocol foo not supported/,
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--protocol',
    'foo',
  )
  await fails(/Default security group already exists/, 'security', 'group', 'create', 'default')
  await fails(
    /Conflicting value ethertype IPv4 for CIDR 2001:db8::\/64/,
    'security',
    'group',
    'rule',
    'create',
    'web',
    '--remote-ip',
    '2001:db8::/64',
  )
  await fails(/No SecurityGroup found for nosuch|not found/i, 'security', 'group', 'show', 'nosuch')

  const p1 = await ok(
    'port',
    'create',
    'p1',
    '--network',
    'cli-net',
    '--security-group',
    'web',
    '--security-group',
    'db',
    '-f',
    'json',
  )
  expect(p1.security_group_ids).toEqual([web.id, db.id])
  expect(p1.mac_address).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/)
  expect(p1.fixed_ips.map((f: { ip_address: string }) => f.ip_address)).toEqual(['10.20.0.2', '2001:db8:20::2'])
  await fails(/in use/, 'security', 'group', 'delete', 'web')
  await fails(/Cannot apply both stateful and stateless/, 'port', 'set', 'p1', '--security-group', 'sl')
  await ok('port', 'set', 'p1', '--no-security-group')
  expect((await ok('port', 'show', 'p1', '-f', 'json')).security_group_ids).toEqual([])
  await ok('port', 'set', 'p1', '--security-group', 'web', '--security-group', 'db')
  await ok('port', 'unset', 'p1', '--security-group', 'db')
  expect((await ok('port', 'show', 'p1', '-f', 'json')).security_group_ids).toEqual([web.id])
  await fails(/Port has security group associated/, 'port', 'set', 'p1', '--disable-port-security')
  await ok('port', 'set', 'p1', '--disable-port-security', '--no-security-group')
  expect(await ok('port', 'show', 'p1', '-f', 'json')).toMatchObject({
    port_security_enabled: false,
    security_group_ids: [],
  })
  const p2 = await ok('port', 'create', 'p2', '--network', 'cli-net', '--no-security-group', '-f', 'json')
  expect(p2.security_group_ids).toEqual([])
  const p3 = await ok('port', 'create', 'p3', '--network', 'cli-net', '--disable-port-security', '-f', 'json')
  expect(p3).toMatchObject({ port_security_enabled: false, security_group_ids: [] })
  const p4 = await ok('port', 'create', 'p4', '--network', 'cli-net', '-f', 'json')
  const def = groups.find((g: { Name: string }) => g.Name === 'default')
  expect(p4.security_group_ids).toEqual([def.ID])

  // deleting web removes db's rule that names it as remote group
  await ok('security', 'group', 'delete', 'web')
  const dbRules = await ok('security', 'group', 'rule', 'list', 'db', '-f', 'json')
  expect(dbRules.some((r: { ID: string }) => r.ID === remote.id)).toBe(false)
  await ok('security', 'group', 'rule', 'delete', egress.id === remote.id ? sctp.id : dbRules[0].ID)
  for (const p of ['p1', 'p2', 'p3', 'p4']) await ok('port', 'delete', p)
  await ok('security', 'group', 'delete', 'db', 'sl')
  await ok('subnet', 'delete', 'cli-sub4')
  await ok('network', 'delete', 'cli-net')
  expect(await ok('network', 'list', '-f', 'json')).toEqual([])
}

const PASSWORD = 'cli-test-secret'
const envFor = (server: RunningServer, user: string, pass: string, project: string) => ({
  OS_AUTH_URL: `${server.url}/identity/v3`,
  OS_USERNAME: user,
  OS_PASSWORD: pass,
  OS_PROJECT_NAME: project,
  OS_USER_DOMAIN_NAME: 'Default',
  OS_PROJECT_DOMAIN_NAME: 'Default',
  OS_IDENTITY_API_VERSION: '3',
  OS_INTERFACE: 'public',
})

/** Each test has its own server, so the three CLI sessions run concurrently (the CLI is mostly Python start-up). */
async function withServer(auth: 'none' | 'builtin', fn: (s: RunningServer) => Promise<void>) {
  const server = await startServer({ db: ':memory:', auth, port: 0, adminPassword: PASSWORD })
  try {
    await fn(server)
  } finally {
    await server.close()
  }
}

describe.skipIf(!have)('openstack CLI', () => {
  it.concurrent('--os-auth-type none: networks, subnets, groups, rules, ports and error cases', async () => {
    await withServer('none', (server) =>
      exercise((...args) => run(['--os-auth-type', 'none', '--os-endpoint', server.url, ...args], {})),
    )
  }, 600_000)

  it.concurrent('password auth (built-in identity) as admin: the same session', async () => {
    await withServer('builtin', (server) =>
      exercise((...args) => run(args, envFor(server, 'admin', PASSWORD, 'admin'))),
    )
  }, 600_000)

  it.concurrent('password auth: a member project and user created through the identity API see only their project', async () => {
    await withServer('builtin', async (server) => {
      const admin = (...args: string[]) => run(args, envFor(server, 'admin', PASSWORD, 'admin'))
      for (const args of [
        ['project', 'create', 'demo'],
        ['user', 'create', '--project', 'demo', '--password', 'demopw', 'demo'],
        ['role', 'add', '--project', 'demo', '--user', 'demo', 'member'],
      ]) {
        const r = await admin(...args)
        expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(0)
      }
      const adminGroup = await admin('security', 'group', 'create', 'admin-only', '-f', 'json')
      expect(adminGroup.code, adminGroup.stderr).toBe(0)
      const demo = (...args: string[]) => run(args, envFor(server, 'demo', 'demopw', 'demo'))
      const mine = await demo('security', 'group', 'create', 'mine', '-f', 'json')
      expect(mine.code, mine.stderr).toBe(0)
      const list = await demo('security', 'group', 'list', '-f', 'json')
      expect(
        JSON.parse(list.stdout)
          .map((g: { Name: string }) => g.Name)
          .sort(),
      ).toEqual(['default', 'mine'])
      const hidden = await demo('security', 'group', 'show', JSON.parse(adminGroup.stdout).id)
      expect(hidden.code).not.toBe(0)
      const bad = await run(['security', 'group', 'list'], envFor(server, 'demo', 'wrong', 'demo'))
      expect(bad.code).not.toBe(0)
      expect(bad.stderr).toMatch(/authentication|401/i)
    })
  }, 300_000)
})
