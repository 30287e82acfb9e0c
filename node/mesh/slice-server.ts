// Answers peers on /chorus/slice/1 and /chorus/lookup/1 from this member's
// own store, through the same handlers the coordinator calls directly for
// itself. A malformed or oversized request gets an error message, never a
// crash; a closed or reset stream stops the scan; writes wait for the stream
// to drain, so a slow coordinator slows the scan instead of filling memory.

import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import {
  decodeLookupRequest,
  decodeMore,
  decodeRollupRequest,
  decodeSliceRequest,
  decodeStatsRequest,
  type ErrorCode,
  encodeBatch,
  encodeError,
  encodeHead,
  encodeLookupReply,
  encodePause,
  encodeRollupSeries,
  encodeStats,
  encodeTrailer,
  LOOKUP_PROTOCOL,
  MAX_REQUEST_BYTES,
  type MemberCounters,
  ProtocolError,
  ROLLUP_PROTOCOL,
  SLICE_PROTOCOL,
  STATS_PROTOCOL,
  type WireEvent,
} from '../../protocol/index.ts'
import type { Logger } from '../log.ts'
import type { RollupHandler } from '../query/rollups.ts'
import type { LookupHandler, SliceHandler } from '../query/slice.ts'
import { encodeBucket } from '../store/rollup.ts'
import type { Host } from './host.ts'
import { toWire } from './wire.ts'

/** Concurrent inbound slice or lookup streams per connection (that is, per peer). */
export const MAX_INBOUND_STREAMS_PER_PEER = 32
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
  logger: Logger
  /** Times each request served to a peer, by kind, in seconds. */
  served?: (kind: 'events' | 'lookup' | 'rollups', seconds: number) => void
  /** Counts events written to slice streams (after the peer has taken them). */
  sent?: (events: number) => void
  /** Counts requests served and refused, by protocol and outcome. */
  count?: (
    protocol: 'slice' | 'lookup' | 'rollup' | 'stats',
    outcome: 'ok' | 'malformed' | 'error',
  ) => void
}

/** Encodes events into as many batch messages as the size limit needs. */
export function encodeBatches(events: readonly WireEvent[]): Uint8Array[] {
  try {
    return [encodeBatch(events)]
  } catch (err) {
    if (!(err instanceof ProtocolError) || err.code !== 'too_large' || events.length === 1)
      throw err
    const half = Math.ceil(events.length / 2)
    return [...encodeBatches(events.slice(0, half)), ...encodeBatches(events.slice(half))]
  }
}

/** The code an error answer carries: the codec's own, `too_large` for an oversized length prefix. */
function errorCode(err: unknown, otherwise: ErrorCode): ErrorCode {
  if (err instanceof ProtocolError) return err.code
  if (err instanceof Error && err.name.startsWith('InvalidDataLength')) return 'too_large'
  return otherwise
}

/** Ends a stream with an error message carrying the codec's code (or `internal`). */
async function answerError(
  lp: ReturnType<typeof lpStream<Stream>>,
  stream: Stream,
  err: unknown,
  signal: AbortSignal,
): Promise<void> {
  const code = errorCode(err, 'internal')
  await lp.write(encodeError(code, (err as Error).message), { signal }).catch(() => {})
  await stream.close().catch(() => stream.abort(err as Error))
}

function closedSignal(stream: Stream): AbortSignal {
  const controller = new AbortController()
  stream.addEventListener('close', () => controller.abort(new Error('stream closed')), {
    once: true,
  })
  return AbortSignal.any([controller.signal, AbortSignal.timeout(ANSWER_TIMEOUT_MS)])
}

