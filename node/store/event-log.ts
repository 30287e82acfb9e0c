// The member's event log on RocksDB: it stamps events with `ts` and `seq`,
// writes them with their index entries and the member's counters in one
// atomic, synced batch, and reads them back by id or by key range. The key
// layout is in keys.ts (this file builds and parses keys only through it),
// the value format in protocol/event-value.ts (through codec.ts); reading events by period, type and filter
// is event-scan.ts.
//
// `seq` and `ts` survive crashes because the counters are written in the same
// batch as the events they numbered: after a restart the log continues from
// the last batch that reached the WAL, and nothing acknowledged (synced) can
// be behind it.
//
// Clock jumps. Ids sort by (ts, member, seq) and a member's ts never goes
// backwards (the design's contract: cursors, `after=<id>` tails and the open
// rollup buckets all rely on it), so a stamp, once written, bounds every
// later one from below. Re-basing ts backwards after a bad jump would break
// that order, so the log does the other thing: it never follows a jump.
// Between stamps it compares the wall clock with a monotonic clock (time
// since boot, which jumps neither way and counts time suspended): while they agree within
// `maxClockJumpMs` (default 1 h) stamps follow the wall clock, small
// corrections included (a step back is absorbed by holding ts still, at most
// that bound). When the wall clock moves further, either way, stamps follow
// the monotonic clock from the last time the two agreed, the jump is logged
// and `clockJumpMs` reports it (health turns warning, rule `clock-jump`),
// until the wall clock comes back within the bound. So a clock that leaps a
// year ahead and back leaves no stamp a year ahead, and nothing to catch up.
// The cost: a real correction larger than the bound made while the member
// runs is followed only after a restart, where the wall clock is trusted
// again (the warning says so); and a member started with its clock far ahead
// stamps with it, after which a return of the clock holds ts still until real
// time catches up (reported by `clockJumpMs` too).
//
// A rollup bucket that cannot be decoded (written by an older member before
// values were bounded, or damaged) is logged, counted (`corruptBuckets`) and
// skipped, at open and in every scan: one bad record must neither stop the
// member from starting nor fail every rollup query over its period. An open
// bucket skipped at start is written afresh by the next event in its slot.

import { uptime } from 'node:os'
import { RocksLevel } from '@nxtedition/rocksdb'
import { Packr } from 'msgpackr'
import type { EventFields } from '../../protocol/event-value.ts'
import type { StoredEvent } from '../../protocol/slice.ts'
import { DataDirError, RestoringError, StorageFullError, StoreUnavailableError } from '../errors.ts'
import type { EventInput } from '../event/event.ts'
import { severityRank } from '../event/event.ts'
import {
  encodeId,
  ID_BYTES,
  MAX_SEQ,
  MAX_TS,
  memberTag,
  seqOfIdBytes,
  TAG_BYTES,
  tagHex,
  tsOfIdBytes,
  writeIdBytes,
} from '../event/id.ts'
import type { Logger } from '../log.ts'
import { decodeEventValue, encodeEventValue } from './codec.ts'
import {
  EVENT_PREFIX,
  type EventKeys,
  eventKey,
  eventKeyRange,
  heldCatalogueKey,
  heldCatalogueRange,
  heldKeys,
  heldMarkKey,
  heldMarkRange,
  heldRanges,
  heldRollupKey,
  heldRollupKeyAt,
  heldTotalKey,
  heldTotalsRange,
  idAtTs,
  idempotencyAgeKey,
  idempotencyAgeRange,
  idempotencyKey,
  idempotencyKeyOfAgeKey,
  idOfEventKey,
  metaKey,
  OWN_KEYS,
  parseHeldCatalogueKey,
  parseHeldTotalKey,
  parseRollupKey,
  parseTotalKey,
  rollupKey,
  rollupKeyAt,
  seqOfEventKey,
  tagOfHeldMarkKey,
  totalKey,
  totalsRange,
  typeCatalogueKey,
  typeCatalogueRange,
  typeIndexKey,
  typeOfCatalogueKey,
  typePrefix,
} from './keys.ts'
import {
  addEvent,
  type Bucket,
  copyBucket,
  decodeBucket,
  emptyBucket,
  encodeBucket,
  mergeBucket,
  RESOLUTIONS_MS,
} from './rollup.ts'

/** Version of the on-disk layout. A member refuses a store with a newer one. */
export const STORE_FORMAT = 1

const FORMAT_KEY = metaKey('format')
const COUNTERS_KEY = metaKey('counters')
const meta = new Packr({ useRecords: false, mapsAsObjects: true })

export interface EventLogInit {
  /** Directory of the RocksDB store; created if missing. */
  dir: string
  /** Tag of the owning member, written into every id. */
  tag: Uint8Array
  /** Wall clock in ms; injectable for tests. Default `Date.now`. */
  clock?: () => number
  /** fsync the WAL before a write returns. Default true; off only in benchmarks of the floor. */
  sync?: boolean
  /** Where corrupt records and clock jumps are reported. Default: not reported. */
  logger?: Logger
  /**
   * Monotonic clock in ms, the reference for clock jumps. Default time since
   * boot (`sinceBoot`); when `clock` is given without it, `clock` itself, so a
   * test clock that steps days ahead is followed as it steps.
   */
  monotonic?: () => number
  /**
   * Largest step of the wall clock, either way, that stamps follow, in ms;
   * beyond it they follow the monotonic clock (see the module comment).
   * Default DEFAULT_MAX_CLOCK_JUMP_MS, 1 h.
   */
  maxClockJumpMs?: number
  /**
   * RocksDB's share of the memory budget (see memory.ts). Default: the
   * binding's own defaults (an 8 MiB block cache, 64 MiB memtables).
   */
  memory?: { blockCacheBytes: number; memtableBytes: number }
}

/** What RocksDB holds in memory now, bytes (its own properties). */
export interface StoreMemory {
  /** Block cache in use: data blocks, and table readers' index and filter blocks. */
  blockCache: number
  /** Memtables, the active one and those waiting to be flushed. */
  memtables: number
  /** Table readers outside the block cache. */
  tableReaders: number
}

/**
 * Open options that hold RocksDB to `memory`: one block cache that also
 * holds every table's index and filter blocks (cacheIndexAndFilterBlocks),
 * so table readers are charged to it rather than growing with the number of
 * files, and memtables sized by memtableMemoryBudget. The binding applies
 * that budget only with a compaction style: `level` makes memtables a
 * quarter of it each (flushed two at a time, at most six before writes
 * stall) and sizes levels and files from it, which suits a log keyed by
 * time (new keys land past the old ones, so compaction mostly moves files).
 */
