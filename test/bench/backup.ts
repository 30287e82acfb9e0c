// The `backup` part of npm run bench: one member takes N events (4
// clients, 1,000-event requests), then `chorus backup` copies it while it
// runs: seconds, records and events/s of the copy; beside it, in the same
// run, a raw scan of the same store through the binding once the member has
// stopped (the floor of any copy that reads every record), and how long a
// member started from the backup takes to answer /readyz.

import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { RocksLevel } from '@nxtedition/rocksdb'
import { round, sampleEvent, startBenchMember } from './lib.ts'

const CLI = join(import.meta.dirname, '..', '..', 'node', 'cli.ts')
const run = promisify(execFile)

export interface BackupFigures {
  events: number
  records: number
  backupSeconds: number
  backupEventsPerS: number
  backupMiBPerS: number
  rawScanSeconds: number
  /** Backup time over the raw scan's. */
  vsRawScan: number
  restoreReadyMs: number
}

async function ingest(url: string, total: number): Promise<void> {
  const body = Array.from({ length: 1000 }, (_, i) => sampleEvent(i)).join('\n')
  let sent = 0
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (sent < total) {
        sent += 1000
        const r = await fetch(`${url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
        await r.arrayBuffer()
        if (r.status !== 201) throw new Error(`ingest answered ${r.status}`)
      }
    }),
  )
}

/** Every record of a store read through one iterator, as the backup reads it: seconds. */
async function rawScan(dir: string): Promise<number> {
  const db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open({ createIfMissing: false })
  const t0 = performance.now()
  const it = db.iterator({})
  for (;;) {
    const rows = await it.nextv(1000)
    if (rows.length === 0) break
  }
  await it.close()
  const seconds = (performance.now() - t0) / 1000
  await db.close()
  return seconds
}

export async function backupBench(total: number): Promise<BackupFigures> {
  const member = await startBenchMember('backup', ['--replicas', '1'])
  const out = join(await mkdtemp(join(tmpdir(), 'chorus-bench-backup-')), 'copy')
  try {
    await ingest(member.url, total)
    const t0 = performance.now()
    await run(process.execPath, [CLI, 'backup', '--url', member.url, '--out', out], {
      maxBuffer: 1024 * 1024,
    })
    const backupSeconds = (performance.now() - t0) / 1000
    const manifest = JSON.parse(readFileSync(join(out, 'backup.json'), 'utf8')) as {
      records: number
      bytes: number
    }
    // Stopped, its store kept for the raw scan (stop() below removes it).
    const exited = new Promise((resolve) => member.child.once('exit', resolve))
    member.child.kill('SIGTERM')
    await exited
    const rawScanSeconds = await rawScan(join(member.dataDir, 'chorus', 'store'))
    const r0 = performance.now()
    const restored = await startBenchMember('backup', ['--replicas', '1', '--data-dir', out])
    for (;;) {
      const ready = await fetch(`${restored.url}/readyz`).catch(() => undefined)
      if (ready?.status === 200) break
      if (performance.now() - r0 > 60_000)
        throw new Error('the restored member was not ready in 60 s')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const restoreReadyMs = Math.round(performance.now() - r0)
    await restored.stop()
    return {
      events: total,
      records: manifest.records,
      backupSeconds: round(backupSeconds, 2),
      backupEventsPerS: Math.round(total / backupSeconds),
      backupMiBPerS: round(manifest.bytes / 1024 / 1024 / backupSeconds, 1),
      rawScanSeconds: round(rawScanSeconds, 2),
      vsRawScan: round(backupSeconds / rawScanSeconds, 2),
      restoreReadyMs,
    }
  } finally {
    await member.stop().catch(() => {})
    await rm(join(out, '..'), { recursive: true, force: true })
  }
}
