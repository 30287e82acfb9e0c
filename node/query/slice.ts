// The slice handler: answers one SliceRequest from this member's own store,
// never by asking anyone else. It yields events in batches, in scan order,
// as they are stored (id and value bytes, decoded only when a filter needs
// a field), and returns a trailer; the reading itself is the store's
// (node/store/event-scan.ts). Peers reach it over /chorus/slice/2, which
// sends those bytes as they are; the coordinator calls it directly for its
// own member and decodes them with `decodedAnswer`.

import type { SliceAnswer, SliceRequest, SliceTrailer } from '../../protocol/index.ts'
import { decodeStoredEvents, type StoredEvent } from '../../protocol/index.ts'
import type { ChorusEvent } from '../event/event.ts'
import { toEvent } from '../store/codec.ts'
import type { EventLog } from '../store/event-log.ts'
import { queryIdRange, scanEvents } from '../store/event-scan.ts'

// A type filter means the same to every reader: rollups and health match types with it too.

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

export function createSliceHandler(components: SliceHandlerComponents): SliceHandler {
  const { log } = components
  return (request, options = {}) => {
    const hwm = request.hwm ?? log.lastSeq
    return { hwm, batches: scanEvents(log, { ...request, hwm }, options) }
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
