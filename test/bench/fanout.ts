// Fan-out queries through one coordinator, members as separate processes on
// loopback. Run: npm run bench:fanout [-- --sizes 1,3,5,10 --events 100000 --queries 200]
//
// The array grows to each size in turn (every member holding --events
// events); at each size it prints p50/p95/p99 of 100- and 1,000-event pages
// from a cold and from a mid-set cursor, the rate of a full forward scan,
// per-member RSS, and how long a new member took to appear in every table.
// At the largest size it also freezes one member (SIGSTOP) to measure p99
// against the 2 s deadline, and kills one (SIGKILL) to time its removal
// from fan-out. Figures also go to bench-results/fanout-<time>.json.

import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import {
  type BenchMember,
  printTable,
  round,
  rssMiB,
  sampleEvent,
  startBenchMember,
  summary,
  tableOf,
  timeUntil,
} from './lib.ts'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,3,5,10' },
    events: { type: 'string', default: '100000' },
    queries: { type: 'string', default: '200' },
  },
})
const SIZES = values.sizes.split(',').map(Number)
const EVENTS = Number(values.events)
const QUERIES = Number(values.queries)
const DEADLINE_MS = 2000

interface Page {
  events: Array<{ id: string }>
  next: string | null
  partial: boolean
  members: Array<{ name: string; status: string }>
}

async function get(url: string): Promise<Page> {
  const response = await fetch(url)
  if (response.status !== 200)
    throw new Error(`${url} answered ${response.status}: ${await response.text()}`)
  return (await response.json()) as Page
}

async function preload(m: BenchMember, count: number): Promise<void> {
  const batch = 5000
  const body = Array.from({ length: batch }, (_, i) => sampleEvent(i)).join('\n')
  let sent = 0
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      while (sent < count) {
        sent += batch
        const r = await fetch(`${m.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
        if (r.status !== 201) throw new Error(`preload answered ${r.status}`)
        await r.arrayBuffer()
      }
    }),
  )
}

async function timeQueries(url: string, count: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    const page = await get(url)
    out.push(performance.now() - t0)
    if (page.partial)
      throw new Error(`partial answer during the benchmark: ${JSON.stringify(page.members)}`)
  }
  return out
}

const array: BenchMember[] = []
const results: Array<Record<string, number | string>> = []
let frozen: Record<string, number | string> | undefined
let killed: Record<string, number | string> | undefined
try {
  for (const size of SIZES) {
    let joinMs = Number.NaN
    while (array.length < size) {
      const name = `fan-${array.length}`
      const join = array[0] === undefined ? [] : ['--join', (array[0] as BenchMember).p2p]
      const member = await startBenchMember(name, join)
      array.push(member)
      const expected = array.length
      joinMs = await timeUntil(async () => {
        for (const m of array)
          if ((await tableOf(m)).filter((e) => e.state === 'alive').length !== expected)
            return false
        return true
      }, 30_000)
      await preload(member, EVENTS)
    }
    const coordinator = array[0] as BenchMember
    const base = `${coordinator.url}/v1/events?from=0`
    // Mid-set cursors: the next page of a set that starts at the middle event.
    const total = size * EVENTS
    const midId = (await get(`${base}&limit=${Math.min(10_000, Math.floor(total / 2))}`)).events.at(
      -1,
    )?.id
    const midCursor = async (limit: number) =>
      (await get(`${base}&limit=${limit}&after=${midId}`)).next as string
    const cold100 = summary(await timeQueries(`${base}&limit=100`, QUERIES))
    const mid100 = summary(
      await timeQueries(`${coordinator.url}/v1/events?cursor=${await midCursor(100)}`, QUERIES),
    )
    const cold1000 = summary(await timeQueries(`${base}&limit=1000`, QUERIES))
    const mid1000 = summary(
      await timeQueries(`${coordinator.url}/v1/events?cursor=${await midCursor(1000)}`, QUERIES),
    )

    // Full forward scan through the coordinator.
    const scanStart = performance.now()
    let scanned = 0
    let cursor: string | null = null
    do {
      const page: Page = await get(
        cursor === null ? `${base}&limit=10000` : `${coordinator.url}/v1/events?cursor=${cursor}`,
      )
      scanned += page.events.length
      cursor = page.next
    } while (cursor !== null)
    const scanSeconds = (performance.now() - scanStart) / 1000
    const rss = array.map((m) => rssMiB(m.pid))
    results.push({
      N: size,
      'join ms': round(joinMs, 0),
      '100 cold p50/p95/p99': `${cold100.p50}/${cold100.p95}/${cold100.p99}`,
      '100 mid p50/p95/p99': `${mid100.p50}/${mid100.p95}/${mid100.p99}`,
      '1000 cold p50/p95/p99': `${cold1000.p50}/${cold1000.p95}/${cold1000.p99}`,
      '1000 mid p50/p95/p99': `${mid1000.p50}/${mid1000.p95}/${mid1000.p99}`,
      'scan events/s': Math.round(scanned / scanSeconds),
      scanned,
      'RSS MiB min/max': `${Math.min(...rss)}/${Math.max(...rss)}`,
    })
    process.stdout.write(`N=${size} done\n`)
  }

  const size = array.length
  if (size >= 3) {
    // One member frozen: every answer should come by the deadline.
    const victim = array[size - 1] as BenchMember
    const coordinator = array[0] as BenchMember
    victim.child.kill('SIGSTOP')
    const latencies: number[] = []
    for (let i = 0; i < Math.min(QUERIES, 50); i++) {
      const t0 = performance.now()
      await (await fetch(`${coordinator.url}/v1/events?from=0&limit=100`)).arrayBuffer()
      latencies.push(performance.now() - t0)
    }
    victim.child.kill('SIGCONT')
    const s = summary(latencies)
    frozen = {
      N: size,
      queries: s.n,
      'p50 ms': s.p50,
      'p99 ms': s.p99,
      'deadline ms': DEADLINE_MS,
      'p99 - deadline ms': round(s.p99 - DEADLINE_MS),
    }
    await timeUntil(
      async () => (await tableOf(coordinator)).every((e) => e.state === 'alive'),
      60_000,
    )

    // One member killed: how long until the coordinator stops asking it.
    const doomed = array[size - 1] as BenchMember
    doomed.child.kill('SIGKILL')
    const removedMs = await timeUntil(async () => {
      const page = await get(`${coordinator.url}/v1/events?from=0&limit=1&timeout=500ms`).catch(
        () => undefined,
      )
      return page?.members.find((m) => m.name === doomed.name)?.status === 'dead'
    }, 60_000)
    killed = { N: size, 'SIGKILL → dead (not asked) ms': round(removedMs, 0) }
  }

  printTable(
    `Fan-out queries through one coordinator (${EVENTS} events per member, ${QUERIES} queries each, latencies in ms)`,
    results,
  )
  if (frozen)
    printTable('One member frozen with SIGSTOP (100-event pages, default 2 s deadline)', [frozen])
  if (killed) printTable('One member killed with SIGKILL', [killed])
  mkdirSync('bench-results', { recursive: true })
  const file = `bench-results/fanout-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  writeFileSync(
    file,
    JSON.stringify(
      {
        cores: cpus().length,
        node: process.version,
        eventsPerMember: EVENTS,
        queries: QUERIES,
        results,
        frozen,
        killed,
      },
      null,
      2,
    ),
  )
  process.stdout.write(`\nfigures written to ${file}\n`)
} finally {
  await Promise.all(array.map((m) => m.stop()))
}
