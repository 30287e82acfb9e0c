// /chorus/rollup/2: one member's buckets of a period, folded into steps and
// groups.
//
//   rollup request [11, fromMs, toMs, resolution, stepMs, types[], minSeverity,
//                   byType, bySeverity, origin|null]   origin: the peer id of
//                   the member whose buckets are asked for, when the member
//                   asked holds its events (version 2); version 3 adds
//                   notTypes[] and attrs[] as the slice protocol's version 4
//   rollup series  [12, series[]]  each [type|null, severity|null, [[t, bucket bytes]...]];
//                   the answer ends with a trailer (or an error), as a slice's

import * as frame from './framing.ts'
import {
  type AnswerMessage,
  answerFrom,
  attrFiltersIn,
  type NewerFilters,
  typeListIn,
  usesNewerFilters,
} from './slice.ts'

/** `/chorus/rollup/2`: one request, series of buckets, one trailer (or an error). */
export const ROLLUP_PROTOCOL = '/chorus/rollup/2'
/**
 * `/chorus/rollup/3`: version 2 and the slice protocol's newer filters
 * (type exclusion, attributes). A request goes out as the oldest version
 * that carries it (rollupProtocolOf); a member serves both.
 */
export const ROLLUP_FILTER_PROTOCOL = '/chorus/rollup/3'

/** The rollup protocol a request is sent over: the oldest version that carries it. */
export function rollupProtocolOf(r: NewerFilters): string {
  return usesNewerFilters(r) ? ROLLUP_FILTER_PROTOCOL : ROLLUP_PROTOCOL
}

/** A rollup request: one member's buckets of a period, folded into steps and groups. */
export interface RollupRequest extends NewerFilters {
  /** Start of the period, ms since the epoch, inclusive (a multiple of stepMs). */
  fromMs: number
  /** End of the period, exclusive (a multiple of stepMs). */
  toMs: number
  /** Index of the stored resolution to read (0: 10 s, 1: 1 min, 2: 1 h). */
  resolution: number
  /** Width of the answer's buckets, ms: a multiple of the resolution. */
  stepMs: number
  /** Exact types or `prefix.*`; empty: all. */
  types: readonly string[]
  minSeverity: number
  byType: boolean
  bySeverity: boolean
  /** Peer id of the member whose buckets are asked for, when it is not the member asked (a holder). */
  origin?: string
}

/** One series of a rollup answer: a group's buckets, each an encoded bucket (node/store/rollup.ts). */
export interface RollupSeries {
  type?: string
  severity?: number
  buckets: Array<{ t: number; bucket: Uint8Array }>
}

/**
 * Most cells of one rollup answer: series × steps × max(1, quantiles), and
 * most buckets one member's rollup answer may hold. About 12 MB of JSON at
 * most, built in well under a second: a day at 1 min steps for 69 series, or
 * an hour at 10 s steps with 10 quantiles for 27.
 */
export const MAX_ROLLUP_CELLS = 100_000
/**
 * Most sketch bins (in memory) a coordinator takes from one member's rollup
 * answer: 4 Mi bins, about 32 MB. A sketch's dense stores span its smallest
 * to largest bin, so a few bytes on the wire can cost kilobytes decoded.
 */
export const MAX_ROLLUP_ANSWER_BINS = 4 * 1024 * 1024

/** Largest encoded bucket accepted from a peer, bytes. */
const MAX_BUCKET_BYTES = 256 * 1024
/**
 * Most series in one member's rollup answer, over all its messages: room for
 * 2,000 types at every severity. A member with more answers `too_large`; a
 * coordinator stops reading a member that sends more and reports it as an
 * error row, so a hostile member cannot grow the coordinator's answer (each
 * series becomes a full row of steps in the JSON) without bound.
 */
export const MAX_ROLLUP_SERIES = 10_000
/**
 * Most bytes of one member's whole rollup answer (its messages together),
 * 16 MiB: about 100,000 buckets of a few dozen distinct values each. A
 * coordinator aborts the stream of a member that sends more.
 */
export const MAX_ROLLUP_ANSWER_BYTES = 16 * 1024 * 1024

export function encodeRollupRequest(r: RollupRequest): Uint8Array {
  return frame.pack(
    [
      frame.KIND_ROLLUP_REQUEST,
      r.fromMs,
      r.toMs,
      r.resolution,
      r.stepMs,
      r.types,
      r.minSeverity,
      r.byType,
      r.bySeverity,
      r.origin ?? null,
      ...(usesNewerFilters(r) ? [r.notTypes ?? [], r.attrs ?? []] : []),
    ],
    frame.MAX_REQUEST_BYTES,
  )
}

