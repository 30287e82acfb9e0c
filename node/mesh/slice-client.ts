// Asks one peer for a slice or an event over chorus's protocols. Errors come
// out with names the coordinator maps to member rows: UnreachableError (the
// peer could not be dialled or its stream broke), UnsupportedProtocolError
// (it speaks another version), RemoteError (it answered with an error code),
// ProtocolError (it sent something malformed); an aborted signal is the
// deadline.

import type { PeerId } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  decodeAnswer,
  decodeLookupReply,
  decodePeers,
  decodeRollupAnswer,
  decodeStats,
  encodeLookupRequest,
  encodeMore,
  encodePeersRequest,
  encodeRollupRequest,
  encodeSliceRequest,
  encodeStatsRequest,
  LOOKUP_PROTOCOL,
  MAX_ANSWER_BYTES,
  MAX_ROLLUP_ANSWER_BYTES,
  MAX_ROLLUP_SERIES,
  MAX_SLICE_LIMIT,
  type MemberCounters,
  PEERS_PROTOCOL,
  ProtocolError,
  ROLLUP_PROTOCOL,
  type RollupRequest,
  type SignedAnnouncement,
  SLICE_PROTOCOL,
  type SliceAnswer,
  type SliceRequest,
  type SliceTrailer,
  STATS_PROTOCOL,
} from '../../protocol/index.ts'
import type { ChorusEvent } from '../event/event.ts'
import { type BucketSeries, MAX_ROLLUP_ANSWER_BINS, MAX_ROLLUP_CELLS } from '../query/rollups.ts'
import { createAnswerCheck } from '../query/slice.ts'
import { toEvent } from '../store/codec.ts'
import { type Bucket, bucketBins, decodeBucket, mergeBucket } from '../store/rollup.ts'
import type { Host } from './host.ts'

export class UnreachableError extends Error {
  override readonly name = 'UnreachableError'
}

export class RemoteError extends Error {
  override readonly name = 'RemoteError'
}

function translate(err: unknown, signal: AbortSignal): Error {
  if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error('aborted')
  const e = err instanceof Error ? err : new Error(String(err))
  if (
    e.name === 'UnsupportedProtocolError' ||
    e.name === 'ProtocolError' ||
    e.name === 'RemoteError'
  )
    return e
  return new UnreachableError(e.message || e.name, { cause: e })
}

async function open(host: Host, peer: PeerId, protocol: string, signal: AbortSignal) {
  try {
    // Optimistic negotiation: the protocol id travels with the request, which
    // saves a round trip per member per query; a refusal still surfaces as
    // UnsupportedProtocolError, on the first read.
    const stream = await host.dialProtocol(peer, protocol, { signal, negotiateFully: false })
    return { stream, lp: lpStream(stream, { maxDataLength: MAX_ANSWER_BYTES }) }
  } catch (err) {
    throw translate(err, signal)
  }
}

/**
 * Opens a slice stream to `peer` and waits for its head (the high-water
 * mark); batches follow. Every event is checked against the request and the
 * member's `tag` (see createAnswerCheck): the first one that fails ends the
 * answer with a ProtocolError, and none of its batch is passed on.
 */
