// Reading events by period: the scan engine behind the slice handler. It
// turns a query in domain terms (a period over ts, id bounds, a direction,
// types, filters, a high-water mark, a limit) into key ranges of the time
// index or of per-type indexes, reads them in growing steps, and yields the
// matching events in scan order, in batches, as they are stored (id and
// value bytes, decoded only when a filter needs a field). The key layout it
// reads is keys.ts's; nothing outside node/store/ needs to know it.

import type { AttrFilter, IdBound, SliceRequest, StoredEvent } from '../../protocol/index.ts'
import { decodeEventValue } from './codec.ts'
import type { EventSpace } from './event-log.ts'
import { eventKey, idAtTs, idOfEventKey, idOfTypeIndexKey, idRange, seqOfEventKey } from './keys.ts'

/** Most events per yielded batch and per store read. */
export const MAX_SCAN_BATCH_EVENTS = 1024
/** Fewest rows per store read. */
const MIN_READ_ROWS = 64
/** Above this many matching types a type filter scans the time index instead of merging per-type indexes. */
const MAX_INDEX_MERGE_TYPES = 32

/**
 * Which events to read: a period over ts, id bounds, a position, a
 * direction, types (included and excluded), a minimum severity, text,
 * attributes, a limit and the window that
 * sizes the first read, as a slice request states them (their units are
 * documented there, once), with the high-water mark settled: events with
 * a larger `seq` are not read.
 */
export type EventQuery = Omit<SliceRequest, 'hwm'> & { hwm: number }

/** What a scan applied and found, once it has ended. */
export interface EventScanEnd {
  /** The high-water mark applied. */
  hwm: number
  /** Stored entries examined. */
  scanned: number
  /** True when more matching events exist past the last one yielded. */
  more: boolean
}

/** The id range of a query: its period, narrowed by its id bounds and position. */
export interface IdRange {
  lower: IdBound
  upper: IdBound
}

function tighterLower(a: IdBound, b: IdBound | undefined): IdBound {
  if (b === undefined) return a
  const c = Buffer.compare(a.id, b.id)
  if (c < 0) return b
  if (c > 0) return a
  return { id: a.id, inclusive: a.inclusive && b.inclusive }
}

function tighterUpper(a: IdBound, b: IdBound | undefined): IdBound {
  if (b === undefined) return a
  const c = Buffer.compare(a.id, b.id)
  if (c > 0) return b
  if (c < 0) return a
  return { id: a.id, inclusive: a.inclusive && b.inclusive }
}

/** The ids a query covers: [from, to) over ts, narrowed by its id bounds and its position. */
export function queryIdRange(
  query: Pick<EventQuery, 'fromMs' | 'toMs' | 'lower' | 'upper' | 'position' | 'reverse'>,
): IdRange {
  let lower = tighterLower({ id: idAtTs(query.fromMs), inclusive: true }, query.lower)
  let upper = tighterUpper({ id: idAtTs(query.toMs), inclusive: false }, query.upper)
  if (query.reverse) upper = tighterUpper(upper, query.position)
  else lower = tighterLower(lower, query.position)
  return { lower, upper }
}

/** Exact types that a filter of exact names and `prefix.*` patterns selects, out of `known` (sorted). */
export function matchTypes(filter: readonly string[], known: readonly string[]): string[] {
  const out = new Set<string>()
  for (const pattern of filter) {
    if (pattern.endsWith('.*')) {
      const prefix = pattern.slice(0, -1)
      for (const type of known) if (type.startsWith(prefix)) out.add(type)
    } else if (known.includes(pattern)) {
      out.add(pattern)
    }
  }
  return [...out].sort()
}

/** Whether a type is one of exact names and `prefix.*` patterns. */
function typeIn(filter: readonly string[]): (type: string) => boolean {
  const exact = new Set(filter.filter((f) => !f.endsWith('.*')))
  const prefixes = filter.filter((f) => f.endsWith('.*')).map((f) => f.slice(0, -1))
  return (type) => exact.has(type) || prefixes.some((p) => type.startsWith(p))
}

