// The coordinator: the role a member takes when it receives a query. It asks
// every member of the set for its slice in parallel (itself by a direct call
// of its slice handler, the others through the transport the mesh provides),
// merges the slices in the array's order, stops at the limit, and answers with
// a page of the result set, its ids, its cursors and one row per member.
// Above TREE_THRESHOLD members it asks them through sub-coordinators (a tree:
// `treeParts`), each of which runs this same merge for its group
// (`createGroupHandler`); a page is the same either way.
// Membership, fan-out and merging are kept apart, as in Serf: this module
// sees members only as SliceTargets, and asks them through fan-out.ts.

import type {
  GroupRequest,
  GroupRow,
  GroupTrailer,
  IdBound,
  MemberCounters,
  RollupRequest,
  SliceAnswer,
  SliceRequest,
  SliceTrailer,
  StoredEvent,
} from '../../protocol/index.ts'
import { NotFoundError, OwnerUnreachableError } from '../errors.ts'
import type { ChorusEvent } from '../event/event.ts'
import { decodeId, parseId, tagHex } from '../event/id.ts'
import { fnv1a } from '../hash.ts'
import type { MemberRecorder } from '../stats.ts'
import { toStored } from '../store/codec.ts'
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
/**
 * Above this many members asked, a query fans out through sub-coordinators
 * (a tree) rather than to every member directly; a request may choose
 * either (`fanout=flat|tree`). See the README's figures for flat and tree.
 */
