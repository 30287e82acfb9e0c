// Replicas, in one process: real members over libp2p on loopback. Each
// member's events are copied to its holder (replicas 2) as stored, in seq
// order, and kept apart from the holder's own; `durability=replicated`
// answers once the copy is synced, and 504 with the ids when it cannot be;
// a member that is dead is answered for by its holder, completely. The
// crash of a whole process (SIGKILL, SIGSTOP) is test/process/replicas.test.ts.

import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { afterEach, describe, expect, it } from 'vitest'
import { approve, generateAdminKey } from '../../node/approval.ts'
import { memberTag, parseId, writeIdBytes } from '../../node/event/id.ts'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import type { MemberRow } from '../../node/query/fan-out.ts'
import { encodeStoredFields } from '../../node/store/codec.ts'
import { idRange } from '../../node/store/keys.ts'
import {
  decodeReplicaMessage,
  decodeReplicaRequest,
  encodeReplicaAck,
  encodeReplicaBatches,
  encodeReplicaHead,
  encodeReplicaRequest,
  MAX_ANSWER_BYTES,
  REPLICA_WINDOW,
  REPLICATE_PROTOCOL,
} from '../../protocol/index.ts'
import {
  type ApiBody,
  allEvents,
  removeTempDirs,
  startArray,
  stateOf,
  tempDir,
  testConfig,
  waitFor,
} from '../helpers.ts'
import { type HostilePeer, startHostilePeer } from '../hostile-peer.ts'
import { runCli } from '../process/harness.ts'

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
    // Before any event, each holder knows it is behind in nothing.
    for (const origin of all)
      await waitFor(() => holderOf(origin, all).replicator.behind(origin.peerId) === 0, {
        what: `the holder of ${origin.name} caught up with none`,
      })
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

  it('answers for a member that left (SIGTERM) with events from its holder, so a rolling restart leaves no gap', async () => {
    const all = await array(3, ['la', 'lb', 'lc'])
    const [a, , c] = all as [Member, Member, Member]
    for (const m of all) expect((await post(m, 20)).status).toBe(201)
    const before = await allEvents(a.url)
    const holder = holderOf(c, all)
    await waitFor(() => holder.log.held(memberTag(c.peerId))?.seq === 20, {
      what: "lc's events at its holder",
    })
    await c.stop()
    members.splice(members.indexOf(c), 1)
    await waitFor(() => stateOf(a, 'lc') === 'left', { what: 'lc left' })
    const response = await a.app.request('/v1/events?from=0&limit=1000')
    const page = (await response.json()) as ResultPage
    expect(page.events.map((e) => e.id)).toEqual(before.map((e) => e.id))
    expect(page.partial).toBe(false)
    expect(page.members.find((r) => r.name === 'lc')).toMatchObject({
      status: 'ok',
      servedBy: holder.name,
      count: 20,
    })
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

  it('answers for a dead member from its holder: every event, its own name and ids, partial false, the holder named in its row; its counts stay in /metrics/cluster', async () => {
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
      // The export reads it through its holder too.
      const exported = await (await m.app.request('/v1/export?from=0')).text()
      const lines = exported.trim().split('\n')
      expect(lines.slice(0, -1).map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(
        before.map((e) => e.id),
      )
      expect(JSON.parse(lines.at(-1) as string)).toMatchObject({
        end: { count: 90, partial: false },
      })
      // Its rollups, from its holder's copy of them.
      const rolled = await m.app.request('/v1/rollups?from=1h&step=1h&member=dc')
      const rollups = (await rolled.json()) as {
        series: Array<{ buckets: Array<{ count: number }> }>
        members: MemberRow[]
        partial: boolean
      }
      const counted = rollups.series.flatMap((x) => x.buckets).reduce((n, b) => n + b.count, 0)
      expect(counted).toBe(30)
      expect(rollups.partial).toBe(false)
      expect(rollups.members.find((r) => r.name === 'dc')).toMatchObject({
        status: 'ok',
        servedBy: holder.name,
      })
      // Its counts in the array's metrics, told by its holder: nobody scraped
      // before it died, so no member heard its own figures.
      const metrics = await (await m.app.request('/metrics/cluster')).text()
      expect(metrics).toContain('chorus_member_up{member="dc"} 0')
      expect(metrics).toContain(`chorus_member_served_by{member="dc",holder="${holder.name}"} 1`)
      expect(metrics).toContain('chorus_member_events_total{member="dc",severity="info"} 30')
      expect(metrics).toContain('chorus_array_events_total{type="app.even",severity="info"} 45')
      // One of its events by id, through any member.
      const id = before.find((e) => e.memberName === 'dc')?.id as string
      const one = await m.app.request(`/v1/events/${id}`)
      expect(one.status).toBe(200)
      expect(await one.json()).toMatchObject({ id, member: c.peerId, memberName: 'dc' })
    }
  })
})

