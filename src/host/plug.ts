/**
 * Plug and unplug ports the way os-vif's "ovs hybrid" plug does:
 *
 *   VM tapX ── [Linux bridge qbrX] ── qvbX ══veth══ qvoX ── [br-int]
 *
 * qbr with STP off and forward delay 0 (and multicast snooping off, so the bridge
 * sends no IGMP noise that would move counters), IPv6 off on qbr, the network's
 * MTU on every device, qvo on br-int: with OVS as a port whose interface carries
 * external-ids iface-id / attached-mac / iface-status / vm-uuid (what the OVS
 * agent looks for), or enslaved to a Linux bridge br-int. The tap itself belongs
 * to the hypervisor: plug enslaves it to qbr, unplug leaves it alone.
 *
 * Idempotent: plug creates only what is missing and fixes masters/MTU/state;
 * unplug removes exactly qbr and the qvb/qvo pair (and the OVS port).
 */
import { qbrName, qvbName, qvoName, tapName } from '../compile/names.js'
import { AppError } from '../errors.js'
import { ID_RE } from '../model/validate.js'
import { checkMac, checkMtu, type Host, type LinkInfo, type LinkOp, type OvsPort } from './host.js'

export type BrIntKind = 'ovs' | 'linux'

export interface PlugSpec {
  readonly portId: string
  readonly mac: string
  readonly mtu: number
  /** The instance uuid for external-ids:vm-uuid (default: the port id). */
  readonly vmUuid?: string
}

export interface BrInt {
  readonly kind: BrIntKind
  readonly name: string
}

const PORT_ID = ID_RE

/**
 * Device names of a port (`tap`/`qbr`/`qvb`/`qvo` + first 11 characters of the port id),
 * as Neutron's hybrid driver and os-vif name them.
 */
export function hybridDevices(portId: string): { tap: string; qbr: string; qvb: string; qvo: string } {
  if (!PORT_ID.test(portId)) throw new AppError('InvalidInput', `port id ${JSON.stringify(portId)} is not a port id`)
  return { tap: tapName(portId), qbr: qbrName(portId), qvb: qvbName(portId), qvo: qvoName(portId) }
}

/** The bridge-netfilter sysctls the hybrid driver needs (per network namespace). */
export const BRIDGE_NF_SYSCTLS: Readonly<Record<string, string>> = {
  'net.bridge.bridge-nf-call-iptables': '1',
  'net.bridge.bridge-nf-call-ip6tables': '1',
}

function validate(specs: readonly PlugSpec[]): void {
  specs.forEach((s, i) => {
    if (!PORT_ID.test(s.portId))
      throw new AppError('InvalidInput', `ports[${i}].portId: not a UUID: ${JSON.stringify(s.portId)}`)
    checkMac(`ports[${i}].mac`, s.mac)
    checkMtu(`ports[${i}].mtu`, s.mtu)
    if (s.vmUuid !== undefined && !PORT_ID.test(s.vmUuid))
      throw new AppError('InvalidInput', `ports[${i}].vmUuid: not a UUID`)
  })
}

/** Plug ports (idempotent). The taps must exist already (the hypervisor creates them). */
export async function plugPorts(host: Host, brInt: BrInt, specs: readonly PlugSpec[]): Promise<void> {
  validate(specs)
  const links = new Map((await host.listLinks()).map((l): [string, LinkInfo] => [l.name, l]))
  const create: LinkOp[] = []
  const attach: LinkOp[] = []
  const sysctls: Record<string, string> = { ...BRIDGE_NF_SYSCTLS }
  const ovsPorts: OvsPort[] = []
  for (const s of specs) {
    const d = hybridDevices(s.portId)
    const tap = links.get(d.tap)
    if (!tap)
      throw new AppError(
        'InvalidInput',
        `port ${s.portId}: tap device ${d.tap} does not exist (the hypervisor creates it)`,
      )
    if (!links.has(d.qbr)) create.push({ op: 'add-bridge', name: d.qbr, mtu: s.mtu })
    if (!links.has(d.qvb)) {
      if (links.has(d.qvo)) create.push({ op: 'delete', name: d.qvo })
      create.push({ op: 'add-veth', name: d.qvb, peer: d.qvo, mtu: s.mtu })
    }
    // No IPv6 (link-local) addresses on the host side of the plug: os-vif disables it on qbr; we
    // do it on qvb/qvo too, because every port number iptables-restore parses goes through
    // getaddrinfo(AI_ADDRCONFIG), which dumps all addresses of the namespace: with 3 link-locals
    // per port, a 1000-port restore spent a minute in those dumps.
    for (const dev of [d.qbr, d.qvb, d.qvo]) sysctls[`net.ipv6.conf.${dev}.disable_ipv6`] = '1'
    const qbr = links.get(d.qbr)
    const qvb = links.get(d.qvb)
    const qvo = links.get(d.qvo)
    if (!qbr || qbr.mtu !== s.mtu || !qbr.up) attach.push({ op: 'set', name: d.qbr, mtu: s.mtu, up: true })
    if (tap.master !== d.qbr || tap.mtu !== s.mtu || !tap.up)
      attach.push({ op: 'set', name: d.tap, master: d.qbr, mtu: s.mtu, up: true })
    if (!qvb || qvb.master !== d.qbr || qvb.mtu !== s.mtu || !qvb.up)
      attach.push({ op: 'set', name: d.qvb, master: d.qbr, mtu: s.mtu, up: true })
    if (brInt.kind === 'linux') {
      if (!qvo || qvo.master !== brInt.name || qvo.mtu !== s.mtu || !qvo.up)
        attach.push({ op: 'set', name: d.qvo, master: brInt.name, mtu: s.mtu, up: true })
    } else {
      if (!qvo || qvo.mtu !== s.mtu || !qvo.up) attach.push({ op: 'set', name: d.qvo, mtu: s.mtu, up: true })
      ovsPorts.push({
        name: d.qvo,
        externalIds: {
          'iface-id': s.portId,
          'attached-mac': s.mac.toLowerCase(),
          'iface-status': 'active',
          'vm-uuid': s.vmUuid ?? s.portId,
        },
      })
    }
  }
  await host.linkBatch(create)
  await host.sysctlSet(sysctls)
  await host.linkBatch(attach)
  if (brInt.kind === 'ovs') await host.ovsAddPorts(brInt.name, ovsPorts)
}

/** Unplug ports (idempotent): removes the OVS port, the qvb/qvo pair and qbr; the tap stays. */
export async function unplugPorts(host: Host, brInt: BrInt, portIds: readonly string[]): Promise<void> {
  const links = new Set((await host.listLinks()).map((l) => l.name))
  const devices = portIds.map(hybridDevices)
  if (brInt.kind === 'ovs')
    await host.ovsDelPorts(
      brInt.name,
      devices.map((d) => d.qvo),
    )
  const ops: LinkOp[] = []
  for (const d of devices) {
    if (links.has(d.qvb)) ops.push({ op: 'delete', name: d.qvb })
    else if (links.has(d.qvo)) ops.push({ op: 'delete', name: d.qvo })
    if (links.has(d.qbr)) ops.push({ op: 'delete', name: d.qbr })
  }
  await host.linkBatch(ops)
}
