// /chorus/replicate/1: how a holder keeps its copy of an origin's events.
// The holder asks; the source (the origin itself, or another holder while
// the origin is dead) answers with its newest seq, then the origin's events
// past the holder's mark, in seq order, as the origin stored them, and goes
// on with each new event as it is stored. The holder writes each batch
// durably and acknowledges it; an acknowledgement is also the credit for
// one more batch, so a holder that writes slowly slows its source, and
// neither side buffers more than REPLICA_WINDOW batches.
//
//   request  [30, origin, afterSeq, afterId|null]   holder → source
//   head     [31, seq, ts, announced]   source → holder: its newest seq of
//                             the origin and that event's ts (0, 0: none);
//                             to the origin itself, also the highest seq it
//                             heard the origin announce (0 otherwise), so
//                             that a replaced disk never reuses a seq
//   batch    [32, events[], seq]   each event [id(16), value(bin)]; seq: the
//                             source's newest of the origin as it sends it
//   caught up [34, seq]       source → holder: sent everything up to seq,
//                             the newest it has; said each time it runs out
//   ack      [33, seq]        holder → source: synced up to seq; one batch more
//   error    [4, code, message]
//
// The seqs a source states let a holder tell how far behind it is (`behind`
// in a slice head), which decides whether its copy may answer for the
// origin (node/query/hedge.ts).

import { type EventFields, eventValueProblem, readEventValue } from './event-value.ts'
import {
  type ErrorCode,
  errorFrom,
  framed,
  isId,
  isInt,
  isString,
  KIND_ERROR,
  KIND_REPLICA_ACK,
  KIND_REPLICA_BATCH,
  KIND_REPLICA_CAUGHT_UP,
  KIND_REPLICA_HEAD,
  KIND_REPLICA_REQUEST,
  MAX_ANSWER_BYTES,
  MAX_REQUEST_BYTES,
  malformed,
  ProtocolError,
  pack,
  unpack,
} from './framing.ts'
import { MAX_BATCH_EVENTS, type StoredEvent } from './slice.ts'

export const REPLICATE_PROTOCOL = '/chorus/replicate/1'
/** Batches a source may send before the holder acknowledges the first of them. */
export const REPLICA_WINDOW = 4
/** Longest peer id text a request may name. */
const MAX_PEER_ID_CHARS = 128
const MAX_SEQ = 2 ** 40 - 1

export interface ReplicaRequest {
  /** Peer id of the member whose events are asked for. */
  origin: string
  /** The holder's mark: it holds every event of the origin up to this seq. */
  afterSeq: number
  /** The id of the newest event it holds; undefined when it holds none. */
  afterId?: Uint8Array
}

/** An event off a replica batch: as stored, with its fields (read while its value was checked). */
export interface ReplicaEvent extends StoredEvent {
  fields: EventFields
}

export type ReplicaMessage =
  | { kind: 'head'; seq: number; ts: number; announced: number }
  | { kind: 'batch'; events: ReplicaEvent[]; seq: number }
  | { kind: 'caught-up'; seq: number }
  | { kind: 'error'; code: ErrorCode; message: string }

export function encodeReplicaRequest(r: ReplicaRequest): Uint8Array {
  return pack([KIND_REPLICA_REQUEST, r.origin, r.afterSeq, r.afterId ?? null], MAX_REQUEST_BYTES)
}

export function decodeReplicaRequest(bytes: Uint8Array): ReplicaRequest {
  const [, origin, afterSeq, afterId] = framed(
    bytes,
    MAX_REQUEST_BYTES,
    KIND_REPLICA_REQUEST,
    4,
    'a replica request',
  )
  if (!isString(origin, MAX_PEER_ID_CHARS) || origin.length === 0) throw malformed('origin')
  if (!isInt(afterSeq, 0, MAX_SEQ)) throw malformed('afterSeq')
  if (afterId !== null && !isId(afterId)) throw malformed('afterId')
  return afterId === null
    ? { origin, afterSeq }
    : { origin, afterSeq, afterId: new Uint8Array(afterId) }
}