/** Decodes a rollup request of version 2 (10 fields) or 3 (12). */
export function decodeRollupRequest(bytes: Uint8Array): RollupRequest {
  const m = frame.unpack(bytes, frame.MAX_REQUEST_BYTES)
  if (
    !Array.isArray(m) ||
    (m.length !== 10 && m.length !== 12) ||
    m[0] !== frame.KIND_ROLLUP_REQUEST
  )
    throw frame.malformed('not a rollup request')
  const [, fromMs, toMs, resolution, stepMs, types, minSeverity, byType, bySeverity, origin] = m
  if (origin !== null && (!frame.isString(origin, 128) || origin.length === 0))
    throw frame.malformed('origin')
  if (!frame.isInt(fromMs, 0, 2 ** 48) || !frame.isInt(toMs, 0, 2 ** 48))
    throw frame.malformed('period')
  if (!frame.isInt(resolution, 0, 2) || !frame.isInt(stepMs, 1, 2 ** 40))
    throw frame.malformed('resolution or step')
  typeListIn(types, 'types')
  if (
    !frame.isInt(minSeverity, 0, 4) ||
    typeof byType !== 'boolean' ||
    typeof bySeverity !== 'boolean'
  )
    throw frame.malformed('filters')
  const request: RollupRequest = {
    fromMs,
    toMs,
    resolution,
    stepMs,
    types: types as string[],
    minSeverity,
    byType,
    bySeverity,
  }
  if (origin !== null) request.origin = origin
  if (m.length === 12) {
    const notTypes = typeListIn(m[10], 'notTypes')
    const attrs = attrFiltersIn(m[11])
    if (notTypes.length > 0) request.notTypes = notTypes
    if (attrs.length > 0) request.attrs = attrs
  }
  return request
}

/** Encodes series into as many messages as the size limit needs (a series may span messages). */
export function encodeRollupSeries(series: readonly RollupSeries[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let chunk: unknown[] = []
  let size = 0
  const flush = () => {
    if (chunk.length > 0)
      out.push(frame.pack([frame.KIND_ROLLUP_SERIES, chunk], frame.MAX_ANSWER_BYTES))
    chunk = []
    size = 0
  }
  for (const s of series) {
    let buckets: Array<[number, Uint8Array]> = []
    for (const b of s.buckets) {
      const cost = b.bucket.byteLength + 16
      if (size + cost > frame.MAX_ANSWER_BYTES / 2 && (buckets.length > 0 || chunk.length > 0)) {
        if (buckets.length > 0) chunk.push([s.type ?? null, s.severity ?? null, buckets])
        flush()
        buckets = []
      }
      buckets.push([b.t, b.bucket])
      size += cost
    }
    chunk.push([s.type ?? null, s.severity ?? null, buckets])
    size += 32
  }
  flush()
  return out
}

/** Decodes one message of a rollup answer: series, the trailer, or an error. */
export function decodeRollupAnswer(
  bytes: Uint8Array,
):
  | { kind: 'series'; series: RollupSeries[] }
  | Exclude<AnswerMessage, { kind: 'batch' | 'head' | 'pause' }> {
  const m = frame.unpack(bytes, frame.MAX_ANSWER_BYTES)
  if (Array.isArray(m) && m[0] === frame.KIND_ROLLUP_SERIES) {
    if (m.length !== 2 || !Array.isArray(m[1])) throw frame.malformed('rollup series')
    if (m[1].length > MAX_ROLLUP_SERIES)
      throw new frame.ProtocolError('too_large', `more than ${MAX_ROLLUP_SERIES} rollup series`)
    const series = (m[1] as unknown[]).map((raw): RollupSeries => {
      if (!Array.isArray(raw) || raw.length !== 3 || !Array.isArray(raw[2]))
        throw frame.malformed('rollup series')
      const [type, severity, buckets] = raw
      if (type !== null && !frame.isString(type, 256)) throw frame.malformed('rollup series type')
      if (severity !== null && !frame.isInt(severity, 0, 4))
        throw frame.malformed('rollup series severity')
      const s: RollupSeries = {
        buckets: (buckets as unknown[]).map((b) => {
          if (
            !Array.isArray(b) ||
            b.length !== 2 ||
            !frame.isInt(b[0], 0, 2 ** 48) ||
            !(b[1] instanceof Uint8Array)
          ) {
            throw frame.malformed('rollup bucket')
          }
          if (b[1].byteLength > MAX_BUCKET_BYTES) throw frame.malformed('rollup bucket too large')
          return { t: b[0], bucket: b[1] }
        }),
      }
      if (type !== null) s.type = type
      if (severity !== null) s.severity = severity
      return s
    })
    return { kind: 'series', series }
  }
  const answer = answerFrom(m)
  if (answer.kind === 'trailer' || answer.kind === 'error') return answer
  throw frame.malformed('not a rollup answer')
}
