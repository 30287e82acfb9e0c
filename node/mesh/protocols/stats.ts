// /chorus/stats/2: a member's counters, for the array-wide metrics, or the
// totals of another member's events it holds.

import {
  decodeStats,
  decodeStatsRequest,
  encodeStats,
  encodeStatsRequest,
  type MemberCounters,
  STATS_PROTOCOL,
} from '../../../protocol/index.ts'
import { askOnce, oneAnswer, type Peer } from './stream.ts'

export interface StatsComponents {
  /** This member's counters for the array-wide metrics; with `origin`, the totals of that member's events held here. */
  counters(origin?: string): MemberCounters
}

export const statsProtocol = oneAnswer<StatsComponents>(
  STATS_PROTOCOL,
  'stats',
  undefined,
  (request, components) => {
    return encodeStats(components.counters(decodeStatsRequest(request)))
  },
)

/** Asks one peer for its counters, or with `origin` for the totals of that member's events it holds. */
export function remoteStats(
  peer: Peer,
  options: { signal: AbortSignal; origin?: string },
): Promise<MemberCounters> {
  return askOnce(peer, STATS_PROTOCOL, encodeStatsRequest(options.origin), decodeStats, options)
}
