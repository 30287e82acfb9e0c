// /chorus/stats/1: a member's counters, for the array-wide metrics.

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
  /** This member's counters for the array-wide metrics. */
  counters(): MemberCounters
}

export const statsProtocol = oneAnswer<StatsComponents>(
  STATS_PROTOCOL,
  'stats',
  undefined,
  (request, components) => {
    decodeStatsRequest(request)
    return encodeStats(components.counters())
  },
)

/** Asks one peer for its counters. */
export function remoteStats(peer: Peer, options: { signal: AbortSignal }): Promise<MemberCounters> {
  return askOnce(peer, STATS_PROTOCOL, encodeStatsRequest(), decodeStats, options)
}