function storeOptions(memory: EventLogInit['memory']) {
  if (memory === undefined) return {}
  return {
    cacheSize: memory.blockCacheBytes,
    cacheIndexAndFilterBlocks: true,
    compaction: 'level' as const,
    memtableMemoryBudget: memory.memtableBytes,
  }
}

/** Default largest wall-clock step that stamps follow: 1 h. */
export const DEFAULT_MAX_CLOCK_JUMP_MS = 3_600_000

/**
 * Time since boot in ms (10 ms steps), the default reference for clock
 * jumps: on Linux it counts time suspended (CLOCK_BOOTTIME), where
 * performance.now does not, so a server woken after hours, or a VM resumed,
 * is not taken for a clock that jumped ahead, and its stamps follow the
 * wall clock at once.
 */
export const sinceBoot = (): number => uptime() * 1000

/** One request's worth of events, written together with the others of a group commit. */
export interface AppendGroup {
  events: readonly EventInput[]
  /** Remembered with the ids, so a retry with the same key answers the same ids. */
  idempotency?: { key: string; hash: string; atMs: number }
}

export interface IdempotencyRecord {
  ids: string[]
  hash: string
  atMs: number
}

export interface RangeScan {
  gt?: Uint8Array
  gte?: Uint8Array
  lt?: Uint8Array
  lte?: Uint8Array
  reverse?: boolean
}

/** Bytes a snapshot reads at most per batch (and then one record more). */
export const SNAPSHOT_BATCH_BYTES = 1024 * 1024

/**
 * Every record of the store, in key order, as it was at one moment: one
 * RocksDB iterator over the whole keyspace, made when the snapshot is
 * taken. An iterator reads from the implicit snapshot RocksDB takes when it
 * is created (no `snapshot` in its read options: the binding exposes no
 * explicit one), so a write made later is not in it and a batch is in it
 * whole or not at all: events, their counters and rollups agree. While it
 * is open it pins the memtables and files it reads (compaction cannot delete
 * them), so it is closed as soon as it is read or abandoned.
 */
export interface StoreSnapshot {
  /** The next records, about SNAPSHOT_BATCH_BYTES of them; empty at the end. */
  next(): Promise<Array<[Buffer, Buffer]>>
  /** Closes the iterator; idempotent. */
  close(): Promise<void>
}

/**
 * One member's events as this store keeps them, this member's own or an
 * origin's held here: what a scan reads (event-scan.ts).
 */
export interface EventSpace {
  /** The keys its events and their type index are kept under. */
  readonly keys: EventKeys
  /** Newest `seq` it holds; 0 before the first event. */
  readonly lastSeq: number
  /** The `ts` of that event; 0 before the first. */
  readonly lastTs: number
  /** Every event type it holds, sorted. */
  types(): readonly string[]
  /** Values of the events with these ids (16 bytes each), `undefined` where absent. */
  getMany(ids: readonly Uint8Array[]): Promise<Array<Buffer | undefined>>
  /**
   * Iterates raw entries of a key range in batches: the first of up to
   * `firstBatch` rows, each later one twice the last, up to `maxBatch`.
   */
  scan(
    range: RangeScan,
    firstBatch: number,
    maxBatch: number,
  ): AsyncGenerator<Array<[Buffer, Buffer]>>
}

/** How far this member holds another member's (an origin's) events. */
export interface HeldMark {
  /** The origin's peer id. */
  peerId: string
  /** Its 40-bit id tag. */
  tag: Uint8Array
  /** Newest `seq` held (0: none yet). */
  seq: number
  /** The 16 id bytes of the newest event held; undefined when none is. */
  lastId: Uint8Array | undefined
}

/** An origin's events held here, as a scan reads them, and how far they go. */
export type HeldSpace = EventSpace & HeldMark

/** An event to hold: as stored, with its fields when the caller has read them already (checking the value). */
export type HeldInput = StoredEvent & { fields?: EventFields }

export class HeldOrderError extends Error {
  override readonly name = 'HeldOrderError'
}

