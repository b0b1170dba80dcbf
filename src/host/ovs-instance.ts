/**
 * A private Open vSwitch instance (ovsdb-server + ovs-vswitchd) whose database,
 * sockets, pidfiles and logs all live in one state directory, with a userspace
 * (netdev) br-int, for hosts without the openvswitch kernel module
 * (`shared/recipes/ovs-hybrid-netns`). Pitfalls handled here:
 * - ovs-vswitchd runs inside the host namespace (it opens ports by name there);
 * - `userspace-tso-enable=true` is set before ovs-vswitchd starts, or TCP between
 *   VMs fails with bad checksums (veth leaves segments CHECKSUM_PARTIAL);
 * - flows are not persistent: the NORMAL flow is (re)installed on start;
 * - stop only kills PIDs from our own pidfiles; a stopped daemon may linger as a
 *   zombie, so liveness is read from /proc/PID/stat.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { checkNetns, HostCommandError } from './host.js'
import { runProcess } from './real-host.js'

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema'

export class OvsInstance {
  constructor(
    readonly dir: string,
    readonly netns: string,
    readonly bridge = 'br-int',
  ) {
    checkNetns('netns', netns)
    // unix socket paths are limited to 108 bytes
    if (join(dir, 'ovs-vswitchd.ctl').length > 100) throw new Error(`OVS state dir too long: ${dir}`)
  }

  get dbSocket(): string {
    return join(this.dir, 'db.sock')
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, OVS_RUNDIR: this.dir, OVS_LOGDIR: this.dir, OVS_DBDIR: this.dir, OVS_SYSCONFDIR: this.dir }
  }

  private async run(argv: string[]): Promise<string> {
    const r = await runProcess(argv, undefined, this.env())
    if (r.code !== 0) throw new HostCommandError(argv, r.code, r.stderr, null)
    return r.stdout
  }

  private vsctl(...args: string[]): Promise<string> {
    return this.run(['ovs-vsctl', `--db=unix:${this.dbSocket}`, '--timeout=20', ...args])
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    const ns = ['ip', 'netns', 'exec', this.netns]
    if (!existsSync(join(this.dir, 'conf.db')))
      await this.run(['ovsdb-tool', 'create', join(this.dir, 'conf.db'), SCHEMA])
    await this.run([
      ...ns,
      'ovsdb-server',
      join(this.dir, 'conf.db'),
      `--remote=punix:${this.dbSocket}`,
      `--pidfile=${join(this.dir, 'ovsdb-server.pid')}`,
      `--unixctl=${join(this.dir, 'ovsdb-server.ctl')}`,
      `--log-file=${join(this.dir, 'ovsdb-server.log')}`,
      '-vconsole:err',
      '--detach',
      '--no-chdir',
    ])
    await this.vsctl('--no-wait', 'init')
    await this.vsctl('--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:userspace-tso-enable=true')
    await this.run([
      ...ns,
      'ovs-vswitchd',
      `unix:${this.dbSocket}`,
      `--pidfile=${join(this.dir, 'ovs-vswitchd.pid')}`,
      `--unixctl=${join(this.dir, 'ovs-vswitchd.ctl')}`,
      `--log-file=${join(this.dir, 'ovs-vswitchd.log')}`,
      '-vconsole:err',
      '--detach',
      '--no-chdir',
    ])
    await this.vsctl(
      '--may-exist',
      'add-br',
      this.bridge,
      '--',
      'set',
      'Bridge',
      this.bridge,
      'datapath_type=netdev',
      'fail-mode=secure',
      'mcast_snooping_enable=false',
    )
    const mgmt = `unix:${join(this.dir, `${this.bridge}.mgmt`)}`
    await this.run(['ovs-ofctl', 'del-flows', mgmt])
    await this.run(['ovs-ofctl', 'add-flow', mgmt, 'table=0,priority=0,actions=NORMAL'])
  }

  /** The ofport of an interface: > 0 once ovs-vswitchd has opened it. */
  async ofport(name: string): Promise<number> {
    const n = Number((await this.vsctl('get', 'Interface', name, 'ofport')).trim())
    return Number.isFinite(n) ? n : -1
  }

  private async pid(name: string): Promise<number | null> {
    try {
      const n = Number((await readFile(join(this.dir, `${name}.pid`), 'utf8')).trim())
      return Number.isInteger(n) && n > 1 ? n : null
    } catch {
      return null
    }
  }

  private static async alive(pid: number): Promise<boolean> {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
      return state !== 'Z' && state !== 'X'
    } catch {
      return false
    }
  }

  async stop(): Promise<void> {
    if (existsSync(this.dbSocket)) {
      await this.vsctl('--if-exists', 'del-br', this.bridge).catch(() => undefined)
    }
    for (const [name, extra] of [
      ['ovs-vswitchd', ['--cleanup']],
      ['ovsdb-server', []],
    ] as const) {
      const pid = await this.pid(name)
      if (pid === null) continue
      await runProcess(['ovs-appctl', '-t', join(this.dir, `${name}.ctl`), 'exit', ...extra], undefined, this.env())
      for (let i = 0; i < 30 && (await OvsInstance.alive(pid)); i++) await new Promise((r) => setTimeout(r, 50))
      if (await OvsInstance.alive(pid)) {
        process.kill(pid, 'SIGTERM')
        await new Promise((r) => setTimeout(r, 200))
        if (await OvsInstance.alive(pid)) process.kill(pid, 'SIGKILL')
      }
    }
    await rm(this.dir, { recursive: true, force: true })
  }
}
