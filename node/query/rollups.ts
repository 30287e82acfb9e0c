// Rollup queries. The member side folds its own stored buckets of one
// resolution into steps and groups (by type and/or severity); the
// coordinator asks every member (itself by a direct call), merges the groups
// bucket by bucket, adds the member dimension when asked, and answers with
// series, per-member rows and `partial`, like event queries.
//
// Every answer is bounded before it is built. A client asks for at most
// MAX_ROLLUP_QUANTILES quantiles and MAX_ROLLUP_CELLS cells (series × steps ×
// quantiles, a bucket without quantiles counting as one): the steps and
// quantiles are checked before any member is asked, and the series as the
// members' answers are merged, so a query that would build an oversized
// answer is refused with a 400 instead of stalling the member. Each member's
// answer is bounded as it is read (node/mesh/protocols/rollup.ts: a member over
// the protocol's limits becomes an `error` row), and a member refuses to
// assemble more series or buckets than it may send.

import type { RollupRequest } from '../../protocol/index.ts'
import { MAX_ROLLUP_CELLS, MAX_ROLLUP_SERIES, ProtocolError } from '../../protocol/index.ts'
import { InvalidInputError } from '../errors.ts'
import { severityOfRank } from '../event/event.ts'
import { encodeId, memberTag, tsOfIdBytes } from '../event/id.ts'
import type { MemberRecorder } from '../stats.ts'
import { decodeEventValue } from '../store/codec.ts'
import type { EventLog, EventSpace } from '../store/event-log.ts'
import { scanEvents, typeMatcher } from '../store/event-scan.ts'
import {
  addEvent,
  type Bucket,
  type BucketSeries,
  copyBucket,
  emptyBucket,
  mergeBucket,
  quantile,
  RESOLUTIONS_MS,
} from '../store/rollup.ts'
import {
  collect,
  type FanOutTarget,
  type MemberRow,
  matchesMembers,
  recordRows,
} from './fan-out.ts'

/** Most steps one rollup answer may hold. */
export const MAX_ROLLUP_STEPS = 10_000
/** Most quantiles one rollup query may ask for (`q`). */
export const MAX_ROLLUP_QUANTILES = 10
/** Cells of an answer (see MAX_ROLLUP_CELLS). */
export function rollupCells(series: number, steps: number, quantiles: number): number {
  return series * steps * Math.max(1, quantiles)
}

function tooManyCells(cells: number, fields: string[]): InvalidInputError {
  const rule = `the answer may hold at most ${MAX_ROLLUP_CELLS} cells (series × steps × quantiles)`
  return new InvalidInputError(
    `${rule}, this one would hold ${cells}: ask for a shorter period, a longer step, fewer quantiles or fewer series`,
    fields.map((field) => ({ field, message: rule })),
    'limit_exceeded',
  )
}

/**
 * Most events one member reads to answer a rollup request with attribute
 * filters: attributes are not rolled up, so such a request is answered
 * from the events themselves, and a period holding more is refused
 * (`too_large`) rather than scanned for minutes.
 */
export const MAX_ATTR_ROLLUP_EVENTS = 1_000_000

/** A rolled-up row: one stored bucket of a type and severity, or one event folded into its own. */
interface RollupRow {
  type: string
  severity: number
  startMs: number
  bucket: Bucket
}

/**
 * The events of `space` that a request with attribute filters selects,
 * each as a row of its own bucket (attributes are not rolled up, so these
 * requests are answered from the events).
 */
async function* eventRows(
  space: EventSpace,
  request: RollupRequest,
  signal: AbortSignal | undefined,
): AsyncGenerator<RollupRow[]> {
  const query = {
    fromMs: request.fromMs,
    toMs: request.toMs,
    reverse: false,
    types: request.types,
    minSeverity: request.minSeverity,
    limit: MAX_ATTR_ROLLUP_EVENTS + 1,
    window: MAX_ATTR_ROLLUP_EVENTS,
    hwm: space.lastSeq,
    ...(request.notTypes === undefined ? {} : { notTypes: request.notTypes }),
    ...(request.attrs === undefined ? {} : { attrs: request.attrs }),
  }
  let read = 0
  for await (const batch of scanEvents(space, query, signal === undefined ? {} : { signal })) {
    read += batch.length
    if (read > MAX_ATTR_ROLLUP_EVENTS)
      throw new ProtocolError(
        'too_large',
        `more than ${MAX_ATTR_ROLLUP_EVENTS} events match the attribute filters: ask for a shorter period`,
      )
    yield batch.map((stored) => {
      const fields = decodeEventValue(stored.value)
      const bucket = emptyBucket()
      addEvent(bucket, encodeId(stored.id), fields.value)
      return {
        type: fields.type,
        severity: fields.severity,
        startMs: tsOfIdBytes(stored.id),
        bucket,
      }
    })
  }
}