describe('healing', () => {
  it('copies a member dead past --rereplicate-after to one more holder, and drops the extra copy once it is back', async () => {
    const started = await startArray(4, {
      names: ['ha', 'hb', 'hc', 'hd'],
      overrides: { rereplicateAfterMs: 1000 },
    })
    members.push(...started)
    for (const m of started) expect((await post(m, 20)).status).toBe(201)
    /** The members (the origin aside) holding every one of `origin`'s 20 events. */
    const copies = (origin: Member, among: Member[]) =>
      among.filter((m) => m !== origin && m.log.held(memberTag(origin.peerId))?.seq === 20)
    await waitFor(() => started.every((o) => copies(o, started).length === 1), {
      what: 'one copy of every member',
    })

    const victim = started[3] as Member
    const rest = started.slice(0, 3)
    await victim.mesh.stop({ leaving: false })
    await waitFor(() => rest.every((m) => stateOf(m, victim.name) === 'dead'), {
      timeoutMs: 20_000,
      what: `${victim.name} dead everywhere`,
    })
    // Past the delay: its events on two live members, and every other
    // member's on one live member besides itself, whoever held them before.
    await waitFor(
      () => copies(victim, rest).length === 2 && rest.every((o) => copies(o, rest).length >= 1),
      { timeoutMs: 15_000, what: 'R copies again' },
    )

    // Back on the same data dir: the extra copies go once the delay has passed.
    await victim.stop()
    members.splice(members.indexOf(victim), 1)
    const back = await createMember(victim.config)
    members.push(back)
    await back.start()
    const all = [...rest, back]
    await waitFor(() => all.every((o) => copies(o, all).length === 1), {
      timeoutMs: 20_000,
      what: 'exactly one copy of every member again',
    })
    for (const o of all)
      expect(
        all.filter((m) => m !== o && m.log.held(memberTag(o.peerId)) !== undefined),
      ).toHaveLength(1)
  })
})

