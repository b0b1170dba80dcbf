/**
 * bench/api: the Neutron API under load, on SQLite and PostgreSQL.
 * Store: 5000 security groups × 20 rules (one group has 100), seeded directly through the
 * store schema (the same rows the API writes). Server: `sgwall`'s API (noauth, admin) in a
 * child process on loopback. Clients: 16 concurrent keep-alive HTTP connections in this process (plain
 * sockets, see rawLoad; `--client undici` for undici's).
 * Prints medians (p50), p90, throughput and CPU time per request: the server process's (the
 * service time without queueing), this client process's, and the machine's `postgres` processes'
 * (PostgreSQL runs); never asserts timings.
 *
 *   npx tsc -p tsconfig.build.json; node dist/bench/api.js [--dialects sqlite,postgres] [--groups 5000] [--only WORD]
 *     [--repeat N] [--client raw|undici] [--create-seconds S]
 *   (`--repeat N`: run the selected operations N times in the same server, each round printed: the later
 *   rounds show the server with its code paths warmed up; every create adds a new rule)
 *   (`--create-seconds S`: creates run for S seconds, as autocannon's default `-d 10`; the row under it
 *   gives the first 1000 creates of the run, the server's cold start; 0: exactly 1000 creates)
 *   (PostgreSQL needs SGWALL_TEST_PG_URL, e.g. `source scripts/start-postgres.sh`)
 */
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { finished } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { createGunzip, gunzipSync } from 'node:zlib'
import pg from 'pg'
import { Pool } from 'undici'
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
  /** This (client) process's CPU time per request, ms. */
  clientCpu?: number
  /** CPU time of this machine's `postgres` processes per request, ms (when /proc shows them). */
  dbCpu?: number
  /** A timed run: the stats of its first 1000 requests. */
  first?: Stats
}

/** CPU ms of every `postgres` process on this machine (Linux /proc; 0 where it cannot be read). */
function postgresCpu(): number {
  let ticks = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const close = stat.lastIndexOf(')')
      if (!stat.slice(stat.indexOf('(') + 1, close).startsWith('postgres')) continue
      const f = stat.slice(close + 2).split(' ')
      ticks += Number(f[11]) + Number(f[12]) // utime, stime (fields 14 and 15)
    } catch {
      // gone meanwhile
    }
  }
  return (ticks * 1000) / 100 // USER_HZ is 100 on Linux
}

/**
 * `--client undici`: `clients` concurrent keep-alive HTTP/1.1 connections (undici: far less CPU per request than
 * node:http's client, so less of the machine goes to the load generator), each sending its next
 * request when the answer to the last one has been read whole. Every answer must be a success.
 */
/** How long a load runs: a number of requests, or seconds (as autocannon's `-d`). */
type Amount = number | { seconds: number }

/** Stats of latencies (ms, in completion order) taken over `secs`; `first`: of the first 1000 too. */
function stats(lat: number[], secs: number, first = false): Stats {
  const sorted = [...lat].sort((a, b) => a - b)
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
  const st: Stats = { p50: q(0.5), p90: q(0.9), rps: lat.length / secs, n: lat.length }
  if (first && lat.length > 1000) st.first = stats(lat.slice(0, 1000), secs)
  return st
}

const until = (amount: Amount) => {
  const deadline = typeof amount === 'number' ? 0 : performance.now() + amount.seconds * 1000
  return (i: number) => (typeof amount === 'number' ? i < amount : performance.now() < deadline)
}

