// Replication: every member's events on R members. This module plays both
// roles of /chorus/replicate/1 for its member:
//
// - As a holder, for each origin that placement (placement.ts) gives it, it
//   keeps one stream open: to the origin while the origin is alive or
//   suspect, else to another holder of it, and stores what comes (the
//   origin's bytes, untouched) apart from its own events. It asks from its
//   mark on, so a holder that was down, or was just assigned, catches up on
//   the same stream that then carries each new event. Catch-up is bounded
//   (CATCH_UP_EVENTS_PER_S) so it never starves the member's own work.
//   An origin dead (or gone) longer than the re-replication delay counts as
//   no copy: placement gives it one more holder, which copies its events
//   from the others, so R copies exist again. A copy this member no longer
//   holds by placement (the origin came back, or a holder did) is dropped
//   once that has lasted the re-replication delay (the member that holds
//   it now has had that long to catch up); a copy of a member no longer in
//   the table (forgotten) stays until retention.
// - As a source, it sends its own events and its copies to whoever asks,
//   and as an origin it keeps each holder's acknowledged seq: the lag that
//   /v1/members shows, and what `durability=replicated` waits for.

import { setTimeout as delay } from 'node:timers/promises'
import { ProtocolError } from '../../protocol/index.ts'
import { idBytes, memberTag, seqOfIdBytes } from '../event/id.ts'
import type { Logger } from '../log.ts'
import type { MemberEntry } from '../mesh/membership.ts'
import {
  type ReplicaSource,
  remoteReplicaHead,
  remoteReplicate,
} from '../mesh/protocols/replicate.ts'
import type { Peer } from '../mesh/protocols/stream.ts'
import { type EventLog, HeldOrderError } from '../store/event-log.ts'
import { candidatesOf, holdersOf } from './placement.ts'

/** Most events per second a holder takes while it catches up. */
export const CATCH_UP_EVENTS_PER_S = 50_000
/** How often placement is looked at again without a change of the table, ms. */
const PLACEMENT_TICK_MS = 1000
/** Retry delays of a broken stream: first and cap, ms. */
const RETRY_FIRST_MS = 500
const RETRY_MAX_MS = 10_000
/** Appends remembered (seq and time) to tell a holder's lag in ms. */
const APPEND_TIMES = 4096
/** Longest wait at a restore for another member to ask, ms; then the member starts afresh. */
export const RESTORE_WAIT_MS = 30_000
/** Why a member restoring its events takes none yet. */
const SEALED =
  'this member is learning its newest seq from the members that hold its events (its data dir is new); retry shortly'
/** A restore that no live member can take further for this long ends without the rest, ms. */
const RESTORE_STALL_MS = 60_000
/** The record of a restore under way, so one interrupted by a restart resumes. */
const RESTORE_RECORD = 'restore'

export interface ReplicatorInit {
  selfPeerId: string
  log: EventLog
  /** Copies of every event, the origin's own included: 1 is none. */
  replicas(): number
  rereplicateAfterMs: number
  /** The membership table, this member included. */
  table(): readonly MemberEntry[]
  /** How to reach a member. */
  peer(peerId: string, name: string): Peer
  /** Calls `listener` when the table changes (placement is then computed again). */
  onChange?: (listener: () => void) => void
  /**
   * The member's data dir was replaced (its identity kept, its store new or
   * restored from a backup): learn its newest seq from the holders of its
   * events before it takes any event, then pull back those past its own
   * newest (see `restoring`).
   */
  restore?: boolean
  /** Called once a restore has settled where new events start (a backup's mark may then go). */
  restoreSettled?: () => Promise<void>
  /** Longest wait for another member to ask at a restore, ms. Default RESTORE_WAIT_MS. */
  restoreWaitMs?: number
  clock?: () => number
  logger: Logger
}

/** One holder of an origin's events, and how far behind it is when known. */
export interface HolderRow {
  member: string
  name: string
  /** Events of the origin it does not hold yet; undefined when this member cannot tell. */
  lagEvents?: number
  /** Age of the oldest of them, ms; 0 when it holds them all. */
  lagMs?: number
}