describe('replication with a hostile peer', () => {
  const hostiles: HostilePeer[] = []
  afterEach(async () => {
    await Promise.all(hostiles.splice(0).map((h) => h.stop()))
  })

  it("stores an origin's events only from that origin, with its tag, in seq order", async () => {
    const [solo] = (await array(1, ['hs'])) as [Member]
    const evil = await startHostilePeer()
    hostiles.push(evil)
    const evilTag = memberTag(evil.peerId)
    const at = (tag: Uint8Array, seq: number) => {
      const id = new Uint8Array(16)
      writeIdBytes(id, 0, Date.now() - 10_000 + seq, tag, seq)
      return { id, value: encodeStoredFields({ type: 'evil.event', severity: 1 }) }
    }
    // What the hostile peer sends each time the member asks, in turn.
    const answers = [
      [at(memberTag(solo.peerId), 1)], // the member's own, as if the peer held them
      [at(memberTag('12D3KooWSomeoneElse'), 1)], // a third member's
      [at(evilTag, 2), at(evilTag, 1)], // its own, out of order
      [at(evilTag, 1), at(evilTag, 2)], // its own, in order: taken
    ]
    let asked = 0
    await evil.answer(REPLICATE_PROTOCOL, async (request, lp) => {
      expect(decodeReplicaRequest(request).origin).toBe(evil.peerId)
      const events = answers[Math.min(asked++, answers.length - 1)] ?? []
      await lp.write(encodeReplicaHead(2, Date.now()))
      for (const batch of encodeReplicaBatches(events, 2)) await lp.write(batch)
      await lp.read({ signal: AbortSignal.timeout(10_000) })
    })
    await evil.connect(solo.p2pAddrs()[0] as string)
    // Each refusal ends the stream; the member asks again (with back-off).
    await waitFor(() => asked >= 4 && solo.log.held(evilTag)?.seq === 2, {
      timeoutMs: 20_000,
      what: 'the fourth answer taken',
    })
    expect(solo.log.held(memberTag('12D3KooWSomeoneElse'))).toBeUndefined()
    expect(solo.log.lastSeq).toBe(0)
  })

  it('answers a malformed request with an error code and counts it; serves only the holders placement names, one stream per origin; a holder that never acknowledges gets REPLICA_WINDOW batches and no more, and one that acknowledges what it was not sent is cut off', async () => {
    const [solo] = (await array(1, ['hw'])) as [Member]
    // 6,000 events: six batches of 1,024 at most.
    for (let i = 0; i < 6; i++) expect((await post(solo, 1000)).status).toBe(201)
    const evil = await startHostilePeer()
    hostiles.push(evil)
    await evil.connect(solo.p2pAddrs()[0] as string, { join: false })
    const target = peerIdFromString(solo.peerId)
    const ask = async () => {
      const stream = await evil.host.dialProtocol(target, REPLICATE_PROTOCOL)
      const lp = lpStream(stream, { maxDataLength: MAX_ANSWER_BYTES })
      await lp.write(encodeReplicaRequest({ origin: solo.peerId, afterSeq: 0 }))
      const read = async (ms: number) =>
        decodeReplicaMessage((await lp.read({ signal: AbortSignal.timeout(ms) })).subarray())
      return { stream, lp, read }
    }
    const refusals = () =>
      solo.mesh.counters.peerRequests.find(
        (r) => r.protocol === 'replicate' && r.outcome === 'refused',
      )?.count ?? 0

    // Not in the table, so no holder of anything: refused.
    const stranger = await ask()
    expect(await stranger.read(5000)).toMatchObject({ kind: 'error', code: 'not_holder' })
    expect(refusals()).toBe(1)

    const bad = await evil.host.dialProtocol(target, REPLICATE_PROTOCOL)
    const badLp = lpStream(bad, { maxDataLength: MAX_ANSWER_BYTES })
    await badLp.write(Uint8Array.of(0x93, 0x1e, 0xc0, 0xc0))
    const refusal = decodeReplicaMessage(
      (await badLp.read({ signal: AbortSignal.timeout(5000) })).subarray(),
    )
    expect(refusal).toMatchObject({ kind: 'error', code: 'malformed' })
    const malformed = solo.mesh.counters.peerRequests.find(
      (r) => r.protocol === 'replicate' && r.outcome === 'malformed',
    )
    expect(malformed?.count).toBe(1)

    // In the table, the one other member: the holder of hw's events.
    await evil.connect(solo.p2pAddrs()[0] as string)
    await waitFor(() => solo.replicator.holders(solo.peerId).includes(evil.peerId), {
      what: 'the peer placed as the holder of hw',
    })
    // A second stream for the same origin ends the first.
    const older = await ask()
    expect(await older.read(5000)).toMatchObject({ kind: 'head', seq: 6000 })
    const { stream, lp, read } = await ask()
    expect(await read(5000)).toMatchObject({ kind: 'head', seq: 6000 })
    const end = async () => {
      try {
        // Up to its window of batches, then the end.
        for (let i = 0; i <= REPLICA_WINDOW; i++) {
          const message = await older.read(5000)
          if (message.kind === 'error') return message.code
        }
        return 'still open'
      } catch {
        return 'closed'
      }
    }
    expect(['busy', 'closed']).toContain(await end())
    let events = 0
    for (let i = 0; i < REPLICA_WINDOW; i++) {
      const batch = await read(5000)
      expect(batch.kind).toBe('batch')
      if (batch.kind === 'batch') events += batch.events.length
    }
    expect(events).toBe(REPLICA_WINDOW * 1024)
    // Unacknowledged, the source sends nothing more however long we wait.
    await expect(read(1000)).rejects.toThrow()
    // An acknowledgement of events it was never sent (to pass for a copy it
    // does not hold) ends the stream with an error.
    await lp.write(encodeReplicaAck(1_000_000))
    expect(await read(5000)).toMatchObject({ kind: 'error', code: 'malformed' })
    stream.abort(new Error('done'))
  })
})

