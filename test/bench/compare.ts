// chorus beside the tools a user would pick instead, on this machine, in one
// run: HashiCorp Serf (Debian's `serf`) for membership and fan-out queries,
// and the RocksDB binding itself as the floor for ingest and scans.
// Run: npm run bench [-- --sizes 5,10 --queries 100 --scan-events 1000000
//                        --parts serf,ingest,scan,stability,idle --stability-minutes 10
//                        --idle-sizes 5,10 --idle-settle 30 --idle-seconds 20]
// and, named in --parts only (its default sizes take long):
//      npm run bench -- --parts scale [--scale-sizes 10,50 --scale-settle 30
//                        --scale-seconds 20 --scale-queries 100]
// --idle-settle and --scale-settle: seconds left idle before measuring (a
// member's first half minute includes V8's post-start garbage collections).
// scale: for each N, N members converge and one more joins the first
// (join→all: until every table lists it alive); then, at N + 1: each
// process's idle CPU and RSS, membership messages and bytes a second per
// member (sent + received, median), false suspicions (alive→suspect and
// →dead changes in all tables meanwhile), pages from random members (run
// `chorus`) and through one coordinator with fanout=flat and =tree (its CPU
// per page; "not supported" when a member answers 400), and SIGKILL of one
// member (kill→dead in every other table). The same for N + 1 Serf agents
// (`serf query` to random agents, stopped once all have answered; failed),
// and a chorus/serf row of ratios (pages: chorus p99 / Serf p95).
// memory (in --parts, with 1,000,000 --export-events by default): each
// member's resident memory (min/median/max over members of each one's peak,
// sampled every 200 ms) idle at N = 10, then over 5 members under 4-client
// ingest, while one coordinates 10,000-event pages and a whole export, and
// the export's events/s beside the raw iterator scan and the one-process
// decode + render floor. memory-run (--memory-minutes 10): 5 members under
// steady ingest and queries, RSS per member at start, at minute 2 and at
// the end.
// replicas (in --parts; --replica-events 200000 --replica-pages 200
// --replica-acks 200): 5 members with --replicas 1 and then 2: ingest
// events/s and the ratio, holder lag under that load, durability=replicated
// against local acknowledgements, store bytes, and 100-event pages while
// one member is frozen with SIGSTOP (test/bench/replicas.ts).
// otlp (in --parts; --otlp-events 60000): the same records as NDJSON and
// as gzip-encoded OTLP protobuf on one member, alternating rounds: events/s
// of each and the ratio (test/bench/otlp.ts).
// backup (in --parts; --backup-events 1000000): one member takes the
// events, `chorus backup` copies it: seconds and events/s, against a raw
// scan of the same store, and a member started from the copy until ready
// (test/bench/backup.ts).
// dashboard (in --parts; --dashboard-members 10 --dashboard-loads 20): the
// Overview's first meaningful paint in Debian's chromium, a fresh page per
// load, and the bytes of the page's own files (test/bench/dashboard.ts).
// Parts whose tool is missing are skipped with a line saying so. Figures go
// to stdout as tables and to bench-results/compare-<time>.json.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { RocksLevel } from '@nxtedition/rocksdb'
import {
  type ChorusEvent,
  createEventInputSchema,
  DEFAULT_EVENT_LIMITS,
  type EventInput,
} from '../../node/event/event.ts'
import { ID_BYTES, memberTag, writeIdBytes } from '../../node/event/id.ts'
import { decodeEventValue, encodeEventValue, toEvent } from '../../node/store/codec.ts'
import { EVENT, typeIndexKey, typePrefix } from '../../node/store/keys.ts'
import { backupBench } from './backup.ts'
import { dashboardBench } from './dashboard.ts'
import {
  anonRssMiB,
  type BenchMember,
  peakRssMiB,
  printTable,
  round,
  rssMiB,
  sampleEvent,
  sampleRss,
  sampleSum,
  samples,
  scrape,
  sleep,
  spread,
  startBenchMember,
  summary,
  tableOf,
  timeUntil,
} from './lib.ts'
import { otlpBench } from './otlp.ts'
import { replicasBench } from './replicas.ts'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '5,10' },
    queries: { type: 'string', default: '100' },
    'serf-timeout': { type: 'string', default: '1s' },
    'ingest-events': { type: 'string', default: '200000' },
    'scan-events': { type: 'string', default: '1000000' },
    parts: { type: 'string', default: 'serf,ingest,scan,stability,idle' },
    'stability-minutes': { type: 'string', default: '10' },
    'idle-sizes': { type: 'string', default: '5,10' },
    'idle-settle': { type: 'string', default: '30' },
    'idle-seconds': { type: 'string', default: '20' },
    'scale-sizes': { type: 'string', default: '10,50' },
    'scale-settle': { type: 'string', default: '30' },
    'scale-seconds': { type: 'string', default: '20' },
    'scale-queries': { type: 'string', default: '100' },
    'export-events': { type: 'string', default: '1000000' },
    'memory-minutes': { type: 'string', default: '10' },
    'replica-events': { type: 'string', default: '200000' },
    'replica-pages': { type: 'string', default: '200' },
    'replica-acks': { type: 'string', default: '200' },
    'otlp-events': { type: 'string', default: '60000' },
    'backup-events': { type: 'string', default: '1000000' },
    'dashboard-members': { type: 'string', default: '10' },
    'dashboard-loads': { type: 'string', default: '20' },
  },
})
const execFileAsync = promisify(execFile)
const SIZES = values.sizes.split(',').map(Number)
const QUERIES = Number(values.queries)
const SERF_TIMEOUT = values['serf-timeout']
const INGEST_EVENTS = Number(values['ingest-events'])
const SCAN_EVENTS = Number(values['scan-events'])
const PARTS = new Set(values.parts.split(','))
const IDLE_SIZES = values['idle-sizes'].split(',').map(Number)
const IDLE_SETTLE = Number(values['idle-settle'])
const SCALE_SIZES = values['scale-sizes'].split(',').map(Number)
const SCALE_SETTLE = Number(values['scale-settle'])
const SCALE_SECONDS = Number(values['scale-seconds'])
const SCALE_QUERIES = Number(values['scale-queries'])
if (PARTS.has('scale') && SCALE_SIZES.some((n) => !(n >= 2)))
  throw new Error('--scale-sizes: each N must be 2 or more (one coordinator, one victim)')
const results: Record<string, unknown> = {
  cores: cpus().length,
  node: process.version,
  at: new Date().toISOString(),
}

