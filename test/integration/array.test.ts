// Five real members in one process, over TCP on loopback: any member answers
// for the whole array with one ordered, id-bounded result set.

import { lpStream } from '@libp2p/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChorusEvent } from '../../node/event/event.ts'
import { memberTag } from '../../node/event/id.ts'
import type { Member } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import type { RecentAnswers } from '../../node/stats.ts'
import {
  type Announcement,
  decodeAnswer,
  decodeSwim,
  decodeUpdate,
  encodeAccusation,
  encodeAnnouncement,
  encodeMore,
  encodeSignedAccusation,
  encodeSignedAnnouncement,
  encodeSliceRequest,
  encodeSwim,
  LOOKUP_PROTOCOL,
  MAX_ANSWER_BYTES,
  MAX_SYNC_BYTES,
  SLICE_PROTOCOL,
  SWIM_PROTOCOL,
} from '../../protocol/index.ts'
import { metricSample, removeTempDirs, startArray, stateOf, waitFor } from '../helpers.ts'

let array: Member[] = []

/** An announcement with a signature that nobody made. */
const signed = (a: Announcement) =>
  encodeSignedAnnouncement(encodeAnnouncement(a), new Uint8Array(64))

/** Sends one raw membership message from one member's host to another; resolves to the answer, if any. */
async function swim(from: Member, to: Member, bytes: Uint8Array): Promise<Uint8Array | undefined> {
  const stream = await from.mesh.host.dialProtocol(to.mesh.host.peerId, SWIM_PROTOCOL, {
    signal: AbortSignal.timeout(5000),
  })
  const lp = lpStream(stream, { maxDataLength: MAX_SYNC_BYTES })
  await lp.write(bytes)
  // Done sending: the member answers, if the message has an answer, and ends the stream.
  await stream.close()
  try {
    return (await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()
  } catch {
    return undefined
  }
}
/** Every acknowledged id, by member name. */
const ingested = new Map<string, string[]>()

async function post(member: Member, events: object[]): Promise<string[]> {
  const response = await member.app.request('/v1/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(events),
  })
  expect(response.status).toBe(201)
  const ids = ((await response.json()) as { ids: string[] }).ids
  ingested.set(member.name, [...(ingested.get(member.name) ?? []), ...ids])
  return ids
}

async function page(member: Member, query: string): Promise<ResultPage> {
  const response = await member.app.request(`/v1/events?${query}`)
  const body = (await response.json()) as ResultPage
  expect(response.status, JSON.stringify(body)).toBe(200)
  return body
}

async function walk(
  member: Member,
  query: string,
  direction: 'next' | 'prev' = 'next',
  /** Parameters sent with every page, cursors included (a cursor carries only the query). */
  each = '',
): Promise<{ events: ChorusEvent[]; pages: ResultPage[] }> {
  const pages: ResultPage[] = []
  let current = await page(member, `${query}${each}`)
  for (let i = 0; i < 1000; i++) {
    pages.push(current)
    const cursor = current[direction]
    if (cursor === null) break
    current = await page(member, `cursor=${cursor}${each}`)
  }
  const events =
    direction === 'next' ? pages.flatMap((p) => p.events) : pages.reverse().flatMap((p) => p.events)
  return { events, pages }
}

beforeAll(async () => {
  array = await startArray(5)
  const types = ['web.request', 'web.error', 'db.query', 'auth.login']
  const severities = ['debug', 'info', 'warn', 'error', 'critical']
  // 10,000 events, 2,000 per member, ingested in interleaved rounds.
  for (let round = 0; round < 10; round++) {
    await Promise.all(
      array.map((member, m) =>
        post(
          member,
          Array.from({ length: 200 }, (_, i) => ({
            type: types[(i + m) % types.length],
            severity: severities[(i * 3 + m) % severities.length],
            message: `round ${round} event ${i} from ${member.name}${i % 50 === 0 ? ' NEEDLE' : ''}`,
            value: i,
            attrs: { round, i },
          })),
        ),
      ),
    )
  }
}, 120_000)

