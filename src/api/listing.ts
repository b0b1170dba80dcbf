/**
 * Listing: filters, `fields`, sorting, pagination and links (spec §4). Objects are the
 * full wire representations; filters compare converted query values for exact equality.
 */
import { badRequest, nerr } from './neutron-error.js'

export type Query = Record<string, string | string[] | undefined>
export type Wire = Record<string, unknown>

export interface CollectionSpec {
  /** JSON key of the list: `security_groups`. */
  readonly collection: string
  /** Filterable attribute → converter of one query value (identity when absent). */
  readonly filters: Readonly<Record<string, ((v: string) => unknown) | null>>
  readonly sortable: readonly string[]
  /** Accepted as filters but ignored (Neutron 21 ignores `normalized_cidr`, spec §4.1). */
  readonly ignored?: readonly string[]
}

const NOT_FILTERS = new Set(['fields', 'sort_key', 'sort_dir', 'limit', 'marker', 'page_reverse', 'verbose'])
const TAG_FILTERS = new Set(['tags', 'tags-any', 'not-tags', 'not-tags-any'])

export const values = (q: Query, key: string): string[] => {
  const v = q[key]
  return v === undefined ? [] : Array.isArray(v) ? v : [v]
}

export interface ListOptions {
  readonly filters: ReadonlyMap<string, unknown[]>
  readonly tagFilters: ReadonlyMap<string, string[]>
  readonly fields: readonly string[] | null
  readonly sort: readonly { key: string; dir: 'asc' | 'desc' }[]
  readonly limit: number
  readonly marker: string | null
  readonly pageReverse: boolean
}

export function parseListOptions(q: Query, spec: CollectionSpec): ListOptions {
  const bad = Object.keys(q).filter(
    (k) =>
      !NOT_FILTERS.has(k) &&
      !TAG_FILTERS.has(k) &&
      !Object.hasOwn(spec.filters, k) &&
      k !== 'tenant_id' &&
      !spec.ignored?.includes(k),
  )
  const tagsAllowed = Object.hasOwn(spec.filters, 'tags')
  const badTags = tagsAllowed ? [] : Object.keys(q).filter((k) => TAG_FILTERS.has(k))
  const offending = [...bad, ...badTags]
  if (offending.length)
    throw badRequest(`[${offending.map((k) => `'${k}'`).join(', ')}] is invalid attribute for filtering`)
  const filters = new Map<string, unknown[]>()
  const tagFilters = new Map<string, string[]>()
  for (const k of Object.keys(q)) {
    if (NOT_FILTERS.has(k) || spec.ignored?.includes(k)) continue
    if (TAG_FILTERS.has(k)) {
      tagFilters.set(
        k,
        values(q, k).flatMap((v) => v.split(',')),
      )
      continue
    }
    const key = k === 'tenant_id' ? 'project_id' : k
    const conv = spec.filters[k] ?? null
    const vals = values(q, k).map((v) => (conv ? conv(v) : v))
    const prev = filters.get(key)
    // tenant_id and project_id filters that differ give an empty list (spec §3.3).
    filters.set(key, prev ? prev.filter((x) => vals.includes(x)) : vals)
  }
  const fieldsRaw = values(q, 'fields')
  const fields = fieldsRaw.length ? fieldsRaw : null
  const keys = values(q, 'sort_key')
  const dirs = values(q, 'sort_dir')
  if (keys.length !== dirs.length) throw badRequest('The number of sort_keys and sort_dirs must be same')
  const badKeys = keys.filter((k) => !spec.sortable.includes(k))
  if (badKeys.length)
    throw badRequest(`[${badKeys.map((k) => `'${k}'`).join(', ')}] is invalid attribute for sort_keys`)
  const badDirs = dirs.filter((d) => d !== 'asc' && d !== 'desc')
  if (badDirs.length)
    throw badRequest(
      `[${badDirs.map((k) => `'${k}'`).join(', ')}] is invalid value for sort_dirs, valid value is 'asc' and 'desc'`,
    )
  const sort = keys.map((key, i) => ({
    key: key === 'tenant_id' ? 'project_id' : key,
    dir: (dirs[i] ?? 'asc') as 'asc' | 'desc',
  }))
  const limitRaw = values(q, 'limit')[0]
  let limit = 0
  if (limitRaw !== undefined) {
    if (!/^[0-9]+$/.test(limitRaw))
      throw nerr('BadRequest', `Bad limit request: Limit must be an integer 0 or greater and not '${limitRaw}'.`)
    limit = Number.parseInt(limitRaw, 10)
  }
  const marker = values(q, 'marker')[0] ?? null
  const pageReverse = (values(q, 'page_reverse')[0] ?? '').toLowerCase() === 'true'
  return { filters, tagFilters, fields, sort, limit, marker, pageReverse }
}

