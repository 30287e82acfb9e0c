// The slice handler: answers one SliceRequest from this member's own store,
// never by asking anyone else. It yields events in batches, in scan order,
// as they are stored (id and value bytes, decoded only when a filter needs
// a field), and returns a trailer. Peers reach it over /chorus/slice/2, which
// sends those bytes as they are; the coordinator calls it directly for its
// own member and decodes them with `decodedAnswer`.

import { decodeStoredEvents, type StoredEvent } from '../../protocol/codec.ts'
import type { IdBound, SliceAnswer, SliceRequest, SliceTrailer } from '../../protocol/slice.ts'
import type { ChorusEvent } from '../event/event.ts'
import { ID_BYTES, idBytes, seqOfIdBytes } from '../event/id.ts'
import { decodeEventValue, toEvent } from '../store/codec.ts'
import type { EventLog } from '../store/event-log.ts'
import { EVENT, typeIndexKey, typePrefix } from '../store/keys.ts'

/** Most events per yielded batch and per store read. */
export const SLICE_BATCH_EVENTS = 1024
/** Fewest rows per store read. */
const MIN_READ_ROWS = 64

/**
 * Rows of the first store read: what the coordinator may take at first, so a
 * 100-event page does not read 1,024. Later reads grow to SLICE_BATCH_EVENTS.
 */
function readStep(request: SliceRequest): number {
  return Math.min(
    SLICE_BATCH_EVENTS,
    Math.max(MIN_READ_ROWS, (request.window ?? request.limit) + 1),
  )
}
/** Above this many matching types a type filter scans the time index instead of merging per-type indexes. */
const MAX_INDEX_MERGE_TYPES = 32

const ZERO_TAG = new Uint8Array(5)

export interface SliceHandlerComponents {
  log: EventLog
}

export type SliceHandler = (
  request: SliceRequest,
  options?: { signal?: AbortSignal },
) => SliceAnswer<StoredEvent>

/** The events stored ids and values make, owned by `member` called `name`. */
export function decodeStored(
  stored: readonly StoredEvent[],
  member: string,
  name: string,
): ChorusEvent[] {
  return decodeStoredEvents(stored).map((e) => toEvent(e.id, e, member, name))
}