export function encodeReplicaHead(seq: number, ts: number, announced = 0): Uint8Array {
  return pack([KIND_REPLICA_HEAD, seq, ts, announced], MAX_ANSWER_BYTES)
}

export function encodeReplicaCaughtUp(seq: number): Uint8Array {
  return pack([KIND_REPLICA_CAUGHT_UP, seq], MAX_ANSWER_BYTES)
}

/**
 * Packs stored events into batches, each under MAX_ANSWER_BYTES and
 * MAX_BATCH_EVENTS, each stating `seq`, the source's newest of the origin.
 */
export function encodeReplicaBatches(events: readonly StoredEvent[], seq: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let batch: Array<[Uint8Array, Uint8Array]> = []
  // Each event costs its value, its id and a few bytes of headers.
  let bytes = 16
  for (const e of events) {
    const size = e.value.byteLength + 16 + 12
    if (size + 16 > MAX_ANSWER_BYTES)
      throw new ProtocolError(
        'too_large',
        `an event of ${size} bytes does not fit a message of ${MAX_ANSWER_BYTES}`,
      )
    if (batch.length === MAX_BATCH_EVENTS || bytes + size > MAX_ANSWER_BYTES) {
      out.push(pack([KIND_REPLICA_BATCH, batch, seq], MAX_ANSWER_BYTES))
      batch = []
      bytes = 16
    }
    batch.push([e.id, e.value])
    bytes += size
  }
  if (batch.length > 0) out.push(pack([KIND_REPLICA_BATCH, batch, seq], MAX_ANSWER_BYTES))
  return out
}

/** Decodes a message of a replica answer; every event's value is checked as a slice's is. */
export function decodeReplicaMessage(bytes: Uint8Array): ReplicaMessage {
  const m = unpack(bytes, MAX_ANSWER_BYTES)
  if (!Array.isArray(m) || m.length === 0) throw malformed('not a replica message')
  switch (m[0]) {
    case KIND_REPLICA_HEAD: {
      if (
        m.length !== 4 ||
        !isInt(m[1], 0, MAX_SEQ) ||
        !isInt(m[2], 0, 2 ** 48) ||
        !isInt(m[3], 0, MAX_SEQ)
      )
        throw malformed('replica head')
      return { kind: 'head', seq: m[1], ts: m[2], announced: m[3] }
    }
    case KIND_REPLICA_CAUGHT_UP: {
      if (m.length !== 2 || !isInt(m[1], 0, MAX_SEQ)) throw malformed('replica caught up')
      return { kind: 'caught-up', seq: m[1] }
    }
    case KIND_REPLICA_BATCH: {
      if (
        m.length !== 3 ||
        !Array.isArray(m[1]) ||
        m[1].length > MAX_BATCH_EVENTS ||
        !isInt(m[2], 0, MAX_SEQ)
      )
        throw malformed('replica batch')
      const events: ReplicaEvent[] = []
      for (const e of m[1] as unknown[]) {
        if (!Array.isArray(e) || e.length !== 2 || !isId(e[0]) || !(e[1] instanceof Uint8Array))
          throw malformed('replica event')
        const value = e[1]
        const fields = unpack(value, MAX_ANSWER_BYTES)
        const problem = eventValueProblem(fields)
        if (problem !== undefined) throw malformed(problem)
        events.push({
          id: new Uint8Array(e[0]),
          value: new Uint8Array(value),
          fields: readEventValue({}, fields as unknown[]),
        })
      }
      return { kind: 'batch', events, seq: m[2] }
    }
    case KIND_ERROR:
      return errorFrom(m)
    default:
      throw malformed(`unknown kind ${String(m[0])}`)
  }
}

export function encodeReplicaAck(seq: number): Uint8Array {
  return pack([KIND_REPLICA_ACK, seq], MAX_REQUEST_BYTES)
}

export function decodeReplicaAck(bytes: Uint8Array): number {
  const [, seq] = framed(bytes, MAX_REQUEST_BYTES, KIND_REPLICA_ACK, 2, 'a replica ack')
  if (!isInt(seq, 0, MAX_SEQ)) throw malformed('ack')
  return seq
}
