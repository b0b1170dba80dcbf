/**
 * Read view of the security groups and their rules, in memory, kept current through the
 * change log. Every read first asks the store for its committed revision (a prepared
 * statement on SQLite, one shared query for concurrent callers on PostgreSQL); when it moved,
 * the view reads the change-log rows after its own revision and reloads only the groups they
 * name (a rule change names its group), so a commit by this or any other server process
 * (shared PostgreSQL) is seen by the next read. The view is labelled with the revision read
 * *before* loading rows, so its rows can only be newer than its label: a later refresh
 * reloads those groups again. When the log was pruned past the view's revision, or too much
 * changed, it is rebuilt from the tables.
 *
 * Everything a read needs is here: group and rule representations (with their JSON text,
 * built once), the RBAC shares of groups, which projects have a default group, and the
 * full-list response bodies by caller. Objects are shared between requests: never mutate them.
 * The view object itself is updated in place (synchronously, between awaits): callers use it
 * without awaiting in between.
 */
import { gzip } from 'node:zlib'
import type { Store } from '../store/index.js'
import type { SecurityGroupRuleTable, SecurityGroupTable } from '../store/schema.js'
import { loadTags } from './common.js'
import type { Wire } from './listing.js'
import { groupWire, ruleWire } from './security-groups.js'

/** JSON text of shared wire objects, computed once (see `toJson`). */
const JSON_OF = new WeakMap<object, string | null>()

/** `JSON.stringify(obj)`, memoized for objects of the read view (which are never mutated). */
export function toJson(obj: object): string {
  const j = JSON_OF.get(obj)
  if (j === undefined) return JSON.stringify(obj)
  if (j !== null) return j
  const text = JSON.stringify(obj)
  JSON_OF.set(obj, text)
  return text
}

export class CachedRule {
  private w: Wire | null = null
  constructor(
    readonly row: SecurityGroupRuleTable,
    readonly group: CachedGroup,
  ) {}
  /** Wire form of `GET /security-group-rules/{id}` (not the embedded one). */
  get wire(): Wire {
    if (this.w === null) {
      this.w = Object.freeze(ruleWire(this.row))
      JSON_OF.set(this.w, null)
    }
    return this.w
  }
}

export class CachedGroup {
  readonly id: string
  readonly projectId: string
  readonly name: string
  readonly std: number
  /** Wire form with `shared: false` (the owner's and admin's view). */
  readonly wire: Wire
  readonly rules: CachedRule[] = []
  private sharedForm: Wire | null = null
  private showBodies: [Buffer | null, Buffer | null] = [null, null]
  constructor(row: SecurityGroupTable, rules: readonly SecurityGroupRuleTable[], tags: readonly string[]) {
    this.id = row.id
    this.projectId = row.project_id
    this.name = row.name
    this.std = row.standard_attr_id
    this.wire = Object.freeze(groupWire(row, rules, tags, false))
    JSON_OF.set(this.wire, JSON.stringify(this.wire))
    for (const r of rules) this.rules.push(new CachedRule(r, this))
  }
  get json(): string {
    return toJson(this.wire)
  }
  /** `GET /security-groups/{id}` response body (with `shared` as given), encoded once. */
  showBody(shared: boolean): Buffer {
    const k = shared ? 1 : 0
    let b = this.showBodies[k]
    if (b === null) {
      b = Buffer.from(`{"security_group":${toJson(shared ? this.sharedWire : this.wire)}}`)
      this.showBodies[k] = b
    }
    return b
  }
  /** Wire form with `shared: true` (a project it is shared with, not the owner). */
  get sharedWire(): Wire {
    if (this.sharedForm === null) {
      this.sharedForm = Object.freeze({ ...this.wire, shared: true })
      JSON_OF.set(this.sharedForm, null)
    }
    return this.sharedForm
  }
}

