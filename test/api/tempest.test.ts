/**
 * Tempest's and neutron-tempest-plugin's security-group (and quota) API tests, unmodified
 * (Debian `tempest`, `neutron-tempest-plugin`), against a server on loopback with its built-in
 * identity and tempest dynamic credentials. Skips with a printed reason when tempest is missing
 * (fails in CI).
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { extensions } from '../../src/api/extensions.js'
import { type RunningServer, startServer } from '../../src/api/server.js'

const TEMPEST = '/usr/bin/tempest'
const have = existsSync(TEMPEST) && existsSync('/usr/lib/python3/dist-packages/neutron_tempest_plugin')
if (!have) {
  if (process.env.CI === 'true')
    throw new Error('CI=true but tempest/neutron-tempest-plugin are missing (scripts/install-debian-deps.sh)')
  console.warn('skipping tempest tests: apt-get install tempest neutron-tempest-plugin')
}

const REGEX =
  '^(tempest\\.api\\.network\\.(test_security_groups|admin\\.test_quotas)|neutron_tempest_plugin\\.api\\.(test_security_groups|admin\\.test_security_groups|admin\\.test_quotas|test_quotas))'

function run(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      TEMPEST,
      args,
      {
        cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd },
        timeout: 900_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}\n${stderr}` }),
    )
  })
}

describe.skipIf(!have)('tempest security-group API tests', () => {
  let server: RunningServer
  let dir: string
  beforeAll(async () => {
    server = await startServer({ db: ':memory:', auth: 'builtin', port: 0, adminPassword: 'tempest-admin-secret' })
    dir = mkdtempSync(join(tmpdir(), 'sgwall-tempest-'))
  })
  afterAll(async () => {
    await server?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('passes (tempest + neutron-tempest-plugin, dynamic credentials)', async () => {
    const ws = join(dir, 'ws')
    const init = await run(['init', ws], dir)
    expect(init.code, init.out).toBe(0)
    writeFileSync(
      join(ws, 'etc', 'tempest.conf'),
      `[DEFAULT]
log_dir = ${ws}/logs
log_file = tempest.log

[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = admin
admin_password = tempest-admin-secret
admin_project_name = admin
admin_domain_name = Default
default_credentials_domain_name = Default
tempest_roles = member

[identity]
uri_v3 = ${server.url}/identity/v3
auth_version = v3
region = RegionOne

[identity-feature-enabled]
api_v2 = false
api_v3 = true

[service_available]
neutron = true
nova = false
glance = false
cinder = false
swift = false
horizon = false

[network]
project_networks_reachable = false
shared_physical_network = false

[network-feature-enabled]
api_extensions = ${extensions.map((e) => e.alias).join(',')}
ipv6 = true
ipv6_subnet_attributes = false

[validation]
run_validation = false
`,
    )
    const r = await run(['run', '--regex', REGEX, '--concurrency', '1'], ws)
    const failed = /- Failed: (\d+)/.exec(r.out)
    const passed = /- Passed: (\d+)/.exec(r.out)
    expect(failed?.[1], r.out.slice(-6000)).toBe('0')
    expect(Number(passed?.[1] ?? 0), r.out.slice(-3000)).toBeGreaterThanOrEqual(100)
    expect(r.code, r.out.slice(-3000)).toBe(0)
  }, 900_000)
})
