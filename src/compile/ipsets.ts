/**
 * The ipsets Neutron keeps with `enable_ipset`: one hash:net set per (remote group,
 * ethertype) that a local filtered port's rules reference, holding every member in
 * ipset(8) spelling, sorted by family, address and prefix length (neutron-behaviour.md 7).
 */
import { parseCidr } from '../model/addresses.js'
import type { Ethertype, HostState, Port, SecurityGroup } from '../model/types.js'
import { ipsetName } from './names.js'
import { type CompileCache, membersOf, remoteRefsOfPorts } from './state.js'

/** ipset(8) spelling of a member: host address bare, network as address/prefix; /0 split in halves. */
export function ipsetEntries(member: string): string[] {
  const c = parseCidr(member)
  if (!c) return []
  const max = c.version === 4 ? 32 : 128
  if (c.prefix === 0) return c.version === 4 ? ['0.0.0.0/1', '128.0.0.0/1'] : ['::/1', '8000::/1']
  return [c.prefix === max ? c.network : `${c.network}/${c.prefix}`]
}

const sortKeys = new Map<string, string>()

/** Sort key of an ipset entry: family, address (fixed width), prefix length (memoized). */
function ipsetSortKey(entry: string): string {
  let k = sortKeys.get(entry)
  if (k === undefined) {
    k = makeIpsetSortKey(entry)
    if (sortKeys.size > 200_000) sortKeys.clear()
    sortKeys.set(entry, k)
  }
  return k
}

function makeIpsetSortKey(entry: string): string {
  const c = parseCidr(entry)
  if (!c) return `9 ${entry}`
  const addr = c.version === 4 ? expand4(c.network) : expand6(c.network)
  return `${c.version} ${addr} ${String(c.prefix).padStart(3, '0')}`
}

function expand4(a: string): string {
  return a
    .split('.')
    .map((o) => o.padStart(3, '0'))
    .join('.')
}

function expand6(a: string): string {
  const [head = '', tail = ''] = a.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = a.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
  const fill = a.includes('::') ? new Array(8 - h.length - t.length).fill('0') : []
  return [...h, ...fill, ...t].map((x) => x.padStart(4, '0')).join(':')
}

export function computeIpsets(
  filtered: readonly Port[],
  groups: ReadonlyMap<string, SecurityGroup>,
  state: HostState,
  cache: CompileCache,
): Map<string, readonly string[]> {
  const referenced = new Map<string, [Ethertype, string]>()
  for (const [eth, set] of remoteRefsOfPorts(filtered, groups, cache))
    for (const gid of set) referenced.set(ipsetName(eth, gid), [eth, gid])
  const names = [...referenced.keys()].sort()
  const out = new Map<string, readonly string[]>()
  for (const name of names) {
    const [eth, gid] = referenced.get(name) as [Ethertype, string]
    const list = membersOf(state, gid, eth)
    let sorted = cache.ipsetCache.get(list)
    if (!sorted) {
      const entries = new Set<string>()
      for (const m of list) for (const e of ipsetEntries(m)) entries.add(e)
      sorted = [...entries]
        .map((e) => [ipsetSortKey(e), e] as const)
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .map(([, e]) => e)
      cache.ipsetCache.set(list, sorted)
    }
    out.set(name, sorted)
  }
  return out
}
