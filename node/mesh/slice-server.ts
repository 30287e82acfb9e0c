// Answers peers on chorus's protocols (slice, lookup, rollup, stats, peers)
// from this member's own store and table, through the same handlers the
// coordinator calls directly for itself. A malformed or oversized request
// gets an error message, never a crash; a closed or reset stream stops the
// scan; a slice is sent only as far as the coordinator has granted, so a slow
// coordinator slows the scan instead of filling memory.

import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  decodeLookupRequest,
  decodeMore,
  decodePeersRequest,
  decodeRollupRequest,
  decodeSliceRequest,
  decodeStatsRequest,
  type ErrorCode,
  encodeBatches,
  encodeError,
  encodeHead,
  encodeLookupReply,
  encodePause,
  encodePeers,
  encodeRollupSeries,
  encodeStats,
  encodeTrailer,
  LOOKUP_PROTOCOL,
  MAX_REQUEST_BYTES,
  type MemberCounters,
  PEERS_PROTOCOL,
  ProtocolError,
  ROLLUP_PROTOCOL,
  SLICE_PROTOCOL,
  STATS_PROTOCOL,
  type StoredEvent,
} from '../../protocol/index.ts'
import type { Logger } from '../log.ts'
import type { RollupHandler } from '../query/rollups.ts'
import type { LookupHandler, SliceHandler } from '../query/slice.ts'
import type { QueryKind } from '../stats.ts'
import { encodeBucket } from '../store/rollup.ts'
import type { Host } from './host.ts'

/** Concurrent inbound slice or lookup streams per connection (that is, per peer). */
export const MAX_INBOUND_STREAMS_PER_PEER = 32
/**
 * Requests that read the store (slice, rollup, lookup) open at once, from
 * all peers together; more are answered `busy`. Each open slice holds a
 * store iterator and up to a grant of events, so this bounds what peers can
 * make a member hold, however many peer ids they bring.
 */
export const MAX_OPEN_STORE_REQUESTS = 64
/** A slice whose coordinator grants nothing more within this, ms, is ended (its scan closed). */
export const GRANT_WAIT_TIMEOUT_MS = 15_000
/** A peer must send its request within this, ms. */
export const REQUEST_READ_TIMEOUT_MS = 10_000
/** Bytes a member sends on one grant before it waits for the next, whatever the event count. */
export const MAX_GRANT_BYTES = 1024 * 1024
/** A whole answer must be taken by the peer within this, ms. */
export const ANSWER_TIMEOUT_MS = 120_000

export interface SliceServerComponents {
  host: Host
  slice: SliceHandler
  lookup: LookupHandler
  rollup: RollupHandler
  /** This member's counters for the array-wide metrics. */
  counters: () => MemberCounters
  /** The signed announcements of the members this one knows, itself first. */
  peers: () => Uint8Array[]
  logger: Logger
  /** Times each request served to a peer, by kind, in seconds. */
  served?: (kind: QueryKind, seconds: number) => void
  /** Counts events written to slice streams (after the peer has taken them). */
  sent?: (events: number) => void
  /** Counts requests served and refused, by protocol and outcome. */
  count?: (protocol: ServedProtocol, outcome: 'ok' | 'malformed' | 'error' | 'busy') => void
  /** How long a slice waits for a grant before it is ended, ms. Default GRANT_WAIT_TIMEOUT_MS. */
  grantWaitTimeoutMs?: number
}

type LengthPrefixed = ReturnType<typeof lpStream<Stream>>

/** The code an error answer carries: the codec's own, `too_large` for an oversized length prefix. */
function errorCode(err: unknown, otherwise: ErrorCode): ErrorCode {
  if (err instanceof ProtocolError) return err.code
  if (err instanceof Error && err.name.startsWith('InvalidDataLength')) return 'too_large'
  return otherwise
}

/**
 * Ends a stream with an error message carrying the codec's code (or
 * `internal`). An internal error's own text stays in this member's log: it
 * may name files and paths of this machine, which are no peer's business.
 */
async function answerError(
  lp: LengthPrefixed,
  stream: Stream,
  err: unknown,
  signal: AbortSignal,
): Promise<void> {
  const code = errorCode(err, 'internal')
  const message =
    code === 'internal' ? 'the member failed to answer; its log says why' : (err as Error).message
  await lp.write(encodeError(code, message), { signal }).catch(() => {})
  await stream.close().catch(() => stream.abort(err as Error))
}

function closedSignal(stream: Stream): AbortSignal {
  const controller = new AbortController()
  stream.addEventListener('close', () => controller.abort(new Error('stream closed')), {
    once: true,
  })
  return AbortSignal.any([controller.signal, AbortSignal.timeout(ANSWER_TIMEOUT_MS)])
}

type ServedProtocol = 'slice' | 'lookup' | 'rollup' | 'stats' | 'peers'

