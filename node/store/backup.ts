// Backups of a member's store: the byte stream a member sends for
// `POST /v1/backup`, and the writer that turns it into a data dir that
// `chorus start --data-dir DIR` starts from.
//
// Why a stream and not RocksDB's own tools: the binding (@nxtedition/rocksdb
// 12.2) exposes neither Checkpoint nor BackupEngine (nor an explicit
// snapshot, nor CompactRange). Its iterators, though, read from the implicit
// snapshot RocksDB takes when each is created, so one iterator over the
// whole keyspace is a consistent copy of the store at one moment, online,
// without stopping writes (event-log.ts snapshot()). The member streams
// that copy, with its identity key (a restored member keeps its peer id,
// which the tag in every event id is taken from), and the writer puts the
// records into a new RocksDB store under the target directory. The copy is
// logical (records, not files): the new store is compacted afresh, so it is
// usually smaller than the member's, and it opens with whatever options the
// member that starts from it uses.
//
// Stream (version 1): the 16 bytes MAGIC, then frames of one kind byte, a
// 32-bit big-endian length and that many bytes:
//
//   'H' header   JSON BackupHeader
//   'F' file     name length (1 byte), name, the file's bytes (identity.key)
//   'R' records  (key length u32, key, value length u32, value) repeated:
//                one batch of the snapshot, about 1 MiB
//   'Z' end      JSON BackupEnd: counts, and the SHA-256 of every byte
//                before this frame
//
// A stream cut anywhere lacks its end frame, or its counts or digest do not
// match: the writer then refuses it and leaves nothing named as a backup.
//
// The writer never shows a half-written backup: it writes under
// DIR/.chorus.partial, syncs every file and directory, and only then
// renames it to DIR/chorus, where a member looks for its files.

import { createHash } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RocksLevel } from '@nxtedition/rocksdb'
import { ConfigError } from '../errors.ts'
import type { StoreSnapshot } from './event-log.ts'
import { IDENTITY_FILE } from './identity.ts'
import { isHeldEventKey, isOwnEventKey, metaKey } from './keys.ts'

/** The media type of a backup stream. */
export const BACKUP_MEDIA_TYPE = 'application/vnd.chorus.backup'

const MAGIC = Buffer.from('CHORUS-BACKUP/1\n')
const HEADER = 0x48 // 'H'
const FILE = 0x46 // 'F'
const RECORDS = 0x52 // 'R'
const END = 0x5a // 'Z'
/** Largest frame a reader takes: a records frame is about 1 MiB (one snapshot batch). */
const MAX_FRAME_BYTES = 64 * 1024 * 1024
/** The only files a backup may carry besides the store. */
const FILES: ReadonlySet<string> = new Set([IDENTITY_FILE])

/** Where a backup's data dir keeps the member's files (as a member does: `<data-dir>/chorus`). */
export const BACKUP_CHORUS_DIR = 'chorus'
/** Where a backup is written until it is complete. */
export const BACKUP_PARTIAL_DIR = '.chorus.partial'
/**
 * The store record (EventLog.getRecord) that marks a store written by a
 * backup: non-empty until the member started from it has asked the others
 * where its events stand.
 */
export const FROM_BACKUP_RECORD = 'from-backup'
/** A summary of the backup beside `chorus/`, for people (a member never reads it). */
export const BACKUP_MANIFEST = 'backup.json'

/** What a backup says of itself, before its records. */
export interface BackupHeader {
  /** The member's peer id: the restored member's, since its identity key is in the backup. */
  peerId: string
  /** Its --name when the backup was taken. */
  name: string
  /** The chorus version that took it. */
  version: string
  /** The store format (STORE_FORMAT) of the records. */
  storeFormat: number
  /** When the snapshot was taken, ms since the epoch. */
  takenAt: number
  /** The member's newest seq at that moment: the restored member continues after it. */
  lastSeq: number
}

/** The end frame: what a complete stream holds. */
export interface BackupEnd {
  /** Records of the store. */
  records: number
  /** Of them, this member's own events. */
  events: number
  /** Of them, other members' events held here (replicas). */
  heldEvents: number
  /** Bytes of keys and values. */
  bytes: number
  /** SHA-256 (hex) of every byte of the stream before the end frame. */
  sha256: string
}

/** What a member backs up: its store's snapshot and the files beside it. */
export interface BackupSource {
  header: BackupHeader
  files: ReadonlyArray<{ name: string; bytes: Uint8Array }>
  snapshot: StoreSnapshot
}

/** Default: a reader that takes nothing for this long ends the backup (and frees its snapshot), ms. */
export const BACKUP_IDLE_MS = 60_000

