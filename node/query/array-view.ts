// The whole array as /metrics/cluster shows it, for exporter/cluster.ts:
// every member of the table with the counters of those that answer (one
// fan-out under a short deadline), a dead member's or a departed one's
// event totals from a holder of its events (replicas), and array-wide
// quantiles of `value` per type over the last complete minute (a rollup
// query, dead members' buckets from their holders too).

import type { MemberCounters, RollupRequest } from '../../protocol/index.ts'
import { decodeHealth } from '../health/report.ts'
import type { SliceTarget } from './coordinator.ts'
import { collect } from './fan-out.ts'
import { queryRollups } from './rollups.ts'

/** How long the array view waits for one member's answer, ms. */
export const ARRAY_VIEW_TIMEOUT_MS = 1000

/** A row of the membership table, as far as the view needs it. */
export interface TableRow {
  member: string
  name: string
  state: string
  /** As announced: `ok`, `warning:rule,…`. */
  health: string
}

export interface ArrayViewInit {
  /** The members a coordinator asks, this one included. */
  targets: () => SliceTarget[]
  /** The membership table, this member included. */
  table: () => TableRow[]
  /** Calls `listener` when membership changes; returns an unsubscribe function. */
  onChange: (listener: () => void) => () => void
  clock: () => number
  /** Per-member deadline, ms. Default ARRAY_VIEW_TIMEOUT_MS. */
  timeoutMs?: number
}

export interface ArrayViewRow {
  member: string
  name: string
  state: string
  health: string
  /** The rules that fired for it, as it announces them. */
  fired: string[]
  /**
   * Undefined when the member was not asked or did not answer; with
   * `servedBy`, only `eventTotals` counts: the holder's totals of its events.
   */
  counters?: MemberCounters
  /** The name of the holder that told its event totals (the member itself is dead or gone). */
  servedBy?: string
}

/** A rollup request for the minute starting at `startMs` (a minute edge), one series per type. */
export function minuteByType(startMs: number): RollupRequest {
  return {
    fromMs: startMs,
    toMs: startMs + 60_000,
    resolution: 1,
    stepMs: 60_000,
    types: [],
    minSeverity: 0,
    byType: true,
    bySeverity: false,
  }
}

export function createArrayView(init: ArrayViewInit) {
  const timeoutMs = init.timeoutMs ?? ARRAY_VIEW_TIMEOUT_MS
  return {
    async members(): Promise<ArrayViewRow[]> {
      const table = init.table()
      const listed = new Set(table.map((row) => row.member))
      const answers = await collect(
        init.targets().filter((t) => listed.has(t.peerId)),
        { timeoutMs },
        (target, signal) => target.stats({ signal }),
      )
      const counters = new Map(answers.map((a) => [a.target.peerId, a]))
      return table.map((row) => {
        const health = decodeHealth(row.health)
        const out: ArrayViewRow = {
          member: row.member,
          name: row.name,
          state: row.state,
          health: health.state,
          fired: health.rules,
        }
        const answered = counters.get(row.member)
        if (answered?.answer !== undefined) {
          out.counters = answered.answer
          if (answered.target.servedBy !== undefined) out.servedBy = answered.target.servedBy
        }
        return out
      })
    },
    async valueQuantiles(quantiles: number[]) {
      const now = init.clock()
      const answer = await queryRollups(
        init.targets(),
        {
          // The last complete minute: a stable figure, at most a minute old.
          request: minuteByType(now - (now % 60_000) - 60_000),
          members: [],
          byMember: false,
          quantiles,
          timeoutMs,
        },
        '1m',
      )
      return answer.series.flatMap((s) =>
        s.key.type === undefined || s.buckets[0]?.quantiles === undefined
          ? []
          : [{ type: s.key.type, quantiles: s.buckets[0].quantiles }],
      )
    },
    onChange: init.onChange,
  }
}
