/**
 * Read cache of the security-group representations (groups with their embedded rules), valid
 * for one store revision. Every request first reads the committed revision (one indexed query);
 * the cache is served only while it is unchanged, so a commit by this or any other server
 * process (shared PostgreSQL) invalidates it. The cache is labelled with the revision read
 * *before* loading the rows, so it can only be newer than its label, never older: a stale
 * label just causes one more rebuild. Objects are shared between requests: never mutate them.
 */
import type { Store } from '../store/index.js'
import type { SecurityGroupRuleTable } from '../store/schema.js'
import { loadTags } from './common.js'
import type { Wire } from './listing.js'
import { groupWire } from './security-groups.js'

export interface CachedGroup {
  readonly projectId: string
  /** Wire form with `shared: false` (the owner's and admin's view). */
  readonly wire: Wire
  /** JSON.stringify(wire) */
  readonly json: string
}

interface Snapshot {
  readonly revision: number
  readonly groups: readonly CachedGroup[]
  readonly byId: ReadonlyMap<string, CachedGroup>
}

export class GroupCache {
  private snapshot: Snapshot | null = null
  private pending: Promise<Snapshot> | null = null
  private pendingRevision = -1

  constructor(private readonly store: Store) {}

  /** The snapshot if it is current, without building one (cheap callers fall back to SQL). */
  async current(): Promise<Snapshot | null> {
    if (!this.snapshot) return null
    return (await this.store.revision()) === this.snapshot.revision ? this.snapshot : null
  }

  async get(): Promise<Snapshot> {
    const revision = await this.store.revision()
    if (this.snapshot?.revision === revision) return this.snapshot
    if (this.pending && this.pendingRevision === revision) return this.pending
    this.pendingRevision = revision
    const p = this.build(revision).then((s) => {
      if (!this.snapshot || this.snapshot.revision < s.revision) this.snapshot = s
      if (this.pending === p) this.pending = null
      return s
    })
    p.catch(() => {
      if (this.pending === p) this.pending = null
    })
    this.pending = p
    return p
  }

  private async build(revision: number): Promise<Snapshot> {
    const db = this.store.db
    const [groups, rules, tags] = await Promise.all([
      db.selectFrom('security_groups').selectAll().orderBy('standard_attr_id').execute(),
      db.selectFrom('security_group_rules').selectAll().orderBy('standard_attr_id').execute(),
      loadTags(db, 'security_groups', null),
    ])
    const byGroup = new Map<string, SecurityGroupRuleTable[]>()
    for (const r of rules) {
      const l = byGroup.get(r.security_group_id)
      if (l) l.push(r)
      else byGroup.set(r.security_group_id, [r])
    }
    const list: CachedGroup[] = groups.map((g) => {
      const wire = groupWire(g, byGroup.get(g.id) ?? [], tags.get(g.id) ?? [], false)
      return { projectId: g.project_id, wire, json: JSON.stringify(wire) }
    })
    return { revision, groups: list, byId: new Map(list.map((g) => [g.wire.id as string, g])) }
  }
}