function hasSerf(): boolean {
  try {
    execFileSync('serf', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// ---------- Serf ----------

interface SerfAgent {
  name: string
  rpc: string
  child: ChildProcess
}

let nextPort = 17946
async function serfMembers(rpc: string): Promise<Array<{ name: string; status: string }>> {
  try {
    const { stdout } = await execFileAsync(
      'serf',
      ['members', `-rpc-addr=${rpc}`, '-format=json'],
      { encoding: 'utf8', timeout: 5000 },
    )
    return (JSON.parse(stdout) as { members: Array<{ name: string; status: string }> }).members
  } catch {
    return []
  }
}

/** A membership table as every part reads it: Serf's `status` as `state`. */
type Table = Array<{ name: string; state: string }>

async function serfTable(a: SerfAgent): Promise<Table> {
  return (await serfMembers(a.rpc)).map((m) => ({ name: m.name, state: m.status }))
}

/** Time until every one of `of`'s tables (all read at once) `holds`, or NaN. */
function untilEveryTable<T>(
  of: T[],
  read: (x: T) => Promise<Table>,
  holds: (table: Table) => boolean,
  timeoutMs: number,
): Promise<number> {
  return timeUntil(async () => (await Promise.all(of.map(read))).every(holds), timeoutMs)
}

const allAlive = (n: number) => (table: Table) =>
  table.filter((e) => e.state === 'alive').length === n
const lists = (name: string, state: string) => (table: Table) =>
  table.some((e) => e.name === name && e.state === state)

async function startSerf(name: string, join?: string): Promise<SerfAgent & { bind: string }> {
  const port = nextPort++
  const rpcPort = nextPort++
  const bind = `127.0.0.1:${port}`
  const rpc = `127.0.0.1:${rpcPort}`
  const args = [
    'agent',
    `-node=${name}`,
    `-bind=${bind}`,
    `-advertise=${bind}`,
    `-rpc-addr=${rpc}`,
    '-event-handler=query:ping=echo pong',
  ]
  if (join !== undefined) args.push(`-join=${join}`)
  const child = spawn('serf', args, { stdio: 'ignore' })
  await timeUntil(async () => (await serfMembers(rpc)).length > 0, 15_000)
  return { name, rpc, child, bind }
}

/**
 * Starts `n` Serf agents named `prefix0…`, each joining the first, into
 * `agents` (so the caller stops them whatever happens); returns the time
 * from the last one started until every agent lists all of them alive.
 */
async function startSerfConverged(
  agents: Array<SerfAgent & { bind: string }>,
  n: number,
  prefix: string,
  timeoutMs: number,
): Promise<number> {
  for (let i = 0; i < n; i++) agents.push(await startSerf(`${prefix}${i}`, agents[0]?.bind))
  return untilEveryTable(agents, serfTable, allAlive(n), timeoutMs)
}

/**
 * One `serf query` until its timeout, or, with `stopWhenAll`, until all `n`
 * have answered (the agents still hold the query open until the timeout).
 */
async function serfQuery(
  rpc: string,
  n: number,
  stopWhenAll = false,
): Promise<{ allMs: number; responses: number; commandMs: number }> {
  const t0 = performance.now()
  return new Promise((resolve) => {
    const child = spawn('serf', ['query', `-rpc-addr=${rpc}`, `-timeout=${SERF_TIMEOUT}`, 'ping'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    let responses = 0
    let allMs = Number.NaN
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      responses = (out.match(/Response from/g) ?? []).length
      if (responses >= n && Number.isNaN(allMs)) {
        allMs = performance.now() - t0
        if (stopWhenAll) child.kill('SIGTERM')
      }
    })
    child.once('exit', () => resolve({ allMs, responses, commandMs: performance.now() - t0 }))
  })
}

/** `count` queries, each through a random one of `rpcs`, each waiting for all `n` answers. */
async function serfQueries(rpcs: string[], n: number, count: number, stopWhenAll = false) {
  const queries = []
  for (let i = 0; i < count; i++)
    queries.push(
      await serfQuery(rpcs[Math.floor(Math.random() * rpcs.length)] as string, n, stopWhenAll),
    )
  return {
    all: summary(queries.map((q) => q.allMs).filter((x) => !Number.isNaN(x))),
    complete: queries.filter((q) => q.responses >= n).length,
    total: count,
    commandP50: summary(queries.map((q) => q.commandMs)).p50,
  }
}

async function benchSerf(n: number) {
  const agents: Array<SerfAgent & { bind: string }> = []
  try {
    // Every agent asked at once, as every chorus member is below.
    const converge = await startSerfConverged(agents, n, 'serf', 60_000)
    const rss = agents.map((a) => rssMiB(a.child.pid as number))
    const { all, complete, commandP50 } = await serfQueries(
      [(agents[0] as SerfAgent).rpc],
      n,
      QUERIES,
    )
    const victim = agents[n - 1] as SerfAgent
    victim.child.kill('SIGKILL')
    const failed = await timeUntil(
      async () =>
        (await serfMembers((agents[0] as SerfAgent).rpc)).some(
          (m) => m.name === victim.name && m.status === 'failed',
        ),
      60_000,
    )
    return {
      converge,
      failed,
      rss,
      all,
      complete,
      commandP50,
    }
  } finally {
    for (const a of agents) a.child.kill('SIGKILL')
  }
}

// ---------- chorus ----------

async function benchChorus(n: number) {
  const members: BenchMember[] = []
  try {
    for (let i = 0; i < n; i++) {
      members.push(
        await startBenchMember(
          `chorus${i}`,
          i === 0 ? [] : ['--join', (members[0] as BenchMember).p2p],
        ),
      )
    }
    const converge = await timeUntil(
      async () =>
        (await Promise.all(members.map(tableOf))).every(
          (table) => table.filter((e) => e.state === 'alive').length === n,
        ),
      60_000,
    )
    for (const m of members) {
      await fetch(`${m.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: Array.from({ length: 200 }, (_, i) => sampleEvent(i)).join('\n'),
      })
    }
    const rss = members.map((m) => rssMiB(m.pid))
    const latencies: number[] = []
    let complete = 0
    for (let i = 0; i < QUERIES; i++) {
      const t0 = performance.now()
      const page = (await (
        await fetch(`${(members[0] as BenchMember).url}/v1/events?from=0&limit=100`)
      ).json()) as { partial: boolean; members: unknown[] }
      latencies.push(performance.now() - t0)
      if (!page.partial && page.members.length === n) complete++
    }
    const victim = members[n - 1] as BenchMember
    victim.child.kill('SIGKILL')
    const dead = await timeUntil(
      async () =>
        (await tableOf(members[0] as BenchMember)).some(
          (e) => e.name === victim.name && e.state === 'dead',
        ),
      60_000,
    )
    return { converge, dead, rss, queries: summary(latencies), complete }
  } finally {
    await Promise.all(members.map((m) => m.stop()))
  }
}

// ---------- throughput against the raw binding ----------

const schema = createEventInputSchema(DEFAULT_EVENT_LIMITS)
const sampleInputs = Array.from(
  { length: 1000 },
  (_, i) => schema.parse(JSON.parse(sampleEvent(i))) as EventInput,
)

async function rawIngest(total: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'chorus-raw-'))
  const db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open({ createIfMissing: true })
  const tag = memberTag('raw')
  const prefixes = new Map<string, Buffer>()
  const id = new Uint8Array(ID_BYTES)
  let seq = 0
  const t0 = performance.now()
  for (let written = 0; written < total; written += 1000) {
    const batch = db.batch()
    const ts = Date.now()
    for (const event of sampleInputs) {
      seq++
      writeIdBytes(id, 0, ts, tag, seq)
      const key = Buffer.allocUnsafe(1 + ID_BYTES)
      key[0] = EVENT
      key.set(id, 1)
      batch.put(key, encodeEventValue(event))
      let prefix = prefixes.get(event.type)
      if (prefix === undefined) {
        prefix = typePrefix(event.type)
        prefixes.set(event.type, prefix)
      }
      batch.put(typeIndexKey(prefix, id), Buffer.alloc(0))
    }
    await batch.write({ sync: true })
  }
  const rate = total / ((performance.now() - t0) / 1000)
  // The same store scanned raw: the floor of a scan.
  const s0 = performance.now()
  let scanned = 0
  const it = db.iterator({ gte: Buffer.of(EVENT), lt: Buffer.of(EVENT + 1) })
  for (;;) {
    const rows = await it.nextv(1000)
    if (rows.length === 0) break
    scanned += rows.length
  }
  await it.close()
  const scanRate = scanned / ((performance.now() - s0) / 1000)
  // What any JSON answer over this store costs before a network or a merge:
  // one process decoding each value into an event, rendering pages of
  // 10,000 as JSON, and parsing them back as a client would.
  const j0 = performance.now()
  let rendered = 0
  const json = db.iterator({ gte: Buffer.of(EVENT), lt: Buffer.of(EVENT + 1) })
  let page: ChorusEvent[] = []
  for (;;) {
    const rows = await json.nextv(1000)
    for (const [key, value] of rows)
      page.push(toEvent(key.subarray(1), decodeEventValue(value), 'raw', 'raw'))
    if (page.length >= 10_000 || (rows.length === 0 && page.length > 0)) {
      rendered += (JSON.parse(JSON.stringify({ events: page })) as { events: unknown[] }).events
        .length
      page = []
    }
    if (rows.length === 0) break
  }
  await json.close()
  const jsonRate = rendered / ((performance.now() - j0) / 1000)
  // An export's floor: decode each value and render it as an NDJSON line, in
  // chunks of 64 KiB, as one process would write them (nothing parses them).
  const r0 = performance.now()
  let lines = 0
  let chunk = ''
  let bytes = 0
  const ndjson = db.iterator({ gte: Buffer.of(EVENT), lt: Buffer.of(EVENT + 1) })
  for (;;) {
    const rows = await ndjson.nextv(1000)
    if (rows.length === 0) break
    for (const [key, value] of rows) {
      chunk += `${JSON.stringify(toEvent(key.subarray(1), decodeEventValue(value), 'raw', 'raw'))}\n`
      lines++
      if (chunk.length >= 65_536) {
        bytes += Buffer.byteLength(chunk)
        chunk = ''
      }
    }
  }
  await ndjson.close()
  bytes += Buffer.byteLength(chunk)
  const renderRate = lines / ((performance.now() - r0) / 1000)
  await db.close()
  await rm(dir, { recursive: true, force: true })
  results.rawScan = {
    scanned,
    eventsPerS: Math.round(scanRate),
    jsonEventsPerS: Math.round(jsonRate),
    renderEventsPerS: Math.round(renderRate),
    renderedBytes: bytes,
  }
  return rate
}

async function chorusIngest(clients: number, total: number) {
  const member = await startBenchMember(`ingest${clients}`)
  try {
    const body = Array.from({ length: 1000 }, (_, i) => sampleEvent(i)).join('\n')
    let sent = 0
    const latencies: number[] = []
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (sent < total) {
          sent += 1000
          const s = performance.now()
          const r = await fetch(`${member.url}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-ndjson' },
            body,
          })
          await r.arrayBuffer()
          latencies.push(performance.now() - s)
        }
      }),
    )
    return {
      eventsPerS: Math.round(sent / ((performance.now() - t0) / 1000)),
      p99: summary(latencies).p99,
    }
  } finally {
    await member.stop()
  }
}

