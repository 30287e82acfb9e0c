// chorus backup as an operator runs it: a consistent copy of a member's
// store taken while a client writes to it, and a member started from it.

import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { type MemberProcess, runCli, startMember, stopAll } from './harness.ts'

afterEach(async () => {
  await stopAll()
  await removeTempDirs()
})

/** The peer id a member printed when it started. */
function peerIdOf(m: MemberProcess): string {
  return /chorus member \S+ \((\S+)\)/.exec(m.output())?.[1] as string
}

/** Every event id of `type` a member holds, oldest first, through GET /v1/export (bounded). */
async function exportedIds(m: MemberProcess, type: string): Promise<string[]> {
  const response = await fetch(`${m.url}/v1/export?from=0&type=${type}`, {
    signal: AbortSignal.timeout(30_000),
  })
  expect(response.status).toBe(200)
  const lines = (await response.text()).trim().split('\n')
  const end = JSON.parse(lines.pop() as string) as { end: { partial: boolean; count: number } }
  expect(end.end.partial).toBe(false)
  return lines.map((line) => (JSON.parse(line) as { id: string }).id)
}

describe('chorus backup', () => {
  it('a backup taken under ingest restores every event acknowledged before it began, with the same peer id', async () => {
    const a = await startMember({ name: 'bk-a', dataDir: await tempDir() })
    // A client writes batches without pause; each acknowledged batch is kept in order.
    const acked: string[] = []
    let stop = false
    let n = 0
    const ingest = (async () => {
      while (!stop) {
        const body = Array.from({ length: 200 }, () =>
          JSON.stringify({ type: 'bk.load', message: `event ${n++} ${'x'.repeat(200)}` }),
        ).join('\n')
        const response = await fetch(`${a.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
          signal: AbortSignal.timeout(10_000),
        })
        if (response.status !== 201)
          throw new Error(`ingest answered ${response.status}: ${await response.text()}`)
        acked.push(...((await response.json()) as { ids: string[] }).ids)
      }
    })()
    try {
      await waitFor(() => acked.length >= 30_000, {
        timeoutMs: 40_000,
        what: '30,000 events acknowledged',
      })
      const dir = join(await tempDir(), 'backup')
      // Everything acknowledged by now must be in the backup.
      const ackedBefore = acked.length
      const backup = await runCli(['backup', '--url', a.url, '--out', dir], { timeoutMs: 60_000 })
      const ackedAfter = acked.length
      expect(backup.code, backup.stderr).toBe(0)
      expect(backup.stdout).toMatch(
        new RegExp(`backup of member bk-a \\(${peerIdOf(a)}\\) as of .*: \\d+ events`),
      )
      expect(backup.stdout).toContain(`chorus start --data-dir ${dir}`)
      // The client went on writing while the backup ran.
      expect(ackedAfter).toBeGreaterThan(ackedBefore)
      stop = true
      await ingest
      expect(await readdir(dir)).toEqual(['backup.json', 'chorus'])
      expect((await readdir(join(dir, 'chorus'))).sort()).toEqual(['identity.key', 'store'])

      // A member started from the backup, on new ports, alone: the same peer id, and the events.
      // (Alone, with nobody to hold copies: with replicas it would first wait for
      // other members to say where its events stand, as test/integration/replicas.test.ts has it.)
      const b = await startMember({ name: 'bk-a', dataDir: dir, args: ['--replicas', '1'] })
      expect(peerIdOf(b)).toBe(peerIdOf(a))
      const restored = await exportedIds(b, 'bk.load')
      const kept = new Set(restored)
      expect(acked.slice(0, ackedBefore).filter((id) => !kept.has(id))).toEqual([])
      // One snapshot: the restored events are exactly the first ones the
      // client was told of, in order, with no gap (and none it was not).
      expect(restored).toEqual(acked.slice(0, restored.length))
      // It goes on after the newest seq in the backup.
      const emitted = await runCli(['emit', '--url', b.url, '--type', 'bk.after'])
      expect(emitted.code, emitted.stderr).toBe(0)
      expect(emitted.stdout.trim() > (restored.at(-1) as string)).toBe(true)
    } finally {
      stop = true
      await ingest.catch(() => {})
    }
  })

  it('refuses an existing directory that is not empty (exit 2), and a token without the admin scope (exit 1), writing nothing', async () => {
    const dir = await tempDir()
    const admin = 'admin-token-0123456789abcdef'
    const read = 'read-token-0123456789abcdefgh'
    const tokens = join(dir, 'tokens')
    await writeFile(tokens, `admin ${admin}\nread ${read}\n`, { mode: 0o600 })
    const m = await startMember({
      name: 'bk-t',
      dataDir: join(dir, 'data'),
      args: ['--tokens-file', tokens],
    })
    const full = join(dir, 'full')
    await mkdir(full)
    await writeFile(join(full, 'keep.txt'), 'mine')
    const refused = await runCli(['backup', '--url', m.url, '--token', admin, '--out', full])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/--out .*full exists and is not empty/)
    expect(await readdir(full)).toEqual(['keep.txt'])

    const out = join(dir, 'new')
    const forbidden = await runCli(['backup', '--url', m.url, '--token', read, '--out', out])
    expect(forbidden.code).toBe(1)
    expect(forbidden.stderr).toMatch(/403: .*scope "admin"/)
    await expect(readdir(out)).rejects.toThrow(/ENOENT/)

    const missing = await runCli(['backup', '--url', m.url, '--token', admin])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/--out/)

    // An empty directory is taken.
    const empty = join(dir, 'empty')
    await mkdir(empty)
    const ok = await runCli(['backup', '--url', m.url, '--token', admin, '--out', empty])
    expect(ok.code, ok.stderr).toBe(0)
    expect((await readdir(empty)).sort()).toEqual(['backup.json', 'chorus'])
  })
})
