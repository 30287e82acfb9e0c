// Render time and size of /metrics and /metrics/cluster for an array of 10
// members logging 200 event types in 5 severities each.
// Run: npm run bench:metrics [-- --members 10 --types 200 --renders 1000]
// The exporters render from memory (the cluster's from its background
// snapshot), so this measures exactly what a scrape costs the member.

import { parseArgs } from 'node:util'
import { createClusterExporter } from '../../exporter/cluster.ts'
import { createExporter } from '../../exporter/index.ts'
import { SEVERITIES } from '../../node/event/event.ts'
import { printTable, summary } from './lib.ts'

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '10' },
    types: { type: 'string', default: '200' },
    renders: { type: 'string', default: '1000' },
  },
})
const MEMBERS = Number(values.members)
const TYPES = Number(values.types)
const RENDERS = Number(values.renders)

const types = Array.from({ length: TYPES }, (_, i) => `service${i % 20}.operation${i}`)
const totals = types.flatMap((type, t) =>
  SEVERITIES.map((_, severity) => ({ type, severity, count: 1000 * (t + 1) + severity })),
)

const member = createExporter({
  stats: {
    eventTotals: () =>
      totals.map((t) => ({
        type: t.type,
        severity: SEVERITIES[t.severity] ?? 'info',
        count: t.count,
      })),
    storeSizeBytes: () => 123_456_789,
    storeScansOpen: () => 0,
    corruptBuckets: () => 0,
    memory: () => ({
      budget: 128 * 1024 ** 2,
      store: { blockCache: 1_000_000, memtables: 4_000_000, tableReaders: 10_000 },
      storeLimits: { blockCache: 8 * 1024 ** 2, memtables: 16 * 1024 ** 2 },
      heapLimit: 56 * 1024 ** 2,
      requests: { used: 0, limit: 16 * 1024 ** 2 },
    }),
    membersByState: () => ({ alive: MEMBERS, suspect: 0, dead: 0, left: 0, conflict: 0 }),
    memberTransitions: () => [],
    peerRequests: () => [
      { protocol: 'slice', outcome: 'ok', count: 1000 },
      { protocol: 'rollup', outcome: 'ok', count: 100 },
    ],
    membershipDropped: () => 0,
    connections: () => ({ all: 6, neighbours: 6 }),
    membershipTraffic: () => ({
      messages: { sent: 1000, received: 1000 },
      bytes: { sent: 100_000, received: 100_000 },
    }),
    health: () => ({ name: 'bench', member: 'ok', array: 'ok', rules: [] }),
    notifications: () => [],
    hostSample: () => ({
      at: Date.now(),
      cpu: { all: 0.42, cores: [0.4, 0.44] },
      cpuSeconds: ['0', '1'].map((cpu) => ({
        cpu,
        seconds: {
          user: 5e4,
          nice: 10,
          system: 1e4,
          idle: 2e5,
          iowait: 100,
          irq: 0,
          softirq: 50,
          steal: 0,
        },
      })),
      load: [1, 0.8, 0.5],
      memory: {
        totalBytes: 24e9,
        availableBytes: 20e9,
        usedBytes: 4e9,
        swapTotalBytes: 0,
        swapUsedBytes: 0,
      },
      dataDir: {
        path: '/var/lib/chorus',
        sizeBytes: 250e9,
        freeBytes: 60e9,
        readBytes: 1e9,
        writtenBytes: 2e9,
      },
      net: [{ name: 'eth0', receivedBytes: 1e9, sentBytes: 2e9 }],
      process: {
        rssBytes: 3e8,
        heapUsedBytes: 1e8,
        heapTotalBytes: 2e8,
        eventLoopDelayP99Seconds: 0.02,
        eventLoopDelayMaxSeconds: 0.05,
      },
    }),
  },
})
for (let i = 0; i < 1000; i++) {
  member.recorder.ingest(0.01, 1000)
  member.recorder.query('coordinator', 'events', 0.02)
}

const cluster = createClusterExporter({
  source: {
    members: async () =>
      Array.from({ length: MEMBERS }, (_, m) => ({
        member: `12D3KooWmember${m}`,
        name: `member-${m}`,
        state: 'alive',
        counters: {
          ingestedEvents: 1_000_000,
          queries: 5000,
          storeSizeBytes: 1e9,
          eventTotals: totals,
        },
      })),
    valueQuantiles: async (qs) =>
      types.map((type) => ({
        type,
        quantiles: Object.fromEntries(qs.map((q) => [String(q), q * 100])),
      })),
    onChange: () => () => {},
  },
})
await cluster.refresh()

async function measure(render: () => Promise<{ body: string }>) {
  const latencies: number[] = []
  let bytes = 0
  for (let i = 0; i < RENDERS; i++) {
    const t0 = performance.now()
    const { body } = await render()
    latencies.push(performance.now() - t0)
    bytes = Buffer.byteLength(body)
  }
  return { ...summary(latencies), bytes }
}

const rows = []
for (const [name, render] of [
  ['/metrics', () => member.metrics(undefined)],
  ['/metrics (OpenMetrics)', () => member.metrics('application/openmetrics-text')],
  ['/metrics/cluster', () => cluster.metrics(undefined)],
] as const) {
  const s = await measure(render)
  rows.push({
    route: name,
    renders: s.n,
    'p50 ms': s.p50,
    'p99 ms': s.p99,
    'body KiB': Math.round(s.bytes / 1024),
  })
}
printTable(
  `Metrics rendering (${MEMBERS} members, ${TYPES} types × ${SEVERITIES.length} severities)`,
  rows,
)
