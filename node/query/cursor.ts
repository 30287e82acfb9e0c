// Result-set cursors. A cursor freezes a set: its query (filters, period,
// order, limit), a position (an id) and a direction, and every member's
// high-water mark (`seq`) at the set's first page. Any member can serve the
// next page from it alone: no coordinator keeps state between pages.
//
// Wire form: base64url of a MessagePack array
//   [1, query, dir ('n'|'p'), position id, inclusive, [[peer id, hwm], ...]]
// It is opaque to clients and validated like any other input when it comes back.

import { Packr } from 'msgpackr'
import { z } from 'zod'
import {
  type AttrFilter,
  MAX_ATTR_FILTER_NAME,
  MAX_ATTR_FILTER_VALUE,
  MAX_ATTR_FILTERS,
  MAX_TYPE_FILTERS as PROTOCOL_MAX_TYPE_FILTERS,
} from '../../protocol/index.ts'
import { type FieldProblem, InvalidInputError } from '../errors.ts'
import { SEVERITIES } from '../event/event.ts'
import { decodeId, ID_LENGTH } from '../event/id.ts'

/**
 * Most `type` filters of one query: the slice and rollup requests carry at
 * most this many, so the HTTP edge refuses more rather than issue a cursor
 * that no member would take.
 */
export const MAX_TYPE_FILTERS = PROTOCOL_MAX_TYPE_FILTERS
/** Longest single `type` filter, in characters (a type of 128 and room to spare; the protocol's bound). */
export const MAX_TYPE_FILTER_LENGTH = 256
/** Most `member` filters of one query. */
export const MAX_MEMBER_FILTERS = 1024
/** Longest single `member` filter, in characters. */
export const MAX_MEMBER_FILTER_LENGTH = 256

/**
 * The problems of a query's `type` and `member` lists against the limits
 * above, as field problems: the same rules for events and rollups.
 */
export function filterProblems(
  types: readonly string[],
  members: readonly string[],
): FieldProblem[] {
  const out: FieldProblem[] = []
  if (types.length > MAX_TYPE_FILTERS)
    out.push({ field: 'type', message: `at most ${MAX_TYPE_FILTERS} types, got ${types.length}` })
  if (types.some((t) => t.length > MAX_TYPE_FILTER_LENGTH))
    out.push({ field: 'type', message: `each at most ${MAX_TYPE_FILTER_LENGTH} characters` })
  if (members.length > MAX_MEMBER_FILTERS)
    out.push({
      field: 'member',
      message: `at most ${MAX_MEMBER_FILTERS} members, got ${members.length}`,
    })
  if (members.some((m) => m.length > MAX_MEMBER_FILTER_LENGTH))
    out.push({ field: 'member', message: `each at most ${MAX_MEMBER_FILTER_LENGTH} characters` })
  return out
}

const CURSOR_VERSION = 1
/** Longest cursor accepted, in characters: room for the marks of a few thousand members. */
export const MAX_CURSOR_LENGTH = 262_144

/** A query as the coordinator runs it, with every default applied and times made absolute. */
export interface EventQuery {
  fromMs: number
  toMs: number
  types: string[]
  /** Types excluded (`type=-host.*`), exact or `prefix.*`. */
  notTypes?: string[]
  /** Attribute filters (`attr.region=eu`). */
  attrs?: AttrFilter[]
  minSeverity: number
  /** Member names or peer ids; empty: every member. */
  members: string[]
  text?: string
  limit: number
  order: 'asc' | 'desc'
  /** Only events after this id (id order), from `after=<id>`. */
  after?: string
  /** Only events before this id (id order), from `before=<id>`. */
  before?: string
}

