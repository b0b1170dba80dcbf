/** Quotas (spec §8) and RBAC sharing of security groups (spec §9). */
import type { Store } from '../store/index.js'
import type { RbacPolicyTable } from '../store/schema.js'
import { type AttrDef, type Body, processAttributes } from './body.js'
import { checkQuota, type Db, newId, QUOTA_DEFAULTS, quotaLimits, quotaUsage } from './common.js'
import type { RequestContext } from './context.js'
import { validateString, validateValues } from './convert.js'
import type { CollectionSpec, Wire } from './listing.js'
import { badRequest, invalidInput, nerr, policy, pyRepr, sgNotFound } from './neutron-error.js'

export async function getQuota(db: Db, ctx: RequestContext, project: string) {
  if (!ctx.isAdmin && project !== ctx.projectId) throw policy('rule:get_quota')
  return { quota: await quotaLimits(db, project) }
}

export async function quotaDetails(db: Db, ctx: RequestContext, project: string) {
  const limits = (await getQuota(db, ctx, project)).quota
  const out: Record<string, { limit: number; used: number; reserved: number }> = {}
  for (const [res, limit] of Object.entries(limits)) {
    const used = res === 'subnetpool' ? 0 : await quotaUsage(db, project, res as Parameters<typeof quotaUsage>[2])
    out[res] = { limit, used, reserved: 0 }
  }
  return { quota: out }
}

export async function listQuotas(db: Db, ctx: RequestContext) {
  if (!ctx.isAdmin) throw policy('rule:get_quota')
  const rows = await db.selectFrom('quotas').select('project_id').distinct().execute()
  const quotas = []
  for (const r of rows)
    quotas.push({ ...(await quotaLimits(db, r.project_id)), project_id: r.project_id, tenant_id: r.project_id })
  return { quotas }
}

export async function updateQuota(store: Store, ctx: RequestContext, project: string, raw: unknown) {
  if (!ctx.isAdmin) throw policy('rule:update_quota')
  const parsed = typeof raw === 'string' && raw !== '' ? safeJson(raw) : raw
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('Resource body required')
  const q = (parsed as Record<string, unknown>).quota
  if (!q || typeof q !== 'object' || Array.isArray(q)) throw badRequest("Unable to find 'quota' in request body")
  const entries = Object.entries(q as Record<string, unknown>)
  const unknown = entries.map(([k]) => k).filter((k) => !Object.hasOwn(QUOTA_DEFAULTS, k))
  if (unknown.length) throw badRequest(`Unrecognized attribute(s) '${unknown.join(', ')}'`)
  const values: [string, number][] = []
  for (const [k, v] of entries) {
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^[-+]?\d+$/.test(v.trim()) ? Number(v) : Number.NaN
    if (!Number.isInteger(n)) throw nerr('InvalidInput', `Invalid input for operation: ${pyRepr(v)} is not an integer.`)
    if (n < -1) throw invalidInput(k, `'${n}' is too small - must be at least '-1'`)
    if (n > 2147483647) throw invalidInput(k, `'${n}' is too large - must be no larger than '2147483647'`)
    values.push([k, n])
  }
  await store.write(async (w) => {
    for (const [resource, hard_limit] of values) {
      await w.tx.deleteFrom('quotas').where('project_id', '=', project).where('resource', '=', resource).execute()
      await w.tx.insertInto('quotas').values({ project_id: project, resource, hard_limit }).execute()
    }
    await w.log({ resource: 'quota', resource_id: project, action: 'update', project_id: project })
  })
  return { quota: await quotaLimits(store.db, project) }
}

export async function deleteQuota(store: Store, ctx: RequestContext, project: string) {
  if (!ctx.isAdmin) throw policy('rule:delete_quota')
  await store.write(async (w) => {
    await w.tx.deleteFrom('quotas').where('project_id', '=', project).execute()
    await w.log({ resource: 'quota', resource_id: project, action: 'delete', project_id: project })
  })
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s)
  } catch {
    throw nerr('MalformedRequestBody', 'Malformed request body: Cannot understand JSON.')
  }
}

// ------------------------------------------------------------------ RBAC

export const RBAC_ATTRS: readonly AttrDef[] = [
  { name: 'id', post: false, put: false },
  { name: 'object_type', post: true, put: false, required: true, validate: validateString(255) },
  { name: 'object_id', post: true, put: false, required: true, validate: validateString(36) },
  { name: 'action', post: true, put: false, required: true, validate: validateString(255) },
  { name: 'target_tenant', post: true, put: true, required: true, validate: validateString(255) },
  { name: 'target_project', post: true, put: true, validate: validateString(255) },
]

export const RBAC_LIST: CollectionSpec = {
  collection: 'rbac_policies',
  filters: {
    id: null,
    object_id: null,
    object_type: null,
    target_tenant: null,
    action: null,
    project_id: null,
    tenant_id: null,
  },
  sortable: ['id', 'object_id', 'object_type', 'target_tenant', 'action', 'project_id', 'tenant_id'],
}

export const rbacWire = (r: RbacPolicyTable): Wire => ({
  id: r.id,
  project_id: r.project_id,
  tenant_id: r.project_id,
  action: r.action,
  object_id: r.object_id,
  target_tenant: r.target_tenant,
  object_type: r.object_type,
})

