// /chorus/rollup/2 and /3: one request, the member's series of buckets folded into
// the requested steps and groups, then a trailer or an error. The client
// bounds a member's answer while it reads it (bytes, series, buckets, sketch
// bins, steps of the period only), so no member can grow a coordinator's
// memory by answering more.

import {
  decodeRollupAnswer,
  decodeRollupRequest,
  encodeRollupRequest,
  encodeRollupSeries,
  encodeTrailer,
  MAX_ROLLUP_ANSWER_BINS,
  MAX_ROLLUP_ANSWER_BYTES,
  MAX_ROLLUP_CELLS,
  MAX_ROLLUP_SERIES,
  ProtocolError,
  ROLLUP_FILTER_PROTOCOL,
  ROLLUP_PROTOCOL,
  type RollupRequest,
  rollupProtocolOf,
} from '../../../protocol/index.ts'
import {
  type Bucket,
  type BucketSeries,
  bucketBins,
  decodeBucket,
  encodeBucket,
  mergeBucket,
} from '../../store/rollup.ts'
import { open, type Peer, RemoteError, type ServedProtocol, translate } from './stream.ts'

export interface RollupComponents {
  /** Folds this member's own buckets into the request's steps and groups. */
  rollup(request: RollupRequest, options?: { signal?: AbortSignal }): Promise<BucketSeries[]>
}

export const rollupProtocol: ServedProtocol<RollupComponents> = {
  protocol: ROLLUP_PROTOCOL,
  name: 'rollup',
  kind: 'rollups',
  async answer(bytes, lp, signal, components) {
    const series = await components.rollup(decodeRollupRequest(bytes), { signal })
    const encoded = series.map((s) => ({
      ...s,
      buckets: s.buckets.map((b) => ({ t: b.t, bucket: encodeBucket(b.bucket) })),
    }))
    for (const message of encodeRollupSeries(encoded)) await lp.write(message, { signal })
    const buckets = series.reduce((n, s) => n + s.buckets.length, 0)
    await lp.write(encodeTrailer({ hwm: 0, scanned: buckets, more: false }), { signal })
  },
}

/** Version 3 is version 2 with two more filters: one decoder reads both. */
export const rollupFilterProtocol: ServedProtocol<RollupComponents> = {
  ...rollupProtocol,
  protocol: ROLLUP_FILTER_PROTOCOL,
}

/**
 * Asks one peer for its rollups over /chorus/rollup/2. The answer is bounded
 * while it is read, never after: at most MAX_ROLLUP_ANSWER_BYTES,
 * MAX_ROLLUP_SERIES series and MAX_ROLLUP_CELLS buckets (pieces of one
 * series, and repeats of one step, are merged as they come),
 * MAX_ROLLUP_ANSWER_BINS sketch bins, and only steps of the requested
 * period. A member that sends more has its stream aborted and comes out as
 * a ProtocolError (an `error` row).
 */
export async function remoteRollup(
  peer: Peer,
  request: RollupRequest,
  options: { signal: AbortSignal },
): Promise<BucketSeries[]> {
  const { signal } = options
  const { name } = peer
  const tooLarge = (what: string) =>
    new ProtocolError('too_large', `${name} sent more than ${what} of rollups`)
  const { stream, lp } = await open(peer, rollupProtocolOf(request), signal)
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
