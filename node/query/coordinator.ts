// The coordinator: the role a member takes when it receives a query. It asks
// every member of the set for its slice in parallel (itself by a direct call
// of its slice handler, the others through the transport the mesh provides),
// merges the slices in the array's order, stops at the limit, and answers with
// a page of the result set, its ids, its cursors and one row per member.
// Membership, fan-out and merging are kept apart, as in Serf: this module
// sees members only as SliceTargets, and asks them through fan-out.ts.

import type {
  IdBound,
  MemberCounters,
  RollupRequest,
  SliceAnswer,
  SliceRequest,
  SliceTrailer,
} from '../../protocol/index.ts'
import { NotFoundError, OwnerUnreachableError } from '../errors.ts'
import type { ChorusEvent } from '../event/event.ts'
import { decodeId, parseId, tagHex } from '../event/id.ts'
import type { MemberRecorder } from '../stats.ts'
import type { BucketSeries } from '../store/rollup.ts'
import type { CursorState, EventQuery } from './cursor.ts'
import { encodeCursor } from './cursor.ts'
import {
  type Call,
  collect,
  type FanOutTarget,
  type MemberRow,
  matchesMembers,
  notAskedRow,
  recordRows,
  startCall,
} from './fan-out.ts'
import { createHeap, scanOrder } from './merge.ts'

/** Smallest first grant of events to a member. */
const MIN_WINDOW = 32
/** Default per-member deadline of a query, in ms. */
export const DEFAULT_QUERY_TIMEOUT_MS = 2000

export interface ResultPage {
  events: ChorusEvent[]
  firstId: string | null
  lastId: string | null
  next: string | null
  prev: string | null
  members: MemberRow[]
  partial: boolean
}

/** One member as the coordinator sees it: how to ask it for a slice, an event, rollups or counters. */
export interface SliceTarget extends FanOutTarget {
  /** Hex of the member's 40-bit id tag. */
  tag: string
  /** Resolves once the member's answer has begun (its high-water mark is known). */
  slice(request: SliceRequest, options: { signal: AbortSignal }): Promise<SliceAnswer<ChorusEvent>>
  lookup(id: Uint8Array, options: { signal: AbortSignal }): Promise<ChorusEvent | undefined>
  rollup(request: RollupRequest, options: { signal: AbortSignal }): Promise<BucketSeries[]>
  stats(options: { signal: AbortSignal }): Promise<MemberCounters>
}

export interface CoordinatorComponents {
  /** A snapshot of the members to ask, this member included. */
  targets(): SliceTarget[]
  recorder?: MemberRecorder
}

export interface QueryInput {
  /** A new set; ignored when `cursor` is given. */
  query: EventQuery
  cursor?: CursorState
  /** Per-member deadline in ms. */
  timeoutMs: number
}