export type RollupHandler = (
  request: RollupRequest,
  options?: { signal?: AbortSignal },
) => Promise<BucketSeries[]>

/**
 * Answers a rollup request from this member's own store. An answer of more
 * than MAX_ROLLUP_SERIES series or MAX_ROLLUP_CELLS buckets is refused
 * (ProtocolError `too_large`) as soon as it gets there, before it is sent or
 * held in full: a coordinator would refuse it anyway.
 */
export function createRollupHandler(components: { log: EventLog }): RollupHandler {
  const { log } = components
  return async (request, options = {}) => {
    // This member's buckets, or those of the origin the request names, which it holds.
    let heldTag: Uint8Array | undefined
    if (request.origin !== undefined) {
      const tag = memberTag(request.origin)
      if (Buffer.compare(tag, log.tag) !== 0) {
        if (log.held(tag)?.peerId !== request.origin) return []
        heldTag = tag
      }
    }
    let buckets = 0
    const matches = typeMatcher(request.types, request.notTypes)
    const space = heldTag === undefined ? log : log.held(heldTag)
    const rows =
      request.attrs !== undefined && request.attrs.length > 0
        ? space === undefined
          ? (async function* () {})()
          : eventRows(space, request, options.signal)
        : log.scanRollups(request.resolution, request.fromMs, request.toMs, heldTag)
    const groups = new Map<
      string,
      { type?: string; severity?: number; steps: Map<number, Bucket> }
    >()
    for await (const chunk of rows) {
      options.signal?.throwIfAborted()
      for (const row of chunk) {
        if (row.severity < request.minSeverity || !matches(row.type)) continue
        const key = `${request.byType ? row.type : ''}\u0000${request.bySeverity ? row.severity : ''}`
        let group = groups.get(key)
        if (group === undefined) {
          if (groups.size >= MAX_ROLLUP_SERIES)
            throw new ProtocolError('too_large', `more than ${MAX_ROLLUP_SERIES} rollup series`)
          group = { steps: new Map() }
          if (request.byType) group.type = row.type
          if (request.bySeverity) group.severity = row.severity
          groups.set(key, group)
        }
        const t = row.startMs - (row.startMs % request.stepMs)
        const step = group.steps.get(t)
        if (step !== undefined) mergeBucket(step, row.bucket)
        else {
          if (++buckets > MAX_ROLLUP_CELLS)
            throw new ProtocolError('too_large', `more than ${MAX_ROLLUP_CELLS} rollup buckets`)
          group.steps.set(t, row.bucket)
        }
      }
    }
    return [...groups.values()].map((g) => {
      const series: BucketSeries = {
        buckets: [...g.steps.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([t, bucket]) => ({ t, bucket })),
      }
      if (g.type !== undefined) series.type = g.type
      if (g.severity !== undefined) series.severity = g.severity
      return series
    })
  }
}

/** The stored resolution to read for a step: the coarsest one that divides it. */
export function resolutionFor(stepMs: number): number | undefined {
  for (let r = RESOLUTIONS_MS.length - 1; r >= 0; r--) {
    if (stepMs % (RESOLUTIONS_MS[r] as number) === 0) return r
  }
  return undefined
}

export interface RollupTarget extends FanOutTarget {
  rollup(request: RollupRequest, options: { signal: AbortSignal }): Promise<BucketSeries[]>
}

export interface RollupQuery {
  request: RollupRequest
  /** Member names or peer ids; empty: all. */
  members: string[]
  byMember: boolean
  /** Quantiles to report, each in [0, 1]; at most MAX_ROLLUP_QUANTILES. */
  quantiles: number[]
  timeoutMs: number
}

export interface RollupBucketJson {
  t: number
  count: number
  sum: number
  min: number | null
  max: number | null
  last: number | null
  avg: number | null
  quantiles?: Record<string, number | null>
}

export interface RollupAnswer {
  step: string
  series: Array<{
    key: { type?: string; severity?: string; member?: string }
    buckets: RollupBucketJson[]
  }>
  members: MemberRow[]
  partial: boolean
}