/**
 * Sends a slice answer under flow control: only what the coordinator
 * granted (and at most MAX_GRANT_BYTES per grant), then a pause until it
 * grants more. The coordinator reads only what its merge needs, so this
 * member scans only that much, and neither side buffers an unread answer.
 */
async function sendSlice(
  answer: ReturnType<SliceHandler>,
  window: number,
  lp: LengthPrefixed,
  signal: AbortSignal,
  sent: (events: number) => void,
  grantWaitTimeoutMs: number,
): Promise<void> {
  await lp.write(encodeHead(answer.hwm), { signal })
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
      for (const bytes of encodeBatches(chunk)) {
        await lp.write(bytes, { signal })
        grantBytes += bytes.byteLength
      }
      sent(chunk.length)
    }
  } finally {
    // Cancelled, reset or failed: end the scan, so its store iterator closes now.
    await answer.batches.return({ hwm: answer.hwm, scanned: 0, more: false }).catch(() => {})
  }
}

export async function registerSliceServer(components: SliceServerComponents): Promise<void> {
  const { host, slice, lookup, logger } = components
  const count = components.count ?? (() => {})
  let openStoreRequests = 0

  /**
   * Every chorus protocol the same way: read one request (bounded in size
   * and time), answer it, close; on failure count it and answer an error
   * code, or just reset the stream when the peer is gone or too slow.
   */
  const serve = (
    protocol: string,
    name: ServedProtocol,
    kind: QueryKind | undefined,
    answer: (request: Uint8Array, lp: LengthPrefixed, signal: AbortSignal) => Promise<void>,
  ) =>
    host.handle(
      protocol,
      async (stream) => {
        const started = performance.now()
        const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
        const signal = closedSignal(stream)
        const readsStore = kind !== undefined
        if (readsStore && openStoreRequests >= MAX_OPEN_STORE_REQUESTS) {
          count(name, 'busy')
          const busy = new ProtocolError('busy', 'too many requests open at this member')
          await answerError(lp, stream, busy, signal)
          return
        }
        if (readsStore) openStoreRequests++
        try {
          const request = await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
          await answer(request.subarray(), lp, signal)
          await stream.close({ signal })
          count(name, 'ok')
          if (kind !== undefined) components.served?.(kind, (performance.now() - started) / 1000)
        } catch (err) {
          const malformed = errorCode(err, 'internal') !== 'internal'
          count(name, malformed ? 'malformed' : 'error')
          // The peer is gone (it reset or closed the stream, or timed out) or
          // this member is closing its connections as it stops: nobody is
          // left to answer, and it is no fault of this member's.
          if (signal.aborted || stream.status !== 'open' || stream.writeStatus !== 'writable') {
            stream.abort(err as Error)
            return
          }
          if (!malformed) logger.warn({ err, protocol }, 'request failed')
          await answerError(lp, stream, err, signal)
        } finally {
          if (readsStore) openStoreRequests--
        }
      },
      { maxInboundStreams: MAX_INBOUND_STREAMS_PER_PEER },
    )

  await serve(SLICE_PROTOCOL, 'slice', 'events', async (bytes, lp, signal) => {
    const request = decodeSliceRequest(bytes)
    const sent = components.sent ?? (() => {})
    await sendSlice(
      slice(request, { signal }),
      request.window ?? request.limit,
      lp,
      signal,
      sent,
      components.grantWaitTimeoutMs ?? GRANT_WAIT_TIMEOUT_MS,
    )
  })

  await serve(ROLLUP_PROTOCOL, 'rollup', 'rollups', async (bytes, lp, signal) => {
    const series = await components.rollup(decodeRollupRequest(bytes), { signal })
    const encoded = series.map((s) => ({
      ...s,
      buckets: s.buckets.map((b) => ({ t: b.t, bucket: encodeBucket(b.bucket) })),
    }))
    for (const message of encodeRollupSeries(encoded)) await lp.write(message, { signal })
    const buckets = series.reduce((n, s) => n + s.buckets.length, 0)
    await lp.write(encodeTrailer({ hwm: 0, scanned: buckets, more: false }), { signal })
  })

  await serve(STATS_PROTOCOL, 'stats', undefined, async (bytes, lp, signal) => {
    decodeStatsRequest(bytes)
    await lp.write(encodeStats(components.counters()), { signal })
  })

  await serve(PEERS_PROTOCOL, 'peers', undefined, async (bytes, lp, signal) => {
    decodePeersRequest(bytes)
    await lp.write(encodePeers(components.peers()), { signal })
  })

  await serve(LOOKUP_PROTOCOL, 'lookup', 'lookup', async (bytes, lp, signal) => {
    const event = await lookup(decodeLookupRequest(bytes))
    await lp.write(encodeLookupReply(event), { signal })
  })
}
