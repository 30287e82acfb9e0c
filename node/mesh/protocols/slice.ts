// /chorus/slice/3 and /4: one request, then the member's answer under the
// coordinator's credit: a head (its high-water mark), batches of events as
// it stores them, pauses when the grant is used up, and a trailer or an
// error. The handler answers from this member's own store; the client reads
// a member's answer batch by batch and checks every event against what it
// asked (createAnswerCheck), so a member can put nothing in a page that it
// could not have stored itself for that request.

import {
  decodeAnswer,
  decodeMore,
  decodeSliceRequest,
  encodeBatches,
  encodeHead,
  encodeMore,
  encodePause,
  encodeSliceRequest,
  encodeTrailer,
  MAX_SLICE_LIMIT,
  ProtocolError,
  SLICE_FILTER_PROTOCOL,
  SLICE_MESSAGE_EVENTS,
  SLICE_PROTOCOL,
  type SliceAnswer,
  type SliceRequest,
  type SliceTrailer,
  type StoredEvent,
  sliceProtocolOf,
} from '../../../protocol/index.ts'
import type { ChorusEvent } from '../../event/event.ts'
import { createAnswerCheck } from '../../query/slice.ts'
import { toEvent } from '../../store/codec.ts'
import {
  type LengthPrefixed,
  open,
  type Peer,
  RemoteError,
  type ServedProtocol,
  translate,
} from './stream.ts'

/** Bytes a member sends on one grant before it waits for the next, whatever the event count. */
export const MAX_GRANT_BYTES = 1024 * 1024
/** A slice whose coordinator grants nothing more within this, ms, is ended (its scan closed). */
export const GRANT_WAIT_TIMEOUT_MS = 15_000

export interface SliceComponents {
  /** Answers a slice request from this member's own store, its events as stored. */
  slice(request: SliceRequest, options?: { signal?: AbortSignal }): SliceAnswer<StoredEvent>
  /** Counts events written to slice streams (after the peer has taken them). */
  sent?: (events: number) => void
  /** How long a slice waits for a grant before it is ended, ms. Default GRANT_WAIT_TIMEOUT_MS. */
  grantWaitTimeoutMs?: number
}

/**
 * Sends a slice answer under flow control: only what the coordinator
 * granted (and at most MAX_GRANT_BYTES per grant), then a pause until it
 * grants more. The coordinator reads only what its merge needs, so this
 * member scans only that much, and neither side buffers an unread answer.
 */
async function sendSlice(
  answer: SliceAnswer<StoredEvent>,
  window: number,
  lp: LengthPrefixed,
  signal: AbortSignal,
  sent: (events: number) => void,
  grantWaitTimeoutMs: number,
): Promise<void> {
  await lp.write(encodeHead(answer.hwm, answer.behind, answer.hwmTs), { signal })
  let credit = window
  let grantBytes = 0
  let wake: (() => void) | undefined
  const grants = (async () => {
    for (;;) {
      credit += decodeMore((await lp.read({ signal })).subarray())
      grantBytes = 0
      wake?.()
    }
  })()
  grants.catch(() => {}) // ends when the coordinator closes its side
  const aborted = new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
  aborted.catch(() => {})
  let pending: StoredEvent[] = []
  try {
    for (;;) {
      if (pending.length === 0) {
        const next = await answer.batches.next()
        if (next.done === true) {
          await lp.write(encodeTrailer(next.value), { signal })
          return
        }
        pending = next.value
        continue
      }
      if (credit === 0 || grantBytes >= MAX_GRANT_BYTES) {
        await lp.write(encodePause(), { signal })
        const givenUp = AbortSignal.timeout(grantWaitTimeoutMs)
        while (credit === 0 || grantBytes >= MAX_GRANT_BYTES) {
          if (givenUp.aborted) throw new Error('the coordinator granted nothing more in time')
          await Promise.race([
            new Promise<void>((resolve) => {
              wake = resolve
              givenUp.addEventListener('abort', () => resolve(), { once: true })
            }),
            aborted,
          ])
        }
        continue
      }
      const chunk = pending.splice(0, credit)
      credit -= chunk.length
      // Small messages (see SLICE_MESSAGE_EVENTS), written together.
      const messages = encodeBatches(chunk, SLICE_MESSAGE_EVENTS)
      await lp.writeV(messages, { signal })
      for (const bytes of messages) grantBytes += bytes.byteLength
      sent(chunk.length)
    }
  } finally {
    // Cancelled, reset or failed: end the scan, so its store iterator closes now.
    await answer.batches.return({ hwm: answer.hwm, scanned: 0, more: false }).catch(() => {})
  }
}

