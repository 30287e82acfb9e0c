// Membership: who is in the array and in what state, as this member sees it.
// Members announce themselves on a gossipsub topic every interval; silence
// makes a member `suspect`, and a suspicion that lasts makes it `dead`, in the
// manner of SWIM with Lifeguard's refinements:
//
// - local health: when this member's own timers run late (a busy or paused
//   process), it stretches every timeout by a multiplier, so that its own
//   slowness is not taken for the others' death;
// - dynamic suspicion: a suspicion ends in `dead` sooner the more other
//   members independently suspect the same member (announcements carry each
//   sender's suspects);
// - refutation: a member that sees itself suspected announces at once with a
//   higher incarnation; a direct ping answered also clears a suspicion.
//
// A member leaving on SIGTERM announces it and becomes `left`, which is not a
// failure. Dead and left members are forgotten after `forgetAfterMs`. This
// module does no I/O itself: publishing, pinging and dialling are passed in,
// so it runs the same in tests with a fake clock.
//
// What a member says of itself is trusted only where it cannot hurt the
// others: its start time tells one run from another, its `beat` orders the
// words of one run, and its clock only estimates its offset. Which member
// keeps a contested name is decided by what this member saw: the one it
// heard holding the name first (see `resolveName`), never by a start time
// the claimant reports.

import type { Announcement } from '../../protocol/index.ts'
import type { Logger } from '../log.ts'

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left' | 'conflict'

export interface MemberEntry {
  member: string
  name: string
  state: MemberState
  /** When this member last heard from it, ms since the epoch (this member's clock). */
  lastSeen: number
  addrs: string[]
  http: string
  seq: number
  /** Its clock minus this member's, ms (estimated from announcements). */
  offsetMs: number
  version: string
  health: string
  startedAt: number
  incarnation: number
  /** True for this member's own row. */
  self: boolean
}

export interface MembershipTiming {
  /** Announcement interval, ms. Default 1000. */
  intervalMs: number
  /** Silence before a member is suspect, ms. Default 2.5 intervals. */
  suspectAfterMs: number
  /** Suspicion → dead when enough other members confirm it, ms. Default 1.5 intervals. */
  suspicionMinMs: number
  /** Suspicion → dead with no confirmation, ms. Default 5 intervals. */
  suspicionMaxMs: number
  /** Dead and left members are dropped from the table after this, ms. Default 24 h. */
  forgetAfterMs: number
}

export function defaultTiming(intervalMs = 1000, forgetAfterMs = 86_400_000): MembershipTiming {
  return {
    intervalMs,
    suspectAfterMs: 2.5 * intervalMs,
    suspicionMinMs: 1.5 * intervalMs,
    suspicionMaxMs: 5 * intervalMs,
    forgetAfterMs,
  }
}

/** Highest local-health score; timeouts stretch by (1 + score). */
const MAX_LOCAL_HEALTH_SCORE = 8
/** Redial back-off of dead members: first delay and cap, ms. */
const REDIAL_FIRST_MS = 1000
const REDIAL_MAX_MS = 30_000
/** Announcements made at once (a new peer) are at least this far apart, ms. */
const ANNOUNCE_DEBOUNCE_MS = 50
/** How long a member heard of through gossip is given to dial us before we dial it, ms. */
const NEW_MEMBER_DIAL_DELAY_MS = 1000
/** Samples of clock offset kept per member. */
const OFFSET_SAMPLES = 10

export interface SelfInfo {
  peerId: string
  name: string
  version: string
  startedAt: number
  http: () => string
  addrs: () => string[]
  seq: () => number
  health: () => string
}

export interface MembershipComponents {
  self: SelfInfo
  timing: MembershipTiming
  clock: () => number
  logger: Logger
  /** Sends an announcement on the topic. */
  publish: (announcement: Announcement) => Promise<void>
  /** Pings a member directly; resolves when it answered. */
  ping: (peerId: string, signal: AbortSignal) => Promise<void>
  /**
   * Makes a member reachable at the given addresses at once, and connects to
   * it after `delayMs` unless a connection exists by then (a new member, or a
   * dead one again).
   */
  dial: (peerId: string, addrs: string[], delayMs: number) => Promise<void>
}