export interface EventLog extends EventSpace {
  readonly tag: Uint8Array
  /** Newest `seq` written; 0 before the first event. */
  readonly lastSeq: number
  /** Newest `ts` written; ts never goes below it. */
  readonly lastTs: number
  /**
   * How far, in ms, the member's stamps are from its wall clock beyond what
   * it follows: the size of a jump it is not following, or how far the last
   * stamp is ahead of the wall clock when that is more than the bound; 0
   * when stamps follow the wall clock.
   */
  readonly clockJumpMs: number
  /** Every event type ever logged here, sorted. */
  types(): readonly string[]
  /**
   * Stamps and writes the groups' events in one batch, synced when the log
   * is, and returns each group's ids in order. Runs on the calling thread.
   * Throws StorageFullError or StoreUnavailableError and then has written
   * nothing and advanced no counter.
   */
  append(groups: readonly AppendGroup[]): string[][]
  /** Calls `listener` after every append, own or held; returns its removal. */
  onAppend(listener: (tag: Uint8Array) => void): () => void
  /** The events of the origin with this tag held here; undefined when none are. */
  held(tag: Uint8Array): HeldSpace | undefined
  /** Every origin whose events are held here, and how far. */
  heldMarks(): HeldMark[]
  /** The events of the member with this peer id kept here: its own, or a copy; undefined when none are. */
  spaceOf(peerId: string): EventSpace | undefined
  /**
   * Stores an origin's events as it stored them (ids and values untouched),
   * synced, with their type index: each must carry the origin's tag and
   * follow the last held in both id and `seq` order (HeldOrderError if not;
   * then nothing is written). Resolves to the new mark. The write runs off
   * the event loop (unlike append's group commit, which is the member's
   * own ingest): a holder's fsync never holds up the member's requests.
   * One origin's batches are written one after another (its stream waits
   * for each).
   */
  appendHeld(
    origin: { peerId: string; tag: Uint8Array },
    events: ReadonlyArray<HeldInput>,
  ): Promise<HeldMark>
  /** Drops every held event of an origin, its index and its mark. */
  dropHeld(tag: Uint8Array): Promise<void>
  /**
   * Refuses every append (RestoringError) until `advanceTo`: the member's
   * data dir was replaced, and its newest `seq` is to be learnt from the
   * holders of its events first, so that none is used twice.
   */
  seal(reason: string): void
  /** True while sealed. */
  readonly sealed: boolean
  /** Continues `seq` and `ts` from at least these (synced), and takes appends again. */
  advanceTo(seq: number, ts: number): void
  /**
   * Stores this member's own events as a holder kept them (restoring a
   * replaced data dir): with their index entries, rollups and totals, in
   * one synced batch; events already here are skipped, so a restore that
   * is interrupted and resumed counts nothing twice. Each must carry this
   * member's tag and a `seq` it has used. Returns how many were new.
   */
  appendRestored(events: ReadonlyArray<HeldInput>): number
  findIdempotency(key: string): Promise<IdempotencyRecord | undefined>
  /**
   * Deletes events with `ts` below `beforeTs` and their index entries, own
   * and held copies alike; resolves to how many (countEventsBefore's count).
   */
  deleteEventsBefore(beforeTs: number): Promise<number>
  /**
   * How many events kept here, own and held copies, have `ts` below
   * `beforeTs`: counted from their `seq` (one member's are consecutive, and
   * retention deletes from the oldest), so two seeks per member whose events
   * are kept, however many there are.
   */
  countEventsBefore(beforeTs: number): Promise<number>
  /** The events kept here, own and held, as countEventsBefore counts them, and the `ts` of the oldest and newest; undefined when none is. */
  eventSpan(): Promise<{ count: number; oldestTs: number; newestTs: number } | undefined>
  /**
   * Every record of the store as it is when this is called, for a backup
   * (see StoreSnapshot). Throws StoreUnavailableError once the store is closed.
   */
  snapshot(): StoreSnapshot
  /** Deletes idempotency records remembered before `beforeMs`; returns how many. */
  deleteIdempotencyBefore(beforeMs: number): Promise<number>
  /**
   * The write error that stopped the store, if any. After a failed write
   * RocksDB refuses further writes until the member is restarted.
   */
  readonly writeError: Error | undefined
  /** Scans made with scan() still open, each holding a RocksDB iterator (and the data it pins). */
  readonly openScans: number
  /** Rollup buckets found undecodable and skipped since the store was opened (at open and in scans). */
  readonly corruptBuckets: number
  /** Events ever logged here, by type and severity rank (kept in the store, so they survive restarts). */
  totals(): Array<{ type: string; severity: number; count: number }>
  /** The events of `origin` (a peer id) held here, by type and severity rank; empty when none are. */
  heldTotals(origin: string): Array<{ type: string; severity: number; count: number }>
  /**
   * Rollup buckets of one resolution (index into RESOLUTIONS_MS) starting in
   * [fromMs, toMs), in time order: this member's, or those of the origin
   * with tag `held` that it holds.
   */
  scanRollups(
    resolution: number,
    fromMs: number,
    toMs: number,
    held?: Uint8Array,
  ): AsyncGenerator<Array<{ startMs: number; type: string; severity: number; bucket: Bucket }>>
  /** Deletes the buckets of one resolution that start before `beforeMs`. */
  deleteRollupsBefore(resolution: number, beforeMs: number): Promise<void>
  /** A small record of the member's own (e.g. the health rules), by name; undefined when absent. */
  getRecord(name: string): Promise<Buffer | undefined>
  /** Writes such a record, synced. */
  putRecord(name: string, value: Uint8Array): Promise<void>
  /** Approximate bytes on disk (SST files plus memtables). */
  sizeBytes(): number
  /**
   * Bytes of the store's current SST files plus memtables: sizeBytes less
   * the files that only an open iterator (a scan, a backup) still keeps,
   * which deleting records cannot free. What --retention-size bounds.
   */
  liveBytes(): number
  /**
   * Bytes RocksDB's compaction has yet to rewrite to bring its levels back
   * to their targets (its estimate): 0 once it has caught up with writes.
   */
  compactionBacklogBytes(): number
  /** What RocksDB holds in memory now. */
  memory(): StoreMemory
  close(): Promise<void>
}

function isNoSpace(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err)
  return /No space left|ENOSPC/i.test(message)
}

