// The member's place in the mesh: the libp2p host, membership gossip on its
// topic, joining through any member's address, the chorus protocols it
// serves (protocols/), and a client of each other member's protocols. It
// knows nothing of queries: query/ asks the clients it offers (`peers()`).

import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import {
  decodeSignedAnnouncement,
  HEALTH_CONFIG_TOPIC,
  MEMBERS_TOPIC,
  type MemberCounters,
  type RollupRequest,
  type SliceAnswer,
  type SliceRequest,
} from '../../protocol/index.ts'
import { ConfigError } from '../errors.ts'
import type { ChorusEvent } from '../event/event.ts'
import { memberTag, tagHex } from '../event/id.ts'
import type { Logger } from '../log.ts'
import type { MemberRecorder } from '../stats.ts'
import type { BucketSeries } from '../store/rollup.ts'
import { createHost, type Host } from './host.ts'
import { createMembership, type Membership, type MembershipTiming } from './membership.ts'
import { createServedProtocols, type ServedComponents } from './protocols/index.ts'
import { remoteLookup } from './protocols/lookup.ts'
import { remotePeers } from './protocols/peers.ts'
import { remoteRollup } from './protocols/rollup.ts'
import { remoteSlice } from './protocols/slice.ts'
import { remoteStats } from './protocols/stats.ts'
import type { Peer, ServedName, ServedOutcome } from './protocols/stream.ts'
import { createSigner, sealAnnouncement, verifyAnnouncement } from './signatures.ts'

/**
 * Announcements accepted per sender: a bucket of ANNOUNCE_BURST refilled at
 * ANNOUNCE_RATE_PER_S (a member sends one a second, a few more when it
 * refutes a suspicion or meets a peer); the rest are dropped and counted.
 */
const ANNOUNCE_RATE_PER_S = 5
const ANNOUNCE_BURST = 20
/** Senders whose rate is tracked before the table is reset (bounds its memory). */
const MAX_TRACKED_SENDERS = 1024
/** Largest health rule-set message accepted from gossip, bytes. */
const MAX_HEALTH_CONFIG_MESSAGE_BYTES = 64 * 1024
/** Join retries: first delay and cap, ms. A failed join is retried for as long as the member runs. */
const JOIN_RETRY_FIRST_MS = 500
const JOIN_RETRY_MAX_MS = 30_000

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
  serve: Omit<ServedComponents, 'peers' | 'sent'>
  clock: () => number
  logger: Logger
  recorder?: MemberRecorder
}

export interface MeshCounters {
  /** Announcements dropped by the topic validator (undecodable, unsigned, or not from the member they name). */
  announcementsDropped: number
  announcementsReceived: number
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
  state: 'alive' | 'suspect' | 'dead' | 'conflict'
  slice(request: SliceRequest, options: { signal: AbortSignal }): Promise<SliceAnswer<ChorusEvent>>
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
  /** Every other member in the table but those that left, as clients of their protocols. */
  peers(): PeerClient[]
  /** Gossips the health rule set this member holds. */
  publishHealthConfig(bytes: Uint8Array): Promise<void>
  /** Calls `listener` with each gossiped health rule set and the member that sent it (the listener validates it). */
  onHealthConfig(listener: (bytes: Uint8Array, from: string) => void): void
  /** This member's own health as it announces it (`ok`, or `warning:rule,rule`…). Default `ok`. */
  setHealth(health: string): void
  start(): Promise<void>
  stop(options: { leaving: boolean }): Promise<void>
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
  const counters: MeshCounters = {
    announcementsDropped: 0,
    announcementsReceived: 0,
    peerRequests: [],
    sliceEventsSent: 0,
  }
  const peerIds = new Map<string, PeerId>()
  const stopping = new AbortController()
  const pubsub = host.services.pubsub

  const peerIdOf = (id: string): PeerId => {
    let peer = peerIds.get(id)
    if (peer === undefined) {
      peer = peerIdFromString(id)
      peerIds.set(id, peer)
    }
    return peer
  }