export const sliceProtocol: ServedProtocol<SliceComponents> = {
  protocol: SLICE_PROTOCOL,
  name: 'slice',
  kind: 'events',
  async answer(bytes, lp, signal, components) {
    const request = decodeSliceRequest(bytes)
    await sendSlice(
      components.slice(request, { signal }),
      request.window ?? request.limit,
      lp,
      signal,
      components.sent ?? (() => {}),
      components.grantWaitTimeoutMs ?? GRANT_WAIT_TIMEOUT_MS,
    )
  },
}

/** Version 4 is version 3 with two more filters: one decoder reads both. */
export const sliceFilterProtocol: ServedProtocol<SliceComponents> = {
  ...sliceProtocol,
  protocol: SLICE_FILTER_PROTOCOL,
}

/**
 * Opens a slice stream to `peer` and waits for its head (the high-water
 * mark); batches follow. Every event is checked against the request and the
 * member's `tag` (see createAnswerCheck): the first one that fails ends the
 * answer with a ProtocolError, and none of its batch is passed on.
 */
export async function remoteSlice(
  peer: Peer,
  tag: Uint8Array,
  request: SliceRequest,
  options: {
    signal: AbortSignal
    /** Whose events they are, when `peer` answers as a holder: `tag` is then the origin's. */
    owner?: { member: string; name: string }
  },
): Promise<SliceAnswer<ChorusEvent>> {
  const { signal } = options
  const check = createAnswerCheck(request, tag)
  const { name } = peer
  const { stream, lp } = await open(peer, sliceProtocolOf(request), signal)
  const member = options.owner?.member ?? peer.id.toString()
  const ownerName = options.owner?.name ?? name
  const fail = (err: unknown): never => {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
  let hwm = 0
  let behind: number | undefined
  let hwmTs: number | undefined
  try {
    await lp.write(encodeSliceRequest(request), { signal })
    const head = decodeAnswer((await lp.read({ signal })).subarray())
    if (head.kind === 'error')
      throw new RemoteError(`${name} answered ${head.code}: ${head.message}`)
    if (head.kind !== 'head')
      throw new ProtocolError('malformed', `${name} did not start its answer with a head`)
    hwm = head.hwm
    behind = head.behind
    hwmTs = head.hwmTs
  } catch (err) {
    fail(err)
  }
  // The member pauses after each grant; a grant doubles the last one, so a
  // member holding most of the page needs few round trips.
  let waiting = false
  let grant = request.window ?? request.limit
  async function* batches(): AsyncGenerator<ChorusEvent[], SliceTrailer, 'peek' | undefined> {
    let finished = false
    let mode: 'peek' | undefined
    try {
      for (;;) {
        if (waiting) {
          // Asked only whether more exist: the pause already says so.
          if (mode === 'peek') {
            mode = yield []
            continue
          }
          grant = Math.min(MAX_SLICE_LIMIT, grant * 2)
          await lp.write(encodeMore(grant), { signal })
          waiting = false
        }
        const message = decodeAnswer((await lp.read({ signal })).subarray())
        if (message.kind === 'batch') {
          for (const e of message.events) {
            const wrong = check(e.id)
            if (wrong !== undefined) throw new ProtocolError('malformed', `${name} ${wrong}`)
          }
          mode = yield message.events.map((e) => toEvent(e.id, e, member, ownerName))
        } else if (message.kind === 'pause') {
          waiting = true
        } else if (message.kind === 'trailer') {
          finished = true
          await stream.close({ signal }).catch(() => {})
          return message.trailer
        } else if (message.kind === 'error') {
          throw new RemoteError(`${name} answered ${message.code}: ${message.message}`)
        } else {
          throw new ProtocolError('malformed', `${name} sent a second head`)
        }
      }
    } catch (err) {
      throw translate(err, signal)
    } finally {
      // Cancelled (the page is full or the deadline passed) or failed: reset.
      if (!finished) stream.abort(new Error('slice cancelled'))
    }
  }
  const answer: SliceAnswer<ChorusEvent> = { hwm, batches: batches(), waiting: () => waiting }
  if (behind !== undefined) answer.behind = behind
  if (hwmTs !== undefined) answer.hwmTs = hwmTs
  return answer
}
