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
import { CPU_MODES, type HostSample } from '../node/collect/host.ts'
import type { MemberRecorder, MemberStats } from '../node/stats.ts'
import { ROCKSDB_BINDING_VERSION, VERSION } from '../node/version.ts'

/** Distinct `type` label values exported by default; the rest are summed under type="other". */
/** How often the event-loop delay is sampled, ms (each sample wakes the member). */
export const EVENT_LOOP_SAMPLE_MS = 100

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

/** Health states as gauge values. */
/** The states a health series set has, in order. */
export const HEALTH_STATES = ['ok', 'warning', 'critical'] as const

const DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * The memory budget's parts (--memory-budget), each beside its limit; the
 * JS heap in use is prom-client's nodejs_heap_size_used_bytes, the whole
 * process its process_resident_memory_bytes.
 */
function registerMemoryGauges(stats: MemberStats, registers: Registry[]): void {
  new Gauge({
    name: 'chorus_memory_budget_bytes',
    help: 'The memory budget this member divides (--memory-budget).',
    registers,
    collect() {
      this.set(stats.memory().budget)
    },
  })
  new Gauge({
    name: 'chorus_store_memory_bytes',
    help: 'Memory RocksDB holds, by part: block_cache (with index and filter blocks), memtables, table_readers (outside the cache). The parts add up.',
    labelNames: ['part'] as const,
    registers,
    collect() {
      const { store } = stats.memory()
      this.set({ part: 'block_cache' }, store.blockCache)
      this.set({ part: 'memtables' }, store.memtables)
      this.set({ part: 'table_readers' }, store.tableReaders)
    },
  })
  new Gauge({
    name: 'chorus_store_memory_limit_bytes',
    help: "RocksDB's share of the budget, by part: block_cache and memtables (which may reach 1.5 times theirs while flushes lag).",
    labelNames: ['part'] as const,
    registers,
    collect() {
      const { storeLimits } = stats.memory()
      this.set({ part: 'block_cache' }, storeLimits.blockCache)
      this.set({ part: 'memtables' }, storeLimits.memtables)
    },
  })
  new Gauge({
    name: 'chorus_heap_limit_bytes',
    help: "V8's heap size limit, as the budget set it (compare nodejs_heap_size_used_bytes).",
    registers,
    collect() {
      this.set(stats.memory().heapLimit)
    },
  })
  new Gauge({
    name: 'chorus_requests_memory_bytes',
    help: 'Heap held by requests in flight: ingest bodies being parsed and their events until synced, pages and exports being rendered.',
    registers,
    collect() {
      this.set(stats.memory().requests.used)
    },
  })
  new Gauge({
    name: 'chorus_requests_memory_limit_bytes',
    help: "The requests' share of the budget; past it ingest answers 503 and queries wait.",
    registers,
    collect() {
      this.set(stats.memory().requests.limit)
    },
  })
}

/**
 * The host collector's latest sample in node_exporter's manner: a size and
 * what is left of it as two series (never one label that mixes a total
 * with its parts, which sum() would add up), CPU as seconds per cpu and
 * mode. None before the first sample, nor with the collector off.
 */
