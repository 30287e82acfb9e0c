// The event filters every read route takes besides its own parameters
// (GET /v1/events, /v1/export, /v1/events/stream, /v1/rollups): types to
// include or exclude (`type=http.*,-host.*`) and attributes
// (`attr.region=eu`, repeatable). Members apply them while they scan
// (node/store/event-scan.ts), so no event crosses the mesh to be dropped.

import { z } from '@hono/zod-openapi'
import {
  type AttrFilter,
  MAX_ATTR_FILTER_NAME,
  MAX_ATTR_FILTER_VALUE,
  MAX_ATTR_FILTERS,
} from '../../protocol/index.ts'
import { type FieldProblem, InvalidInputError } from '../errors.ts'
import { TYPE_PATTERN } from '../event/event.ts'

/** Query parameters that name an attribute filter: `attr.<name>=<value>`. */
export const ATTR_PARAM_PREFIX = 'attr.'

const TYPE_RULE =
  'must be a dotted type such as http.request or a prefix such as http.*, with a leading - to exclude it'

/**
 * A query schema of `shape` that also takes `attr.<name>` parameters, and
 * still refuses every other parameter it does not know, naming it.
 */
export function withAttrParams<T extends z.ZodRawShape>(shape: T) {
  return z
    .object(shape)
    .catchall(z.union([z.string(), z.array(z.string())]))
    .superRefine((params, ctx) => {
      const unknown = Object.keys(params).filter(
        (key) => !Object.hasOwn(shape, key) && !key.startsWith(ATTR_PARAM_PREFIX),
      )
      if (unknown.length > 0)
        ctx.addIssue({ code: 'custom', message: `unknown parameter(s): ${unknown.join(', ')}` })
    })
}

/** The type and attribute filters of one read request. */
export interface ReadFilters {
  /** Types included, exact or `prefix.*`; empty: every type. */
  types: string[]
  /** Types excluded (written with a leading `-`). */
  notTypes: string[]
  attrs: AttrFilter[]
}

/**
 * The filters of a request: its `type` list split into included and
 * excluded types, and its `attr.*` parameters, each value one alternative
 * (values are not split at commas). Every problem is named at once, as an
 * InvalidInputError.
 */
export function readFilters(typeList: readonly string[], params: object): ReadFilters {
  const problems: FieldProblem[] = []
  const out: ReadFilters = { types: [], notTypes: [], attrs: [] }
  for (const entry of typeList) {
    const excluded = entry.startsWith('-')
    const type = excluded ? entry.slice(1) : entry
    const base = type.endsWith('.*') ? type.slice(0, -2) : type
    if (!TYPE_PATTERN.test(base))
      problems.push({ field: 'type', message: `${TYPE_RULE}, got ${JSON.stringify(entry)}` })
    else (excluded ? out.notTypes : out.types).push(type)
  }
  for (const [key, raw] of Object.entries(params)) {
    if (!key.startsWith(ATTR_PARAM_PREFIX)) continue
    const name = key.slice(ATTR_PARAM_PREFIX.length)
    if (name.length === 0 || name.length > MAX_ATTR_FILTER_NAME) {
      problems.push({
        field: key,
        message: `an attribute name is 1 to ${MAX_ATTR_FILTER_NAME} characters`,
      })
      continue
    }
    for (const value of Array.isArray(raw) ? raw : [raw]) {
      if (typeof value !== 'string') continue
      if (value.length > MAX_ATTR_FILTER_VALUE)
        problems.push({ field: key, message: `at most ${MAX_ATTR_FILTER_VALUE} characters` })
      else out.attrs.push([name, value])
    }
  }
  if (out.attrs.length > MAX_ATTR_FILTERS)
    problems.push({
      field: 'attr',
      message: `at most ${MAX_ATTR_FILTERS} attribute filters, got ${out.attrs.length}`,
    })
  const first = problems[0]
  if (first !== undefined)
    throw new InvalidInputError(`"${first.field}" ${first.message}`, problems)
  return out
}
