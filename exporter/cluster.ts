// /metrics/cluster: the whole array from one scrape target. A snapshot of
// every member's counters is refreshed in the background (every
// REFRESH_INTERVAL_MS and at once when membership changes) while someone
// scrapes it, so a scrape only renders memory: fast and bounded whatever the
// array's size. A member nobody scrapes asks nobody anything: its first
// scrape after ACTIVE_WINDOW_MS without one waits for a refresh (bounded by
// the per-member deadline) and wakes the background refresh again. Per member
// only a few series; per event type only array totals, so that no sum()
// counts anything twice. A member that does not answer keeps its last known
// values with up 0, so sums never show a false counter reset; a dead or
// departed member's event totals are also told by a holder of its events
// (replicas), and each of its counts is the larger of the two, so its events
// still count when this member never heard its own figures (it started
// after the death, say).

import {
  Counter,
  Gauge,
  type OpenMetricsContentType,
  type PrometheusContentType,
  Registry,
} from 'prom-client'
import { SEVERITIES } from '../node/event/event.ts'
import type { MemberCounters } from '../protocol/index.ts'
import { DEFAULT_TYPE_LIMIT, type Exposition, HEALTH_STATES } from './index.ts'

/** Quantiles of `value` exported per type. */
const VALUE_QUANTILES = [0.5, 0.9, 0.99]
/** How often the snapshot is refreshed, ms. */
export const REFRESH_INTERVAL_MS = 2000
/** The snapshot is kept fresh for this long after a scrape, ms: longer than any scrape interval in use. */
export const ACTIVE_WINDOW_MS = 5 * 60_000

export interface ArrayRow {
  member: string
  name: string
  state: string
  /** Undefined when the member was not asked or did not answer. */
  counters?: MemberCounters
  /** Set when a holder answered for the member: `counters` holds only its events' totals. */
  servedBy?: string
  /** Its announced health: ok, warning, critical or unknown. */
  health?: string
  /** The rules that fired for it, as it announces them. */
  fired?: string[]
}

export interface ArraySource {
  /** Every member of the table, with the counters of those that answered (bounded in time). */
  members(): Promise<ArrayRow[]>
  /** Array-wide quantiles of `value` per type over the last minute (from the rollups). */
  valueQuantiles(
    quantiles: number[],
  ): Promise<Array<{ type: string; quantiles: Record<string, number | null> }>>
  /** Calls `listener` when membership changes; returns an unsubscribe function. */
  onChange(listener: () => void): () => void
  /** The state each rule in force makes a member when it fires, by rule name. */
  ruleStates?(): ReadonlyMap<string, string>
}

export interface ClusterExporter {
  start(): void
  stop(): void
  /** Refreshes the snapshot now (and resolves when done). */
  refresh(): Promise<void>
  metrics(accept: string | undefined): Promise<Exposition>
}

interface Known {
  name: string
  up: boolean
  health?: string
  fired?: string[]
  /** As the member itself last told them. */
  counters?: MemberCounters
  /** Its events' totals as a holder told them, and that holder's name. */
  held?: { by: string; totals: MemberCounters['eventTotals'] }
}

/** The member's event totals: its own last known, or a holder's count where that is larger. */
function totalsOf(k: Known): MemberCounters['eventTotals'] {
  const own = k.counters?.eventTotals ?? []
  if (k.held === undefined) return own
  const merged = new Map<string, { type: string; severity: number; count: number }>()
  for (const t of [...own, ...k.held.totals]) {
    const key = `${t.type}\u0000${t.severity}`
    const seen = merged.get(key)
    if (seen === undefined || seen.count < t.count) merged.set(key, t)
  }
  return [...merged.values()]
}

