/**
 * A sandbox compute host made of network namespaces: one "host" namespace with
 * br-int (private OVS userspace instance or Linux bridge) and one namespace per
 * port standing in for the VM (eth0 with the port's MAC and fixed IPs, its peer in
 * the host namespace named as the tap). Ports are hybrid-plugged (plug.ts). The
 * lab's record lives in a state directory so `lab exec` and `lab down` find
 * everything it made, and nothing else.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AppError } from '../errors.js'
import { checkAddress, checkMac, type LinkOp } from './host.js'
import { OvsInstance } from './ovs-instance.js'
import { type BrInt, type BrIntKind, hybridDevices, plugPorts, unplugPorts } from './plug.js'
import { type IptablesBackend, RealHost, runProcess } from './real-host.js'

export interface LabPort {
  readonly id: string
  readonly mac_address: string
  readonly fixed_ips: readonly string[]
}

export interface LabOptions {
  readonly name: string
  readonly ports: readonly LabPort[]
  readonly brInt: BrIntKind
  readonly backend: IptablesBackend
  readonly mtu?: number
  /** Plug ports with a bare tap device and no VM namespace (for benchmarks). */
  readonly withoutVms?: boolean
  readonly stateRoot?: string
}

export interface LabRecord {
  readonly name: string
  readonly hostNetns: string
  readonly brInt: BrIntKind
  readonly backend: IptablesBackend
  readonly mtu: number
  readonly stateDir: string
  readonly ovsDir: string | null
  /** port id → VM namespace (null when plugged without a VM). */
  readonly ports: Readonly<Record<string, { readonly netns: string | null; readonly tap: string }>>
}

export const DEFAULT_LAB_ROOT = '/run/sgwall-lab'
const LAB_NAME = /^[a-z0-9][a-z0-9-]{0,11}$/

export function checkLabName(name: string): string {
  if (!LAB_NAME.test(name)) {
    throw new AppError(
      'InvalidInput',
      `lab name ${JSON.stringify(name)}: 1-12 of a-z 0-9 -, starting with a letter/digit`,
    )
  }
  return name
}

function labDir(name: string, root: string): string {
  return join(root, checkLabName(name))
}

async function sh(argv: string[]): Promise<void> {
  const r = await runProcess(argv)
  if (r.code !== 0) throw new AppError('HostCommandFailed', `${argv.join(' ')}: ${r.stderr.trim()}`)
}

export function labHost(rec: LabRecord): RealHost {
  return new RealHost({
    netns: rec.hostNetns,
    backend: rec.backend,
    ...(rec.ovsDir === null ? {} : { ovsDbSocket: join(rec.ovsDir, 'db.sock') }),
  })
}

export function labBrInt(rec: LabRecord): BrInt {
  return { kind: rec.brInt, name: 'br-int' }
}

export async function loadLab(name: string, root = DEFAULT_LAB_ROOT): Promise<LabRecord> {
  const file = join(labDir(name, root), 'lab.json')
  if (!existsSync(file)) throw new AppError('NotFound', `lab ${name} does not exist (no ${file})`)
  return JSON.parse(await readFile(file, 'utf8')) as LabRecord
}

