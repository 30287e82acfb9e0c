// Background deletion of what the member no longer keeps: events older than
// the retention period, rollup buckets older than their resolution's own
// (longer) retention, and idempotency keys older than their lifetime. Runs
// at start and then every RETENTION_INTERVAL_MS; deletes by range, so it does
// not hold up ingest.
//
// Retention by size (--retention-size, off by default). Every
// SIZE_CHECK_INTERVAL_MS the store's size (EventLog.liveBytes: its current
// files and memtables) is read; over the bound, the oldest events are
// deleted, whole time ranges at once, until what is left is about
// SIZE_TARGET of the bound (the hysteresis: a store just over the bound is
// not cut again at its next event). One cut time for the whole store:
// this member's own events, their type index, and the copies it holds of
// other members' events alike, as --retention treats them, so the member
// keeps the most recent period of everything it stores (a holder with a
// smaller bound keeps a shorter copy than the origin). With the events go
// the rollup buckets whose period ends before the cut, own and held: those
// are older than the oldest kept event. Totals, idempotency keys and the
// member's records stay.
//
// How much to cut: as many of the oldest events as leave the target's worth
// at the bytes per event the store had when last seen under its bound with
// compaction caught up (before that is known, or when it is out of date,
// the size over the target as a share of the size); the number kept is known
// from their seqs (EventLog.eventSpan), and the time that many of the oldest
// end at is found by bisection on countEventsBefore (a few seeks each). A
// size measured over the bound may hold compaction's backlog (new events
// not yet compressed) or deleted ranges not yet rewritten, and cutting on
// it alone would delete far more than the bound needs after a burst.
//
// Space comes back only as RocksDB's compaction rewrites the files a range
// deletion covers (the binding exposes no CompactRange; compaction gives
// files with range tombstones priority, and ingest keeps it running). Until
// the size shows half a cut's space back (against what it would be with
// nothing back: the size at the cut plus the events written since, which
// their seqs count), or as many events as it took have come in since, no
// further cut is made: cutting on a size that still counts deleted events
// would delete the same space twice.

import type { Logger } from '../log.ts'
import type { EventLog } from './event-log.ts'
import { RESOLUTIONS_MS } from './rollup.ts'

/** How often retention runs, in ms. */
export const RETENTION_INTERVAL_MS = 60_000
/** How often the size is checked against --retention-size, in ms. */
export const SIZE_CHECK_INTERVAL_MS = 1000
/** A cut by size leaves the store at about this share of the bound. */
export const SIZE_TARGET = 0.8
/** How often, at most, the bytes per event of a store under its bound are measured, in ms. */
const SETTLED_EVERY_MS = 10_000

export interface RetentionInit {
  log: EventLog
  retentionMs: number
  /** Per resolution of RESOLUTIONS_MS. */
  rollupRetentionMs: readonly number[]
  idempotencyTtlMs: number
  /** Bound of the store's size in bytes (--retention-size); undefined: none. */
  sizeBytes?: number
  clock: () => number
  logger: Logger
  intervalMs?: number
  /** How often the size is checked, ms. Default SIZE_CHECK_INTERVAL_MS. */
  sizeIntervalMs?: number
}

/** Events deleted since start, by why: older than --retention, or over --retention-size. */
export interface RetentionCounts {
  age: number
  size: number
}

export interface Retention {
  /** Runs one pass now; resolves when it is done. */
  runOnce(): Promise<void>
  /** Checks the size against the bound now, and cuts if it is over; resolves when done. */
  checkSize(): Promise<void>
  /** Events deleted since start, by reason (counted from their seqs). */
  deleted(): RetentionCounts
  stop(): Promise<void>
}

