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
import { MAX_BATCH_EVENTS, MAX_SLICE_LIMIT } from '../../protocol/index.ts'
import { BusyError, NotFoundError, OwnerUnreachableError } from '../errors.ts'
import type { ChorusEvent } from '../event/event.ts'
import { decodeId, parseId, tagHex } from '../event/id.ts'
import { fnv1a } from '../hash.ts'
import { EVENT_HEAP_BYTES, type MemoryGate } from '../memory.ts'
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
import { createHedging, type Hedging, hedgedSlice } from './hedge.ts'
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
/** Longest a page waits for room in the memory budget before it is refused, ms. */
const DEFAULT_MEMORY_WAIT_MS = 10_000

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
  /**
   * Served by a holder (`servedBy`): the newest seq the member announced.
   * A holder's answer whose mark is below it is missing the rest.
   */
  covers?: number
  /** The newest seq the member announced, when known from its word. */
  seq?: number
  /**
   * Asks a holder of the member's events for the same slice (a hedge,
   * hedge.ts): present when a live holder other than the member is known.
   */
  hedge?(request: SliceRequest, options: { signal: AbortSignal }): Promise<SliceAnswer<ChorusEvent>>
  /** The name of the holder `hedge` asks. */
  hedgeBy?: string
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
  /** Its counters; with `origin`, the totals of that member's events it holds. */
  stats(options: { signal: AbortSignal; origin?: string }): Promise<MemberCounters>
}

export interface CoordinatorComponents {
  /** A snapshot of the members to ask, this member included. */
  targets(): SliceTarget[]
  recorder?: MemberRecorder
  /**
   * The requests' share of the memory budget: a page holds an estimate of
   * its events in flight from the moment it opens until it is read or
   * closed, and waits for room (see pageMemory). Default: no limit.
   */
  memory?: MemoryGate
  /** Longest wait for room in `memory` before a page is refused (BusyError), ms. Default 10 s. */
  memoryWaitMs?: number
}

export interface QueryInput {
  /** A new set; ignored when `cursor` is given. */
  query: EventQuery
  cursor?: CursorState
  /** Per-member deadline in ms. */
  timeoutMs: number
  /** Ask every member directly, or through sub-coordinators; default by the number asked (TREE_THRESHOLD). */
  fanout?: 'flat' | 'tree'
  /**
   * The whole set, not a page (an export): no limit, each member read to
   * its end (asked again past its last event whenever its answer stops at
   * the protocol's limit), every member asked directly. A member that fails
   * is not asked again: its row says how, and the set is partial.
   */
  whole?: boolean
}

/** A page but its events: what follows them in the answer. */
export type PageTrailer = Omit<ResultPage, 'events'>

/**
 * A page being merged: its events in order, in chunks, as members send
 * them; then the rest of the page. Read `events` to the end, or `close()`
 * the page, which cancels every member's scan and gives back its memory.
 */
export interface PageStream {
  events: AsyncIterable<ChorusEvent[]>
  /** The rest of the page; only once `events` is read to the end. */
  trailer(): PageTrailer
  close(): Promise<void>
}

export interface Coordinator {
  /** Opens a page (after waiting for room in the memory budget) and starts asking the members. */
  open(input: QueryInput, options?: { signal?: AbortSignal }): Promise<PageStream>
  /** A whole page in one object (open, read and close). */
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
  /**
   * For a whole set (an export): asks the member again, from just past the
   * last event it sent and under the same high-water mark, when its answer
   * ends at its limit with more to come; so one merge reads every member to
   * its end, one member's slice after another, never restarting the others.
   */
  again?: (afterId: string, hwm: number | undefined) => Promise<SliceAnswer<ChorusEvent>>
  /** The id of the last event the member sent. */
  lastId?: string
}

