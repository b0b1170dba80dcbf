/**
 * Shared helpers of the real-kernel tests: namespaces with unique names, the skip
 * reason when the machine cannot run them, and command runners.
 */
import { execFileSync, spawnSync } from 'node:child_process'
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
