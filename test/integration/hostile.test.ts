// What a peer holding the mesh's keys cannot do to the members it talks to:
// take the health rules past the admins' reach, take a member's name, speak
// for a member through the table it hands a newcomer, slip other members'
// events or events of another period into a page, or hold a member's store
// open with scans. Real members in one process, over TCP on loopback, and a
// hostile libp2p peer (test/hostile-peer.ts).

import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { approve, generateAdminKey } from '../../node/approval.ts'
import { idBytes, memberTag } from '../../node/event/id.ts'
import { HEALTH_RULES_SETTING, healthConfigSigningBytes } from '../../node/health/config.ts'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import { createRootLogger } from '../../node/log.ts'
import { createHost } from '../../node/mesh/host.ts'
import { createServedProtocols } from '../../node/mesh/protocols/index.ts'
import { remoteSlice } from '../../node/mesh/protocols/slice.ts'
import { sealAnnouncement } from '../../node/mesh/signatures.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { settingsTag, versionTag } from '../../node/settings.ts'
import { encodeStoredFields } from '../../node/store/codec.ts'
import {
  decodeAnswer,
  decodeSwim,
  encodeBatches,
  encodeHead,
  encodeSettings,
  encodeSliceRequest,
  encodeSwim,
  encodeTrailer,
  SETTINGS_PROTOCOL,
  SLICE_PROTOCOL,
  type StoredEvent,
  SWIM_PROTOCOL,
} from '../../protocol/index.ts'
import {
  type ApiBody,
  postEvents,
  putTriggerRule,
  removeTempDirs,
  startArray,
  stateOf,
  testConfig,
  triggerRule,
  waitFor,
} from '../helpers.ts'
import { type HostilePeer, peerOf, startHostilePeer } from '../hostile-peer.ts'

/**
 * How long a rule set may take to reach every member: members hear of it by
 * gossip and fetch it themselves, and under the whole suite (two files at
 * once on two cores, member processes among them) that took over 10 s.
 */
const SPREAD_MS = 30_000

