/**
 * The rule-create check statement is built once per `checkShape` and its text reused: creates of one
 * shape must get exactly the text they would build themselves, with a parameter for every `$n`.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { RequestContext } from './context.js'
import { parsePrefix } from './convert.js'
import { checkShape, type RuleDraft, ruleChecksQuery } from './security-groups.js'

const GROUPS = ['g-1', 'g-2', 'g-3']
const draft = fc.record({
  security_group_id: fc.constantFrom(...GROUPS),
  remote_group_id: fc.option(fc.constantFrom(...GROUPS), { nil: null }),
  direction: fc.constantFrom('ingress', 'egress'),
  protocol: fc.option(fc.constantFrom('tcp', 'udp', '6', '17', 'icmp', 'ipv6-icmp', '58', 'gre', '200', 'any'), {
    nil: null,
  }),
  port_range_min: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
  port_range_max: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
  ethertype: fc.constantFrom('IPv4' as const, 'IPv6' as const),
  prefix: fc.option(
    fc.constantFrom('0.0.0.0/0', '::/0', '10.0.0.0/8', '192.0.2.1/32', '2001:db8::/64').map((p) => parsePrefix(p)!),
    { nil: null },
  ),
  description: fc.string({ maxLength: 5 }),
  remote_address_group_id: fc.option(fc.constant('ag-1'), { nil: null }),
  project_id: fc.constantFrom('p-1', 'p-2'),
}) as fc.Arbitrary<RuleDraft>
const call = fc.record({
  isAdmin: fc.boolean(),
  project: fc.constantFrom('p-1', 'p-2'),
  drafts: fc.array(draft, { minLength: 1, maxLength: 3 }),
})
const ctxOf = (isAdmin: boolean, project: string): RequestContext => ({
  projectId: project,
  userId: 'u',
  isAdmin,
  roles: isAdmin ? ['admin'] : ['member'],
})
const groupIdsOf = (drafts: readonly RuleDraft[]) => [
  ...new Set(drafts.flatMap((d) => [d.security_group_id, ...(d.remote_group_id ? [d.remote_group_id] : [])])),
]

describe('rule-create check statement', () => {
  it('one text per checkShape: every create of a shape builds the same text', () => {
    const byShape = new Map<string, string>()
    let compared = 0
    fc.assert(
      fc.property(call, ({ isAdmin, project, drafts }) => {
        const ctx = ctxOf(isAdmin, project)
        const groupIds = groupIdsOf(drafts)
        const built = ruleChecksQuery('postgres', ctx, project, groupIds, drafts, false)
        const shape = checkShape(ctx, groupIds, drafts)
        const seen = byShape.get(shape)
        if (seen === undefined) byShape.set(shape, built.sql)
        else {
          expect(built.sql).toBe(seen)
          compared++
        }
        // and the cached path gives that text, with a parameter for each placeholder
        const cached = ruleChecksQuery('postgres', ctx, project, groupIds, drafts)
        expect(cached.sql).toBe(built.sql)
        expect(cached.parameters).toEqual(built.parameters)
        const highest = Math.max(...[...built.sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))
        expect(highest).toBe(built.parameters.length)
      }),
      { numRuns: 2000 },
    )
    // The property compared the texts of many creates of one shape.
    expect(compared).toBeGreaterThan(500)
  })

  it('a shape that leaves out a branch would be caught: shapes differ where texts differ', () => {
    const base: RuleDraft = {
      security_group_id: 'g-1',
      remote_group_id: null,
      direction: 'ingress',
      protocol: 'tcp',
      port_range_min: 22,
      port_range_max: 22,
      ethertype: 'IPv4',
      prefix: null,
      description: '',
      remote_address_group_id: null,
      project_id: 'p-1',
    }
    const ctx = ctxOf(true, 'p-1')
    const variants: RuleDraft[] = [
      base,
      { ...base, port_range_min: null, port_range_max: null },
      { ...base, protocol: null, port_range_min: null, port_range_max: null },
      { ...base, remote_group_id: 'g-2' },
      { ...base, prefix: parsePrefix('10.0.0.0/8') },
    ]
    const texts = variants.map((d) => ruleChecksQuery('postgres', ctx, 'p-1', groupIdsOf([d]), [d], false).sql)
    const shapes = variants.map((d) => checkShape(ctx, groupIdsOf([d]), [d]))
    expect(new Set(texts).size).toBe(variants.length)
    expect(new Set(shapes).size).toBe(variants.length)
  })
})