export async function registerSliceServer(components: SliceServerComponents): Promise<void> {
  const { host, slice, lookup, logger } = components
  const count = components.count ?? (() => {})

  await host.handle(
    SLICE_PROTOCOL,
    async (stream) => {
      const started = performance.now()
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
      const signal = closedSignal(stream)
      let request: ReturnType<typeof decodeSliceRequest>
      try {
        const bytes = await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
        request = decodeSliceRequest(bytes.subarray())
      } catch (err) {
        count('slice', 'malformed')
        const code = errorCode(err, 'malformed')
        await lp.write(encodeError(code, (err as Error).message), { signal }).catch(() => {})
        await stream.close().catch(() => stream.abort(err as Error))
        return
      }
      try {
        const answer = slice(request, { signal })
        await lp.write(encodeHead(answer.hwm), { signal })
        // Flow control: send only what the coordinator granted (and at most
        // MAX_GRANT_BYTES per grant), then pause until it grants more. The
        // coordinator reads only what its merge needs, so this member scans
        // only that much, and neither side buffers an unread answer.
        let credit = request.window ?? request.limit
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
        let pending: WireEvent[] = []
        for (;;) {
          if (pending.length === 0) {
            const next = await answer.batches.next()
            if (next.done === true) {
              await lp.write(encodeTrailer(next.value), { signal })
              break
            }
            pending = next.value.map(toWire)
            continue
          }
          if (credit === 0 || grantBytes >= MAX_GRANT_BYTES) {
            await lp.write(encodePause(), { signal })
            while (credit === 0 || grantBytes >= MAX_GRANT_BYTES) {
              await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted])
            }
            continue
          }
          const chunk = pending.splice(0, credit)
          credit -= chunk.length
          for (const bytes of encodeBatches(chunk)) {
            await lp.write(bytes, { signal })
            grantBytes += bytes.byteLength
          }
          components.sent?.(chunk.length)
        }
        await stream.close({ signal })
        count('slice', 'ok')
        components.served?.('events', (performance.now() - started) / 1000)
      } catch (err) {
        count('slice', 'error')
        if (signal.aborted) {
          stream.abort(err as Error)
          return
        }
        logger.warn({ err }, 'slice request failed')
        await lp.write(encodeError('internal', (err as Error).message), { signal }).catch(() => {})
        await stream.close().catch(() => stream.abort(err as Error))
      }
    },
    { maxInboundStreams: MAX_INBOUND_STREAMS_PER_PEER },
  )

  await host.handle(
    ROLLUP_PROTOCOL,
    async (stream) => {
      const started = performance.now()
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
      const signal = closedSignal(stream)
      try {
        const bytes = await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
        const series = await components.rollup(decodeRollupRequest(bytes.subarray()), { signal })
        const encoded = series.map((s) => ({
          ...s,
          buckets: s.buckets.map((b) => ({ t: b.t, bucket: encodeBucket(b.bucket) })),
        }))
        let buckets = 0
        for (const message of encodeRollupSeries(encoded)) await lp.write(message, { signal })
        for (const s of series) buckets += s.buckets.length
        await lp.write(encodeTrailer({ hwm: 0, scanned: buckets, more: false }), { signal })
        await stream.close({ signal })
        count('rollup', 'ok')
        components.served?.('rollups', (performance.now() - started) / 1000)
      } catch (err) {
        count('rollup', err instanceof ProtocolError ? 'malformed' : 'error')
        await answerError(lp, stream, err, signal)
      }
    },
    { maxInboundStreams: MAX_INBOUND_STREAMS_PER_PEER },
  )

  await host.handle(
    STATS_PROTOCOL,
    async (stream) => {
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
      const signal = closedSignal(stream)
      try {
        decodeStatsRequest(
          (await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })).subarray(),
        )
        await lp.write(encodeStats(components.counters()), { signal })
        await stream.close({ signal })
        count('stats', 'ok')
      } catch (err) {
        count('stats', err instanceof ProtocolError ? 'malformed' : 'error')
        await answerError(lp, stream, err, signal)
      }
    },
    { maxInboundStreams: MAX_INBOUND_STREAMS_PER_PEER },
  )

  await host.handle(
    LOOKUP_PROTOCOL,
    async (stream) => {
      const started = performance.now()
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
      const signal = closedSignal(stream)
      try {
        const bytes = await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
        const id = decodeLookupRequest(bytes.subarray())
        const event = await lookup(id)
        await lp.write(encodeLookupReply(event === undefined ? undefined : toWire(event)), {
          signal,
        })
        await stream.close({ signal })
        count('lookup', 'ok')
        components.served?.('lookup', (performance.now() - started) / 1000)
      } catch (err) {
        count('lookup', err instanceof ProtocolError ? 'malformed' : 'error')
        await answerError(lp, stream, err, signal)
      }
    },
    { maxInboundStreams: MAX_INBOUND_STREAMS_PER_PEER },
  )
}