function openSource(
  target: SliceTarget,
  request: SliceRequest,
  timeoutMs: number,
  parent: AbortSignal | undefined,
  whole = false,
  hedging?: Hedging,
): Source {
  const call = startCall(target, timeoutMs, parent, whole ? 'each' : 'total')
  let asked = 0
  const ask = (r: SliceRequest) => {
    // A page's first ask is hedged; an export reads one copy to its end.
    const opening =
      hedging !== undefined && target.hedge !== undefined && !whole && asked++ === 0
        ? hedgedSlice(call, r, hedging, hedging.delayMs(timeoutMs))
        : target.slice(r, { signal: call.signal })
    // Raced against the call's signal; a rejection after the race is lost must not go unhandled.
    opening.catch(() => {})
    return opening
  }
  const source: Source = {
    call,
    opening: ask(request),
    buffer: [],
    at: 0,
    done: false,
    failed: false,
  }
  if (whole) {
    source.again = (afterId, hwm) => {
      const position = { id: decodeId(afterId) as Uint8Array, inclusive: false }
      return ask(hwm === undefined ? { ...request, position } : { ...request, position, hwm })
    }
  }
  return source
}

const needsFill = (s: Source) => !s.done && !s.failed && s.at >= s.buffer.length

/** Reads the source's next batch (or its trailer, or its failure). */
async function fill(source: Source, peek = false): Promise<void> {
  if (source.done || source.failed) return
  try {
    // A peek is one read: a member waiting for a grant answers it with an
    // empty batch (and `waiting`), which must not loop.
    for (let reads = 0; needsFill(source) && !(peek && reads > 0); reads++) {
      if (source.stream === undefined) {
        const answer = await source.call.race(
          source.opening ?? Promise.reject(new Error('no answer to read')),
        )
        // The first answer's mark is the set's, whatever a later one says.
        source.hwm ??= answer.hwm
        const covers = source.call.target.covers
        if (covers !== undefined) {
          // A holder's answer for a dead member: what it lacks, as it knows
          // it, or else against what the member last announced.
          source.call.row.heldSeq = source.hwm
          const missing = answer.behind ?? Math.max(0, covers - source.hwm)
          if (missing > 0) source.call.row.missing = missing
        }
        source.stream = answer.batches
        if (answer.waiting !== undefined) source.waiting = answer.waiting
      }
      const next = await source.call.race(source.stream.next(peek ? 'peek' : undefined))
      if (next.done === true) {
        if (source.again !== undefined && next.value.more && source.lastId !== undefined) {
          // At its limit with more to come: ask again from where it stopped.
          source.opening = source.again(source.lastId, source.hwm)
          source.stream = undefined
          continue
        }
        source.trailer = next.value
        source.done = true
        source.call.done()
      } else {
        source.buffer = next.value
        source.at = 0
        const last = next.value[next.value.length - 1]
        if (last !== undefined) source.lastId = last.id
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

/** Most events a merge hands on at once: a page is rendered chunk by chunk. */
const CHUNK_EVENTS = 256

/** What a merge found once it is done: whether the set goes on past it. */
interface MergeEnd {
  more: boolean
}

/**
 * K-way merge of the sources in scan order, streaming: it reads a member's
 * next batch only when the merge needs it, hands events on in chunks as it
 * takes them, stops at `limit`, then looks one event further to know
 * whether the set goes on, and cancels the rest. Returned early (the
 * client went away), it cancels every source.
 */
async function* mergeSources(
  sources: Source[],
  reverse: boolean,
  limit: number,
  end: MergeEnd,
): AsyncGenerator<ChorusEvent[], void, undefined> {
  try {
    const before = scanOrder(reverse)
    await Promise.all(sources.map((s) => fill(s)))
    const heap = createHeap<Source>((a, b) =>
      before(a.buffer[a.at] as ChorusEvent, b.buffer[b.at] as ChorusEvent),
    )
    for (const source of sources) if (source.at < source.buffer.length) heap.push(source)
    let taken = 0
    let chunk: ChorusEvent[] = []
    while (taken < limit) {
      const source = heap.pop()
      if (source === undefined) break
      const event = source.buffer[source.at] as ChorusEvent
      chunk.push(event)
      taken++
      source.at++
      const row = source.rowOf === undefined ? source.call.row : source.rowOf(event)
      if (row !== undefined) row.count++
      if (needsFill(source)) {
        // Hand on what is taken before waiting for the member.
        if (chunk.length > 0) {
          yield chunk
          chunk = []
        }
        await fill(source)
      } else if (chunk.length >= CHUNK_EVENTS) {
        yield chunk
        chunk = []
      }
      if (source.at < source.buffer.length) heap.push(source)
    }
    if (chunk.length > 0) yield chunk
    if (taken >= limit) {
      // Full: only ask whether the set goes on, without granting more.
      const unknown = sources.filter((s) => needsFill(s) && s.waiting?.() !== true)
      if (unknown.length > 0) await Promise.all(unknown.map((s) => fill(s, true)))
    }
    end.more = sources.some(
      (s) =>
        s.at < s.buffer.length || s.trailer?.more === true || (!s.failed && s.waiting?.() === true),
    )
  } finally {
    for (const source of sources) close(source)
  }
}

/** Every event of a merge, in one array (a sub-coordinator's answer, taken whole). */
async function mergeAll(sources: Source[], reverse: boolean, limit: number) {
  const end: MergeEnd = { more: false }
  const events: ChorusEvent[] = []
  for await (const chunk of mergeSources(sources, reverse, limit, end)) events.push(...chunk)
  return { events, more: end.more }
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
  whole = false,
  hedging?: Hedging,
): Part {
  const source = openSource(target, request, timeoutMs, signal, whole, hedging)
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
  hedging: Hedging,
): Promise<Part[]> {
  const started = performance.now()
  const parts: Part[] = []
  // Members a holder answers for are asked directly: their rows say by whom.
  const others = asked.filter((t) => t !== self && t.servedBy === undefined)
  for (const t of asked)
    if (t === self || t.servedBy !== undefined)
      parts.push(flatPart(t, requestFor(t), timeoutMs, signal, false, hedging))
  const size = Math.max(2, Math.ceil(Math.sqrt(others.length)))
  const groups: SliceTarget[][] = []
  for (let i = 0; i < others.length; i += size) groups.push(others.slice(i, i + size))
  const direct = (group: readonly SliceTarget[]) => {
    const left = Math.max(1, Math.floor(timeoutMs - (performance.now() - started)))
    return group.map((t) => flatPart(t, requestFor(t), left, signal, false, hedging))
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
export function createGroupHandler(
  targets: () => SliceTarget[],
  memory?: MemoryGate,
  memoryWaitMs = DEFAULT_MEMORY_WAIT_MS,
): GroupHandler {
  const hedging = createHedging()
  return async (request, options) => {
    // The merged answer is held whole until it is sent: it waits for room
    // for all of it in the requests' share, as a page read backwards does.
    const held = pageMemory(request.slice.limit, request.slice.limit, request.members.length, true)
    if (memory !== undefined) {
      const wait = AbortSignal.any([options.signal, AbortSignal.timeout(memoryWaitMs)])
      await memory.take(held, wait)
    }
    try {
      return await mergeGroup(targets, request, options, hedging)
    } finally {
      memory?.give(held)
    }
  }
}

async function mergeGroup(
  targets: () => SliceTarget[],
  request: GroupRequest,
  options: { signal: AbortSignal },
  hedging: Hedging,
): Promise<{ events: StoredEvent[]; trailer: GroupTrailer }> {
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
    parts.push(flatPart(target, slice, request.deadlineMs, options.signal, false, hedging))
  }
  const merged = await mergeAll(
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

/**
 * Heap an open page may hold, bytes: a decoded batch of each member (at most
 * its window, and at most a protocol batch) while the merge reads it; a
 * page read backwards (`prev`) is reversed whole, so it holds every event.
 */
function pageMemory(limit: number, window: number, members: number, whole: boolean): number {
  const inFlight = whole ? limit : Math.min(limit, members * Math.min(window, MAX_BATCH_EVENTS))
  return EVENT_HEAP_BYTES * Math.max(1, inFlight + members)
}

export function createCoordinator(components: CoordinatorComponents): Coordinator {
  const memoryWaitMs = components.memoryWaitMs ?? DEFAULT_MEMORY_WAIT_MS
  const hedging = createHedging()
  const coordinator: Coordinator = {
    async open(input, options = {}) {
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

      // A whole set reads members in slices of the protocol's largest limit.
      const limit = input.whole === true ? Number.POSITIVE_INFINITY : q.limit
      const sliceLimit = Math.min(limit, MAX_SLICE_LIMIT)
      const base: SliceRequest = {
        fromMs: q.fromMs,
        toMs: q.toMs,
        reverse,
        types: q.types,
        minSeverity: q.minSeverity,
        ...(q.notTypes === undefined ? {} : { notTypes: q.notTypes }),
        ...(q.attrs === undefined ? {} : { attrs: q.attrs }),
        limit: sliceLimit,
        // Each member may send its even share of the page and a quarter more
        // before it waits for a grant: evenly spread sets rarely need a round
        // trip, and what members send past what the page takes is read,
        // sent and decoded for nothing (at twice the share, a scan of many
        // pages did close to double the work).
        window: Math.min(
          sliceLimit,
          Math.max(MIN_WINDOW, Math.ceil((1.25 * sliceLimit) / Math.max(1, asked.length))),
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
      // Room in the memory budget first: nothing is asked of any member until then.
      const held = pageMemory(limit, base.window ?? sliceLimit, asked.length, dir === 'prev')
      if (components.memory !== undefined) {
        const wait = AbortSignal.timeout(memoryWaitMs)
        const given = options.signal === undefined ? wait : AbortSignal.any([wait, options.signal])
        try {
          await components.memory.take(held, given)
        } catch (err) {
          if (options.signal?.aborted === true) throw err
          throw new BusyError(
            `this member's queries hold their whole share of its memory budget (${components.memory.limit} bytes) and none gave way within ${memoryWaitMs / 1000}s; retry shortly`,
          )
        }
      }
      let released = false
      const release = () => {
        if (released) return
        released = true
        components.memory?.give(held)
      }
      let parts: Part[]
      try {
        const whole = input.whole === true
        const fanout = whole
          ? 'flat'
          : (input.fanout ?? (asked.length > TREE_THRESHOLD ? 'tree' : 'flat'))
        parts =
          fanout === 'tree'
            ? await treeParts(
                asked,
                all[0],
                base,
                requestFor,
                input.timeoutMs,
                options.signal,
                hedging,
              )
            : asked.map((t) =>
                flatPart(t, requestFor(t), input.timeoutMs, options.signal, whole, hedging),
              )
      } catch (err) {
        release()
        throw err
      }
      const sources = [...new Set(parts.map((p) => p.source))]
      const end: MergeEnd = { more: false }
      const merge = mergeSources(sources, reverse, limit, end)
      let first: ChorusEvent | undefined
      let last: ChorusEvent | undefined
      let finished = false
      async function* events(): AsyncGenerator<ChorusEvent[], void, undefined> {
        try {
          if (dir === 'prev') {
            // Merged newest first; the page shows them oldest first.
            const all: ChorusEvent[] = []
            for await (const chunk of merge) for (const e of chunk) all.push(e)
            all.reverse()
            first = all[0]
            last = all[all.length - 1]
            for (let i = 0; i < all.length; i += CHUNK_EVENTS) yield all.slice(i, i + CHUNK_EVENTS)
          } else {
            for await (const chunk of merge) {
              first ??= chunk[0]
              last = chunk[chunk.length - 1] ?? last
              yield chunk
            }
          }
          finished = true
        } finally {
          await merge.return()
          release()
        }
      }

      const trailer = (): PageTrailer => {
        if (!finished) throw new Error('the page is not read to its end')
        const more = end.more
        const newMarks: Array<[string, number]> = cursor?.marks ?? [
          ...parts.map((p): [string, number] => [p.target.tag, p.hwm() ?? -1]),
          ...absent.map((tag): [string, number] => [tag, -1]),
        ]
        const cursorAt = (d: 'next' | 'prev', position: string, inclusive: boolean) =>
          encodeCursor({ query: q, dir: d, position, inclusive, marks: newMarks })

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
              : cursorAt(
                  'next',
                  (cursor as CursorState).position,
                  !(cursor as CursorState).inclusive,
                )
        }

        const memberRows = [...parts.map((p) => p.row), ...rows]
        const partial = recordRows(memberRows, components.recorder)
        return {
          firstId: first?.id ?? null,
          lastId: last?.id ?? null,
          next,
          prev,
          members: memberRows,
          partial,
        }
      }
      const stream = events()
      return {
        events: stream,
        trailer,
        async close() {
          await stream.return()
          // A page closed before it was read never ran the generator's finally.
          await merge.return()
          release()
        },
      }
    },

    async query(input, options = {}) {
      const page = await coordinator.open(input, options)
      const events: ChorusEvent[] = []
      try {
        for await (const chunk of page.events) for (const e of chunk) events.push(e)
      } finally {
        await page.close()
      }
      return { events, ...page.trailer() }
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
  return coordinator
}
