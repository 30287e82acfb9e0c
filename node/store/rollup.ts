// Rollups: events folded into time buckets of 10 s, 1 min and 1 h per type
// and severity, each with count, sum, min, max and last of `value` and a
// DDSketch of `value` (from @datadog/sketches-js, 1% relative accuracy) so
// that quantiles merge across buckets and members. The event log writes the
// buckets in the same batch as the events they count.
//
// The sketch keeps at most SKETCH_BIN_LIMIT bins per sign, collapsing the
// smallest magnitudes first: a bucket's memory stays bounded, and quantiles
// keep their 1% guarantee for values within 10^35 of the largest magnitude
// in the bucket. Sketches are merged bin by bin through the store's own
// `add`: the library's DenseStore.merge loses counts when the two stores'
// key ranges are far apart (seen here with values 1e-8 and 1e-142).
//
// Sums saturate at ±Number.MAX_VALUE instead of overflowing to Infinity:
// ingest bounds |value| to 1e15 (MAX_EVENT_VALUE), so only a bucket written
// by an older member, or sent by a hostile one, can get there, and a sum that
// is merely huge still encodes, decodes and merges, where Infinity would make
// every bucket it is merged into undecodable.
//
// Stored form (key layout in keys.ts, 'B' records): a MessagePack array
//   [count, valued, sum, min, max, last, lastId, zeroCount,
//    positive keys[], positive counts[], negative keys[], negative counts[]]
// where the sketch's non-empty bins are listed sparsely (the library's own
// protobuf form keeps every bin between the smallest and largest, kilobytes
// for a bucket with a few values).

import { LogCollapsingLowestDenseDDSketch } from '@datadog/sketches-js'
import { Packr } from 'msgpackr'

/** Stored resolutions, finest first, in ms. */
export const RESOLUTIONS_MS = [10_000, 60_000, 3_600_000] as const
/** Relative accuracy of quantiles: a reported quantile is within 1% of a value at that rank. */
export const SKETCH_RELATIVE_ACCURACY = 0.01
/** Bins per sign a sketch keeps: 4096 bins at 1% span a factor of about 10^35. */
export const SKETCH_BIN_LIMIT = 4096

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

/** One bucket: what the events of a type and severity in a time slot add up to. */
export interface Bucket {
  /** Events counted. */
  count: number
  /** Events that carried a `value`; sum, min, max, last and the sketch are over these. */
  valued: number
  sum: number
  min: number
  max: number
  last: number
  /**
   * Id of the event that gave `last` ('' before any): ids sort in the
   * array's order of events, so the larger id's value is `last` when buckets
   * of several types, severities or members merge.
   */
  lastId: string
  sketch: LogCollapsingLowestDenseDDSketch
}

export function emptyBucket(): Bucket {
  return {
    count: 0,
    valued: 0,
    sum: 0,
    min: Number.POSITIVE_INFINITY,
    max: Number.NEGATIVE_INFINITY,
    last: 0,
    lastId: '',
    sketch: new LogCollapsingLowestDenseDDSketch({
      relativeAccuracy: SKETCH_RELATIVE_ACCURACY,
      binLimit: SKETCH_BIN_LIMIT,
    }),
  }
}

/** a + b, held within ±Number.MAX_VALUE (see the module comment). */
export function saturatingAdd(a: number, b: number): number {
  const sum = a + b
  if (sum === Number.POSITIVE_INFINITY) return Number.MAX_VALUE
  if (sum === Number.NEGATIVE_INFINITY) return -Number.MAX_VALUE
  return sum
}

/** Counts one event into a bucket. */
export function addEvent(bucket: Bucket, id: string, value: number | undefined): void {
  bucket.count++
  if (value === undefined) return
  bucket.valued++
  bucket.sum = saturatingAdd(bucket.sum, value)
  if (value < bucket.min) bucket.min = value
  if (value > bucket.max) bucket.max = value
  if (id > bucket.lastId) {
    bucket.last = value
    bucket.lastId = id
  }
  bucket.sketch.accept(value)
}

/** Folds `from` into `into` (sums of counts and sums, min of mins, max of maxes, newest last, merged sketches). */
export function mergeBucket(into: Bucket, from: Bucket): void {
  into.count += from.count
  into.valued += from.valued
  into.sum = saturatingAdd(into.sum, from.sum)
  if (from.min < into.min) into.min = from.min
  if (from.max > into.max) into.max = from.max
  if (from.valued > 0 && from.lastId > into.lastId) {
    into.last = from.last
    into.lastId = from.lastId
  }
  if (from.valued > 0) mergeSketch(into.sketch, from.sketch)
}

/** Adds every bin of `from` into `into` (see the module comment for why not the library's merge). */
function mergeSketch(
  into: LogCollapsingLowestDenseDDSketch,
  from: LogCollapsingLowestDenseDDSketch,
): void {
  addBins(into.store as unknown as SparseStore, from.store as unknown as SparseStore)
  addBins(
    into.negativeStore as unknown as SparseStore,
    from.negativeStore as unknown as SparseStore,
  )
  into.zeroCount += from.zeroCount
  into.count += from.count
  into.sum = saturatingAdd(into.sum, from.sum)
  if (from.min < into.min) into.min = from.min
  if (from.max > into.max) into.max = from.max
}