export interface Coordinator {
  query(input: QueryInput, options?: { signal?: AbortSignal }): Promise<ResultPage>
  /** Fetches one event from its owner. Throws NotFoundError or OwnerUnreachableError. */
  lookup(id: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ChorusEvent>
}

function idBound(id: string | undefined): IdBound | undefined {
  if (id === undefined) return undefined
  const bytes = decodeId(id)
  return bytes === undefined ? undefined : { id: bytes, inclusive: false }
}

/**
 * One member's answer as the merge consumes it: a buffer of its latest batch,
 * refilled on demand, so that the merge holds at most a batch per member and
 * can stop reading (and cancel) as soon as the page is full.
 */
interface Source {
  call: Call<SliceTarget>
  opening: Promise<SliceAnswer<ChorusEvent>>
  stream?: AsyncGenerator<ChorusEvent[], SliceTrailer, 'peek' | undefined>
  /** From the member's answer: true while it waits for a grant with more events in hand. */
  waiting?: () => boolean
  /** The member's high-water mark for this set, from the head of its answer. */
  hwm?: number
  buffer: ChorusEvent[]
  at: number
  done: boolean
  failed: boolean
  trailer?: SliceTrailer
}

function openSource(
  target: SliceTarget,
  request: SliceRequest,
  timeoutMs: number,
  parent: AbortSignal | undefined,
): Source {
  const call = startCall(target, timeoutMs, parent)
  const opening = target.slice(request, { signal: call.signal })
  // Raced against the call's signal; a rejection after the race is lost must not go unhandled.
  opening.catch(() => {})
  return { call, opening, buffer: [], at: 0, done: false, failed: false }
}

const needsFill = (s: Source) => !s.done && !s.failed && s.at >= s.buffer.length

/** Reads the source's next batch (or its trailer, or its failure). */
async function fill(source: Source, peek = false): Promise<void> {
  try {
    if (source.stream === undefined) {
      const answer = await source.call.race(source.opening)
      source.hwm = answer.hwm
      source.stream = answer.batches
      if (answer.waiting !== undefined) source.waiting = answer.waiting
    }
    // A peek is one read: a member waiting for a grant answers it with an
    // empty batch (and `waiting`), which must not loop.
    for (let reads = 0; needsFill(source) && !(peek && reads > 0); reads++) {
      const next = await source.call.race(source.stream.next(peek ? 'peek' : undefined))
      if (next.done === true) {
        source.trailer = next.value
        source.done = true
        source.call.done()
      } else {
        source.buffer = next.value
        source.at = 0
      }
    }
  } catch (err) {
    source.failed = true
    source.buffer = []
    source.at = 0
    source.call.fail(err)
    void source.stream?.return(undefined as unknown as SliceTrailer).catch(() => {})
    // An answer that begins after we gave up on it must still be closed.
    if (source.stream === undefined) {
      source.opening
        .then((a) => a.batches.return(undefined as unknown as SliceTrailer))
        .catch(() => {})
    }
  }
}

/** Stops reading a source whose events the page no longer needs. */
function close(source: Source): void {
  if (source.done || source.failed) return
  source.call.cancel('page full')
  void source.stream?.return(undefined as unknown as SliceTrailer).catch(() => {})
}

/**
 * K-way merge of the sources in scan order, streaming: it reads a member's
 * next batch only when the merge needs it, stops at `limit`, then looks one
 * event further to know whether the set goes on, and cancels the rest.
 */
async function mergeSources(sources: Source[], reverse: boolean, limit: number) {
  const events: ChorusEvent[] = []
  const before = scanOrder(reverse)
  await Promise.all(sources.map((s) => fill(s)))
  const heap = createHeap<Source>((a, b) =>
    before(a.buffer[a.at] as ChorusEvent, b.buffer[b.at] as ChorusEvent),
  )
  for (const source of sources) if (source.at < source.buffer.length) heap.push(source)
  while (events.length < limit) {
    const source = heap.pop()
    if (source === undefined) break
    events.push(source.buffer[source.at] as ChorusEvent)
    source.at++
    source.call.row.count++
    if (needsFill(source)) await fill(source)
    if (source.at < source.buffer.length) heap.push(source)
  }
  if (events.length >= limit) {
    // Full: only ask whether the set goes on, without granting more.
    const unknown = sources.filter((s) => needsFill(s) && s.waiting?.() !== true)
    if (unknown.length > 0) await Promise.all(unknown.map((s) => fill(s, true)))
  }
  const more = sources.some(
    (s) =>
      s.at < s.buffer.length || s.trailer?.more === true || (!s.failed && s.waiting?.() === true),
  )
  for (const source of sources) close(source)
  return { events, more }
}

export function createCoordinator(components: CoordinatorComponents): Coordinator {
  return {
    async query(input, options = {}) {
      const cursor = input.cursor
      const q = cursor?.query ?? input.query
      const dir = cursor?.dir ?? 'next'
      const reverse = (q.order === 'desc') !== (dir === 'prev')
      const all = components.targets()

      // The set's members: fixed by the cursor, or everyone who matches now.
      const marks = cursor === undefined ? undefined : new Map(cursor.marks)
      const rows: MemberRow[] = []
      const asked: SliceTarget[] = []
      /** Members of the set that were not asked at its first page; they stay out of it. */
      const absent: string[] = []
      if (marks === undefined) {
        for (const target of all) {
          if (!matchesMembers(target, q.members)) continue
          const row = notAskedRow(target)
          if (row === undefined) asked.push(target)
          else {
            rows.push(row)
            absent.push(target.tag)
          }
        }
      } else {
        const byTag = new Map(all.map((t) => [t.tag, t]))
        for (const [tag, hwm] of marks) {
          const target = byTag.get(tag)
          const peerId = target?.peerId ?? `tag:${tag}`
          const name = target?.name ?? peerId
          const away =
            hwm < 0
              ? 'did not answer the first page of this result set'
              : target === undefined
                ? 'no longer in the membership table'
                : undefined
          if (away !== undefined || target === undefined) {
            rows.push({ member: peerId, name, status: 'unreachable', count: 0, ms: 0, error: away })
          } else {
            const row = notAskedRow(target)
            if (row === undefined) asked.push(target)
            else rows.push(row)
          }
        }
      }

      const base: SliceRequest = {
        fromMs: q.fromMs,
        toMs: q.toMs,
        reverse,
        types: q.types,
        minSeverity: q.minSeverity,
        limit: q.limit,
        // Each member may send its even share of the page and a quarter more
        // before it waits for a grant: evenly spread sets rarely need a round
        // trip, and what members send past what the page takes is read,
        // sent and decoded for nothing (at twice the share, a scan of many
        // pages did close to double the work).
        window: Math.min(
          q.limit,
          Math.max(MIN_WINDOW, Math.ceil((1.25 * q.limit) / Math.max(1, asked.length))),
        ),
      }
      const lower = idBound(q.after)
      const upper = idBound(q.before)
      if (lower !== undefined) base.lower = lower
      if (upper !== undefined) base.upper = upper
      if (q.text !== undefined) base.text = q.text
      if (cursor !== undefined) {
        const position = decodeId(cursor.position)
        if (position !== undefined) base.position = { id: position, inclusive: cursor.inclusive }
      }

      const sources = asked.map((target) => {
        const hwm = marks?.get(target.tag)
        const request = hwm === undefined ? base : { ...base, hwm }
        return openSource(target, request, input.timeoutMs, options.signal)
      })
      const merged = await mergeSources(sources, reverse, q.limit)
      const more = merged.more
      const events = dir === 'prev' ? merged.events.reverse() : merged.events

      const newMarks: Array<[string, number]> = cursor?.marks ?? [
        ...sources.map((s): [string, number] => [
          s.call.target.tag,
          s.failed || s.hwm === undefined ? -1 : s.hwm,
        ]),
        ...absent.map((tag): [string, number] => [tag, -1]),
      ]
      const cursorAt = (d: 'next' | 'prev', position: string, inclusive: boolean) =>
        encodeCursor({ query: q, dir: d, position, inclusive, marks: newMarks })

      const first = events[0]
      const last = events[events.length - 1]
      let next: string | null = null
      let prev: string | null = null
      if (dir === 'next') {
        if (more && last !== undefined) next = cursorAt('next', last.id, false)
        if (cursor !== undefined) {
          prev =
            first !== undefined
              ? cursorAt('prev', first.id, false)
              : cursorAt('prev', cursor.position, !cursor.inclusive)
        }
      } else {
        if (more && first !== undefined) prev = cursorAt('prev', first.id, false)
        next =
          last !== undefined
            ? cursorAt('next', last.id, false)
            : cursorAt('next', (cursor as CursorState).position, !(cursor as CursorState).inclusive)
      }

      const memberRows = [...sources.map((s) => s.call.row), ...rows]
      const partial = recordRows(memberRows, components.recorder)
      return {
        events,
        firstId: first?.id ?? null,
        lastId: last?.id ?? null,
        next,
        prev,
        members: memberRows,
        partial,
      }
    },

    async lookup(id, options) {
      const parts = parseId(id)
      const bytes = decodeId(id)
      if (parts === undefined || bytes === undefined)
        throw new NotFoundError(`no event has id ${id}`)
      const tag = tagHex(parts.tag)
      const owner = components.targets().find((t) => t.tag === tag)
      if (owner === undefined) {
        throw new NotFoundError(`no member of this array owns id ${id}`)
      }
      const [asked] = await collect(
        // Asked whatever its state: only the owner can say, and it may be back.
        [{ ...owner, state: 'alive' }],
        { timeoutMs: options.timeoutMs, ...(options.signal && { signal: options.signal }) },
        (target, signal) => target.lookup(bytes, { signal }),
      )
      if (asked === undefined || asked.row.status !== 'ok') {
        const why = asked?.failure instanceof Error ? asked.failure.message : asked?.row.status
        throw new OwnerUnreachableError(
          `the owner of ${id} (${owner.name}) could not be asked: ${why ?? 'no answer'}`,
        )
      }
      const event = asked?.answer
      if (event === undefined) throw new NotFoundError(`${owner.name} has no event with id ${id}`)
      return event
    },
  }
}