export type ForgetResult = 'forgotten' | 'not_found' | 'not_dead'

export interface Membership {
  start(): void
  /** Stops the timers; with `leaving`, first announces that this member leaves. */
  stop(options: { leaving: boolean }): Promise<void>
  /**
   * Takes in an announcement that passed the topic validator, or, `relayed`,
   * one that the member this one joined through passed on: a relayed word
   * only adds a member not yet in the table (as memberlist's push/pull on
   * join does); it must then be confirmed first-hand before the suspicion
   * timeout like any other. `signed` is the announcement as its subject
   * signed it, kept to pass on; the caller has checked the signature.
   */
  receive(
    announcement: Announcement,
    receivedAt: number,
    relayed?: boolean,
    signed?: Uint8Array,
  ): void
  /**
   * The latest signed word of every other member this one holds alive, to
   * pass on to a member that joins (the caller adds this member's own).
   */
  known(): Uint8Array[]
  /** Announces now (after a new connection, or to refute a suspicion). */
  announceNow(): void
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
  signed: Uint8Array | undefined
  suspectedAt: number
  endedAt: number
  suspects: string[]
  offsets: number[]
  nextRedialAt: number
  redialDelay: number
  probing: boolean
}

export function createMembership(components: MembershipComponents): Membership {
  const { self, timing, clock, logger } = components
  const peers = new Map<string, Tracked>()
  const listeners = new Set<() => void>()
  const transitions = new Map<`${MemberState}>${MemberState}`, number>()
  let incarnation = 0
  let beat = 0
  let selfConflict = false
  let localScore = 0
  let timer: NodeJS.Timeout | undefined
  let lastTick = 0
  let lastAnnounce = 0
  let stopped = false
  let trailing: NodeJS.Timeout | undefined
  const probes = new AbortController()

  const multiplier = () => 1 + localScore
  const changed = () => {
    for (const listener of listeners) listener()
  }

  function announcement(leaving: boolean): Announcement {
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
      suspects: [...peers.values()].filter((p) => p.state === 'suspect').map((p) => p.member),
    }
  }

  function announce(leaving = false): Promise<void> {
    lastAnnounce = clock()
    return components.publish(announcement(leaving)).catch((err: unknown) => {
      logger.debug({ err }, 'announcement not sent')
    })
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
    if (state === 'suspect') peer.suspectedAt = now
    if (state === 'dead' || state === 'left') peer.endedAt = now
    if (state === 'dead') {
      peer.redialDelay = REDIAL_FIRST_MS
      peer.nextRedialAt = now + REDIAL_FIRST_MS
    }
  }

  /**
   * Who keeps a contested name: the member this one heard holding it first,
   * then the smaller peer id. Members passed on by the member this one
   * joined through held their names before this one came; this member holds
   * its own name from then on, so it gives it up only to a member listed
   * under it in that table (a second `a` joining an array that has one),
   * never to a peer that claims it later. No claim a peer makes about itself
   * enters into it, so none can take a name by saying it started long ago.
   */
  function resolveName(name: string) {
    const holders: Array<{ id: string; since: number; entry?: Tracked }> = []
    if (self.name === name) holders.push({ id: self.peerId, since: 1 })
    for (const p of peers.values()) {
      if (
        p.name === name &&
        (p.state === 'alive' || p.state === 'suspect' || p.state === 'conflict')
      ) {
        holders.push({ id: p.member, since: p.heldSince, entry: p })
      }
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

  function probe(peer: Tracked) {
    if (peer.probing) return
    peer.probing = true
    const signal = AbortSignal.any([
      probes.signal,
      AbortSignal.timeout(timing.suspicionMinMs * multiplier()),
    ])
    components
      .ping(peer.member, signal)
      .then(() => {
        if (peer.state === 'suspect' && peers.get(peer.member) === peer) {
          peer.lastSeen = clock()
          setState(peer, 'alive', peer.lastSeen)
          changed()
        }
      })
      .catch(() => {})
      .finally(() => {
        peer.probing = false
      })
  }

  function tick() {
    const now = clock()
    // Lifeguard's local health: a tick that comes late means this member is
    // itself slow; stretch every timeout until it has been on time a while.
    if (lastTick !== 0) {
      const lag = now - lastTick - timing.intervalMs
      if (lag > timing.intervalMs / 2)
        localScore = Math.min(
          MAX_LOCAL_HEALTH_SCORE,
          localScore + Math.ceil(lag / timing.intervalMs),
        )
      else if (localScore > 0) localScore--
    }
    lastTick = now
    if (now - lastAnnounce >= timing.intervalMs * 0.9) void announce()

    const m = multiplier()
    const live = [...peers.values()].filter((p) => p.state === 'alive')
    let anyChange = false
    for (const peer of [...peers.values()]) {
      const before = peer.state
      if (peer.state === 'alive' && now - peer.lastSeen > timing.suspectAfterMs * m) {
        setState(peer, 'suspect', now)
        probe(peer)
      } else if (peer.state === 'suspect') {
        const confirmations = live.filter((p) => p.suspects.includes(peer.member)).length
        const expected = Math.max(1, Math.min(3, peers.size - 1))
        const fraction = Math.log(Math.min(confirmations, expected) + 1) / Math.log(expected + 1)
        const timeout =
          Math.max(
            timing.suspicionMinMs,
            timing.suspicionMaxMs - (timing.suspicionMaxMs - timing.suspicionMinMs) * fraction,
          ) * m
        if (now - peer.suspectedAt > timeout) setState(peer, 'dead', now)
        else probe(peer)
      } else if (peer.state === 'dead' || peer.state === 'left') {
        if (now - peer.endedAt > timing.forgetAfterMs) {
          peers.delete(peer.member)
          anyChange = true
          logger.info({ member: peer.name }, 'member forgotten')
          continue
        }
        if (peer.state === 'dead' && now >= peer.nextRedialAt) {
          peer.redialDelay = Math.min(REDIAL_MAX_MS, peer.redialDelay * 2)
          peer.nextRedialAt = now + peer.redialDelay
          components.dial(peer.member, peer.addrs, 0).catch(() => {})
        }
      }
      if (peer.state !== before) anyChange = true
    }
    if (anyChange) {
      for (const name of new Set([...peers.values()].map((p) => p.name))) resolveName(name)
      changed()
    }
  }

  function entryOf(p: Tracked): MemberEntry {
    return {
      member: p.member,
      name: p.name,
      state: p.state,
      lastSeen: p.lastSeen,
      addrs: p.addrs,
      http: p.http,
      seq: p.seq,
      offsetMs: p.offsetMs,
      version: p.version,
      health: p.health,
      startedAt: p.startedAt,
      incarnation: p.incarnation,
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
      self: true,
    }
  }

  return {
    get localHealthMultiplier() {
      return multiplier()
    },

    start() {
      stopped = false
      lastTick = clock()
      void announce()
      timer = setInterval(tick, timing.intervalMs)
      timer.unref()
    },

    async stop({ leaving }) {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      clearTimeout(trailing)
      probes.abort()
      if (leaving) await announce(true)
    },

    receive(a, receivedAt, relayed = false, signed = undefined) {
      if (a.peerId === self.peerId || stopped) return
      let peer = peers.get(a.peerId)
      const isNew = peer === undefined
      if (relayed && !isNew) return
      if (peer !== undefined) {
        // Gossip may deliver out of order, and anyone may play a member's
        // old signed words again: keep the newest word of the newest run. A
        // run that reports an earlier start is taken only once the run we
        // knew has ended (its clock may have been set back meanwhile).
        const ended = peer.state === 'dead' || peer.state === 'left'
        if (
          a.startedAt === peer.startedAt
            ? a.beat <= peer.beat
            : a.startedAt < peer.startedAt && !ended
        )
          return
      }
      if (peer === undefined) {
        peer = {
          heldSince: relayed ? 0 : receivedAt,
          beat: a.beat,
          signed,
          member: a.peerId,
          name: a.name,
          state: 'alive',
          lastSeen: receivedAt,
          addrs: a.addrs,
          http: a.http,
          seq: a.seq,
          offsetMs: 0,
          version: a.version,
          health: a.health,
          startedAt: a.startedAt,
          incarnation: a.incarnation,
          self: false,
          suspectedAt: 0,
          endedAt: 0,
          suspects: [],
          offsets: [],
          nextRedialAt: 0,
          redialDelay: REDIAL_FIRST_MS,
          probing: false,
        }
        peers.set(a.peerId, peer)
        logger.info({ member: a.name, peerId: a.peerId }, 'member joined')
      }
      const before = peer.state
      const nameBefore = peer.name
      if (nameBefore !== a.name) peer.heldSince = receivedAt
      Object.assign(peer, {
        beat: a.beat,
        signed,
        name: a.name,
        lastSeen: receivedAt,
        addrs: a.addrs,
        http: a.http,
        seq: a.seq,
        version: a.version,
        health: a.health,
        startedAt: a.startedAt,
        incarnation: a.incarnation,
        // Whom it suspects counts only first-hand: a relayed list is stale.
        suspects: relayed ? [] : a.suspects,
      })
      // Its clock minus ours; transit only makes a sample smaller, so the
      // largest of the recent samples is the best estimate.
      if (!relayed) {
        peer.offsets.push(a.sentAt - receivedAt)
        if (peer.offsets.length > OFFSET_SAMPLES) peer.offsets.shift()
        peer.offsetMs = Math.max(...peer.offsets)
      }

      if (a.leaving) setState(peer, 'left', receivedAt)
      else if (peer.state !== 'conflict') setState(peer, 'alive', receivedAt)
      resolveName(a.name)
      if (nameBefore !== a.name) resolveName(nameBefore)
      if (
        !relayed &&
        a.suspects.includes(self.peerId) &&
        clock() - lastAnnounce > timing.intervalMs / 4
      ) {
        // Refute: we are alive, with a higher incarnation.
        incarnation++
        void announce()
      }
      // Heard of through gossip, a new member is given a moment to dial us:
      // it dials every member it was told of as it joins, and a dial from
      // each side at the same moment would open two connections. Of two
      // members that both hear of each other through gossip, the one with
      // the smaller peer id dials first.
      if (isNew) {
        const delay = relayed
          ? 0
          : self.peerId < a.peerId
            ? NEW_MEMBER_DIAL_DELAY_MS
            : 2 * NEW_MEMBER_DIAL_DELAY_MS
        components.dial(a.peerId, a.addrs, delay).catch(() => {})
      }
      if (isNew || peer.state !== before) changed()
    },

    announceNow() {
      if (stopped) return
      if (clock() - lastAnnounce > ANNOUNCE_DEBOUNCE_MS) {
        void announce()
      } else if (trailing === undefined) {
        // Several peers arriving together get one announcement, a moment later.
        trailing = setTimeout(() => {
          trailing = undefined
          if (!stopped) void announce()
        }, ANNOUNCE_DEBOUNCE_MS)
        trailing.unref()
      }
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
      for (const p of gone) peers.delete(p.member)
      changed()
      return 'forgotten'
    },

    known() {
      const out: Uint8Array[] = []
      // A suspect may be dead: a newcomer would take it for alive.
      for (const p of peers.values()) if (p.state === 'alive' && p.signed) out.push(p.signed)
      return out
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
