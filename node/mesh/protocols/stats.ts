// /chorus/stats/1: a member's counters, for the array-wide metrics.

import {
  decodeStats,
  decodeStatsRequest,
  encodeStats,
  encodeStatsRequest,
  type MemberCounters,
  STATS_PROTOCOL,
} from '../../../protocol/index.ts'
import { askOnce, type Peer, type ServedProtocol } from './stream.ts'

export interface StatsComponents {
  /** This member's counters for the array-wide metrics. */
  counters(): MemberCounters
}

export const statsProtocol: ServedProtocol<StatsComponents> = {
  protocol: STATS_PROTOCOL,
  name: 'stats',
  async answer(bytes, lp, signal, components) {
    decodeStatsRequest(bytes)
    await lp.write(encodeStats(components.counters()), { signal })
  },
}

/** Asks one peer for its counters. */
export function remoteStats(peer: Peer, options: { signal: AbortSignal }): Promise<MemberCounters> {
  return askOnce(peer, STATS_PROTOCOL, encodeStatsRequest(), decodeStats, options)
}
