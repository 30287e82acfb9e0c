// The member's place in the mesh: the libp2p host, membership over
// /chorus/swim/1 (membership.ts keeps the table; this module carries its
// messages, checks every signature and keeps the connections few), joining
// through any member's address, the health rule set passed between members,
// the chorus protocols it serves (protocols/), and a client of each other
// member's protocols. It knows nothing of queries: query/ asks the clients
// it offers (`peers()`).
//
// Connections: a member keeps one to each of its neighbours (the members it
// watches and those that watch it, at most 2 × RINGS), which carry probes
// and gossip. Any other connection (a query's, a push/pull's, an indirect
// probe's) is opened on demand and closed once idle for CONNECTION_IDLE_MS.

import type { PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import {
  type Accusation,
  type Announcement,
  accusationSigningBytes,
  announcementSigningBytes,
  decodeSwim,
  decodeUpdate,
  encodeAccusation,
  encodeAnnouncement,
  encodeSignedAccusation,
  encodeSignedAnnouncement,
  encodeSwim,
  type GroupRequest,
  MAX_SYNC_BYTES,
  type MemberCounters,
  type RollupRequest,
  type SliceAnswer,
  type SliceRequest,
  SWIM_PROTOCOL,
  type SwimMessage,
} from '../../protocol/index.ts'
import { ConfigError } from '../errors.ts'
import type { ChorusEvent } from '../event/event.ts'
import { memberTag, tagHex } from '../event/id.ts'
import type { Logger } from '../log.ts'
import type { GroupAnswer } from '../query/coordinator.ts'
import { type ArraySettings, tagVersion } from '../settings.ts'
import type { MemberRecorder } from '../stats.ts'
import type { BucketSeries } from '../store/rollup.ts'
import { createHost, DIAL_TIMEOUT_MS, type Host } from './host.ts'
import {
  createMembership,
  type Membership,
  type MembershipTiming,
  type Message,
  type Update,
} from './membership.ts'
import { remoteGroup } from './protocols/group.ts'
import { createServedProtocols, type ServedComponents } from './protocols/index.ts'
import { remoteLookup } from './protocols/lookup.ts'
import { remoteRollup } from './protocols/rollup.ts'
import { remoteSettings } from './protocols/settings.ts'
import { remoteSlice } from './protocols/slice.ts'
import { remoteStats } from './protocols/stats.ts'
import type { Peer, ServedName, ServedOutcome } from './protocols/stream.ts'
import { verifySignature } from './signatures.ts'

/**
 * Membership messages accepted per sender: a bucket of SWIM_BURST refilled
 * at SWIM_RATE_PER_S (a member sends a neighbour a few a second, more while
 * a change spreads); the rest are refused and counted.
 */
const SWIM_RATE_PER_S = 40
const SWIM_BURST = 200
/** Senders whose rate is tracked before the table is reset (bounds its memory). */
const MAX_TRACKED_SENDERS = 1024
/** Membership streams a peer may hold open at once on one connection. */
const MAX_SWIM_STREAMS = 16
/** Join retries: first delay and cap, ms. A failed join is retried for as long as the member runs. */
const JOIN_RETRY_FIRST_MS = 500
const JOIN_RETRY_MAX_MS = 30_000
/** A connection to a member that is not a neighbour is closed once unused this long, ms. */
export const CONNECTION_IDLE_MS = 60_000
/** How often idle connections are looked for, ms. */
const SWEEP_MS = 15_000
/** Attempts to fetch the settings a member names before waiting for its next word. */
const SETTINGS_FETCH_ATTEMPTS = 5
/** Settings fetched from members, by word, kept to hand to each member that holds the same. */
const MAX_FETCHED_SETTINGS = 16

export interface MeshInit {
  privateKey: PrivateKey
  peerId: string
  name: string
  version: string
  startedAt: number
  /** Multiaddrs to listen on. */
  listen: string[]
  swarmKey?: Uint8Array
  allowPeers: readonly string[]
  /** Multiaddrs of members to join through, with or without /p2p/<peer id>. */
  join: string[]
  timing: MembershipTiming
  http: () => string
  seq: () => number
  /** What this member answers its peers' requests from (its own store and counters). */
  serve: Omit<ServedComponents, 'settings' | 'sent'>
  clock: () => number
  logger: Logger
  recorder?: MemberRecorder
}

export interface MeshCounters {
  /** Membership messages and updates refused (undecodable, over the rate, badly signed, from a peer not allowed). */
  membershipDropped: number
  /** Membership messages and their bytes, each way. */
  membershipMessages: { sent: number; received: number }
  membershipBytes: { sent: number; received: number }
  /** Requests peers made of this member, by protocol and outcome. */
  peerRequests: Array<{ protocol: ServedName; outcome: ServedOutcome; count: number }>
  /** Events this member has written to peers' slice streams. */
  sliceEventsSent: number
}

/** Another member as this one can ask it: who it is, its state, and a client of each protocol. */
export interface PeerClient {
  peerId: string
  name: string
  /** Hex of the member's 40-bit id tag. */
  tag: string
  state: 'alive' | 'suspect' | 'dead' | 'conflict' | 'left'
  /** Newest seq it announced. */
  seq: number
  slice(request: SliceRequest, options: { signal: AbortSignal }): Promise<SliceAnswer<ChorusEvent>>
  group(
    request: GroupRequest,
    group: ReadonlyArray<{ peerId: string; name: string }>,
    options: { signal: AbortSignal },
  ): Promise<GroupAnswer>
  lookup(id: Uint8Array, options: { signal: AbortSignal }): Promise<ChorusEvent | undefined>
  rollup(request: RollupRequest, options: { signal: AbortSignal }): Promise<BucketSeries[]>
  stats(options: { signal: AbortSignal }): Promise<MemberCounters>
}

export interface Mesh {
  readonly host: Host
  readonly membership: Membership
  readonly counters: MeshCounters
  /** Multiaddrs this member listens on, each with /p2p/<peer id>. */
  addrs(): string[]
  /** Every other member in the table, as clients of their protocols (those that left included: their holders may answer for them). */
  peers(): PeerClient[]
  /** How to reach a member by its peer id (its addresses from its word). */
  peer(peerId: string, name?: string): Peer
  /** Where the array settings come from and go to; until then this member names none. */
  attachSettings(source: ArraySettings): void
  /** Connections held now, and how many go to neighbours. */
  connections(): { all: number; neighbours: number }
  /** Says this member's word again: its health or its settings changed. */
  announce(): void
  /** This member's own health as it announces it (`ok`, or `warning:rule,rule`…). Default `ok`. */
  setHealth(health: string): void
  start(): Promise<void>
  stop(options: { leaving: boolean }): Promise<void>
}

/** Signs now: libp2p's Ed25519 keys sign synchronously under Node. */
function signNow(privateKey: PrivateKey, data: Uint8Array): Uint8Array {
  const signature = privateKey.sign(data)
  if (signature instanceof Uint8Array) return signature
  throw new Error('this member key cannot sign synchronously; chorus needs an Ed25519 key')
}

export async function createMesh(init: MeshInit): Promise<Mesh> {
  const { logger } = init
  const host = await createHost({
    privateKey: init.privateKey,
    listen: init.listen,
    allowPeers: init.allowPeers,
    ...(init.swarmKey === undefined ? {} : { swarmKey: init.swarmKey }),
  })
  const allowed = init.allowPeers.length === 0 ? undefined : new Set(init.allowPeers)
  const isAllowed = (peerId: string) => allowed === undefined || allowed.has(peerId)
  const counters: MeshCounters = {
    membershipDropped: 0,
    membershipMessages: { sent: 0, received: 0 },
    membershipBytes: { sent: 0, received: 0 },
    peerRequests: [],
    sliceEventsSent: 0,
  }
  const peerIds = new Map<string, PeerId>()
  const stopping = new AbortController()
  /** When each peer last used its connection, ms. */
  const activity = new Map<string, number>()
  const touch = (peerId: string) => activity.set(peerId, Date.now())
  let health = 'ok'
  let settings: ArraySettings | undefined
  let sweeper: NodeJS.Timeout | undefined

  const peerIdOf = (id: string): PeerId => {
    let peer = peerIds.get(id)
    if (peer === undefined) {
      peer = peerIdFromString(id)
      peerIds.set(id, peer)
    }
    return peer
  }

  const listenAddrs = () => host.getMultiaddrs().map((ma) => ma.toString())

  /** A member's addresses from its word, each with /p2p/ (empty when its word is not known yet). */
  function addressesOf(peerId: string): Multiaddr[] {
    const entry = membership?.get(peerId)
    if (entry === undefined) return []
    const out: Multiaddr[] = []
    for (const a of entry.addrs) {
      try {
        out.push(multiaddr(`${a}/p2p/${peerId}`))
      } catch {}
    }
    return out
  }

  const nameOf = (peerId: string) => membership.get(peerId)?.name ?? peerId

  const peerOf = (peerId: string, name = peerId): Peer => ({
    host,
    id: peerIdOf(peerId),
    name,
    addrs: addressesOf(peerId),
    touch: () => touch(peerId),
  })

  // What goes on the wire: each update is its signed bytes, passed on untouched.
  const encodeMessage = (m: Message): Uint8Array =>
    encodeSwim(
      ('updates' in m ? { ...m, updates: m.updates.map((u) => u.bytes) } : m) as SwimMessage,
    )

  /**
   * Decodes a membership message and keeps of its updates those that are
   * news here and signed by whom they speak for: the subject of a word, the
   * accuser of an accusation (each allowed, with an allow-list). A signature
   * is checked only for news, so an update that reaches a member many times
   * is checked once.
   */
  async function decodeMessage(bytes: Uint8Array): Promise<Message> {
    const m = decodeSwim(bytes)
    if (!('updates' in m)) return m
    const updates: Update[] = []
    for (const raw of m.updates) {
      try {
        const u = decodeUpdate(raw)
        const update: Update =
          u.kind === 'word'
            ? { word: u.signed.announcement, bytes: raw }
            : { accusation: u.signed.accusation, bytes: raw }
        if (!membership.isNews(update)) continue
        // A word speaks for its subject, an accusation for its accuser.
        const [speaker, signing] =
          u.kind === 'word'
            ? [u.signed.announcement.peerId, announcementSigningBytes(u.signed.body)]
            : [u.signed.accusation.accuser, accusationSigningBytes(u.signed.body)]
        if (!isAllowed(speaker) || !(await verifySignature(speaker, signing, u.signed.signature)))
          throw new Error(`a membership update not signed by ${speaker}`)
        updates.push(update)
        if ('word' in update && update.word.settings !== '') void maybeFetchSettings()
      } catch (err) {
        counters.membershipDropped++
        logger.debug({ err }, 'membership update dropped')
      }
    }
    return { ...m, updates } as Message
  }

  async function openSwim(peerId: string, signal: AbortSignal) {
    touch(peerId)
    const addrs = addressesOf(peerId)
    const stream = await host.dialProtocol(
      addrs.length > 0 ? addrs : peerIdOf(peerId),
      SWIM_PROTOCOL,
      { signal, negotiateFully: false },
    )
    return { stream, lp: lpStream(stream, { maxDataLength: MAX_SYNC_BYTES }) }
  }

  type Lp = ReturnType<typeof lpStream<Stream>>

  async function write(lp: Lp, m: Message, signal: AbortSignal) {
    const bytes = encodeMessage(m)
    counters.membershipMessages.sent++
    counters.membershipBytes.sent += bytes.byteLength
    await lp.write(bytes, { signal })
  }

  async function read(lp: Lp, signal: AbortSignal) {
    const bytes = (await lp.read({ signal })).subarray()
    counters.membershipMessages.received++
    counters.membershipBytes.received += bytes.byteLength
    return bytes
  }

  /**
   * A member's channel to another: one long-lived stream that carries its
   * pings, ping-reqs and gossip, the answers matched by probe number. A
   * stream per message would cost several frames, a protocol negotiation
   * and a logger each; on a channel a probe is one frame each way.
   */
  interface Channel {
    stream: Stream
    lp: Lp
    waiting: Map<number, (answer: Message | Error) => void>
  }
  const channels = new Map<string, Promise<Channel>>()

  function channelTo(peerId: string): Promise<Channel> {
    const existing = channels.get(peerId)
    if (existing !== undefined) return existing
    const opening: { channel?: Promise<Channel> } = {}
    opening.channel = (async () => {
      const { stream, lp } = await openSwim(
        peerId,
        AbortSignal.any([stopping.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]),
      )
      const channel: Channel = { stream, lp, waiting: new Map() }
      void (async () => {
        try {
          for (;;) {
            const answer = await decodeMessage(await read(lp, stopping.signal))
            if ('probe' in answer) channel.waiting.get(answer.probe)?.(answer)
          }
        } catch {
          // The stream ended: its peer closed it, or went.
        } finally {
          for (const settle of channel.waiting.values()) settle(new Error('channel closed'))
          channel.waiting.clear()
          if (channels.get(peerId) === opening.channel) channels.delete(peerId)
          stream.abort(new Error('membership channel closed'))
        }
      })()
      return channel
    })()
    const promise = opening.channel
    channels.set(peerId, promise)
    promise.catch(() => {
      if (channels.get(peerId) === promise) channels.delete(peerId)
    })
    return promise
  }

  /**
   * Sends a ping or ping-req on the channel and waits for its answer: at
   * most `timeoutMs` in all, opening the channel included (a member that
   * accepts a connection but never completes it must not hold a probe for
   * the dial timeout).
   */
  async function ask(peerId: string, message: Message & { probe: number }, timeoutMs: number) {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<Error>((resolve) => {
      timer = setTimeout(() => resolve(new Error('no answer in time')), timeoutMs)
    })
    try {
      const channel = await Promise.race([channelTo(peerId), late])
      if (channel instanceof Error) throw channel
      touch(peerId)
      const answer = await Promise.race([
        new Promise<Message | Error>((resolve) => {
          channel.waiting.set(message.probe, resolve)
          write(channel.lp, message, stopping.signal).catch((err: unknown) =>
            resolve(err instanceof Error ? err : new Error(String(err))),
          )
        }),
        late,
      ])
      channel.waiting.delete(message.probe)
      if (answer instanceof Error) throw answer
      return answer
    } finally {
      clearTimeout(timer)
    }
  }

  /** One exchange on a stream of its own (push/pull: large and rare). */
  async function exchange(peerId: string, message: Message, timeoutMs: number) {
    const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(timeoutMs)])
    const { stream, lp } = await openSwim(peerId, signal)
    try {
      await write(lp, message, signal)
      const answer = await decodeMessage(await read(lp, signal))
      await stream.close({ signal }).catch(() => {})
      return answer
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  const membership: Membership = createMembership({
    self: {
      peerId: init.peerId,
      name: init.name,
      version: init.version,
      startedAt: init.startedAt,
      http: init.http,
      addrs: () => listenAddrs().map((a) => a.replace(/\/p2p\/[^/]+$/, '')),
      seq: init.seq,
      health: () => health,
      settings: () => settings?.tag() ?? '',
    },
    timing: init.timing,
    clock: init.clock,
    logger,
    seal(update) {
      if ('word' in update) {
        const body = encodeAnnouncement(update.word as Announcement)
        return encodeSignedAnnouncement(
          body,
          signNow(init.privateKey, announcementSigningBytes(body)),
        )
      }
      const body = encodeAccusation(update.accusation as Accusation)
      return encodeSignedAccusation(body, signNow(init.privateKey, accusationSigningBytes(body)))
    },
    transport: {
      request(peerId, message, timeoutMs) {
        return 'probe' in message
          ? ask(peerId, message, timeoutMs)
          : exchange(peerId, message, timeoutMs)
      },
      send(peerId, message) {
        channelTo(peerId)
          .then((channel) => {
            touch(peerId)
            return write(channel.lp, message, stopping.signal)
          })
          .catch((err: unknown) => logger.debug({ err, peerId }, 'gossip not sent'))
      },
    },
  })

  const buckets = new Map<string, { tokens: number; at: number }>()
  const withinRate = (sender: string): boolean => {
    const now = Date.now()
    const bucket = buckets.get(sender) ?? { tokens: SWIM_BURST, at: now }
    bucket.tokens = Math.min(
      SWIM_BURST,
      bucket.tokens + ((now - bucket.at) / 1000) * SWIM_RATE_PER_S,
    )
    bucket.at = now
    buckets.set(sender, bucket)
    if (buckets.size > 4 * MAX_TRACKED_SENDERS) buckets.clear()
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }

  /**
   * Answers a peer's membership stream: one message (push/pull, or a test's
   * probe) or a channel of many, each answered as soon as it is handled.
   */
  async function serveSwim(stream: Stream, from: string) {
    const lp = lpStream(stream, { maxDataLength: MAX_SYNC_BYTES })
    const answering = new Set<Promise<void>>()
    try {
      for (;;) {
        const bytes = await read(lp, stopping.signal)
        touch(from)
        if (!withinRate(from)) {
          counters.membershipDropped++
          continue
        }
        const answer = (async () => {
          try {
            const answer = await membership.handle(from, await decodeMessage(bytes))
            if (answer !== undefined) await write(lp, answer, stopping.signal)
          } catch (err) {
            counters.membershipDropped++
            logger.debug({ err, from }, 'membership message dropped')
          }
        })()
        answering.add(answer)
        void answer.finally(() => answering.delete(answer))
      }
    } catch {
      // The peer closed its side (one message sent), or the stream ended.
    }
    await Promise.allSettled(answering)
    await stream.close().catch((err: unknown) => stream.abort(err as Error))
  }

  /**
   * The settings other members name in their words: another word than this
   * member's (with a version sum at least its own) is fetched once (from one
   * holder) and each setting in it handed to this member's settings with
   * each live member that holds it, which is how a version more than one
   * ahead finds its majority.
   */
  const fetched = new Map<string, Promise<Array<[string, Uint8Array]> | undefined>>()
  const handed = new Set<string>()
  /** Failed fetches of each word, to try again a few times. */
  const failures = new Map<string, number>()
  let fetchScheduled = false
  async function maybeFetchSettings() {
    if (settings === undefined || fetchScheduled) return
    fetchScheduled = true
    await new Promise((resolve) => setImmediate(resolve))
    fetchScheduled = false
    const source = settings
    const own = source.tag()
    const ownVersion = tagVersion(own) ?? 0
    for (const entry of membership.table()) {
      if (entry.self || entry.state !== 'alive') continue
      const tag = entry.settings
      const version = tagVersion(tag)
      if (version === undefined || tag === own || version < ownVersion) continue
      const key = `${tag}/${entry.member}`
      if (handed.has(key)) continue
      handed.add(key)
      if (handed.size > 64 * MAX_FETCHED_SETTINGS) handed.clear()
      let sets = fetched.get(tag)
      if (sets === undefined) {
        if (fetched.size >= MAX_FETCHED_SETTINGS)
          fetched.delete(fetched.keys().next().value as string)
        sets = remoteSettings(peerOf(entry.member, entry.name), {
          signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(5000)]),
        }).catch((err: unknown) => {
          logger.debug({ err, from: entry.name }, 'could not fetch the settings a member holds')
          fetched.delete(tag)
          return undefined
        })
        fetched.set(tag, sets)
      }
      const got = await sets
      if (got !== undefined) {
        for (const [name, bytes] of got) await source.receive(name, bytes, entry.member)
        continue
      }
      // Not fetched (the holder was busy, or the connection new): tried
      // again a little later, a few times, rather than at its next word.
      handed.delete(key)
      const failed = (failures.get(tag) ?? 0) + 1
      if (failures.size > MAX_FETCHED_SETTINGS) failures.clear()
      failures.set(tag, failed)
      if (failed <= SETTINGS_FETCH_ATTEMPTS)
        setTimeout(() => void maybeFetchSettings(), 500 * failed).unref()
    }
  }

  /** Closes connections to members that are not neighbours once idle (see the module comment). */
  function sweep() {
    const now = Date.now()
    const neighbours = new Set(membership.neighbours())
    for (const connection of host.getConnections()) {
      const id = connection.remotePeer.toString()
      if (neighbours.has(id)) continue
      // A query's stream open now is use; an idle membership channel is not.
      if (connection.streams.some((st) => st.protocol !== SWIM_PROTOCOL)) {
        touch(id)
        continue
      }
      const last = activity.get(id)
      if (last === undefined) touch(id)
      else if (now - last > CONNECTION_IDLE_MS) {
        activity.delete(id)
        channels.delete(id)
        connection.close().catch(() => {})
      }
    }
    for (const id of activity.keys())
      if (
        host.getConnections(peerIdOf(id)).length === 0 &&
        now - (activity.get(id) ?? 0) > CONNECTION_IDLE_MS
      )
        activity.delete(id)
  }

  const served = createServedProtocols({
    host,
    logger,
    touch,
    components: {
      ...init.serve,
      settings: () => settings?.sets() ?? [],
      sent: (events) => {
        counters.sliceEventsSent += events
      },
    },
    served: (kind, seconds) => init.recorder?.query('member', kind, seconds),
    count: (protocol, outcome) => {
      const row = counters.peerRequests.find(
        (r) => r.protocol === protocol && r.outcome === outcome,
      )
      if (row === undefined) counters.peerRequests.push({ protocol, outcome, count: 1 })
      else row.count++
    },
  })

  async function join(address: string) {
    let delay = JOIN_RETRY_FIRST_MS
    while (!stopping.signal.aborted) {
      try {
        const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(5000)])
        const connection = await host.dial(multiaddr(address), { signal })
        await membership.syncWith(connection.remotePeer.toString())
        logger.info({ address }, 'joined')
        return
      } catch (err) {
        if (stopping.signal.aborted) return
        logger.warn(
          { address, err: (err as Error).message, retryInMs: delay },
          'join failed; retrying',
        )
        await new Promise((resolve) => setTimeout(resolve, delay).unref())
        delay = Math.min(JOIN_RETRY_MAX_MS, delay * 2)
      }
    }
  }

  return {
    host,
    membership,
    counters,
    addrs: listenAddrs,
    peers() {
      const out: PeerClient[] = []
      for (const entry of membership.table()) {
        if (entry.self) continue
        const peer = peerOf(entry.member, entry.name)
        const tag = memberTag(entry.member)
        out.push({
          peerId: entry.member,
          name: entry.name,
          tag: tagHex(tag),
          state: entry.state,
          seq: entry.seq,
          slice: (request, options) => {
            if (request.origin === undefined) return remoteSlice(peer, tag, request, options)
            // Asked as a holder: the events, and the tag they must carry, are the origin's.
            const owner = { member: request.origin, name: nameOf(request.origin) }
            return remoteSlice(peer, memberTag(request.origin), request, { ...options, owner })
          },
          group: (request, group, options) => remoteGroup(peer, request, group, options),
          lookup: (id, options) => remoteLookup(peer, id, options),
          rollup: (request, options) => remoteRollup(peer, request, options),
          stats: (options) => remoteStats(peer, options),
        })
      }
      return out
    },
    peer: (peerId, name) => peerOf(peerId, name ?? nameOf(peerId)),
    connections() {
      const neighbours = new Set(membership.neighbours())
      const peersConnected = new Set(host.getConnections().map((c) => c.remotePeer.toString()))
      let kept = 0
      for (const id of peersConnected) if (neighbours.has(id)) kept++
      return { all: peersConnected.size, neighbours: kept }
    },
    attachSettings(source) {
      settings = source
      membership.announceNow()
    },
    announce() {
      membership.announceNow()
    },
    setHealth(text) {
      if (text === health) return
      health = text
      membership.announceNow()
    },
    async start() {
      // Handled before the host listens, so no peer finds a protocol missing.
      await served.start()
      await host.handle(
        SWIM_PROTOCOL,
        (stream, connection) => serveSwim(stream, connection.remotePeer.toString()),
        { maxInboundStreams: MAX_SWIM_STREAMS },
      )
      try {
        await host.start()
      } catch (err) {
        // libp2p explains over several lines; an operator needs the one that says why.
        const lines = String((err as Error).message)
          .split('\n')
          .map((l) => l.trim())
        const why = lines.find((l) => /E[A-Z]{4,}/.test(l)) ?? lines[0]
        throw new ConfigError(`cannot listen on ${init.listen.join(', ')}: ${why}`, [
          { field: 'listen', message: String(why) },
        ])
      }
      membership.start()
      sweeper = setInterval(sweep, SWEEP_MS)
      sweeper.unref()
      for (const address of init.join) void join(address)
    },
    async stop({ leaving }) {
      clearInterval(sweeper)
      await membership.stop({ leaving })
      stopping.abort()
      await host.stop()
      // After the host: until then a peer asking finds the protocol, not a
      // member that seems to speak another version.
      await served.stop()
    },
  }
}