const members: Member[] = []
const hostiles: HostilePeer[] = []
afterEach(async () => {
  await Promise.all(hostiles.splice(0).map((h) => h.stop()))
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

async function array<const N extends readonly string[]>(
  names: N,
): Promise<{ [K in keyof N]: Member }> {
  const started = await startArray(names.length, { names: [...names] })
  members.push(...started)
  return started as { [K in keyof N]: Member }
}

async function hostile(name?: string): Promise<HostilePeer> {
  const peer = await startHostilePeer(name === undefined ? {} : { name })
  hostiles.push(peer)
  return peer
}

/**
 * Makes the hostile peer hold a rule set: it serves it on the settings protocol
 * and names it in its word, which reaches every member.
 */
async function offer(evil: HostilePeer, bytes: Uint8Array) {
  await evil.answer(SETTINGS_PROTOCOL, async (_request, lp) => {
    await lp.write(encodeSettings([[HEALTH_RULES_SETTING, bytes]]))
  })
  const { body } = JSON.parse(new TextDecoder().decode(bytes)) as { body: string }
  const { version } = JSON.parse(body) as { version: number }
  await evil.announce({ settings: settingsTag([{ version, tag: versionTag(version, bytes) }]) })
}

/** A rule set as members pass it on, made and signed by whoever the test likes. */
async function ruleSet(
  version: number,
  updatedBy: string,
  sign: (data: Uint8Array) => Promise<Uint8Array>,
) {
  const body = JSON.stringify({ version, updatedBy, rules: [] })
  const signature = Buffer.from(await sign(healthConfigSigningBytes(body))).toString('base64')
  return new TextEncoder().encode(JSON.stringify({ body, signature }))
}

/** The handlers a member serves that the slice tests never reach. */
const unasked = {
  lookup: async () => undefined,
  rollup: async () => [],
  counters: () => ({ ingestedEvents: 0, queries: 0, storeSizeBytes: 0, eventTotals: [] }),
  settings: () => [],
  group: async () => {
    throw new Error('not a sub-coordinator')
  },
  replicas: {
    space: () => undefined,
    appended: (_origin: string, signal: AbortSignal) =>
      new Promise<void>((_, reject) => signal.addEventListener('abort', reject, { once: true })),
    acked: () => {},
    admits: () => false,
    announced: () => 0,
  },
}

/** Slice requests a member refused as busy (too many store scans open). */
function refusedBusy(m: Member): number {
  const row = m.mesh.counters.peerRequests.find(
    (r) => r.protocol === 'slice' && r.outcome === 'busy',
  )
  return row?.count ?? 0
}

async function page(m: Member, query: string): Promise<ResultPage> {
  const response = await m.app.request(`/v1/events?${query}`)
  expect(response.status).toBe(200)
  return (await response.json()) as ResultPage
}

describe('a hostile peer with the mesh keys', () => {
  it('cannot lift the health rules out of the admins reach, nor sign for a member; an admin change still spreads', async () => {
    const [a, b, c] = await array(['ha', 'hb', 'hc'])
    const evil = await hostile()
    await evil.connect(a.p2pAddrs()[0] as string)
    // The highest version there is, signed by its author (the hostile peer).
    await offer(evil, await ruleSet(2 ** 53 - 1, evil.peerId, evil.sign))
    await waitFor(() => [a, b, c].every((m) => m.healthConfig.outcomes().awaiting_majority >= 1), {
      what: 'the highest version seen and held back by every member',
      timeoutMs: SPREAD_MS,
    })
    // A set in a member's name that the member never signed.
    await offer(evil, await ruleSet(1, c.peerId, evil.sign))
    await waitFor(() => [a, b, c].every((m) => m.healthConfig.outcomes().bad_signature >= 1), {
      what: 'the forged set refused by every member',
      timeoutMs: SPREAD_MS,
    })
    for (const m of [a, b, c]) expect(m.healthConfig.current().version).toBe(0)

    // One step is what any keyed member may take; the admins' next change follows it.
    await offer(evil, await ruleSet(1, evil.peerId, evil.sign))
    await waitFor(() => [a, b, c].every((m) => m.healthConfig.current().version === 1), {
      what: 'version 1 everywhere',
      timeoutMs: SPREAD_MS,
    })
    await putTriggerRule(b, 3)
    await waitFor(
      () =>
        [a, b, c].every(
          (m) =>
            m.healthConfig.current().version === 2 &&
            m.healthConfig.current().updatedBy === b.peerId,
        ),
      { what: "the admin's version 2 everywhere" },
    )
  })

  it('lets a member that was away catch up several versions, from most of the live members', async () => {
    const [a, b, c] = await array(['ca', 'cb', 'cc'])
    const away = c.config
    await c.stop()
    members.splice(members.indexOf(c), 1)
    // Three changes, each made once the last is everywhere: versions 1, 2 and 3.
    for (const [m, version] of [
      [a, 1],
      [b, 2],
      [a, 3],
    ] as const) {
      await putTriggerRule(m, version)
      await waitFor(() => [a, b].every((x) => x.healthConfig.current().version === version), {
        what: `version ${version} on the members that stayed`,
      })
    }
    const back = await createMember({ ...away, join: [a.p2pAddrs()[0] as string] })
    members.push(back)
    await back.start()
    await waitFor(() => back.healthConfig.current().version === 3, {
      timeoutMs: 15_000,
      what: 'the returning member at version 3',
    })
    expect(back.healthConfig.current().updatedBy).toBe(a.peerId)
    expect(back.healthConfig.outcomes().awaiting_majority).toBeGreaterThanOrEqual(1)
  })

  it('cannot take a member name by claiming an earlier start; the real member stays in every answer', async () => {
    const [a, b, c] = await array(['na', 'nb', 'nc'])
    await postEvents(a, '{"type":"app.mine"}')
    const evil = await hostile('na')
    // Its word, from the first, claims a start before anyone's.
    await evil.announce({ startedAt: 0 })
    await evil.connect(b.p2pAddrs()[0] as string)
    const evilRow = (m: Member) => m.membership.table().find((e) => e.member === evil.peerId)
    await waitFor(() => [b, c].every((m) => evilRow(m)?.state === 'conflict'), {
      what: 'the impostor in conflict',
    })
    for (const m of [a, b, c]) {
      const real = m.membership.table().find((e) => e.member === a.peerId)
      expect(real?.state).toBe('alive')
    }
    const result = await page(b, 'from=0&type=app.mine')
    expect(result.events.map((e) => e.memberName)).toEqual(['na'])
    expect(result.members.find((r) => r.member === a.peerId)?.status).toBe('ok')
  })

  it('cannot speak for a member in the table it hands a newcomer; the newcomer takes the member from its own word', async () => {
    const [a] = await array(['ja'])
    const evil = await hostile('jx')
    await evil.connect(a.p2pAddrs()[0] as string)
    // A word about a, with addresses and a start far ahead that would shadow
    // a's own for a day, signed by the hostile peer instead of a.
    const forged = await sealAnnouncement(evil.sign, {
      peerId: a.peerId,
      name: 'ja',
      addrs: ['/ip4/127.0.0.1/tcp/9'],
      http: '127.0.0.1:9',
      version: '0.1.0',
      seq: 0,
      startedAt: Date.now() + 86_400_000,
      sentAt: Date.now() + 86_400_000,
      health: 'critical:forged',
      incarnation: 0,
      beat: 1,
      leaving: false,
      settings: '',
      skewMs: 0,
    })
    // As the member joined through, it hands the newcomer a's real word and the forged one.
    const real = evil.words.get(a.peerId) as Uint8Array
    await evil.answer(SWIM_PROTOCOL, async (request, lp) => {
      const m = decodeSwim(request)
      if (m.kind === 'sync')
        await lp.write(
          encodeSwim({ kind: 'sync', sentAt: Date.now(), digest: '', updates: [real, forged] }),
        )
      else if (m.kind === 'ping')
        await lp.write(encodeSwim({ kind: 'ack', probe: m.probe, sentAt: Date.now(), updates: [] }))
    })
    const newcomer = await createMember({
      ...(await testConfig('jn')),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      join: [evil.addr],
    })
    members.push(newcomer)
    await newcomer.start()
    await waitFor(() => newcomer.mesh.counters.membershipDropped >= 1, {
      what: 'the forged word dropped',
    })
    // a is in its table as a says it is.
    await waitFor(() => stateOf(newcomer, 'ja') === 'alive', { what: 'a alive at the newcomer' })
    const row = newcomer.membership.table().find((e) => e.member === a.peerId)
    expect(row?.http).toBe(a.httpAddress)
    expect(row?.health).not.toMatch(/forged/)
  })

  it("cannot put another member's events, events out of order, or events of another period into a page", async () => {
    const [a, b] = await array(['sa', 'sb'])
    await postEvents(b, '{"type":"app.real"}')
    const evil = await hostile('sx')
    await evil.connect(a.p2pAddrs()[0] as string)
    const own = memberTag(evil.peerId)
    const value = encodeStoredFields({ type: 'app.forged', severity: 1 })
    const at = (ts: number, tag: Uint8Array, seq: number): StoredEvent => ({
      id: idBytes(ts, tag, seq),
      value,
    })
    let answer: StoredEvent[] = []
    await evil.answer(SLICE_PROTOCOL, async (_request, lp) => {
      await lp.write(encodeHead(answer.length))
      for (const batch of encodeBatches(answer)) await lp.write(batch)
      await lp.write(encodeTrailer({ hwm: answer.length, scanned: answer.length, more: false }))
    })
    const beat = setInterval(() => void evil.announce({}).catch(() => {}), 500)
    try {
      await evil.announce({})
      await waitFor(() => stateOf(a, 'sx') === 'alive', { what: 'the hostile member alive at a' })
      const now = Date.now()
      const cases: Array<[string, StoredEvent[], RegExp]> = [
        ['a forged event in b’s name', [at(now - 1000, memberTag(b.peerId), 7)], /another member/],
        ['events out of order', [at(now - 1000, own, 2), at(now - 2000, own, 1)], /out of order/],
        ['an event of another period', [at(now + 3_600_000, own, 1)], /outside/],
      ]
      for (const [what, events, reason] of cases) {
        answer = events
        const result = await page(a, 'from=0')
        const row = result.members.find((r) => r.member === evil.peerId)
        expect(row?.status, what).toBe('error')
        expect(row?.error, what).toMatch(reason)
        expect(
          result.events.filter((e) => e.type === 'app.forged'),
          what,
        ).toEqual([])
        expect(result.events.map((e) => e.type)).toEqual(['app.real'])
        expect(result.partial).toBe(true)
      }
      // Its own events, in order and in range, are taken like any member's.
      answer = [at(now - 2000, own, 1), at(now - 1000, own, 2)]
      const fair = await page(a, 'from=0')
      expect(fair.events.map((e) => e.type).sort()).toEqual([
        'app.forged',
        'app.forged',
        'app.real',
      ])
    } finally {
      clearInterval(beat)
    }
  })

  it('cannot hold more than a bounded number of store scans open at a member, however many peer ids it brings', async () => {
    const [a, b] = await array(['oa', 'ob'])
    const events = Array.from({ length: 10 }, () => ({ type: 'app.scan' }))
    const posted = await a.app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    })
    expect(posted.status).toBe(201)
    const request = encodeSliceRequest({
      fromMs: 0,
      toMs: Date.now() + 60_000,
      reverse: false,
      types: [],
      minSeverity: 0,
      limit: 10,
      window: 1,
    })
    const target = peerOf(a.peerId)
    // Three peer ids, 32 streams each (the per-connection cap): each scan
    // takes one event and is then left waiting for a grant.
    const peers = await Promise.all([hostile(), hostile(), hostile()])
    const firsts: string[] = []
    const streams: Stream[] = []
    for (const peer of peers) {
      // Connected, not joined: a member serves slices to any peer that holds the keys.
      await peer.connect(a.p2pAddrs()[0] as string, { join: false })
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          const stream = await peer.host.dialProtocol(target, SLICE_PROTOCOL, {
            signal: AbortSignal.timeout(5000),
          })
          streams.push(stream)
          const lp = lpStream(stream)
          await lp.write(request)
          const first = decodeAnswer(
            (await lp.read({ signal: AbortSignal.timeout(5000) })).subarray(),
          )
          firsts.push(first.kind === 'error' ? `error:${first.code}` : first.kind)
        }),
      )
    }
    const opened = firsts.filter((k) => k === 'head').length
    const busy = firsts.filter((k) => k === 'error:busy').length
    expect(opened).toBe(64)
    expect(busy).toBe(32)
    // An honest coordinator meanwhile is refused at once, not left hanging,
    // and has the holder of oa's events (ob itself) answer for it.
    await waitFor(() => b.log.held(memberTag(a.peerId))?.seq === 10, {
      what: "oa's events at its holder",
    })
    const busyBefore = refusedBusy(a)
    const crowded = await page(b, 'from=0&type=app.scan')
    expect(refusedBusy(a)).toBeGreaterThan(busyBefore)
    expect(crowded.events).toHaveLength(10)
    expect(crowded.partial).toBe(false)
    expect(crowded.members.find((r) => r.member === a.peerId)).toMatchObject({
      status: 'ok',
      servedBy: 'ob',
    })
    // Gone, they free the member for everyone.
    for (const stream of streams) stream.abort(new Error('the test is done with it'))
    await Promise.all(hostiles.splice(0).map((h) => h.stop()))
    await waitFor(
      async () => {
        const result = await page(b, 'from=0&type=app.scan')
        return result.partial === false && result.events.length === 10
      },
      { what: 'complete answers again' },
    )
  })
})

