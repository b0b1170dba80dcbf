/**
 * Read a dump an operator pasted, in whichever format it is: iptables-save /
 * ip6tables-save (with or without -c) or an `iptables -L` listing. Pure.
 */
import type { Family, Ruleset } from '../netfilter/ir.js'
import { parseIptablesList } from '../netfilter/parse-list.js'
import { type ParseIssue, parseIptablesSave } from '../netfilter/parse-save.js'

export type DumpFormat = 'save' | 'list'

export interface Dump {
  readonly format: DumpFormat
  readonly family: Family
  readonly ruleset: Ruleset
  readonly issues: readonly ParseIssue[]
}

export function detectFormat(text: string): DumpFormat {
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (/^Chain \S+ \(/.test(line)) return 'list'
    if (/^\*[a-z]+$/.test(line) || /^(\[\d+:\d+\] )?-A /.test(line)) return 'save'
  }
  return 'save'
}

function familyOfSave(text: string): Family {
  return /(?:^|\s)-[sd] [0-9a-fA-F]*:[0-9a-fA-F:]*\/\d+|ipv6-icmp|icmp6|ip6tables/.test(text) ? 6 : 4
}

export function readDump(text: string, family?: Family): Dump {
  const format = detectFormat(text)
  if (format === 'save') {
    const { ruleset, issues } = parseIptablesSave(text)
    return { format, family: family ?? familyOfSave(text), ruleset, issues }
  }
  const parsed = parseIptablesList(text, family ? { family } : {})
  return { format, family: family ?? parsed.family ?? 4, ruleset: parsed.ruleset, issues: parsed.issues }
}