afterAll(async () => {
  await Promise.all(array.map((m) => m.stop()))
  await removeTempDirs()
})

const allIds = () => [...ingested.values()].flat().sort()

describe('an array of five members', () => {
  it("answers from any member with every member's events as one set in exact array order", async () => {
    const expected = allIds().slice(0, 500)
    for (const member of array) {
      const result = await page(member, 'from=0&limit=500')
      expect(result.events.map((e) => e.id)).toEqual(expected)
      expect(result.partial).toBe(false)
      expect(result.members.map((r) => r.name).sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4'])
      expect(result.members.every((r) => r.status === 'ok')).toBe(true)
      expect(result.members.reduce((sum, r) => sum + r.count, 0)).toBe(500)
      for (const e of result.events) expect(ingested.get(e.memberName)).toContain(e.id)
      for (const r of result.members) {
        expect(r.count).toBe(result.events.filter((e) => e.memberName === r.name).length)
      }
    }
  })

  it('pages with next through 10,000 events exactly once and in order, and prev walks back', async () => {
    const expected = allIds()
    expect(expected).toHaveLength(10_000)
    const forward = await walk(array[2] as Member, 'from=0&limit=777')
    expect(forward.events.map((e) => e.id)).toEqual(expected)
    // The pages' ids bound them.
    for (const p of forward.pages) {
      expect(p.firstId).toBe(p.events[0]?.id ?? null)
      expect(p.lastId).toBe(p.events.at(-1)?.id ?? null)
    }
    // Back from the last page, through another member.
    const last = forward.pages.at(-1) as ResultPage
    const back: ChorusEvent[] = []
    let cursor = last.prev
    for (let i = 0; i < 100 && cursor !== null; i++) {
      const p = await page(array[4] as Member, `cursor=${cursor}`)
      back.unshift(...p.events)
      cursor = p.prev
    }
    expect(back.map((e) => e.id)).toEqual(expected.slice(0, expected.length - last.events.length))
    const descending = await walk(array[0] as Member, 'from=0&limit=3000&order=desc')
    expect(descending.events.map((e) => e.id)).toEqual([...expected].reverse())
  })

  it('answers the same pages through sub-coordinators (tree fan-out) as directly, cursors and rows included', async () => {
    const coordinator = array[2] as Member
    const groupsServed = () =>
      array
        .flatMap((m) => m.mesh.counters.peerRequests)
        .filter((r) => r.protocol === 'group' && r.outcome === 'ok')
        .reduce((sum, r) => sum + r.count, 0)
    const flat = await walk(coordinator, 'from=0&limit=700', 'next', '&fanout=flat')
    const before = groupsServed()
    const tree = await walk(coordinator, 'from=0&limit=700', 'next', '&fanout=tree')
    // Four others in two groups: two sub-coordinators a page.
    expect(groupsServed() - before).toBe(2 * tree.pages.length)
    expect(tree.events.map((e) => e.id)).toEqual(allIds())
    expect(tree.pages.map((p) => p.events.length)).toEqual(flat.pages.map((p) => p.events.length))
    for (const p of tree.pages) {
      expect(p.partial).toBe(false)
      expect(p.members.map((r) => [r.name, r.status]).sort()).toEqual(
        array.map((m) => [m.name, 'ok']).sort(),
      )
      // Each row counts that member's events in the page, as a flat fan-out does.
      for (const row of p.members)
        expect(row.count).toBe(p.events.filter((e) => e.member === row.member).length)
    }
    const back = await walk(coordinator, 'from=0&limit=700&order=desc', 'next', '&fanout=tree')
    expect(back.events.map((e) => e.id)).toEqual([...allIds()].reverse())
    const bad = await coordinator.app.request('/v1/events?from=0&fanout=star')
    expect(bad.status).toBe(400)
    expect(await bad.text()).toMatch(/fanout/)
  })

  it('keeps events logged after the first page out of the later pages of that set', async () => {
    const before = allIds()
    const first = await page(array[1] as Member, 'from=0&limit=4000')
    // Log more everywhere, at times inside [from, to) of the set.
    const late = (
      await Promise.all(array.map((m) => post(m, [{ type: 'late.event' }, { type: 'late.event' }])))
    ).flat()
    const seen = [...first.events]
    let cursor = first.next
    while (cursor !== null) {
      const p = await page(array[3] as Member, `cursor=${cursor}`)
      seen.push(...p.events)
      cursor = p.next
    }
    expect(seen.map((e) => e.id)).toEqual(before)
    // A new set started after the last event sees them.
    const tail = await page(array[0] as Member, `after=${before.at(-1)}`)
    expect(tail.events.map((e) => e.id)).toEqual([...late].sort())
  })

  it('filters by type, severity, member and text across members', async () => {
    const all = (await walk(array[0] as Member, 'from=0&limit=10000&type=web.*,db.query')).events
    expect(all.length).toBeGreaterThan(0)
    expect(all.every((e) => e.type.startsWith('web.') || e.type === 'db.query')).toBe(true)
    expect(new Set(all.map((e) => e.memberName)).size).toBe(5)
    const severe = (
      await walk(array[1] as Member, 'from=0&limit=10000&severity=error&type=auth.login')
    ).events
    expect(
      severe.every(
        (e) => (e.severity === 'error' || e.severity === 'critical') && e.type === 'auth.login',
      ),
    ).toBe(true)
    expect(severe.length).toBeGreaterThan(0)
    const two = await page(
      array[2] as Member,
      'from=0&limit=10000&member=m1&member=m3&type=db.query',
    )
    expect(new Set(two.events.map((e) => e.memberName))).toEqual(new Set(['m1', 'm3']))
    expect(two.members.map((r) => r.name).sort()).toEqual(['m1', 'm3'])
    const needles = await page(array[3] as Member, 'from=0&limit=10000&q=needle')
    expect(needles.events).toHaveLength(5 * 10 * 4)
    expect(needles.events.map((e) => e.id)).toEqual([...needles.events.map((e) => e.id)].sort())
  })

  it('reads from each member only about its share of the page, not a whole page from each', async () => {
    const sent = () => array.reduce((sum, m) => sum + m.mesh.counters.sliceEventsSent, 0)
    const before = sent()
    const result = await page(array[0] as Member, 'from=0&limit=1000')
    expect(result.events).toHaveLength(1000)
    // Four peers, each granted 1.25 × 1000 / 5 = 250 events at first, and
    // their share of this evenly spread set is 200: no grant more, so at most
    // 1,000 cross the wire, where a whole page from each would be 4,000.
    expect(sent() - before).toBeLessThanOrEqual(1000)
  })

  it('closes every store scan a full page cancelled, so no member is left holding an iterator', async () => {
    const coordinator = array[0] as Member
    for (const limit of [10, 100, 1000]) {
      const result = await page(coordinator, `from=0&limit=${limit}`)
      expect(result.events).toHaveLength(limit)
    }
    const open = async () => {
      let sum = 0
      for (const m of array) {
        const metrics = await (await m.app.request('/metrics')).text()
        sum += metricSample(metrics, 'chorus_store_scans_open') ?? Number.NaN
      }
      return sum
    }
    await waitFor(async () => (await open()) === 0, { what: 'every scan closed' })
  })

  it('gives a member that asks (push/pull) the latest word of every member it knows, itself included', async () => {
    const [asker, asked] = array as [Member, Member]
    const answer = decodeSwim(
      (await swim(
        asker,
        asked,
        encodeSwim({ kind: 'sync', sentAt: Date.now(), digest: '', updates: [] }),
      )) ?? new Uint8Array(),
    )
    expect(answer.kind).toBe('sync')
    const known = (answer as { updates: Uint8Array[] }).updates
      .map(decodeUpdate)
      .flatMap((u) => (u.kind === 'word' ? [u.signed] : []))
    const expected = array
      .map((m) => ({
        peerId: m.peerId,
        name: m.name,
        addrs: m.p2pAddrs().map((a) => a.replace(/\/p2p\/[^/]+$/, '')),
        leaving: false,
      }))
      .sort((x, y) => x.name.localeCompare(y.name))
    expect(
      known
        .map((s) => s.announcement)
        .sort((x, y) => x.name.localeCompare(y.name))
        .map(({ peerId, name, addrs, leaving }) => ({ peerId, name, addrs, leaving })),
    ).toEqual(expected)
  })

  it('fetches one event by id from its owner through any member', async () => {
    for (const owner of array) {
      const id = ingested.get(owner.name)?.[7] as string
      for (const asker of array) {
        const response = await asker.app.request(`/v1/events/${id}`)
        expect(response.status).toBe(200)
        const event = (await response.json()) as ChorusEvent
        expect(event).toMatchObject({
          id,
          member: owner.peerId,
          memberName: owner.name,
          attrs: { round: 0, i: 7 },
        })
      }
    }
    const [someId] = ingested.get('m4') as [string]
    const missing = `${someId.slice(0, -3)}ZZZ`
    const notFound = await (array[0] as Member).app.request(`/v1/events/${missing}`)
    expect(notFound.status).toBe(404)
  })

  it('answers a malformed or oversized slice request with an error code and keeps serving', async () => {
    const [asker, target] = array as [Member, Member]
    const garbage = await asker.mesh.host.dialProtocol(target.mesh.host.peerId, SLICE_PROTOCOL)
    const lp = lpStream(garbage)
    await lp.write(Uint8Array.of(0xc1, 0x00, 0xff))
    const reply = decodeAnswer((await lp.read()).subarray())
    expect(reply).toMatchObject({ kind: 'error', code: 'malformed' })

    const huge = await asker.mesh.host.dialProtocol(target.mesh.host.peerId, LOOKUP_PROTOCOL)
    // A length prefix of 4 GiB: refused on the prefix alone.
    huge.send(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x10))
    const hugeReply = decodeAnswer((await lpStream(huge).read()).subarray())
    expect(hugeReply.kind).toBe('error')
    const still = await page(asker, 'from=0&limit=10')
    expect(still.partial).toBe(false)
  })

  it('reports a member that speaks another protocol version as unsupported, without waiting for the deadline, and has its holder answer for it', async () => {
    const odd = array[4] as Member
    const holder = array.find((m) => m.peerId === odd.replicator.holders(odd.peerId)[0]) as Member
    // Asked through a third member: the holder itself would answer for odd directly.
    const asker = array.find((m) => m !== odd && m !== holder) as Member
    await waitFor(() => holder.log.held(memberTag(odd.peerId))?.seq === odd.log.lastSeq, {
      what: "odd's events at its holder",
    })
    const answers = async () =>
      ((await (await asker.app.request('/v1/health')).json()) as { answers: RecentAnswers }).answers
    const before = await answers()
    const complete = await page(asker, 'from=0&limit=1000')
    await odd.mesh.host.unhandle(SLICE_PROTOCOL)
    try {
      // Its holder answers for it at once: the page is whole.
      const served = await page(asker, 'from=0&limit=1000&timeout=5s')
      expect(served.partial).toBe(false)
      expect(served.events.map((e) => e.id)).toEqual(complete.events.map((e) => e.id))
      expect(served.members.find((r) => r.name === odd.name)).toMatchObject({
        status: 'ok',
        servedBy: holder.name,
      })
      // With its holder unable too, the row says how the member itself failed.
      await holder.mesh.host.unhandle(SLICE_PROTOCOL)
      const started = Date.now()
      const result = await page(asker, 'from=0&limit=10&timeout=5s')
      expect(Date.now() - started).toBeLessThan(4000)
      expect(result.partial).toBe(true)
      expect(result.members.find((r) => r.name === odd.name)?.status).toBe('unsupported')
      // The coordinator counts its answers, and the partial one, for the dashboard and Prometheus.
      const after = await answers()
      expect(after.total - before.total).toBe(3)
      expect(after.partial - before.partial).toBe(1)
      const metrics = await (await asker.app.request('/metrics')).text()
      expect(
        metricSample(metrics, 'chorus_query_answers_total{kind="events",partial="true"}'),
      ).toBe(after.partial)
    } finally {
      for (const m of [odd, holder])
        await m.mesh.host.handle(SLICE_PROTOCOL, () => {}, { force: true }).catch(() => {})
    }
  })
})

