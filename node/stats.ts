// What a member tells the outside about itself, without knowing who listens:
// readings taken on demand (MemberStats) and observations pushed as they
// happen (MemberRecorder). exporter/ turns both into Prometheus metrics;
// nothing under node/ imports prom-client.

import type { HostSample } from './collect/host.ts'
import type { Severity } from './event/event.ts'
import type { HealthState } from './health/rules.ts'
import type { MemberState } from './mesh/membership.ts'
import type { MemberStatus } from './query/fan-out.ts'

export interface MemberStats {
  /** Events ever logged here, by type and severity (from the store: they survive restarts). */
  eventTotals(): Array<{ type: string; severity: Severity; count: number }>
  /** Bytes of the member's store on disk. */
  storeSizeBytes(): number
  /** Events retention deleted since start, by why: older than --retention, over --retention-size. */
  retentionDeleted?(): { age: number; size: number }
  /** Range scans of the store open now (slices being served), each holding an iterator. */
  storeScansOpen(): number
  /** Rollup buckets found undecodable and skipped since the store opened. */
  corruptBuckets(): number
  /** Members of the table by state, this member included. */
  membersByState(): Record<MemberState, number>
  /** How many times members of the table changed state, by from and to state. */
  memberTransitions(): Array<{ from: MemberState; to: MemberState; count: number }>
  /** Requests peers made of this member, by protocol and outcome. */
  peerRequests(): Array<{ protocol: string; outcome: string; count: number }>
  /** Health notifications by target kind, alert scope and outcome (node/health/notify.ts). */
  notifications(): Array<{ kind: string; scope: string; outcome: string; count: number }>
  /** Membership messages and updates refused (undecodable, over the rate, badly signed, not allowed). */
  membershipDropped(): number
  /** Connections this member holds now, and how many of them go to its neighbours. */
  connections(): { all: number; neighbours: number }
  /** Membership messages and bytes, each way. */
  membershipTraffic(): {
    messages: { sent: number; received: number }
    bytes: { sent: number; received: number }
  }
  /** The host collector's latest sample; undefined when it is off or has not sampled yet. */
  hostSample(): HostSample | undefined
  /** This member's health and the array's, as this member sees it. */
  health(): HealthReading
  /** The memory budget's parts: what each holds now and its limit, bytes (see memory.ts). */
  memory(): MemoryReading
}

export interface MemoryReading {
  budget: number
  /** What RocksDB holds; table readers are outside the block cache, so the three add up. */
  store: { blockCache: number; memtables: number; tableReaders: number }
  storeLimits: { blockCache: number; memtables: number }
  /** V8's heap size limit, as the heap flags set it. */
  heapLimit: number
  /** Bytes of requests in flight (bodies, queued events, pages) and their share. */
  requests: { used: number; limit: number }
}

export type QueryKind = 'events' | 'export' | 'rollups' | 'lookup'

export interface MemberRecorder {
  /** A durable ingest request: its duration and how many events it stored. */
  ingest(seconds: number, events: number): void
  /**
   * A query answered as coordinator (for a client) or as member (for a
   * peer); for a coordinator's answer given in full, whether it was partial
   * (some member's part missing).
   */
  query(role: 'coordinator' | 'member', kind: QueryKind, seconds: number, partial?: boolean): void
  /** A member that did not answer a coordinator, by the row's status. */
  memberFailure(status: Exclude<MemberStatus, 'ok'>): void
  /** An OTLP logs request: records stored and refused, attributes that did not fit, bodies and values cut. */
  otlp(outcome: {
    stored: number
    refused: number
    droppedAttributes: number
    truncated: number
  }): void
}

/**
 * The member's recorder: it keeps the two counts a member reports to the
 * others (/chorus/stats/2) and passes every observation on to the recorders
 * attached (the exporter's), so the parts that observe can be built before
 * whoever listens.
 */
export interface Recorder extends MemberRecorder {
  /** Events stored by ingest since start. */
  readonly ingestedEvents: number
  /** Queries this member coordinated since start. */
  readonly queries: number
  /** Answers this member coordinated over the last ANSWERS_WINDOW_MS, and how many were partial. */
  recentAnswers(): RecentAnswers
  /** Passes every later observation on to `recorder` too. */
  attach(recorder: MemberRecorder): void
}

/** How far back recentAnswers() looks. */
export const ANSWERS_WINDOW_MS = 15 * 60_000
/** Its slots: the window moves a minute at a time. */
const ANSWER_SLOT_MS = 60_000

export interface RecentAnswers {
  windowSeconds: number
  /** Pages, exports and rollups answered in full (lookups and streams are not counted). */
  total: number
  partial: number
}

