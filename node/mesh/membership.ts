// Membership: who is in the array and in what state, as this member sees it,
// kept the way SWIM does it, so that what a member sends and receives does
// not grow with the array:
//
// - probing: every interval a member pings one of the members it watches
//   (its successor on each of RINGS hash rings: every member is watched by
//   RINGS others); a ping not answered in time is retried through up to
//   INDIRECT_PROBES other members (ping-req), and a probe that fails both
//   ways makes the member `suspect`;
// - dissemination: what changes (a member's new word about itself, an
//   accusation) is queued and piggybacked on pings and acks, and gossiped to
//   GOSSIP_FANOUT neighbours while the queue holds anything, each update a
//   bounded number of times (RETRANSMIT_MULT × log10 of the array's size);
//   nothing at all is gossiped when nothing changes;
// - push/pull: now and then, with one member chosen at random, both sides
//   compare a digest of their tables and send everything they hold only when
//   the digests differ (a member joins this way too, through the member it
//   was given), so that a missed update is never missed for long, and two
//   members that agree exchange a few bytes whatever the array's size.
//
// Lifeguard's refinements: local health (a member whose own timers run late,
// or whose indirect probes get no nack, stretches its timeouts, so its own
// slowness is not taken for the others' death); dynamic suspicion (a
// suspicion ends in `dead` sooner the more members accuse the same member);
// and refutation (a member accused raises its incarnation and says so; the
// accusation piggybacks on every ping to it, so it hears at once).
//
// A member leaving on SIGTERM says so and becomes `left`, which is not a
// failure. Dead and left members are forgotten after `forgetAfterMs`. This
// module does no I/O: the transport and the signatures are passed in, so it
// runs the same in tests with a fake clock and a simulated array.
//
// What a member says of itself is trusted only where it cannot hurt the
// others: its start time tells one run from another, its `beat` orders the
// words of one run, and its clock only estimates its offset. Which member
// keeps a contested name is decided by what this member saw: the one it
// heard holding the name first (see `resolveName`).

import { createHash } from 'node:crypto'
import type { Accusation, Announcement } from '../../protocol/index.ts'
import { fnv1a } from '../hash.ts'
import type { Logger } from '../log.ts'

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left' | 'conflict'

export interface MemberEntry {
  member: string
  name: string
  state: MemberState
  /** When this member last heard from it or of it, ms since the epoch (this member's clock). */
  lastSeen: number
  addrs: string[]
  http: string
  /** Newest seq in its store, as of its latest word. */
  seq: number
  /** Its clock minus this member's, ms (measured when the two talk, else from both skews). */
  offsetMs: number
  version: string
  health: string
  startedAt: number
  incarnation: number
  /** The array settings it holds, `<sum of versions>:<digest>`; empty for the defaults. */
  settings: string
  /** True for this member's own row. */
  self: boolean
}

export interface MembershipTiming {
  /** Probe interval, ms. Default 1000. */
  intervalMs: number
  /** How long a direct ping may take before indirect probes are tried, ms. Default half an interval. */
  probeTimeoutMs: number
  /** Gossip round while anything is to be disseminated, ms. Default 200. */
  gossipIntervalMs: number
  /** Suspicion → dead when enough other members confirm it, ms. Default 1.5 intervals. */
  suspicionMinMs: number
  /** Suspicion → dead with no confirmation, ms. Default 5 intervals. */
  suspicionMaxMs: number
  /** Push/pull with one random member, ms (stretched above 32 members). Default 30 s. */
  pushPullMs: number
  /** Dead and left members are dropped from the table after this, ms. Default 24 h. */
  forgetAfterMs: number
}

export function defaultTiming(intervalMs = 1000, forgetAfterMs = 86_400_000): MembershipTiming {
  return {
    intervalMs,
    probeTimeoutMs: intervalMs / 2,
    gossipIntervalMs: Math.min(200, intervalMs / 2),
    suspicionMinMs: 1.5 * intervalMs,
    suspicionMaxMs: 5 * intervalMs,
    pushPullMs: 30 * intervalMs,
    forgetAfterMs,
  }
}