describe('the slice protocol', () => {
  it("makes the member pause after each grant, so a coordinator that reads slowly slows the member's scan", async () => {
    const [reader, holder] = (await startArray(2, { names: ['bp0', 'bp1'] })) as [Member, Member]
    try {
      for (let i = 0; i < 10; i++) {
        await post(
          holder,
          Array.from({ length: 1000 }, (_, j) => ({
            type: 'bulk.event',
            message: `${i}-${j} ${'x'.repeat(1000)}`,
          })),
        )
      }
      const stream = await reader.mesh.host.dialProtocol(holder.mesh.host.peerId, SLICE_PROTOCOL)
      const lp = lpStream(stream, { maxDataLength: MAX_ANSWER_BYTES })
      await lp.write(
        encodeSliceRequest({
          fromMs: 0,
          toMs: Date.now() + 1,
          reverse: false,
          types: [],
          minSeverity: 0,
          limit: 10_000,
          window: 10_000,
        }),
      )
      expect(decodeAnswer((await lp.read()).subarray()).kind).toBe('head')
      const first = decodeAnswer((await lp.read()).subarray())
      expect(first.kind).toBe('batch')
      let received = first.kind === 'batch' ? first.events.length : 0
      // Not reading and granting nothing: the member stops after about a
      // megabyte, however large the window, and waits.
      const stalled = await settled(() => holder.mesh.counters.sliceEventsSent)
      expect(stalled).toBeLessThan(2000)
      let pauses = 0
      for (;;) {
        const message = decodeAnswer((await lp.read()).subarray())
        if (message.kind === 'pause') {
          pauses++
          await lp.write(encodeMore(1000))
        }
        if (message.kind === 'batch') received += message.events.length
        if (message.kind === 'trailer') break
      }
      expect(received).toBe(10_000)
      expect(pauses).toBeGreaterThan(4)
      expect(holder.mesh.counters.sliceEventsSent).toBe(10_000)
    } finally {
      await reader.stop()
      await holder.stop()
    }
  })
})