/** Create the lab: namespaces, br-int, VMs, hybrid plug of every port. */
export async function labUp(o: LabOptions): Promise<LabRecord> {
  const root = o.stateRoot ?? DEFAULT_LAB_ROOT
  const dir = labDir(o.name, root)
  if (existsSync(join(dir, 'lab.json'))) throw new AppError('Conflict', `lab ${o.name} exists; run lab down first`)
  const mtu = o.mtu ?? 1500
  const hostNetns = `sgl-${o.name}-host`
  const ports: Record<string, { netns: string | null; tap: string }> = {}
  o.ports.forEach((p, i) => {
    const d = hybridDevices(p.id)
    checkMac(`ports[${i}].mac_address`, p.mac_address)
    for (const ip of p.fixed_ips) checkAddress(`ports[${i}].fixed_ips`, ip)
    if (Object.values(ports).some((x) => x.tap === d.tap)) {
      throw new AppError('InvalidInput', `ports[${i}].id: first 11 characters collide with another port`)
    }
    ports[p.id] = { netns: o.withoutVms ? null : `sgl-${o.name}-${p.id.slice(0, 11)}`, tap: d.tap }
  })
  const rec: LabRecord = {
    name: o.name,
    hostNetns,
    brInt: o.brInt,
    backend: o.backend,
    mtu,
    stateDir: dir,
    ovsDir: o.brInt === 'ovs' ? join(dir, 'ovs') : null,
    ports,
  }
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'lab.json'), `${JSON.stringify(rec, null, 2)}\n`)
  try {
    await sh(['ip', 'netns', 'add', hostNetns])
    const host = labHost(rec)
    await host.linkBatch([{ op: 'set', name: 'lo', up: true }])
    await host.sysctlSet({
      'net.bridge.bridge-nf-call-iptables': '1',
      'net.bridge.bridge-nf-call-ip6tables': '1',
    })
    if (o.brInt === 'ovs') {
      await new OvsInstance(rec.ovsDir!, hostNetns).start()
    } else {
      await host.linkBatch([
        { op: 'add-bridge', name: 'br-int', mtu },
        { op: 'set', name: 'br-int', up: true },
      ])
    }
    // the hypervisor's part: a VM NIC whose host end is the tap
    const hostOps: LinkOp[] = []
    for (const p of o.ports) {
      const vm = ports[p.id]!
      if (vm.netns === null) {
        hostOps.push({ op: 'add-tap', name: vm.tap })
        continue
      }
      await sh(['ip', 'netns', 'add', vm.netns])
      hostOps.push({ op: 'add-veth', name: vm.tap, peer: 'eth0', mtu, peerNetns: vm.netns })
    }
    await host.linkBatch(hostOps)
    // the hypervisor's tap carries no host-side IPv6 address (see plug.ts on getaddrinfo)
    await host.sysctlSet(
      Object.fromEntries(o.ports.map((p) => [`net.ipv6.conf.${ports[p.id]!.tap}.disable_ipv6`, '1'])),
    )
    for (const p of o.ports) {
      const vm = ports[p.id]!
      if (vm.netns === null) continue
      const v = new RealHost({ netns: vm.netns })
      const ops: LinkOp[] = [
        { op: 'set', name: 'lo', up: true },
        { op: 'set', name: 'eth0', address: p.mac_address, mtu, up: true },
      ]
      for (const ip of p.fixed_ips)
        ops.push({ op: 'addr-add', name: 'eth0', cidr: ip.includes(':') ? `${ip}/128` : `${ip}/32` })
      // every destination on-link: the lab's ports share one L2 segment through br-int
      ops.push({ op: 'route-default', name: 'eth0', v6: false })
      if (p.fixed_ips.some((ip) => ip.includes(':'))) ops.push({ op: 'route-default', name: 'eth0', v6: true })
      await v.linkBatch(ops)
    }
    await plugPorts(
      host,
      labBrInt(rec),
      o.ports.map((p) => ({ portId: p.id, mac: p.mac_address, mtu })),
    )
    if (o.brInt === 'ovs')
      await waitOfports(
        rec,
        o.ports.map((p) => hybridDevices(p.id).qvo),
      )
    return rec
  } catch (e) {
    await labDown(o.name, root).catch(() => undefined)
    throw e
  }
}

/** ovs-vsctl exits 0 even when ovs-vswitchd cannot open a port: wait for every ofport > 0. */
async function waitOfports(rec: LabRecord, qvos: readonly string[]): Promise<void> {
  const ovs = new OvsInstance(rec.ovsDir!, rec.hostNetns)
  for (const q of qvos) {
    let of = -1
    for (let i = 0; i < 50 && of <= 0; i++) {
      of = await ovs.ofport(q).catch(() => -1)
      if (of <= 0) await new Promise((r) => setTimeout(r, 100))
    }
    if (of <= 0)
      throw new AppError(
        'HostCommandFailed',
        `OVS could not open ${q} (ofport ${of}); see ${rec.ovsDir}/ovs-vswitchd.log`,
      )
  }
}

/** Remove everything the lab made: OVS instance (by its pidfiles), namespaces, state dir. */
export async function labDown(name: string, root = DEFAULT_LAB_ROOT): Promise<void> {
  const dir = labDir(name, root)
  const file = join(dir, 'lab.json')
  if (!existsSync(file)) throw new AppError('NotFound', `lab ${name} does not exist (no ${file})`)
  const rec = JSON.parse(await readFile(file, 'utf8')) as LabRecord
  if (rec.ovsDir !== null && existsSync(rec.ovsDir)) {
    if (existsSync(`/run/netns/${rec.hostNetns}`)) {
      await unplugPorts(labHost(rec), labBrInt(rec), Object.keys(rec.ports)).catch(() => undefined)
    }
    await new OvsInstance(rec.ovsDir, rec.hostNetns).stop()
  }
  for (const ns of [rec.hostNetns, ...Object.values(rec.ports).map((p) => p.netns)]) {
    if (ns !== null && existsSync(`/run/netns/${ns}`)) await sh(['ip', 'netns', 'del', ns])
  }
  await rm(dir, { recursive: true, force: true })
}

/** argv that runs a command inside a port's VM namespace. */
export function labExecArgv(rec: LabRecord, portId: string, cmd: readonly string[]): string[] {
  const p = rec.ports[portId]
  if (!p) throw new AppError('NotFound', `lab ${rec.name} has no port ${portId}`)
  if (p.netns === null) throw new AppError('InvalidInput', `port ${portId} was plugged without a VM`)
  if (cmd.length === 0) throw new AppError('InvalidInput', 'lab exec: no command given')
  return ['ip', 'netns', 'exec', p.netns, ...cmd]
}

/** Run a command inside a port's VM namespace with the caller's stdio; resolves with its exit code. */
export function labExec(rec: LabRecord, portId: string, cmd: readonly string[]): Promise<number> {
  const argv = labExecArgv(rec, portId, cmd)
  return new Promise<number>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' })
    child.on('error', reject)
    child.on('close', (c) => resolve(c ?? 1))
  })
}
