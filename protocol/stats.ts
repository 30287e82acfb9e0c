// /chorus/stats/2: a member's counters, for the array-wide metrics.
//
//   stats request  [13, origin|null]  origin: the peer id of a member whose
//                                     events the asked member holds (replicas),
//                                     to count those instead of its own
//   stats          [14, ingestedEvents, queries, storeSizeBytes, [[type, severity, count]...]]
//                  (for an origin: 0, 0, 0 and the totals of its events held)

import * as frame from './framing.ts'

/** `/chorus/stats/2`: a member's counters for the array-wide metrics. */
export const STATS_PROTOCOL = '/chorus/stats/2'

/** A member's counters, as /chorus/stats/2 carries them. */
export interface MemberCounters {
  /** Events stored by ingest since the member started. */
  ingestedEvents: number
  /** Queries it coordinated since it started. */
  queries: number
  storeSizeBytes: number
  /** Events ever logged, by type and severity rank. */
  eventTotals: Array<{ type: string; severity: number; count: number }>
}

/** Most (type, severity) totals one stats answer carries. */
export const MAX_STATS_TOTALS = 20_000

export function encodeStatsRequest(origin?: string): Uint8Array {
  return frame.pack([frame.KIND_STATS_REQUEST, origin ?? null], frame.MAX_REQUEST_BYTES)
}

/** The origin whose held events to count; undefined for the member's own counters. */
export function decodeStatsRequest(bytes: Uint8Array): string | undefined {
  const [, origin] = frame.framed(
    bytes,
    frame.MAX_REQUEST_BYTES,
    frame.KIND_STATS_REQUEST,
    2,
    'a stats request',
  )
  if (origin === null) return undefined
  if (!frame.isString(origin, 128) || origin.length === 0) throw frame.malformed('origin')
  return origin
}

export function encodeStats(c: MemberCounters): Uint8Array {
  return frame.pack(
    [
      frame.KIND_STATS,
      c.ingestedEvents,
      c.queries,
      c.storeSizeBytes,
      c.eventTotals.slice(0, MAX_STATS_TOTALS).map((t) => [t.type, t.severity, t.count]),
    ],
    frame.MAX_ANSWER_BYTES,
  )
}

export function decodeStats(bytes: Uint8Array): MemberCounters {
  const [, ingestedEvents, queries, storeSizeBytes, totals] = frame.framed(
    bytes,
    frame.MAX_ANSWER_BYTES,
    frame.KIND_STATS,
    5,
    'stats',
  )
  if (
    !frame.isInt(ingestedEvents, 0, Number.MAX_SAFE_INTEGER) ||
    !frame.isInt(queries, 0, Number.MAX_SAFE_INTEGER)
  )
    throw frame.malformed('stats counters')
  if (!frame.isInt(storeSizeBytes, 0, Number.MAX_SAFE_INTEGER))
    throw frame.malformed('stats store size')
  if (!Array.isArray(totals) || totals.length > MAX_STATS_TOTALS)
    throw frame.malformed('stats totals')
  return {
    ingestedEvents,
    queries,
    storeSizeBytes,
    eventTotals: totals.map((t) => {
      if (
        !Array.isArray(t) ||
        t.length !== 3 ||
        !frame.isString(t[0], 256) ||
        !frame.isInt(t[1], 0, 4) ||
        !frame.isInt(t[2], 0, Number.MAX_SAFE_INTEGER)
      ) {
        throw frame.malformed('stats total')
      }
      return { type: t[0], severity: t[1], count: t[2] }
    }),
  }
}
