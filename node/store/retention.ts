// Background deletion of what the member no longer keeps: events older than
// the retention period, rollup buckets older than their resolution's own
// (longer) retention, and idempotency keys older than their lifetime. Runs
// at start and then every RETENTION_INTERVAL_MS; deletes by range, so it does
// not hold up ingest.

import type { Logger } from '../log.ts'
import type { EventLog } from './event-log.ts'

/** How often retention runs, in ms. */
export const RETENTION_INTERVAL_MS = 60_000

export interface RetentionInit {
  log: EventLog
  retentionMs: number
  /** Per resolution of RESOLUTIONS_MS. */
  rollupRetentionMs: readonly number[]
  idempotencyTtlMs: number
  clock: () => number
  logger: Logger
  intervalMs?: number
}

export interface Retention {
  /** Runs one pass now; resolves when it is done. */
  runOnce(): Promise<void>
  stop(): Promise<void>
}

export function startRetention(init: RetentionInit): Retention {
  const { log, logger } = init
  let running: Promise<void> | undefined
  let stopped = false

  const runOnce = (): Promise<void> => {
    running ??= (async () => {
      try {
        const now = init.clock()
        await log.deleteEventsBefore(Math.max(0, now - init.retentionMs))
        for (const [resolution, keep] of init.rollupRetentionMs.entries()) {
          await log.deleteRollupsBefore(resolution, Math.max(0, now - keep))
        }
        const keys = await log.deleteIdempotencyBefore(Math.max(0, now - init.idempotencyTtlMs))
        logger.debug({ idempotencyKeys: keys }, 'retention pass done')
      } catch (err) {
        if (!stopped) logger.warn({ err }, 'retention pass failed; will retry')
      } finally {
        running = undefined
      }
    })()
    return running
  }

  const timer = setInterval(() => void runOnce(), init.intervalMs ?? RETENTION_INTERVAL_MS)
  timer.unref()
  void runOnce()
  return {
    runOnce,
    async stop() {
      stopped = true
      clearInterval(timer)
      await running
    },
  }
}
