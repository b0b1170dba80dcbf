/** Helpers shared by the resource modules: tags, quotas, If-Match, ids, boolean columns. */
import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../store/schema.js'
import type { RequestContext } from './context.js'
import { nerr } from './neutron-error.js'

export type Db = Kysely<Database> | Transaction<Database>

export const newId = (): string => randomUUID()
export const b = (v: number): boolean => v !== 0
export const i = (v: unknown): number => (v ? 1 : 0)

export type TagResource = 'security_groups' | 'ports' | 'networks' | 'subnets'

export async function loadTags(
  db: Db,
  type: TagResource,
  ids: readonly string[] | null,
): Promise<Map<string, string[]>> {
  let q = db.selectFrom('tags').select(['resource_id', 'tag']).where('resource_type', '=', type)
  if (ids !== null) {
    if (ids.length === 0) return new Map()
    if (ids.length <= 500) q = q.where('resource_id', 'in', ids)
  }
  const rows = await q.orderBy('tag').execute()
  const out = new Map<string, string[]>()
  for (const r of rows) {
    const l = out.get(r.resource_id)
    if (l) l.push(r.tag)
    else out.set(r.resource_id, [r.tag])
  }
  return out
}

export const QUOTA_DEFAULTS: Readonly<Record<string, number>> = {
  network: 100,
  subnet: 100,
  subnetpool: -1,
  port: 500,
  rbac_policy: 10,
  security_group: 10,
  security_group_rule: 100,
}

export async function quotaLimits(db: Db, projectId: string): Promise<Record<string, number>> {
  const rows = await db.selectFrom('quotas').selectAll().where('project_id', '=', projectId).execute()
  const out: Record<string, number> = { ...QUOTA_DEFAULTS }
  for (const r of rows) out[r.resource] = r.hard_limit
  return out
}

const USAGE_TABLE = {
  network: 'networks',
  subnet: 'subnets',
  port: 'ports',
  rbac_policy: 'rbac_policies',
  security_group: 'security_groups',
  security_group_rule: 'security_group_rules',
} as const

export async function quotaUsage(db: Db, projectId: string, resource: keyof typeof USAGE_TABLE): Promise<number> {
  const row = await db
    .selectFrom(USAGE_TABLE[resource])
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Throws 409 OverQuota when adding `delta[resource]` would exceed the project's limits (checked in order). */
export async function checkQuota(
  db: Db,
  projectId: string,
  delta: Partial<Record<keyof typeof USAGE_TABLE, number>>,
): Promise<void> {
  const limits = await quotaLimits(db, projectId)
  for (const [res, n] of Object.entries(delta) as [keyof typeof USAGE_TABLE, number][]) {
    const limit = limits[res] ?? -1
    if (limit < 0 || n <= 0) continue
    const used = await quotaUsage(db, projectId, res)
    if (used + n > limit) throw nerr('OverQuota', `Quota exceeded for resources: ['${res}'].`)
  }
}

/** `If-Match: revision_number=N` (extension revision-if-match). */
export function checkIfMatch(header: string | string[] | undefined, current: number): void {
  if (header === undefined) return
  const values = (Array.isArray(header) ? header : [header]).flatMap((h) => h.split(','))
  for (const raw of values) {
    const v = raw.trim()
    if (v === '*' || v === '') continue
    const m = /^revision_number=(\d+)$/.exec(v)
    if (!m)
      throw nerr(
        'BadRequest',
        'Bad if-match request: Revision number etag must be in the format of revision_number=<int>.',
      )
    const want = Number(m[1])
    if (want !== current)
      throw nerr('RevisionNumberConstraintFailed', `Constrained to ${want}, but current revision is ${current}`)
  }
}

/** Group ids shared to the caller's project (RBAC access_as_shared to it or to '*'). */
export async function sharedGroupIds(db: Db, ctx: RequestContext): Promise<Set<string>> {
  const rows = await db
    .selectFrom('rbac_policies')
    .select('object_id')
    .where('object_type', '=', 'security_group')
    .where('action', '=', 'access_as_shared')
    .where('target_tenant', 'in', [ctx.projectId, '*'])
    .execute()
  return new Set(rows.map((r) => r.object_id))
}

/** An `IN` list that matches no id (ids are never empty strings); avoids `IN ()`. */
export const NO_IDS: readonly string[] = ['']