export interface CursorState {
  query: EventQuery
  /** `next` continues in the set's order, `prev` goes back. */
  dir: 'next' | 'prev'
  /** Id the page continues past. */
  position: string
  /** Whether the event at `position` itself belongs to the page (after an empty page). */
  inclusive: boolean
  /**
   * The set's members (by the hex of their 40-bit id tag, which keeps cursors
   * short for large arrays) and their high-water marks, fixed at its first
   * page; -1: it did not answer then, and stays out.
   */
  marks: Array<[string, number]>
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

const idText = z
  .string()
  .length(ID_LENGTH)
  .refine((s) => decodeId(s) !== undefined)

const QueryShape = z.strictObject({
  fromMs: z.number().int().nonnegative(),
  toMs: z.number().int().nonnegative(),
  types: z.array(z.string().max(MAX_TYPE_FILTER_LENGTH)).max(MAX_TYPE_FILTERS),
  notTypes: z.array(z.string().max(MAX_TYPE_FILTER_LENGTH)).max(MAX_TYPE_FILTERS).optional(),
  attrs: z
    .array(
      z.tuple([z.string().min(1).max(MAX_ATTR_FILTER_NAME), z.string().max(MAX_ATTR_FILTER_VALUE)]),
    )
    .max(MAX_ATTR_FILTERS)
    .optional(),
  minSeverity: z
    .number()
    .int()
    .min(0)
    .max(SEVERITIES.length - 1),
  members: z.array(z.string().max(MAX_MEMBER_FILTER_LENGTH)).max(MAX_MEMBER_FILTERS),
  text: z.string().max(1024).optional(),
  limit: z.number().int().min(1).max(10_000),
  order: z.enum(['asc', 'desc']),
  after: idText.optional(),
  before: idText.optional(),
})

const CursorShape = z.tuple([
  z.literal(CURSOR_VERSION),
  QueryShape,
  z.enum(['n', 'p']),
  idText,
  z.boolean(),
  z
    .array(
      z.tuple([
        z.instanceof(Uint8Array).refine((tag) => tag.byteLength === 5),
        z
          .number()
          .int()
          .min(-1)
          .max(2 ** 40),
      ]),
    )
    .max(10_000),
])

export function encodeCursor(state: CursorState): string {
  const query: Record<string, unknown> = { ...state.query }
  // Absent and empty filters are left out: a cursor is as short as its query.
  for (const key of Object.keys(query)) {
    const value = query[key]
    if (
      value === undefined ||
      (key !== 'types' && key !== 'members' && Array.isArray(value) && value.length === 0)
    )
      delete query[key]
  }
  const packed = packr.pack([
    CURSOR_VERSION,
    query,
    state.dir === 'next' ? 'n' : 'p',
    state.position,
    state.inclusive,
    state.marks.map(([tag, hwm]) => [Buffer.from(tag, 'hex'), hwm]),
  ])
  return Buffer.from(packed).toString('base64url')
}

function invalidCursor(why: string): InvalidInputError {
  return new InvalidInputError(
    `"cursor" is not a cursor this array issued: ${why}`,
    [{ field: 'cursor', message: why }],
    'invalid_cursor',
  )
}

export function decodeCursor(text: string): CursorState {
  if (text.length > MAX_CURSOR_LENGTH)
    throw invalidCursor(`longer than ${MAX_CURSOR_LENGTH} characters`)
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw invalidCursor('not base64url')
  let raw: unknown
  try {
    raw = packr.unpack(Buffer.from(text, 'base64url'))
  } catch {
    throw invalidCursor('cannot be decoded')
  }
  const parsed = CursorShape.safeParse(raw)
  if (!parsed.success) throw invalidCursor('its contents are malformed')
  const [, query, dir, position, inclusive, marks] = parsed.data
  const out: EventQuery = {
    fromMs: query.fromMs,
    toMs: query.toMs,
    types: query.types,
    minSeverity: query.minSeverity,
    members: query.members,
    limit: query.limit,
    order: query.order,
  }
  if (query.notTypes !== undefined && query.notTypes.length > 0) out.notTypes = query.notTypes
  if (query.attrs !== undefined && query.attrs.length > 0) out.attrs = query.attrs
  if (query.text !== undefined) out.text = query.text
  if (query.after !== undefined) out.after = query.after
  if (query.before !== undefined) out.before = query.before
  return {
    query: out,
    dir: dir === 'n' ? 'next' : 'prev',
    position,
    inclusive,
    marks: marks.map(([tag, hwm]) => [Buffer.from(tag).toString('hex'), hwm]),
  }
}
