// /chorus/replicate/1 (protocol/replicate.ts): the source's side sends an
// origin's events past the holder's mark, as they are stored, under the
// holder's acknowledgements (REPLICA_WINDOW batches unacknowledged at most),
// and keeps the stream open to send each new event as it is stored. The
// holder's side (`remoteReplicate`) writes every batch through `store`,
// which checks that each event carries the origin's tag and follows the
// last one held, and acknowledges it once it is synced. Which members hold
// which origin, and whom a holder asks, is node/replica/'s business.

import {
  decodeReplicaAck,
  decodeReplicaMessage,
  decodeReplicaRequest,
  encodeReplicaAck,
  encodeReplicaBatches,
  encodeReplicaCaughtUp,
  encodeReplicaHead,
  encodeReplicaRequest,
  MAX_BATCH_EVENTS,
  ProtocolError,
  REPLICA_WINDOW,
  REPLICATE_PROTOCOL,
  type ReplicaEvent,
  type StoredEvent,
} from '../../../protocol/index.ts'
import { ID_BYTES, seqOfIdBytes } from '../../event/id.ts'
import type { EventSpace } from '../../store/event-log.ts'
import { idOfEventKey, idRange } from '../../store/keys.ts'
import { type LengthPrefixed, open, type Peer, RemoteError, type ServedProtocol } from './stream.ts'

/** Replication streams a member serves at once, to all peers together; more are answered `busy`. */
export const MAX_REPLICA_STREAMS = 64

/** What a member sends replicas from: its own events and those it holds. */
export interface ReplicaSource {
  /** The events of `origin` this member can send (its own, or its copy); undefined when it has none yet. */
  space(origin: string): EventSpace | undefined
  /** Resolves at the next event of `origin` stored here, or when `signal` aborts. */
  appended(origin: string, signal: AbortSignal): Promise<void>
  /** `holder` has synced `origin`'s events up to `seq` (called as its acknowledgements come). */
  acked(holder: string, origin: string, seq: number): void
  /** Whether `peer` may pull `origin`'s events from here: the origin itself, or one of its current holders. */
  admits(peer: string, origin: string): boolean
  /** The highest seq this member heard `origin` announce (0: none). */
  announced(origin: string): number
}

export interface ReplicateComponents {
  replicas: ReplicaSource
}

const LAST_ID = new Uint8Array(ID_BYTES).fill(0xff)
const FIRST_ID = new Uint8Array(ID_BYTES)

/** Up to MAX_BATCH_EVENTS of a space's events past `afterId`, in id (and so seq) order. */
async function readAfter(space: EventSpace, afterId: Uint8Array | undefined) {
  const lower =
    afterId === undefined ? { id: FIRST_ID, inclusive: true } : { id: afterId, inclusive: false }
  const range = idRange(space.keys.time, lower, { id: LAST_ID, inclusive: true }, false)
  const scan = space.scan(range, MAX_BATCH_EVENTS, MAX_BATCH_EVENTS)
  try {
    const next = await scan.next()
    if (next.done === true) return []
    return next.value.map(([key, value]): StoredEvent => ({ id: idOfEventKey(key), value }))
  } finally {
    await scan.return(undefined)
  }
}

/** The largest seq: a request past it asks for no event. */
const MAX_SEQ = 2 ** 40 - 1

/**
 * Streams open now, per member (its source; several members may share a
 * process), each by holder and origin: one at a time, a newer one ending
 * the older (a holder that reconnects after a break the source has not yet
 * seen), so no peer holds more streams than it holds origins.
 */
const openStreams = new WeakMap<ReplicaSource, Map<string, AbortController>>()

async function sendReplica(
  bytes: Uint8Array,
  lp: LengthPrefixed,
  signal: AbortSignal,
  source: ReplicaSource,
  holder: string,
): Promise<void> {
  const request = decodeReplicaRequest(bytes)
  const { origin } = request
  if (!source.admits(holder, origin))
    throw new ProtocolError(
      'not_holder',
      `this member does not count ${holder} among the holders of ${origin}'s events`,
    )
  let streams = openStreams.get(source)
  if (streams === undefined) {
    streams = new Map()
    openStreams.set(source, streams)
  }
  const key = `${holder}\n${origin}`
  if (!streams.has(key) && streams.size >= MAX_REPLICA_STREAMS)
    throw new ProtocolError('busy', 'too many replication streams open at this member')
  streams.get(key)?.abort(new Error('the holder opened another stream for this origin'))
  const own = new AbortController()
  streams.set(key, own)
  try {
    await sendEvents(request, lp, AbortSignal.any([signal, own.signal]), source, holder)
  } catch (err) {
    if (own.signal.aborted && !signal.aborted)
      throw new ProtocolError('busy', 'a newer stream of this holder for this origin replaced it')
    throw err
  } finally {
    if (streams.get(key) === own) streams.delete(key)
  }
}