export async function remoteSlice(
  host: Host,
  peer: PeerId,
  name: string,
  tag: Uint8Array,
  request: SliceRequest,
  options: { signal: AbortSignal },
): Promise<SliceAnswer<ChorusEvent>> {
  const { signal } = options
  const check = createAnswerCheck(request, tag)
  const { stream, lp } = await open(host, peer, SLICE_PROTOCOL, signal)
  const member = peer.toString()
  const fail = (err: unknown): never => {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
  let hwm = 0
  try {
    await lp.write(encodeSliceRequest(request), { signal })
    const head = decodeAnswer((await lp.read({ signal })).subarray())
    if (head.kind === 'error')
      throw new RemoteError(`${name} answered ${head.code}: ${head.message}`)
    if (head.kind !== 'head')
      throw new ProtocolError('malformed', `${name} did not start its answer with a head`)
    hwm = head.hwm
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
          mode = yield message.events.map((e) => toEvent(e.id, e, member, name))
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
  return { hwm, batches: batches(), waiting: () => waiting }
}

export async function remoteLookup(
  host: Host,
  peer: PeerId,
  name: string,
  id: Uint8Array,
  options: { signal: AbortSignal },
): Promise<ChorusEvent | undefined> {
  const { signal } = options
  const { stream, lp } = await open(host, peer, LOOKUP_PROTOCOL, signal)
  try {
    await lp.write(encodeLookupRequest(id), { signal })
    const reply = decodeLookupReply((await lp.read({ signal })).subarray())
    await stream.close({ signal }).catch(() => {})
    if ('code' in reply) throw new RemoteError(`${name} answered ${reply.code}: ${reply.message}`)
    if (reply.event !== undefined && Buffer.compare(reply.event.id, id) !== 0)
      throw new ProtocolError('malformed', `${name} answered with another event than the one asked`)
    return reply.event === undefined
      ? undefined
      : toEvent(reply.event.id, reply.event, peer.toString(), name)
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
}

/**
 * Asks one peer for its rollups over /chorus/rollup/1. The answer is bounded
 * while it is read, never after: at most MAX_ROLLUP_ANSWER_BYTES,
 * MAX_ROLLUP_SERIES series and MAX_ROLLUP_CELLS buckets (pieces of one
 * series, and repeats of one step, are merged as they come),
 * MAX_ROLLUP_ANSWER_BINS sketch bins, and only steps of the requested
 * period. A member that sends more has its stream aborted and comes out as
 * a ProtocolError (an `error` row).
 */
export async function remoteRollup(
  host: Host,
  peer: PeerId,
  name: string,
  request: RollupRequest,
  options: { signal: AbortSignal },
): Promise<BucketSeries[]> {
  const { signal } = options
  const tooLarge = (what: string) =>
    new ProtocolError('too_large', `${name} sent more than ${what} of rollups`)
  const { stream, lp } = await open(host, peer, ROLLUP_PROTOCOL, signal)
  try {
    await lp.write(encodeRollupRequest(request), { signal })
    const series = new Map<string, { s: BucketSeries; steps: Map<number, Bucket> }>()
    let bytes = 0
    let buckets = 0
    let bins = 0
    for (;;) {
      const frame = (await lp.read({ signal })).subarray()
      bytes += frame.byteLength
      if (bytes > MAX_ROLLUP_ANSWER_BYTES) throw tooLarge(`${MAX_ROLLUP_ANSWER_BYTES} bytes`)
      const message = decodeRollupAnswer(frame)
      if (message.kind === 'series') {
        for (const piece of message.series) {
          const key = `${piece.type ?? ''}\u0000${piece.severity ?? ''}`
          let entry = series.get(key)
          if (entry === undefined) {
            if (series.size >= MAX_ROLLUP_SERIES) throw tooLarge(`${MAX_ROLLUP_SERIES} series`)
            const s: BucketSeries = { buckets: [] }
            if (piece.type !== undefined) s.type = piece.type
            if (piece.severity !== undefined) s.severity = piece.severity
            entry = { s, steps: new Map() }
            series.set(key, entry)
          }
          for (const b of piece.buckets) {
            if (
              b.t < request.fromMs ||
              b.t >= request.toMs ||
              (b.t - request.fromMs) % request.stepMs !== 0
            )
              throw new ProtocolError('malformed', `${name} sent a bucket outside the period`)
            let bucket: Bucket
            try {
              bucket = decodeBucket(b.bucket)
            } catch (err) {
              throw new ProtocolError('malformed', `${name} sent ${(err as Error).message}`)
            }
            bins += bucketBins(bucket)
            if (bins > MAX_ROLLUP_ANSWER_BINS)
              throw tooLarge(`${MAX_ROLLUP_ANSWER_BINS} sketch bins`)
            const step = entry.steps.get(b.t)
            if (step !== undefined) mergeBucket(step, bucket)
            else {
              if (++buckets > MAX_ROLLUP_CELLS) throw tooLarge(`${MAX_ROLLUP_CELLS} buckets`)
              entry.steps.set(b.t, bucket)
            }
          }
        }
      } else if (message.kind === 'trailer') {
        await stream.close({ signal }).catch(() => {})
        return [...series.values()].map(({ s, steps }) => {
          s.buckets = [...steps.entries()]
            .sort((a, b) => a[0] - b[0])
            .map(([t, bucket]) => ({ t, bucket }))
          return s
        })
      } else {
        throw new RemoteError(`${name} answered ${message.code}: ${message.message}`)
      }
    }
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
}

/** Asks one peer for its counters over /chorus/stats/1. */
export function remoteStats(
  host: Host,
  peer: PeerId,
  name: string,
  options: { signal: AbortSignal },
): Promise<MemberCounters> {
  return askOnce(host, peer, name, STATS_PROTOCOL, encodeStatsRequest(), decodeStats, options)
}

/** Asks one peer which members it knows of, over /chorus/peers/2 (their signatures are the caller's to check). */
export function remotePeers(
  host: Host,
  peer: PeerId,
  name: string,
  options: { signal: AbortSignal },
): Promise<SignedAnnouncement[]> {
  return askOnce(host, peer, name, PEERS_PROTOCOL, encodePeersRequest(), decodePeers, options)
}

/** One request, one answer message (or an error message). */
async function askOnce<T>(
  host: Host,
  peer: PeerId,
  name: string,
  protocol: string,
  request: Uint8Array,
  decode: (bytes: Uint8Array) => T,
  options: { signal: AbortSignal },
): Promise<T> {
  const { signal } = options
  const { stream, lp } = await open(host, peer, protocol, signal)
  try {
    await lp.write(request, { signal })
    const bytes = (await lp.read({ signal })).subarray()
    await stream.close({ signal }).catch(() => {})
    try {
      return decode(bytes)
    } catch (err) {
      const answer = decodeAnswer(bytes)
      if (answer.kind === 'error')
        throw new RemoteError(`${name} answered ${answer.code}: ${answer.message}`)
      throw err
    }
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
}