async function undiciLoad(
  base: string,
  clients: number,
  amount: Amount,
  next: (i: number) => { method: 'GET' | 'POST'; path: string; body?: string; gzip?: boolean },
): Promise<Stats> {
  const pool = new Pool(base, { connections: clients, pipelining: 1 })
  const more = until(amount)
  const lat: number[] = []
  let i = 0
  const t0 = performance.now()
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (more(i)) {
          const r = next(i++)
          const s = performance.now()
          const res = await pool.request({
            method: r.method,
            path: r.path,
            body: r.body ?? null,
            headers: {
              'content-type': 'application/json',
              ...(r.gzip ? { 'accept-encoding': 'gzip, deflate' } : {}),
            },
          })
          // Read to its end (and a gzip body decompressed, as a real client must before it can parse it).
          const stream = res.headers['content-encoding'] === 'gzip' ? res.body.pipe(createGunzip()) : res.body
          stream.resume()
          await finished(stream)
          if (res.statusCode >= 300) throw new Error(`${r.method} ${r.path} → ${res.statusCode}`)
          lat.push(performance.now() - s)
        }
      }),
    )
  } finally {
    await pool.close()
  }
  return stats(lat, (performance.now() - t0) / 1000, typeof amount !== 'number')
}

type Request = { method: 'GET' | 'POST'; path: string; body?: string; gzip?: boolean }

/**
 * The default load generator: `clients` keep-alive HTTP/1.1 connections on plain sockets, each writing its
 * next request when the answer to the last one has been read whole (by its Content-Length; a body is
 * not kept, except a gzip one, which is decompressed as a real client must before it can parse it). Like autocannon or wrk it spends little
 * CPU per request (the server shares this machine's cores with it); every answer must be a success.
 */