export class GroupView {
  revision: number
  readonly groups = new Map<string, CachedGroup>()
  readonly rules = new Map<string, CachedRule>()
  /** Group id → target tenants of its `access_as_shared` policies. */
  sharedTo = new Map<string, Set<string>>()
  /** Project → ids of its groups named `default`. */
  private readonly defaults = new Map<string, Set<string>>()
  private ordered: CachedGroup[] | null = null
  private allRules: CachedRule[] | null = null
  private readonly bodies = new Map<string, Buffer>()
  private readonly gzipped = new Map<string, Promise<Buffer>>()

  constructor(revision: number) {
    this.revision = revision
  }

  /** Groups in creation order (standard_attr_id, as the tables are read). */
  list(): readonly CachedGroup[] {
    if (this.ordered === null) this.ordered = [...this.groups.values()].sort((a, b) => a.std - b.std)
    return this.ordered
  }

  /** Every rule in creation order. */
  ruleList(): readonly CachedRule[] {
    if (this.allRules === null)
      this.allRules = [...this.rules.values()].sort((a, b) => a.row.standard_attr_id - b.row.standard_attr_id)
    return this.allRules
  }

  /** Shared with `projectId` by RBAC (to it or to `*`). */
  isSharedWith(groupId: string, projectId: string): boolean {
    const t = this.sharedTo.get(groupId)
    return t !== undefined && (t.has(projectId) || t.has('*'))
  }

  hasDefault(projectId: string): boolean {
    return (this.defaults.get(projectId)?.size ?? 0) > 0
  }

  /** A response body built once per revision (`key` names the caller's view). */
  body(key: string, make: () => string): Buffer {
    let b = this.bodies.get(key)
    if (!b) {
      if (this.bodies.size >= 16) this.bodies.clear()
      b = Buffer.from(make())
      this.bodies.set(key, b)
    }
    return b
  }

  /** `body(key, make)` gzip-compressed (fast level, off the event loop), once per revision. */
  gzipBody(key: string, make: () => string): Promise<Buffer> {
    let p = this.gzipped.get(key)
    if (!p) {
      if (this.gzipped.size >= 8) this.gzipped.clear()
      const raw = this.body(key, make)
      p = new Promise<Buffer>((resolve, reject) =>
        gzip(raw, { level: 1 }, (err, out) => (err ? reject(err) : resolve(out))),
      )
      this.gzipped.set(key, p)
      p.catch(() => this.gzipped.delete(key))
    }
    return p
  }

  removeGroup(id: string): void {
    const old = this.groups.get(id)
    if (!old) return
    for (const r of old.rules) this.rules.delete(r.row.id)
    this.groups.delete(id)
    this.defaults.get(old.projectId)?.delete(id)
    this.changed()
  }

  putGroup(g: CachedGroup): void {
    this.removeGroup(g.id)
    this.groups.set(g.id, g)
    for (const r of g.rules) this.rules.set(r.row.id, r)
    if (g.name === 'default') {
      const s = this.defaults.get(g.projectId) ?? new Set<string>()
      s.add(g.id)
      this.defaults.set(g.projectId, s)
    }
    this.changed()
  }

  changed(): void {
    this.ordered = null
    this.allRules = null
    this.bodies.clear()
    this.gzipped.clear()
  }
}

/** Changes after which a refresh reloads everything instead of group by group. */
const MAX_CHANGES = 20_000
const MAX_GROUPS = 2_000
const CHUNK = 500

export class GroupCache {
  private view: GroupView | null = null
  private chain: Promise<unknown> = Promise.resolve()

  constructor(private readonly store: Store) {}

  /** The view at the store's current revision or later. */
  async fresh(): Promise<GroupView> {
    const revision = await this.store.revision()
    const v = this.view
    if (v && v.revision >= revision) return v
    // Refreshes run one at a time; a caller queued behind one that already caught up returns at once.
    const p = this.chain.then(() => {
      const cur = this.view
      return cur && cur.revision >= revision ? cur : this.refresh()
    })
    this.chain = p.catch(() => undefined)
    return p
  }

