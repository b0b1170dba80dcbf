/**
 * `ipset save` text ↔ data, and the few ipset facts the reconciler needs.
 * Knows nothing about Neutron.
 */

export interface SavedSet {
  readonly name: string
  /** e.g. `hash:net`. */
  readonly type: string
  /** `inet` or `inet6` (from the create options; `inet` when absent). */
  readonly family: string
  readonly members: readonly string[]
}

export interface IpsetTextIssue {
  readonly line: number
  readonly message: string
}

/** Parse `ipset save` output (or an `ipset restore` document of create/add lines). */
export function parseIpsetSave(text: string): { sets: SavedSet[]; issues: IpsetTextIssue[] } {
  const sets = new Map<string, { name: string; type: string; family: string; members: string[] }>()
  const issues: IpsetTextIssue[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const toks = line.split(/\s+/)
    if (toks[0] === 'create' && toks[1] && toks[2]) {
      const famIdx = toks.indexOf('family')
      const family = famIdx > 0 ? (toks[famIdx + 1] ?? 'inet') : 'inet'
      sets.set(toks[1], { name: toks[1], type: toks[2], family, members: [] })
    } else if (toks[0] === 'add' && toks[1] && toks[2]) {
      const s = sets.get(toks[1])
      if (s) s.members.push(toks[2])
      else issues.push({ line: i + 1, message: `add to unknown set ${toks[1]}` })
    } else {
      issues.push({ line: i + 1, message: `unexpected line "${line.slice(0, 60)}"` })
    }
  }
  return { sets: [...sets.values()], issues }
}

/** ipset(8) limits set names to 31 characters. */
export const IPSET_MAX_NAME = 31

const SET_NAME = /^[A-Za-z0-9_.:-]{1,31}$/

export function isValidSetName(name: string): boolean {
  return SET_NAME.test(name)
}
