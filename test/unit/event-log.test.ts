import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RocksLevel } from '@nxtedition/rocksdb'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeId, memberTag, parseId } from '../../node/event/id.ts'
import {
  createLookupHandler,
  createSliceHandler,
  decodedAnswer,
  decodeStored,
} from '../../node/query/slice.ts'
import { type EventLog, openEventLog, STORE_FORMAT } from '../../node/store/event-log.ts'
import { metaKey } from '../../node/store/keys.ts'
import type { SliceRequest } from '../../protocol/slice.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'

afterEach(removeTempDirs)

const TAG_A = memberTag('member-a')

async function collect<T, R>(answer: {
  batches: AsyncGenerator<T[], R>
}): Promise<{ items: T[]; trailer: R }> {
  const gen = answer.batches
  const items: T[] = []
  for (;;) {
    const next = await gen.next()
    if (next.done === true) return { items, trailer: next.value }
    items.push(...next.value)
  }
}

/** The slice handler of `log`, its answers decoded as the coordinator decodes its own member's. */
const decodingSlice = (log: EventLog) => {
  const handler = createSliceHandler({ log })
  return (request: SliceRequest) => decodedAnswer(handler(request), 'peer', 'a')
}

describe('event log', () => {
  it('keeps ts and ids monotonic when the wall clock steps backwards', async () => {
    const dir = await tempDir()
    let now = 1_800_000_000_000
    const log = await openEventLog({ dir, tag: TAG_A, clock: () => now })
    const ids: string[] = []
    for (let i = 0; i < 50; i++) {
      ids.push(...(log.append([{ events: [{ type: 'clock.test' }] }])[0] as string[]))
      now += i % 10 === 9 ? -60_000 : 5 // a step back of a minute every tenth event
    }
    const parts = ids.map((id) => parseId(id))
    for (let i = 1; i < ids.length; i++) {
      expect((ids[i] as string) > (ids[i - 1] as string)).toBe(true)
      expect(parts[i]?.ts).toBeGreaterThanOrEqual(parts[i - 1]?.ts as number)
      expect(parts[i]?.seq).toBe((parts[i - 1]?.seq as number) + 1)
    }
    // And across a restart with the clock still behind.
    await log.close()
    now -= 3_600_000
    const reopened = await openEventLog({ dir, tag: TAG_A, clock: () => now })
    const [[after]] = reopened.append([{ events: [{ type: 'clock.test' }] }]) as [[string]]
    expect(after > (ids.at(-1) as string)).toBe(true)
    expect(parseId(after)?.seq).toBe(51)
    await reopened.close()
  })

  it('gives unique ids across members, ordered by (ts, member, seq)', async () => {
    const now = 1_800_000_000_000
    const logs = await Promise.all(
      ['a', 'b', 'c', 'd'].map(async (name) =>
        openEventLog({ dir: await tempDir(), tag: memberTag(`peer-${name}`), clock: () => now }),
      ),
    )
    const all: string[] = []
    for (let round = 0; round < 25; round++) {
      for (const log of logs)
        all.push(...(log.append([{ events: [{ type: 'x' }, { type: 'y' }] }])[0] as string[]))
    }
    expect(new Set(all).size).toBe(all.length)
    const sorted = [...all].sort()
    const tuples = sorted.map((id) => parseId(id))
    for (let i = 1; i < tuples.length; i++) {
      const a = tuples[i - 1]
      const b = tuples[i]
      if (a === undefined || b === undefined) throw new Error('bad id')
      const tagOrder = Buffer.compare(a.tag, b.tag)
      expect(
        a.ts < b.ts || (a.ts === b.ts && (tagOrder < 0 || (tagOrder === 0 && a.seq < b.seq))),
      ).toBe(true)
    }
    await Promise.all(logs.map((log) => log.close()))
  })

  it('refuses a store of a newer format with a clear message', async () => {
    const dir = await tempDir()
    const log = await openEventLog({ dir, tag: TAG_A })
    await log.close()
    const db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    const batch = db.batch()
    batch.put(metaKey('format'), Buffer.of(STORE_FORMAT + 1)) // msgpack fixint
    await batch.write()
    await db.close()
    await expect(openEventLog({ dir, tag: TAG_A })).rejects.toThrow(
      /format 2, newer than this chorus understands/,
    )
  })

  it('deletes events older than retention from the time and type indexes, and keeps the rest', async () => {
    const dir = await tempDir()
    let now = 1_800_000_000_000
    const log = await openEventLog({ dir, tag: TAG_A, clock: () => now })
    const old = log.append([{ events: [{ type: 'app.old' }, { type: 'app.both' }] }])[0] as string[]
    now += 10 * 86_400_000
    const fresh = log.append([
      { events: [{ type: 'app.new' }, { type: 'app.both' }] },
    ])[0] as string[]
    await log.deleteEventsBefore(now - 86_400_000)

    const slice = decodingSlice(log)
    const base = { fromMs: 0, toMs: now + 1, reverse: false, minSeverity: 0, limit: 100 }
    const everything = await collect(slice({ ...base, types: [] }))
    expect(everything.items.map((e) => e.id)).toEqual(fresh)
    const both = await collect(slice({ ...base, types: ['app.both'] }))
    expect(both.items.map((e) => e.id)).toEqual([fresh[1]])
    const oldType = await collect(slice({ ...base, types: ['app.old'] }))
    expect(oldType.items).toEqual([])
    const lookup = createLookupHandler({ log })
    expect(await lookup(decodeId(old[0] as string) as Uint8Array)).toBeUndefined()
    const found = await lookup(decodeId(fresh[0] as string) as Uint8Array)
    expect(found && decodeStored([found], 'peer', 'a')).toMatchObject([
      { id: fresh[0], type: 'app.new' },
    ])
    await log.close()
  })

  it('scans a type prefix through the per-type indexes in id order, both directions', async () => {
    const dir = await tempDir()
    let now = 1_800_000_000_000
    const log = await openEventLog({ dir, tag: TAG_A, clock: () => now++ })
    const types = ['http.request', 'http.error', 'db.query', 'http.request.slow', 'httpx.other']
    const ids: Array<[string, string]> = []
    for (let i = 0; i < 300; i++) {
      const type = types[i % types.length] as string
      ids.push([type, (log.append([{ events: [{ type }] }])[0] as string[])[0] as string])
    }
    const slice = decodingSlice(log)
    const expected = ids.filter(([t]) => t.startsWith('http.')).map(([, id]) => id)
    const base = { fromMs: 0, toMs: now + 1, minSeverity: 0, limit: 1000, types: ['http.*'] }
    const asc = await collect(slice({ ...base, reverse: false }))
    expect(asc.items.map((e) => e.id)).toEqual(expected)
    const desc = await collect(slice({ ...base, reverse: true }))
    expect(desc.items.map((e) => e.id)).toEqual([...expected].reverse())
    const limited = await collect(slice({ ...base, reverse: false, limit: 10 }))
    expect(limited.items.map((e) => e.id)).toEqual(expected.slice(0, 10))
    expect(limited.trailer.more).toBe(true)
    expect(asc.trailer.more).toBe(false)
    await log.close()
  })

  it('reads a long filtered range in growing steps without skipping or repeating a row', async () => {
    const dir = await tempDir()
    let now = 1_800_000_000_000
    const log = await openEventLog({ dir, tag: TAG_A, clock: () => now++ })
    const ids: Array<{ id: string; type: string; marked: boolean }> = []
    for (let i = 0; i < 5000; i++) {
      const type = i % 7 === 0 ? 'disk.full' : i % 11 === 0 ? 'disk.slow' : 'http.request'
      const marked = i % 97 === 0
      const [[id]] = log.append([
        { events: [{ type, message: marked ? `Needle ${i}` : `hay ${i}` }] },
      ]) as [[string]]
      ids.push({ id, type, marked })
    }
    const slice = decodingSlice(log)
    const base = { fromMs: 0, toMs: now + 1, minSeverity: 0, types: [] as string[] }
    // A small page starts with a small read; a sparse match then needs many, larger ones.
    const needles = ids.filter((e) => e.marked).map((e) => e.id)
    for (const reverse of [false, true]) {
      const found = await collect(slice({ ...base, reverse, limit: 20, text: 'needle' }))
      const expected = reverse ? [...needles].reverse() : needles
      expect(found.items.map((e) => e.id)).toEqual(expected.slice(0, 20))
      expect(found.trailer.more).toBe(true)
      const all = await collect(slice({ ...base, reverse, limit: 1000, text: 'needle' }))
      expect(all.items.map((e) => e.id)).toEqual(expected)
      expect(all.trailer).toMatchObject({ scanned: 5000, more: false })
    }
    // The merge of two types' indexes grows its reads the same way.
    const disk = ids.filter((e) => e.type.startsWith('disk.')).map((e) => e.id)
    for (const reverse of [false, true]) {
      const expected = reverse ? [...disk].reverse() : disk
      const page = await collect(slice({ ...base, reverse, limit: 300, types: ['disk.*'] }))
      expect(page.items.map((e) => e.id)).toEqual(expected.slice(0, 300))
      const all = await collect(slice({ ...base, reverse, limit: 5000, types: ['disk.*'] }))
      expect(all.items.map((e) => e.id)).toEqual(expected)
    }
    await log.close()
  })

  it('hands over what each store read found before reading more, so a member granted 250 events reads about 250 rows', async () => {
    const dir = await tempDir()
    let now = 1_800_000_000_000
    const log = await openEventLog({ dir, tag: TAG_A, clock: () => now++ })
    for (let i = 0; i < 50; i++)
      log.append([{ events: Array.from({ length: 100 }, () => ({ type: 'http.request' })) }])
    let rowsRead = 0
    const counted: EventLog = Object.create(log, {
      scan: {
        value: async function* (...args: Parameters<EventLog['scan']>) {
          for await (const rows of log.scan(...args)) {
            rowsRead += rows.length
            yield rows
          }
        },
      },
    })
    const answer = createSliceHandler({ log: counted })({
      fromMs: 0,
      toMs: now + 1,
      reverse: false,
      types: [],
      minSeverity: 0,
      limit: 1000,
      window: 250,
    })
    const first = await answer.batches.next()
    expect(first.done).toBe(false)
    expect((first.value as unknown[]).length).toBe(251)
    expect(rowsRead).toBe(251)
    await answer.batches.return({ hwm: 0, scanned: 0, more: false })
    expect(log.openScans).toBe(0)
    await log.close()
  })

  it('leaves files it did not write alone in the data dir', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'operator-notes.txt'), 'keep me')
    const log = await openEventLog({ dir: join(dir, 'chorus', 'store'), tag: TAG_A })
    log.append([{ events: [{ type: 'x' }] }])
    await log.close()
    expect(await readFile(join(dir, 'operator-notes.txt'), 'utf8')).toBe('keep me')
  })
})