/** Polls a number until it has not changed for 5 polls 100 ms apart (at most 10 s), and returns it. */
async function settled(read: () => number): Promise<number> {
  let last = read()
  let same = 0
  for (let i = 0; i < 100 && same < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const now = read()
    same = now === last ? same + 1 : 0
    last = now
  }
  return last
}

describe('membership in one process', () => {
  it('drops and counts membership messages that are malformed or speak for another member', async () => {
    const [a, b, c] = array as [Member, Member, Member]
    const before = b.mesh.counters.membershipDropped
    await swim(a, b, Uint8Array.of(1, 2, 3))
    const impostor: Announcement = {
      peerId: c.peerId,
      name: 'impostor',
      addrs: [],
      http: '',
      version: '0',
      seq: 0,
      startedAt: Date.now(),
      sentAt: Date.now(),
      health: 'ok',
      incarnation: 99,
      beat: 1,
      leaving: true,
      settings: '',
      skewMs: 0,
    }
    // A word for c that c did not sign, and an accusation of c in c's own name.
    const accusation = encodeAccusation({
      subject: c.peerId,
      startedAt: c.membership.get(c.peerId)?.startedAt ?? 0,
      incarnation: 50,
      dead: true,
      accuser: c.peerId,
    })
    await swim(
      a,
      b,
      encodeSwim({
        kind: 'gossip',
        updates: [signed(impostor), encodeSignedAccusation(accusation, new Uint8Array(64))],
      }),
    )
    await waitFor(() => b.mesh.counters.membershipDropped >= before + 3, {
      what: 'dropped messages and updates counted',
    })
    for (const m of array) {
      expect(m.membership.table().some((e) => e.name === 'impostor')).toBe(false)
      expect(stateOf(m, c.name)).toBe('alive')
    }
  })

  it('keeps connections to at most six neighbours for membership, and says so on /metrics', async () => {
    for (const m of array) {
      const neighbours = m.membership.neighbours()
      expect(neighbours.length).toBeGreaterThan(0)
      expect(neighbours.length).toBeLessThanOrEqual(6)
      expect(neighbours).not.toContain(m.peerId)
      const metrics = await (await m.app.request('/metrics')).text()
      const kept = metricSample(metrics, 'chorus_mesh_connections{kind="neighbours"}')
      expect(kept).toBeLessThanOrEqual(neighbours.length)
      expect(metricSample(metrics, 'chorus_mesh_connections{kind="all"}')).toBeGreaterThanOrEqual(
        kept ?? 0,
      )
    }
  })

  it("drops and counts a member's membership messages beyond the rate limit", async () => {
    const [a, b] = array as [Member, Member]
    const before = b.mesh.counters.membershipDropped
    const gossip = encodeSwim({ kind: 'gossip', updates: [] })
    for (let i = 0; i < 300; i++) await swim(a, b, gossip)
    await waitFor(() => b.mesh.counters.membershipDropped - before >= 40, {
      what: 'the excess dropped',
    })
    expect(stateOf(b, a.name)).toBe('alive')
  })

  it('shows a member stopped gracefully as left, which makes no answer partial, and forgets it on DELETE', async () => {
    const extra = await startArray(3, { names: ['x0', 'x1', 'x2'] })
    try {
      const [a, b, c] = extra as [Member, Member, Member]
      await c.stop()
      await waitFor(() => stateOf(a, 'x2') === 'left' && stateOf(b, 'x2') === 'left', {
        what: 'x2 left',
      })
      const result = await page(a, 'from=0')
      expect(result.partial).toBe(false)
      expect(result.members.map((r) => r.name).sort()).toEqual(['x0', 'x1'])
      const alive = await a.app.request('/v1/members/x1', { method: 'DELETE' })
      expect(alive.status).toBe(409)
      const gone = await a.app.request('/v1/members/x2', { method: 'DELETE' })
      expect(gone.status).toBe(200)
      expect(stateOf(a, 'x2')).toBeUndefined()
      const again = await a.app.request('/v1/members/x2', { method: 'DELETE' })
      expect(again.status).toBe(404)
    } finally {
      await Promise.all(extra.map((m) => m.stop()))
    }
  })

  it('refuses a second member that announces a name already taken', async () => {
    const pair = await startArray(2, { names: ['dup', 'other'] })
    const twin = await startArray(1, {
      names: ['dup'],
      overrides: { join: [pair[0]?.p2pAddrs()[0] as string] },
    }).catch(() => [])
    try {
      const [first, other] = pair as [Member, Member]
      await waitFor(() => other.membership.table().filter((e) => e.name === 'dup').length === 2, {
        what: 'both dups known',
      })
      const rows = other.membership.table().filter((e) => e.name === 'dup')
      const winner = rows.find((r) => r.member === first.peerId)
      const loser = rows.find((r) => r.member !== first.peerId)
      expect(winner?.state).toBe('alive')
      expect(loser?.state).toBe('conflict')
      const result = await page(other, 'from=0')
      expect(result.members.find((r) => r.member === loser?.member)).toMatchObject({
        status: 'error',
      })
    } finally {
      await Promise.all([...pair, ...twin].map((m) => m.stop()))
    }
  })
})
