// Durable ingest into one member over HTTP, then paging through what was
// written. Run: npm run bench:ingest [-- --events 400000 --clients 4 --batch 1000]
// Prints acknowledged events/s, request latency percentiles, the member's
// peak RSS, and the rate of 1,000-event pages.

import { parseArgs } from 'node:util'
import { peakRssMiB, printTable, round, sampleEvent, startBenchMember, summary } from './lib.ts'

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '400000' },
    clients: { type: 'string', default: '4' },
    batch: { type: 'string', default: '1000' },
    pages: { type: 'string', default: '300' },
  },
})
const TOTAL = Number(values.events)
const CLIENTS = Number(values.clients)
const BATCH = Number(values.batch)
const PAGES = Number(values.pages)

const member = await startBenchMember('bench-ingest')
try {
  // Pre-encode bodies so the client's own JSON work does not count against the member.
  const bodies = Array.from({ length: 16 }, (_, b) =>
    Array.from({ length: BATCH }, (_, i) => sampleEvent(b * BATCH + i)).join('\n'),
  )
  const bytesPerEvent = Math.round((bodies[0] as string).length / BATCH)
  const batches = Math.ceil(TOTAL / BATCH)
  let next = 0
  let acked = 0
  const latencies: number[] = []
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < batches) {
        const body = bodies[next++ % bodies.length] as string
        const t0 = performance.now()
        const response = await fetch(`${member.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
        const json = (await response.json()) as { ids?: string[] }
        if (response.status !== 201)
          throw new Error(`ingest answered ${response.status}: ${JSON.stringify(json)}`)
        latencies.push(performance.now() - t0)
        acked += json.ids?.length ?? 0
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  const ingest = summary(latencies)
  const ingestRss = peakRssMiB(member.pid)

  // Page through the set, 1,000 events a page, from a fresh cursor.
  const pageLatencies: number[] = []
  let cursor: string | null = null
  let pageEvents = 0
  const scanStart = performance.now()
  for (let i = 0; i < PAGES; i++) {
    const query: string = cursor === null ? 'from=0&limit=1000' : `cursor=${cursor}`
    const t0 = performance.now()
    const page = (await (await fetch(`${member.url}/v1/events?${query}`)).json()) as {
      events: unknown[]
      next: string | null
    }
    pageLatencies.push(performance.now() - t0)
    pageEvents += page.events.length
    cursor = page.next
    if (cursor === null) cursor = null
    if (page.next === null) break
  }
  const scanSeconds = (performance.now() - scanStart) / 1000
  const pages = summary(pageLatencies)

  printTable('Durable ingest (NDJSON over HTTP, WAL synced before each answer)', [
    {
      clients: CLIENTS,
      batch: BATCH,
      'bytes/event': bytesPerEvent,
      events: acked,
      'events/s': Math.round(acked / seconds),
      'p50 ms': ingest.p50,
      'p99 ms': ingest.p99,
      'peak RSS MiB': ingestRss,
    },
  ])
  printTable('Query pages of 1,000 events (one member, forward through the set)', [
    {
      pages: pages.n,
      'pages/s': round(pages.n / scanSeconds),
      'events/s': Math.round(pageEvents / scanSeconds),
      'p50 ms': pages.p50,
      'p99 ms': pages.p99,
      'peak RSS MiB': peakRssMiB(member.pid),
    },
  ])
} finally {
  await member.stop()
}