describe('a replaced disk', () => {
  it('is restored from the holders: every event back with its ids, new events past its newest seq, its rollups counted', async () => {
    const all = await array(3, ['xa', 'xb', 'xc'])
    const [a, , c] = all as [Member, Member, Member]
    for (let i = 0; i < 3; i++)
      expect((await post(c, 40, '?durability=replicated&timeout=10s')).status).toBe(201)
    expect((await post(a, 10)).status).toBe(201)
    const before = await allEvents(a.url)
    expect(before).toHaveLength(130)

    await c.stop()
    members.splice(members.indexOf(c), 1)
    // The disk is gone; the key (identity.key) was kept.
    await rm(join(c.config.dataDir, 'chorus', 'store'), { recursive: true, force: true })
    const back = await createMember(c.config)
    members.push(back)
    // Until its holders have said which seqs are used, it takes no event.
    const early = await back.app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":"too.early"}',
    })
    expect(early.status).toBe(503)
    expect(early.headers.get('retry-after')).toBe('1')
    expect(((await early.json()) as ApiBody).error.code).toBe('restoring')
    expect(back.replicator.restoring()).toBe('discovering')
    await back.start()
    await waitFor(() => back.replicator.restoring() === undefined && back.log.lastSeq >= 120, {
      timeoutMs: 30_000,
      what: 'xc restored',
    })
    expect(back.peerId).toBe(c.peerId)
    expect(back.log.lastSeq).toBe(120)
    expect(await storedPairs(back, back)).toEqual(
      await storedPairs(holderOf(back, [...all.filter((m) => m !== c), back]), back),
    )
    const after = await allEvents(back.url)
    expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id))

    // New events continue its seq; its rollups count the restored ones.
    const more = await post(back, 5)
    expect(more.status).toBe(201)
    expect(more.body.ids.map((id) => parseId(id)?.seq)).toEqual([121, 122, 123, 124, 125])
    const rollups = await back.app.request('/v1/rollups?from=1h&step=1h&member=xc')
    const body = (await rollups.json()) as {
      series: Array<{ buckets: Array<{ count: number }> }>
    }
    const counted = body.series.flatMap((s) => s.buckets).reduce((n, b) => n + b.count, 0)
    expect(counted).toBe(125)
    const table = (await (await back.app.request('/v1/members')).json()) as {
      members: Array<{ name: string; state: string }>
    }
    expect(table.members.find((r) => r.name === 'xc')?.state).toBe('alive')
  })

  it('restored from a backup gets back from the holders the events logged after the backup, and reuses no seq', async () => {
    const all = await array(3, ['ba', 'bb', 'bc'])
    const c = all[2] as Member
    expect((await post(c, 30, '?durability=replicated&timeout=10s')).status).toBe(201)
    const dir = join(await tempDir(), 'backup')
    const backup = await runCli(['backup', '--url', c.url, '--out', dir])
    expect(backup.code, backup.stderr).toBe(0)
    // Logged after the backup, acknowledged once every copy was synced.
    const later = await post(c, 20, '?durability=replicated&timeout=10s')
    expect(later.status).toBe(201)
    const before = await allEvents(all[0]?.url as string, '&member=bc')
    expect(before).toHaveLength(50)

    await c.stop()
    members.splice(members.indexOf(c), 1)
    const back = await createMember({ ...c.config, dataDir: dir })
    members.push(back)
    expect(back.replicator.restoring()).toBe('discovering')
    await back.start()
    await waitFor(() => back.replicator.restoring() === undefined && back.log.lastSeq >= 50, {
      timeoutMs: 30_000,
      what: 'bc restored past its backup',
    })
    expect(back.peerId).toBe(c.peerId)
    const after = await allEvents(back.url, '&member=bc')
    expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id))
    const more = await post(back, 2)
    expect(more.body.ids.map((id) => parseId(id)?.seq)).toEqual([51, 52])
    // Settled once: a later restart takes events at once.
    await back.stop()
    members.splice(members.indexOf(back), 1)
    const again = await createMember({ ...c.config, dataDir: dir })
    members.push(again)
    expect(again.replicator.restoring()).toBeUndefined()
  })
})

