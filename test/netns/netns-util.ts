/**
 * Small helpers for kernel tests: a throwaway network namespace and commands run in it.
 * Tests that use them must skip (with a printed reason) when `kernelTestSkipReason()` is not null.
 */
import { execFileSync, spawnSync } from 'node:child_process'

export function kernelTestSkipReason(
  tools: readonly string[] = ['ip', 'iptables', 'ip6tables', 'ipset'],
): string | null {
  if (process.getuid?.() !== 0) return 'kernel test skipped: not running as root'
  for (const t of tools) {
    const r = spawnSync('sh', ['-c', `command -v ${t}`])
    if (r.status !== 0) return `kernel test skipped: ${t} not installed`
  }
  return null
}

export function run(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, { input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })
}

let counter = 0

export class Netns {
  readonly name: string
  constructor(prefix: string) {
    counter++
    this.name = `${prefix}-${process.pid}-${counter}`
    run('ip', ['netns', 'add', this.name])
  }
  exec(cmd: string, args: readonly string[], input?: string): string {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], input)
  }
  destroy(): void {
    spawnSync('ip', ['netns', 'del', this.name])
  }
}
