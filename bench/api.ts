/**
 * bench/api: the Neutron API under load, on SQLite and PostgreSQL.
 * Store: 5000 security groups × 20 rules (one group has 100), seeded directly through the
 * store schema (the same rows the API writes). Server: `sgwall`'s API (noauth, admin) in a
 * child process on loopback. Clients: 16 concurrent keep-alive HTTP clients in this process.
 * Prints medians (p50), p90, throughput and the server process's CPU time per request (the
 * service time without queueing; PostgreSQL's own processes not included); never asserts timings.
 *
 *   npx tsc -p tsconfig.build.json; node dist/bench/api.js [--dialects sqlite,postgres] [--groups 5000] [--only WORD] [--repeat N]
 *   (`--repeat N`: run the selected operations N times in the same server, each round printed: the later
 *   rounds show the server with its code paths warmed up; creates use new ports every round)
 *   (PostgreSQL needs SGWALL_TEST_PG_URL, e.g. `source scripts/start-postgres.sh`)
 */
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createGunzip } from 'node:zlib'
import pg from 'pg'
import { startServer } from '../src/api/server.js'
import { isoSeconds, openStore } from '../src/store/index.js'

const PROJECT = 'fake_project_id'

async function seed(url: string, groups: number, rulesPerGroup: number): Promise<{ bigGroup: string; ruleId: string }> {
  const store = await openStore(url)
  const now = isoSeconds(new Date())
  let bigGroup = ''
  let ruleId = ''
  let std = 1
  await store.write(async (w) => {
    for (let start = 0; start < groups; start += 250) {
      const gs = []
      const rs = []
      for (let g = start; g < Math.min(groups, start + 250); g++) {
        const id = randomUUID()
        if (g === 0) bigGroup = id
        gs.push({
          id,
          project_id: PROJECT,
          name: g === 0 ? 'default' : `bench-${g}`,
          description: '',
          created_at: now,
          updated_at: now,
          revision_number: 1,
          standard_attr_id: std++,
          stateful: 1,
        })
        const n = g === 0 ? 100 : rulesPerGroup
        for (let k = 0; k < n; k++) {
          const rid = randomUUID()
          if (g === 0 && k === 0) ruleId = rid
          rs.push({
            id: rid,
            project_id: PROJECT,
            security_group_id: id,
            direction: k % 2 ? 'egress' : 'ingress',
            ethertype: 'IPv4',
            protocol: 'tcp',
            port_range_min: 1000 + k,
            port_range_max: 1000 + k,
            remote_ip_prefix: `10.${k}.0.0/16`,
            normalized_cidr: `10.${k}.0.0/16`,
            remote_group_id: null,
            remote_address_group_id: null,
            description: '',
            created_at: now,
            updated_at: now,
            revision_number: 0,
            standard_attr_id: std++,
          })
        }
      }
      await w.tx.insertInto('security_groups').values(gs).execute()
      for (let i = 0; i < rs.length; i += 500)
        await w.tx
          .insertInto('security_group_rules')
          .values(rs.slice(i, i + 500))
          .execute()
    }
    await w.tx.updateTable('sgwall_meta').set({ standard_attr_id: std }).where('id', '=', 1).execute()
    await w.tx
      .insertInto('quotas')
      .values([
        { project_id: PROJECT, resource: 'security_group', hard_limit: -1 },
        { project_id: PROJECT, resource: 'security_group_rule', hard_limit: -1 },
      ])
      .execute()
  })
  await store.close()
  return { bigGroup, ruleId }
}

interface Stats {
  p50: number
  p90: number
  rps: number
  n: number
  /** Server process CPU time (user + system) per request, ms; filled in by the caller. */
  cpu?: number
}

function call(agent: Agent, url: URL, method: string, body?: string, gzip = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        agent,
        headers: {
          'content-type': 'application/json',
          ...(body ? { 'content-length': Buffer.byteLength(body) } : {}),
          ...(gzip ? { 'accept-encoding': 'gzip, deflate' } : {}),
        },
      },
      (res) => {
        // A gzip body is decompressed, as a real client must before it can parse it.
        const stream = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res
        stream.on('data', () => {})
        stream.on('end', () => resolve(res.statusCode ?? 0))
        stream.on('error', reject)
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

async function load(
  base: string,
  clients: number,
  total: number,
  next: (i: number) => { method: 'GET' | 'POST'; path: string; body?: string; gzip?: boolean },
): Promise<Stats> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients })
  const lat: number[] = []
  let i = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (i < total) {
        const r = next(i++)
        const s = performance.now()
        const status = await call(agent, new URL(`${base}${r.path}`), r.method, r.body, r.gzip)
        if (status >= 300) throw new Error(`${r.method} ${r.path} → ${status}`)
        lat.push(performance.now() - s)
      }
    }),
  )
  const secs = (performance.now() - t0) / 1000
  agent.destroy()
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!
  return { p50: q(0.5), p90: q(0.9), rps: lat.length / secs, n: lat.length }
}

async function runServer(url: string): Promise<void> {
  const s = await startServer({ db: url, auth: 'none', port: 0 })
  process.send?.({ url: s.url })
  process.on('message', async (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage()
      process.send?.({ cpu: (u.user + u.system) / 1000 })
      return
    }
    await s.close()
    process.exit(0)
  })
}

