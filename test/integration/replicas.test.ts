// Replicas, in one process: real members over libp2p on loopback. Each
// member's events are copied to its holder (replicas 2) as stored, in seq
// order, and kept apart from the holder's own; `durability=replicated`
// answers once the copy is synced, and 504 with the ids when it cannot be;
// a member that is dead is answered for by its holder, completely. The
// crash of a whole process (SIGKILL, SIGSTOP) is test/process/replicas.test.ts.

import { afterEach, describe, expect, it } from 'vitest'
import { memberTag } from '../../node/event/id.ts'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import type { MemberRow } from '../../node/query/fan-out.ts'
import { idRange } from '../../node/store/keys.ts'
import {
  type ApiBody,
  allEvents,
  removeTempDirs,
  startArray,
  stateOf,
  testConfig,
  waitFor,
} from '../helpers.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

async function array(count: number, names: string[]) {
  const started = await startArray(count, { names })
  members.push(...started)
  return started
}

async function post(m: Member, count: number, query = '', headers: Record<string, string> = {}) {
  const body = Array.from({ length: count }, (_, i) => ({
    type: i % 2 === 0 ? 'app.even' : 'app.odd',
    message: `${m.name} ${i}`,
    value: i,
  }))
  const response = await m.app.request(`/v1/events${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as ApiBody }
}

/** Every (id, value) pair of a space, in key order: what the store holds, byte for byte. */
async function storedPairs(m: Member, origin: Member): Promise<Array<[string, string]>> {
  const space = m.log.spaceOf(origin.peerId)
  if (space === undefined) return []
  const out: Array<[string, string]> = []
  const range = idRange(
    space.keys.time,
    { id: new Uint8Array(16), inclusive: true },
    { id: new Uint8Array(16).fill(0xff), inclusive: true },
    false,
  )
  for await (const rows of space.scan(range, 1000, 1000))
    for (const [key, value] of rows)
      out.push([key.subarray(-16).toString('hex'), value.toString('hex')])
  return out
}

const holderOf = (origin: Member, all: Member[]) => {
  const [holder] = origin.replicator.holders(origin.peerId)
  return all.find((m) => m.peerId === holder) as Member
}

describe('replicas', () => {
  it("copies every member's events to its holder, as stored and in seq order, apart from the holder's own", async () => {
    const all = await array(3, ['ra', 'rb', 'rc'])
    for (const m of all) for (let i = 0; i < 3; i++) expect((await post(m, 40)).status).toBe(201)

    for (const origin of all) {
      const holder = holderOf(origin, all)
      expect(holder).toBeDefined()
      expect(holder.peerId).not.toBe(origin.peerId)
      // Every member computes the same placement.
      for (const m of all) expect(m.replicator.holders(origin.peerId)).toEqual([holder.peerId])
      await waitFor(() => holder.log.held(memberTag(origin.peerId))?.seq === origin.log.lastSeq, {
        what: `${origin.name}'s 120 events at ${holder.name}`,
      })
      expect(await storedPairs(holder, origin)).toEqual(await storedPairs(origin, origin))
      // The members that are not its holders keep nothing of it.
      for (const other of all)
        if (other !== holder && other !== origin)
          expect(other.log.held(memberTag(origin.peerId))).toBeUndefined()
    }

    // A holder's own slice is its own events only: the array's answer counts each event once.
    const events = await allEvents(all[0]?.url ?? '')
    expect(events).toHaveLength(360)
    expect(new Set(events.map((e) => e.id)).size).toBe(360)
    for (const m of all) {
      const own = (await m.coordinator.query({
        query: {
          fromMs: 0,
          toMs: Date.now() + 1000,
          types: [],
          minSeverity: 0,
          members: [m.name],
          limit: 1000,
          order: 'asc',
        },
        timeoutMs: 2000,
      })) as ResultPage
      expect(own.events.every((e) => e.member === m.peerId)).toBe(true)
      expect(own.events).toHaveLength(120)
    }

    // Each origin knows its holder has everything: lag 0, on /v1/members.
    for (const origin of all) {
      const response = await origin.app.request('/v1/members')
      const table = (await response.json()) as {
        members: Array<{ name: string; holders: Array<{ name: string; lagEvents?: number }> }>
      }
      const row = table.members.find((r) => r.name === origin.name)
      expect(row?.holders).toEqual([
        {
          member: holderOf(origin, all).peerId,
          name: holderOf(origin, all).name,
          lagEvents: 0,
          lagMs: 0,
        },
      ])
    }
  })

  it('answers durability=replicated once the copy is synced, and 504 with the ids when no holder can confirm; a retry with the key stores nothing', async () => {
    const [alone] = await array(1, ['solo'])
    const solo = alone as Member
    const refused = await post(solo, 5, '?durability=replicated&timeout=200ms', {
      'idempotency-key': 'k1',
    })
    expect(refused.status).toBe(504)
    expect(refused.body.error.code).toBe('replication_timeout')
    expect(refused.body.ids).toHaveLength(5)
    expect(solo.log.lastSeq).toBe(5) // stored here all the same

    // A second member joins and becomes its holder: the retry is answered with the same ids.
    const other = await createMember({
      ...(await testConfig('duo')),
      join: [solo.p2pAddrs()[0] as string],
    })
    members.push(other)
    await other.start()
    await waitFor(() => stateOf(solo, 'duo') === 'alive', { what: 'duo alive at solo' })
    const retried = await post(solo, 5, '?durability=replicated&timeout=10s', {
      'idempotency-key': 'k1',
    })
    expect(retried.status).toBe(201)
    expect(retried.body.ids).toEqual(refused.body.ids)
    expect(solo.log.lastSeq).toBe(5)
    expect(other.log.held(memberTag(solo.peerId))?.seq).toBe(5)

    // The header asks the same; once answered, the copy is on the holder's disk.
    const replicated = await post(solo, 7, '', { 'chorus-durability': 'replicated' })
    expect(replicated.status).toBe(201)
    expect(other.log.held(memberTag(solo.peerId))?.seq).toBe(12)

    const bad = await post(solo, 1, '?durability=everywhere')
    expect(bad.status).toBe(400)
    expect(JSON.stringify(bad.body)).toMatch(/durability/)
  })

  it('answers for a dead member from its holder: every event, its own name and ids, partial false, the holder named in its row', async () => {
    const all = await array(3, ['da', 'db', 'dc'])
    const [a, , c] = all as [Member, Member, Member]
    for (const m of all) expect((await post(m, 30)).status).toBe(201)
    const before = await allEvents(a.url)
    expect(before).toHaveLength(90)
    const holder = holderOf(c, all)
    await waitFor(() => holder.log.held(memberTag(c.peerId))?.seq === 30, {
      what: "dc's events at its holder",
    })
    // dc goes silent without saying it leaves: the others find it dead.
    await c.mesh.stop({ leaving: false })
    const asker = all.find((m) => m !== c && m !== holder) ?? a
    await waitFor(() => [a, holder, asker].every((m) => m === c || stateOf(m, 'dc') === 'dead'), {
      timeoutMs: 20_000,
      what: 'dc dead in the other tables',
    })
    for (const m of all.filter((x) => x !== c)) {
      const response = await m.app.request('/v1/events?from=0&limit=1000')
      const page = (await response.json()) as ResultPage
      expect(page.events.map((e) => e.id)).toEqual(before.map((e) => e.id))
      expect(page.events.map((e) => e.memberName)).toEqual(before.map((e) => e.memberName))
      expect(page.partial).toBe(false)
      const row = page.members.find((r) => r.name === 'dc') as MemberRow
      expect(row).toMatchObject({ status: 'ok', servedBy: holder.name, heldSeq: 30, count: 30 })
      // One of its events by id, through any member.
      const id = before.find((e) => e.memberName === 'dc')?.id as string
      const one = await m.app.request(`/v1/events/${id}`)
      expect(one.status).toBe(200)
      expect(await one.json()).toMatchObject({ id, member: c.peerId, memberName: 'dc' })
    }
  })
})