/** A libp2p host with nothing of a member's on it, for one side of a protocol test. */
async function bareHost() {
  return createHost({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
  })
}

describe('a slice its coordinator stops granting', () => {
  it('is ended by the member, and its store scan closed, once the grant wait runs out', async () => {
    const [server, client] = await Promise.all([bareHost(), bareHost()])
    let scanClosed = false
    try {
      await server.start()
      await client.start()
      const value = encodeStoredFields({ type: 'app.held', severity: 1 })
      const tag = memberTag(server.peerId.toString())
      await createServedProtocols({
        host: server,
        logger: createRootLogger({ level: 'silent' }),
        components: {
          slice: () => ({
            hwm: 1000,
            batches: (async function* () {
              try {
                for (let seq = 1; seq <= 1000; seq++)
                  yield [{ id: idBytes(1000 + seq, tag, seq), value }]
                return { hwm: 1000, scanned: 1000, more: false }
              } finally {
                scanClosed = true
              }
            })(),
          }),
          ...unasked,
          grantWaitTimeoutMs: 300,
        },
      }).start()
      await client.dial(server.getMultiaddrs()[0] as Multiaddr, {
        signal: AbortSignal.timeout(5000),
      })
      const stream = await client.dialProtocol(server.peerId, SLICE_PROTOCOL, {
        signal: AbortSignal.timeout(5000),
      })
      const lp = lpStream(stream)
      await lp.write(
        encodeSliceRequest({
          fromMs: 0,
          toMs: 10_000,
          reverse: false,
          types: [],
          minSeverity: 0,
          limit: 1000,
          window: 1,
        }),
      )
      const kinds: string[] = []
      for (let i = 0; i < 3; i++)
        kinds.push(
          decodeAnswer((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()).kind,
        )
      expect(kinds).toEqual(['head', 'batch', 'pause'])
      // No grant follows: the member gives up on the slice, says so, closes
      // its side and its scan.
      const last = decodeAnswer((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())
      expect(last.kind).toBe('error')
      await expect(lp.read({ signal: AbortSignal.timeout(5000) })).rejects.toThrow()
      await waitFor(() => scanClosed, { what: 'the scan closed' })
    } finally {
      await client.stop()
      await server.stop()
    }
  })
})

describe('an answer of a member that fails', () => {
  it('names no file or path of the member in the error it sends to peers', async () => {
    const logger = createRootLogger({ level: 'silent' })
    const [server, client] = await Promise.all([bareHost(), bareHost()])
    try {
      await server.start()
      await client.start()
      await createServedProtocols({
        host: server,
        logger,
        components: {
          slice: () => {
            throw new Error(
              'Corruption: block checksum mismatch in /var/lib/chorus/store/000042.sst',
            )
          },
          ...unasked,
        },
      }).start()
      await client.dial(server.getMultiaddrs()[0] as Multiaddr, {
        signal: AbortSignal.timeout(5000),
      })
      const failure = await remoteSlice(
        { host: client, id: server.peerId, name: 'broken' },
        memberTag(server.peerId.toString()),
        { fromMs: 0, toMs: 1, reverse: false, types: [], minSeverity: 0, limit: 1 },
        { signal: AbortSignal.timeout(5000) },
      ).then(
        () => undefined,
        (err: Error) => err,
      )
      expect(failure?.name).toBe('RemoteError')
      expect(failure?.message).toMatch(/internal/)
      expect(failure?.message).not.toMatch(/var\/lib|\.sst|Corruption/)
    } finally {
      await client.stop()
      await server.stop()
    }
  })
})

describe('an array that requires the admin approval of its health rules', () => {
  it('takes a change only with an approval of exactly that version and those rules, on every member', async () => {
    const admin = generateAdminKey()
    const started = await startArray(2, {
      names: ['pa', 'pb'],
      overrides: { adminPublicKey: admin.publicKey },
    })
    members.push(...started)
    const [a, b] = started as [Member, Member]
    const rules = [triggerRule(1)]
    const put = async (body: unknown) => {
      const response = await a.app.request('/v1/config/health', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      return { status: response.status, body: (await response.json()) as ApiBody }
    }
    const approval = (version: number, value: unknown = rules) =>
      approve(admin.privatePem, { setting: HEALTH_RULES_SETTING, version, value })

    // An admin token alone is not enough, nor an approval of another version or other rules.
    const none = await put({ rules })
    expect([none.status, none.body.error.code]).toEqual([403, 'approval_required'])
    const later = await put({ rules, approval: approval(2) })
    expect([later.status, later.body.error.code]).toEqual([409, 'version_conflict'])
    const other = await put({ rules, approval: approval(1, []) })
    expect([other.status, other.body.error.code]).toEqual([403, 'approval_invalid'])
    const forged = await put({
      rules,
      approval: approve(generateAdminKey().privatePem, {
        setting: HEALTH_RULES_SETTING,
        version: 1,
        value: rules,
      }),
    })
    expect([forged.status, forged.body.error.code]).toEqual([403, 'approval_invalid'])
    expect(a.healthConfig.current().version).toBe(0)

    const approved = await put({ rules, approval: approval(1) })
    expect(approved.status).toBe(200)
    await waitFor(() => b.healthConfig.current().version === 1, {
      what: 'version 1 at pb',
      timeoutMs: SPREAD_MS,
    })

    // A keyed peer's own set, signed by it as author but not approved, is taken by nobody.
    const evil = await hostile()
    for (const m of [a, b]) await evil.connect(m.p2pAddrs()[0] as string)
    await offer(evil, await ruleSet(2, evil.peerId, evil.sign))
    await waitFor(() => [a, b].every((m) => m.healthConfig.outcomes().not_approved >= 1), {
      what: 'the unapproved set refused everywhere',
      timeoutMs: SPREAD_MS,
    })
    for (const m of [a, b]) expect(m.healthConfig.current().version).toBe(1)
  })
})