function bucketJson(t: number, b: Bucket, quantiles: number[]): RollupBucketJson {
  const out: RollupBucketJson = {
    t,
    count: b.count,
    sum: b.sum,
    min: b.valued === 0 ? null : b.min,
    max: b.valued === 0 ? null : b.max,
    last: b.valued === 0 ? null : b.last,
    avg: b.valued === 0 ? null : b.sum / b.valued,
  }
  if (quantiles.length > 0) {
    out.quantiles = Object.fromEntries(quantiles.map((q) => [String(q), quantile(b, q)]))
  }
  return out
}

/**
 * Asks every member for its rollups and merges them into one answer; rows
 * that are not `ok` are counted on `recorder`.
 */
export async function queryRollups(
  targets: RollupTarget[],
  query: RollupQuery,
  stepLabel: string,
  options: { signal?: AbortSignal; recorder?: MemberRecorder } = {},
): Promise<RollupAnswer> {
  const { request } = query
  const steps = Math.ceil((request.toMs - request.fromMs) / request.stepMs)
  const perSeries = rollupCells(1, steps, query.quantiles.length)
  if (perSeries > MAX_ROLLUP_CELLS) throw tooManyCells(perSeries, ['step', 'q'])
  const merged = new Map<
    string,
    { key: { type?: string; severity?: string; member?: string }; steps: Map<number, Bucket> }
  >()
  // Each answer is merged as it arrives, so it can be let go before the
  // others come in; an answer that takes the merge over the cell limit stops
  // the whole query (`stop`), and it is refused once every member has ended.
  let overflowCells = 0
  const stop = new AbortController()
  const take = (target: RollupTarget, series: BucketSeries[]) => {
    for (const s of series) {
      const member = query.byMember ? target.name : undefined
      const name = `${s.type ?? ''}\u0000${s.severity ?? ''}\u0000${member ?? ''}`
      let group = merged.get(name)
      if (group === undefined) {
        const cells = (merged.size + 1) * perSeries
        if (cells > MAX_ROLLUP_CELLS) {
          overflowCells = cells
          stop.abort(new Error('the answer is over the cell limit'))
          return
        }
        const key: { type?: string; severity?: string; member?: string } = {}
        if (s.type !== undefined) key.type = s.type
        if (s.severity !== undefined) key.severity = severityOfRank(s.severity)
        if (member !== undefined) key.member = member
        group = { key, steps: new Map() }
        merged.set(name, group)
      }
      for (const { t, bucket } of s.buckets) {
        if (t < request.fromMs || t >= request.toMs) continue
        const step = group.steps.get(t)
        if (step === undefined) group.steps.set(t, copyBucket(bucket))
        else mergeBucket(step, bucket)
      }
    }
  }
  const answers = await collect(
    targets.filter((t) => matchesMembers(t, query.members)),
    {
      timeoutMs: query.timeoutMs,
      signal:
        options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal]),
    },
    (target, signal) => target.rollup(request, { signal }),
    { count: (series) => series.reduce((n, s) => n + s.buckets.length, 0), take },
  )
  if (overflowCells > 0) throw tooManyCells(overflowCells, ['by', 'type'])

  const empty = emptyBucket()
  const series = [...merged.values()]
    .sort((a, b) => JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)))
    .map((group) => {
      const buckets: RollupBucketJson[] = []
      for (let t = request.fromMs; t < request.toMs; t += request.stepMs) {
        buckets.push(bucketJson(t, group.steps.get(t) ?? empty, query.quantiles))
      }
      return { key: group.key, buckets }
    })
  const members = answers.map((a) => a.row)
  return { step: stepLabel, series, members, partial: recordRows(members, options.recorder) }
}

/**
 * Everything this member logged of `types` (exact or `prefix.*`; empty: all)
 * at `minSeverity` or above in [fromMs, toMs), folded into one bucket from
 * its finest rollups (empty when there is nothing): what a health rule
 * measures.
 */
export async function rollupTotal(
  log: Pick<EventLog, 'scanRollups'>,
  types: string[],
  minSeverity: number,
  fromMs: number,
  toMs: number,
): Promise<Bucket> {
  const matches = typeMatcher(types)
  const total = emptyBucket()
  const start = fromMs - (fromMs % (RESOLUTIONS_MS[0] as number))
  for await (const rows of log.scanRollups(0, start, toMs)) {
    for (const row of rows)
      if (row.severity >= minSeverity && matches(row.type)) mergeBucket(total, row.bucket)
  }
  return total
}