describe('a replaced disk whose holder is away', () => {
  it('continues past the seq it last announced, never reusing one, and pulls its events back once the holder returns', async () => {
    const all = await array(3, ['ya', 'yb', 'yc'])
    const c = all[2] as Member
    expect((await post(c, 30, '?durability=replicated&timeout=10s')).status).toBe(201)
    const holder = holderOf(c, all)
    const other = all.find((m) => m !== c && m !== holder) as Member
    expect(other.log.held(memberTag(c.peerId))).toBeUndefined()

    // Its holder goes away, then yc (its last word says seq 30), then its disk.
    await holder.stop()
    members.splice(members.indexOf(holder), 1)
    await c.stop()
    members.splice(members.indexOf(c), 1)
    await waitFor(() => other.replicator.source.announced(c.peerId) === 30, {
      what: 'yc announced seq 30 at the member that holds none of its events',
    })
    await rm(join(c.config.dataDir, 'chorus', 'store'), { recursive: true, force: true })
    // Joined through the member still here (the first member may be the one away).
    const back = await createMember({ ...c.config, join: other.p2pAddrs() })
    members.push(back)
    await back.start()
    // Nobody live holds its events, but the member still here heard seq 30.
    await waitFor(() => back.replicator.restoring() === 'pulling', { what: 'yc pulling' })
    const more = await post(back, 2)
    expect(more.status).toBe(201)
    expect(more.body.ids.map((id) => parseId(id)?.seq)).toEqual([31, 32])

    // The holder is back (its data dir kept): yc pulls its first 30 from it.
    const returned = await createMember({ ...holder.config, join: other.p2pAddrs() })
    members.push(returned)
    await returned.start()
    await waitFor(() => back.replicator.restoring() === undefined, {
      timeoutMs: 30_000,
      what: 'yc restored from its returned holder',
    })
    const seqs = (await allEvents(back.url))
      .filter((e) => e.memberName === 'yc')
      .map((e) => parseId(e.id)?.seq)
    expect(seqs).toEqual(Array.from({ length: 32 }, (_, i) => i + 1))
  })
})

