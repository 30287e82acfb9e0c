// The memory budget and streamed exports with members as processes: the
// heap flags put in force at start, resident memory while a member serves
// ingest, full pages and an export, a slow export reader that does not grow
// anyone's memory, a member killed in the middle of an export, and a budget
// below the minimum refused.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ExportEnd } from '../../node/query/export.ts'
import { metricSample, removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { type MemberProcess, runCli, startMember, stopAll } from './harness.ts'

const MiB = 1024 * 1024

afterEach(async () => {
  await stopAll()
  await removeTempDirs()
})

/** Resident and peak resident memory of a process, bytes (from /proc). */
function rss(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1])
  return { now: kib('VmRSS') * 1024, peak: kib('VmHWM') * 1024 }
}

/** Posts `count` typical events to `m` from `clients` clients at once, 1,000 a request. */
async function ingest(m: MemberProcess, count: number, clients = 4): Promise<void> {
  let sent = 0
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (sent < count) {
        const from = sent
        sent += 1000
        const body = Array.from({ length: 1000 }, (_, i) =>
          JSON.stringify({
            type: 'mem.test',
            message: `request ${from + i} to /api/v1/items/${(from + i) % 977} took ${i % 97} ms`,
            attrs: { region: i % 2 ? 'eu-west' : 'us-east', status: 200 + (i % 5) },
          }),
        ).join('\n')
        const response = await fetch(`${m.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
        expect(response.status).toBe(201)
        await response.arrayBuffer()
      }
    }),
  )
}

async function array(names: string[]): Promise<MemberProcess[]> {
  const out: MemberProcess[] = []
  for (const name of names) {
    const first = out[0]
    out.push(
      await startMember({
        name,
        dataDir: await tempDir(),
        args: first === undefined ? [] : ['--join', first.p2p],
      }),
    )
  }
  await waitFor(
    async () => {
      const body = (await (await fetch(`${(out[0] as MemberProcess).url}/v1/members`)).json()) as {
        members: Array<{ state: string }>
      }
      return body.members.filter((m) => m.state === 'alive').length === names.length
    },
    { timeoutMs: 30_000, what: `${names.length} members alive` },
  )
  return out
}

/** Reads an export's body to its end, pausing `pauseMs` after each `every` bytes; returns the end line. */
async function readExport(
  response: Response,
  { every = Number.POSITIVE_INFINITY, pauseMs = 0, onPause = () => {} } = {},
): Promise<{ lines: number; end: ExportEnd | undefined }> {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  let lines = 0
  let last = ''
  let sinceBreak = 0
  for (;;) {
    const chunk = await reader.read()
    if (chunk.done) break
    text += decoder.decode(chunk.value, { stream: true })
    const cut = text.lastIndexOf('\n')
    if (cut >= 0) {
      const complete = text.slice(0, cut).split('\n')
      lines += complete.length
      last = complete[complete.length - 1] as string
      text = text.slice(cut + 1)
    }
    sinceBreak += chunk.value.byteLength
    if (sinceBreak >= every) {
      sinceBreak = 0
      onPause()
      await new Promise((resolve) => setTimeout(resolve, pauseMs))
    }
  }
  // The end line is the last one, if the export was not cut.
  return {
    lines,
    end: last.startsWith('{"end":') ? (JSON.parse(last) as { end: ExportEnd }).end : undefined,
  }
}

describe('the memory budget', () => {
  it('refuses a budget below the minimum with exit code 2, naming the minimum', async () => {
    const { code, stderr } = await runCli([
      'start',
      '--data-dir',
      await tempDir(),
      '--memory-budget',
      '64MiB',
    ])
    expect(code).toBe(2)
    expect(stderr).toMatch(/memory-budget.*at least 96MiB.*got "64MiB"/)
  })

  it('puts the heap limits in force and stays within the budget while it serves ingest, full pages and an export', async () => {
    const m = await startMember({
      name: 'budget',
      dataDir: await tempDir(),
      args: ['--memory-budget', '128MiB'],
    })
    const metrics = await (await fetch(`${m.url}/metrics`)).text()
    // 64 MiB of old space and 8 MiB semi-spaces, and what V8 adds to them.
    const heapLimit = metricSample(metrics, 'chorus_heap_limit_bytes') as number
    expect(heapLimit).toBeGreaterThanOrEqual(64 * MiB)
    expect(heapLimit).toBeLessThan(100 * MiB)
    expect(metricSample(metrics, 'chorus_memory_budget_bytes')).toBe(128 * MiB)
    expect(metricSample(metrics, 'chorus_store_memory_limit_bytes{part="block_cache"}')).toBe(
      8 * MiB,
    )
    await ingest(m, 60_000)
    let cursor: string | null = null
    let paged = 0
    do {
      const query: string = cursor === null ? 'from=0&limit=10000' : `cursor=${cursor}`
      const page = (await (await fetch(`${m.url}/v1/events?${query}`)).json()) as {
        events: unknown[]
        next: string | null
      }
      paged += page.events.length
      cursor = page.next
    } while (cursor !== null)
    expect(paged).toBe(60_000)
    const exported = await readExport(await fetch(`${m.url}/v1/export?from=0`))
    expect(exported.end?.count).toBe(60_000)
    // The budget plus a margin for what no option sets: Node's and RocksDB's
    // code (65 MiB of shared file pages) and, on a first start with a cold
    // compile cache, Node's TypeScript stripper (17 MiB). Without the budget
    // the same work peaked at 250-500 MiB; the tight figures are the bench's.
    expect(rss(m.pid).peak).toBeLessThan(128 * MiB + 96 * MiB)
  }, 120_000)
})

describe('an export through one member of three', () => {
  it('read slowly, grows no member; its reader gone, no scan stays open; a member killed midway makes it partial and named', async () => {
    const members = await array(['ex0', 'ex1', 'ex2'])
    const [coordinator, , victim] = members as [MemberProcess, MemberProcess, MemberProcess]
    await Promise.all(members.map((m) => ingest(m, 30_000, 2)))
    // A first export loads every code path; memory is measured from after it.
    const warm = await readExport(await fetch(`${coordinator.url}/v1/export?from=0`))
    expect(warm.end).toMatchObject({ count: 90_000, partial: false })
    const before = members.map((m) => rss(m.pid).now)
    let most = members.map(() => 0)
    const slow = await readExport(await fetch(`${coordinator.url}/v1/export?from=0`), {
      every: 2 * MiB,
      pauseMs: 400,
      onPause: () => {
        most = members.map((m, i) => Math.max(most[i] as number, rss(m.pid).now))
      },
    })
    expect(slow.end).toMatchObject({ count: 90_000, partial: false })
    // The export is about 25 MiB of NDJSON: a member that held it would grow by more.
    for (const [i, m] of members.entries())
      expect(
        (most[i] as number) - (before[i] as number),
        `${m.name} grew while the reader paused`,
      ).toBeLessThan(16 * MiB)

    // A reader that goes away: every member's scan closes.
    const abort = new AbortController()
    const cut = await fetch(`${coordinator.url}/v1/export?from=0`, { signal: abort.signal })
    const reader = (cut.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    abort.abort()
    await waitFor(
      async () => {
        for (const m of members) {
          const text = await (await fetch(`${m.url}/metrics`)).text()
          if (metricSample(text, 'chorus_store_scans_open') !== 0) return false
        }
        return true
      },
      { timeoutMs: 20_000, what: 'no scan open on any member' },
    )

    // A member killed while the export is read: the end line says so.
    const response = await fetch(`${coordinator.url}/v1/export?from=0`)
    let killed = false
    const partial = await readExport(response, {
      every: 1 * MiB,
      pauseMs: 50,
      onPause: () => {
        if (killed) return
        killed = true
        victim.signal('SIGKILL')
      },
    })
    expect(killed).toBe(true)
    expect(partial.end?.partial).toBe(true)
    expect(partial.end?.count).toBeLessThan(90_000)
    expect(partial.end?.count).toBeGreaterThanOrEqual(60_000)
    const row = partial.end?.members.find((r) => r.name === 'ex2')
    expect(row?.status).not.toBe('ok')
    expect(partial.end?.members.filter((r) => r.status === 'ok').map((r) => r.name)).toEqual([
      'ex0',
      'ex1',
    ])
  }, 180_000)
})

describe('chorus export', () => {
  it('writes the set as NDJSON to stdout or --out, nothing else when piped, and resumes with --after', async () => {
    const m = await startMember({ name: 'cliexport', dataDir: await tempDir() })
    await ingest(m, 3000, 1)
    const piped = await runCli(['export', '--url', m.url, '--from', '0'])
    expect(piped.code).toBe(0)
    expect(piped.stderr).toBe('')
    const lines = piped.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(3001)
    const end = (JSON.parse(lines[3000] as string) as { end: ExportEnd }).end
    expect(end).toMatchObject({ count: 3000, partial: false })
    const ids = lines.slice(0, 3000).map((l) => (JSON.parse(l) as { id: string }).id)
    expect(end.lastId).toBe(ids[2999])
    expect([...ids].sort()).toEqual(ids)

    const out = join(await tempDir(), 'export.ndjson')
    const resumed = await runCli([
      'export',
      '--url',
      m.url,
      '--after',
      ids[999] as string,
      '--out',
      out,
    ])
    expect(resumed.code).toBe(0)
    expect(resumed.stdout).toBe('')
    const written = readFileSync(out, 'utf8').trimEnd().split('\n')
    expect(written.slice(0, -1).map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(
      ids.slice(1000),
    )

    const bad = await runCli(['export', '--url', m.url, '--after', 'nope'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^chorus: 400: "after" must be an event id/)
  }, 60_000)
})