async function benchDialect(
  dialect: 'sqlite' | 'postgres',
  groups: number,
  only: string,
  repeat: number,
): Promise<void> {
  let url: string
  let cleanup: () => Promise<void>
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'sgwall-bench-'))
    url = join(dir, 'bench.db')
    cleanup = async () => rmSync(dir, { recursive: true, force: true })
  } else {
    const base = process.env.SGWALL_TEST_PG_URL
    if (!base) {
      console.log('postgres: skipped (SGWALL_TEST_PG_URL not set; source scripts/start-postgres.sh)')
      return
    }
    const name = `sgwall_bench_${Date.now()}`
    const c = new pg.Client({ connectionString: base })
    await c.connect()
    await c.query(`CREATE DATABASE ${name}`)
    await c.end()
    const u = new URL(base)
    u.pathname = `/${name}`
    url = u.toString()
    cleanup = async () => {
      const d = new pg.Client({ connectionString: base })
      await d.connect()
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await d.end()
    }
  }
  const ts = performance.now()
  const { bigGroup, ruleId } = await seed(url, groups, 20)
  console.log(
    `${dialect}: seeded ${groups} groups, ${(groups - 1) * 20 + 100} rules in ${((performance.now() - ts) / 1000).toFixed(1)} s`,
  )
  const child = fork(fileURLToPath(import.meta.url), ['--server', url], {
    stdio: 'inherit',
    execArgv: process.env.BENCH_SERVER_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SERVER_PROF}`] : [],
  })
  const base = await new Promise<string>((resolve) => child.once('message', (m: { url: string }) => resolve(m.url)))
  try {
    const all: [string, Stats][] = []
    // `--only WORD`: run only the operations whose name contains WORD (profiling one of them).
    const serverCpu = () =>
      new Promise<number>((resolve) => {
        child.once('message', (m: { cpu: number }) => resolve(m.cpu))
        child.send('cpu')
      })
    const add = async ([name, run]: [string, () => Promise<Stats>]) => {
      if (!name.includes(only)) return
      const c0 = await serverCpu()
      const st = await run()
      st.cpu = ((await serverCpu()) - c0) / st.n
      all.push([name, st])
    }
    const load0 = loadavg()
    await load(base, 1, 2, () => ({ method: 'GET', path: '/v2.0/security-groups' })) // warm-up
    for (let round = 0; round < repeat; round++) {
      const tag = repeat > 1 ? ` #${round + 1}` : ''
      await add([
        `list all groups (full, 1 client)${tag}`,
        () => load(base, 1, 5, () => ({ method: 'GET', path: '/v2.0/security-groups' })),
      ])
      await add([
        `list all groups (full, gzip, 1 client)${tag}`,
        () => load(base, 1, 5, () => ({ method: 'GET', path: '/v2.0/security-groups', gzip: true })),
      ])
      await add([
        `list all groups (full, 16 clients)${tag}`,
        () => load(base, 16, 32, () => ({ method: 'GET', path: '/v2.0/security-groups' })),
      ])
      await add([
        `list all groups (OSC fields, 16 clients)${tag}`,
        () =>
          load(base, 16, 160, () => ({
            method: 'GET',
            path: '/v2.0/security-groups?fields=id&fields=name&fields=description&fields=project_id&fields=tags',
          })),
      ])
      await add([
        `show group with 100 rules (16 clients)${tag}`,
        () => load(base, 16, 2000, () => ({ method: 'GET', path: `/v2.0/security-groups/${bigGroup}` })),
      ])
      await add([
        `show one rule (16 clients)${tag}`,
        () => load(base, 16, 5000, () => ({ method: 'GET', path: `/v2.0/security-group-rules/${ruleId}` })),
      ])
      await add([
        `list rules of one group (16 clients)${tag}`,
        () =>
          load(base, 16, 2000, () => ({
            method: 'GET',
            path: `/v2.0/security-group-rules?security_group_id=${bigGroup}`,
          })),
      ])
      await add([
        `create rule (16 clients)${tag}`,
        () =>
          load(base, 16, 1000, (i) => ({
            method: 'POST',
            path: '/v2.0/security-group-rules',
            body: JSON.stringify({
              security_group_rule: {
                security_group_id: bigGroup,
                direction: 'ingress',
                protocol: 'udp',
                port_range_min: 20000 + round * 1000 + i,
                port_range_max: 20000 + round * 1000 + i,
              },
            }),
          })),
      ])
    }
    const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ')
    console.log(`${dialect}: (load average before ${la(load0)}, after ${la(loadavg())})`)
    console.log(
      `  ${'operation'.padEnd(44)} ${'p50 ms'.padStart(9)} ${'p90 ms'.padStart(9)} ${'req/s'.padStart(9)} ${'n'.padStart(6)} ${'srv cpu ms/req'.padStart(15)}`,
    )
    for (const [name, s] of all)
      console.log(
        `  ${name.padEnd(44)} ${s.p50.toFixed(2).padStart(9)} ${s.p90.toFixed(2).padStart(9)} ${s.rps.toFixed(0).padStart(9)} ${String(s.n).padStart(6)} ${(s.cpu ?? 0).toFixed(3).padStart(15)}`,
      )
  } finally {
    child.send('stop')
    await new Promise((r) => child.once('exit', r))
    await cleanup()
  }
}

const argv = process.argv.slice(2)
if (argv[0] === '--server') await runServer(argv[1]!)
else {
  const opt = (name: string, dflt: string) => {
    const k = argv.indexOf(name)
    return k >= 0 && argv[k + 1] ? argv[k + 1]! : dflt
  }
  const groups = Number(opt('--groups', '5000'))
  for (const d of opt('--dialects', 'sqlite,postgres').split(','))
    await benchDialect(d as 'sqlite' | 'postgres', groups, opt('--only', ''), Number(opt('--repeat', '1')))
}
