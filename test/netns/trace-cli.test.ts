/**
 * `sgwall trace --netns NS`: rules and ipsets read live from a namespace (RealHost),
 * topology from the scenario; and `sgwall explain` on the same namespace's dump.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Command } from 'commander'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { register as registerExplain } from '../../src/cli/commands/explain.js'
import { register as registerTrace } from '../../src/cli/commands/trace.js'
import { kernelTestSkipReason, Netns } from './netns-util.js'

const CASE = join(import.meta.dirname, '../fixtures/neutron/ports-sharing-groups')

async function cli(args: string[]): Promise<string> {
  const program = new Command()
  program.exitOverride()
  registerTrace(program)
  registerExplain(program)
  let out = ''
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk)
    return true
  })
  try {
    await program.parseAsync(['node', 'sgwall', ...args])
  } finally {
    spy.mockRestore()
  }
  return out
}

const skip = kernelTestSkipReason()
if (skip) console.log(skip)

describe.skipIf(skip !== null)('sgwall trace --netns', () => {
  let ns: Netns
  beforeAll(() => {
    ns = new Netns('sgwa-cli')
    const expected = JSON.parse(readFileSync(join(CASE, 'expected.json'), 'utf8')) as {
      ipv4: string
      ipsets: Record<string, string[]>
    }
    for (const [name, members] of Object.entries(expected.ipsets)) {
      if (!name.startsWith('NIPv4')) continue
      ns.exec('ipset', ['create', name, 'hash:net', 'family', 'inet'])
      for (const m of members) ns.exec('ipset', ['add', name, m])
    }
    ns.exec('iptables-restore', [], expected.ipv4)
  })
  afterAll(() => ns?.destroy())

  it('traces with the live rules and the live ipsets', async () => {
    const scenario = join(CASE, 'scenario.json')
    const allowed = JSON.parse(
      await cli([
        'trace',
        '--netns',
        ns.name,
        '--scenario',
        scenario,
        '--from',
        'f3d1c2b4',
        '--to',
        '0b9e8d7c',
        '--proto',
        'tcp',
        '--dport',
        '22',
        '--json',
      ]),
    ) as { verdict: string; hops: { decided_by: { role: string } }[] }
    expect(allowed.verdict).toBe('ACCEPT')
    const denied = JSON.parse(
      await cli([
        'trace',
        '--netns',
        ns.name,
        '--scenario',
        scenario,
        '--from',
        '8.8.8.8',
        '--to',
        '0b9e8d7c',
        '--proto',
        'tcp',
        '--dport',
        '22',
        '--json',
      ]),
    ) as { verdict: string; suggestion?: { rule: { remote_ip_prefix: string } } }
    expect(denied.verdict).toBe('DROP')
    expect(denied.suggestion?.rule.remote_ip_prefix).toBe('8.8.8.8/32')
    // Emptying the set the ingress rule uses turns the allowed flow into a drop: the set is read live.
    ns.exec('ipset', ['flush', 'NIPv4fbf25720-ca6c-4dcf-9d67-'])
    const after = JSON.parse(
      await cli([
        'trace',
        '--netns',
        ns.name,
        '--scenario',
        scenario,
        '--from',
        'f3d1c2b4',
        '--to',
        '0b9e8d7c',
        '--proto',
        'tcp',
        '--dport',
        '22',
        '--json',
      ]),
    ) as { verdict: string }
    expect(after.verdict).toBe('DROP')
  })

  it('rejects --netns together with --dump', async () => {
    await expect(
      cli(['trace', '--netns', ns.name, '--dump', 'x', '--from', 'a', '--to', 'b', '--proto', 'tcp']),
    ).rejects.toThrow(/--netns/)
  })
})
