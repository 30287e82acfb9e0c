// The coordinator: the role a member takes when it receives a query. It asks
// every member of the set for its slice in parallel (itself by a direct call
// of its slice handler, the others through the transport the mesh provides),
// merges the slices in the array's order, stops at the limit, and answers with
// a page of the result set, its ids, its cursors and one row per member.
// Membership, fan-out and merging are kept apart, as in Serf: this module
// sees members only as SliceTargets.

import type { IdBound, SliceRequest, SliceTrailer } from '../../protocol/slice.ts'
import { NotFoundError, OwnerUnreachableError } from '../errors.ts'
import type { ChorusEvent } from '../event/event.ts'
import { decodeId, parseId, tagHex } from '../event/id.ts'
import type { CursorState, EventQuery } from './cursor.ts'
import { encodeCursor } from './cursor.ts'
import { mergeSlices } from './merge.ts'

/** Default per-member deadline of a query, in ms. */
export const DEFAULT_QUERY_TIMEOUT_MS = 2000

export type MemberStatus = 'ok' | 'timed_out' | 'unreachable' | 'error' | 'dead' | 'unsupported'

export interface MemberRow {
  member: string
  name: string
  status: MemberStatus
  count: number
  ms: number
  error?: string
}

export interface ResultPage {
  events: ChorusEvent[]
  firstId: string | null
  lastId: string | null
  next: string | null
  prev: string | null
  members: MemberRow[]
  partial: boolean
}

/** One member as the coordinator sees it: how to ask it for a slice or an event. */
export interface SliceTarget {
  peerId: string
  name: string
  /** Hex of the member's 40-bit id tag. */
  tag: string
  /** `dead` members are not asked and get a `dead` row. */
  state: 'alive' | 'suspect' | 'dead'
  slice(
    request: SliceRequest,
    options: { signal: AbortSignal },
  ): AsyncGenerator<ChorusEvent[], SliceTrailer>
  lookup(id: Uint8Array, options: { signal: AbortSignal }): Promise<ChorusEvent | undefined>
}

export interface CoordinatorComponents {
  /** A snapshot of the members to ask, this member included. */
  targets(): SliceTarget[]
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

/** The error name the mesh uses when a peer does not speak the protocol version. */
export const UNSUPPORTED_PROTOCOL_ERROR = 'UnsupportedProtocolError'
const UNREACHABLE_ERRORS = new Set(['UnreachableError', 'DialError', 'ConnectionClosedError'])

interface Answer {
  target: SliceTarget
  events: ChorusEvent[]
  trailer?: SliceTrailer
  row: MemberRow
}

function idBound(id: string | undefined): IdBound | undefined {
  if (id === undefined) return undefined
  const bytes = decodeId(id)
  return bytes === undefined ? undefined : { id: bytes, inclusive: false }
}

function matchesMemberFilter(target: SliceTarget, filter: readonly string[]): boolean {
  return filter.length === 0 || filter.includes(target.name) || filter.includes(target.peerId)
}

async function askOne(
  target: SliceTarget,
  request: SliceRequest,
  timeoutMs: number,
  parent: AbortSignal | undefined,
): Promise<Answer> {
  const started = performance.now()
  const deadline = AbortSignal.timeout(timeoutMs)
  const signal = parent === undefined ? deadline : AbortSignal.any([parent, deadline])
  const events: ChorusEvent[] = []
  const row: MemberRow = { member: target.peerId, name: target.name, status: 'ok', count: 0, ms: 0 }
  let trailer: SliceTrailer | undefined
  const stream = target.slice(request, { signal })
  try {
    // The answer must come by the deadline even if the stream ignores the
    // signal, so each read races it.
    const aborted = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason)
      signal.addEventListener('abort', () => reject(signal.reason), { once: true })
    })
    aborted.catch(() => {})
    for (;;) {
      const next = await Promise.race([stream.next(), aborted])
      if (next.done === true) {
        trailer = next.value
        break
      }
      for (const event of next.value) events.push(event)
    }
  } catch (err) {
    const name = err instanceof Error ? err.name : ''
    if (deadline.aborted) {
      row.status = 'timed_out'
    } else if (name === UNSUPPORTED_PROTOCOL_ERROR) {
      row.status = 'unsupported'
    } else if (UNREACHABLE_ERRORS.has(name)) {
      row.status = 'unreachable'
    } else {
      row.status = 'error'
    }
    if (row.status !== 'timed_out') row.error = err instanceof Error ? err.message : String(err)
    events.length = 0
    void stream.return(undefined as unknown as SliceTrailer).catch(() => {})
  }
  row.ms = Math.round(performance.now() - started)
  row.count = events.length
  return trailer === undefined ? { target, events, row } : { target, events, trailer, row }
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
      if (marks === undefined) {
        for (const target of all) {
          if (!matchesMemberFilter(target, q.members)) continue
          if (target.state === 'dead') {
            rows.push({ member: target.peerId, name: target.name, status: 'dead', count: 0, ms: 0 })
          } else {
            asked.push(target)
          }
        }
      } else {
        const byPeer = new Map(all.map((t) => [t.peerId, t]))
        for (const [peerId, hwm] of marks) {
          const target = byPeer.get(peerId)
          const name = target?.name ?? peerId
          if (hwm < 0) {
            rows.push({
              member: peerId,
              name,
              status: 'unreachable',
              count: 0,
              ms: 0,
              error: 'did not answer the first page of this result set',
            })
          } else if (target === undefined) {
            rows.push({
              member: peerId,
              name,
              status: 'unreachable',
              count: 0,
              ms: 0,
              error: 'no longer in the membership table',
            })
          } else if (target.state === 'dead') {
            rows.push({ member: peerId, name, status: 'dead', count: 0, ms: 0 })
          } else {
            asked.push(target)
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

      const answers = await Promise.all(
        asked.map((target) => {
          const hwm = marks?.get(target.peerId)
          const request = hwm === undefined ? base : { ...base, hwm }
          return askOne(target, request, input.timeoutMs, options.signal)
        }),
      )

      const ok = answers.filter((a) => a.trailer !== undefined)
      const merged = mergeSlices(
        ok.map((a) => a.events),
        reverse,
        q.limit,
      )
      const more = merged.leftover || ok.some((a) => a.trailer?.more === true)
      const events = dir === 'prev' ? merged.items.reverse() : merged.items

      const newMarks: Array<[string, number]> =
        cursor?.marks ??
        answers.map((a) => [a.target.peerId, a.trailer === undefined ? -1 : a.trailer.hwm])
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

      const memberRows = [...answers.map((a) => a.row), ...rows]
      return {
        events,
        firstId: first?.id ?? null,
        lastId: last?.id ?? null,
        next,
        prev,
        members: memberRows,
        partial: memberRows.some((r) => r.status !== 'ok'),
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
      const deadline = AbortSignal.timeout(options.timeoutMs)
      const signal =
        options.signal === undefined ? deadline : AbortSignal.any([options.signal, deadline])
      let event: ChorusEvent | undefined
      try {
        event = await owner.lookup(bytes, { signal })
      } catch (err) {
        throw new OwnerUnreachableError(
          `the owner of ${id} (${owner.name}) could not be asked: ${err instanceof Error ? err.message : String(err)}`,
        )
      }
      if (event === undefined) throw new NotFoundError(`${owner.name} has no event with id ${id}`)
      return event
    },
  }
}
