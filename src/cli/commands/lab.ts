/**
 * `sgwall lab up|exec|down`: a sandbox compute host made of network namespaces
 * (one VM namespace per scenario port, hybrid plug, br-int OVS or Linux bridge),
 * with the scenario's firewall applied.
 */
import type { Command } from 'commander'
import { applyDesired } from '../../agent/apply.js'
import { AppError } from '../../errors.js'
import { DEFAULT_LAB_ROOT, labDown, labExec, labHost, labUp, loadLab } from '../../host/lab.js'
import type { IptablesBackend } from '../../host/real-host.js'
import { loadDesired } from '../host-options.js'

export function register(program: Command): void {
  const lab = program.command('lab').description('sandbox hosts made of network namespaces')
  lab
    .command('up')
    .description('create a lab host for a scenario, plug its ports and apply its firewall; prints JSON')
    .requiredOption('--name <name>', 'lab name (1-12 of a-z 0-9 -)')
    .requiredOption('--scenario <file>', 'host scenario (its ports become VMs)')
    .option('--br-int <kind>', 'integration bridge: ovs (userspace datapath) or linux', 'ovs')
    .option('--backend <backend>', 'iptables backend: nft or legacy', 'nft')
    .option('--step <n>', 'which state of the scenario to apply (default: the last)')
    .option('--mtu <n>', 'MTU of every plugged device', '1500')
    .option('--state-dir <dir>', 'where labs keep their records', DEFAULT_LAB_ROOT)
    .action(
      async (o: {
        name: string
        scenario: string
        brInt: string
        backend: string
        step?: string
        mtu: string
        stateDir: string
      }) => {
        if (o.brInt !== 'ovs' && o.brInt !== 'linux')
          throw new AppError('InvalidInput', `--br-int must be ovs or linux`)
        if (o.backend !== 'nft' && o.backend !== 'legacy')
          throw new AppError('InvalidInput', `--backend must be nft or legacy`)
        const mtu = Number(o.mtu)
        const { desired, state } = await loadDesired({
          scenario: o.scenario,
          backend: o.backend,
          ...(o.step === undefined ? {} : { step: o.step }),
        })
        const rec = await labUp({
          name: o.name,
          ports: state!.ports,
          brInt: o.brInt,
          backend: o.backend as IptablesBackend,
          mtu,
          stateRoot: o.stateDir,
        })
        try {
          await applyDesired(labHost(rec), desired)
        } catch (e) {
          await labDown(o.name, o.stateDir).catch(() => undefined)
          throw e
        }
        const ports = Object.fromEntries(Object.entries(rec.ports).map(([id, p]) => [id, p.netns]))
        process.stdout.write(
          `${JSON.stringify({ name: rec.name, host_netns: rec.hostNetns, br_int: rec.brInt, backend: rec.backend, ports }, null, 2)}\n`,
        )
      },
    )
  lab
    .command('exec')
    .description("run a command inside a port's VM namespace")
    .argument('<name>', 'lab name')
    .argument('<port-id>', 'port id')
    .argument('<cmd...>', 'command and arguments (after --)')
    .option('--state-dir <dir>', 'where labs keep their records', DEFAULT_LAB_ROOT)
    .action(async (name: string, portId: string, cmd: string[], o: { stateDir: string }) => {
      process.exitCode = await labExec(await loadLab(name, o.stateDir), portId, cmd)
    })
  lab
    .command('down')
    .description('remove everything a lab made')
    .argument('<name>', 'lab name')
    .option('--state-dir <dir>', 'where labs keep their records', DEFAULT_LAB_ROOT)
    .action(async (name: string, o: { stateDir: string }) => {
      await labDown(name, o.stateDir)
      process.stdout.write(`lab ${name} removed\n`)
    })
}