function registerHostMetrics(stats: MemberStats, registers: Registry[]): void {
  const sample = () => stats.hostSample()
  /** An unlabelled gauge of one reading; prom-client would show 0 for it with no sample. */
  const reading = (name: string, help: string, read: (s: HostSample) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const s = sample()
        if (s === undefined) this.remove()
        else this.set(read(s))
      },
    })
  new Counter({
    name: 'chorus_host_cpu_seconds_total',
    help: `CPU time of the server since boot, seconds, per cpu and mode (${CPU_MODES.join(', ')}, as /proc/stat counts them); rate() of a mode is the share of that cpu's time spent in it.`,
    labelNames: ['cpu', 'mode'] as const,
    registers,
    collect() {
      this.reset()
      for (const { cpu, seconds } of sample()?.cpuSeconds ?? [])
        for (const mode of CPU_MODES) this.inc({ cpu, mode }, seconds[mode])
    },
  })
  new Gauge({
    name: 'chorus_host_load_average',
    help: 'Load average of the server over 1, 5 and 15 minutes.',
    labelNames: ['period'] as const,
    registers,
    collect() {
      this.reset()
      const load = sample()?.load
      if (load === undefined) return
      this.set({ period: '1m' }, load[0])
      this.set({ period: '5m' }, load[1])
      this.set({ period: '15m' }, load[2])
    },
  })
  reading(
    'chorus_host_memory_total_bytes',
    'Memory of the server, bytes (MemTotal in /proc/meminfo).',
    (s) => s.memory.totalBytes,
  )
  reading(
    'chorus_host_memory_available_bytes',
    'Memory of the server available to programs without swapping, bytes (MemAvailable); used is total minus available.',
    (s) => s.memory.availableBytes,
  )
  reading(
    'chorus_host_memory_swap_total_bytes',
    'Swap space of the server, bytes (SwapTotal).',
    (s) => s.memory.swapTotalBytes,
  )
  reading(
    'chorus_host_memory_swap_free_bytes',
    'Swap space of the server not in use, bytes (SwapFree); used is total minus free.',
    (s) => s.memory.swapTotalBytes - s.memory.swapUsedBytes,
  )
  reading(
    'chorus_data_dir_filesystem_size_bytes',
    'Size of the filesystem that holds the data dir, bytes.',
    (s) => s.dataDir.sizeBytes,
  )
  reading(
    'chorus_data_dir_filesystem_avail_bytes',
    'Space of the filesystem that holds the data dir available to unprivileged users such as chorus, bytes (blocks reserved for root excluded).',
    (s) => s.dataDir.freeBytes,
  )
  new Counter({
    name: 'chorus_data_dir_device_io_bytes_total',
    help: "Bytes read and written by the data dir's block device since boot (absent on overlay or network filesystems).",
    labelNames: ['direction'] as const,
    registers,
    collect() {
      this.reset()
      const d = sample()?.dataDir
      if (d?.readBytes !== undefined) this.inc({ direction: 'read' }, d.readBytes)
      if (d?.writtenBytes !== undefined) this.inc({ direction: 'written' }, d.writtenBytes)
    },
  })
  new Counter({
    name: 'chorus_host_network_bytes_total',
    help: 'Bytes received and sent by each network interface since boot (loopback excluded).',
    labelNames: ['interface', 'direction'] as const,
    registers,
    collect() {
      this.reset()
      for (const n of sample()?.net ?? []) {
        this.inc({ interface: n.name, direction: 'received' }, n.receivedBytes)
        this.inc({ interface: n.name, direction: 'sent' }, n.sentBytes)
      }
    },
  })
}

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
  const otlpRecords = new Counter({
    name: 'chorus_otlp_log_records_total',
    help: 'OpenTelemetry log records taken in (POST /v1/logs), by outcome: stored, or refused (counted in the partial success answer).',
    labelNames: ['outcome'] as const,
    registers,
  })
  const otlpDropped = new Counter({
    name: 'chorus_otlp_attributes_dropped_total',
    help: 'Attributes of OpenTelemetry log records left out because they did not fit the attribute limits (the records were kept).',
    registers,
  })
  const otlpTruncated = new Counter({
    name: 'chorus_otlp_records_truncated_total',
    help: 'OpenTelemetry log records whose body or an attribute value was cut to the length limit.',
    registers,
  })
  const querySeconds = new Histogram({
    name: 'chorus_query_duration_seconds',
    help: 'Time to answer a query, as coordinator (for a client) or as member (for a peer).',
    labelNames: ['role', 'kind'] as const,
    buckets: DURATION_BUCKETS_S,
    registers,
  })
  const answers = new Counter({
    name: 'chorus_query_answers_total',
    help: "Pages, exports and rollups this member answered in full as coordinator, by kind and whether they were partial (some member's part missing).",
    labelNames: ['kind', 'partial'] as const,
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
  new Gauge({
    name: 'chorus_build_info',
    help: 'The build this member runs: chorus version, Node version and RocksDB binding version (always 1).',
    labelNames: ['version', 'node', 'rocksdb'] as const,
    registers,
    collect() {
      this.set(
        { version: VERSION, node: process.versions.node, rocksdb: ROCKSDB_BINDING_VERSION },
        1,
      )
    },
  })
  new Counter({
    name: 'chorus_notifications_total',
    help: 'Health notifications, by target kind (alertmanager, webhook), alert scope (member, array) and outcome (sent; failed after its retries; dropped from a full queue).',
    labelNames: ['kind', 'scope', 'outcome'] as const,
    registers,
    collect() {
      this.reset()
      for (const n of stats.notifications())
        this.inc({ kind: n.kind, scope: n.scope, outcome: n.outcome }, n.count)
    },
  })
  new Counter({
    name: 'chorus_store_corrupt_buckets_total',
    help: "Rollup buckets of this member's store found undecodable and skipped (at start and in scans) since it started: a bad disk, or buckets an older release wrote.",
    registers,
    collect() {
      this.reset()
      this.inc(stats.corruptBuckets())
    },
  })
  new Counter({
    name: 'chorus_membership_dropped_total',
    help: 'Membership messages and updates refused: undecodable, over the rate limit, not signed by whom they speak for, or from a peer not allowed.',
    registers,
    collect() {
      this.reset()
      this.inc(stats.membershipDropped())
    },
  })
  new Gauge({
    name: 'chorus_mesh_connections',
    help: 'Connections this member holds to other members: to its neighbours (kept; at most six), and all (the others are opened by queries and push/pull and closed after 60 s idle).',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      const c = stats.connections()
      this.set({ kind: 'all' }, c.all)
      this.set({ kind: 'neighbours' }, c.neighbours)
    },
  })
  new Counter({
    name: 'chorus_membership_messages_total',
    help: 'Membership messages (probes, acks, gossip, push/pull) this member sent and received: about two a second each way whatever the size of the array.',
    labelNames: ['direction'] as const,
    registers,
    collect() {
      this.reset()
      const { messages } = stats.membershipTraffic()
      this.inc({ direction: 'sent' }, messages.sent)
      this.inc({ direction: 'received' }, messages.received)
    },
  })
  new Counter({
    name: 'chorus_membership_bytes_total',
    help: 'Bytes of membership messages this member sent and received.',
    labelNames: ['direction'] as const,
    registers,
    collect() {
      this.reset()
      const { bytes } = stats.membershipTraffic()
      this.inc({ direction: 'sent' }, bytes.sent)
      this.inc({ direction: 'received' }, bytes.received)
    },
  })
  new Counter({
    name: 'chorus_member_transitions_total',
    help: "Changes of state of members in this member's table, by from and to state (alive to suspect to dead, and back): a rising alive-to-suspect rate with no member down is flapping.",
    labelNames: ['from', 'to'] as const,
    registers,
    collect() {
      this.reset()
      for (const t of stats.memberTransitions()) this.inc({ from: t.from, to: t.to }, t.count)
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
  new Counter({
    name: 'chorus_retention_deleted_events_total',
    help: 'Events deleted by retention since start, own and held copies, by reason: age (older than --retention) or size (the oldest, while the store is over --retention-size).',
    labelNames: ['reason'] as const,
    registers,
    collect() {
      this.reset()
      const deleted = stats.retentionDeleted?.() ?? { age: 0, size: 0 }
      this.inc({ reason: 'age' }, deleted.age)
      this.inc({ reason: 'size' }, deleted.size)
    },
  })
  new Gauge({
    name: 'chorus_store_scans_open',
    help: "Range scans of this member's store open now (slices being served); each holds an iterator.",
    registers,
    collect() {
      this.set(stats.storeScansOpen())
    },
  })
  registerHostMetrics(stats, registers)
  registerMemoryGauges(stats, registers)
  new Gauge({
    name: 'chorus_member_health',
    help: "This member's health by its rules, one series per state: 1 for the state it is in, 0 for the others.",
    labelNames: ['member', 'state'] as const,
    registers,
    collect() {
      const { name, member } = stats.health()
      this.reset()
      for (const state of HEALTH_STATES) this.set({ member: name, state }, state === member ? 1 : 0)
    },
  })
  new Gauge({
    name: 'chorus_array_health',
    help: "The array's health by its rules, as this member sees it, one series per state: 1 for the state it is in, 0 for the others.",
    labelNames: ['state'] as const,
    registers,
    collect() {
      const { array } = stats.health()
      this.reset()
      for (const state of HEALTH_STATES) this.set({ state }, state === array ? 1 : 0)
    },
  })
  new Gauge({
    name: 'chorus_health_rule_firing',
    help: 'Each health rule in force: 1 while it fires, 0 otherwise; member is this member for its own rules and empty for array rules; state is what the rule makes it when it fires.',
    labelNames: ['member', 'rule', 'state'] as const,
    registers,
    collect() {
      const { name, rules } = stats.health()
      this.reset()
      for (const r of rules)
        this.set(
          { member: r.kind === 'member' ? name : '', rule: r.rule, state: r.state },
          r.firing ? 1 : 0,
        )
    },
  })
  // The event-loop delay is sampled by a timer: prom-client's default of
  // every 10 ms woke an idle member 100 times a second for each registry.
  collectDefaultMetrics({ register: text, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS })
  collectDefaultMetrics({
    register: open as unknown as Registry,
    eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
  })
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
      query(role, kind, seconds, partial) {
        querySeconds.observe({ role, kind }, seconds)
        if (partial !== undefined) answers.inc({ kind, partial: String(partial) })
      },
      memberFailure(status) {
        failures.inc({ reason: status })
      },
      otlp({ stored, refused, droppedAttributes, truncated }) {
        otlpRecords.inc({ outcome: 'stored' }, stored)
        otlpRecords.inc({ outcome: 'refused' }, refused)
        otlpDropped.inc(droppedAttributes)
        otlpTruncated.inc(truncated)
      },
    },
    async metrics(accept) {
      const registry = accept?.includes('application/openmetrics-text') === true ? open : text
      return { contentType: registry.contentType, body: await registry.metrics() }
    },
  }
}
