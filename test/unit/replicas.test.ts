// Placement by rendezvous hashing, and the store's copies of other members'
// events: what moves when a member joins or leaves, and what a holder
// refuses to store.

import { afterEach, describe, expect, it } from 'vitest'
import { memberTag, parseId, writeIdBytes } from '../../node/event/id.ts'
import type { MemberEntry } from '../../node/mesh/membership.ts'
import { candidatesOf, holdersOf } from '../../node/replica/placement.ts'
import { encodeStoredFields } from '../../node/store/codec.ts'
import { type EventLog, openEventLog } from '../../node/store/event-log.ts'
import { scanEvents } from '../../node/store/event-scan.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'

const logs: EventLog[] = []
afterEach(async () => {
  await Promise.all(logs.splice(0).map((l) => l.close()))
  await removeTempDirs()
})

const ids = (n: number) => Array.from({ length: n }, (_, i) => `12D3KooMember${i}`)

function placement(members: readonly string[], replicas: number) {
  return new Map(members.map((m) => [m, holdersOf(m, members, replicas)]))
}

describe('placement', () => {
  it('moves about 1/N of the assignments when a member joins, and only those of a member that leaves', () => {
    const replicas = 3
    const before = ids(50)
    const was = placement(before, replicas)
    for (const holders of was.values()) expect(holders).toHaveLength(replicas - 1)

    const joined = [...before, '12D3KooNewcomer']
    const now = placement(joined, replicas)
    let moved = 0
    for (const origin of before) {
      const old = was.get(origin) as string[]
      const next = now.get(origin) as string[]
      if (old.join() === next.join()) continue
      moved++
      // The only change a join makes: the newcomer takes one place.
      expect(next).toContain('12D3KooNewcomer')
      expect(next.filter((h) => !old.includes(h))).toEqual(['12D3KooNewcomer'])
    }
    // 100 assignments; the newcomer takes about (R − 1) × N / (N + 1) ≈ 2 of them.
    expect(moved).toBeLessThanOrEqual(8)

    const gone = before[7] as string
    const left = before.filter((m) => m !== gone)
    const after = placement(left, replicas)
    for (const origin of left) {
      const old = was.get(origin) as string[]
      const next = after.get(origin) as string[]
      if (old.includes(gone)) {
        expect(next).not.toContain(gone)
        expect(next.filter((h) => old.includes(h))).toHaveLength(replicas - 2)
      } else {
        expect(next).toEqual(old)
      }
    }
  })

  it('spreads the copies: no member holds more than a few times its share', () => {
    const members = ids(40)
    const load = new Map<string, number>()
    for (const holders of placement(members, 2).values())
      for (const h of holders) load.set(h, (load.get(h) ?? 0) + 1)
    expect(Math.max(...load.values())).toBeLessThanOrEqual(6)
  })

  it('keeps a dead or left member a candidate for the re-replication delay, and no longer', () => {
    const entry = (member: string, state: MemberEntry['state'], lastSeen: number) =>
      ({ member, state, lastSeen }) as MemberEntry
    const table = [
      entry('a', 'alive', 0),
      entry('b', 'suspect', 0),
      entry('c', 'dead', 95_000),
      entry('d', 'dead', 30_000),
      entry('e', 'left', 99_000),
      entry('f', 'conflict', 100_000),
    ]
    expect(candidatesOf(table, 100_000, 60_000)).toEqual(['a', 'b', 'c', 'e'])
  })
})

function event(tag: Uint8Array, seq: number, ts = 1_000 + seq, type = 'app.x') {
  const id = new Uint8Array(16)
  writeIdBytes(id, 0, ts, tag, seq)
  return { id, value: encodeStoredFields({ type, severity: 1, message: `e${seq}` }) }
}

