// A member killed with SIGKILL in the middle of ingest loses nothing it
// acknowledged, duplicates nothing, and never reuses a seq.

import { afterEach, describe, expect, it } from 'vitest'
import { parseId } from '../../node/event/id.ts'
import type { RollupAnswer } from '../../node/query/rollups.ts'
import { allEvents, removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { runCli, startMember, stopAll } from './harness.ts'

afterEach(async () => {
  await stopAll()
  await removeTempDirs()
})

describe('a member killed with SIGKILL mid-ingest', () => {
  it('keeps every acknowledged event exactly once and continues seq beyond them', async () => {
    const dataDir = await tempDir()
    const member = await startMember({ name: 'crashy', dataDir })
    const acked = new Map<string, number>() // id → n
    let counter = 0
    let killed = false
    const client = async () => {
      while (!killed) {
        const batch = Array.from({ length: 200 }, () => ({
          type: 'crash.test',
          value: counter % 7,
          attrs: { n: counter++ },
        }))
        try {
          const response = await fetch(`${member.url}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-ndjson' },
            body: batch.map((e) => JSON.stringify(e)).join('\n'),
          })
          if (response.status !== 201) return
          const { ids } = (await response.json()) as { ids: string[] }
          for (const [i, id] of ids.entries()) acked.set(id, batch[i]?.attrs.n as number)
        } catch {
          return // the member died under this request: it was not acknowledged
        }
      }
    }
    const clients = [client(), client(), client(), client()]
    await waitFor(() => acked.size >= 5000, {
      timeoutMs: 30_000,
      what: '5,000 acknowledged events',
    })
    member.signal('SIGKILL')
    killed = true
    await Promise.all(clients)
    expect(await member.exited).toBe('SIGKILL')

    const restarted = await startMember({ name: 'crashy', dataDir })
    const events = await allEvents(restarted.url)
    const ids = events.map((e) => e.id)
    expect(new Set(ids).size).toBe(ids.length)
    const seqs = events.map((e) => e.seq)
    expect(new Set(seqs).size).toBe(seqs.length)
    const stored = new Map(events.map((e) => [e.id, e.attrs?.n]))
    for (const [id, n] of acked) expect(stored.get(id), id).toBe(n)
    const maxSeq = Math.max(...seqs)

    // The rollups, written in the same batches, agree with what survived.
    const first = Math.min(...events.map((e) => e.ts))
    const rollups = (await (
      await fetch(`${restarted.url}/v1/rollups?from=${first - 60_000}&step=1m&type=crash.test`)
    ).json()) as RollupAnswer
    const buckets = rollups.series.flatMap((s) => s.buckets)
    expect(buckets.reduce((n, b) => n + b.count, 0)).toBe(events.length)
    expect(buckets.reduce((n, b) => n + b.sum, 0)).toBe(
      events.reduce((n, e) => n + (e.value ?? 0), 0),
    )

    const emitted = await runCli(['emit', '--url', restarted.url, '--type', 'after.crash'])
    expect(emitted.code, emitted.stderr).toBe(0)
    const newId = emitted.stdout.trim()
    expect(parseId(newId)?.seq).toBe(maxSeq + 1)
    expect(newId > (ids.at(-1) as string)).toBe(true)
  })
})

describe('a second process on the same data dir', () => {
  it('fails at once with a clear message and leaves the first unharmed', async () => {
    const dataDir = await tempDir()
    const first = await startMember({ name: 'owner', dataDir })
    const before = await runCli(['emit', '--url', first.url, '--type', 'lock.before'])
    expect(before.code).toBe(0)
    const second = await runCli([
      'start',
      '--name',
      'intruder',
      '--data-dir',
      dataDir,
      '--http',
      '127.0.0.1:0',
    ])
    expect(second.code).not.toBe(0)
    expect(second.stderr).toMatch(/in use by another chorus process/)
    expect(second.stderr.trim().split('\n')).toHaveLength(1)
    const after = await runCli(['emit', '--url', first.url, '--type', 'lock.after'])
    expect(after.code).toBe(0)
    const events = await allEvents(first.url)
    expect(events.map((e) => [e.id, e.type])).toEqual([
      [before.stdout.trim(), 'lock.before'],
      [after.stdout.trim(), 'lock.after'],
    ])
  })
})