export function createClusterExporter(init: {
  source: ArraySource
  typeLimit?: number
  /** Background refresh interval while scraped, ms. Default REFRESH_INTERVAL_MS. */
  intervalMs?: number
  /** How long after a scrape the snapshot is kept fresh, ms. Default ACTIVE_WINDOW_MS. */
  activeWindowMs?: number
}): ClusterExporter {
  const { source } = init
  const typeLimit = init.typeLimit ?? DEFAULT_TYPE_LIMIT
  const known = new Map<string, Known>()
  let expected = 0
  let answered = 0
  let refreshedAt = 0
  let valueQuantiles: Array<{ type: string; quantiles: Record<string, number | null> }> = []
  const labelled = new Set<string>()

  const text = new Registry<PrometheusContentType>()
  const open = new Registry<OpenMetricsContentType>()
  open.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  const registers = [text, open] as unknown as Registry[]
  const each = (fn: (name: string, k: Known, c: MemberCounters) => void) => {
    for (const k of known.values()) if (k.counters !== undefined) fn(k.name, k, k.counters)
  }
  /** Each member's event totals, those that only a holder told included. */
  const eachTotals = (fn: (name: string, totals: MemberCounters['eventTotals']) => void) => {
    for (const k of known.values())
      if (k.counters !== undefined || k.held !== undefined) fn(k.name, totalsOf(k))
  }

  new Gauge({
    name: 'chorus_member_up',
    help: 'Whether the member answered the last refresh of this snapshot (1) or not (0).',
    labelNames: ['member'] as const,
    registers,
    collect() {
      this.reset()
      for (const k of known.values()) this.set({ member: k.name }, k.up ? 1 : 0)
    },
  })
  new Gauge({
    name: 'chorus_member_health',
    help: "Each member's health as it announces it, one series per state: 1 for the state it is in, 0 for the others (none while unknown).",
    labelNames: ['member', 'state'] as const,
    registers,
    collect() {
      this.reset()
      for (const k of known.values()) {
        if (!(HEALTH_STATES as readonly string[]).includes(k.health ?? '')) continue
        for (const state of HEALTH_STATES)
          this.set({ member: k.name, state }, state === k.health ? 1 : 0)
      }
    },
  })
  new Gauge({
    name: 'chorus_health_rule_firing',
    help: 'The member rules that fire for each member, as it announces them (1; a rule that does not fire has no series); state is what the rule makes it.',
    labelNames: ['member', 'rule', 'state'] as const,
    registers,
    collect() {
      this.reset()
      const states = source.ruleStates?.()
      for (const k of known.values())
        for (const rule of k.fired ?? [])
          this.set({ member: k.name, rule, state: states?.get(rule) ?? k.health ?? 'unknown' }, 1)
    },
  })
  new Counter({
    name: 'chorus_member_events_total',
    help: 'Events logged by each member, by severity (last known values for members that do not answer).',
    labelNames: ['member', 'severity'] as const,
    registers,
    collect() {
      this.reset()
      eachTotals((name, totals) => {
        const bySeverity = new Map<number, number>()
        for (const t of totals)
          bySeverity.set(t.severity, (bySeverity.get(t.severity) ?? 0) + t.count)
        for (const [severity, count] of bySeverity)
          this.inc({ member: name, severity: SEVERITIES[severity] ?? 'info' }, count)
      })
    },
  })
  new Gauge({
    name: 'chorus_member_served_by',
    help: 'Set to 1 for a member that is dead or gone whose event totals a holder of its events told in the last refresh (label holder).',
    labelNames: ['member', 'holder'] as const,
    registers,
    collect() {
      this.reset()
      for (const k of known.values())
        if (!k.up && k.held !== undefined) this.set({ member: k.name, holder: k.held.by }, 1)
    },
  })
  new Counter({
    name: 'chorus_member_ingested_events_total',
    help: 'Events each member stored through ingest since it started.',
    labelNames: ['member'] as const,
    registers,
    collect() {
      this.reset()
      each((name, _k, c) => this.inc({ member: name }, c.ingestedEvents))
    },
  })
  new Counter({
    name: 'chorus_member_queries_total',
    help: 'Queries each member coordinated since it started.',
    labelNames: ['member'] as const,
    registers,
    collect() {
      this.reset()
      each((name, _k, c) => this.inc({ member: name }, c.queries))
    },
  })
  new Gauge({
    name: 'chorus_member_store_size_bytes',
    help: "Bytes of each member's store on disk (last known).",
    labelNames: ['member'] as const,
    registers,
    collect() {
      this.reset()
      each((name, _k, c) => this.set({ member: name }, c.storeSizeBytes))
    },
  })
  new Counter({
    name: 'chorus_array_events_total',
    help: 'Events logged by the whole array, by type and severity (members that do not answer count with their last known values).',
    labelNames: ['type', 'severity'] as const,
    registers,
    collect() {
      const sums = new Map<string, Map<number, number>>()
      eachTotals((_name, totals) => {
        for (const t of totals) {
          let bySeverity = sums.get(t.type)
          if (bySeverity === undefined) {
            bySeverity = new Map()
            sums.set(t.type, bySeverity)
          }
          bySeverity.set(t.severity, (bySeverity.get(t.severity) ?? 0) + t.count)
        }
      })
      if (labelled.size < typeLimit) {
        const byType = [...sums].map(
          ([type, s]) => [type, [...s.values()].reduce((a, b) => a + b, 0)] as const,
        )
        for (const [type] of byType.sort((a, b) => b[1] - a[1])) {
          if (labelled.size >= typeLimit) break
          labelled.add(type)
        }
      }
      this.reset()
      for (const [type, bySeverity] of sums) {
        for (const [severity, count] of bySeverity) {
          this.inc(
            { type: labelled.has(type) ? type : 'other', severity: SEVERITIES[severity] ?? 'info' },
            count,
          )
        }
      }
    },
  })
  new Gauge({
    name: 'chorus_array_event_value',
    help: "Quantiles of events' value over the last complete minute across the array, by type (DDSketch, 1% relative accuracy).",
    // Not `quantile`: Prometheus keeps that label for summaries.
    labelNames: ['type', 'q'] as const,
    registers,
    collect() {
      this.reset()
      for (const { type, quantiles } of valueQuantiles) {
        if (!labelled.has(type)) continue
        for (const [quantile, value] of Object.entries(quantiles)) {
          if (value !== null) this.set({ type, q: quantile }, value)
        }
      }
    },
  })
  new Gauge({
    name: 'chorus_array_members_expected',
    help: 'Members in the table that have not left.',
    registers,
    collect() {
      this.set(expected)
    },
  })
  new Gauge({
    name: 'chorus_array_members_answered',
    help: 'Members that answered the last refresh of this snapshot.',
    registers,
    collect() {
      this.set(answered)
    },
  })
  new Gauge({
    name: 'chorus_array_snapshot_age_seconds',
    help: 'Age of the snapshot this scrape renders.',
    registers,
    collect() {
      this.set(refreshedAt === 0 ? 0 : (Date.now() - refreshedAt) / 1000)
    },
  })

  let refreshing: Promise<void> | undefined
  let again = false
  const refresh = (): Promise<void> => {
    if (refreshing !== undefined) {
      again = true
      return refreshing
    }
    refreshing = (async () => {
      try {
        do {
          again = false
          const [rows, quantiles] = await Promise.all([
            source.members(),
            source.valueQuantiles(VALUE_QUANTILES).catch(() => valueQuantiles),
          ])
          valueQuantiles = quantiles
          const present = new Set(rows.map((r) => r.member))
          // Forgotten members leave the snapshot; everyone else keeps their last values.
          for (const member of known.keys()) if (!present.has(member)) known.delete(member)
          for (const row of rows) {
            const previous = known.get(row.member)
            const own = row.servedBy === undefined ? row.counters : undefined
            const k: Known = { name: row.name, up: own !== undefined }
            if (row.health !== undefined) k.health = row.health
            if (row.fired !== undefined) k.fired = row.fired
            const counters = own ?? previous?.counters
            if (counters !== undefined) k.counters = counters
            if (row.servedBy !== undefined && row.counters !== undefined)
              k.held = { by: row.servedBy, totals: row.counters.eventTotals }
            else if (own === undefined && previous?.held !== undefined) k.held = previous.held
            known.set(row.member, k)
          }
          expected = rows.filter((r) => r.state !== 'left').length
          answered = rows.filter((r) => r.counters !== undefined && r.servedBy === undefined).length
          refreshedAt = Date.now()
        } while (again)
      } finally {
        refreshing = undefined
      }
    })()
    return refreshing
  }

  let timer: NodeJS.Timeout | undefined
  let unsubscribe: (() => void) | undefined
  let scrapedAt = Number.NEGATIVE_INFINITY
  const intervalMs = init.intervalMs ?? REFRESH_INTERVAL_MS
  const scraped = () => Date.now() - scrapedAt < (init.activeWindowMs ?? ACTIVE_WINDOW_MS)
  const refreshWhileScraped = () => {
    if (scraped()) void refresh().catch(() => {})
  }
  return {
    start() {
      timer = setInterval(refreshWhileScraped, intervalMs)
      timer.unref()
      unsubscribe = source.onChange(refreshWhileScraped)
    },
    stop() {
      clearInterval(timer)
      unsubscribe?.()
    },
    refresh,
    async metrics(accept) {
      const wasScraped = scraped()
      scrapedAt = Date.now()
      // Not kept fresh until now: this scrape waits for one refresh.
      if (!wasScraped || Date.now() - refreshedAt > 2 * intervalMs) await refresh().catch(() => {})
      const registry = accept?.includes('application/openmetrics-text') === true ? open : text
      return { contentType: registry.contentType, body: await registry.metrics() }
    },
  }
}