/** Hash rings: each member watches its successor on each, so each is watched by this many. */
export const RINGS = 3
/** Members asked to ping a member that did not answer directly. */
export const INDIRECT_PROBES = 3
/** Neighbours each gossip round goes to. */
export const GOSSIP_FANOUT = 3
/** Each update is sent this many times × log10(members + 1). */
export const RETRANSMIT_MULT = 4
/** Most updates piggybacked on one message. */
export const PIGGYBACK_UPDATES = 16
/** Highest local-health score; timeouts stretch by (1 + score). */
const MAX_LOCAL_HEALTH_SCORE = 8
/** Push/pull with one dead member (to heal a partition): first delay and cap, ms. */
const REVIVE_FIRST_MS = 1000
const REVIVE_MAX_MS = 30_000
/** Samples of clock offset kept per member. */
const OFFSET_SAMPLES = 8
/** A member re-announces when its skew moved this far from what it last said, ms. */
const SKEW_RESAY_MS = 500

/** A word or an accusation, decoded and checked, with the signed bytes to pass on. */
export type Update =
  | { word: Announcement; bytes: Uint8Array }
  | { accusation: Accusation; bytes: Uint8Array }

export type Message =
  | { kind: 'ping'; probe: number; sentAt: number; updates: Update[] }
  | { kind: 'ack'; probe: number; sentAt: number; updates: Update[] }
  | { kind: 'ping-req'; probe: number; target: string; updates: Update[] }
  | { kind: 'nack'; probe: number }
  | { kind: 'gossip'; updates: Update[] }
  | { kind: 'sync'; sentAt: number; digest: string; updates: Update[] }

export interface Transport {
  /** Sends a message that is answered; rejects when no answer comes within `timeoutMs`. */
  request(peerId: string, message: Message, timeoutMs: number): Promise<Message>
  /** Sends a message that is not answered. */
  send(peerId: string, message: Message): void
}

export interface SelfInfo {
  peerId: string
  name: string
  version: string
  startedAt: number
  http: () => string
  addrs: () => string[]
  seq: () => number
  health: () => string
  settings: () => string
}

export interface MembershipComponents {
  self: SelfInfo
  timing: MembershipTiming
  clock: () => number
  logger: Logger
  transport: Transport
  /** Signs this member's own word, or its accusation of another. */
  seal: (update: { word: Announcement } | { accusation: Accusation }) => Uint8Array
  /** Random number in [0, 1); Math.random unless a test makes it repeatable. */
  random?: () => number
}

export type ForgetResult = 'forgotten' | 'not_found' | 'not_dead'

export interface Membership {
  start(): void
  /** Stops the timers; with `leaving`, first tells its neighbours that this member leaves. */
  stop(options: { leaving: boolean }): Promise<void>
  /** Answers a message another member sent (undefined: nothing to answer). */
  handle(from: string, message: Message): Promise<Message | undefined>
  /** Whether an update would change anything here (checked before its signature is). */
  isNews(update: { word: Announcement } | { accusation: Accusation }): boolean
  /** Push/pull with a member (how a member joins); resolves once both sides are merged. */
  syncWith(peerId: string): Promise<void>
  /** Says this member's word again now (a field of it changed). */
  announceNow(): void
  /** The members this one keeps a connection to: those it watches and those that watch it. */
  neighbours(): string[]
  /** The table, this member included, sorted by name. */
  table(): MemberEntry[]
  get(peerId: string): MemberEntry | undefined
  /** Forgets a dead or left member by name (or peer id). */
  forget(nameOrId: string): ForgetResult
  /** Calls `listener` whenever a member is added, removed or changes state. */
  onChange(listener: () => void): () => void
  /** How many times members went from one state to another in this table, since start. */
  transitions(): Array<{ from: MemberState; to: MemberState; count: number }>
  /** Current local-health multiplier (1 = healthy). */
  readonly localHealthMultiplier: number
}

interface Tracked extends MemberEntry {
  /** When this member first heard it hold its current name, this member's clock (0: before this member came). */
  heldSince: number
  beat: number
  /** Its latest word, as it said it, and signed. */
  said: Update
  skewMs: number
  settings: string
  /** The incarnation a suspicion or death is about; a word with a higher one refutes it. */
  accused: number
  accusers: Set<string>
  /** The latest accusation of it taken here (this member's own, or passed on). */
  charge: Update | undefined
  suspectedAt: number
  endedAt: number
  /** Samples of its clock minus ours, from messages it sent us directly. */
  offsets: Array<{ offset: number; rtt: number }>
  nextReviveAt: number
  reviveDelay: number
}

interface Pending {
  update: Update
  transmits: number
  /** Higher for a newer update: of two sent as often, the newer goes first. */
  order: number
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : (s[Math.floor((s.length - 1) / 2)] as number)
}