function frame(kind: number, payload: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(5)
  head[0] = kind
  head.writeUInt32BE(payload.length, 1)
  return Buffer.concat([head, payload])
}

function recordsFrame(rows: ReadonlyArray<[Buffer, Buffer]>): Buffer {
  let length = 0
  for (const [key, value] of rows) length += 8 + key.length + value.length
  const out = Buffer.allocUnsafe(5 + length)
  out[0] = RECORDS
  out.writeUInt32BE(length, 1)
  let at = 5
  for (const [key, value] of rows) {
    out.writeUInt32BE(key.length, at)
    key.copy(out, at + 4)
    at += 4 + key.length
    out.writeUInt32BE(value.length, at)
    value.copy(out, at + 4)
    at += 4 + value.length
  }
  return out
}

/**
 * The backup stream of `source` (the format is in the module comment). A
 * pull stream one frame ahead of its reader: the next batch is read from the
 * snapshot only when the reader has taken the last, so a slow reader slows
 * the copy instead of filling memory (at most two batches, about 2 MiB).
 * The snapshot is closed when the stream ends, fails, is cancelled (the
 * reader went away), or its reader takes nothing for `idleMs`.
 * `finish` runs once, with how it ended.
 */
export function backupStream(
  source: BackupSource,
  init: {
    idleMs?: number
    finish?: (outcome: 'done' | 'failed' | 'cancelled' | 'stalled', end?: BackupEnd) => void
  } = {},
): ReadableStream<Uint8Array> {
  const hash = createHash('sha256')
  const counts = { records: 0, events: 0, heldEvents: 0, bytes: 0 }
  let started = false
  let finished = false
  let idle: NodeJS.Timeout | undefined
  const end = (outcome: 'done' | 'failed' | 'cancelled' | 'stalled', summary?: BackupEnd) => {
    clearTimeout(idle)
    if (finished) return
    finished = true
    void source.snapshot.close().catch(() => {})
    init.finish?.(outcome, summary)
  }
  const emit = (controller: ReadableStreamDefaultController<Uint8Array>, bytes: Buffer) => {
    hash.update(bytes)
    controller.enqueue(bytes)
  }
  /** Armed while the stream waits for its reader, never during a read of the store. */
  const arm = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    clearTimeout(idle)
    idle = setTimeout(() => {
      controller.error(new Error('the reader took nothing for too long'))
      end('stalled')
    }, init.idleMs ?? BACKUP_IDLE_MS)
    idle.unref()
  }
  return new ReadableStream<Uint8Array>(
    {
      start: arm,
      async pull(controller) {
        clearTimeout(idle)
        try {
          if (!started) {
            started = true
            emit(controller, MAGIC)
            emit(controller, frame(HEADER, Buffer.from(JSON.stringify(source.header))))
            for (const file of source.files) {
              const name = Buffer.from(file.name)
              emit(
                controller,
                frame(FILE, Buffer.concat([Buffer.of(name.length), name, file.bytes])),
              )
            }
            arm(controller)
            return
          }
          const rows = await source.snapshot.next()
          if (finished) return
          if (rows.length === 0) {
            const summary: BackupEnd = { ...counts, sha256: hash.digest('hex') }
            controller.enqueue(frame(END, Buffer.from(JSON.stringify(summary))))
            controller.close()
            end('done', summary)
            return
          }
          for (const [key, value] of rows) {
            counts.records++
            counts.bytes += key.length + value.length
            if (isOwnEventKey(key)) counts.events++
            else if (isHeldEventKey(key)) counts.heldEvents++
          }
          emit(controller, recordsFrame(rows))
          arm(controller)
        } catch (err) {
          controller.error(err)
          end('failed')
        }
      },
      cancel() {
        end('cancelled')
      },
    },
    { highWaterMark: 1 },
  )
}

/** One frame of a backup stream as read. */
type Frame =
  | { kind: 'header'; header: BackupHeader }
  | { kind: 'file'; name: string; bytes: Buffer }
  | { kind: 'records'; rows: Array<[Buffer, Buffer]>; bytes: number }
  | { kind: 'end'; end: BackupEnd }

export class BackupFormatError extends Error {
  override readonly name = 'BackupFormatError'
}

/**
 * The frames of a backup stream, checked as they come: the magic, each
 * frame's kind and length (at most MAX_FRAME_BYTES, checked before it is
 * buffered), and the end frame's digest against the bytes before it. Holds
 * one frame at a time. Throws BackupFormatError.
 */