/**
 * Whether a type passes a filter of exact names and `prefix.*` patterns
 * (empty: every type) and is none of `exclude` (the same forms).
 */
export function typeMatcher(
  filter: readonly string[],
  exclude: readonly string[] = [],
): (type: string) => boolean {
  const included = filter.length === 0 ? () => true : typeIn(filter)
  if (exclude.length === 0) return included
  const excluded = typeIn(exclude)
  return (type) => included(type) && !excluded(type)
}

/** The exact types of `known` (sorted) that a filter selects and `exclude` does not remove. */
export function selectTypes(
  filter: readonly string[],
  exclude: readonly string[],
  known: readonly string[],
): string[] {
  const selected = filter.length === 0 ? [...known] : matchTypes(filter, known)
  if (exclude.length === 0) return selected
  const excluded = typeIn(exclude)
  return selected.filter((t) => !excluded(t))
}

const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/

/** Whether an attribute's value is what a filter's text names (see AttrFilter). */
function attrEquals(value: string | number | boolean | undefined, text: string): boolean {
  if (typeof value === 'string') return value === text
  if (typeof value === 'number') return DECIMAL.test(text) && Number(text) === value
  if (typeof value === 'boolean') return text === String(value)
  return false
}

/**
 * Whether an event's attributes pass attribute filters: for every name
 * filtered on, its value equals one of that name's texts. Undefined when
 * there are no filters.
 */
export function attrMatcher(
  filters: readonly AttrFilter[] | undefined,
):
  | ((attrs: Readonly<Record<string, string | number | boolean>> | undefined) => boolean)
  | undefined {
  if (filters === undefined || filters.length === 0) return undefined
  const byName = new Map<string, string[]>()
  for (const [name, text] of filters) byName.set(name, [...(byName.get(name) ?? []), text])
  const wanted = [...byName.entries()]
  return (attrs) => {
    if (attrs === undefined) return false
    for (const [name, texts] of wanted) {
      // Own properties only: a filter on `toString` matches no event.
      const value = Object.hasOwn(attrs, name) ? attrs[name] : undefined
      if (!texts.some((text) => attrEquals(value, text))) return false
    }
    return true
  }
}

/**
 * Rows of the first store read: what the reader may take at first, so a
 * 100-event page does not read 1,024. Later reads grow to MAX_SCAN_BATCH_EVENTS.
 */
function readStep(query: EventQuery): number {
  return Math.min(MAX_SCAN_BATCH_EVENTS, Math.max(MIN_READ_ROWS, (query.window ?? query.limit) + 1))
}

/** Raw (event key, value) rows of a range, in scan order, from the time index. */
function timeRows(
  log: EventSpace,
  range: IdRange,
  reverse: boolean,
  step: number,
): AsyncGenerator<Array<[Buffer, Buffer]>> {
  return log.scan(
    idRange(log.keys.time, range.lower, range.upper, reverse),
    step,
    MAX_SCAN_BATCH_EVENTS,
  )
}