function addBins(into: SparseStore, from: SparseStore): void {
  for (let i = 0; i < from.bins.length; i++) {
    const count = from.bins[i] as number
    if (count !== 0) into.add(i + from.offset, count)
  }
}

/** Bins a bucket's sketch holds in memory (its dense stores span min to max key, empty bins included). */
export function bucketBins(bucket: Bucket): number {
  const s = bucket.sketch
  return (
    (s.store as unknown as SparseStore).bins.length +
    (s.negativeStore as unknown as SparseStore).bins.length
  )
}

export function copyBucket(bucket: Bucket): Bucket {
  const copy = emptyBucket()
  mergeBucket(copy, bucket)
  return copy
}

interface SparseStore {
  bins: number[]
  offset: number
  add(key: number, weight?: number): void
}

function sparse(store: SparseStore): [number[], number[]] {
  const keys: number[] = []
  const counts: number[] = []
  for (let i = 0; i < store.bins.length; i++) {
    const count = store.bins[i] as number
    if (count !== 0) {
      keys.push(i + store.offset)
      counts.push(count)
    }
  }
  return [keys, counts]
}

/** The bucket as stored and sent: a compact MessagePack array (see the module comment). */
export function encodeBucket(bucket: Bucket): Uint8Array {
  const s = bucket.sketch
  const [pk, pc] = sparse(s.store as unknown as SparseStore)
  const [nk, nc] = sparse(s.negativeStore as unknown as SparseStore)
  return packr.pack([
    bucket.count,
    bucket.valued,
    bucket.sum,
    bucket.valued === 0 ? 0 : bucket.min,
    bucket.valued === 0 ? 0 : bucket.max,
    bucket.last,
    bucket.lastId,
    s.zeroCount,
    pk,
    pc,
    nk,
    nc,
  ])
}

export class CorruptBucketError extends Error {
  override readonly name = 'CorruptBucketError'
}

const isNumberArray = (v: unknown, max: number): v is number[] =>
  Array.isArray(v) && v.length <= max && v.every((x) => typeof x === 'number' && Number.isFinite(x))

const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0

/**
 * Largest |bin key| a sketch can produce: at 1% accuracy the keys of every
 * finite double lie within about ±37,000, so anything beyond is not a bin.
 */
const MAX_BIN_KEY = 100_000

/** Sparse bins: integer keys in range, positive counts, as many of each. */
function isBins(keys: unknown, counts: unknown): boolean {
  return (
    isNumberArray(keys, 2 * SKETCH_BIN_LIMIT) &&
    isNumberArray(counts, 2 * SKETCH_BIN_LIMIT) &&
    keys.length === counts.length &&
    keys.every((k) => Number.isInteger(k) && Math.abs(k) <= MAX_BIN_KEY) &&
    counts.every((c) => c > 0)
  )
}

/** Decodes a bucket; throws CorruptBucketError on anything but the stored form. */
export function decodeBucket(bytes: Uint8Array): Bucket {
  let m: unknown
  try {
    m = packr.unpack(bytes)
  } catch {
    throw new CorruptBucketError('undecodable bucket')
  }
  if (!Array.isArray(m) || m.length !== 12) throw new CorruptBucketError('not a bucket')
  const [count, valued, sum, min, max, last, lastId, zeroCount, pk, pc, nk, nc] = m
  if (
    !isNumberArray([count, valued, sum, min, max, last, zeroCount], 7) ||
    !isCount(count) ||
    !isCount(valued) ||
    (valued as number) > (count as number) ||
    !isCount(zeroCount) ||
    typeof lastId !== 'string' ||
    lastId.length > 32
  )
    throw new CorruptBucketError('bucket numbers')
  if (!isBins(pk, pc) || !isBins(nk, nc)) throw new CorruptBucketError('bucket bins')
  const bucket = emptyBucket()
  bucket.count = count as number
  bucket.valued = valued as number
  bucket.sum = sum as number
  bucket.min = bucket.valued === 0 ? Number.POSITIVE_INFINITY : (min as number)
  bucket.max = bucket.valued === 0 ? Number.NEGATIVE_INFINITY : (max as number)
  bucket.last = last as number
  bucket.lastId = lastId
  const s = bucket.sketch
  for (let i = 0; i < pk.length; i++)
    (s.store as unknown as SparseStore).add(pk[i] as number, pc[i] as number)
  for (let i = 0; i < nk.length; i++)
    (s.negativeStore as unknown as SparseStore).add(nk[i] as number, nc[i] as number)
  s.zeroCount = zeroCount as number
  s.count = bucket.valued
  s.sum = bucket.sum
  s.min = bucket.min
  s.max = bucket.max
  return bucket
}

/** The value at quantile q (0..1) of a bucket's values, within the sketch's accuracy; null without values. */
export function quantile(bucket: Bucket, q: number): number | null {
  if (bucket.valued === 0) return null
  const v = bucket.sketch.getValueAtQuantile(q)
  // The sketch answers a bin's representative value; the true value lies in [min, max].
  return Math.min(bucket.max, Math.max(bucket.min, v))
}

/** A group's buckets as a member answers a rollup request: one per step, in time order. */
export interface BucketSeries {
  type?: string
  severity?: number
  buckets: Array<{ t: number; bucket: Bucket }>
}
