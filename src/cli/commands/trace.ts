/** `sgwall trace` and `sgwall reach`: follow packets through a host's rules (simulated, no kernel). */
import type { Command } from 'commander'
import { reachMatrix, renderReach } from '../../analysis/reach.js'
import { readDump } from '../../analysis/read-dump.js'
import {
  type HostRulesets,
  HostTracer,
  renderHostTrace,
  TraceInputError,
  type TraceRequest,
} from '../../analysis/trace-host.js'
import { compileHost } from '../../compile/index.js'
import { AppError } from '../../errors.js'
import { RealHost } from '../../host/real-host.js'
import type { HostState, Port } from '../../model/types.js'
import { applyStep } from '../../model/validate.js'
import type { Ruleset } from '../../netfilter/ir.js'
import { ipsetMembers, parseIpset } from '../../netfilter/parse-ipset.js'
import type { CtState } from '../../netfilter/trace.js'
import { readScenarioFile } from '../scenario-file.js'
import { parseFamilyOption, readTextFile } from './explain.js'

interface HostOptions {
  scenario?: string
  netns?: string
  dump?: string
  dump6?: string
  ipsets?: string
  brInt: string
}

function intOption(name: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) > max)
    throw new AppError('InvalidInput', `--${name} must be an integer 0-${max}, got "${value}"`)
  return Number(value)
}

async function loadHost(opts: HostOptions, devices: readonly string[]): Promise<HostRulesets> {
  if (opts.brInt !== 'ovs' && opts.brInt !== 'linux')
    throw new AppError('InvalidInput', `--br-int must be ovs or linux, got "${opts.brInt}"`)
  if (!opts.scenario && !opts.dump && !opts.netns)
    throw new AppError('InvalidInput', 'give --scenario S.json, --dump FILE or --netns NS')
  if (opts.netns && (opts.dump || opts.dump6 || opts.ipsets))
    throw new AppError(
      'InvalidInput',
      '--netns reads the rules and ipsets live; do not combine it with --dump/--dump6/--ipsets',
    )
  let state: HostState
  let config: HostRulesets['config']
  let ipv4: Ruleset = { tables: [] }
  let ipv6: Ruleset = { tables: [] }
  let ipsets: Record<string, readonly string[]> | null = null
  if (opts.scenario) {
    const s = await readScenarioFile(opts.scenario)
    state = s.steps.reduce(applyStep, { security_groups: s.security_groups, members: s.members, ports: s.ports })
    config = s.config
    const compiled = compileHost(state, config)
    ipv4 = compiled.ipv4
    ipv6 = compiled.ipv6
    ipsets = { ...compiled.ipsets }
  } else {
    // Rules from a dump only: ports are known by their tap device; give addresses (and --src-mac) explicitly.
    config = { firewall_driver: 'iptables_hybrid', enable_ipset: true }
    const ports: Port[] = devices
      .filter((d) => /^tap[0-9A-Za-z-]{1,11}$/.test(d))
      .map((d) => ({
        id: d.slice(3).padEnd(11, '-'),
        device: d,
        mac_address: '00:00:00:00:00:00',
        fixed_ips: [],
        allowed_address_pairs: [],
        security_groups: [],
        port_security_enabled: true,
        network_id: 'unknown-network',
      }))
    state = { security_groups: [], members: {}, ports }
  }
  for (const [file, family] of [
    [opts.dump, undefined],
    [opts.dump6, 6],
  ] as const) {
    if (!file) continue
    const dump = readDump(await readTextFile(file, 'dump'), family)
    for (const i of dump.issues) process.stderr.write(`warning: ${file}:${i.line}: ${i.message}: ${i.text}\n`)
    if (dump.family === 4) ipv4 = dump.ruleset
    else ipv6 = dump.ruleset
  }
  if (opts.netns) {
    const live = await readLive(opts.netns)
    ipv4 = live.ipv4
    ipv6 = live.ipv6
    ipsets = live.ipsets
  }
  if (opts.ipsets) {
    const parsed = parseIpset(await readTextFile(opts.ipsets, 'ipsets'))
    for (const i of parsed.issues) process.stderr.write(`warning: ${opts.ipsets}:${i.line}: ${i.message}: ${i.text}\n`)
    ipsets = ipsetMembers(parsed.sets)
  } else if (opts.dump && !opts.scenario) ipsets = null
  return { config, state, ipv4, ipv6, ipsets, brInt: opts.brInt }
}

/** The rules and ipsets a namespace holds now (iptables-save -c, ip6tables-save -c, ipset save). */
async function readLive(
  netns: string,
): Promise<{ ipv4: Ruleset; ipv6: Ruleset; ipsets: Record<string, readonly string[]> }> {
  const host = new RealHost({ netns })
  const out: { ipv4: Ruleset; ipv6: Ruleset } = { ipv4: { tables: [] }, ipv6: { tables: [] } }
  for (const family of [4, 6] as const) {
    const text = await host.iptablesSave(family, { counters: true })
    const dump = readDump(text, family)
    for (const i of dump.issues)
      process.stderr.write(`warning: netns ${netns} IPv${family}:${i.line}: ${i.message}: ${i.text}\n`)
    out[family === 4 ? 'ipv4' : 'ipv6'] = dump.ruleset
  }
  const sets = parseIpset(await host.ipsetSave())
  for (const i of sets.issues)
    process.stderr.write(`warning: netns ${netns} ipset:${i.line}: ${i.message}: ${i.text}\n`)
  return { ...out, ipsets: ipsetMembers(sets.sets) }
}

