/**
 * Request-body processing for POST/PUT, in Neutron's order (spec §3.2): envelope,
 * project id, unknown keys, POST/PUT permissions, required/defaults, then convert and
 * validate every present attribute in definition order. First failure wins.
 */
import type { RequestContext } from './context.js'
import { badRequest, invalidInput, nerr } from './neutron-error.js'

export interface AttrDef {
  readonly name: string
  readonly post: boolean
  readonly put: boolean
  readonly required?: boolean
  /** Value filled in on POST when absent (functions are called). */
  readonly default?: unknown
  /** Converter; throws a typed NeutronError. */
  readonly convert?: (v: unknown) => unknown
  /** Validator on the converted value; returns a reason. */
  readonly validate?: (v: unknown) => string | undefined
}

export type Body = Record<string, unknown>

const PROJECT_MESSAGE =
  "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges"

/** Parses the raw body text into the list of resource objects (one unless bulk). */
export function parseEnvelope(
  raw: unknown,
  resource: string,
  collection: string,
  allowBulk: boolean,
): { items: Body[]; bulk: boolean } {
  if (raw === undefined || raw === null || raw === '') throw badRequest('Resource body required')
  let parsed: unknown
  if (typeof raw === 'string') {
    try {
      parsed = JSON.parse(raw)
    } catch {
      throw nerr('MalformedRequestBody', 'Malformed request body: Cannot understand JSON.')
    }
  } else parsed = raw
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('Body contains invalid data')
  const body = parsed as Record<string, unknown>
  if (allowBulk && Object.hasOwn(body, collection)) {
    const list = body[collection]
    if (!Array.isArray(list)) throw badRequest(`Object '${collection}' contains invalid data`)
    if (list.length === 0) throw badRequest('Resources required')
    const items = list.map((x) => {
      const item =
        x && typeof x === 'object' && !Array.isArray(x) && Object.hasOwn(x, resource)
          ? (x as Record<string, unknown>)[resource]
          : x
      if (!item || typeof item !== 'object' || Array.isArray(item))
        throw badRequest(`Object '${resource}' contains invalid data`)
      return item as Body
    })
    return { items, bulk: true }
  }
  if (!Object.hasOwn(body, resource)) throw badRequest(`Unable to find '${resource}' in request body`)
  const item = body[resource]
  if (!item || typeof item !== 'object' || Array.isArray(item))
    throw badRequest(`Object '${resource}' contains invalid data`)
  return { items: [item as Body], bulk: false }
}

/**
 * Processes one resource object. Returns the converted attributes (with defaults on POST)
 * and `project_id` resolved (POST) when the resource is owned.
 */
export function processAttributes(
  item: Body,
  attrs: readonly AttrDef[],
  mode: 'post' | 'put',
  ctx: RequestContext,
  owned = true,
): Body {
  const out: Body = {}
  if (owned) {
    const t = item.tenant_id
    const p = item.project_id
    if (t !== undefined && p !== undefined && t !== p) throw badRequest("'project_id' and 'tenant_id' do not match")
    const given = p !== undefined ? p : t
    if (given !== undefined) {
      if (given !== ctx.projectId && !ctx.isAdmin) throw badRequest(PROJECT_MESSAGE)
      if (mode === 'put' && given !== ctx.projectId) throw badRequest(PROJECT_MESSAGE)
      if (mode === 'put') throw badRequest('Cannot update read-only attribute project_id')
      if (typeof given !== 'string' || given.length > 255 || given.length === 0)
        throw invalidInput('tenant_id', `'${String(given)}' is not a valid string`)
      out.project_id = given
    } else if (mode === 'post') out.project_id = ctx.projectId
  }
  const known = new Set(attrs.map((a) => a.name))
  if (owned) {
    known.add('tenant_id')
    known.add('project_id')
  }
  const unknown = Object.keys(item).filter((k) => !known.has(k))
  if (unknown.length) throw badRequest(`Unrecognized attribute(s) '${unknown.join(', ')}'`)
  for (const a of attrs) {
    const present = Object.hasOwn(item, a.name)
    if (mode === 'post') {
      if (present && !a.post) throw badRequest(`Attribute '${a.name}' not allowed in POST`)
      if (!present && a.required)
        throw badRequest(`Failed to parse request. Required attribute '${a.name}' not specified`)
    } else if (present && !a.put) throw badRequest(`Cannot update read-only attribute ${a.name}`)
  }
  for (const a of attrs) {
    if (!Object.hasOwn(item, a.name)) {
      if (mode === 'post' && a.default !== undefined)
        out[a.name] = typeof a.default === 'function' ? (a.default as () => unknown)() : a.default
      continue
    }
    let v = item[a.name]
    if (a.convert) v = a.convert(v)
    if (a.validate) {
      const reason = a.validate(v)
      if (reason !== undefined) throw invalidInput(a.name, reason)
    }
    out[a.name] = v
  }
  return out
}
