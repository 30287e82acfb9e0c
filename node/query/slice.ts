// The slice handler: answers one SliceRequest from this member's own store,
// never by asking anyone else: from its own events, or from its copy of
// another member's (an origin's) when the request names one (`origin`). It yields events in batches, in scan order,
// as they are stored (id and value bytes, decoded only when a filter needs
// a field), and returns a trailer; the reading itself is the store's
// (node/store/event-scan.ts). Peers reach it over /chorus/slice/3, which
// sends those bytes as they are; the coordinator calls it directly for its
// own member and decodes them with `decodedAnswer`.

import type { SliceAnswer, SliceRequest, SliceTrailer } from '../../protocol/index.ts'
import { decodeStoredEvents, SLICE_MESSAGE_EVENTS, type StoredEvent } from '../../protocol/index.ts'
import type { ChorusEvent } from '../event/event.ts'
import { TAG_BYTES } from '../event/id.ts'
import { toEvent } from '../store/codec.ts'
import type { EventLog, EventSpace } from '../store/event-log.ts'
import { queryIdRange, scanEvents } from '../store/event-scan.ts'

// A type filter means the same to every reader: rollups and health match types with it too.

export interface SliceHandlerComponents {
  log: EventLog
  /** How many of an origin's events this member knows it lacks (node/replica/); undefined: cannot tell. */
  behind?: (origin: string) => number | undefined
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
        // Decoded in the pieces a peer would send (SLICE_MESSAGE_EVENTS),
        // each when the merge asks for it: a store read of 1,024 decoded at
        // once would live until the merge took its last event, long enough
        // to be promoted out of V8's young generation.
        for (let at = 0; at < next.value.length; at += SLICE_MESSAGE_EVENTS)
          mode = yield decodeStored(next.value.slice(at, at + SLICE_MESSAGE_EVENTS), member, name)
      }
    } finally {
      await answer.batches.return(undefined as unknown as SliceTrailer)
    }
  }
  const out: SliceAnswer<ChorusEvent> = { hwm: answer.hwm, batches: batches() }
  if (answer.behind !== undefined) out.behind = answer.behind
  if (answer.hwmTs !== undefined) out.hwmTs = answer.hwmTs
  return out
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
  const { lower, upper } = queryIdRange(request)
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

/** Nothing held: a holder asked for an origin it holds no events of answers with none, at seq 0. */
const NOTHING_HELD: EventSpace = {
  keys: { time: Buffer.of(0), typePrefix: () => Buffer.of(0) },
  lastSeq: 0,
  lastTs: 0,
  types: () => [],
  getMany: async (ids) => ids.map(() => undefined),
  scan: async function* () {},
}

export function createSliceHandler(components: SliceHandlerComponents): SliceHandler {
  const { log } = components
  return (request, options = {}) => {
    // This member's own events, or its copy of the origin's the request names.
    const { origin } = request
    const space = origin === undefined ? log : (log.spaceOf(origin) ?? NOTHING_HELD)
    const hwm = request.hwm ?? space.lastSeq
    const batches = scanEvents(space, { ...request, hwm }, options)
    const answer: SliceAnswer<StoredEvent> = { hwm, batches }
    // The event at the mark is the newest one: its ts is the space's (read
    // together with lastSeq, both set by one synchronous write).
    if (request.tail === true && hwm === space.lastSeq) answer.hwmTs = space.lastTs
    if (space === log) answer.behind = 0
    else {
      const behind = origin === undefined ? undefined : components.behind?.(origin)
      if (behind !== undefined) answer.behind = behind
    }
    return answer
  }
}

export type LookupHandler = (id: Uint8Array) => Promise<StoredEvent | undefined>

/**
 * Answers a lookup by 16 id bytes, as stored: of one of this member's
 * events, or of an event it holds for the member the id names.
 */
export function createLookupHandler(components: SliceHandlerComponents): LookupHandler {
  const { log } = components
  return async (id) => {
    const tag = id.subarray(6, 6 + TAG_BYTES)
    const space = Buffer.compare(tag, log.tag) === 0 ? log : log.held(tag)
    if (space === undefined) return undefined
    const [value] = await space.getMany([id])
    return value === undefined ? undefined : { id, value }
  }
}