/** `now` times the answers' window: a monotonic clock, so a step of the wall clock moves nothing. */
export function createRecorder(now: () => number = () => performance.now()): Recorder {
  const attached: MemberRecorder[] = []
  let ingestedEvents = 0
  let queries = 0
  // One slot per minute of the window: [minute, answers, partial answers].
  const slots: Array<[number, number, number]> = []
  const slotCount = ANSWERS_WINDOW_MS / ANSWER_SLOT_MS
  const recent = () => {
    const oldest = Math.floor(now() / ANSWER_SLOT_MS) - slotCount + 1
    while (slots.length > 0 && (slots[0] as [number, number, number])[0] < oldest) slots.shift()
    return slots
  }
  return {
    get ingestedEvents() {
      return ingestedEvents
    },
    get queries() {
      return queries
    },
    attach(recorder) {
      attached.push(recorder)
    },
    ingest(seconds, events) {
      ingestedEvents += events
      for (const r of attached) r.ingest(seconds, events)
    },
    recentAnswers() {
      let total = 0
      let partial = 0
      for (const [, answers, partials] of recent()) {
        total += answers
        partial += partials
      }
      return { windowSeconds: ANSWERS_WINDOW_MS / 1000, total, partial }
    },
    query(role, kind, seconds, partial) {
      if (role === 'coordinator') queries++
      if (partial !== undefined) {
        const minute = Math.floor(now() / ANSWER_SLOT_MS)
        const window = recent()
        let slot = window.at(-1)
        if (slot === undefined || slot[0] !== minute) {
          slot = [minute, 0, 0]
          window.push(slot)
        }
        slot[1]++
        if (partial) slot[2]++
      }
      for (const r of attached) r.query(role, kind, seconds, partial)
    },
    memberFailure(status) {
      for (const r of attached) r.memberFailure(status)
    },
    otlp(outcome) {
      for (const r of attached) r.otlp(outcome)
    },
  }
}

/** This member's health and the array's as it sees them, and each rule in force. */
export interface HealthReading {
  /** This member's name (the `member` label). */
  name: string
  member: HealthState
  array: HealthState
  /** Every rule in force: member rules as this member judges itself, array rules as it judges the array. */
  rules: Array<{ rule: string; kind: 'member' | 'array'; state: HealthState; firing: boolean }>
}

/** The parts a member's readings come from, as far as the readings need them. */
export interface StatsParts {
  log: {
    totals(): Array<{ type: string; severity: number; count: number }>
    sizeBytes(): number
    memory(): MemoryReading['store']
    readonly openScans: number
    readonly corruptBuckets: number
  }
  membership: {
    table(): Array<{ state: MemberState }>
    transitions(): Array<{ from: MemberState; to: MemberState; count: number }>
  }
  mesh: {
    counters: {
      membershipDropped: number
      membershipMessages: { sent: number; received: number }
      membershipBytes: { sent: number; received: number }
      peerRequests: Array<{ protocol: string; outcome: string; count: number }>
    }
    connections(): { all: number; neighbours: number }
  }
  collector?: { latest(): HostSample | undefined }
  health: () => HealthReading
  notifications?: () => Array<{ kind: string; scope: string; outcome: string; count: number }>
  /** The budget's division and the requests' gate. */
  memory: {
    plan: { budget: number; blockCacheBytes: number; memtableBytes: number }
    gate: { readonly used: number; readonly limit: number }
    heapLimit: () => number
  }
  severityOf: (rank: number) => Severity
  /** Events retention deleted since start, by why; none when absent. */
  retentionDeleted?: () => { age: number; size: number }
}

/** The member's readings (MemberStats) from its parts. */
export function createMemberStats(parts: StatsParts): MemberStats {
  return {
    eventTotals: () =>
      parts.log
        .totals()
        .map((t) => ({ type: t.type, severity: parts.severityOf(t.severity), count: t.count })),
    storeSizeBytes: () => parts.log.sizeBytes(),
    retentionDeleted: () => parts.retentionDeleted?.() ?? { age: 0, size: 0 },
    storeScansOpen: () => parts.log.openScans,
    corruptBuckets: () => parts.log.corruptBuckets,
    membersByState: () => {
      const counts: Record<MemberState, number> = {
        alive: 0,
        suspect: 0,
        dead: 0,
        left: 0,
        conflict: 0,
      }
      for (const entry of parts.membership.table()) counts[entry.state]++
      return counts
    },
    memberTransitions: () => parts.membership.transitions(),
    peerRequests: () => parts.mesh.counters.peerRequests.map((r) => ({ ...r })),
    notifications: () => parts.notifications?.() ?? [],
    membershipDropped: () => parts.mesh.counters.membershipDropped,
    connections: () => parts.mesh.connections(),
    membershipTraffic: () => ({
      messages: { ...parts.mesh.counters.membershipMessages },
      bytes: { ...parts.mesh.counters.membershipBytes },
    }),
    hostSample: () => parts.collector?.latest(),
    health: parts.health,
    memory: () => {
      const { plan, gate } = parts.memory
      return {
        budget: plan.budget,
        store: parts.log.memory(),
        storeLimits: { blockCache: plan.blockCacheBytes, memtables: plan.memtableBytes },
        heapLimit: parts.memory.heapLimit(),
        requests: { used: gate.used, limit: gate.limit },
      }
    },
  }
}