describe('stamps across a jump of the wall clock', () => {
  it('do not follow a jump of a year ahead and back: ids stay unique and ordered, stamps stay near real time, also after a restart', async () => {
    const dir = await tempDir()
    const HOUR = 3_600_000
    const YEAR = 365 * 24 * HOUR
    let real = 1_800_000_000_000
    let wall = real
    let mono = 1000
    const tick = (ms: number) => {
      real += ms
      wall += ms
      mono += ms
    }
    const open = () =>
      openEventLog({
        dir,
        tag: TAG_A,
        clock: () => wall,
        monotonic: () => mono,
        maxClockJumpMs: HOUR,
      })
    const log = await open()
    const stamped: Array<{ id: string; real: number }> = []
    const append = (target: EventLog) => {
      const [[id]] = target.append([{ events: [{ type: 'clock.jump' }] }]) as [[string]]
      stamped.push({ id, real })
      tick(5)
    }
    for (let i = 0; i < 10; i++) append(log)
    expect(log.clockJumpMs).toBe(0)
    // The wall clock leaps a year ahead: stamps keep to real time, the jump is reported.
    wall += YEAR
    expect(log.clockJumpMs).toBeGreaterThanOrEqual(YEAR - 1000)
    for (let i = 0; i < 10; i++) append(log)
    // The wall clock comes back: stamps follow it again, with nothing to catch up.
    wall -= YEAR
    for (let i = 0; i < 10; i++) append(log)
    expect(log.clockJumpMs).toBe(0)
    // A small step back (a minute) is absorbed by holding ts still.
    wall -= 60_000
    for (let i = 0; i < 5; i++) append(log)
    wall += 60_000
    await log.close()
    tick(10_000)
    const reopened = await open()
    for (let i = 0; i < 10; i++) append(reopened)
    expect(reopened.clockJumpMs).toBe(0)
    await reopened.close()

    const parts = stamped.map((s) => parseId(s.id) as NonNullable<ReturnType<typeof parseId>>)
    expect(new Set(stamped.map((s) => s.id)).size).toBe(stamped.length)
    for (let i = 1; i < stamped.length; i++) {
      expect((stamped[i] as { id: string }).id > (stamped[i - 1] as { id: string }).id).toBe(true)
      expect(parts[i]?.ts).toBeGreaterThanOrEqual(parts[i - 1]?.ts as number)
      expect(parts[i]?.seq).toBe((parts[i - 1]?.seq as number) + 1)
    }
    // No stamp ran ahead of real time by more than the minute's hold.
    for (let i = 0; i < stamped.length; i++) {
      const off = (parts[i]?.ts as number) - (stamped[i] as { real: number }).real
      expect(Math.abs(off), `event ${i}`).toBeLessThanOrEqual(60_000)
    }
    // After the restart stamps are the real clock again.
    const last = stamped.at(-1) as { real: number }
    expect(parts.at(-1)?.ts).toBe(last.real)
  })

  it('report a member started with its clock far ahead once the clock returns, instead of hiding the hold', async () => {
    const dir = await tempDir()
    const HOUR = 3_600_000
    let wall = 1_800_000_000_000 + 24 * HOUR
    let mono = 0
    const log = await openEventLog({
      dir,
      tag: TAG_A,
      clock: () => wall,
      monotonic: () => mono,
      maxClockJumpMs: HOUR,
    })
    log.append([{ events: [{ type: 'clock.ahead' }] }])
    await log.close()
    wall -= 24 * HOUR
    mono += 5
    const reopened = await openEventLog({
      dir,
      tag: TAG_A,
      clock: () => wall,
      monotonic: () => mono,
      maxClockJumpMs: HOUR,
    })
    expect(reopened.clockJumpMs).toBe(24 * HOUR)
    await reopened.close()
  })
})
