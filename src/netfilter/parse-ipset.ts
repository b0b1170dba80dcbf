/**
 * `ipset save` and `ipset list` text → sets and their members.
 *
 * Both forms may be mixed in one paste. Member options (`timeout 30`,
 * `packets 0 bytes 0`, `nomatch`) are read past: the simulator needs the
 * addresses only. Anything else is reported with its line number.
 */
import type { ParseIssue } from './parse-save.js'

export interface IpsetInfo {
  readonly name: string
  /** `hash:net`, `hash:ip`, … */
  readonly type: string
  readonly family: 'inet' | 'inet6' | null
  readonly members: readonly string[]
}

interface MutableSet {
  name: string
  type: string
  family: 'inet' | 'inet6' | null
  members: string[]
  /** `Number of entries:` of an `ipset list` block, checked against the members read. */
  declaredCount: number | null
  line: number
  text: string
}

const MEMBER = /^[0-9a-fA-F:.]+(?:\/\d{1,3})?(?:-[0-9a-fA-F:.]+)?(?:,\S+)*$/

export function parseIpset(text: string): { sets: IpsetInfo[]; issues: ParseIssue[] } {
  const issues: ParseIssue[] = []
  const sets = new Map<string, MutableSet>()
  let listing: MutableSet | null = null
  let inMembers = false
  const lines = text.split('\n')

  const familyOf = (words: readonly string[]): 'inet' | 'inet6' | null => {
    const i = words.indexOf('family')
    const f = i >= 0 ? words[i + 1] : undefined
    return f === 'inet' || f === 'inet6' ? f : null
  }
  const closeListing = (): void => {
    if (listing && listing.declaredCount !== null && listing.declaredCount !== listing.members.length) {
      issues.push({
        line: listing.line,
        message: `set ${listing.name} declares ${listing.declaredCount} entries but lists ${listing.members.length}`,
        text: listing.text,
      })
    }
    listing = null
    inMembers = false
  }

  for (let ln = 0; ln < lines.length; ln++) {
    const raw = lines[ln]!
    const line = raw.replace(/\r$/, '').trim()
    const lineNo = ln + 1
    const issue = (message: string): void => {
      issues.push({ line: lineNo, message, text: raw })
    }
    if (line === '') {
      if (listing) closeListing()
      continue
    }
    if (line.startsWith('#')) continue
    const words = line.split(/\s+/)
    if (words[0] === 'create') {
      closeListing()
      const name = words[1]
      const type = words[2]
      if (!name || !type) {
        issue('create needs a set name and a type')
        continue
      }
      if (sets.has(name)) issue(`set ${name} created twice`)
      sets.set(name, { name, type, family: familyOf(words), members: [], declaredCount: null, line: lineNo, text: raw })
      continue
    }
    if (words[0] === 'add') {
      closeListing()
      const set = words[1] ? sets.get(words[1]) : undefined
      const member = words[2]
      if (!set) issue(`add to set ${words[1] ?? '(none)'}, which was not created before`)
      else if (!member || !MEMBER.test(member)) issue(`unreadable member "${member ?? ''}"`)
      else set.members.push(member)
      continue
    }
    const field = /^([A-Za-z ]+):\s*(.*)$/.exec(line)
    if (field && !inMembers) {
      const key = field[1]!
      const value = field[2]!
      if (key === 'Name') {
        closeListing()
        if (sets.has(value)) issue(`set ${value} listed twice`)
        listing = { name: value, type: '', family: null, members: [], declaredCount: null, line: lineNo, text: raw }
        sets.set(value, listing)
        continue
      }
      if (!listing) {
        issue(`"${key}:" outside of a set listing`)
        continue
      }
      if (key === 'Type') listing.type = value
      else if (key === 'Header') listing.family = familyOf(value.split(/\s+/))
      else if (key === 'Number of entries') listing.declaredCount = Number(value)
      else if (key === 'Members') inMembers = true
      else if (!['Revision', 'Size in memory', 'References'].includes(key)) issue(`unknown field "${key}"`)
      continue
    }
    if (inMembers && field?.[1] === 'Name') {
      // The next block without a blank line in between.
      closeListing()
      ln--
      continue
    }
    if (listing && inMembers) {
      const member = words[0]!
      if (!MEMBER.test(member)) issue(`unreadable member "${member}"`)
      else listing.members.push(member)
      continue
    }
    issue('not an ipset save or list line')
  }
  closeListing()
  const out: IpsetInfo[] = [...sets.values()].map((s) => ({
    name: s.name,
    type: s.type,
    family: s.family,
    members: s.members,
  }))
  return { sets: out, issues }
}

/** name → members, the shape of expected.json's `ipsets`. */
export function ipsetMembers(sets: readonly IpsetInfo[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const s of sets) out[s.name] = [...s.members]
  return out
}