export async function openEventLog(init: EventLogInit): Promise<EventLog> {
  const db = new RocksLevel(init.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  try {
    await db.open({ createIfMissing: true, infoLogLevel: 'error', ...storeOptions(init.memory) })
  } catch (err) {
    const message = err instanceof Error ? `${err.message} ${String(err.cause ?? '')}` : String(err)
    if (/lock/i.test(message)) {
      throw new DataDirError(
        `the store at ${init.dir} is in use by another chorus process; stop it or choose another --data-dir`,
      )
    }
    throw new DataDirError(`cannot open the store at ${init.dir}: ${message}`)
  }

  const clock = init.clock ?? Date.now
  const monotonic = init.monotonic ?? (init.clock === undefined ? sinceBoot : init.clock)
  const maxClockJumpMs = init.maxClockJumpMs ?? DEFAULT_MAX_CLOCK_JUMP_MS
  const sync = init.sync ?? true
  const tag = init.tag

  /** Origins whose events are held here, by tag (hex). */
  const held = new Map<string, HeldOrigin>()
  let format: number | undefined
  let lastSeq = 0
  let lastTs = 0
  const types: string[] = []
  try {
    const [formatValue, countersValue] = await db.getMany([FORMAT_KEY, COUNTERS_KEY])
    format = formatValue === undefined ? undefined : (meta.unpack(formatValue) as number)
    if (countersValue !== undefined) {
      const counters = meta.unpack(countersValue) as [number, number]
      lastSeq = counters[0]
      lastTs = counters[1]
    }
    if (format !== undefined && format > STORE_FORMAT) {
      throw new DataDirError(
        `the store at ${init.dir} has format ${format}, newer than this chorus understands (${STORE_FORMAT}); run a newer chorus`,
      )
    }
    if (format === undefined) {
      // A new store, or one from before formats were recorded: format 1 is
      // the first layout, so recording it is the whole upgrade.
      const batch = db.batch()
      batch.put(FORMAT_KEY, meta.pack(STORE_FORMAT))
      await batch.write({ sync: true })
    }
    const it = db.iterator({ ...typeCatalogueRange(), values: false })
    try {
      for (;;) {
        const rows = await it.nextv(1000)
        if (rows.length === 0) break
        for (const [key] of rows) types.push(typeOfCatalogueKey(key))
      }
    } finally {
      await it.close()
    }
    for await (const rows of scanRange(db, heldMarkRange())) {
      for (const [key, value] of rows) {
        const [peerId, seq, lastId] = meta.unpack(value) as [string, number, Uint8Array | null]
        const origin = newHeld(peerId, Buffer.from(tagOfHeldMarkKey(key)))
        origin.seq = seq
        origin.lastId = lastId === null ? undefined : new Uint8Array(lastId)
        held.set(tagHex(origin.tag), origin)
      }
    }
    for await (const rows of scanRange(db, heldCatalogueRange())) {
      for (const [key] of rows) {
        const { tag: originTag, type } = parseHeldCatalogueKey(key)
        held.get(tagHex(originTag))?.typeSet.add(type)
      }
    }
    for (const origin of held.values()) origin.sorted = [...origin.typeSet].sort()
    for await (const rows of scanRange(db, heldTotalsRange())) {
      for (const [key, value] of rows) {
        const { tag: originTag, type, severity } = parseHeldTotalKey(key)
        held
          .get(tagHex(originTag))
          ?.totals.set(totalName(type, severity), meta.unpack(value) as number)
      }
    }
  } catch (err) {
    await db.close()
    throw err
  }
  // The last moment the wall and monotonic clocks agreed (see the module comment).
  let anchorWall = clock()
  let anchorMono = monotonic()
  let jumpedMs = 0
  /** The time to stamp now, before lastTs holds it: the wall clock, or the monotonic one across a jump. */
  function stampTime(): number {
    const wall = clock()
    const mono = monotonic()
    const expected = anchorWall + (mono - anchorMono)
    const off = wall - expected
    if (Math.abs(off) <= maxClockJumpMs) {
      if (jumpedMs !== 0)
        init.logger?.warn({ offMs: off }, 'the wall clock is back; stamps follow it again')
      jumpedMs = 0
      anchorWall = wall
      anchorMono = mono
      return wall
    }
    if (jumpedMs === 0)
      init.logger?.warn(
        { jumpMs: off, maxClockJumpMs },
        'the wall clock jumped further than --max-clock-jump; stamps follow the monotonic clock until it is back (or the member restarts)',
      )
    jumpedMs = off
    return Math.round(expected)
  }
  let corruptBuckets = 0
  /** The bucket of a 'B' record, or undefined (logged and counted) when it cannot be decoded. */
  function readBucket(key: Buffer, value: Buffer, tagged = false): Bucket | undefined {
    try {
      return decodeBucket(value)
    } catch (err) {
      if ((err as Error).name !== 'CorruptBucketError') throw err
      corruptBuckets++
      const { resolution, startMs, type, severity } = parseRollupKey(key, tagged)
      init.logger?.warn(
        { resolution, startMs, type, severity, reason: (err as Error).message, corruptBuckets },
        'skipped a rollup bucket that cannot be decoded',
      )
      return undefined
    }
  }
  // Rollups and totals: the buckets still open (the current one of each
  // resolution, type and severity: ts never goes back, so no older bucket
  // is written again) and every total, so that append() can write their new
  // values in the same batch as the events without reading the store.
  const openBuckets = new Map<string, OpenBucket>()
  const totals = new Map<string, number>()
  try {
    for await (const rows of scanRange(db, totalsRange())) {
      for (const [key, value] of rows) {
        const { type, severity } = parseTotalKey(key)
        totals.set(totalName(type, severity), meta.unpack(value) as number)
      }
    }
    for (let r = 0; r < RESOLUTIONS_MS.length; r++) {
      const res = RESOLUTIONS_MS[r] as number
      const range = { gte: rollupKeyAt(r, lastTs - (lastTs % res)), lt: rollupKeyAt(r + 1, 0) }
      for await (const rows of scanRange(db, range)) {
        for (const [key, value] of rows) {
          const bucket = readBucket(key, value)
          if (bucket === undefined) continue
          const { startMs } = parseRollupKey(key)
          openBuckets.set(key.toString('latin1'), { key, resolution: r, startMs, bucket })
        }
      }
    }
  } catch (err) {
    await db.close()
    throw err
  }
  const typeSet = new Set(types)
  const typePrefixes = new Map<string, Buffer>()
  let sortedTypes: readonly string[] = [...types].sort()
  let closed = false
  let writeError: Error | undefined
  /** Why appends are refused, while the store is sealed (see seal). */
  let sealedBy: string | undefined
  let openScans = 0
  /** A numeric RocksDB property; 0 once closed or when RocksDB has none. */
  const property = (name: string): number => {
    const n = closed ? 0 : Number(db.getProperty(name))
    return Number.isFinite(n) ? n : 0
  }

  const appendListeners = new Set<(tag: Uint8Array) => void>()
  /** The write under way of each origin held, by tag (hex). */
  const heldWrites = new Map<string, Promise<HeldMark>>()
  const appended = (appendedTag: Uint8Array) => {
    for (const listener of appendListeners) listener(appendedTag)
  }

  /** A held origin as a scan reads it. */
  function heldSpace(origin: HeldOrigin): HeldSpace {
    return {
      keys: origin.keys,
      peerId: origin.peerId,
      tag: origin.tag,
      get seq() {
        return origin.seq
      },
      get lastSeq() {
        return origin.seq
      },
      get lastId() {
        return origin.lastId
      },
      get lastTs() {
        return origin.lastId === undefined ? 0 : tsOfIdBytes(origin.lastId)
      },
      types: () => origin.sorted,
      getMany: (ids) => db.getMany(ids.map((id) => eventKey(id, origin.keys.time))),
      scan: (range, firstBatch, maxBatch) => scanRows(range, firstBatch, maxBatch),
    }
  }

  async function* scanRows(
    range: RangeScan,
    firstBatch: number,
    maxBatch: number,
  ): AsyncGenerator<Array<[Buffer, Buffer]>> {
    const it = db.iterator({ ...range, keys: true, values: true })
    openScans++
    let size = Math.min(firstBatch, maxBatch)
    try {
      for (;;) {
        const rows = await it.nextv(size)
        if (rows.length === 0) return
        yield rows
        size = Math.min(size * 2, maxBatch)
      }
    } finally {
      openScans--
      await it.close()
    }
  }

  /**
   * The error a failed write becomes, and every later write gets: the first
   * failure decides it, since RocksDB keeps refusing writes after it, with a
   * less telling message.
   */
  function writeFailure(err: unknown): Error {
    writeError ??= isNoSpace(err)
      ? new StorageFullError(
          'the disk is full: nothing of this request was stored; free space and restart the member',
        )
      : new StoreUnavailableError(
          `the store refused the write: ${(err as Error).message}; nothing of this request was stored`,
        )
    return writeError
  }

  /**
   * Writes a batch now, on this thread (the binding writes on the calling
   * thread and resolves on the next tick; `write` without await would still
   * have written by now, but its rejection would be lost); a failure becomes
   * writeFailure's error.
   */
  function writeNow(batch: unknown, synced: boolean) {
    try {
      writeBatchSync(batch, synced)
    } catch (err) {
      throw writeFailure(err)
    }
  }

  function prefixOf(type: string): Buffer {
    let prefix = typePrefixes.get(type)
    if (prefix === undefined) {
      prefix = typePrefix(type)
      typePrefixes.set(type, prefix)
    }
    return prefix
  }

  /** Writes an origin's events held here (see appendHeld): checked, then one synced batch. */
  async function writeHeld(
    from: { peerId: string; tag: Uint8Array },
    events: ReadonlyArray<HeldInput>,
  ): Promise<HeldMark> {
    if (closed) throw new StoreUnavailableError('the store is closed')
    if (writeError !== undefined) throw writeError
    const key = tagHex(from.tag)
    if (Buffer.compare(from.tag, tag) === 0)
      throw new HeldOrderError('a member does not hold its own events as another member')
    const origin = held.get(key) ?? newHeld(from.peerId, Buffer.from(from.tag))
    if (origin.peerId !== from.peerId)
      throw new HeldOrderError(`the events held for tag ${key} are another member's`)
    let seq = origin.seq
    let last = origin.lastId
    const batch = db.batch()
    const newTypes: string[] = []
    // The origin's rollups, kept as its own are (bucketDeltas), merged below with what is stored.
    const counted: Array<{ id: Uint8Array; fields: EventFields }> = []
    for (const event of events) {
      const { id, value } = event
      for (let i = 0; i < TAG_BYTES; i++)
        if (id[6 + i] !== from.tag[i])
          throw new HeldOrderError(`an event of another member among ${from.peerId}'s`)
      const eventSeq = seqOfIdBytes(id)
      if (eventSeq <= seq || (last !== undefined && Buffer.compare(id, last) <= 0))
        throw new HeldOrderError(
          `event seq ${eventSeq} of ${from.peerId} does not follow the last held, ${seq}`,
        )
      // The fields rollups need, when the caller has not read them already checking the value.
      const fields = event.fields ?? decodeEventValue(value)
      const { type } = fields
      counted.push({ id, fields })
      batch.put(eventKey(id, origin.keys.time), Buffer.from(value))
      batch.put(typeIndexKey(origin.keys.typePrefix(type), id), EMPTY)
      if (!origin.typeSet.has(type) && !newTypes.includes(type)) {
        newTypes.push(type)
        batch.put(heldCatalogueKey(origin.tag, type), EMPTY)
      }
      seq = eventSeq
      last = id
    }
    const lastId = last === undefined ? undefined : new Uint8Array(last)
    batch.put(heldMarkKey(origin.tag), meta.pack([from.peerId, seq, lastId ?? null]))
    // Only this origin's writes touch its buckets, one after another: merged
    // into the cached bucket while its period is open (held events come in
    // id order, so no older bucket is written again), else into the stored one.
    const deltas = [
      ...bucketDeltas(counted, (r, startMs, type, severity) =>
        heldRollupKey(origin.tag, r, startMs, type, severity),
      ),
    ]
    const uncached = deltas.filter(([name]) => !origin.openBuckets.has(name))
    const stored = await db.getMany(uncached.map(([, d]) => d.key))
    const storedOf = new Map(uncached.map(([name], i) => [name, stored[i]]))
    const staged: Array<[string, OpenBucket]> = []
    for (const [name, delta] of deltas) {
      const open = origin.openBuckets.get(name)
      const value = storedOf.get(name)
      // A cached bucket is never changed in place: a failed write leaves it as it was.
      const kept =
        open !== undefined
          ? copyBucket(open.bucket)
          : value === undefined
            ? undefined
            : readBucket(delta.key, value, true)
      const bucket = kept === undefined ? delta.bucket : kept
      if (kept !== undefined) mergeBucket(bucket, delta.bucket)
      batch.put(delta.key, encodeBucket(bucket))
      staged.push([
        name,
        { key: delta.key, resolution: delta.resolution, startMs: delta.startMs, bucket },
      ])
    }
    // And its totals, so that its counters can be told while it is away.
    const totalsNow = new Map<string, number>()
    for (const { fields } of counted) {
      const name = totalName(fields.type, fields.severity)
      const count = (totalsNow.get(name) ?? origin.totals.get(name) ?? 0) + 1
      totalsNow.set(name, count)
    }
    for (const [name, count] of totalsNow) {
      const { type, severity } = splitTotalName(name)
      batch.put(heldTotalKey(origin.tag, type, severity), meta.pack(count))
    }
    try {
      await batch.write({ sync })
    } catch (err) {
      throw writeFailure(err)
    }
    for (const [name, count] of totalsNow) origin.totals.set(name, count)
    if (last !== undefined) {
      const newestTs = tsOfIdBytes(last)
      const isOpen = (b: OpenBucket) =>
        b.startMs + (RESOLUTIONS_MS[b.resolution] as number) > newestTs
      for (const [name, bucket] of staged) if (isOpen(bucket)) origin.openBuckets.set(name, bucket)
      for (const [name, bucket] of origin.openBuckets)
        if (!isOpen(bucket)) origin.openBuckets.delete(name)
    }
    origin.seq = seq
    origin.lastId = lastId
    if (newTypes.length > 0) {
      for (const type of newTypes) origin.typeSet.add(type)
      origin.sorted = [...origin.typeSet].sort()
    }
    held.set(key, origin)
    if (events.length > 0) appended(origin.tag)
    return { peerId: origin.peerId, tag: origin.tag, seq, lastId }
  }

  /** The first key of a range, or undefined when it has none. */
  async function firstKey(range: { gte: Buffer; lt: Buffer }): Promise<Buffer | undefined> {
    const it = db.iterator({ ...range, limit: 1, values: false })
    try {
      return (await it.nextv(1))[0]?.[0]
    } finally {
      await it.close()
    }
  }

  /** Where each member's events kept here are (this member's own, then each origin's), and their newest. */
  function eventSpaces(): Array<{ time: Buffer; lastSeq: number; lastTs: number }> {
    return [
      { time: EVENT_PREFIX, lastSeq, lastTs },
      ...[...held.values()].map((o) => ({
        time: o.keys.time,
        lastSeq: o.seq,
        lastTs: o.lastId === undefined ? 0 : tsOfIdBytes(o.lastId),
      })),
    ]
  }

  /**
   * Events kept here with ts below `beforeTs` (see countEventsBefore): per
   * member, the seq of its first event at or after it less the seq of its
   * oldest, both one seek.
   */
  async function countBefore(beforeTs: number): Promise<number> {
    if (closed) return 0
    const boundary = idAtTs(beforeTs)
    let count = 0
    for (const space of eventSpaces()) {
      const oldest = await firstKey(eventKeyRange(space.time))
      if (oldest === undefined) continue
      const at = await firstKey(eventKeyRange(space.time, boundary))
      const seqAt = at === undefined ? space.lastSeq + 1 : seqOfEventKey(at)
      count += Math.max(0, seqAt - seqOfEventKey(oldest))
    }
    return count
  }

  const eventLog: EventLog = {
    tag,
    keys: OWN_KEYS,
    get lastSeq() {
      return lastSeq
    },
    get lastTs() {
      return lastTs
    },
    get clockJumpMs() {
      // Read afresh, so a jump shows before the next event is stamped.
      const wall = clock()
      const off = Math.abs(wall - (anchorWall + (monotonic() - anchorMono)))
      if (off > maxClockJumpMs) return off
      const ahead = lastTs - wall
      return ahead > maxClockJumpMs ? ahead : 0
    },
    types: () => sortedTypes,

    get openScans() {
      return openScans
    },
    get writeError() {
      return writeError
    },
    get corruptBuckets() {
      return corruptBuckets
    },

    append(groups) {
      if (closed) throw new StoreUnavailableError('the store is closed')
      if (writeError !== undefined) throw writeError
      if (sealedBy !== undefined) throw new RestoringError(sealedBy)
      const batch = db.batch()
      let seq = lastSeq
      const ts = Math.max(stampTime(), lastTs)
      if (ts > MAX_TS)
        throw new StoreUnavailableError('the clock is past the largest time an id can hold')
      const newTypes: string[] = []
      const out: string[][] = []
      // Every event of a batch has the same ts, so it falls into the same
      // bucket at each resolution: one delta per type and severity serves
      // all three resolutions and the totals.
      const deltas = new Map<string, { type: string; severity: number; bucket: Bucket }>()
      const id = new Uint8Array(ID_BYTES)
      for (const group of groups) {
        const ids: string[] = []
        for (const event of group.events) {
          seq++
          writeIdBytes(id, 0, ts, tag, seq)
          batch.put(eventKey(id), encodeEventValue(event))
          batch.put(typeIndexKey(prefixOf(event.type), id), EMPTY)
          const idText = encodeId(id)
          const severity = severityRank(event.severity ?? 'info')
          const name = totalName(event.type, severity)
          let delta = deltas.get(name)
          if (delta === undefined) {
            delta = { type: event.type, severity, bucket: emptyBucket() }
            deltas.set(name, delta)
          }
          addEvent(delta.bucket, idText, event.value)
          if (!typeSet.has(event.type) && !newTypes.includes(event.type)) {
            newTypes.push(event.type)
            batch.put(typeCatalogueKey(event.type), EMPTY)
          }
          ids.push(idText)
        }
        if (group.idempotency !== undefined) {
          const { key, hash, atMs } = group.idempotency
          batch.put(idempotencyKey(key), meta.pack([ids, hash, atMs]))
          batch.put(idempotencyAgeKey(atMs, key), EMPTY)
        }
        out.push(ids)
      }
      if (seq > MAX_SEQ)
        throw new StoreUnavailableError('this member has used up its sequence numbers')
      batch.put(COUNTERS_KEY, meta.pack([seq, ts]))
      // New values of the touched buckets and totals, applied to the caches
      // only once the batch holding them is written.
      const staged: OpenBucket[] = []
      const stagedTotals: Array<[string, number]> = []
      for (const [name, delta] of deltas) {
        for (let r = 0; r < RESOLUTIONS_MS.length; r++) {
          const startMs = ts - (ts % (RESOLUTIONS_MS[r] as number))
          const key = rollupKey(r, startMs, delta.type, delta.severity)
          const open = openBuckets.get(key.toString('latin1'))
          // Cached buckets are never changed in place, so a fresh delta can
          // be cached as it is, even at several resolutions.
          let bucket = delta.bucket
          if (open !== undefined) {
            bucket = copyBucket(open.bucket)
            mergeBucket(bucket, delta.bucket)
          }
          batch.put(key, encodeBucket(bucket))
          staged.push({ key, resolution: r, startMs, bucket })
        }
        const count = (totals.get(name) ?? 0) + delta.bucket.count
        batch.put(totalKey(delta.type, delta.severity), meta.pack(count))
        stagedTotals.push([name, count])
      }
      writeNow(batch, sync)
      lastSeq = seq
      lastTs = ts
      for (const open of staged) openBuckets.set(open.key.toString('latin1'), open)
      for (const [name, count] of stagedTotals) totals.set(name, count)
      for (const [name, open] of openBuckets) {
        if (open.startMs + (RESOLUTIONS_MS[open.resolution] as number) <= ts)
          openBuckets.delete(name)
      }
      if (newTypes.length > 0) {
        for (const type of newTypes) typeSet.add(type)
        sortedTypes = [...typeSet].sort()
      }
      appended(tag)
      return out
    },

    onAppend(listener) {
      appendListeners.add(listener)
      return () => appendListeners.delete(listener)
    },

    held(originTag) {
      const origin = held.get(tagHex(originTag))
      return origin === undefined ? undefined : heldSpace(origin)
    },

    spaceOf(peerId) {
      const of = memberTag(peerId)
      if (Buffer.compare(of, tag) === 0) return eventLog
      const origin = held.get(tagHex(of))
      return origin?.peerId === peerId ? heldSpace(origin) : undefined
    },

    heldMarks() {
      return [...held.values()].map((o) => ({
        peerId: o.peerId,
        tag: o.tag,
        seq: o.seq,
        lastId: o.lastId,
      }))
    },

    appendHeld(from, events) {
      // One origin's writes one after another: each is checked against the mark the last one left.
      const key = tagHex(from.tag)
      const previous = heldWrites.get(key) ?? Promise.resolve()
      const next = previous.catch(() => {}).then(() => writeHeld(from, events))
      heldWrites.set(key, next)
      void next
        .finally(() => {
          if (heldWrites.get(key) === next) heldWrites.delete(key)
        })
        .catch(() => {})
      return next
    },

    seal(reason) {
      sealedBy = reason
    },

    get sealed() {
      return sealedBy !== undefined
    },

    advanceTo(seq, ts) {
      if (seq > lastSeq || ts > lastTs) {
        const batch = db.batch()
        const nextSeq = Math.max(seq, lastSeq)
        const nextTs = Math.max(ts, lastTs)
        batch.put(COUNTERS_KEY, meta.pack([nextSeq, nextTs]))
        writeNow(batch, true)
        lastSeq = nextSeq
        lastTs = nextTs
      }
      sealedBy = undefined
    },

    appendRestored(events) {
      if (closed) throw new StoreUnavailableError('the store is closed')
      if (writeError !== undefined) throw writeError
      for (const { id } of events) {
        for (let i = 0; i < TAG_BYTES; i++)
          if (id[6 + i] !== tag[i])
            throw new HeldOrderError('an event of another member among its own')
        if (seqOfIdBytes(id) > lastSeq)
          throw new HeldOrderError(
            `event seq ${seqOfIdBytes(id)} is past this member's newest, ${lastSeq}`,
          )
      }
      const present = (db as unknown as SyncReadable)._getManySync(
        events.map((e) => eventKey(e.id)),
        {},
      )
      const batch = db.batch()
      const newTypes: string[] = []
      // The restored events' rollups (bucketDeltas), merged below with what is stored.
      const counted: Array<{ id: Uint8Array; fields: EventFields }> = []
      const totalDeltas = new Map<string, { type: string; severity: number; count: number }>()
      let added = 0
      events.forEach((event, i) => {
        if (present[i] !== undefined) return
        added++
        const { id, value } = event
        const fields = event.fields ?? decodeEventValue(value)
        const { type } = fields
        batch.put(eventKey(id), Buffer.from(value))
        batch.put(typeIndexKey(prefixOf(type), id), EMPTY)
        if (!typeSet.has(type) && !newTypes.includes(type)) {
          newTypes.push(type)
          batch.put(typeCatalogueKey(type), EMPTY)
        }
        counted.push({ id, fields })
        const name = totalName(type, fields.severity)
        const total = totalDeltas.get(name) ?? { type, severity: fields.severity, count: 0 }
        total.count++
        totalDeltas.set(name, total)
      })
      if (added === 0) return 0
      const deltas = bucketDeltas(counted, rollupKey)
      // Open buckets from the cache (append keeps them there), the others as stored.
      const closedDeltas = [...deltas.entries()].filter(([name]) => !openBuckets.has(name))
      const stored = (db as unknown as SyncReadable)._getManySync(
        closedDeltas.map(([, d]) => d.key),
        {},
      )
      const storedOf = new Map(closedDeltas.map(([name], i) => [name, stored[i]]))
      const staged: OpenBucket[] = []
      for (const [name, delta] of deltas) {
        const open = openBuckets.get(name)
        const kept =
          open?.bucket ??
          (storedOf.get(name) === undefined
            ? undefined
            : readBucket(delta.key, storedOf.get(name) as Buffer))
        const bucket = kept === undefined ? delta.bucket : copyBucket(kept)
        if (kept !== undefined) mergeBucket(bucket, delta.bucket)
        batch.put(delta.key, encodeBucket(bucket))
        // A bucket that later appends may still write (its period reaches
        // the newest ts) is cached, so they merge into it, not over it.
        const period = RESOLUTIONS_MS[delta.resolution] as number
        if (open !== undefined || delta.startMs + period > lastTs)
          staged.push({
            key: delta.key,
            resolution: delta.resolution,
            startMs: delta.startMs,
            bucket,
          })
      }
      const stagedTotals: Array<[string, number]> = []
      for (const [name, t] of totalDeltas) {
        const count = (totals.get(name) ?? 0) + t.count
        batch.put(totalKey(t.type, t.severity), meta.pack(count))
        stagedTotals.push([name, count])
      }
      writeNow(batch, sync)
      for (const open of staged) openBuckets.set(open.key.toString('latin1'), open)
      for (const [name, count] of stagedTotals) totals.set(name, count)
      if (newTypes.length > 0) {
        for (const type of newTypes) typeSet.add(type)
        sortedTypes = [...typeSet].sort()
      }
      return added
    },

    async dropHeld(originTag) {
      if (closed) return
      const key = tagHex(originTag)
      // After a write of the origin's under way, which would otherwise put its mark back.
      await heldWrites.get(key)?.catch(() => {})
      const origin = held.get(key)
      if (origin === undefined) return
      held.delete(key)
      const batch = db.batch()
      batch.del(heldMarkKey(origin.tag))
      await batch.write({ sync: true })
      for (const range of heldRanges(origin.tag)) await db.clear(range)
    },

    getMany(ids) {
      return db.getMany(ids.map((id) => eventKey(id)))
    },

    scan: scanRows,

    async findIdempotency(key) {
      const [value] = await db.getMany([idempotencyKey(key)])
      if (value === undefined) return undefined
      const [ids, hash, atMs] = meta.unpack(value) as [string[], string, number]
      return { ids, hash, atMs }
    },

    async deleteEventsBefore(beforeTs) {
      if (closed) return 0
      const count = await countBefore(beforeTs)
      const boundary = idAtTs(beforeTs)
      // DeleteRange: one tombstone per range, so this costs the same for a
      // million old events as for one and does not hold up ingest.
      await db.clear({ gte: EVENT_PREFIX, lt: eventKey(boundary) })
      for (const type of sortedTypes) {
        const prefix = prefixOf(type)
        await db.clear({ gte: prefix, lt: typeIndexKey(prefix, boundary) })
      }
      // Held copies age as the origin's own events do.
      for (const origin of [...held.values()]) {
        const { time, typePrefix: prefix } = origin.keys
        await db.clear({ gte: time, lt: eventKey(boundary, time) })
        for (const type of origin.sorted) {
          const p = prefix(type)
          await db.clear({ gte: p, lt: typeIndexKey(p, boundary) })
        }
      }
      return count
    },

    countEventsBefore: countBefore,

    async eventSpan() {
      let count = 0
      let oldestTs = Number.POSITIVE_INFINITY
      let newestTs = 0
      for (const space of eventSpaces()) {
        const oldest = await firstKey(eventKeyRange(space.time))
        if (oldest === undefined) continue
        count += Math.max(0, space.lastSeq - seqOfEventKey(oldest) + 1)
        oldestTs = Math.min(oldestTs, tsOfIdBytes(idOfEventKey(oldest)))
        newestTs = Math.max(newestTs, space.lastTs)
      }
      return count === 0 ? undefined : { count, oldestTs, newestTs: Math.max(newestTs, oldestTs) }
    },

    snapshot() {
      if (closed) throw new StoreUnavailableError('the store is closed')
      // Made now, so the snapshot is of now (see StoreSnapshot); no bounds:
      // every record, events, counters, rollups, copies and records alike.
      const it = db.iterator({ keys: true, values: true, highWaterMarkBytes: SNAPSHOT_BATCH_BYTES })
      openScans++
      let open = true
      const close = async () => {
        if (!open) return
        open = false
        openScans--
        await it.close()
      }
      return {
        async next() {
          if (!open) return []
          const rows = await it.nextv(16_384)
          if (rows.length === 0) await close()
          return rows
        },
        close,
      }
    },

    async deleteIdempotencyBefore(beforeMs) {
      if (closed) return 0
      const keys: Buffer[] = []
      const it = db.iterator({ ...idempotencyAgeRange(beforeMs), values: false })
      try {
        for (;;) {
          const rows = await it.nextv(1000)
          if (rows.length === 0) break
          for (const [key] of rows) keys.push(key)
          if (keys.length >= 100_000) break
        }
      } finally {
        await it.close()
      }
      if (keys.length === 0 || closed) return 0
      const batch = db.batch()
      for (const key of keys) {
        batch.del(key)
        batch.del(idempotencyKey(idempotencyKeyOfAgeKey(key)))
      }
      await batch.write({ sync: false })
      return keys.length
    },

    totals() {
      return [...totals].map(([name, count]) => ({ ...splitTotalName(name), count }))
    },

    heldTotals(origin) {
      const kept = held.get(tagHex(memberTag(origin)))
      if (kept === undefined || kept.peerId !== origin) return []
      return [...kept.totals].map(([name, count]) => ({ ...splitTotalName(name), count }))
    },

    async *scanRollups(resolution, fromMs, toMs, heldTag) {
      const tagged = heldTag !== undefined
      const range = tagged
        ? {
            gte: heldRollupKeyAt(heldTag, resolution, fromMs),
            lt: heldRollupKeyAt(heldTag, resolution, toMs),
          }
        : { gte: rollupKeyAt(resolution, fromMs), lt: rollupKeyAt(resolution, toMs) }
      for await (const rows of scanRange(db, range)) {
        const out: Array<{ startMs: number; type: string; severity: number; bucket: Bucket }> = []
        for (const [key, value] of rows) {
          const bucket = readBucket(key, value, tagged)
          if (bucket === undefined) continue
          const { startMs, type, severity } = parseRollupKey(key, tagged)
          out.push({ startMs, type, severity, bucket })
        }
        yield out
      }
    },

    async deleteRollupsBefore(resolution, beforeMs) {
      if (closed) return
      await db.clear({ gte: rollupKeyAt(resolution, 0), lt: rollupKeyAt(resolution, beforeMs) })
      // Held copies' rollups age as the origin's own.
      for (const origin of [...held.values()])
        await db.clear({
          gte: heldRollupKeyAt(origin.tag, resolution, 0),
          lt: heldRollupKeyAt(origin.tag, resolution, beforeMs),
        })
    },

    async getRecord(name) {
      const [value] = await db.getMany([metaKey(`record:${name}`)])
      return value
    },

    async putRecord(name, value) {
      if (closed) throw new StoreUnavailableError('the store is closed')
      const batch = db.batch()
      batch.put(metaKey(`record:${name}`), Buffer.from(value))
      await batch.write({ sync: true })
    },

    sizeBytes() {
      return property('rocksdb.total-sst-files-size') + property('rocksdb.cur-size-all-mem-tables')
    },

    liveBytes() {
      return property('rocksdb.live-sst-files-size') + property('rocksdb.cur-size-all-mem-tables')
    },

    compactionBacklogBytes() {
      return property('rocksdb.estimate-pending-compaction-bytes')
    },

    memory() {
      return {
        blockCache: property('rocksdb.block-cache-usage'),
        memtables: property('rocksdb.size-all-mem-tables'),
        tableReaders: property('rocksdb.estimate-table-readers-mem'),
      }
    },

    async close() {
      if (closed) return
      closed = true
      try {
        await db.close()
      } catch (err) {
        // A store that failed a write cannot flush on close; what was
        // acknowledged is in the WAL and is replayed at the next open.
        if (writeError === undefined) throw err
      }
    },
  }
  return eventLog
}

const EMPTY = Buffer.alloc(0)

/**
 * Name of a total in the in-memory map (type, NUL, severity rank as a
 * char), parsed back by totals(); types never hold NUL (TYPE_PATTERN).
 */
function totalName(type: string, severity: number): string {
  return `${type}\u0000${String.fromCharCode(severity)}`
}

function splitTotalName(name: string): { type: string; severity: number } {
  const at = name.lastIndexOf('\u0000')
  return { type: name.slice(0, at), severity: name.charCodeAt(at + 1) }
}

/**
 * The rollup deltas `events` make, one per bucket at every resolution, keyed
 * by `keyOf` (own buckets or an origin's held ones). Events of one stamp (a
 * member's group commit) fall into the same bucket at every resolution, so
 * each is added to a sketch once, per stamp, type and severity, which is then
 * merged into its three buckets, as append does.
 */
function bucketDeltas(
  events: Iterable<{ id: Uint8Array; fields: EventFields }>,
  keyOf: (resolution: number, startMs: number, type: string, severity: number) => Buffer,
): Map<string, { key: Buffer; resolution: number; startMs: number; bucket: Bucket }> {
  const stamps = new Map<string, { ts: number; type: string; severity: number; bucket: Bucket }>()
  for (const { id, fields } of events) {
    const ts = tsOfIdBytes(id)
    const name = `${ts}\u0000${fields.type}\u0000${fields.severity}`
    let stamp = stamps.get(name)
    if (stamp === undefined) {
      stamp = { ts, type: fields.type, severity: fields.severity, bucket: emptyBucket() }
      stamps.set(name, stamp)
    }
    addEvent(stamp.bucket, encodeId(id), fields.value)
  }
  const deltas = new Map<
    string,
    { key: Buffer; resolution: number; startMs: number; bucket: Bucket }
  >()
  for (const stamp of stamps.values()) {
    for (let r = 0; r < RESOLUTIONS_MS.length; r++) {
      const startMs = stamp.ts - (stamp.ts % (RESOLUTIONS_MS[r] as number))
      const key = keyOf(r, startMs, stamp.type, stamp.severity)
      const name = key.toString('latin1')
      const delta = deltas.get(name)
      if (delta === undefined)
        deltas.set(name, { key, resolution: r, startMs, bucket: copyBucket(stamp.bucket) })
      else mergeBucket(delta.bucket, stamp.bucket)
    }
  }
  return deltas
}

/** An origin held here, in memory: its mark and its types. */
interface HeldOrigin {
  peerId: string
  tag: Buffer
  keys: EventKeys
  seq: number
  lastId: Uint8Array | undefined
  typeSet: Set<string>
  sorted: readonly string[]
  /** Its events held here, by totalName(type, severity) (see heldTotals). */
  totals: Map<string, number>
  /** Its rollup buckets whose period its newest held event still reaches, by key (latin1). */
  openBuckets: Map<string, OpenBucket>
}

function newHeld(peerId: string, tag: Buffer): HeldOrigin {
  return {
    peerId,
    tag,
    keys: heldKeys(tag),
    seq: 0,
    lastId: undefined,
    typeSet: new Set(),
    sorted: [],
    totals: new Map(),
    openBuckets: new Map(),
  }
}

interface OpenBucket {
  key: Buffer
  resolution: number
  startMs: number
  bucket: Bucket
}

async function* scanRange(
  db: RocksLevel,
  range: RangeScan,
): AsyncGenerator<Array<[Buffer, Buffer]>> {
  const it = db.iterator({ ...range, keys: true, values: true })
  try {
    for (;;) {
      const rows = await it.nextv(1000)
      if (rows.length === 0) return
      yield rows
    }
  } finally {
    await it.close()
  }
}

interface SyncReadable {
  _getManySync(keys: Buffer[], options: object): Array<Buffer | undefined>
}

interface SyncWritable {
  _writeSync(options: { sync: boolean }): void
  close(): Promise<void>
}

function writeBatchSync(batch: unknown, sync: boolean): void {
  const chained = batch as SyncWritable
  try {
    chained._writeSync({ sync })
  } finally {
    void chained.close()
  }
}