export interface Replicator {
  /** What the replicate protocol serves from. */
  readonly source: ReplicaSource
  /**
   * While the member restores its events after its data dir was replaced:
   * `discovering` its newest seq (it takes no event), then `pulling` its
   * events back from a holder; undefined otherwise.
   */
  restoring(): 'discovering' | 'pulling' | undefined
  /** The holders of `origin`'s events now, best first. */
  holders(origin: string): string[]
  /**
   * A member to read `origin`'s events from while the origin cannot be
   * asked: the first of its holders alive (this member itself possibly);
   * undefined when none is.
   */
  servingHolder(origin: string): string | undefined
  /** The holders of `origin` with what is known of their lag. */
  holderRows(origin: string): HolderRow[]
  /**
   * How many of `origin`'s events this member knows it does not hold yet
   * (0: it holds all it has heard of); undefined when it has heard of none.
   */
  behind(origin: string): number | undefined
  /**
   * Resolves once R − 1 holders have synced this member's events up to
   * `seq`; rejects when `signal` aborts first.
   */
  replicated(seq: number, signal: AbortSignal): Promise<void>
  start(): void
  stop(): Promise<void>
}

interface Subscription {
  source: string
  controller: AbortController
  done: Promise<void>
}

export function createReplicator(init: ReplicatorInit): Replicator {
  const { log, logger, selfPeerId } = init
  const clock = init.clock ?? Date.now
  const tags = new Map<string, Uint8Array>()
  const tagOf = (peerId: string) => {
    let tag = tags.get(peerId)
    if (tag === undefined) {
      tag = memberTag(peerId)
      tags.set(peerId, tag)
    }
    return tag
  }

  // --- as an origin: what each holder has synced -------------------------
  const acked = new Map<string, number>()
  const appendTimes: Array<{ seq: number; at: number }> = []
  const waiters = new Set<{ seq: number; resolve: () => void }>()
  /** The streams this member serves, each waiting for its origin's next event. */
  const appendWakers = new Set<(tag: Uint8Array) => void>()
  const unlisten = log.onAppend((tag) => {
    if (Buffer.compare(tag, log.tag) === 0) {
      appendTimes.push({ seq: log.lastSeq, at: clock() })
      if (appendTimes.length > APPEND_TIMES)
        appendTimes.splice(0, appendTimes.length - APPEND_TIMES)
    }
    for (const wake of appendWakers) wake(tag)
  })

  // Placement is computed once per table change or tick, not per question:
  // a coordinator asks it for every member of every query.
  let placed:
    | {
        at: number
        replicas: number
        candidates: string[]
        candidateSet: Set<string>
        live: Set<string>
        holders: Map<string, string[]>
      }
    | undefined
  init.onChange?.(() => {
    placed = undefined
    noteAnnounced()
  })
  const placement = () => {
    const now = clock()
    const replicas = init.replicas()
    if (
      placed === undefined ||
      now - placed.at >= PLACEMENT_TICK_MS ||
      placed.replicas !== replicas
    ) {
      const table = init.table()
      const candidates = candidatesOf(table, now, init.rereplicateAfterMs)
      placed = {
        at: now,
        replicas,
        candidates,
        candidateSet: new Set(candidates),
        live: new Set(table.filter((e) => e.state === 'alive').map((e) => e.member)),
        holders: new Map(),
      }
    }
    return placed
  }
  /** Members alive in the table now. */
  const live = () => placement().live
  const holdersNow = (origin: string) => {
    placed = placement()
    let holders = placed.holders.get(origin)
    if (holders === undefined) {
      // An origin away past the re-replication delay is no copy: one more
      // holder takes its place, so R copies exist again.
      const { replicas } = placed
      const away = replicas > 1 && !placed.candidateSet.has(origin)
      holders = holdersOf(origin, placed.candidates, away ? replicas + 1 : replicas)
      placed.holders.set(origin, holders)
    }
    return holders
  }

  const syncedCopies = (seq: number) => {
    let copies = 0
    for (const holder of holdersNow(selfPeerId)) if ((acked.get(holder) ?? 0) >= seq) copies++
    return copies
  }
  const settleWaiters = () => {
    const needed = init.replicas() - 1
    for (const waiter of waiters) {
      if (syncedCopies(waiter.seq) >= needed) {
        waiters.delete(waiter)
        waiter.resolve()
      }
    }
  }

  const source: ReplicaSource = {
    space(origin) {
      // Its own events, half restored, would leave gaps in a holder's copy.
      if (origin === selfPeerId && phase !== undefined)
        throw new ProtocolError('busy', 'this member is restoring its events; ask again shortly')
      return log.spaceOf(origin)
    },
    appended(origin, signal) {
      const tag = tagOf(origin)
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          appendWakers.delete(wake)
          signal.removeEventListener('abort', aborted)
        }
        const wake = (appendedTag: Uint8Array) => {
          if (Buffer.compare(appendedTag, tag) !== 0) return
          done()
          resolve()
        }
        const aborted = () => {
          done()
          reject(signal.reason)
        }
        if (signal.aborted) return reject(signal.reason)
        appendWakers.add(wake)
        signal.addEventListener('abort', aborted, { once: true })
      })
    },
    admits(peer, origin) {
      return peer === origin || holdersNow(origin).includes(peer)
    },
    announced(origin) {
      const now = init.table().find((e) => e.member === origin)?.seq ?? 0
      return Math.max(now, announced.get(origin) ?? 0)
    },
    acked(holder, origin, seq) {
      if (origin !== selfPeerId) return
      if (seq <= (acked.get(holder) ?? 0)) return
      acked.set(holder, seq)
      settleWaiters()
    },
  }

  /** The highest seq each other member in the table has announced (see noteAnnounced). */
  const announced = new Map<string, number>()
  /**
   * Keeps the highest seq each member announced past its restart (a
   * replaced disk's word says 0): what it must continue past. At every
   * change of the table (a member leaving or found dead says its last) and
   * every placement tick. Returns the table.
   */
  function noteAnnounced() {
    const table = init.table()
    const inTable = new Set<string>()
    for (const entry of table) {
      inTable.add(entry.member)
      if (!entry.self && entry.seq > (announced.get(entry.member) ?? 0))
        announced.set(entry.member, entry.seq)
    }
    for (const member of announced.keys()) if (!inTable.has(member)) announced.delete(member)
    return table
  }

  // --- as a holder: one stream per origin held ----------------------------
  const subscriptions = new Map<string, Subscription>()
  /** The newest seq of each origin held here that any source has stated. */
  const heard = new Map<string, number>()
  const behind = (origin: string): number | undefined => {
    const known = heard.get(origin)
    if (known === undefined) return undefined
    return Math.max(0, known - (log.held(tagOf(origin))?.seq ?? 0))
  }
  /** Since when this member holds a copy that placement no longer gives it, by origin. */
  const unassignedSince = new Map<string, number>()
  let stopped = true
  let timer: NodeJS.Timeout | undefined

  const nameOf = (peerId: string) => init.table().find((e) => e.member === peerId)?.name ?? peerId

  /** Whom to copy `origin` from: the origin while it can be asked, else another holder. */
  function sourceFor(origin: string, entry: MemberEntry): string | undefined {
    if (entry.state === 'alive' || entry.state === 'suspect') return origin
    const alive = live()
    return holdersNow(origin).find((h) => h !== selfPeerId && alive.has(h))
  }

  /** Catch-up pacing: a holder takes at most CATCH_UP_EVENTS_PER_S. */
  let paceStart = performance.now()
  let paced = 0
  async function pace(events: number, signal: AbortSignal) {
    const now = performance.now()
    if (now - paceStart > 1000) {
      paceStart = now
      paced = 0
    }
    paced += events
    const due = paceStart + (paced / CATCH_UP_EVENTS_PER_S) * 1000
    if (due > now) await sleep(due - now, signal)
  }

  function subscribe(origin: string, from: string): Subscription {
    const controller = new AbortController()
    const signal = controller.signal
    const tag = tagOf(origin)
    const sub: Subscription = { source: from, controller, done: Promise.resolve() }
    sub.done = (async () => {
      let delay = RETRY_FIRST_MS
      while (!signal.aborted) {
        const mark = log.held(tag)
        const after = { seq: mark?.seq ?? 0, lastId: mark?.lastId }
        try {
          await remoteReplicate(
            init.peer(from, nameOf(from)),
            origin,
            after,
            async (events) => {
              await pace(events.length, signal)
              const held = await log.appendHeld({ peerId: origin, tag }, events)
              delay = RETRY_FIRST_MS
              return held.seq
            },
            {
              signal,
              progress: {
                heard: (seq) => {
                  // 0 too: an origin with no events yet is one a holder is not behind.
                  if (seq > (heard.get(origin) ?? -1)) heard.set(origin, seq)
                },
              },
            },
          )
        } catch (err) {
          if (signal.aborted) return
          const level = err instanceof HeldOrderError ? 'warn' : 'debug'
          logger[level](
            {
              err: (err as Error).message,
              origin: nameOf(origin),
              from: nameOf(from),
              retryInMs: delay,
            },
            'replication stream ended; asking again',
          )
          await sleep(delay, signal).catch(() => {})
          delay = Math.min(RETRY_MAX_MS, delay * 2)
        }
      }
    })()
    return sub
  }

  /** Looks at placement again: starts, moves and ends streams, drops copies no longer held. */
  function place() {
    if (stopped) return
    const now = clock()
    const table = noteAnnounced()
    const inTable = new Set(table.map((e) => e.member))
    const wanted = new Map<string, string | undefined>()
    for (const entry of table) {
      if (entry.self || entry.state === 'conflict') continue
      if (!holdersNow(entry.member).includes(selfPeerId)) continue
      wanted.set(entry.member, sourceFor(entry.member, entry))
    }
    for (const [origin, sub] of subscriptions) {
      if (wanted.get(origin) === sub.source) continue
      sub.controller.abort()
      subscriptions.delete(origin)
    }
    for (const [origin, from] of wanted) {
      if (from === undefined || subscriptions.has(origin)) continue
      subscriptions.set(origin, subscribe(origin, from))
    }
    // Copies placement no longer gives this member.
    for (const mark of log.heldMarks()) {
      if (wanted.has(mark.peerId) || !inTable.has(mark.peerId)) {
        unassignedSince.delete(mark.peerId)
        continue
      }
      const since = unassignedSince.get(mark.peerId) ?? now
      unassignedSince.set(mark.peerId, since)
      if (now - since >= init.rereplicateAfterMs) {
        unassignedSince.delete(mark.peerId)
        logger.info({ origin: nameOf(mark.peerId) }, 'dropping a copy no longer held here')
        void log.dropHeld(mark.tag).catch((err: unknown) => {
          logger.warn({ err }, 'could not drop a copy')
        })
      }
    }
    settleWaiters()
  }

  // --- restoring a replaced data dir ------------------------------------
  let phase: 'discovering' | 'pulling' | undefined
  // Sealed from the start: no event, not even the collector's, may take a
  // seq before the holders have said which are used.
  if (init.restore === true) {
    log.seal(SEALED)
    phase = 'discovering'
  }
  const restoreStop = new AbortController()
  let restoring: Promise<void> = Promise.resolve()

  /** Every other live member's newest seq of this member's events, and its ts. */
  async function heads(signal: AbortSignal) {
    const others = init.table().filter((e) => !e.self && e.state === 'alive')
    const answers = await Promise.all(
      others.map((e) =>
        remoteReplicaHead(init.peer(e.member, e.name), selfPeerId, {
          signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]),
        }).then(
          (head) => ({ member: e.member, ...head }),
          () => undefined,
        ),
      ),
    )
    return answers.filter((a) => a !== undefined)
  }

  async function restore(resume: { target: number; seq: number; id?: Uint8Array } | undefined) {
    const signal = restoreStop.signal
    let target = resume?.target ?? 0
    // A store restored from a backup already holds its events up to its own newest.
    let restored = resume?.seq ?? log.lastSeq
    let restoredId =
      resume?.id ?? (log.lastSeq > 0 ? idBytes(log.lastTs, log.tag, log.lastSeq) : undefined)
    if (resume === undefined) {
      phase = 'discovering'
      log.seal(SEALED)
      const deadline = clock() + (init.restoreWaitMs ?? RESTORE_WAIT_MS)
      let found: Awaited<ReturnType<typeof heads>> = []
      while (!signal.aborted && clock() < deadline) {
        found = await heads(signal)
        if (found.length > 0) break
        await sleep(250, signal).catch(() => {})
      }
      const best = found.sort((a, b) => b.seq - a.seq)[0]
      // Past the newest any live member holds, and past the newest this
      // member announced before its disk went: a seq is never used twice,
      // even when the holder of the last events is away.
      const said = Math.max(0, ...found.map((f) => f.announced))
      target = Math.max(best?.seq ?? 0, said)
      if (target <= restored) {
        if (!signal.aborted && restored === 0)
          logger.warn(
            { asked: found.length },
            'no member holds events of this member: it starts afresh from seq 1',
          )
        log.advanceTo(0, 0)
        phase = undefined
        if (!signal.aborted) await init.restoreSettled?.()
        return
      }
      log.advanceTo(target, best?.ts ?? 0)
      await log.putRecord(
        RESTORE_RECORD,
        encodeRestore(
          restoredId === undefined
            ? { target, seq: restored }
            : { target, seq: restored, id: restoredId },
        ),
      )
      await init.restoreSettled?.()
      logger.info(
        {
          seq: target,
          held: best?.seq ?? 0,
          from: best === undefined ? null : nameOf(best.member),
        },
        'new events continue past the newest seq of this member known to the others; pulling its events back',
      )
    }
    phase = 'pulling'
    let delay = RETRY_FIRST_MS
    let progressAt = clock()
    while (!signal.aborted && restored < target) {
      const found = await heads(signal)
      const from = found.sort((a, b) => b.seq - a.seq)[0]
      if (from === undefined || from.seq <= restored) {
        // No live member has more of them: the rest may be on one that is away.
        if (clock() - progressAt > RESTORE_STALL_MS) {
          logger.warn(
            { restored, target },
            "no live member holds the rest of this member's events; the restore ends without them",
          )
          break
        }
        await sleep(delay, signal).catch(() => {})
        delay = Math.min(RETRY_MAX_MS, delay * 2)
        continue
      }
      const pull = new AbortController()
      const pulling = AbortSignal.any([signal, pull.signal])
      try {
        await remoteReplicate(
          init.peer(from.member, nameOf(from.member)),
          selfPeerId,
          { seq: restored, lastId: restoredId },
          async (events) => {
            await pace(events.length, pulling)
            // Past the target are events this member logged since: it has
            // them, and the source has nothing older left to send (what it
            // skipped, retention took).
            const mine = events.filter((e) => seqOfIdBytes(e.id) <= target)
            log.appendRestored(mine)
            const last = mine[mine.length - 1]
            if (last !== undefined) {
              restored = seqOfIdBytes(last.id)
              restoredId = last.id
            }
            if (mine.length < events.length) restored = target
            await log.putRecord(
              RESTORE_RECORD,
              encodeRestore({
                target,
                seq: restored,
                ...(restoredId === undefined ? {} : { id: restoredId }),
              }),
            )
            progressAt = clock()
            if (restored >= target) pull.abort()
            delay = RETRY_FIRST_MS
            return restored
          },
          {
            signal: pulling,
            // A source that has sent all it has, none past what is restored: ask another.
            progress: {
              heard: (seq) => {
                if (seq <= restored) pull.abort()
              },
            },
          },
        )
      } catch (err) {
        if (signal.aborted || pull.signal.aborted) continue
        logger.debug({ err: (err as Error).message }, 'restore stream ended; asking again')
        await sleep(delay, signal).catch(() => {})
        delay = Math.min(RETRY_MAX_MS, delay * 2)
      }
    }
    if (signal.aborted) return
    // Past the newest any holder has: done (a gap is events retention took).
    await log.putRecord(RESTORE_RECORD, encodeRestore({ target, seq: target }))
    logger.info({ seq: target }, 'events restored from the holders')
    phase = undefined
  }

  return {
    source,
    restoring: () => phase,
    holders: holdersNow,
    servingHolder(origin) {
      const alive = live()
      return holdersNow(origin).find((h) => alive.has(h))
    },
    behind,
    holderRows(origin) {
      return holdersNow(origin).map((holder): HolderRow => {
        const row: HolderRow = { member: holder, name: nameOf(holder) }
        if (origin === selfPeerId) {
          const seq = acked.get(holder) ?? 0
          row.lagEvents = Math.max(0, log.lastSeq - seq)
          const oldest = appendTimes.find((a) => a.seq > seq)
          row.lagMs = row.lagEvents === 0 || oldest === undefined ? 0 : clock() - oldest.at
        } else if (holder === selfPeerId) {
          const lag = behind(origin)
          if (lag !== undefined) row.lagEvents = lag
        }
        return row
      })
    },
    replicated(seq, signal) {
      return new Promise<void>((resolve, reject) => {
        if (syncedCopies(seq) >= init.replicas() - 1) return resolve()
        const waiter = {
          seq,
          resolve: () => {
            signal.removeEventListener('abort', aborted)
            resolve()
          },
        }
        const aborted = () => {
          waiters.delete(waiter)
          reject(signal.reason)
        }
        if (signal.aborted) return reject(signal.reason)
        waiters.add(waiter)
        signal.addEventListener('abort', aborted, { once: true })
      })
    },
    start() {
      if (!stopped) return
      stopped = false
      restoring = (async () => {
        const kept = await log.getRecord(RESTORE_RECORD)
        const record = kept === undefined ? undefined : decodeRestore(kept)
        if (record !== undefined && record.seq < record.target) await restore(record)
        else if (init.restore === true) await restore(undefined)
      })().catch((err: unknown) => {
        logger.error({ err }, 'restoring the events of this member failed')
        phase = undefined
        if (log.sealed) log.advanceTo(0, 0)
      })
      place()
      timer = setInterval(place, PLACEMENT_TICK_MS)
      timer.unref()
    },
    async stop() {
      stopped = true
      clearInterval(timer)
      unlisten()
      restoreStop.abort()
      await restoring
      const ending = [...subscriptions.values()]
      subscriptions.clear()
      for (const sub of ending) sub.controller.abort()
      await Promise.all(ending.map((s) => s.done))
    },
  }
}

/** Waits `ms`, or rejects when `signal` aborts; keeps no process alive. */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  delay(ms, undefined, { signal, ref: false })

interface RestoreRecord {
  /** The newest seq the holders had when the restore began. */
  target: number
  /** The newest seq restored so far. */
  seq: number
  /** Its id. */
  id?: Uint8Array
}

function encodeRestore(r: RestoreRecord): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      target: r.target,
      seq: r.seq,
      ...(r.id === undefined ? {} : { id: Buffer.from(r.id).toString('hex') }),
    }),
  )
}

function decodeRestore(bytes: Uint8Array): RestoreRecord | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as {
      target: number
      seq: number
      id?: string
    }
    if (!Number.isSafeInteger(v.target) || !Number.isSafeInteger(v.seq)) return undefined
    return {
      target: v.target,
      seq: v.seq,
      ...(typeof v.id === 'string' ? { id: new Uint8Array(Buffer.from(v.id, 'hex')) } : {}),
    }
  } catch {
    return undefined
  }
}