async function chorusScan(total: number) {
  const members: BenchMember[] = []
  try {
    for (let i = 0; i < 5; i++)
      members.push(
        await startBenchMember(
          `scan${i}`,
          i === 0 ? [] : ['--join', (members[0] as BenchMember).p2p],
        ),
      )
    await timeUntil(
      async () =>
        (await tableOf(members[0] as BenchMember)).filter((e) => e.state === 'alive').length === 5,
      60_000,
    )
    const body = Array.from({ length: 5000 }, (_, i) => sampleEvent(i)).join('\n')
    await Promise.all(
      members.map(async (m) => {
        for (let sent = 0; sent < total / 5; sent += 5000) {
          const r = await fetch(`${m.url}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-ndjson' },
            body,
          })
          await r.arrayBuffer()
        }
      }),
    )
    const coordinator = members[0] as BenchMember
    const paged = await pageAll(coordinator, Number.POSITIVE_INFINITY)
    return {
      scanned: paged.events,
      eventsPerS: paged.eventsPerS,
      coordinatorPeakRssMiB: peakRssMiB(coordinator.pid),
    }
  } finally {
    await Promise.all(members.map((m) => m.stop()))
  }
}

// ---------- memory ----------

/** Each member's peak RSS while `work` runs, as min/median/max over members. */
async function peakDuring<T>(members: BenchMember[], work: () => Promise<T>) {
  const sampler = sampleRss(members.map((m) => m.pid))
  const result = await work()
  return { result, rssMiB: spread(sampler.stop()) }
}

/** Posts `total` sample events spread over `members` from `clients` clients, 1,000 a request. */
async function ingestInto(members: BenchMember[], clients: number, total: number) {
  const body = Array.from({ length: 1000 }, (_, i) => sampleEvent(i)).join('\n')
  let sent = 0
  let turn = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (sent < total) {
        sent += 1000
        const m = members[turn++ % members.length] as BenchMember
        const r = await fetch(`${m.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
        await r.arrayBuffer()
      }
    }),
  )
  return Math.round(sent / ((performance.now() - t0) / 1000))
}

/** Reads a whole export through `coordinator`, counting its lines; events/s and the end line. */
async function exportAll(coordinator: BenchMember) {
  const t0 = performance.now()
  const response = await fetch(`${coordinator.url}/v1/export?from=0`)
  let lines = 0
  let last = ''
  let rest = ''
  const decoder = new TextDecoder()
  for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
    const text = rest + decoder.decode(bytes, { stream: true })
    const cut = text.lastIndexOf('\n')
    if (cut < 0) {
      rest = text
      continue
    }
    for (let at = text.indexOf('\n'); at >= 0 && at <= cut; at = text.indexOf('\n', at + 1)) lines++
    last = text.slice(text.lastIndexOf('\n', cut - 1) + 1, cut)
    rest = text.slice(cut + 1)
  }
  const end = (JSON.parse(last) as { end: { count: number; partial: boolean } }).end
  return {
    events: end.count,
    partial: end.partial,
    lines,
    eventsPerS: Math.round(end.count / ((performance.now() - t0) / 1000)),
  }
}

/** Pages the whole set through `coordinator`, 10,000 events a page, up to `most` pages. */
async function pageAll(coordinator: BenchMember, most: number) {
  let cursor: string | null = null
  let pages = 0
  let events = 0
  const t0 = performance.now()
  do {
    const url: string =
      cursor === null
        ? `${coordinator.url}/v1/events?from=0&limit=10000`
        : `${coordinator.url}/v1/events?cursor=${cursor}`
    const page = (await (await fetch(url)).json()) as { events: unknown[]; next: string | null }
    events += page.events.length
    cursor = page.next
    pages++
  } while (cursor !== null && pages < most)
  return { pages, events, eventsPerS: Math.round(events / ((performance.now() - t0) / 1000)) }
}

async function memoryPhases(exportEvents: number) {
  const members: BenchMember[] = []
  try {
    await startConverged(members, 10, 'mem', 120_000)
    await sleep(IDLE_SETTLE)
    const idle = {
      rssMiB: spread(members.map((m) => rssMiB(m.pid))),
      anonMiB: spread(members.map((m) => anonRssMiB(m.pid))),
    }
    await Promise.all(members.splice(5).map((m) => m.stop()))
    await timeUntil(async () => {
      for (const m of members) {
        const alive = (await tableOf(m)).filter((e) => e.state === 'alive').length
        if (alive !== 5) return false
      }
      return true
    }, 60_000)
    const coordinator = members[0] as BenchMember
    const ingest = await peakDuring(members, () => ingestInto(members, 4, exportEvents))
    const pages = await peakDuring(members, () => pageAll(coordinator, 50))
    const exported = await peakDuring(members, () => exportAll(coordinator))
    return {
      idle,
      ingest,
      pages,
      exported,
      anonAfterMiB: spread(members.map((m) => anonRssMiB(m.pid))),
    }
  } finally {
    await Promise.all(members.map((m) => m.stop()))
  }
}

/**
 * Five members under steady load for `minutes`: each second 200 events into
 * each member and one 1,000-event page from a member in turn; RSS per member
 * at the start, at minute 2 and at the end.
 */
async function memoryRun(minutes: number) {
  const members: BenchMember[] = []
  try {
    await startConverged(members, 5, 'run', 120_000)
    const body = Array.from({ length: 200 }, (_, i) => sampleEvent(i)).join('\n')
    const start = members.map((m) => rssMiB(m.pid))
    let atTwo: number[] = []
    const t0 = performance.now()
    let second = 0
    let partial = 0
    while (performance.now() - t0 < minutes * 60_000) {
      const tick = performance.now()
      await Promise.all(
        members.map(async (m) => {
          const r = await fetch(`${m.url}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-ndjson' },
            body,
          })
          await r.arrayBuffer()
        }),
      )
      const asked = members[second % members.length] as BenchMember
      const page = (await (
        await fetch(`${asked.url}/v1/events?from=5m&limit=1000&order=desc`)
      ).json()) as {
        partial: boolean
      }
      if (page.partial) partial++
      second++
      if (atTwo.length === 0 && performance.now() - t0 >= 120_000)
        atTwo = members.map((m) => rssMiB(m.pid))
      await sleep(Math.max(0, 1 - (performance.now() - tick) / 1000))
    }
    const end = members.map((m) => rssMiB(m.pid))
    return {
      minutes,
      seconds: second,
      partial,
      members: members.map((m, i) => ({
        member: m.name,
        start: start[i] as number,
        atTwo: atTwo[i] as number,
        end: end[i] as number,
      })),
    }
  } finally {
    await Promise.all(members.map((m) => m.stop()))
  }
}

// ---------- stability ----------

/** Every member's chorus_member_transitions_total, summed by "from>to". */
async function transitionsOf(members: BenchMember[]): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const m of members) {
    for (const { labels, value } of samples(await scrape(m), 'chorus_member_transitions_total')) {
      const key = `${labels.from}>${labels.to}`
      out.set(key, (out.get(key) ?? 0) + value)
    }
  }
  return out
}

/**
 * Starts `n` members named `prefix0…`, each joining the first, into
 * `members` (so the caller stops them whatever happens), and waits until
 * every table lists all of them alive; returns how long that took.
 */
async function startConverged(
  members: BenchMember[],
  n: number,
  prefix: string,
  timeoutMs: number,
): Promise<number> {
  for (let i = 0; i < n; i++)
    members.push(
      await startBenchMember(
        `${prefix}${i}`,
        i === 0 ? [] : ['--join', (members[0] as BenchMember).p2p],
      ),
    )
  return timeUntil(async () => {
    for (const m of members) if (!allAlive(n)(await tableOf(m))) return false
    return true
  }, timeoutMs)
}

/**
 * N members left running under light load (each second one ingest of 100
 * events and one 100-event query, round robin): every change of state any
 * member's table records is a flap, since none of them stops.
 */
async function stability(n: number, minutes: number) {
  const members: BenchMember[] = []
  try {
    await startConverged(members, n, 'steady', 60_000)
    const before = await transitionsOf(members)
    const body = Array.from({ length: 100 }, (_, i) => sampleEvent(i)).join('\n')
    const end = performance.now() + minutes * 60_000
    let queries = 0
    let partial = 0
    for (let i = 0; performance.now() < end; i++) {
      const tick = performance.now()
      const writer = members[i % n] as BenchMember
      const reader = members[(i + 1) % n] as BenchMember
      await (
        await fetch(`${writer.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
      ).arrayBuffer()
      const page = (await (await fetch(`${reader.url}/v1/events?from=0&limit=100`)).json()) as {
        partial: boolean
      }
      queries++
      if (page.partial) partial++
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, 1000 - (performance.now() - tick))),
      )
    }
    const after = await transitionsOf(members)
    const changes: Record<string, number> = {}
    for (const [key, count] of after) {
      const delta = count - (before.get(key) ?? 0)
      if (delta > 0) changes[key] = delta
    }
    const flaps = Object.entries(changes)
      .filter(([key]) => key.endsWith('>suspect') || key.endsWith('>dead'))
      .reduce((sum, [, c]) => sum + c, 0)
    return { n, minutes, queries, partial, flaps, changes, rss: members.map((m) => rssMiB(m.pid)) }
  } finally {
    await Promise.all(members.map((m) => m.stop()))
  }
}

// ---------- idle ----------

/** CPU time a process has used so far, in seconds (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S
}
const CLOCK_TICKS_PER_S = 100

/** Each process's share of a core over `seconds` of wall time, in percent. */
async function idleCpu(pids: number[], seconds: number): Promise<number[]> {
  const before = pids.map(cpuSeconds)
  const t0 = performance.now()
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  const wall = (performance.now() - t0) / 1000
  return pids.map((pid, i) => round((100 * (cpuSeconds(pid) - (before[i] as number))) / wall, 2))
}

/** A member's membership messages and bytes (sent + received) and false-suspicion counts so far. */
async function membershipCounters(m: BenchMember) {
  const text = await scrape(m)
  const transitions = 'chorus_member_transitions_total'
  return {
    messages: sampleSum(text, 'chorus_membership_messages_total'),
    bytes: sampleSum(text, 'chorus_membership_bytes_total'),
    connections: sampleSum(text, 'chorus_mesh_connections', { kind: 'all' }, 0),
    suspect: sampleSum(text, transitions, { from: 'alive', to: 'suspect' }, 0),
    dead: sampleSum(text, transitions, { to: 'dead' }, 0),
  }
}

/**
 * Processes `pids` left alone for `seconds`: each one's share of a core and
 * its RSS, and for `members` their membership messages and bytes per second
 * each (sent + received) and the alive→suspect and →dead changes their
 * tables recorded meanwhile (false suspicions: none of them stops).
 */
async function idleWindow(pids: number[], seconds: number, members: BenchMember[] = []) {
  const before = await Promise.all(members.map(membershipCounters))
  const t0 = performance.now()
  const cpu = await idleCpu(pids, seconds)
  const after = await Promise.all(members.map(membershipCounters))
  const wall = (performance.now() - t0) / 1000
  const delta = (key: keyof Awaited<ReturnType<typeof membershipCounters>>) =>
    after.map((a, i) => a[key] - (before[i]?.[key] ?? Number.NaN))
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
  return {
    cpuPercent: spread(cpu),
    rssMiB: spread(pids.map(rssMiB)),
    membership:
      members.length === 0
        ? undefined
        : {
            messagesPerS: spread(delta('messages').map((d) => round(d / wall, 1))),
            bytesPerS: spread(delta('bytes').map((d) => Math.round(d / wall))),
            connections: spread(after.map((a) => a.connections)),
            suspect: sum(delta('suspect')),
            dead: sum(delta('dead')),
          },
  }
}

/**
 * N members (and N Serf agents, when serf is installed) left idle, once
 * every table lists everyone and --idle-settle has passed: the share of a
 * core each process uses while nothing is asked of it, and its memory.
 */
async function idle(n: number, seconds: number) {
  const members: BenchMember[] = []
  const agents: Array<SerfAgent & { bind: string }> = []
  try {
    await startConverged(members, n, 'idle', 120_000)
    // Settled: joins, first announcements and V8's post-start collections are over.
    await sleep(IDLE_SETTLE)
    const chorus = await idleWindow(
      members.map((m) => m.pid),
      seconds,
    )
    await Promise.all(members.splice(0).map((m) => m.stop()))
    let serf: Awaited<ReturnType<typeof idleWindow>> | undefined
    if (hasSerf()) {
      await startSerfConverged(agents, n, 'idle-serf', 60_000)
      await sleep(IDLE_SETTLE)
      serf = await idleWindow(
        agents.map((a) => a.child.pid as number),
        seconds,
      )
    }
    return {
      n,
      settle: IDLE_SETTLE,
      seconds,
      chorusCpuPercent: chorus.cpuPercent,
      serfCpuPercent: serf?.cpuPercent,
      chorusRssMiB: chorus.rssMiB,
    }
  } finally {
    await Promise.all(members.map((m) => m.stop()))
    for (const a of agents) a.child.kill('SIGTERM')
  }
}

const spreadText = (s: { median: number; min: number; max: number }) =>
  `${s.median} (${s.min}–${s.max})`

// ---------- scale ----------

/** Starts one more process from `start` into `all`; time until every table lists it alive. */
async function joinOneMore<T extends { name: string }>(
  all: T[],
  start: Promise<T>,
  read: (x: T) => Promise<Table>,
): Promise<number> {
  const newcomer = await start
  all.push(newcomer)
  return untilEveryTable(all, read, lists(newcomer.name, 'alive'), 60_000)
}

/** SIGKILLs `victim`; time until every other one of `all` lists it in `state`. */
function killUntil<T extends { name: string; child: ChildProcess }>(
  victim: T,
  all: T[],
  read: (x: T) => Promise<Table>,
  state: string,
): Promise<number> {
  victim.child.kill('SIGKILL')
  return untilEveryTable(
    all.filter((x) => x !== victim),
    read,
    lists(victim.name, state),
    60_000,
  )
}

async function postScaleEvents(m: BenchMember, count: number): Promise<void> {
  const answer = await fetch(`${m.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(Array.from({ length: count }, () => ({ type: 'bench.scale' }))),
    signal: AbortSignal.timeout(10_000),
  })
  await answer.arrayBuffer()
  if (answer.status !== 201) throw new Error(`${m.name}: POST /v1/events answered ${answer.status}`)
}

/**
 * `count` pages of the first 100 events (`extra` appended to the query),
 * each from a random one of `targets`: how many were complete (not partial)
 * and their latencies.
 */
async function pages(targets: BenchMember[], count: number, extra = '') {
  const latencies: number[] = []
  let complete = 0
  for (let i = 0; i < count; i++) {
    const m = targets[Math.floor(Math.random() * targets.length)] as BenchMember
    const t0 = performance.now()
    try {
      const answer = await fetch(`${m.url}/v1/events?from=0&limit=100${extra}`, {
        signal: AbortSignal.timeout(30_000),
      })
      const body = await answer.text()
      if (answer.ok && (JSON.parse(body) as { partial: boolean }).partial === false) complete++
    } catch {
      // Timed out or refused: an incomplete page.
    }
    latencies.push(performance.now() - t0)
  }
  return { complete, total: count, latency: summary(latencies) }
}

/**
 * `pages` through `coordinator` alone with `fanout=<mode>`, and its CPU per
 * page in ms; null when it refuses the parameter (400: a member without it).
 */
async function fanoutPages(coordinator: BenchMember, mode: 'flat' | 'tree', count: number) {
  const probe = await fetch(`${coordinator.url}/v1/events?from=0&limit=1&fanout=${mode}`, {
    signal: AbortSignal.timeout(30_000),
  })
  await probe.arrayBuffer()
  if (probe.status === 400) return null
  const cpu0 = cpuSeconds(coordinator.pid)
  const run = await pages([coordinator], count, `&fanout=${mode}`)
  return { ...run, cpuMsPerPage: round(((cpuSeconds(coordinator.pid) - cpu0) * 1000) / count, 2) }
}

/**
 * N members converged, then one more joining the first (join→all); at
 * N + 1: idle cost, pages from random members, pages through one
 * coordinator with each fan-out, and one member killed (kill→dead).
 */
async function scaleChorus(n: number) {
  const members: BenchMember[] = []
  try {
    await startConverged(members, n, 'scale', 30_000 + 2000 * n)
    const first = members[0] as BenchMember
    const joinMs = await joinOneMore(
      members,
      startBenchMember(`scale${n}`, ['--join', first.p2p]),
      tableOf,
    )
    await sleep(SCALE_SETTLE)
    const idle = await idleWindow(
      members.map((m) => m.pid),
      SCALE_SECONDS,
      members,
    )
    await Promise.all(members.map((m) => postScaleEvents(m, 20)))
    const random = await pages(members, SCALE_QUERIES)
    const coordinator = members[1] as BenchMember
    const flat = await fanoutPages(coordinator, 'flat', SCALE_QUERIES)
    const tree = await fanoutPages(coordinator, 'tree', SCALE_QUERIES)
    // The newcomer: neither the first nor the coordinator.
    const deadMs = await killUntil(members[n] as BenchMember, members, tableOf, 'dead')
    return { n, joinMs, idle, pages: random, flat, tree, deadMs }
  } finally {
    await Promise.all(members.map((m) => m.stop()))
  }
}

/** The same for N Serf agents and one more; queries instead of pages. */
async function scaleSerf(n: number) {
  const agents: Array<SerfAgent & { bind: string }> = []
  try {
    await startSerfConverged(agents, n, 'scale-serf', 30_000 + 2000 * n)
    const first = agents[0] as SerfAgent & { bind: string }
    const joinMs = await joinOneMore(agents, startSerf(`scale-serf${n}`, first.bind), serfTable)
    await sleep(SCALE_SETTLE)
    const idle = await idleWindow(
      agents.map((a) => a.child.pid as number),
      SCALE_SECONDS,
    )
    // Each command is stopped once all have answered: on its own it waits for its timeout.
    const queries = await serfQueries(
      agents.map((a) => a.rpc),
      n + 1,
      SCALE_QUERIES,
      true,
    )
    const failedMs = await killUntil(agents[n] as SerfAgent, agents, serfTable, 'failed')
    return { n, joinMs, idle, queries, failedMs }
  } finally {
    for (const a of agents) a.child.kill('SIGKILL')
  }
}

const SCALE_COLUMNS = [
  'N',
  'run',
  'join→all ms',
  'kill→dead ms',
  'idle CPU % med (min–max)',
  'RSS MiB med',
  'msgs/s',
  'bytes/s',
  'conns',
  'suspect, dead',
  'complete',
  'p50/p95/p99 ms',
  'coord CPU ms/page',
] as const

function scaleRow(
  cells: Partial<Record<(typeof SCALE_COLUMNS)[number], string | number>>,
): Record<string, string | number> {
  return Object.fromEntries(SCALE_COLUMNS.map((c) => [c, cells[c] ?? '-']))
}

function scaleRows(
  chorus: Awaited<ReturnType<typeof scaleChorus>>,
  serf: Awaited<ReturnType<typeof scaleSerf>> | undefined,
) {
  const N = chorus.n
  const membership = chorus.idle.membership
  const latency = (l: { p50: number; p95: number; p99: number }) => `${l.p50}/${l.p95}/${l.p99}`
  const fanoutRow = (mode: string, run: typeof chorus.flat) =>
    scaleRow(
      run === null
        ? { N, run: `chorus ${mode}`, complete: 'not supported' }
        : {
            N,
            run: `chorus ${mode}`,
            complete: `${run.complete}/${run.total}`,
            'p50/p95/p99 ms': latency(run.latency),
            'coord CPU ms/page': run.cpuMsPerPage,
          },
    )
  const rows = [
    scaleRow({
      N,
      run: 'chorus',
      'join→all ms': round(chorus.joinMs, 0),
      'kill→dead ms': round(chorus.deadMs, 0),
      'idle CPU % med (min–max)': spreadText(chorus.idle.cpuPercent),
      'RSS MiB med': chorus.idle.rssMiB.median,
      'msgs/s': membership?.messagesPerS.median,
      'bytes/s': membership?.bytesPerS.median,
      conns: membership?.connections.median,
      'suspect, dead': membership && `${membership.suspect}, ${membership.dead}`,
      complete: `${chorus.pages.complete}/${chorus.pages.total}`,
      'p50/p95/p99 ms': latency(chorus.pages.latency),
    }),
    fanoutRow('flat', chorus.flat),
    fanoutRow('tree', chorus.tree),
  ]
  if (serf === undefined) return rows
  const ratio = (c: number, s: number) => round(c / s, 2)
  rows.push(
    scaleRow({
      N,
      run: 'serf',
      'join→all ms': round(serf.joinMs, 0),
      'kill→dead ms': round(serf.failedMs, 0),
      'idle CPU % med (min–max)': spreadText(serf.idle.cpuPercent),
      'RSS MiB med': serf.idle.rssMiB.median,
      complete: `${serf.queries.complete}/${serf.queries.total}`,
      'p50/p95/p99 ms': latency(serf.queries.all),
    }),
    scaleRow({
      N,
      run: 'chorus/serf',
      'join→all ms': ratio(chorus.joinMs, serf.joinMs),
      'kill→dead ms': ratio(chorus.deadMs, serf.failedMs),
      'idle CPU % med (min–max)': ratio(chorus.idle.cpuPercent.median, serf.idle.cpuPercent.median),
      'RSS MiB med': ratio(chorus.idle.rssMiB.median, serf.idle.rssMiB.median),
      'p50/p95/p99 ms': `p99/p95 ${ratio(chorus.pages.latency.p99, serf.queries.all.p95)}`,
    }),
  )
  return rows
}

// ---------- run ----------

if (!PARTS.has('serf')) {
  // not asked for
} else if (hasSerf()) {
  const rows = []
  for (const n of SIZES) {
    const serf = await benchSerf(n)
    const chorus = await benchChorus(n)
    results[`membership${n}`] = { serf, chorus }
    rows.push({
      N: n,
      'serf join→all ms': round(serf.converge, 0),
      'chorus join→all ms': round(chorus.converge, 0),
      'ratio (c/s)': round(chorus.converge / serf.converge, 2),
      'serf kill→failed ms': round(serf.failed, 0),
      'chorus kill→dead ms': round(chorus.dead, 0),
      'ratio (c/s) ': round(chorus.dead / serf.failed, 2),
      'serf RSS MiB': Math.max(...serf.rss),
      'chorus RSS MiB': Math.max(...chorus.rss),
      'serf all-N answers p50/p95/p99 ms': `${serf.all.p50}/${serf.all.p95}/${serf.all.p99}`,
      'serf complete': `${serf.complete}/${QUERIES}`,
      'chorus 100-page p50/p95/p99 ms': `${chorus.queries.p50}/${chorus.queries.p95}/${chorus.queries.p99}`,
      'chorus complete': `${chorus.complete}/${QUERIES}`,
      'p99 c / p95 s': round(chorus.queries.p99 / serf.all.p95, 2),
    })
  }
  printTable(
    `Membership and fan-out against Serf (serf query -timeout=${SERF_TIMEOUT}; its command returns only after the timeout)`,
    rows,
  )
} else {
  process.stdout.write('\nserf not found: skipping the Serf comparison (apt-get install serf)\n')
}

// The raw binding's rates are the floor of both ingest and scan.
const raw =
  PARTS.has('ingest') || PARTS.has('scan') || PARTS.has('memory')
    ? await rawIngest(INGEST_EVENTS)
    : 0
if (PARTS.has('ingest')) {
  const one = await chorusIngest(1, INGEST_EVENTS)
  const four = await chorusIngest(4, INGEST_EVENTS)
  results.ingest = { rawEventsPerS: Math.round(raw), one, four }
  printTable(
    'Durable ingest (1,000-event NDJSON batches, WAL synced) against the raw binding (same keys, same batches, sync)',
    [
      {
        writer: 'raw binding',
        clients: 1,
        'events/s': Math.round(raw),
        'p99 ms': '-',
        'chorus/raw': '-',
      },
      ...[one, four].map((r, i) => ({
        writer: 'chorus',
        clients: i === 0 ? 1 : 4,
        'events/s': r.eventsPerS,
        'p99 ms': r.p99,
        'chorus/raw': round(r.eventsPerS / raw, 2),
      })),
    ],
  )
}
if (PARTS.has('scan')) {
  const scan = await chorusScan(SCAN_EVENTS)
  const rawScan = results.rawScan as { eventsPerS: number; jsonEventsPerS: number }
  results.scan = scan
  printTable(
    `Forward scan of ${SCAN_EVENTS} events over 5 members through one coordinator, against a raw iterator scan of one store`,
    [
      {
        scan: 'raw iterator',
        'events/s': rawScan.eventsPerS,
        'peak RSS MiB': '-',
        'chorus/raw': '-',
      },
      {
        scan: 'chorus coordinator',
        'events/s': scan.eventsPerS,
        'peak RSS MiB': scan.coordinatorPeakRssMiB,
        'chorus/raw': round(scan.eventsPerS / rawScan.eventsPerS, 2),
      },
      {
        scan: 'raw iterator + decode + JSON render and parse, one process',
        'events/s': rawScan.jsonEventsPerS,
        'peak RSS MiB': '-',
        'chorus/raw': round(rawScan.jsonEventsPerS / rawScan.eventsPerS, 2),
      },
    ],
  )
}
if (PARTS.has('memory')) {
  const rawScan = results.rawScan as { eventsPerS: number; renderEventsPerS: number }
  const m = await memoryPhases(Number(values['export-events']))
  results.memory = m
  const row = (phase: string, s: { median: number; min: number; max: number }, extra = '') => ({
    phase,
    'RSS MiB median (min–max)': spreadText(s),
    figure: extra,
  })
  printTable(
    "Resident memory per member at the default budget (128 MiB), each member's peak in the phase",
    [
      row('idle, N = 10', m.idle.rssMiB, `own (anonymous) ${spreadText(m.idle.anonMiB)}`),
      row('4-client ingest, N = 5', m.ingest.rssMiB, `${m.ingest.result} events/s`),
      row(
        '10,000-event pages, N = 5',
        m.pages.rssMiB,
        `${m.pages.result.pages} pages, ${m.pages.result.eventsPerS} events/s`,
      ),
      row(
        `export of ${m.exported.result.events} events, N = 5`,
        m.exported.rssMiB,
        `${m.exported.result.eventsPerS} events/s${m.exported.result.partial ? ' (partial)' : ''}`,
      ),
    ],
  )
  printTable('Export through one coordinator against the floors of the same run', [
    {
      reader: 'raw iterator scan, one store',
      'events/s': rawScan.eventsPerS,
      'export/this': round(m.exported.result.eventsPerS / rawScan.eventsPerS, 2),
    },
    {
      reader: 'decode + NDJSON render, one process',
      'events/s': rawScan.renderEventsPerS,
      'export/this': round(m.exported.result.eventsPerS / rawScan.renderEventsPerS, 2),
    },
    {
      reader: 'chorus export, 5 members',
      'events/s': m.exported.result.eventsPerS,
      'export/this': 1,
    },
  ])
}
if (PARTS.has('memory-run')) {
  const run = await memoryRun(Number(values['memory-minutes']))
  results.memoryRun = run
  printTable(
    `Memory over ${run.minutes} min: 5 members, each second 200 events into each and one 1,000-event page (${run.seconds} s, ${run.partial} partial pages)`,
    run.members.map((r) => ({
      member: r.member,
      'RSS MiB at start': r.start,
      'at 2 min': r.atTwo,
      'at end': r.end,
      '2 min → end': `${round((100 * (r.end - r.atTwo)) / r.atTwo, 1)}%`,
    })),
  )
}
if (PARTS.has('idle')) {
  const rows = []
  const idleRuns: unknown[] = []
  for (const n of IDLE_SIZES) {
    const run = await idle(n, Number(values['idle-seconds']))
    rows.push({
      N: n,
      'chorus idle CPU % of a core (median min–max)': spreadText(run.chorusCpuPercent),
      'serf idle CPU %': run.serfCpuPercent === undefined ? '-' : spreadText(run.serfCpuPercent),
      'chorus RSS MiB (median, max)': `${run.chorusRssMiB.median}, ${run.chorusRssMiB.max}`,
    })
    idleRuns.push(run)
  }
  results.idle = idleRuns
  printTable(
    `Idle members, ${values['idle-seconds']} s from ${IDLE_SETTLE} s after every table lists everyone`,
    rows,
  )
}
if (PARTS.has('scale')) {
  const serfHere = hasSerf()
  if (!serfHere)
    process.stdout.write('\nserf not found: scale runs chorus alone (apt-get install serf)\n')
  const runs = []
  const rows = []
  for (const n of SCALE_SIZES) {
    const chorus = await scaleChorus(n)
    const serf = serfHere ? await scaleSerf(n) : undefined
    runs.push({ n, chorus, serf })
    rows.push(...scaleRows(chorus, serf))
  }
  results.scale = runs
  printTable(
    `Scale: N members, then one joins; figures at N + 1 (idle ${SCALE_SECONDS} s after ${SCALE_SETTLE} s; ${SCALE_QUERIES} 100-event pages; serf query -timeout=${SERF_TIMEOUT}, all answers)`,
    rows,
  )
}

if (PARTS.has('replicas')) {
  const r = await replicasBench({
    events: Number(values['replica-events']),
    pages: Number(values['replica-pages']),
    acks: Number(values['replica-acks']),
  })
  results.replicas = r
  printTable(
    `Replicas: 5 members, ${values['replica-events']} events from 4 clients; ${values['replica-acks']} 100-event acknowledgements; ${values['replica-pages']} pages with one member frozen`,
    [r.one, r.two].map((x) => ({
      replicas: x.replicas,
      'ingest events/s': x.load.eventsPerS,
      'vs R=1': round(x.load.eventsPerS / r.one.load.eventsPerS, 2),
      'lag ms p50/p99': x.replicas > 1 ? `${x.load.lagMs.p50}/${x.load.lagMs.p99}` : '-',
      'steady load: events/s, lag ms p50/p99':
        x.steady === undefined
          ? '-'
          : `${x.steady.eventsPerS}, ${x.steady.lagMs.p50}/${x.steady.lagMs.p99}`,
      'store MiB': round(x.bytes / 1024 ** 2),
      'vs R=1 ': round(x.bytes / r.one.bytes, 2),
      'ack ms p50/p99 local': `${x.local.p50}/${x.local.p99}`,
      'replicated (p99 ratio)':
        x.replicated === undefined
          ? '-'
          : `${x.replicated.p50}/${x.replicated.p99} (${round(x.replicated.p99 / x.local.p99, 2)})`,
      'frozen: page ms p50/p99, partial': `${x.frozen.p50}/${x.frozen.p99}, ${x.frozen.partial}`,
    })),
  )
}
if (PARTS.has('otlp')) {
  const r = await otlpBench(Number(values['otlp-events']))
  results.otlp = r
  printTable(
    `OTLP ingest: ${values['otlp-events']} records of each kind in 1,000-record requests from 2 clients, in alternating rounds on one member`,
    [
      { body: 'NDJSON (POST /v1/events)', ...r.native, 'vs NDJSON': 1 },
      { body: 'OTLP protobuf, gzip (POST /v1/logs)', ...r.otlp, 'vs NDJSON': r.ratio },
    ].map((x) => ({
      body: x.body,
      'events/s': x.eventsPerS,
      'p99 ms': x.p99,
      'request bytes': x.requestBytes,
      'vs NDJSON': x['vs NDJSON'],
    })),
  )
}
if (PARTS.has('backup')) {
  const r = await backupBench(Number(values['backup-events']))
  results.backup = r
  printTable(`Backup: chorus backup of one member holding ${r.events} events`, [
    {
      records: r.records,
      'backup s': r.backupSeconds,
      'events/s': r.backupEventsPerS,
      'MiB/s': r.backupMiBPerS,
      'raw scan s': r.rawScanSeconds,
      'vs raw scan': r.vsRawScan,
      'restored, ready ms': r.restoreReadyMs,
    },
  ])
}
if (PARTS.has('dashboard')) {
  const r = await dashboardBench(
    Number(values['dashboard-members']),
    Number(values['dashboard-loads']),
  )
  results.dashboard = r
  printTable(
    `Dashboard: the Overview of ${r.members} members in chromium, ${r.loads} loads in fresh pages`,
    [
      {
        'paint ms median': r.paintMs.median,
        'min–max': `${r.paintMs.min}–${r.paintMs.max}`,
        p95: r.paintMs.p95,
        'own files kB': round(r.ownBytes / 1000, 1),
      },
    ],
  )
}
if (PARTS.has('stability')) {
  const run = await stability(10, Number(values['stability-minutes']))
  results.stability = run
  printTable(
    `Stability: ${run.n} members left running ${run.minutes} min under light load (no member stops)`,
    [
      {
        'queries (1/s)': run.queries,
        partial: run.partial,
        'flaps (any → suspect/dead)': run.flaps,
        'state changes': JSON.stringify(run.changes),
        'max RSS MiB': Math.max(...run.rss),
      },
    ],
  )
}
mkdirSync('bench-results', { recursive: true })
const file = `bench-results/compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
writeFileSync(file, JSON.stringify(results, null, 2))
process.stdout.write(`\nfigures written to ${file}\n`)
