// What a member tells the outside about itself, without knowing who listens:
// readings taken on demand (MemberStats) and observations pushed as they
// happen (MemberRecorder). exporter/ turns both into Prometheus metrics;
// nothing under node/ imports prom-client.

import type { HostSample } from './collect/host.ts'
import type { Severity } from './event/event.ts'
import type { HealthState } from './health/rules.ts'
import type { MemberState } from './mesh/membership.ts'
import type { MemberStatus } from './query/coordinator.ts'

export interface MemberStats {
  /** Events ever logged here, by type and severity (from the store: they survive restarts). */
  eventTotals(): Array<{ type: string; severity: Severity; count: number }>
  /** Bytes of the member's store on disk. */
  storeSizeBytes(): number
  /** Range scans of the store open now (slices being served), each holding an iterator. */
  storeScansOpen(): number
  /** Members of the table by state, this member included. */
  membersByState(): Record<MemberState, number>
  /** How many times members of the table changed state, by from and to state. */
  memberTransitions(): Array<{ from: MemberState; to: MemberState; count: number }>
  /** Requests peers made of this member, by protocol and outcome. */
  peerRequests(): Array<{ protocol: string; outcome: string; count: number }>
  /** Announcements dropped by the topic validator. */
  announcementsDropped(): number
  /** The host collector's latest sample; undefined when it is off or has not sampled yet. */
  hostSample(): HostSample | undefined
  /** This member's health and the array's, as this member sees it. */
  health(): { member: HealthState; array: HealthState }
}

export type QueryKind = 'events' | 'rollups' | 'lookup'

export interface MemberRecorder {
  /** A durable ingest request: its duration and how many events it stored. */
  ingest(seconds: number, events: number): void
  /** A query answered as coordinator (for a client) or as member (for a peer). */
  query(role: 'coordinator' | 'member', kind: QueryKind, seconds: number): void
  /** A member that did not answer a coordinator, by the row's status. */
  memberFailure(status: Exclude<MemberStatus, 'ok'>): void
}