function hostOptions(cmd: Command): Command {
  return cmd
    .option('--scenario <file>', 'scenario JSON: topology, and the rules compiled from it')
    .option(
      '--netns <name>',
      'read the rules and ipsets live from this network namespace (with --scenario: topology from it)',
    )
    .option(
      '--dump <file>',
      'iptables-save or iptables -L dump to use as the rules (with --scenario: check the host against it)',
    )
    .option('--dump6 <file>', 'ip6tables-save or ip6tables -L dump')
    .option('--ipsets <file>', 'ipset save or ipset list output')
    .option('--br-int <kind>', 'ovs (no netfilter pass on br-int) or linux (one more pass)', 'ovs')
    .option('--json', 'machine-readable output')
}

export function register(program: Command): void {
  hostOptions(
    program
      .command('trace')
      .description('follow one packet through the host firewall: every rule evaluated, the verdict, a suggested fix')
      .requiredOption('--from <endpoint>', 'port id (or prefix), tap device, or an IP address outside the host')
      .requiredOption('--to <endpoint>', 'port id (or prefix), tap device, or an IP address outside the host')
      .requiredOption('--proto <proto>', 'tcp, udp, icmp, ipv6-icmp, sctp, … or a number')
      .option('--family <family>', '4 or 6')
      .option('--sport <port>')
      .option('--dport <port>')
      .option('--icmp-type <type>')
      .option('--icmp-code <code>')
      .option('--src-ip <address>', 'source address (default: the from-port address; another one tests spoofing)')
      .option('--dst-ip <address>')
      .option('--src-mac <mac>')
      .option('--state <state>', 'NEW, ESTABLISHED, RELATED or INVALID', 'NEW')
      .option('--verbose', 'print every rule evaluated, not only those that matched'),
  ).action(async (opts: Record<string, string | boolean | undefined> & HostOptions) => {
    const state = String(opts.state)
    if (!['NEW', 'ESTABLISHED', 'RELATED', 'INVALID'].includes(state))
      throw new AppError('InvalidInput', `--state must be NEW, ESTABLISHED, RELATED or INVALID, got "${state}"`)
    if (opts.srcMac !== undefined && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(String(opts.srcMac)))
      throw new AppError('InvalidInput', `--src-mac must look like fa:16:3e:00:00:01, got "${opts.srcMac}"`)
    const host = await loadHost(opts, [String(opts.from), String(opts.to)])
    const family = parseFamilyOption(opts.family as string | undefined)
    const req: TraceRequest = {
      from: String(opts.from),
      to: String(opts.to),
      proto: String(opts.proto),
      state: state as CtState,
      ...(family ? { family } : {}),
      ...optionalInt('sport', opts.sport, 65535),
      ...optionalInt('dport', opts.dport, 65535),
      ...optionalInt('icmpType', opts.icmpType, 255),
      ...optionalInt('icmpCode', opts.icmpCode, 255),
      ...(opts.srcIp ? { srcIp: String(opts.srcIp) } : {}),
      ...(opts.dstIp ? { dstIp: String(opts.dstIp) } : {}),
      ...(opts.srcMac ? { srcMac: String(opts.srcMac) } : {}),
    }
    try {
      const t = new HostTracer(host).trace(req)
      process.stdout.write(opts.json ? `${JSON.stringify(t, null, 2)}\n` : renderHostTrace(t, opts.verbose === true))
      if (t.verdict === 'UNKNOWN') process.exitCode = 1
    } catch (err) {
      if (err instanceof TraceInputError) throw new AppError('InvalidInput', err.message)
      throw err
    }
  })

  hostOptions(
    program
      .command('reach')
      .description('which ports can open a connection to which (simulated from the same engine as trace)')
      .option('--proto <proto>', 'protocol', 'tcp')
      .option('--dport <port>', 'destination port', '22')
      .option('--family <family>', '4 or 6', '4'),
  ).action(async (opts: Record<string, string | boolean | undefined> & HostOptions) => {
    const host = await loadHost(opts, [])
    const family = parseFamilyOption(String(opts.family)) ?? 4
    const dport = intOption('dport', opts.dport as string | undefined, 65535)
    try {
      const m = reachMatrix(new HostTracer(host), {
        proto: String(opts.proto),
        family,
        ...(dport !== undefined ? { dport } : {}),
      })
      process.stdout.write(opts.json ? `${JSON.stringify(m, null, 2)}\n` : renderReach(m))
    } catch (err) {
      if (err instanceof TraceInputError) throw new AppError('InvalidInput', err.message)
      throw err
    }
  })
}

function optionalInt(key: string, value: unknown, max: number): Record<string, number> {
  const name = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
  const v = intOption(name, value === undefined ? undefined : String(value), max)
  return v === undefined ? {} : { [key]: v }
}
