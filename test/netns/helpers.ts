/**
 * Shared helpers of the real-kernel tests: namespaces with unique names, the skip
 * reason when the machine cannot run them, and command runners.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

/** Why kernel tests cannot run here, or null when they can. */
export function kernelSkipReason(tools: readonly string[] = []): string | null {
  if (process.getuid?.() !== 0) return 'not root: the real-kernel tests need network namespaces'
  for (const t of ['ip', 'iptables-nft-restore', 'ipset', 'conntrack', ...tools]) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0)
      return `tool ${t} is missing (scripts/install-debian-deps.sh)`
  }
  return null
}

let counter = 0
/** A unique, short namespace name for this process. */
export function uniqueName(tag: string): string {
  counter++
  return `dp${process.pid % 100000}${tag}${counter}`
}

export function sh(argv: readonly string[], input?: string): string {
  return execFileSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    input: input ?? '',
    stdio: ['pipe', 'pipe', 'pipe'],
  })
}

export function inNs(ns: string, argv: readonly string[], input?: string): string {
  return sh(['ip', 'netns', 'exec', ns, ...argv], input)
}

export function addNetns(name: string): void {
  sh(['ip', 'netns', 'add', name])
  sh(['ip', '-n', name, 'link', 'set', 'lo', 'up'])
}

export function delNetns(name: string): void {
  if (existsSync(`/run/netns/${name}`)) spawnSync('ip', ['netns', 'del', name])
}

/** Foreign rules a real host may hold (Docker-like), placed before sgwall runs. */
export const FOREIGN_V4 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
`

// ---- a lab driven by the compiler, for packet tests ----

import { applyDesired } from '../../src/agent/apply.js'
import { type AgentMemory, HostCompiler, toStateResult } from '../../src/compile/index.js'
import { type LabPort, type LabRecord, labDown, labHost, labUp } from '../../src/host/lab.js'
import type { BrIntKind } from '../../src/host/plug.js'
import type { IptablesBackend, RealHost } from '../../src/host/real-host.js'
import type { HostConfig, HostState, Port, SecurityGroup } from '../../src/model/types.js'

export const NET = '5486845f-a199-4cce-bd66-10c4a3f7c8f3'

export function port(id: string, mac: string, ips: string[], groups: string[], extra: Partial<Port> = {}): Port {
  return {
    id,
    mac_address: mac,
    fixed_ips: ips,
    allowed_address_pairs: [],
    security_groups: groups,
    port_security_enabled: true,
    network_id: NET,
    ...extra,
  }
}

export function group(id: string, rules: SecurityGroup['rules'], stateful = true): SecurityGroup {
  return { id, stateful, rules }
}

let ruleSeq = 0
export function sgRule(
  direction: 'ingress' | 'egress',
  protocol: string | null,
  extra: { min?: number; max?: number; prefix?: string; remoteGroup?: string; ethertype?: 'IPv4' | 'IPv6' } = {},
): SecurityGroup['rules'][number] {
  ruleSeq++
  return {
    id: `99999999-0000-4000-8000-${String(ruleSeq).padStart(12, '0')}`,
    direction,
    ethertype: extra.ethertype ?? 'IPv4',
    protocol,
    port_range_min: extra.min ?? null,
    port_range_max: extra.max ?? null,
    remote_ip_prefix: extra.prefix ?? null,
    remote_group_id: extra.remoteGroup ?? null,
  }
}

/** A lab host whose firewall follows HostStates through the compiler, as the agent would. */
export class PacketLab {
  rec!: LabRecord
  host!: RealHost
  private memory: AgentMemory | undefined
  private compiler: HostCompiler

  /** Switch driver options (e.g. ipset off); the next apply recompiles from scratch. */
  reconfigure(config: HostConfig): void {
    this.compiler = new HostCompiler(config)
    this.memory = undefined
  }

  constructor(
    readonly name: string,
    readonly brInt: BrIntKind,
    readonly backend: IptablesBackend,
    readonly config: HostConfig = { firewall_driver: 'iptables_hybrid', enable_ipset: true },
  ) {
    this.compiler = new HostCompiler(config)
  }

  sh(ns: string, argv: readonly string[]): string {
    return inNs(ns, argv)
  }

  async up(ports: readonly LabPort[], stateRoot: string): Promise<void> {
    this.rec = await labUp({ name: this.name, ports, brInt: this.brInt, backend: this.backend, stateRoot })
    this.host = labHost(this.rec)
  }

  async down(stateRoot: string): Promise<void> {
    if (this.rec) await labDown(this.name, stateRoot)
  }

  /** Compile and apply a state; `keepConntrack` skips the conntrack deletions (to show what they do). */
  async apply(state: HostState, options: { keepConntrack?: boolean } = {}) {
    const c = this.compiler.compile(state, this.memory)
    this.memory = c.memory
    const desired = toStateResult(c)
    return applyDesired(this.host, options.keepConntrack ? { ...desired, conntrack: [] } : desired)
  }

  vmNs(portId: string): string {
    const ns = this.rec.ports[portId]?.netns
    if (!ns) throw new Error(`no VM for ${portId}`)
    return ns
  }

  /** Echo replies received of `count` pings. */
  ping(from: string, to: string, count = 3, extra: string[] = []): number {
    const r = spawnSync(
      'ip',
      ['netns', 'exec', this.vmNs(from), 'ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', '1', ...extra, to],
      {
        encoding: 'utf8',
      },
    )
    const m = /(\d+) received/.exec(r.stdout)
    return m ? Number(m[1]) : 0
  }

  /** Start a background command in a VM; resolves with its output when it ends. */
  background(portId: string, argv: string[]): { done: Promise<string>; kill: () => void } {
    const child = spawn('ip', ['netns', 'exec', this.vmNs(portId), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString()
    })
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString()
    })
    const done = new Promise<string>((resolve) => child.on('close', () => resolve(out)))
    return { done, kill: () => child.kill('SIGINT') }
  }

  /** Packet counter of the first rule of `chain` whose body contains `fragment` (`=body`: equals). */
  async counter(chain: string, fragment: string, family: 4 | 6 = 4): Promise<number> {
    const save = await this.host.iptablesSave(family, { counters: true })
    for (const line of save.split('\n')) {
      const m = /^\[(\d+):\d+\] -A (\S+) (.*)$/.exec(line)
      const hit = fragment.startsWith('=') ? m?.[3] === fragment.slice(1) : (m?.[3] ?? '').includes(fragment)
      if (m && m[2] === chain && hit) return Number(m[1])
    }
    throw new Error(`no rule in ${chain} containing ${fragment}`)
  }
}