describe('the replica count, an array-wide setting', () => {
  /** PUT /v1/config/replicas on `m`. */
  async function setReplicas(m: Member, body: unknown) {
    const response = await m.app.request('/v1/config/replicas', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    return { status: response.status, body: (await response.json()) as ApiBody }
  }
  /** The members (the origin aside) holding every one of `origin`'s `count` events. */
  const copies = (origin: Member, among: Member[], count: number) =>
    among.filter((m) => m !== origin && m.log.held(memberTag(origin.peerId))?.seq === count)

  it('set on one member is in force on every member: holders are added and filled, then dropped when it goes back; no event lost', async () => {
    const started = await startArray(4, {
      names: ['ra', 'rb', 'rc', 'rd'],
      overrides: { rereplicateAfterMs: 1000 },
    })
    members.push(...started)
    const [a, b] = started as [Member, Member]
    for (const m of started) expect((await post(m, 20)).status).toBe(201)
    await waitFor(() => started.every((o) => copies(o, started, 20).length === 1), {
      what: 'one copy of every member',
    })

    // Refused, naming the field, and nothing changes.
    for (const bad of [{ replicas: 0 }, { replicas: 6 }, { replicas: '3' }, {}]) {
      const refused = await setReplicas(a, bad)
      expect(refused.status).toBe(400)
      expect(refused.body.error.details?.map((d) => d.field)).toContain('replicas')
    }
    expect(a.replicasSetting.current()).toMatchObject({ version: 0, replicas: 2 })

    const three = await setReplicas(b, { replicas: 3 })
    expect(three.status).toBe(200)
    expect(three.body).toMatchObject({ version: 1, updatedBy: b.peerId, replicas: 3 })
    await waitFor(() => started.every((m) => m.replicasSetting.current().replicas === 3), {
      what: 'replicas 3 on every member',
    })
    expect(await (await a.app.request('/v1/config/replicas')).json()).toMatchObject({
      version: 1,
      replicas: 3,
    })
    // Events stored while it changes are copied too.
    for (const m of started) expect((await post(m, 5)).status).toBe(201)
    await waitFor(() => started.every((o) => copies(o, started, 25).length === 2), {
      timeoutMs: 15_000,
      what: 'two copies of every member',
    })
    for (const o of started) {
      const rows = (await (await a.app.request('/v1/members')).json()) as {
        members: Array<{ member: string; holders: Array<{ member: string }> }>
      }
      const row = rows.members.find((r) => r.member === o.peerId)
      expect(row?.holders.map((h) => h.member).sort()).toEqual(
        copies(o, started, 25)
          .map((m) => m.peerId)
          .sort(),
      )
    }

    // Back to 2: once --rereplicate-after has passed, exactly one copy again.
    expect((await setReplicas(a, { replicas: 2 })).body).toMatchObject({ version: 2, replicas: 2 })
    await waitFor(
      () =>
        started.every(
          (o) =>
            started.filter((m) => m !== o && m.log.held(memberTag(o.peerId)) !== undefined)
              .length === 1 && copies(o, started, 25).length === 1,
        ),
      { timeoutMs: 20_000, what: 'exactly one copy of every member again' },
    )
    const everything = (await allEvents(a.url)).filter((e) => e.type.startsWith('app.'))
    expect(everything).toHaveLength(100)
    expect(new Set(everything.map((e) => e.id)).size).toBe(100)
  })

  it('is kept across a restart, and with an admin key needs its own approval', async () => {
    const admin = generateAdminKey()
    const [solo] = await startArray(1, {
      names: ['rs'],
      overrides: { adminPublicKey: admin.publicKey },
    })
    members.push(solo as Member)
    const m = solo as Member
    const approval = (setting: string, version: number, value: unknown) =>
      approve(admin.privatePem, { setting, version, value })
    const none = await setReplicas(m, { replicas: 3 })
    expect([none.status, none.body.error.code]).toEqual([403, 'approval_required'])
    // An approval of the health rules, or of another count, is none of this one.
    const otherSetting = await setReplicas(m, {
      replicas: 3,
      approval: approval('health-rules', 1, 3),
    })
    expect([otherSetting.status, otherSetting.body.error.code]).toEqual([403, 'approval_invalid'])
    const otherValue = await setReplicas(m, {
      replicas: 3,
      approval: approval('replicas', 1, 4),
    })
    expect([otherValue.status, otherValue.body.error.code]).toEqual([403, 'approval_invalid'])
    const approved = await setReplicas(m, {
      replicas: 3,
      approval: approval('replicas', 1, 3),
    })
    expect(approved.status).toBe(200)

    await m.stop()
    members.splice(members.indexOf(m), 1)
    const back = await createMember(m.config)
    members.push(back)
    await back.start()
    expect(back.replicasSetting.current()).toMatchObject({ version: 1, replicas: 3 })
    // The health rules, a setting of their own, are untouched.
    expect(back.healthConfig.current().version).toBe(0)
  })
})