/** Raw (event key, value) rows of a range for a few exact types, merged from their indexes in id order. */
async function* indexRows(
  log: EventSpace,
  types: readonly string[],
  range: IdRange,
  reverse: boolean,
  step: number,
): AsyncGenerator<Array<[Buffer, Buffer]>> {
  const sources = types.map((type) => ({
    iterator: log.scan(
      idRange(log.keys.typePrefix(type), range.lower, range.upper, reverse),
      step,
      MAX_SCAN_BATCH_EVENTS,
    ),
    rows: [] as Array<[Buffer, Buffer]>,
    at: 0,
    done: false,
  }))
  try {
    const refill = async (source: (typeof sources)[number]) => {
      if (source.at < source.rows.length || source.done) return
      const next = await source.iterator.next()
      if (next.done === true) {
        source.done = true
        source.rows = []
      } else {
        source.rows = next.value
      }
      source.at = 0
    }
    await Promise.all(sources.map(refill))
    for (let take = step; ; take = Math.min(take * 2, MAX_SCAN_BATCH_EVENTS)) {
      const ids: Uint8Array[] = []
      while (ids.length < take) {
        let best: (typeof sources)[number] | undefined
        let bestId: Buffer | undefined
        for (const source of sources) {
          const row = source.rows[source.at]
          if (row === undefined) continue
          const id = idOfTypeIndexKey(row[0])
          if (bestId === undefined || Buffer.compare(id, bestId) < 0 !== reverse) {
            best = source
            bestId = id
          }
        }
        if (best === undefined || bestId === undefined) break
        ids.push(bestId)
        best.at++
        if (best.at >= best.rows.length) await refill(best)
      }
      if (ids.length === 0) return
      const values = await log.getMany(ids)
      const rows: Array<[Buffer, Buffer]> = []
      for (let i = 0; i < ids.length; i++) {
        const value = values[i]
        // Absent when retention deleted the event between index and lookup.
        if (value === undefined) continue
        rows.push([eventKey(ids[i] as Uint8Array, log.keys.time), value])
      }
      yield rows
    }
  } finally {
    await Promise.all(sources.map((s) => s.iterator.return(undefined)))
  }
}

/**
 * The events of `log` (a member's own, or an origin's held here) that
 * `query` selects, in scan order, as stored: one
 * batch per store read (what was read goes out before more is read, so a
 * reader that takes 250 events costs about 250 rows), then what the scan
 * applied and found. Returning early (`return()`) closes every store
 * iterator it holds.
 */
export async function* scanEvents(
  log: EventSpace,
  query: EventQuery,
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<StoredEvent[], EventScanEnd> {
  const hwm = query.hwm
  const signal = options.signal
  const range = queryIdRange(query)
  const end: EventScanEnd = { hwm, scanned: 0, more: false }
  if (Buffer.compare(range.lower.id, range.upper.id) > 0 || query.limit <= 0) return end

  const reverse = query.reverse
  const step = readStep(query)
  let rows: AsyncGenerator<Array<[Buffer, Buffer]>>
  // Only the time index needs each event's type checked; a type index holds only its type.
  let checkType: ((type: string) => boolean) | undefined
  const exclude = query.notTypes ?? []
  if (query.types.length > 0 || exclude.length > 0) {
    const types = selectTypes(query.types, exclude, log.types())
    if (types.length === 0) return end
    if (types.length <= MAX_INDEX_MERGE_TYPES) {
      rows = indexRows(log, types, range, reverse, step)
    } else {
      rows = timeRows(log, range, reverse, step)
      checkType = typeMatcher(query.types, exclude)
    }
  } else {
    rows = timeRows(log, range, reverse, step)
  }

  const text = query.text?.toLowerCase()
  const checkAttrs = attrMatcher(query.attrs)
  // Without a filter on its fields, a value goes out as it is stored, never decoded here.
  const filtered =
    query.minSeverity > 0 ||
    text !== undefined ||
    checkType !== undefined ||
    checkAttrs !== undefined
  let batch: StoredEvent[] = []
  let sent = 0
  try {
    for await (const chunk of rows) {
      signal?.throwIfAborted()
      for (const [key, value] of chunk) {
        end.scanned++
        if (seqOfEventKey(key) > hwm) {
          // On one member id order is seq order: ascending, nothing past
          // this belongs to the set; descending, older events still may.
          if (reverse) continue
          if (batch.length > 0) yield batch
          return end
        }
        if (filtered) {
          const fields = decodeEventValue(value)
          if (fields.severity < query.minSeverity) continue
          if (checkType !== undefined && !checkType(fields.type)) continue
          if (text !== undefined && !(fields.message?.toLowerCase().includes(text) ?? false))
            continue
          if (checkAttrs !== undefined && !checkAttrs(fields.attrs)) continue
        }
        if (sent === query.limit) {
          end.more = true
          if (batch.length > 0) yield batch
          return end
        }
        batch.push({ id: idOfEventKey(key), value })
        sent++
      }
      if (batch.length > 0) {
        yield batch
        batch = []
      }
    }
    return end
  } finally {
    await rows.return(undefined)
  }
}