export function createMembership(components: MembershipComponents): Membership {
  const { self, timing, clock, logger, transport } = components
  const random = components.random ?? Math.random
  const peers = new Map<string, Tracked>()
  const listeners = new Set<() => void>()
  const transitions = new Map<`${MemberState}>${MemberState}`, number>()
  /** What waits to be disseminated, one update per member it is about. */
  const queue = new Map<string, Pending>()
  /** Members suspect, dead or left: the ones a tick has timers to look at. */
  const unsettled = new Set<Tracked>()
  let queued = 0
  let incarnation = 0
  let beat = 0
  let ownWord: Update | undefined
  let saidSkew = 0
  let selfConflict = false
  let leaving = false
  let localScore = 0
  let timer: NodeJS.Timeout | undefined
  /** When the pending tick is due, this member's clock. */
  let dueAt = 0
  let nextProbeAt = 0
  let nextPushPullAt = 0
  let probeSeq = 0
  let probeCursor = 0
  let stopped = true
  /** Until its first push/pull, members this one hears of held their names before it came. */
  let joined = false
  let ring: { neighbours: string[]; watched: string[] } | undefined

  const multiplier = () => 1 + localScore
  const changed = () => {
    ring = undefined
    ringSize = undefined
    for (const listener of listeners) listener()
  }
  const inRing = (p: Tracked) => p.state === 'alive' || p.state === 'suspect'
  /** Members alive or suspect, this one included (cached until the table changes). */
  let ringSize: number | undefined
  const size = () => (ringSize ??= 1 + [...peers.values()].filter(inRing).length)
  const retransmitLimit = () => RETRANSMIT_MULT * Math.ceil(Math.log10(size() + 1))

  function skew(): number {
    // This member's clock minus the median clock of those it measured.
    const measured = [...peers.values()].filter((p) => p.offsets.length > 0 && inRing(p))
    return measured.length === 0 ? 0 : -median(measured.map((p) => p.offsetMs))
  }

  function word(): Announcement {
    saidSkew = Math.round(skew())
    return {
      peerId: self.peerId,
      name: self.name,
      addrs: self.addrs(),
      http: self.http(),
      version: self.version,
      seq: self.seq(),
      startedAt: self.startedAt,
      sentAt: clock(),
      health: self.health(),
      incarnation,
      beat: ++beat,
      leaving,
      settings: self.settings(),
      skewMs: saidSkew,
    }
  }

  /** Makes a new word of this member's and queues it. */
  function say() {
    const w = word()
    ownWord = { word: w, bytes: components.seal({ word: w }) }
    enqueue(self.peerId, ownWord)
  }

  function enqueue(about: string, update: Update) {
    queue.set(about, { update, transmits: 0, order: ++queued })
    wake()
  }

  /** Up to PIGGYBACK_UPDATES updates to send, those about `first` first, the least sent next. */
  function piggyback(first?: string): Update[] {
    const limit = retransmitLimit()
    const chosen: Update[] = []
    const pending = [...queue.entries()].sort(([a, x], [b, y]) =>
      a === first ? -1 : b === first ? 1 : x.transmits - y.transmits || y.order - x.order,
    )
    for (const [about, p] of pending) {
      if (chosen.length === PIGGYBACK_UPDATES) break
      chosen.push(p.update)
      if (++p.transmits >= limit) queue.delete(about)
    }
    // A suspected or dead member hears it first, so it can refute at once.
    const accused = first === undefined ? undefined : peers.get(first)
    if (accused?.charge !== undefined && !chosen.includes(accused.charge))
      chosen.unshift(accused.charge)
    return chosen
  }

  function accuse(p: Tracked, dead: boolean) {
    const accusation: Accusation = {
      subject: p.member,
      startedAt: p.startedAt,
      incarnation: p.accused,
      dead,
      accuser: self.peerId,
    }
    const update = { accusation, bytes: components.seal({ accusation }) }
    p.charge = update
    enqueue(p.member, update)
  }

  function setState(peer: Tracked, state: MemberState, now: number) {
    if (peer.state === state) return
    logger.info(
      { member: peer.name, peerId: peer.member, from: peer.state, to: state },
      'member state changed',
    )
    const key = `${peer.state}>${state}` as const
    transitions.set(key, (transitions.get(key) ?? 0) + 1)
    peer.state = state
    ring = undefined
    ringSize = undefined
    if (state === 'alive' || state === 'conflict') unsettled.delete(peer)
    else {
      unsettled.add(peer)
      wake()
    }
    if (state === 'suspect') peer.suspectedAt = now
    if (state === 'alive') {
      peer.accusers.clear()
      peer.charge = undefined
    }
    if (state === 'dead' || state === 'left') {
      peer.endedAt = now
      peer.reviveDelay = REVIVE_FIRST_MS
      peer.nextReviveAt = now + REVIVE_FIRST_MS
    }
  }

  /**
   * Who keeps a contested name: the member this one heard holding it first,
   * then the smaller peer id. Members passed on by the member this one
   * joined through held their names before this one came; this member holds
   * its own name from then on, so it gives it up only to a member listed
   * under it in that table (a second `a` joining an array that has one),
   * never to a peer that claims it later.
   */
  function resolveName(name: string) {
    const holders: Array<{ id: string; since: number; entry?: Tracked }> = []
    if (self.name === name) holders.push({ id: self.peerId, since: 1 })
    for (const p of peers.values()) {
      if (p.name === name && (inRing(p) || p.state === 'conflict'))
        holders.push({ id: p.member, since: p.heldSince, entry: p })
    }
    if (holders.length === 0) return
    holders.sort((a, b) => a.since - b.since || (a.id < b.id ? -1 : 1))
    const winner = holders[0]?.id
    for (const h of holders) {
      const lost = h.id !== winner
      if (h.entry === undefined) {
        if (lost !== selfConflict) {
          selfConflict = lost
          if (lost)
            logger.error(
              { name },
              `the name "${name}" is taken by another member that started earlier; restart this member with another --name`,
            )
        }
      } else if (lost && h.entry.state !== 'conflict') {
        setState(h.entry, 'conflict', clock())
      } else if (!lost && h.entry.state === 'conflict') {
        setState(h.entry, 'alive', clock())
      }
    }
  }

  function resolveAllNames() {
    for (const name of new Set([...peers.values()].map((p) => p.name))) resolveName(name)
  }

  /** Whether a word is newer than what this member holds of its subject. */
  function newerWord(a: Announcement): boolean {
    if (a.peerId === self.peerId) return false
    const peer = peers.get(a.peerId)
    if (peer === undefined) return !a.leaving
    // Anyone may play a member's old words again: keep the newest word of
    // the newest run. A run that reports an earlier start is taken only once
    // the run we knew has ended (its clock may have been set back meanwhile).
    const ended = peer.state === 'dead' || peer.state === 'left'
    return a.startedAt === peer.startedAt
      ? a.beat > peer.beat
      : a.startedAt > peer.startedAt || ended
  }

  function newerAccusation(a: Accusation): boolean {
    if (a.subject === self.peerId)
      return a.startedAt === self.startedAt && a.incarnation >= incarnation && !leaving
    const peer = peers.get(a.subject)
    if (peer === undefined || peer.startedAt !== a.startedAt) return false
    if (a.incarnation < peer.incarnation) return false
    if (peer.state === 'left' || peer.state === 'dead') return false
    if (a.dead) return true
    return peer.state !== 'suspect' || !peer.accusers.has(a.accuser)
  }

  function takeWord(a: Announcement, bytes: Uint8Array, now: number, how: How) {
    let peer = peers.get(a.peerId)
    const isNew = peer === undefined
    if (peer === undefined) {
      peer = {
        heldSince: how.heldBefore ? 0 : now,
        beat: a.beat,
        said: { word: a, bytes },
        member: a.peerId,
        name: a.name,
        state: 'alive',
        lastSeen: now,
        addrs: a.addrs,
        http: a.http,
        seq: a.seq,
        offsetMs: 0,
        version: a.version,
        health: a.health,
        startedAt: a.startedAt,
        incarnation: a.incarnation,
        self: false,
        skewMs: a.skewMs,
        settings: a.settings,
        accused: 0,
        accusers: new Set(),
        charge: undefined,
        suspectedAt: 0,
        endedAt: 0,
        offsets: [],
        nextReviveAt: 0,
        reviveDelay: REVIVE_FIRST_MS,
      }
      peers.set(a.peerId, peer)
      logger.info({ member: a.name, peerId: a.peerId }, 'member joined')
    }
    const newRun = a.startedAt !== peer.startedAt
    const before = peer.state
    const nameBefore = peer.name
    if (nameBefore !== a.name) peer.heldSince = now
    Object.assign(peer, {
      beat: a.beat,
      said: { word: a, bytes },
      name: a.name,
      lastSeen: now,
      addrs: a.addrs,
      http: a.http,
      seq: a.seq,
      version: a.version,
      health: a.health,
      startedAt: a.startedAt,
      incarnation: a.incarnation,
      skewMs: a.skewMs,
      settings: a.settings,
    })
    if (newRun) {
      // What was said of the run before (its accusations) is not said of this one.
      peer.offsets = []
      peer.accused = 0
      peer.accusers.clear()
      peer.charge = undefined
    }
    if (a.leaving) setState(peer, 'left', now)
    else if (isNew || newRun || peer.state === 'left' || a.incarnation > peer.accused) {
      if (peer.state !== 'conflict' || newRun) setState(peer, 'alive', now)
    }
    if (how.relay) {
      enqueue(a.peerId, { word: a, bytes })
      // A member new to the table (or a new run of one) is passed on at once,
      // not at the next gossip round: every hop of a join is a round saved.
      if (isNew || newRun) soon()
    }
    resolveName(a.name)
    if (nameBefore !== a.name) resolveName(nameBefore)
    if (isNew || peer.state !== before) changed()
  }

  function takeAccusation(a: Accusation, bytes: Uint8Array, now: number, how: How) {
    if (a.subject === self.peerId) {
      // Refute: we are alive, with a higher incarnation.
      incarnation = Math.max(incarnation, a.incarnation) + 1
      logger.warn(
        { accuser: a.accuser, dead: a.dead },
        'refuting an accusation of this member with a higher incarnation',
      )
      say()
      return
    }
    const peer = peers.get(a.subject)
    if (peer === undefined) return
    peer.accused = Math.max(peer.accused, a.incarnation)
    peer.charge = { accusation: a, bytes }
    if (how.relay) enqueue(a.subject, peer.charge)
    if (a.dead) {
      setState(peer, 'dead', now)
      changed()
      return
    }
    peer.accusers.add(a.accuser)
    if (peer.state === 'alive' || peer.state === 'conflict') {
      setState(peer, 'suspect', now)
      changed()
    }
  }

  /**
   * How an update came: `relay` (gossip and piggyback) passes news on; push/pull
   * does not (the other side had it all along), except the word of the member
   * at the other end, which is how a member that joins becomes known.
   */
  interface How {
    relay: boolean
    heldBefore: boolean
  }
  const GOSSIPED: How = { relay: true, heldBefore: false }

  function take(update: Update, now: number, how = GOSSIPED) {
    if ('word' in update) {
      if (newerWord(update.word)) takeWord(update.word, update.bytes, now, how)
    } else if (newerAccusation(update.accusation)) {
      takeAccusation(update.accusation, update.bytes, now, how)
    }
  }

  /** Takes what a push/pull with `from` brought. */
  function merge(from: string, updates: Update[], now: number, heldBefore: boolean) {
    for (const u of updates)
      take(u, now, { relay: 'word' in u && u.word.peerId === from, heldBefore })
    resolveAllNames()
  }

  /** Notes that `from` spoke to us directly, and its clock at `sentAt` when it says. */
  function heard(from: string, now: number, sentAt?: number, roundTrip?: number) {
    const peer = peers.get(from)
    if (peer === undefined) return
    peer.lastSeen = now
    if (sentAt === undefined) return
    // Its clock minus ours. With a round trip, its clock was read about
    // halfway through, and the sample of the shortest round trip is the
    // least wrong (as NTP's clock filter takes it: a busy machine's late
    // answers do not move the estimate). From one-way messages only, transit
    // only makes a sample smaller, so the largest is the best estimate.
    peer.offsets.push(
      roundTrip === undefined
        ? { offset: sentAt - now, rtt: Number.POSITIVE_INFINITY }
        : { offset: sentAt - (now - roundTrip / 2), rtt: roundTrip },
    )
    if (peer.offsets.length > OFFSET_SAMPLES) peer.offsets.shift()
    let best: { offset: number; rtt: number } | undefined
    for (const sample of peer.offsets)
      if (sample.rtt !== Number.POSITIVE_INFINITY && (best === undefined || sample.rtt < best.rtt))
        best = sample
    peer.offsetMs = best?.offset ?? Math.max(...peer.offsets.map((x) => x.offset))
  }

  function rings() {
    if (ring !== undefined) return ring
    const members = [self.peerId, ...[...peers.values()].filter(inRing).map((p) => p.member)]
    const watched = new Set<string>()
    const neighbours = new Set<string>()
    if (members.length > 1) {
      for (let r = 0; r < RINGS; r++) {
        const order = members
          .map((id) => ({ id, h: fnv1a(`${r}/${id}`) }))
          .sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1))
        const at = order.findIndex((m) => m.id === self.peerId)
        const next = order[(at + 1) % order.length]?.id as string
        const previous = order[(at - 1 + order.length) % order.length]?.id as string
        neighbours.add(next)
        neighbours.add(previous)
        // The successor, and past a suspect one the next that is alive: a
        // member that fails while the one before it on the ring is still
        // suspected is watched all the same, not only once that one is dead.
        for (let step = 1; step < order.length; step++) {
          const id = order[(at + step) % order.length]?.id as string
          watched.add(id)
          if (peers.get(id)?.state !== 'suspect') break
        }
      }
    }
    ring = { neighbours: [...neighbours].sort(), watched: [...watched].sort() }
    return ring
  }

  function pick<T>(items: T[], n: number): T[] {
    const copy = [...items]
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[copy[i], copy[j]] = [copy[j] as T, copy[i] as T]
    }
    return copy.slice(0, n)
  }

  async function probe(target: string) {
    const started = clock()
    const id = ++probeSeq
    const m = multiplier()
    const ping = (): Message => ({
      kind: 'ping',
      probe: id,
      sentAt: clock(),
      updates: piggyback(target),
    })
    try {
      const ack = await transport.request(target, ping(), timing.probeTimeoutMs * m)
      if (ack.kind !== 'ack') throw new Error('not an ack')
      const now = clock()
      heard(target, now, ack.sentAt, now - started)
      for (const u of ack.updates) take(u, now)
      if (localScore > 0) localScore--
      if (Math.abs(skew() - saidSkew) > SKEW_RESAY_MS) say()
      return
    } catch {
      // No answer in time: ask others to try.
    }
    if (stopped) return
    const helpers = pick(
      rings().neighbours.filter((id) => id !== target),
      INDIRECT_PROBES,
    )
    const remaining = Math.max(timing.probeTimeoutMs, timing.intervalMs * m - (clock() - started))
    let nacks = 0
    const answers = await Promise.allSettled(
      helpers.map(async (helper) => {
        const answer = await transport.request(
          helper,
          { kind: 'ping-req', probe: id, target, updates: piggyback(helper) },
          remaining,
        )
        if (answer.kind === 'nack') nacks++
        if (answer.kind !== 'ack') throw new Error('nack')
        for (const u of answer.updates) take(u, clock())
      }),
    )
    if (stopped) return
    const peer = peers.get(target)
    if (answers.some((a) => a.status === 'fulfilled')) {
      if (peer !== undefined) peer.lastSeen = clock()
      return
    }
    // Lifeguard: helpers that did not even say nack point at this member's
    // own trouble (its network, its scheduling), not the target's.
    if (nacks < helpers.length) localScore = Math.min(MAX_LOCAL_HEALTH_SCORE, localScore + 1)
    if (peer === undefined || peer.state !== 'alive') return
    peer.accused = peer.incarnation
    peer.accusers.add(self.peerId)
    setState(peer, 'suspect', clock())
    accuse(peer, false)
    changed()
  }

  function suspicionTimeout(peer: Tracked): number {
    const expected = Math.max(1, Math.min(RINGS, size() - 2))
    const confirmations = Math.max(0, peer.accusers.size - 1)
    const fraction = Math.log(Math.min(confirmations, expected) + 1) / Math.log(expected + 1)
    return (
      Math.max(
        timing.suspicionMinMs,
        timing.suspicionMaxMs - (timing.suspicionMaxMs - timing.suspicionMinMs) * fraction,
      ) * multiplier()
    )
  }

  function pushPullInterval(): number {
    // As memberlist does: above 32 members, less often as the array grows,
    // so the bytes a member exchanges this way stay about the same.
    const n = size()
    const scale = n <= 32 ? 1 : Math.ceil(Math.log2(n) - Math.log2(32)) + 1
    return timing.pushPullMs * scale
  }

  /**
   * Push/pull with a member: this member's digest first (its whole table
   * only on joining); the other answers with its digest, and with its whole
   * table when the two differ; and when this member still holds what the
   * other lacks, it sends its whole table.
   */
  async function syncWith(peerId: string) {
    const timeoutMs = Math.max(5000, timing.intervalMs * 5)
    const ask = async (whole: boolean) => {
      const answer = await transport.request(
        peerId,
        { kind: 'sync', sentAt: clock(), digest: digest(), updates: whole ? everything() : [] },
        timeoutMs,
      )
      if (answer.kind !== 'sync') throw new Error('not a sync answer')
      return answer
    }
    const answer = await ask(!joined)
    const now = clock()
    merge(peerId, answer.updates, now, !joined)
    heard(peerId, now, answer.sentAt)
    joined = true
    if (answer.updates.length > 0 && digest() !== answer.digest) await ask(true)
  }

  /**
   * The table in a few bytes: the same on two members that hold the same
   * word of every member and the same verdict on each (live, dead or left).
   */
  function digest(): string {
    if (ownWord === undefined) say()
    const own = (ownWord as { word: Announcement }).word
    const rows = [`${self.peerId}/${self.startedAt}/${own.beat}/${leaving ? 'l' : 'a'}`]
    for (const p of peers.values()) {
      const verdict = p.state === 'dead' ? 'd' : p.state === 'left' ? 'l' : 'a'
      rows.push(`${p.member}/${p.startedAt}/${p.beat}/${verdict}`)
    }
    rows.sort()
    return createHash('sha256').update(rows.join('\n')).digest('base64').slice(0, 22)
  }

  /** Everything this member holds, for push/pull: its word, every other word, every accusation it stands by. */
  function everything(): Update[] {
    if (ownWord === undefined) say()
    const out: Update[] = [ownWord as Update]
    for (const p of peers.values()) {
      out.push(p.said)
      if (p.charge !== undefined) out.push(p.charge)
    }
    return out
  }

  /**
   * One timer, coalesced: while anything is to be gossiped or a member is
   * suspect, dead or left, a tick every gossip interval; otherwise only at
   * the next probe or push/pull, so an idle member wakes once an interval.
   */
  function schedule() {
    if (stopped) return
    const now = clock()
    const busy = queue.size > 0 || unsettled.size > 0
    const next = busy ? now + timing.gossipIntervalMs : Math.min(nextProbeAt, nextPushPullAt)
    clearTimeout(timer)
    dueAt = Math.max(next, now + 1)
    timer = setTimeout(tick, dueAt - now)
    timer.unref()
  }

  /** Ticks as soon as the event loop is free (what is queued goes out now). */
  function soon() {
    if (stopped || dueAt <= clock()) return
    clearTimeout(timer)
    dueAt = clock()
    timer = setTimeout(tick, 0)
    timer.unref()
  }

  /** Brings the next tick forward to a gossip interval from now, when it is later. */
  function wake() {
    if (!stopped && dueAt > clock() + timing.gossipIntervalMs) schedule()
  }

  function tick() {
    const now = clock()
    // Lifeguard's local health: a tick that comes late means this member is
    // itself slow; stretch every timeout until it has been on time a while.
    const lag = now - dueAt
    if (lag > timing.intervalMs / 2)
      localScore = Math.min(MAX_LOCAL_HEALTH_SCORE, localScore + Math.ceil(lag / timing.intervalMs))
    try {
      step(now)
    } finally {
      schedule()
    }
  }

  function step(now: number) {
    let anyChange = false
    for (const peer of unsettled) {
      if (peer.state === 'suspect' && now - peer.suspectedAt > suspicionTimeout(peer)) {
        setState(peer, 'dead', now)
        accuse(peer, true)
        anyChange = true
      } else if (peer.state === 'dead' || peer.state === 'left') {
        if (now - peer.endedAt > timing.forgetAfterMs) {
          peers.delete(peer.member)
          unsettled.delete(peer)
          queue.delete(peer.member)
          anyChange = true
          logger.info({ member: peer.name }, 'member forgotten')
        }
      }
    }
    if (anyChange) {
      resolveAllNames()
      changed()
    }

    if (now >= nextProbeAt) {
      nextProbeAt = now + timing.intervalMs
      const watched = rings().watched
      if (watched.length > 0) {
        const target = watched[probeCursor++ % watched.length] as string
        void probe(target)
      }
      // A dead member is tried now and then (back-off to REVIVE_MAX_MS): if
      // it is back, or was only cut off, push/pull brings both tables together.
      const revive = [...peers.values()].find((p) => p.state === 'dead' && now >= p.nextReviveAt)
      if (revive !== undefined) {
        revive.reviveDelay = Math.min(REVIVE_MAX_MS, revive.reviveDelay * 2)
        revive.nextReviveAt = now + revive.reviveDelay
        syncWith(revive.member).catch(() => {})
      }
    }

    if (now >= nextPushPullAt) {
      nextPushPullAt = now + pushPullInterval() * (0.5 + random())
      const live = [...peers.values()].filter((p) => p.state === 'alive').map((p) => p.member)
      const [other] = pick(live, 1)
      if (other !== undefined) syncWith(other).catch(() => {})
    }

    if (queue.size > 0) {
      for (const target of pick(rings().neighbours, GOSSIP_FANOUT)) {
        const updates = piggyback(target)
        if (updates.length > 0) transport.send(target, { kind: 'gossip', updates })
      }
    }
  }

  function entryOf(p: Tracked): MemberEntry {
    let offsetMs = p.offsetMs
    // Never measured (they do not talk): from what each says of its skew.
    if (p.offsets.length === 0) offsetMs = p.skewMs - saidSkew
    return {
      member: p.member,
      name: p.name,
      state: p.state,
      lastSeen: p.lastSeen,
      addrs: p.addrs,
      http: p.http,
      seq: p.seq,
      offsetMs,
      version: p.version,
      health: p.health,
      startedAt: p.startedAt,
      incarnation: p.incarnation,
      settings: p.settings,
      self: false,
    }
  }

  function selfEntry(): MemberEntry {
    return {
      member: self.peerId,
      name: self.name,
      state: selfConflict ? 'conflict' : 'alive',
      lastSeen: clock(),
      addrs: self.addrs(),
      http: self.http(),
      seq: self.seq(),
      offsetMs: 0,
      version: self.version,
      health: self.health(),
      startedAt: self.startedAt,
      incarnation,
      settings: self.settings(),
      self: true,
    }
  }

  return {
    get localHealthMultiplier() {
      return multiplier()
    },

    start() {
      stopped = false
      leaving = false
      const now = clock()
      nextProbeAt = now + timing.intervalMs * random()
      nextPushPullAt = now + pushPullInterval() * (0.5 + random())
      say()
      schedule()
    },

    async stop(options) {
      if (stopped) return
      stopped = true
      clearTimeout(timer)
      if (!options.leaving) return
      leaving = true
      say()
      const update = ownWord as Update
      // Straight to every neighbour, and to a few more: they pass it on.
      const targets = new Set([...rings().neighbours, ...pick([...peers.keys()], GOSSIP_FANOUT)])
      await Promise.allSettled(
        [...targets].map((id) =>
          transport.request(
            id,
            { kind: 'ping', probe: 0, sentAt: clock(), updates: [update] },
            1000,
          ),
        ),
      )
    },

    async handle(from, message) {
      const now = clock()
      switch (message.kind) {
        case 'ping': {
          heard(from, now, message.sentAt)
          for (const u of message.updates) take(u, now)
          return { kind: 'ack', probe: message.probe, sentAt: clock(), updates: piggyback(from) }
        }
        case 'gossip': {
          heard(from, now)
          for (const u of message.updates) take(u, now)
          return undefined
        }
        case 'ping-req': {
          heard(from, now)
          for (const u of message.updates) take(u, now)
          try {
            const ack = await transport.request(
              message.target,
              {
                kind: 'ping',
                probe: ++probeSeq,
                sentAt: clock(),
                updates: piggyback(message.target),
              },
              timing.probeTimeoutMs * multiplier(),
            )
            if (ack.kind !== 'ack') throw new Error('not an ack')
            heard(message.target, clock())
            for (const u of ack.updates) take(u, clock())
            return { kind: 'ack', probe: message.probe, sentAt: clock(), updates: piggyback(from) }
          } catch {
            return { kind: 'nack', probe: message.probe }
          }
        }
        case 'sync': {
          merge(from, message.updates, now, false)
          heard(from, now, message.sentAt)
          const mine = digest()
          return {
            kind: 'sync',
            sentAt: clock(),
            digest: mine,
            updates: mine === message.digest ? [] : everything(),
          }
        }
        default:
          return undefined
      }
    },

    isNews(update) {
      return 'word' in update ? newerWord(update.word) : newerAccusation(update.accusation)
    },

    syncWith,

    announceNow() {
      if (!stopped) say()
    },

    neighbours() {
      return rings().neighbours
    },

    table() {
      return [selfEntry(), ...[...peers.values()].map(entryOf)].sort((a, b) =>
        a.name === b.name ? (a.member < b.member ? -1 : 1) : a.name < b.name ? -1 : 1,
      )
    },

    get(peerId) {
      if (peerId === self.peerId) return selfEntry()
      const p = peers.get(peerId)
      return p === undefined ? undefined : entryOf(p)
    },

    forget(nameOrId) {
      const matches = [...peers.values()].filter(
        (p) => p.name === nameOrId || p.member === nameOrId,
      )
      if (matches.length === 0) return 'not_found'
      const gone = matches.filter((p) => p.state === 'dead' || p.state === 'left')
      if (gone.length === 0) return 'not_dead'
      for (const p of gone) {
        peers.delete(p.member)
        unsettled.delete(p)
        queue.delete(p.member)
      }
      changed()
      return 'forgotten'
    },

    transitions() {
      return [...transitions].map(([key, count]) => {
        const [from, to] = key.split('>') as [MemberState, MemberState]
        return { from, to, count }
      })
    },

    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