function matches(obj: Wire, key: string, wanted: unknown[]): boolean {
  const v = obj[key]
  if (key === 'fixed_ips' && Array.isArray(v)) {
    return wanted.some((w) => {
      const [k, val] = String(w).split('=', 2)
      return (v as Wire[]).some((ip) => k !== undefined && ip[k] === val)
    })
  }
  if (Array.isArray(v)) return wanted.some((w) => v.includes(w))
  return wanted.some((w) => w === v)
}

function tagMatch(tags: readonly string[], f: ReadonlyMap<string, string[]>): boolean {
  const all = f.get('tags')
  if (all && !all.every((t) => tags.includes(t))) return false
  const any = f.get('tags-any')
  if (any && !any.some((t) => tags.includes(t))) return false
  const notAll = f.get('not-tags')
  if (notAll?.every((t) => tags.includes(t))) return false
  const notAny = f.get('not-tags-any')
  if (notAny?.some((t) => tags.includes(t))) return false
  return true
}

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0
  if (a === null || a === undefined) return -1
  if (b === null || b === undefined) return 1
  if (typeof a === 'number' && typeof b === 'number') return a - b
  const sa = String(a)
  const sb = String(b)
  return sa < sb ? -1 : sa > sb ? 1 : 0
}

export function selectFields(obj: Wire, fields: readonly string[] | null): Wire {
  if (!fields) return obj
  const out: Wire = {}
  for (const f of fields) if (Object.hasOwn(obj, f)) out[f] = obj[f]
  return out
}

export interface ListResult {
  readonly items: Wire[]
  readonly links: { rel: string; href: string }[] | null
}

/** Applies filters, sort, pagination and fields. `baseUrl`: scheme://host/path of the request. */
export function applyList(objects: Wire[], opts: ListOptions, baseUrl: string, query: Query): ListResult {
  let rows = objects.filter((o) => {
    for (const [k, w] of opts.filters) if (!matches(o, k, w)) return false
    if (opts.tagFilters.size && !tagMatch((o.tags as string[] | undefined) ?? [], opts.tagFilters)) return false
    return true
  })
  const sort = [...opts.sort, { key: 'id', dir: 'asc' as const }]
  if (opts.sort.length || opts.limit || opts.marker) {
    rows = [...rows].sort((x, y) => {
      for (const s of sort) {
        const c = compare(x[s.key], y[s.key])
        if (c !== 0) return s.dir === 'asc' ? c : -c
      }
      return 0
    })
  }
  let links: { rel: string; href: string }[] | null = null
  if (opts.limit > 0) {
    const idx = opts.marker === null ? -1 : rows.findIndex((r) => r.id === opts.marker)
    let page: Wire[]
    if (opts.pageReverse && idx >= 0) page = rows.slice(Math.max(0, idx - opts.limit), idx)
    else page = rows.slice(idx + 1, idx + 1 + opts.limit)
    links = []
    const kept = Object.entries(query).flatMap(([k, v]) =>
      k === 'marker' || k === 'page_reverse' ? [] : (Array.isArray(v) ? v : [v ?? '']).map((x) => [k, x] as const),
    )
    const href = (marker: unknown, reverse: boolean) => {
      const p = new URLSearchParams()
      for (const [k, v] of kept) p.append(k, v)
      p.append('marker', String(marker))
      if (reverse) p.append('page_reverse', 'True')
      return `${baseUrl}?${p.toString()}`
    }
    const short = page.length < opts.limit
    const first = page[0]
    const last = page[page.length - 1]
    if (last && !(short && !opts.pageReverse)) links.push({ rel: 'next', href: href(last.id, false) })
    if (first && !(short && opts.pageReverse)) links.push({ rel: 'previous', href: href(first.id, true) })
    rows = page
  }
  return { items: rows.map((r) => selectFields(r, opts.fields)), links }
}