export async function* readBackupFrames(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Frame> {
  const hash = createHash('sha256')
  let pending: Buffer[] = []
  let buffered = 0
  let magicSeen = false
  let ended = false
  /** Bytes of the frame being read (its 5 bytes of kind and length included), once they are known. */
  let need: number | undefined
  /** Takes `n` bytes off the front of what is buffered (one copy, only when they span chunks). */
  const take = (n: number): Buffer => {
    const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, buffered)
    const rest = all.subarray(n)
    pending = rest.length === 0 ? [] : [rest]
    buffered = rest.length
    return all.subarray(0, n)
  }
  for await (const chunk of chunks) {
    if (ended) throw new BackupFormatError('bytes after the end frame')
    pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    buffered += chunk.byteLength
    if (!magicSeen) {
      if (buffered < MAGIC.length) continue
      const magic = take(MAGIC.length)
      if (!magic.equals(MAGIC)) throw new BackupFormatError('not a chorus backup (version 1)')
      hash.update(magic)
      magicSeen = true
    }
    for (;;) {
      if (need === undefined) {
        if (buffered < 5) break
        if ((pending[0] as Buffer).length < 5) pending = [Buffer.concat(pending, buffered)]
        const length = (pending[0] as Buffer).readUInt32BE(1)
        if (length > MAX_FRAME_BYTES)
          throw new BackupFormatError(`a frame of ${length} bytes, over ${MAX_FRAME_BYTES}`)
        need = 5 + length
      }
      if (buffered < need) break
      const whole = take(need)
      need = undefined
      const kind = whole[0] as number
      const payload = whole.subarray(5)
      if (kind === END) {
        const end = JSON.parse(payload.toString()) as BackupEnd
        if (end.sha256 !== hash.digest('hex'))
          throw new BackupFormatError('the digest does not match: the stream was damaged')
        ended = true
        yield { kind: 'end', end }
        if (buffered > 0) throw new BackupFormatError('bytes after the end frame')
        break
      }
      hash.update(whole)
      if (kind === HEADER) {
        yield { kind: 'header', header: JSON.parse(payload.toString()) as BackupHeader }
      } else if (kind === FILE) {
        const nameLength = payload[0] as number
        const name = payload.toString('utf8', 1, 1 + nameLength)
        yield { kind: 'file', name, bytes: Buffer.from(payload.subarray(1 + nameLength)) }
      } else if (kind === RECORDS) {
        yield { kind: 'records', rows: parseRecords(payload), bytes: payload.length }
      } else {
        throw new BackupFormatError(`an unknown frame kind 0x${kind.toString(16)}`)
      }
    }
  }
  if (!ended)
    throw new BackupFormatError('the stream ended before its end frame: the backup was cut')
}

function parseRecords(payload: Buffer): Array<[Buffer, Buffer]> {
  const rows: Array<[Buffer, Buffer]> = []
  let at = 0
  const field = (): Buffer => {
    if (at + 4 > payload.length) throw new BackupFormatError('a records frame is cut')
    const length = payload.readUInt32BE(at)
    if (at + 4 + length > payload.length) throw new BackupFormatError('a records frame is cut')
    // A view of the frame: a batch copies what it is given.
    const out = payload.subarray(at + 4, at + 4 + length)
    at += 4 + length
    return out
  }
  while (at < payload.length) rows.push([field(), field()])
  return rows
}

/** What writeBackup wrote. */
export interface BackupSummary {
  header: BackupHeader
  end: BackupEnd
  /** The data dir: start a member from it with `--data-dir`. */
  dir: string
  /** Bytes of the files written (the new store, the identity key). */
  diskBytes: number
}

/**
 * Refuses `out` as a backup's target unless it does not exist or is an
 * empty directory (ConfigError naming `out`): a backup never mixes with
 * other files, nor replaces a data dir. Resolves to whether it exists.
 */
