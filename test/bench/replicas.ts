// The `replicas` part of npm run bench: 5 member processes, each figure
// against the same run's baseline.
// - ingest: 4 clients, each into its own member, 1,000-event NDJSON batches,
//   with --replicas 1 and then 2: events/s and their ratio; with 2, every
//   origin's holder lag as the origin reports it (/v1/members, every
//   100 ms) during the load: p50/p99 in ms; and again for 10 s of a steady
//   load, 100-event batches one at a time over 4 members, paced to at most
//   a third of R = 1's rate (the rate reached is reported);
// - acknowledgements: one client, 100-event batches, local and then
//   durability=replicated: latency p50/p99 and the ratio of the p99s;
// - disk: store bytes over all members (chorus_store_size_bytes) with 2
//   against 1, for the same events;
// - a member frozen with SIGSTOP: 100-event pages from another member with
//   1 and with 2 (hedged to the frozen member's holder): p50/p99 and the
//   partial pages.

import type { BenchMember } from './lib.ts'
import {
  sampleEvent,
  sampleSum,
  scrape,
  startBenchMember,
  summary,
  tableOf,
  timeUntil,
} from './lib.ts'

interface HolderRow {
  name: string
  holders: Array<{ lagMs?: number }>
}

async function startArray(replicas: number, tag: string): Promise<BenchMember[]> {
  const members: BenchMember[] = []
  for (let i = 0; i < 5; i++) {
    const join = i === 0 ? [] : ['--join', (members[0] as BenchMember).p2p]
    members.push(await startBenchMember(`${tag}${i}`, ['--replicas', String(replicas), ...join]))
  }
  const all = await timeUntil(async () => {
    for (const m of members)
      if ((await tableOf(m)).filter((e) => e.state === 'alive').length !== 5) return false
    return true
  }, 60_000)
  if (Number.isNaN(all)) throw new Error('the bench array did not converge in 60 s')
  return members
}

/** Every origin's holder lag in ms, as each origin reports it, sampled every 100 ms while `running()`. */
async function sampleLag(members: BenchMember[], running: () => boolean): Promise<number[]> {
  const lags: number[] = []
  while (running()) {
    for (const m of members) {
      const answer = await fetch(`${m.url}/v1/members`)
      const rows = ((await answer.json()) as { members: HolderRow[] }).members
      for (const h of rows.find((r) => r.name === m.name)?.holders ?? [])
        if (h.lagMs !== undefined) lags.push(h.lagMs)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return lags
}

/**
 * A steady load below what the machine can take: `perSecond` events a
 * second over 4 members (100-event batches, paced), for `seconds`, with
 * holder lag sampled meanwhile.
 */
async function pacedLag(members: BenchMember[], perSecond: number, seconds: number) {
  const body = Array.from({ length: 100 }, (_, i) => sampleEvent(i)).join('\n')
  let running = true
  const lags = sampleLag(members, () => running)
  const t0 = performance.now()
  let sent = 0
  while (performance.now() - t0 < seconds * 1000) {
    const due = t0 + (sent / perSecond) * 1000
    const wait = due - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    const m = members[(sent / 100) % 4] as BenchMember
    sent += 100
    const r = await fetch(`${m.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    })
    await r.arrayBuffer()
  }
  running = false
  return {
    eventsPerS: Math.round(sent / ((performance.now() - t0) / 1000)),
    lagMs: summary(await lags),
  }
}

/** 4 clients, one per member, `total` events in all; with `lag`, samples holder lag meanwhile. */
async function ingest(members: BenchMember[], total: number, lag: boolean) {
  const body = Array.from({ length: 1000 }, (_, i) => sampleEvent(i)).join('\n')
  let sent = 0
  let running = true
  const sampler = sampleLag(members, () => lag && running)
  const t0 = performance.now()
  await Promise.all(
    members.slice(0, 4).map(async (m) => {
      while (sent < total) {
        sent += 1000
        const r = await fetch(`${m.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
        await r.arrayBuffer()
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  running = false
  return { eventsPerS: Math.round(sent / seconds), lagMs: summary(await sampler) }
}

async function acknowledgements(member: BenchMember, requests: number, durability: string) {
  const body = Array.from({ length: 100 }, (_, i) => sampleEvent(i)).join('\n')
  const latencies: number[] = []
  for (let i = 0; i < requests; i++) {
    const t0 = performance.now()
    const r = await fetch(`${member.url}/v1/events?durability=${durability}&timeout=10s`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    })
    await r.arrayBuffer()
    if (r.status !== 201) throw new Error(`${durability} ingest answered ${r.status}`)
    latencies.push(performance.now() - t0)
  }
  return summary(latencies)
}

async function storeBytes(members: BenchMember[]): Promise<number> {
  let bytes = 0
  for (const m of members) bytes += sampleSum(await scrape(m), 'chorus_store_size_bytes', {}, 0)
  return bytes
}

/** Pages of 100 from members[0] while members[4] is frozen. */
async function frozenPages(members: BenchMember[], pages: number) {
  const frozen = members[4] as BenchMember
  frozen.child.kill('SIGSTOP')
  try {
    const latencies: number[] = []
    let partial = 0
    for (let i = 0; i < pages; i++) {
      const t0 = performance.now()
      const r = await fetch(
        `${(members[0] as BenchMember).url}/v1/events?from=0&limit=100&timeout=2s`,
      )
      const page = (await r.json()) as { partial: boolean }
      latencies.push(performance.now() - t0)
      if (page.partial) partial++
    }
    return { ...summary(latencies), partial }
  } finally {
    frozen.child.kill('SIGCONT')
  }
}

export async function replicasBench(options: { events: number; pages: number; acks: number }) {
  const runs: Record<number, Awaited<ReturnType<typeof runOne>>> = {}
  let steadyPerSecond = 0
  async function runOne(replicas: number) {
    const members = await startArray(replicas, `rep${replicas}-`)
    try {
      const load = await ingest(members, options.events, replicas > 1)
      // Let the copies catch up before they are counted on disk.
      if (replicas > 1)
        await timeUntil(async () => {
          for (const m of members) {
            const answer = await fetch(`${m.url}/v1/members`)
            const rows = ((await answer.json()) as { members: HolderRow[] }).members
            const own = rows.find((r) => r.name === m.name)
            if (own === undefined || own.holders.some((h) => h.lagMs !== 0)) return false
          }
          return true
        }, 120_000)
      const bytes = await storeBytes(members)
      // Lag again at a load the machine carries: at most a third of R = 1's rate.
      const steady =
        replicas > 1 && steadyPerSecond > 0
          ? await pacedLag(members, steadyPerSecond, 10)
          : undefined
      const local = await acknowledgements(members[1] as BenchMember, options.acks, 'local')
      const replicated =
        replicas > 1
          ? await acknowledgements(members[1] as BenchMember, options.acks, 'replicated')
          : undefined
      const frozen = await frozenPages(members, options.pages)
      return { replicas, load, bytes, steady, local, replicated, frozen }
    } finally {
      await Promise.all(members.map((m) => m.stop()))
    }
  }
  runs[1] = await runOne(1)
  steadyPerSecond = Math.round(runs[1].load.eventsPerS / 3 / 100) * 100
  runs[2] = await runOne(2)
  return { one: runs[1], two: runs[2] }
}