/** A slice answer of this member's, decoded: how the coordinator reads its own member. */
export function decodedAnswer(
  answer: SliceAnswer<StoredEvent>,
  member: string,
  name: string,
): SliceAnswer<ChorusEvent> {
  async function* batches(): AsyncGenerator<ChorusEvent[], SliceTrailer, 'peek' | undefined> {
    let mode: 'peek' | undefined
    try {
      for (;;) {
        const next = await answer.batches.next(mode)
        if (next.done === true) return next.value
        mode = yield decodeStored(next.value, member, name)
      }
    } finally {
      await answer.batches.return(undefined as unknown as SliceTrailer)
    }
  }
  return { hwm: answer.hwm, batches: batches() }
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

export function typeMatcher(filter: readonly string[]): (type: string) => boolean {
  if (filter.length === 0) return () => true
  const exact = new Set(filter.filter((f) => !f.endsWith('.*')))
  const prefixes = filter.filter((f) => f.endsWith('.*')).map((f) => f.slice(0, -1))
  return (type) => exact.has(type) || prefixes.some((p) => type.startsWith(p))
}

interface Bounds {
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

/** The id range a request covers: [from, to) over ts, narrowed by its id bounds. */
export function requestBounds(request: SliceRequest): Bounds {
  let lower = tighterLower(
    { id: idBytes(request.fromMs, ZERO_TAG, 0), inclusive: true },
    request.lower,
  )
  let upper = tighterUpper(
    { id: idBytes(request.toMs, ZERO_TAG, 0), inclusive: false },
    request.upper,
  )
  if (request.reverse) upper = tighterUpper(upper, request.position)
  else lower = tighterLower(lower, request.position)
  return { lower, upper }
}

/**
 * Checks a peer's answer to `request` id by id, before the coordinator
 * merges it: every id must carry the tag of the member asked, lie within the
 * request's bounds, and come in scan order. A member can then put nothing in
 * a page that it could not have stored itself for that request: not another
 * member's events, not events of another period, not a reordering that would
 * break the merge. Returns what is wrong with `id`, or undefined.
 */
export function createAnswerCheck(
  request: SliceRequest,
  tag: Uint8Array,
): (id: Uint8Array) => string | undefined {
  const { lower, upper } = requestBounds(request)
  let previous: Uint8Array | undefined
  return (id) => {
    for (let i = 0; i < tag.byteLength; i++)
      if (id[6 + i] !== tag[i]) return 'sent an event of another member'
    const low = Buffer.compare(id, lower.id)
    const high = Buffer.compare(id, upper.id)
    if (low < 0 || (low === 0 && !lower.inclusive) || high > 0 || (high === 0 && !upper.inclusive))
      return 'sent an event outside the requested range'
    if (previous !== undefined) {
      const order = Buffer.compare(id, previous)
      if (request.reverse ? order >= 0 : order <= 0) return 'sent events out of order'
    }
    previous = id
    return undefined
  }
}

function withPrefix(prefix: Buffer, bound: IdBound): Buffer {
  return typeIndexKey(prefix, bound.id)
}

function rangeFor(prefix: Buffer, bounds: Bounds, reverse: boolean) {
  const lowerKey = withPrefix(prefix, bounds.lower)
  const upperKey = withPrefix(prefix, bounds.upper)
  return {
    ...(bounds.lower.inclusive ? { gte: lowerKey } : { gt: lowerKey }),
    ...(bounds.upper.inclusive ? { lte: upperKey } : { lt: upperKey }),
    reverse,
  }
}

export function createSliceHandler(components: SliceHandlerComponents): SliceHandler {
  const { log } = components
  const eventPrefix = Buffer.of(EVENT)

  /** Raw (id, value) rows of the request's range, in scan order, from the time index. */
  async function* timeRows(
    bounds: Bounds,
    reverse: boolean,
    step: number,
  ): AsyncGenerator<Array<[Buffer, Buffer]>> {
    yield* log.scan(rangeFor(eventPrefix, bounds, reverse), step, SLICE_BATCH_EVENTS)
  }

  /** Raw rows of the request's range for a few exact types, merged from their indexes in id order. */
  async function* indexRows(
    types: readonly string[],
    bounds: Bounds,
    reverse: boolean,
    step: number,
  ): AsyncGenerator<Array<[Buffer, Buffer]>> {
    const sources = types.map((type) => {
      const prefix = typePrefix(type)
      return {
        offset: prefix.length,
        iterator: log.scan(rangeFor(prefix, bounds, reverse), step, SLICE_BATCH_EVENTS),
        rows: [] as Array<[Buffer, Buffer]>,
        at: 0,
        done: false,
      }
    })
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
      for (let take = step; ; take = Math.min(take * 2, SLICE_BATCH_EVENTS)) {
        const ids: Uint8Array[] = []
        while (ids.length < take) {
          let best: (typeof sources)[number] | undefined
          let bestId: Buffer | undefined
          for (const source of sources) {
            const row = source.rows[source.at]
            if (row === undefined) continue
            const id = row[0].subarray(source.offset, source.offset + ID_BYTES)
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
          const key = Buffer.allocUnsafe(1 + ID_BYTES)
          key[0] = EVENT
          key.set(ids[i] as Uint8Array, 1)
          rows.push([key, value])
        }
        yield rows
      }
    } finally {
      await Promise.all(sources.map((s) => s.iterator.return(undefined)))
    }
  }

  return (request, options = {}) => {
    const hwm = request.hwm ?? log.lastSeq
    return { hwm, batches: scan(request, hwm, options.signal) }
  }

  async function* scan(
    request: SliceRequest,
    hwm: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<StoredEvent[], SliceTrailer> {
    const bounds = requestBounds(request)
    const trailer: SliceTrailer = { hwm, scanned: 0, more: false }
    if (Buffer.compare(bounds.lower.id, bounds.upper.id) > 0 || request.limit <= 0) return trailer

    const reverse = request.reverse
    const step = readStep(request)
    const known = log.types()
    let rows: AsyncGenerator<Array<[Buffer, Buffer]>>
    // Only the time index needs each event's type checked; a type index holds only its type.
    let checkType: ((type: string) => boolean) | undefined
    if (request.types.length > 0) {
      const types = matchTypes(request.types, known)
      if (types.length === 0) return trailer
      if (types.length <= MAX_INDEX_MERGE_TYPES) {
        rows = indexRows(types, bounds, reverse, step)
      } else {
        rows = timeRows(bounds, reverse, step)
        checkType = typeMatcher(request.types)
      }
    } else {
      rows = timeRows(bounds, reverse, step)
    }

    const text = request.text?.toLowerCase()
    // Without a filter on its fields, a value goes out as it is stored, never decoded here.
    const filtered = request.minSeverity > 0 || text !== undefined || checkType !== undefined
    let batch: StoredEvent[] = []
    let sent = 0
    try {
      for await (const chunk of rows) {
        signal?.throwIfAborted()
        for (const [key, value] of chunk) {
          trailer.scanned++
          if (seqOfIdBytes(key, 1) > hwm) {
            // On one member id order is seq order: ascending, nothing past
            // this belongs to the set; descending, older events still may.
            if (reverse) continue
            if (batch.length > 0) yield batch
            return trailer
          }
          if (filtered) {
            const fields = decodeEventValue(value)
            if (fields.severity < request.minSeverity) continue
            if (checkType !== undefined && !checkType(fields.type)) continue
            if (text !== undefined && !(fields.message?.toLowerCase().includes(text) ?? false))
              continue
          }
          if (sent === request.limit) {
            trailer.more = true
            if (batch.length > 0) yield batch
            return trailer
          }
          batch.push({ id: key.subarray(1, 1 + ID_BYTES), value })
          sent++
        }
        // One batch per store read: what was read goes out before more is
        // read, so a member granted 250 events reads about 250 rows.
        if (batch.length > 0) {
          yield batch
          batch = []
        }
      }
      return trailer
    } finally {
      await rows.return(undefined)
    }
  }
}

export type LookupHandler = (id: Uint8Array) => Promise<StoredEvent | undefined>

/** Answers a lookup of one of this member's events by its 16 id bytes, as stored. */
export function createLookupHandler(components: SliceHandlerComponents): LookupHandler {
  return async (id) => {
    const [value] = await components.log.getMany([id])
    return value === undefined ? undefined : { id, value }
  }
}