export async function rbacRows(db: Db, ctx: RequestContext, id?: string) {
  let q = db.selectFrom('rbac_policies').selectAll()
  if (id !== undefined) q = q.where('id', '=', id)
  if (!ctx.isAdmin) q = q.where('project_id', '=', ctx.projectId)
  return q.execute()
}

const rbacNotFound = (id: string) =>
  nerr('RbacPolicyNotFound', `RBAC policy of type security_group with ID ${id} not found`)

export async function showRbac(db: Db, ctx: RequestContext, id: string) {
  const [r] = await rbacRows(db, ctx, id)
  if (!r) throw rbacNotFound(id)
  return rbacWire(r)
}

export async function createRbac(store: Store, ctx: RequestContext, item: Body): Promise<Wire> {
  const body = processAttributes(item, RBAC_ATTRS, 'post', ctx)
  const target = (body.target_project as string | undefined) ?? (body.target_tenant as string)
  if (body.object_type !== 'security_group')
    throw invalidInput('object_type', `${String(body.object_type)} is not in valid_values`)
  const vr = validateValues(['access_as_shared'])(body.action)
  if (vr)
    throw nerr(
      'InvalidActionForType',
      `Invalid action '${String(body.action)}' for object type 'security_group'. Valid actions: ('access_as_shared',)`,
    )
  if (target === '*' && !ctx.isAdmin)
    throw policy('(rule:create_rbac_policy and rule:create_rbac_policy:target_tenant)')
  const row = await store.write(async (w) => {
    const g = await w.tx
      .selectFrom('security_groups')
      .select(['id', 'project_id'])
      .where('id', '=', body.object_id as string)
      .executeTakeFirst()
    if (!g) throw sgNotFound(body.object_id)
    if (!ctx.isAdmin && g.project_id !== ctx.projectId)
      throw badRequest(`Invalid input for operation: Only the owner of security group ${g.id} may share it.`)
    await checkQuota(w.tx, body.project_id as string, { rbac_policy: 1 })
    const dup = await w.tx
      .selectFrom('rbac_policies')
      .select('id')
      .where('object_id', '=', g.id)
      .where('target_tenant', '=', target)
      .where('action', '=', 'access_as_shared')
      .executeTakeFirst()
    if (dup)
      throw nerr('HTTPConflict', `An RBAC policy for security group ${g.id} and target ${target} already exists.`)
    const r: RbacPolicyTable = {
      id: newId(),
      project_id: body.project_id as string,
      object_type: 'security_group',
      object_id: g.id,
      action: 'access_as_shared',
      target_tenant: target,
    }
    await w.tx.insertInto('rbac_policies').values(r).execute()
    await w.log({
      resource: 'rbac_policy',
      resource_id: r.id,
      action: 'create',
      project_id: r.project_id,
      body: rbacWire(r),
    })
    return r
  })
  return rbacWire(row)
}

async function rbacInUse(db: Db, r: RbacPolicyTable): Promise<boolean> {
  const owner = await db
    .selectFrom('security_groups')
    .select('project_id')
    .where('id', '=', r.object_id)
    .executeTakeFirst()
  let q = db
    .selectFrom('port_security_groups')
    .innerJoin('ports', 'ports.id', 'port_security_groups.port_id')
    .select('ports.id')
    .where('port_security_groups.security_group_id', '=', r.object_id)
  if (r.target_tenant !== '*') q = q.where('ports.project_id', '=', r.target_tenant)
  else if (owner) q = q.where('ports.project_id', '!=', owner.project_id)
  return (await q.executeTakeFirst()) !== undefined
}

export async function updateRbac(store: Store, ctx: RequestContext, id: string, item: Body) {
  const body = processAttributes(item, RBAC_ATTRS, 'put', ctx)
  await store.write(async (w) => {
    const [r] = await rbacRows(w.tx, ctx, id)
    if (!r) throw rbacNotFound(id)
    const target = (body.target_project as string | undefined) ?? (body.target_tenant as string | undefined)
    if (target === undefined || target === r.target_tenant) return
    if (target === '*' && !ctx.isAdmin)
      throw policy('(rule:update_rbac_policy and rule:update_rbac_policy:target_tenant)')
    if (await rbacInUse(w.tx, r))
      throw nerr(
        'RbacPolicyInUse',
        `RBAC policy on object ${r.object_id} cannot be removed because other objects depend on it.`,
      )
    await w.tx.updateTable('rbac_policies').set({ target_tenant: target }).where('id', '=', id).execute()
    await w.log({ resource: 'rbac_policy', resource_id: id, action: 'update', project_id: r.project_id })
  })
  return showRbac(store.db, ctx, id)
}

export async function deleteRbac(store: Store, ctx: RequestContext, id: string) {
  await store.write(async (w) => {
    const [r] = await rbacRows(w.tx, ctx, id)
    if (!r) throw rbacNotFound(id)
    if (await rbacInUse(w.tx, r))
      throw nerr(
        'RbacPolicyInUse',
        `RBAC policy on object ${r.object_id} cannot be removed because other objects depend on it.`,
      )
    await w.tx.deleteFrom('rbac_policies').where('id', '=', id).execute()
    await w.log({ resource: 'rbac_policy', resource_id: id, action: 'delete', project_id: r.project_id })
  })
}