export function startRetention(init: RetentionInit): Retention {
  const { log, logger } = init
  let stopped = false
  const counts: RetentionCounts = { age: 0, size: 0 }
  // One pass at a time, age or size: both delete ranges and count what they delete.
  let queue: Promise<void> = Promise.resolve()
  const serially = (task: () => Promise<void>): Promise<void> => {
    const next = queue.then(task)
    queue = next.catch(() => {})
    return next
  }

  let running: Promise<void> | undefined
  const runOnce = (): Promise<void> => {
    running ??= serially(async () => {
      try {
        const now = init.clock()
        counts.age += await log.deleteEventsBefore(Math.max(0, now - init.retentionMs))
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
    })
    return running
  }

  /**
   * The last cut by size whose space has not been seen back yet: the size
   * then, the bytes it should free (its events at the store's density then),
   * and how many events the store had taken in by then (appendedSoFar).
   */
  let pending:
    | { sizeAtCut: number; density: number; events: number; bytes: number; appended: number }
    | undefined
  let warnedEmpty = false
  let checking: Promise<void> | undefined
  const checkSize = (): Promise<void> => {
    const bound = init.sizeBytes
    if (bound === undefined || stopped) return Promise.resolve()
    checking ??= serially(async () => {
      try {
        await cutToSize(bound)
      } catch (err) {
        if (!stopped) logger.warn({ err }, 'retention by size failed; will retry')
      } finally {
        checking = undefined
      }
    })
    return checking
  }

  /** Events this store has taken in, own and held, counted by their seqs (in memory, no read). */
  const appendedSoFar = (): number =>
    log.heldMarks().reduce((sum, mark) => sum + mark.seq, log.lastSeq)

  /**
   * Bytes per kept event when compaction had last caught up with writes
   * (no backlog): what an event costs the store once its levels are as
   * RocksDB leaves them. Undefined until first seen.
   */
  let settledDensity: number | undefined
  let settledAt = Number.NEGATIVE_INFINITY

  async function cutToSize(bound: number): Promise<void> {
    const size = log.liveBytes()
    const backlog = log.compactionBacklogBytes()
    if (size <= bound) {
      pending = undefined
      warnedEmpty = false
      // Learnt ahead of the first cut, from a store large enough to tell.
      if (backlog === 0 && size > bound / 4 && init.clock() - settledAt > SETTLED_EVERY_MS) {
        settledAt = init.clock()
        const span = await log.eventSpan()
        if (span !== undefined) settledDensity = size / span.count
      }
      return
    }
    // The size less what the last cut should still free: the kept events' share.
    let effective = size
    if (pending !== undefined) {
      // What the size would be had nothing of the cut come back: the size
      // then, plus what was written since at the same density.
      const written = Math.max(0, appendedSoFar() - pending.appended)
      const back = pending.sizeAtCut + written * pending.density - size
      // Wait for half the cut's space, unless as many events as it took have come in since.
      if (back < pending.bytes / 2 && written < pending.events) return
      effective = size - Math.min(pending.bytes, Math.max(0, pending.bytes - back))
      if (effective <= bound) return
      pending = undefined
    }
    const span = await log.eventSpan()
    if (span === undefined || span.count < 2) {
      if (!warnedEmpty)
        logger.warn(
          { sizeBytes: size, boundBytes: bound },
          'the store is over --retention-size with no events left to delete (rollups, idempotency keys and records stay); raise the bound',
        )
      warnedEmpty = true
      return
    }
    const target = bound * SIZE_TARGET
    // Cut to as many events as fit the target at the density the store had
    // under its bound: a size measured over it may hold compaction's backlog
    // (new events not yet compressed) or deleted ranges not yet rewritten,
    // neither of which deleting more events frees any sooner.
    const byShare = span.count * (1 - target / effective)
    let wanted = settledDensity === undefined ? byShare : span.count - target / settledDensity
    // Over the bound with compaction caught up and nothing pending, yet the
    // kept events fit: they have grown larger, and the density is learnt again.
    if (wanted < 1 && backlog === 0) {
      settledDensity = effective / span.count
      wanted = byShare
    }
    if (wanted < 1) return
    // Never every event: the newest are kept whatever the bound.
    const drop = Math.min(span.count - 1, Math.ceil(wanted))
    const cut = await cutTime(drop, span.oldestTs, span.newestTs)
    const deleted = await log.deleteEventsBefore(cut)
    for (const [resolution, period] of RESOLUTIONS_MS.entries())
      await log.deleteRollupsBefore(resolution, Math.max(0, cut - period + 1))
    counts.size += deleted
    const density = effective / span.count
    pending = {
      sizeAtCut: size,
      density,
      events: deleted,
      bytes: deleted * density,
      appended: appendedSoFar(),
    }
    logger.info(
      {
        sizeBytes: size,
        boundBytes: bound,
        compactionBacklogBytes: backlog,
        before: new Date(cut).toISOString(),
        events: deleted,
        kept: span.count - deleted,
      },
      'the store is over --retention-size: deleted its oldest events',
    )
  }

  /**
   * The earliest time with at least `drop` kept events before it, bisected
   * between the oldest event's ts (none before it) and the newest's (not
   * past it: events of the newest stamp are always kept).
   */
  async function cutTime(drop: number, oldestTs: number, newestTs: number): Promise<number> {
    let lo = oldestTs
    let hi = newestTs
    if (hi <= lo || (await log.countEventsBefore(hi)) < drop) return hi
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if ((await log.countEventsBefore(mid)) >= drop) hi = mid
      else lo = mid
    }
    return hi
  }

  const timer = setInterval(() => void runOnce(), init.intervalMs ?? RETENTION_INTERVAL_MS)
  timer.unref()
  const sizeTimer =
    init.sizeBytes === undefined
      ? undefined
      : setInterval(() => void checkSize(), init.sizeIntervalMs ?? SIZE_CHECK_INTERVAL_MS)
  sizeTimer?.unref()
  void runOnce()
  return {
    runOnce,
    checkSize,
    deleted: () => ({ ...counts }),
    async stop() {
      stopped = true
      clearInterval(timer)
      clearInterval(sizeTimer)
      await queue
    },
  }
}