async function rawLoad(base: string, clients: number, amount: Amount, next: (i: number) => Request): Promise<Stats> {
  const more = until(amount)
  const { hostname, port } = new URL(base)
  const lat: number[] = []
  let i = 0
  const t0 = performance.now()
  const sockets: Socket[] = []
  try {
    await Promise.all(
      Array.from(
        { length: clients },
        () =>
          new Promise<void>((resolve, reject) => {
            const sock = connect({ host: hostname, port: Number(port), noDelay: true })
            sockets.push(sock)
            let req: Request | null = null
            let start = 0
            let chunks: Buffer[] = []
            let have = 0
            let need = -1 // header + body bytes, once the header is read
            let status = 0
            let gzip = false
            const send = () => {
              if (!more(i)) {
                sock.end()
                resolve()
                return
              }
              req = next(i++)
              const body = req.body ?? ''
              let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\n`
              if (req.gzip) head += 'accept-encoding: gzip, deflate\r\n'
              if (req.method === 'POST')
                head += `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`
              start = performance.now()
              sock.write(`${head}\r\n${body}`)
            }
            sock.on('connect', send)
            sock.on('error', reject)
            sock.on('data', (d: Buffer) => {
              have += d.length
              if (need < 0) {
                chunks.push(d)
                const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
                chunks = [buf]
                const end = buf.indexOf('\r\n\r\n')
                if (end < 0) return
                const head = buf.toString('latin1', 0, end)
                status = Number(head.slice(9, 12))
                const len = /\r\ncontent-length: *(\d+)/i.exec(head)
                if (!len) {
                  reject(new Error(`${req?.method} ${req?.path}: an answer without content-length`))
                  return
                }
                gzip = /\r\ncontent-encoding: *gzip/i.test(head)
                need = end + 4 + Number(len[1])
                chunks = [buf.subarray(end + 4)]
              } else if (gzip || status >= 300) chunks.push(d) // kept only to be decompressed or shown
              if (have < need) return
              if (have > need) {
                reject(new Error(`${req?.method} ${req?.path}: more bytes than the answer`))
                return
              }
              if (gzip) gunzipSync(Buffer.concat(chunks))
              if (status < 200 || status >= 300) {
                reject(new Error(`${req?.method} ${req?.path} → ${status}: ${Buffer.concat(chunks).toString()}`))
                return
              }
              lat.push(performance.now() - start)
              chunks = []
              have = 0
              need = -1
              send()
            })
          }),
      ),
    )
  } finally {
    for (const s of sockets) s.destroy()
  }
  return stats(lat, (performance.now() - t0) / 1000, typeof amount !== 'number')
}

/** The load generator (`--client raw|undici`). */
let load = rawLoad

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

/** The protocols with ports the creates cycle through (65535 rules each). */
const PORT_PROTOCOLS = ['udp', 'tcp', 'sctp', 'udplite', 'dccp']

async function benchDialect(
  dialect: 'sqlite' | 'postgres',
  groups: number,
  only: string,
  repeat: number,
  createSeconds: number,
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
  let created = 0
  const ts = performance.now()
  const { bigGroup, ruleId } = await seed(url, groups, 20)
  console.log(
    `${dialect}: seeded ${groups} groups, ${(groups - 1) * 20 + 100} rules in ${((performance.now() - ts) / 1000).toFixed(1)} s`,
  )
  const child = fork(fileURLToPath(import.meta.url), ['--server', url], {
    stdio: 'inherit',
    execArgv: [
      ...(process.env.BENCH_SERVER_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SERVER_PROF}`] : []),
      // BENCH_SERVER_NODE_ARGS: more node flags for the server process (e.g. `--trace-gc`).
      ...(process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ],
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
      const u0 = process.cpuUsage()
      const d0 = dialect === 'postgres' ? postgresCpu() : 0
      const st = await run()
      st.cpu = ((await serverCpu()) - c0) / st.n
      const u = process.cpuUsage(u0)
      st.clientCpu = (u.user + u.system) / 1000 / st.n
      if (dialect === 'postgres') st.dbCpu = (postgresCpu() - d0) / st.n
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
        `create rule (16 clients${createSeconds > 0 ? `, ${createSeconds} s` : ''})${tag}`,
        () =>
          load(base, 16, createSeconds > 0 ? { seconds: createSeconds } : 1000, () => {
            // A new rule every time: the k-th create's port and port protocol.
            const k = created++
            return {
              method: 'POST',
              path: '/v2.0/security-group-rules',
              body: JSON.stringify({
                security_group_rule: {
                  security_group_id: bigGroup,
                  direction: 'ingress',
                  protocol: PORT_PROTOCOLS[Math.floor(k / 65535) % PORT_PROTOCOLS.length],
                  port_range_min: 1 + (k % 65535),
                  port_range_max: 1 + (k % 65535),
                },
              }),
            }
          }),
      ])
    }
    const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ')
    console.log(`${dialect}: (load average before ${la(load0)}, after ${la(loadavg())})`)
    console.log(
      `  ${'operation'.padEnd(44)} ${'p50 ms'.padStart(9)} ${'p90 ms'.padStart(9)} ${'req/s'.padStart(9)} ${'n'.padStart(6)} ${'srv cpu ms/req'.padStart(15)} ${'client cpu'.padStart(11)} ${'db cpu'.padStart(7)}`,
    )
    for (const [name, s] of all) {
      console.log(
        `  ${name.padEnd(44)} ${s.p50.toFixed(2).padStart(9)} ${s.p90.toFixed(2).padStart(9)} ${s.rps.toFixed(0).padStart(9)} ${String(s.n).padStart(6)} ${(s.cpu ?? 0).toFixed(3).padStart(15)} ${(s.clientCpu ?? 0).toFixed(3).padStart(11)} ${s.dbCpu === undefined ? '      -' : s.dbCpu.toFixed(3).padStart(7)}`,
      )
      if (s.first)
        console.log(
          `  ${'  of which the first 1000'.padEnd(44)} ${s.first.p50.toFixed(2).padStart(9)} ${s.first.p90.toFixed(2).padStart(9)}`,
        )
    }
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
  const client = opt('--client', 'raw')
  if (client !== 'raw' && client !== 'undici') throw new Error(`--client: raw or undici, not ${client}`)
  if (client === 'undici') load = undiciLoad
  for (const d of opt('--dialects', 'sqlite,postgres').split(','))
    await benchDialect(
      d as 'sqlite' | 'postgres',
      groups,
      opt('--only', ''),
      Number(opt('--repeat', '1')),
      Number(opt('--create-seconds', '10')),
    )
}