export async function checkBackupTarget(out: string): Promise<boolean> {
  let entries: string[]
  try {
    const info = await stat(out)
    if (!info.isDirectory())
      throw new ConfigError(`--out ${out} exists and is not a directory`, [
        { field: 'out', message: 'must be a new or empty directory' },
      ])
    entries = await readdir(out)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  if (entries.length > 0)
    throw new ConfigError(
      `--out ${out} exists and is not empty; a backup goes into a new or empty directory`,
      [{ field: 'out', message: 'must be a new or empty directory' }],
    )
  return true
}

/**
 * Writes the backup stream `chunks` into `out` (checked by
 * checkBackupTarget first, created if missing, mode 0700): the store and
 * identity key under `out/chorus`, as a member keeps them, and a summary in
 * `out/backup.json`. Written under `out/.chorus.partial`, synced, then
 * renamed; on any failure that is removed (and `out` too if this made it),
 * and the error thrown. `progress` is told the bytes of records written.
 */
export async function writeBackup(
  out: string,
  chunks: AsyncIterable<Uint8Array>,
  progress?: (recordBytes: number) => void,
): Promise<BackupSummary> {
  const existed = await checkBackupTarget(out)
  if (!existed) await mkdir(out, { recursive: true, mode: 0o700 })
  const partial = join(out, BACKUP_PARTIAL_DIR)
  let db: RocksLevel | undefined
  try {
    await mkdir(partial, { mode: 0o700 })
    let header: BackupHeader | undefined
    let end: BackupEnd | undefined
    const seen = { records: 0, events: 0, heldEvents: 0, bytes: 0 }
    let files = 0
    for await (const f of readBackupFrames(chunks)) {
      if (f.kind === 'header') {
        header = f.header
      } else if (f.kind === 'file') {
        if (!FILES.has(f.name)) throw new BackupFormatError(`an unexpected file ${f.name}`)
        await writeFile(join(partial, f.name), f.bytes, { mode: 0o600, flag: 'wx' })
        files++
      } else if (f.kind === 'records') {
        if (header === undefined) throw new BackupFormatError('records before the header')
        db ??= await openTarget(join(partial, 'store'))
        const batch = db.batch()
        for (const [key, value] of f.rows) {
          batch.put(key, value)
          seen.records++
          seen.bytes += key.length + value.length
          if (isOwnEventKey(key)) seen.events++
          else if (isHeldEventKey(key)) seen.heldEvents++
        }
        await batch.write({ sync: false })
        progress?.(seen.bytes)
      } else {
        end = f.end
      }
    }
    if (header === undefined || end === undefined)
      throw new BackupFormatError('the stream has no header or no end')
    if (
      end.records !== seen.records ||
      end.bytes !== seen.bytes ||
      end.events !== seen.events ||
      end.heldEvents !== seen.heldEvents
    )
      throw new BackupFormatError(
        `the stream holds ${seen.records} records, its end frame says ${end.records}`,
      )
    if (files !== FILES.size) throw new BackupFormatError(`the stream lacks ${IDENTITY_FILE}`)
    await checkIdentity(join(partial, IDENTITY_FILE), header.peerId)
    // An empty store still gets its directory: the member creates the rest.
    db ??= await openTarget(join(partial, 'store'))
    // The member started from it asks the others for its events past the
    // backup's newest before it takes any (node/replica/replicator.ts).
    const mark = db.batch()
    mark.put(
      metaKey(`record:${FROM_BACKUP_RECORD}`),
      Buffer.from(JSON.stringify({ takenAt: header.takenAt })),
    )
    await mark.write({ sync: true })
    // Close writes what the WAL buffers and syncs it (FlushWAL(true)).
    await db.close()
    db = undefined
    const diskBytes = await syncTree(partial)
    await rename(partial, join(out, BACKUP_CHORUS_DIR))
    await writeFile(
      join(out, BACKUP_MANIFEST),
      `${JSON.stringify({ ...header, ...end, diskBytes }, null, 2)}\n`,
      { mode: 0o600, flush: true },
    )
    await syncDir(out)
    return { header, end, dir: out, diskBytes }
  } catch (err) {
    await db?.close().catch(() => {})
    await rm(partial, { recursive: true, force: true })
    if (!existed) await rmdir(out).catch(() => {})
    throw err
  }
}

/** The new store: created here, never over an existing one; memtables of 32 MiB. */
async function openTarget(dir: string): Promise<RocksLevel> {
  const db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open({
    createIfMissing: true,
    errorIfExists: true,
    infoLogLevel: 'error',
    compaction: 'level',
    memtableMemoryBudget: 32 * 1024 * 1024,
    cacheSize: 8 * 1024 * 1024,
  })
  return db
}

/** Refuses an identity key that is not the one of `peerId` (a damaged or mixed-up backup). */
async function checkIdentity(file: string, peerId: string): Promise<void> {
  const handle = await open(file, 'r')
  try {
    const key = privateKeyFromProtobuf(await handle.readFile())
    if (peerIdFromPrivateKey(key).toString() !== peerId)
      throw new BackupFormatError(`${IDENTITY_FILE} is not the key of ${peerId}`)
  } catch (err) {
    if (err instanceof BackupFormatError) throw err
    throw new BackupFormatError(`${IDENTITY_FILE} is not a libp2p private key`)
  } finally {
    await handle.close()
  }
}

/** fsyncs every file under `dir` and every directory, `dir` included; resolves to the files' bytes. */
async function syncTree(dir: string): Promise<number> {
  let bytes = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      bytes += await syncTree(path)
      continue
    }
    const handle = await open(path, 'r')
    try {
      await handle.sync()
      bytes += (await handle.stat()).size
    } finally {
      await handle.close()
    }
  }
  await syncDir(dir)
  return bytes
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