  const listenAddrs = () => host.getMultiaddrs().map((ma) => ma.toString())

  /**
   * Records where a member is, so that a query can reach it at once, then
   * connects to it after `delayMs` unless a connection exists by then.
   */
  const dialMember = async (peerId: string, addrs: string[], delayMs: number) => {
    if (host.status !== 'started' || peerId === init.peerId) return
    const peer = peerIdOf(peerId)
    await host.peerStore.merge(peer, { multiaddrs: addrs.map((a) => multiaddr(a)) })
    if (delayMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, delayMs).unref())
      if (stopping.signal.aborted || host.status !== 'started') return
    }
    if (host.getConnections(peer).length > 0) return
    await host.dial(peer, {
      signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(5000)]),
    })
  }

  const sign = createSigner(init.privateKey)
  let health = 'ok'
  const healthConfigListeners: Array<(bytes: Uint8Array, from: string) => void> = []
  /** This member's latest signed announcement, the first of what it passes on to a joining member. */
  let ownWord: Uint8Array | undefined

  const membership = createMembership({
    self: {
      peerId: init.peerId,
      name: init.name,
      version: init.version,
      startedAt: init.startedAt,
      http: init.http,
      addrs: () => listenAddrs().map((a) => a.replace(/\/p2p\/[^/]+$/, '')),
      seq: init.seq,
      health: () => health,
    },
    timing: init.timing,
    clock: init.clock,
    logger,
    publish: async (announcement) => {
      if (host.status !== 'started') return
      const signed = await sealAnnouncement(sign, announcement)
      ownWord = signed
      await pubsub.publish(MEMBERS_TOPIC, signed)
    },
    ping: async (peerId, signal) => {
      await host.services.ping.ping(peerIdOf(peerId), { signal })
    },
    dial: dialMember,
  })

  const buckets = new Map<string, { tokens: number; at: number }>()
  const withinRate = (sender: string): boolean => {
    const now = Date.now()
    const bucket = buckets.get(sender) ?? { tokens: ANNOUNCE_BURST, at: now }
    bucket.tokens = Math.min(
      ANNOUNCE_BURST,
      bucket.tokens + ((now - bucket.at) / 1000) * ANNOUNCE_RATE_PER_S,
    )
    bucket.at = now
    buckets.set(sender, bucket)
    if (buckets.size > 4 * MAX_TRACKED_SENDERS) buckets.clear()
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }

  pubsub.topicValidators.set(MEMBERS_TOPIC, (_from, message) => {
    try {
      if (message.type !== 'signed') throw new Error('unsigned announcement')
      if (!withinRate(message.from.toString())) throw new Error('announcements over the rate limit')
      const { announcement } = decodeSignedAnnouncement(message.data)
      // Signed by its sender (StrictSign): a member can only speak for
      // itself. The subject's own signature inside is not checked here: the
      // sender's covers it, and a member that passes it on to a newcomer
      // leaves the check to the newcomer (one check per join, not one per
      // announcement per member).
      if (announcement.peerId !== message.from.toString())
        throw new Error('announcement for another member')
      if (allowed !== undefined && !allowed.has(announcement.peerId))
        throw new Error('announcement from a peer not allowed')
      return TopicValidatorResult.Accept
    } catch (err) {
      counters.announcementsDropped++
      logger.debug({ err }, 'announcement dropped')
      return TopicValidatorResult.Reject
    }
  })
  pubsub.topicValidators.set(HEALTH_CONFIG_TOPIC, (_from, message) =>
    message.type === 'signed' && message.data.byteLength <= MAX_HEALTH_CONFIG_MESSAGE_BYTES
      ? TopicValidatorResult.Accept
      : TopicValidatorResult.Reject,
  )
  pubsub.addEventListener('message', (event) => {
    const message = event.detail
    if (message.topic === HEALTH_CONFIG_TOPIC) {
      // Signed (the validator took no other), so `from` is who sent it.
      if (message.type === 'signed')
        for (const listener of healthConfigListeners)
          listener(message.data, message.from.toString())
      return
    }
    if (message.topic !== MEMBERS_TOPIC) return
    try {
      const signed = decodeSignedAnnouncement(message.data)
      counters.announcementsReceived++
      membership.receive(signed.announcement, init.clock(), false, signed.bytes)
    } catch {
      counters.announcementsDropped++
    }
  })
  // A new connection: tell the peer who we are now rather than at the next beat.
  host.addEventListener('peer:identify', () => membership.announceNow())
  // A peer that has just subscribed to the topic would otherwise wait for
  // the next beat to hear from us: flood publishing reaches only the
  // subscribers we know of.
  pubsub.addEventListener('subscription-change', (event) => {
    if (event.detail.subscriptions.some((s) => s.topic === MEMBERS_TOPIC && s.subscribe))
      membership.announceNow()
  })

  const served = createServedProtocols({
    host,
    logger,
    components: {
      ...init.serve,
      peers: () => (ownWord === undefined ? [] : [ownWord, ...membership.known()]),
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

  /**
   * Takes in the table of the member we joined through, as memberlist's
   * push/pull does on join: its members are in our table at once, instead of
   * one gossip relay and beat at a time. A relayed word only adds a member
   * we have not heard of, and we dial it; its own announcement must then
   * arrive before the suspicion timeout, as for any member. Each word must
   * carry its subject's signature: the member we joined through cannot
   * invent members or speak for real ones.
   */
  async function meetPeersOf(peer: PeerId, signal: AbortSignal) {
    try {
      const known = await remotePeers({ host, id: peer, name: peer.toString() }, { signal })
      for (const signed of known) {
        const a = signed.announcement
        if (allowed !== undefined && !allowed.has(a.peerId)) continue
        if (!(await verifyAnnouncement(signed))) {
          counters.announcementsDropped++
          logger.warn(
            { through: peer.toString(), peerId: a.peerId },
            'a joined member passed on an announcement its subject did not sign; ignored',
          )
          continue
        }
        membership.receive(a, init.clock(), true, signed.bytes)
      }
    } catch (err) {
      // An older member, or one that is going: gossip still brings the others.
      logger.debug({ err }, 'could not ask for the members of the one we joined through')
    }
  }

  async function join(address: string) {
    let delay = JOIN_RETRY_FIRST_MS
    while (!stopping.signal.aborted) {
      try {
        const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(5000)])
        const connection = await host.dial(multiaddr(address), { signal })
        logger.info({ address }, 'joined')
        await meetPeersOf(connection.remotePeer, signal)
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
        if (entry.self || entry.state === 'left') continue
        const peer: Peer = { host, id: peerIdOf(entry.member), name: entry.name }
        const tag = memberTag(entry.member)
        out.push({
          peerId: entry.member,
          name: entry.name,
          tag: tagHex(tag),
          state: entry.state,
          slice: (request, options) => remoteSlice(peer, tag, request, options),
          lookup: (id, options) => remoteLookup(peer, id, options),
          rollup: (request, options) => remoteRollup(peer, request, options),
          stats: (options) => remoteStats(peer, options),
        })
      }
      return out
    },
    onHealthConfig(listener) {
      healthConfigListeners.push(listener)
    },
    setHealth(text) {
      health = text
    },
    async publishHealthConfig(bytes) {
      if (host.status !== 'started') return
      await pubsub.publish(HEALTH_CONFIG_TOPIC, bytes)
    },
    async start() {
      // Handled before the host listens, so no peer finds a protocol missing.
      await served.start()
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
      pubsub.subscribe(MEMBERS_TOPIC)
      pubsub.subscribe(HEALTH_CONFIG_TOPIC)
      membership.start()
      for (const address of init.join) void join(address)
    },
    async stop({ leaving }) {
      await membership.stop({ leaving })
      stopping.abort()
      if (leaving) {
        // Give the leaving announcement a moment on the wire before closing it.
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await host.stop()
      // After the host: until then a peer asking finds the protocol, not a
      // member that seems to speak another version.
      await served.stop()
    },
  }
}