export const TREE_THRESHOLD = 32
/** How long a coordinator keeps its choice of sub-coordinators, ms. */
const SUB_EPOCH_MS = 10 * 60_000
/** Share of the deadline each member of a group gets from its sub-coordinator. */
const GROUP_DEADLINE_SHARE = 0.5
/** Share of the deadline a sub-coordinator has to answer before its group is asked directly. */
const GROUP_WAIT_SHARE = 0.6
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
  /**
   * Asks the member to merge the slices of `group` (itself among them) as a
   * sub-coordinator; absent for this member itself, which is never one.
   */
  group?(
    request: GroupRequest,
    group: readonly SliceTarget[],
    options: { signal: AbortSignal },
  ): Promise<GroupAnswer>
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
  /** Ask every member directly, or through sub-coordinators; default by the number asked (TREE_THRESHOLD). */
  fanout?: 'flat' | 'tree'
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
  /** The member's answer as it begins; undefined for a sub-coordinator's answer, taken whole. */
  opening: Promise<SliceAnswer<ChorusEvent>> | undefined
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
  /** A sub-coordinator's merged answer holds several members' events: the row each is counted in. */
  rowOf?: (event: ChorusEvent) => MemberRow | undefined
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
  if (source.done || source.failed) return
  try {
    if (source.stream === undefined) {
      const answer = await source.call.race(
        source.opening ?? Promise.reject(new Error('no answer to read')),
      )
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
        ?.then((a) => a.batches.return(undefined as unknown as SliceTrailer))
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
    const event = source.buffer[source.at] as ChorusEvent
    events.push(event)
    source.at++
    const row = source.rowOf === undefined ? source.call.row : source.rowOf(event)
    if (row !== undefined) row.count++
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

/**
 * One member's part in a page: the source its events come from (its own
 * slice, or its sub-coordinator's merged answer), its row, and its
 * high-water mark for the set once known.
 */
interface Part {
  target: SliceTarget
  source: Source
  row: MemberRow
  hwm: () => number | undefined
}

function flatPart(
  target: SliceTarget,
  request: SliceRequest,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Part {
  const source = openSource(target, request, timeoutMs, signal)
  return {
    target,
    source,
    row: source.call.row,
    hwm: () => (source.failed ? undefined : source.hwm),
  }
}

/** A sub-coordinator's merged answer, as the merge reads it, and the part of each member of its group. */
function groupParts(
  sub: SliceTarget,
  group: readonly SliceTarget[],
  answer: GroupAnswer,
  signal: AbortSignal | undefined,
): Part[] {
  const call = startCall(sub, 1, signal)
  call.done()
  const byPeer = new Map(answer.trailer.rows.map((r) => [r.peerId, r]))
  const rows = new Map<string, MemberRow>()
  const source: Source = {
    call,
    opening: undefined,
    buffer: answer.events,
    at: 0,
    done: true,
    failed: false,
    trailer: { hwm: 0, scanned: 0, more: answer.trailer.more },
    rowOf: (event) => rows.get(event.member),
  }
  return group.map((target) => {
    const r = byPeer.get(target.peerId)
    const row: MemberRow = {
      member: target.peerId,
      name: target.name,
      status: r?.status ?? 'error',
      count: 0,
      ms: r?.ms ?? 0,
      via: sub.name,
    }
    const error = r === undefined ? 'its sub-coordinator gave no row for it' : r.error
    if (error !== undefined) row.error = error
    rows.set(target.peerId, row)
    return { target, source, row, hwm: () => r?.hwm }
  })
}

/**
 * A tree fan-out: the members asked (but this one, asked directly) in about
 * √N groups, each asked through one of its members (its sub-coordinator,
 * chosen by rendezvous hashing of this member, the epoch and the member), which merges its group's slices and answers with one
 * merged slice and a row per member. A group whose sub-coordinator fails, or
 * does not answer within GROUP_WAIT_SHARE of the deadline, is asked directly,
 * member by member, in what remains of it.
 */
async function treeParts(
  asked: readonly SliceTarget[],
  self: SliceTarget | undefined,
  base: SliceRequest,
  requestFor: (target: SliceTarget) => SliceRequest,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Part[]> {
  const started = performance.now()
  const parts: Part[] = []
  const others = asked.filter((t) => t !== self)
  if (self !== undefined && asked.includes(self))
    parts.push(flatPart(self, requestFor(self), timeoutMs, signal))
  const size = Math.max(2, Math.ceil(Math.sqrt(others.length)))
  const groups: SliceTarget[][] = []
  for (let i = 0; i < others.length; i += size) groups.push(others.slice(i, i + size))
  const direct = (group: readonly SliceTarget[]) => {
    const left = Math.max(1, Math.floor(timeoutMs - (performance.now() - started)))
    return group.map((t) => flatPart(t, requestFor(t), left, signal))
  }
  // Each coordinator keeps the same sub-coordinators for SUB_EPOCH_MS (so it
  // holds connections to about √N members, not N), and coordinators choose
  // differently from each other and from one epoch to the next.
  const epoch = Math.floor(Date.now() / SUB_EPOCH_MS)
  const score = (t: SliceTarget) => fnv1a(`${self?.peerId ?? ''}/${epoch}/${t.peerId}`)
  const asks = groups.map(async (group) => {
    const candidates = group.filter((t) => t.state === 'alive' && t.group !== undefined)
    const sub = candidates.sort((a, b) => score(b) - score(a))[0]
    if (sub?.group === undefined || group.length === 1) return direct(group)
    const wait = AbortSignal.timeout(Math.max(1, Math.floor(timeoutMs * GROUP_WAIT_SHARE)))
    const given = signal === undefined ? wait : AbortSignal.any([wait, signal])
    try {
      const asked = sub.group(
        {
          slice: base,
          members: group.map((t) => ({ peerId: t.peerId, hwm: requestFor(t).hwm })),
          deadlineMs: Math.max(1, Math.floor(timeoutMs * GROUP_DEADLINE_SHARE)),
        },
        group,
        { signal: given },
      )
      // Raced, not trusted: a dial that does not heed its signal (a member
      // that takes a connection and never completes the handshake) must not
      // hold the page past the group's share of the deadline.
      asked.catch(() => {})
      const answer = await Promise.race([
        asked,
        new Promise<never>((_, reject) => {
          if (given.aborted) reject(given.reason)
          given.addEventListener('abort', () => reject(given.reason), { once: true })
        }),
      ])
      return groupParts(sub, group, answer, signal)
    } catch {
      return signal?.aborted === true ? [] : direct(group)
    }
  })
  for (const group of await Promise.all(asks)) parts.push(...group)
  return parts
}

/** A sub-coordinator's merged answer: its events in scan order, and its trailer. */
export interface GroupAnswer {
  events: ChorusEvent[]
  trailer: GroupTrailer
}

/** What a sub-coordinator answers a group request with (its events as stored, to pass on). */
export type GroupHandler = (
  request: GroupRequest,
  options: { signal: AbortSignal },
) => Promise<{ events: StoredEvent[]; trailer: GroupTrailer }>

/**
 * The sub-coordinator's side of a tree fan-out: asks each member of the
 * group (itself directly) for its slice, as a flat fan-out would, and merges
 * them; a member it does not know is `unreachable` to it.
 */
export function createGroupHandler(targets: () => SliceTarget[]): GroupHandler {
  return async (request, options) => {
    const known = new Map(targets().map((t) => [t.peerId, t]))
    const rows: GroupRow[] = []
    const parts: Part[] = []
    for (const member of request.members) {
      const target = known.get(member.peerId)
      const row = target === undefined ? undefined : notAskedRow(target)
      if (target === undefined || row !== undefined) {
        rows.push({
          peerId: member.peerId,
          status: row?.status ?? 'unreachable',
          ms: 0,
          error: row?.error ?? 'not in the table of its sub-coordinator',
          hwm: undefined,
        })
        continue
      }
      const slice = member.hwm === undefined ? request.slice : { ...request.slice, hwm: member.hwm }
      parts.push(flatPart(target, slice, request.deadlineMs, options.signal))
    }
    const merged = await mergeSources(
      parts.map((p) => p.source),
      request.slice.reverse,
      request.slice.limit,
    )
    for (const p of parts) {
      const row: GroupRow = {
        peerId: p.target.peerId,
        status: p.row.status,
        ms: p.row.ms,
        error: p.row.error,
        hwm: p.hwm(),
      }
      rows.push(row)
    }
    return { events: merged.events.map(toStored), trailer: { more: merged.more, rows } }
  }
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

      const requestFor = (target: SliceTarget): SliceRequest => {
        const hwm = marks?.get(target.tag)
        return hwm === undefined ? base : { ...base, hwm }
      }
      const fanout = input.fanout ?? (asked.length > TREE_THRESHOLD ? 'tree' : 'flat')
      const parts =
        fanout === 'tree'
          ? await treeParts(asked, all[0], base, requestFor, input.timeoutMs, options.signal)
          : asked.map((t) => flatPart(t, requestFor(t), input.timeoutMs, options.signal))
      const sources = [...new Set(parts.map((p) => p.source))]
      const merged = await mergeSources(sources, reverse, q.limit)
      const more = merged.more
      const events = dir === 'prev' ? merged.events.reverse() : merged.events

      const newMarks: Array<[string, number]> = cursor?.marks ?? [
        ...parts.map((p): [string, number] => [p.target.tag, p.hwm() ?? -1]),
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

      const memberRows = [...parts.map((p) => p.row), ...rows]
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
