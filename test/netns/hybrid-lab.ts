/**
 * A minimal hybrid-plug compute host in network namespaces, for comparing the
 * simulator with the kernel: one host namespace with a Linux bridge br-int, per
 * port a qbr bridge joining tap (veth to the VM namespace's eth0) and qvb (veth
 * to qvo on br-int), and an "outside" namespace on br-int through `uplink`.
 * Learning and flooding are off and the FDBs are static, so a frame crosses
 * exactly the bridges of its path (no flooding into other ports' bridges); the
 * VM namespaces drop their own output so no reply moves a counter.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { qbrName, qvbName, qvoName, tapName } from '../../src/compile/names.js'
import type { Port } from '../../src/model/types.js'
import { parseIptablesSave } from '../../src/netfilter/parse-save.js'
import { Netns, run } from './netns-util.js'

export const EXT_MAC = 'fa:16:3e:ee:ee:01'

export interface ProbeRequest {
  readonly src_ns: string
  readonly dst_ns: string
  readonly src_mac: string
  readonly dst_mac: string
  readonly src_ip: string
  readonly dst_ip: string
  readonly proto: number
  readonly sport?: number
  readonly dport?: number
  readonly icmp_type?: number
  readonly icmp_code?: number
  readonly tcp_flags?: string
  readonly ip_id: number
}

export class HybridLab {
  readonly host: Netns
  readonly ext: Netns
  readonly vms = new Map<string, Netns>()
  private tool: ReturnType<typeof spawn> | null = null
  private pending: ((line: string) => void)[] = []

  constructor(readonly ports: readonly Port[]) {
    this.host = new Netns('sgwa-h')
    this.ext = new Netns('sgwa-x')
    try {
      this.build()
    } catch (err) {
      this.destroy()
      throw err
    }
  }

  private h(cmd: string, ...args: string[]): string {
    return this.host.exec(cmd, args)
  }

  private build(): void {
    const all = [this.host, this.ext]
    this.h('ip', 'link', 'set', 'lo', 'up')
    this.h('sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=1', 'net.bridge.bridge-nf-call-ip6tables=1')
    for (const ns of all)
      ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
    this.h(
      'ip',
      'link',
      'add',
      'br-int',
      'type',
      'bridge',
      'stp_state',
      '0',
      'forward_delay',
      '0',
      'mcast_snooping',
      '0',
    )
    this.h('ip', 'link', 'set', 'br-int', 'up')
    const slaves: string[] = []
    for (const p of this.ports) {
      const vm = new Netns('sgwa-v')
      this.vms.set(p.id, vm)
      vm.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
      vm.exec('iptables', ['-P', 'OUTPUT', 'DROP'])
      const tap = tapName(p.id)
      const qbr = qbrName(p.id)
      const qvb = qvbName(p.id)
      const qvo = qvoName(p.id)
      this.h('ip', 'link', 'add', tap, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', vm.name)
      vm.exec('ip', ['link', 'set', 'eth0', 'address', p.mac_address, 'up'])
      this.h('ip', 'link', 'add', qbr, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0')
      this.h('ip', 'link', 'set', qbr, 'up')
      this.h('ip', 'link', 'set', tap, 'master', qbr, 'up')
      this.h('ip', 'link', 'add', qvb, 'type', 'veth', 'peer', 'name', qvo)
      this.h('ip', 'link', 'set', qvb, 'master', qbr, 'up')
      this.h('ip', 'link', 'set', qvo, 'master', 'br-int', 'up')
      slaves.push(tap, qvb, qvo)
    }
    this.h('ip', 'link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ext.name)
    this.ext.exec('ip', ['link', 'set', 'eth0', 'address', EXT_MAC, 'up'])
    this.ext.exec('iptables', ['-P', 'OUTPUT', 'DROP'])
    this.h('ip', 'link', 'set', 'uplink', 'master', 'br-int', 'up')
    slaves.push('uplink')
    for (const s of slaves) {
      this.h(
        'ip',
        'link',
        'set',
        'dev',
        s,
        'type',
        'bridge_slave',
        'learning',
        'off',
        'flood',
        'off',
        'mcast_flood',
        'off',
      )
    }
    const macs = [...this.ports.map((p) => p.mac_address), EXT_MAC]
    for (const p of this.ports) {
      for (const mac of macs) {
        const dev = mac === p.mac_address ? tapName(p.id) : qvbName(p.id)
        this.h('bridge', 'fdb', 'add', mac, 'dev', dev, 'master', 'static')
      }
      this.h('bridge', 'fdb', 'add', p.mac_address, 'dev', qvoName(p.id), 'master', 'static')
    }
    this.h('bridge', 'fdb', 'add', EXT_MAC, 'dev', 'uplink', 'master', 'static')
  }

  /** Load a compiled document of one family (and the ipsets of that family) into the host. */
  load(doc: string, ipsets: Readonly<Record<string, readonly string[]>>, family: 4 | 6 = 4): void {
    for (const ipt of ['iptables', 'ip6tables'])
      for (const t of ['filter', 'raw']) {
        this.h(ipt, '-t', t, '-F')
        this.h(ipt, '-t', t, '-X')
      }
    this.h('ipset', 'destroy')
    for (const [name, members] of Object.entries(ipsets)) {
      const v6 = name.startsWith('NIPv6') || members.some((m) => m.includes(':'))
      if (v6 !== (family === 6)) continue
      this.h('ipset', 'create', name, 'hash:net', 'family', v6 ? 'inet6' : 'inet')
      for (const m of members) this.h('ipset', 'add', name, m)
    }
    this.host.exec(family === 4 ? 'iptables-restore' : 'ip6tables-restore', [], doc)
    this.family = family
  }

  private family: 4 | 6 = 4

  flushConntrack(): void {
    // conntrack -F exits 1 when the table is already empty on some versions; ignore that.
    try {
      this.h('conntrack', '-F')
    } catch {}
  }

  /** Packet counters of every rule and built-in chain policy: `table chain num` / `table chain policy`. */
  counters(): Map<string, number> {
    const { ruleset } = parseIptablesSave(this.h(this.family === 4 ? 'iptables-save' : 'ip6tables-save', '-c'))
    const out = new Map<string, number>()
    for (const t of ruleset.tables) {
      if (t.name !== 'filter' && t.name !== 'raw') continue
      for (const c of t.chains) {
        if (c.policy !== null) out.set(`${t.name} ${c.name} policy`, c.counters?.packets ?? 0)
        for (const [i, r] of c.rules.entries()) out.set(`${t.name} ${c.name} ${i + 1}`, r.counters?.packets ?? 0)
      }
    }
    return out
  }

  private startTool(): void {
    const tool = spawn('/usr/bin/python3', [join(import.meta.dirname, 'packet-tool.py')], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    this.tool = tool
    createInterface({ input: tool.stdout! }).on('line', (line) => this.pending.shift()?.(line))
  }

  /** Send one crafted frame; resolves with whether it reached the destination namespace. */
  probe(req: ProbeRequest): Promise<boolean> {
    if (!this.tool) this.startTool()
    return new Promise((resolve, reject) => {
      this.pending.push((line) => {
        const r = JSON.parse(line) as { delivered?: boolean; error?: string }
        if (r.error !== undefined) reject(new Error(`packet-tool: ${r.error}`))
        else resolve(r.delivered === true)
      })
      this.tool!.stdin!.write(`${JSON.stringify(req)}\n`)
    })
  }

  destroy(): void {
    this.tool?.stdin?.end()
    this.tool?.kill()
    for (const vm of this.vms.values()) vm.destroy()
    this.ext.destroy()
    this.host.destroy()
  }
}

export function pythonScapySkipReason(): string | null {
  try {
    run('/usr/bin/python3', ['-c', 'import scapy'])
    return null
  } catch {
    return 'kernel trace test skipped: /usr/bin/python3 with scapy (python3-scapy) not installed'
  }
}