  private async refresh(): Promise<GroupView> {
    const db = this.store.db
    const meta = await db
      .selectFrom('sgwall_meta')
      .select(['revision', 'pruned_through'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow()
    const revision = Number(meta.revision)
    const v = this.view
    if (!v || v.revision < Number(meta.pruned_through)) return this.rebuild(revision)
    const changes = await db
      .selectFrom('changes')
      .select(['resource', 'resource_id', 'action', 'body'])
      .where('revision', '>', v.revision)
      .limit(MAX_CHANGES + 1)
      .execute()
    if (changes.length > MAX_CHANGES) return this.rebuild(revision)
    const touched = new Set<string>()
    let rbac = false
    for (const c of changes) {
      if (c.resource === 'security_group') {
        touched.add(c.resource_id)
        if (c.action === 'delete') rbac = true
      } else if (c.resource === 'security_group_rule') {
        const group =
          c.body === null ? undefined : (JSON.parse(c.body) as { security_group_id?: unknown }).security_group_id
        if (typeof group !== 'string') return this.rebuild(revision)
        touched.add(group)
      } else if (c.resource === 'rbac_policy') rbac = true
    }
    if (touched.size > MAX_GROUPS) return this.rebuild(revision)
    const ids = [...touched]
    const loaded: { groups: SecurityGroupTable[]; rules: SecurityGroupRuleTable[]; tags: Map<string, string[]> }[] = []
    for (let k = 0; k < ids.length; k += CHUNK) {
      const chunk = ids.slice(k, k + CHUNK)
      const [groups, rules, tags] = await Promise.all([
        db.selectFrom('security_groups').selectAll().where('id', 'in', chunk).execute(),
        db
          .selectFrom('security_group_rules')
          .selectAll()
          .where('security_group_id', 'in', chunk)
          .orderBy('standard_attr_id')
          .execute(),
        loadTags(db, 'security_groups', chunk),
      ])
      loaded.push({ groups, rules, tags })
    }
    const shares = rbac ? await this.loadShares() : null
    // Apply synchronously: readers never see a half-applied refresh.
    for (const id of ids) v.removeGroup(id)
    for (const l of loaded) {
      const byGroup = groupRules(l.rules)
      for (const g of l.groups) v.putGroup(new CachedGroup(g, byGroup.get(g.id) ?? [], l.tags.get(g.id) ?? []))
    }
    if (shares) v.sharedTo = shares
    v.revision = Math.max(v.revision, revision)
    v.changed()
    return v
  }

  private async rebuild(revision: number): Promise<GroupView> {
    const db = this.store.db
    const [groups, rules, tags, shares] = await Promise.all([
      db.selectFrom('security_groups').selectAll().orderBy('standard_attr_id').execute(),
      db.selectFrom('security_group_rules').selectAll().orderBy('standard_attr_id').execute(),
      loadTags(db, 'security_groups', null),
      this.loadShares(),
    ])
    const byGroup = groupRules(rules)
    const v = new GroupView(revision)
    for (const g of groups) v.putGroup(new CachedGroup(g, byGroup.get(g.id) ?? [], tags.get(g.id) ?? []))
    v.sharedTo = shares
    this.view = v
    return v
  }

  private async loadShares(): Promise<Map<string, Set<string>>> {
    const rows = await this.store.db
      .selectFrom('rbac_policies')
      .select(['object_id', 'target_tenant'])
      .where('object_type', '=', 'security_group')
      .where('action', '=', 'access_as_shared')
      .execute()
    const out = new Map<string, Set<string>>()
    for (const r of rows) {
      const s = out.get(r.object_id) ?? new Set<string>()
      s.add(r.target_tenant)
      out.set(r.object_id, s)
    }
    return out
  }
}

function groupRules(rules: readonly SecurityGroupRuleTable[]): Map<string, SecurityGroupRuleTable[]> {
  const byGroup = new Map<string, SecurityGroupRuleTable[]>()
  for (const r of rules) {
    const l = byGroup.get(r.security_group_id)
    if (l) l.push(r)
    else byGroup.set(r.security_group_id, [r])
  }
  return byGroup
}
