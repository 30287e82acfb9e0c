// The backup stream and its writer (node/store/backup.ts), and what the
// store offers retention by size: counts of the oldest events from seqs.

import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { memberTag, writeIdBytes } from '../../node/event/id.ts'
import {
  type BackupSource,
  backupStream,
  checkBackupTarget,
  writeBackup,
} from '../../node/store/backup.ts'
import { encodeStoredFields } from '../../node/store/codec.ts'
import { type EventLog, openEventLog, STORE_FORMAT } from '../../node/store/event-log.ts'
import { IDENTITY_FILE } from '../../node/store/identity.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'

const logs: EventLog[] = []
afterEach(async () => {
  await Promise.all(logs.splice(0).map((l) => l.close()))
  await removeTempDirs()
})

function heldEvent(tag: Uint8Array, seq: number, ts: number) {
  const id = new Uint8Array(16)
  writeIdBytes(id, 0, ts, tag, seq)
  return { id, value: encodeStoredFields({ type: 'held.x', severity: 1, message: `h${seq}` }) }
}

/** A member's store with own events at ts 1000..1009 (seq 1..10) and an origin's at 1500.. (seq 1..5). */
async function storeWithEvents(): Promise<{ log: EventLog; source: () => Promise<BackupSource> }> {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  let now = 1000
  const log = await openEventLog({ dir: await tempDir(), tag: memberTag(peerId), clock: () => now })
  logs.push(log)
  for (let i = 0; i < 10; i++) {
    log.append([{ events: [{ type: 'own.x', message: `e${i}`, value: i }] }])
    now++
  }
  const origin = { peerId: '12D3KooOrigin', tag: memberTag('12D3KooOrigin') }
  await log.appendHeld(
    origin,
    [1, 2, 3, 4, 5].map((s) => heldEvent(origin.tag, s, 1500 + s)),
  )
  const source = async (): Promise<BackupSource> => ({
    header: {
      peerId,
      name: 'a',
      version: 'test',
      storeFormat: STORE_FORMAT,
      takenAt: Date.now(),
      lastSeq: log.lastSeq,
    },
    files: [{ name: IDENTITY_FILE, bytes: privateKeyToProtobuf(key) }],
    snapshot: log.snapshot(),
  })
  return { log, source }
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  return Buffer.from(await new Response(stream).arrayBuffer())
}

async function* chunksOf(bytes: Uint8Array, size = 7): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size)
}

describe('backup', () => {
  it('copies every record of one snapshot into a data dir a store opens as it was, identity included', async () => {
    const { log, source } = await storeWithEvents()
    const stream = backupStream(await source())
    // Written after the snapshot was taken: not in the backup.
    log.append([{ events: [{ type: 'own.later' }] }])
    const bytes = await bytesOf(stream)
    const out = join(await tempDir(), 'b')
    const summary = await writeBackup(out, chunksOf(bytes))
    expect(summary.end).toMatchObject({ events: 10, heldEvents: 5 })
    expect(await readdir(out)).toEqual(['backup.json', 'chorus'])
    expect((await readdir(join(out, 'chorus'))).sort()).toEqual([IDENTITY_FILE, 'store'])
    expect(log.openScans).toBe(0)

    const restored = await openEventLog({
      dir: join(out, 'chorus', 'store'),
      tag: log.tag,
      clock: () => 2000,
    })
    logs.push(restored)
    expect(restored.lastSeq).toBe(10)
    expect(restored.types()).toEqual(['own.x'])
    expect(restored.heldMarks().map((m) => m.seq)).toEqual([5])
    expect(restored.totals()).toEqual(log.totals().filter((t) => t.type === 'own.x'))
    expect(await restored.countEventsBefore(Number.MAX_SAFE_INTEGER)).toBe(15)
  })

  it('reads the stream whatever its chunks: a byte at a time, across frames, or whole', async () => {
    const { source } = await storeWithEvents()
    const bytes = await bytesOf(backupStream(await source()))
    const parent = await tempDir()
    for (const size of [1, 5, 6, 4096, bytes.length]) {
      const summary = await writeBackup(join(parent, `by-${size}`), chunksOf(bytes, size))
      expect(summary.end).toMatchObject({ events: 10, heldEvents: 5 })
    }
  })

  it('refuses a stream cut anywhere or damaged, and leaves nothing behind', async () => {
    const { source } = await storeWithEvents()
    const bytes = await bytesOf(backupStream(await source()))
    const parent = await tempDir()
    for (const cut of [3, 20, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const out = join(parent, `cut-${cut}`)
      await expect(writeBackup(out, chunksOf(bytes.subarray(0, cut)))).rejects.toThrow(
        /cut|end frame/,
      )
      await expect(readdir(out)).rejects.toThrow(/ENOENT/)
    }
    const damaged = Buffer.from(bytes)
    const at = Math.floor(bytes.length / 2)
    damaged.writeUInt8(damaged.readUInt8(at) ^ 0xff, at)
    const empty = join(parent, 'empty')
    await mkdir(empty)
    await expect(writeBackup(empty, chunksOf(damaged))).rejects.toThrow(/digest|frame|cut/)
    // An empty directory it was given stays, empty.
    expect(await readdir(empty)).toEqual([])
  })

  it('takes a new or empty directory only', async () => {
    const parent = await tempDir()
    expect(await checkBackupTarget(join(parent, 'new'))).toBe(false)
    expect(await checkBackupTarget(parent)).toBe(true)
    await writeFile(join(parent, 'x'), 'x')
    await expect(checkBackupTarget(parent)).rejects.toThrow(
      expect.objectContaining({ name: 'ConfigError', message: expect.stringMatching(/--out/) }),
    )
    await expect(checkBackupTarget(join(parent, 'x'))).rejects.toThrow(/not a directory/)
  })

  it('frees its snapshot when its reader goes away or stalls', async () => {
    const { log, source } = await storeWithEvents()
    const reader = backupStream(await source()).getReader()
    await reader.read()
    expect(log.openScans).toBe(1)
    await reader.cancel()
    expect(log.openScans).toBe(0)
    const outcomes: string[] = []
    const stalled = backupStream(await source(), {
      idleMs: 50,
      finish: (outcome) => outcomes.push(outcome),
    })
    const stuck = stalled.getReader()
    await stuck.read()
    await new Promise((resolve) => setTimeout(resolve, 150))
    expect(outcomes).toEqual(['stalled'])
    expect(log.openScans).toBe(0)
    await expect(stuck.read()).rejects.toThrow(/took nothing/)
  })
})

describe('what retention by size asks of the store', () => {
  it('counts the events before a time, own and held, from their seqs, and the span of them all', async () => {
    const { log } = await storeWithEvents()
    expect(await log.eventSpan()).toEqual({ count: 15, oldestTs: 1000, newestTs: 1505 })
    expect(await log.countEventsBefore(1000)).toBe(0)
    expect(await log.countEventsBefore(1005)).toBe(5)
    expect(await log.countEventsBefore(1503)).toBe(12)
    expect(await log.deleteEventsBefore(1503)).toBe(12)
    expect(await log.eventSpan()).toEqual({ count: 3, oldestTs: 1503, newestTs: 1505 })
    expect(await log.countEventsBefore(Number.MAX_SAFE_INTEGER)).toBe(3)
  })
})