async function sendEvents(
  request: ReturnType<typeof decodeReplicaRequest>,
  lp: LengthPrefixed,
  signal: AbortSignal,
  source: ReplicaSource,
  holder: string,
): Promise<void> {
  const { origin } = request
  const first = source.space(origin)
  // To the origin itself (a replaced disk), also the seq it announced last.
  const announced = holder === origin ? source.announced(origin) : 0
  await lp.write(encodeReplicaHead(first?.lastSeq ?? 0, first?.lastTs ?? 0, announced), {
    signal,
  })
  let unacked = 0
  let acked = request.afterSeq
  /** The newest seq sent: a holder cannot have synced past it. */
  let sent = request.afterSeq
  let wake: (() => void) | undefined
  const acks = (async () => {
    for (;;) {
      const seq = decodeReplicaAck((await lp.read({ signal })).subarray())
      if (seq > sent)
        throw new ProtocolError('malformed', `an acknowledgement of seq ${seq}, past what was sent`)
      unacked = Math.max(0, unacked - 1)
      if (seq > acked) {
        acked = seq
        source.acked(holder, origin, seq)
      }
      wake?.()
    }
  })()
  // Ends when the holder closes its side or the stream breaks; the loop below sees the signal.
  let ackFailure: unknown
  acks.catch((err: unknown) => {
    ackFailure = err
    wake?.()
  })
  const credit = () =>
    new Promise<void>((resolve, reject) => {
      if (ackFailure !== undefined) return reject(ackFailure)
      const aborted = () => reject(signal.reason)
      signal.addEventListener('abort', aborted, { once: true })
      wake = () => {
        signal.removeEventListener('abort', aborted)
        resolve()
      }
    })
  let afterId = request.afterId
  /** The seq the holder was last told it has everything up to. */
  let said = -1
  for (;;) {
    signal.throwIfAborted()
    if (ackFailure !== undefined) throw ackFailure
    // Listening before reading: an event stored between the two still wakes us.
    const next = source.appended(origin, signal)
    next.catch(() => {})
    const space = source.space(origin)
    const newest = space?.lastSeq ?? 0
    const events = space === undefined ? [] : await readAfter(space, afterId)
    if (events.length === 0) {
      if (said !== newest) {
        await lp.write(encodeReplicaCaughtUp(newest), { signal })
        said = newest
      }
      await next
      continue
    }
    sent = Math.max(sent, seqOfIdBytes((events[events.length - 1] as StoredEvent).id))
    for (const batch of encodeReplicaBatches(events, newest)) {
      while (unacked >= REPLICA_WINDOW) await credit()
      await lp.write(batch, { signal })
      unacked++
    }
    afterId = (events[events.length - 1] as StoredEvent).id
  }
}

export const replicateProtocol: ServedProtocol<ReplicateComponents> = {
  protocol: REPLICATE_PROTOCOL,
  name: 'replicate',
  lasting: true,
  answer: (bytes, lp, signal, components, from) =>
    sendReplica(bytes, lp, signal, components.replicas, from),
}

/**
 * The newest seq of `origin`'s events that `peer` has (its own, or its
 * copy), and that event's ts: the head of a replication stream, which is
 * then closed. Asked by the origin itself, also the highest seq `peer`
 * heard it announce.
 */
export async function remoteReplicaHead(
  peer: Peer,
  origin: string,
  options: { signal: AbortSignal },
): Promise<{ seq: number; ts: number; announced: number }> {
  const { signal } = options
  const { stream, lp } = await open(peer, REPLICATE_PROTOCOL, signal)
  try {
    // Past every event: the source sends its head, and no event.
    await lp.write(encodeReplicaRequest({ origin, afterSeq: MAX_SEQ, afterId: LAST_ID }), {
      signal,
    })
    const head = decodeReplicaMessage((await lp.read({ signal })).subarray())
    if (head.kind === 'error')
      throw new RemoteError(`${peer.name} answered ${head.code}: ${head.message}`)
    if (head.kind !== 'head')
      throw new ProtocolError('malformed', `${peer.name} did not start its answer with a head`)
    return { seq: head.seq, ts: head.ts, announced: head.announced }
  } finally {
    stream.abort(new Error('only the head was wanted'))
  }
}

/** What a holder learns of its source as the stream goes. */
export interface ReplicaProgress {
  /** The source's newest seq of the origin, as its latest message states it. */
  heard(seq: number): void
}

/**
 * Keeps a copy of `origin`'s events from `peer` (the origin, or another
 * holder): asks for those past `after`, passes every batch to `store`
 * (which writes it durably and returns the seq now held, or throws), and
 * acknowledges it. Runs until `signal` aborts, the stream breaks, or the
 * source sends something wrong; then it throws.
 */
export async function remoteReplicate(
  peer: Peer,
  origin: string,
  after: { seq: number; lastId: Uint8Array | undefined },
  store: (events: ReplicaEvent[]) => number | Promise<number>,
  options: { signal: AbortSignal; progress?: ReplicaProgress },
): Promise<never> {
  const { signal } = options
  const { stream, lp } = await open(peer, REPLICATE_PROTOCOL, signal)
  try {
    await lp.write(
      encodeReplicaRequest({
        origin,
        afterSeq: after.seq,
        ...(after.lastId === undefined ? {} : { afterId: after.lastId }),
      }),
      { signal },
    )
    const head = decodeReplicaMessage((await lp.read({ signal })).subarray())
    if (head.kind === 'error')
      throw new RemoteError(`${peer.name} answered ${head.code}: ${head.message}`)
    if (head.kind !== 'head')
      throw new ProtocolError('malformed', `${peer.name} did not start its answer with a head`)
    options.progress?.heard(head.seq)
    for (;;) {
      const message = decodeReplicaMessage((await lp.read({ signal })).subarray())
      if (message.kind === 'error')
        throw new RemoteError(`${peer.name} answered ${message.code}: ${message.message}`)
      if (message.kind === 'head')
        throw new ProtocolError('malformed', `${peer.name} sent a second head`)
      if (message.kind === 'caught-up') {
        options.progress?.heard(message.seq)
        continue
      }
      const seq = await store(message.events)
      options.progress?.heard(message.seq)
      await lp.write(encodeReplicaAck(seq), { signal })
    }
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}