describe("a store's copies of another member's events", () => {
  it('keeps them in order, apart from its own, and refuses what does not follow or is not the origin', async () => {
    const log = await openEventLog({ dir: await tempDir(), tag: memberTag('12D3KooSelf') })
    logs.push(log)
    log.append([{ events: [{ type: 'own.event' }] }])
    const origin = { peerId: '12D3KooOrigin', tag: memberTag('12D3KooOrigin') }
    const first = [1, 2, 3].map((s) => event(origin.tag, s, 1000 + s, s === 2 ? 'app.y' : 'app.x'))
    expect((await log.appendHeld(origin, first)).seq).toBe(3)

    const refusals: Array<[string, ReturnType<typeof event>[]]> = [
      ['another member', [event(memberTag('12D3KooOther'), 4)]],
      ['a seq already held', [event(origin.tag, 3)]],
      ['an id before the last held', [event(origin.tag, 4, 10)]],
      ['a batch with one bad event', [event(origin.tag, 4), event(origin.tag, 4)]],
    ]
    for (const [what, events] of refusals)
      await expect(log.appendHeld(origin, events), what).rejects.toThrow(/follow|another/)
    await expect(
      log.appendHeld({ ...origin, peerId: '12D3KooImpostor' }, [event(origin.tag, 4)]),
    ).rejects.toThrow(/another member/)
    await expect(
      log.appendHeld({ peerId: '12D3KooSelf', tag: log.tag }, [event(log.tag, 9)]),
    ).rejects.toThrow(/own events/)

    // Nothing refused was written; a gap (the source's retention) is taken.
    expect((await log.appendHeld(origin, [event(origin.tag, 9)])).seq).toBe(9)
    const held = log.held(origin.tag)
    expect(held?.seq).toBe(9)
    expect(held?.types()).toEqual(['app.x', 'app.y'])
    const scan = async (space: Parameters<typeof scanEvents>[0], types: string[] = []) => {
      const out: number[] = []
      const it = scanEvents(space, {
        fromMs: 0,
        toMs: Date.now() + 60_000,
        reverse: false,
        types,
        minSeverity: 0,
        limit: 100,
        hwm: space.lastSeq,
      })
      for await (const batch of it) for (const e of batch) out.push(e.id[15] as number)
      return out
    }
    expect(await scan(held as NonNullable<typeof held>)).toEqual([1, 2, 3, 9])
    expect(await scan(held as NonNullable<typeof held>, ['app.y'])).toEqual([2])
    expect(await scan(log)).toEqual([1]) // its own event only
    expect(log.lastSeq).toBe(1)

    // Its rollups are kept as the origin's own: four events, none of this member's own among them.
    const heldCount = async () => {
      let n = 0
      for await (const rows of log.scanRollups(2, 0, Date.now() + 3_600_000, origin.tag))
        for (const r of rows) n += r.bucket.count
      return n
    }
    expect(await heldCount()).toBe(4)
    // And its totals, apart from this member's own.
    const sorted = (t: Array<{ type: string; severity: number; count: number }>) =>
      [...t].sort((a, b) => (a.type < b.type ? -1 : 1))
    expect(sorted(log.heldTotals('12D3KooOrigin'))).toEqual([
      { type: 'app.x', severity: 1, count: 3 },
      { type: 'app.y', severity: 1, count: 1 },
    ])
    expect(log.totals().map((t) => t.type)).toEqual(['own.event'])
    expect(log.heldTotals('12D3KooImpostor')).toEqual([])

    // Dropped whole.
    expect(log.heldMarks().map((m) => [m.peerId, m.seq])).toEqual([['12D3KooOrigin', 9]])
    await log.dropHeld(origin.tag)
    expect(log.held(origin.tag)).toBeUndefined()
    expect(log.heldMarks()).toEqual([])
    expect(await heldCount()).toBe(0)
    expect(log.heldTotals('12D3KooOrigin')).toEqual([])
  })

  it('remembers its copies and their marks across a restart, and ages them with retention', async () => {
    const dir = await tempDir()
    const origin = { peerId: '12D3KooOrigin', tag: memberTag('12D3KooOrigin') }
    const first = await openEventLog({ dir, tag: memberTag('12D3KooSelf') })
    await first.appendHeld(origin, [event(origin.tag, 1, 1000), event(origin.tag, 2, 5000)])
    await first.close()
    const log = await openEventLog({ dir, tag: memberTag('12D3KooSelf') })
    logs.push(log)
    expect(log.held(origin.tag)?.seq).toBe(2)
    expect(log.held(origin.tag)?.types()).toEqual(['app.x'])
    await log.deleteEventsBefore(2000)
    const values = await log
      .held(origin.tag)
      ?.getMany([event(origin.tag, 1, 1000).id, event(origin.tag, 2, 5000).id])
    expect(values?.map((v) => v !== undefined)).toEqual([false, true])
    // The mark stays: seq is never asked for again; and the totals count every event ever held.
    expect(log.held(origin.tag)?.seq).toBe(2)
    expect(log.heldTotals(origin.peerId)).toEqual([{ type: 'app.x', severity: 1, count: 2 }])
  })
})

describe('a store restoring its own events', () => {
  it('takes no event while sealed, continues seq past the holders, and counts restored events once in rollups and totals', async () => {
    const tag = memberTag('12D3KooSelf')
    const log = await openEventLog({ dir: await tempDir(), tag })
    logs.push(log)
    log.seal('restoring')
    expect(() => log.append([{ events: [{ type: 'too.early' }] }])).toThrow(
      expect.objectContaining({ name: 'RestoringError' }),
    )
    expect(log.lastSeq).toBe(0)
    const now = Date.now()
    log.advanceTo(3, now - 5000)
    expect(log.sealed).toBe(false)
    const [[fresh]] = log.append([{ events: [{ type: 'app.x' }] }]) as [[string]]
    expect(parseId(fresh)?.seq).toBe(4)

    const restored = [1, 2, 3].map((s) => event(tag, s, now - 9000 + s))
    expect(log.appendRestored(restored)).toBe(3)
    expect(log.appendRestored(restored.slice(1))).toBe(0) // already here: nothing twice
    expect(() => log.appendRestored([event(tag, 9, now)])).toThrow(/past this member's newest/)
    expect(() => log.appendRestored([event(memberTag('12D3KooOther'), 1, now)])).toThrow(
      /another member/,
    )
    // An append after the restore adds to the buckets the restore wrote.
    log.append([{ events: [{ type: 'app.x' }] }])
    const total = log.totals().find((t) => t.type === 'app.x')?.count
    expect(total).toBe(5)
    for (const resolution of [0, 1, 2]) {
      let counted = 0
      for await (const rows of log.scanRollups(resolution, 0, now + 3_600_000))
        for (const r of rows) if (r.type === 'app.x') counted += r.bucket.count
      expect([resolution, counted]).toEqual([resolution, 5])
    }
  })
})
