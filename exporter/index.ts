// Prometheus exposition of a member with prom-client: one registry per
// member (never the global one), counters and gauges computed in collect()
// from the member's own readings, histograms fed by its recorder. The entry
// point hands `metrics` to the HTTP app and `recorder` to the member.

import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type OpenMetricsContentType,
  type PrometheusContentType,
  Registry,
} from 'prom-client'
import type { MemberRecorder, MemberStats } from '../node/stats.ts'

/** Distinct `type` label values exported by default; the rest are summed under type="other". */
export const DEFAULT_TYPE_LIMIT = 200

export interface ExporterInit {
  stats: MemberStats
  /** Most distinct `type` label values. Default 200. */
  typeLimit?: number
}

export interface Exposition {
  contentType: string
  body: string
}

export interface Exporter {
  recorder: MemberRecorder
  /** Renders the member's metrics; OpenMetrics when `accept` asks for it. */
  metrics(accept: string | undefined): Promise<Exposition>
}

const DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export function createExporter(init: ExporterInit): Exporter {
  const { stats } = init
  const typeLimit = init.typeLimit ?? DEFAULT_TYPE_LIMIT
  const text = new Registry<PrometheusContentType>()
  const open = new Registry<OpenMetricsContentType>()
  open.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  const registers = [text, open] as unknown as Registry[]

  // Types with a label of their own. Once given one, a type keeps it for the
  // life of the process, so its series never moves into "other" and back
  // (which would look like a counter reset); new types get one while there
  // is room, the busiest first.
  const labelled = new Set<string>()
  const labelOf = (type: string) => (labelled.has(type) ? type : 'other')

  new Counter({
    name: 'chorus_events_total',
    help: 'Events logged by this member, by type and severity (kept in its store, so it survives restarts).',
    labelNames: ['type', 'severity'] as const,
    registers,
    collect() {
      const totals = stats.eventTotals()
      if (labelled.size < typeLimit) {
        const byType = new Map<string, number>()
        for (const t of totals) byType.set(t.type, (byType.get(t.type) ?? 0) + t.count)
        for (const [type] of [...byType].sort((a, b) => b[1] - a[1])) {
          if (labelled.size >= typeLimit) break
          labelled.add(type)
        }
      }
      this.reset()
      for (const t of totals) this.inc({ type: labelOf(t.type), severity: t.severity }, t.count)
    },
  })

  const ingestSeconds = new Histogram({
    name: 'chorus_ingest_duration_seconds',
    help: 'Time to answer a durable ingest request, WAL sync included.',
    buckets: DURATION_BUCKETS_S,
    registers,
  })
  const ingestedEvents = new Counter({
    name: 'chorus_ingested_events_total',
    help: 'Events stored by ingest requests since this process started.',
    registers,
  })
  const querySeconds = new Histogram({
    name: 'chorus_query_duration_seconds',
    help: 'Time to answer a query, as coordinator (for a client) or as member (for a peer).',
    labelNames: ['role', 'kind'] as const,
    buckets: DURATION_BUCKETS_S,
    registers,
  })
  const failures = new Counter({
    name: 'chorus_member_failures_total',
    help: 'Members that did not answer this coordinator in full, by reason.',
    labelNames: ['reason'] as const,
    registers,
  })
  new Counter({
    name: 'chorus_peer_requests_total',
    help: 'Requests peers made of this member, by protocol and outcome.',
    labelNames: ['protocol', 'outcome'] as const,
    registers,
    collect() {
      this.reset()
      for (const r of stats.peerRequests())
        this.inc({ protocol: r.protocol, outcome: r.outcome }, r.count)
    },
  })
  new Counter({
    name: 'chorus_announcements_dropped_total',
    help: 'Membership announcements dropped because they did not decode or spoke for another member.',
    registers,
    collect() {
      this.reset()
      this.inc(stats.announcementsDropped())
    },
  })
  new Gauge({
    name: 'chorus_members',
    help: "Members in this member's table, by state (itself included).",
    labelNames: ['state'] as const,
    registers,
    collect() {
      for (const [state, n] of Object.entries(stats.membersByState())) this.set({ state }, n)
    },
  })
  new Gauge({
    name: 'chorus_store_size_bytes',
    help: "Bytes of this member's store on disk.",
    registers,
    collect() {
      this.set(stats.storeSizeBytes())
    },
  })
  collectDefaultMetrics({ register: text })
  collectDefaultMetrics({ register: open as unknown as Registry })
  // prom-client names three gauges with a `_total` suffix, which the
  // Prometheus naming rules keep for counters (promtool flags them); the
  // same figures remain by type in nodejs_active_handles and friends.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ]) {
    text.removeSingleMetric(name)
    open.removeSingleMetric(name)
  }

  return {
    recorder: {
      ingest(seconds, events) {
        ingestSeconds.observe(seconds)
        ingestedEvents.inc(events)
      },
      query(role, kind, seconds) {
        querySeconds.observe({ role, kind }, seconds)
      },
      memberFailure(status) {
        failures.inc({ reason: status })
      },
    },
    async metrics(accept) {
      const registry = accept?.includes('application/openmetrics-text') === true ? open : text
      return { contentType: registry.contentType, body: await registry.metrics() }
    },
  }
}
