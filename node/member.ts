// What a member is to the CLI and the tests: the object createMember
// returns (node/index.ts) and what it may be given besides its configuration.

import type { Collector } from './collect/host.ts'
import type { MemberConfig } from './config.ts'
import type { HealthConfigStore } from './health/config.ts'
import type { MemberHealth } from './health/evaluator.ts'
import type { App } from './http/app.ts'
import type { CredentialsSource } from './http/credentials.ts'
import type { Ingest } from './ingest/ingest.ts'
import type { Logger } from './log.ts'
import type { Membership } from './mesh/membership.ts'
import type { Mesh } from './mesh/mesh.ts'
import type { Coordinator } from './query/coordinator.ts'
import type { Replicator } from './replica/replicator.ts'
import type { ReplicasSetting } from './replica/setting.ts'
import type { EventLog } from './store/event-log.ts'

export interface MemberInit {
  /**
   * Clock that stamps events (and ages them for retention), in ms; injectable
   * so tests can step it. Membership always uses real time. Default `Date.now`.
   */
  clock?: () => number
  /**
   * The store's reference for jumps of `clock` (see --max-clock-jump), in ms.
   * Default time since boot, or `clock` itself when a clock is injected, so
   * a stepped test clock is followed.
   */
  monotonic?: () => number
  /** Root logger; default one from the config's level. */
  logger?: Logger
  /** How often retention runs, in ms; tests shorten it. Default RETENTION_INTERVAL_MS (1 min). */
  retentionIntervalMs?: number
  /** Longest wait for another member at a restore of a replaced data dir, ms; tests shorten it. Default 30 s. */
  restoreWaitMs?: number
  /** How often an alert that still fires is sent again, ms (node/health/notify.ts). Default 60 s. */
  notifyResendMs?: number
  /** Notifications waiting per target at most. Default 256. */
  notifyQueueSize?: number
  /** One notification request's deadline, ms. Default 5 s. */
  notifyTimeoutMs?: number
}

export interface Member {
  /** The configuration it was made with. */
  readonly config: MemberConfig
  readonly peerId: string
  readonly name: string
  /** `host:port` the HTTP API listens on; set after start(). */
  readonly httpAddress: string
  /** `http://host:port`, or `https://` with TLS. */
  readonly url: string
  readonly app: App
  readonly log: EventLog
  readonly ingest: Ingest
  readonly coordinator: Coordinator
  readonly mesh: Mesh
  /** This member's health rules and state. */
  readonly health: MemberHealth
  /** The array-wide health rule set as this member holds it. */
  readonly healthConfig: HealthConfigStore
  /** The array-wide replica count as this member holds it. */
  readonly replicasSetting: ReplicasSetting
  /** The host collector; undefined with --no-collect. */
  readonly collector: Collector | undefined
  readonly membership: Membership
  /** Copies of members' events: placement, streams, acknowledgements (node/replica/). */
  readonly replicator: Replicator
  /** The multiaddrs this member listens on, each ending in /p2p/<peer id>. */
  p2pAddrs(): string[]
  start(): Promise<void>
  /** Graceful: stop accepting, finish requests in flight, write what was queued, close the store. Idempotent. */
  stop(): Promise<void>
  /**
   * Puts in force the tokens and TLS certificate of a configuration read
   * again by `load` (SIGHUP); when `load` throws or the certificate is bad,
   * logs why and keeps those in force. True if it changed them.
   */
  reloadCredentials(load: () => CredentialsSource): boolean
}
