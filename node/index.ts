// Wires a member together: `createMember(config)` returns an object with
// start(), stop() and the few operations the CLI and tests need. Nothing else
// lives here; each part is built by its own factory.

import type { KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getHeapStatistics } from 'node:v8'
import { createClusterExporter } from '../exporter/cluster.ts'
import { createExporter } from '../exporter/index.ts'
import type { MemberCounters } from '../protocol/index.ts'
import { parseAdminPublicKey } from './approval.ts'
import { createCollector } from './collect/host.ts'
import type { MemberConfig } from './config.ts'
import { severityOfRank } from './event/event.ts'
import { memberTag } from './event/id.ts'
import { createHealthConfig } from './health/config.ts'
import { createMemberHealth, maxClockOffsetMs } from './health/evaluator.ts'
import { createNotifier, type FiringRule } from './health/notify.ts'
import { encodeHealth, healthReport } from './health/report.ts'
import { type ArrayRule, describeRule, type MemberRule, type Rule } from './health/rules.ts'
import { createApp } from './http/app.ts'
import { isLoopback } from './http/auth.ts'
import { createCredentials } from './http/credentials.ts'
import type { HttpServer } from './http/server.ts'
import { listen } from './http/server.ts'
import { createIngest } from './ingest/ingest.ts'
import { component, createRootLogger } from './log.ts'
import { createMemoryGate } from './memory.ts'
import { defaultTiming } from './mesh/membership.ts'
import { createMesh } from './mesh/mesh.ts'
import { createSigner, verifySignature } from './mesh/signatures.ts'
import { createArrayView } from './query/array-view.ts'
import { createCoordinator, createGroupHandler } from './query/coordinator.ts'
import { createRollupHandler, rollupTotal } from './query/rollups.ts'
import { createLookupHandler, createSliceHandler } from './query/slice.ts'
import { createSelfTarget, createTargets } from './query/targets.ts'
import { createReplicator } from './replica/replicator.ts'
import { createReplicasSetting } from './replica/setting.ts'
import { arraySettings, type Setting, type SettingComponents } from './settings.ts'
import { createMemberStats, createRecorder } from './stats.ts'
import { FROM_BACKUP_RECORD } from './store/backup.ts'
import { openEventLog, STORE_FORMAT, sinceBoot } from './store/event-log.ts'
import { IDENTITY_FILE, loadOrCreateIdentity } from './store/identity.ts'
import { type Retention, startRetention } from './store/retention.ts'

export { VERSION } from './version.ts'

import type { Member, MemberInit } from './member.ts'
import { VERSION } from './version.ts'

export type { Member, MemberInit }

/** Opens the member's store and identity; start() then listens. */
export async function createMember(config: MemberConfig, init: MemberInit = {}): Promise<Member> {
  const clock = init.clock ?? Date.now
  const root = init.logger ?? createRootLogger({ level: config.logLevel, member: config.name })
  const logger = component(root, 'member')
  const { name } = config
  const dir = join(config.dataDir, 'chorus')
  const identity = await loadOrCreateIdentity(dir)
  const tag = memberTag(identity.peerId)
  const log = await openEventLog({
    dir: join(dir, 'store'),
    tag,
    clock,
    logger: component(root, 'store'),
    maxClockJumpMs: config.maxClockJumpMs,
    monotonic: init.monotonic ?? (init.clock === undefined ? sinceBoot : init.clock),
    memory: config.memory,
  })
  // The requests' share of the memory budget: ingest bodies, queued events, pages.
  const requestMemory = createMemoryGate(config.memory.requestBytes)
  const recorder = createRecorder()
  const ingest = createIngest({
    log,
    limits: config.ingestLimits,
    eventLimits: config.eventLimits,
    clock,
  })
  const collector =
    config.collectIntervalMs > 0
      ? createCollector({
          dataDir: config.dataDir,
          intervalMs: config.collectIntervalMs,
          submit: (events) => ingest.submit(events),
          clock,
          logger: component(root, 'collector'),
        })
      : undefined

  // What this member answers, to peers over the network and to itself directly.
  const handlers = {
    slice: createSliceHandler({ log, behind: (origin) => replicator.behind(origin) }),
    lookup: createLookupHandler({ log }),
    rollup: createRollupHandler({ log }),
    counters: (origin?: string): MemberCounters =>
      origin === undefined
        ? {
            ingestedEvents: recorder.ingestedEvents,
            queries: recorder.queries,
            storeSizeBytes: Math.round(log.sizeBytes()),
            eventTotals: log.totals(),
          }
        : // Another member's events held here: only their totals are known.
          { ingestedEvents: 0, queries: 0, storeSizeBytes: 0, eventTotals: log.heldTotals(origin) },
  }
  let server: HttpServer | undefined
  const mesh = await createMesh({
    privateKey: identity.privateKey,
    peerId: identity.peerId,
    name,
    version: VERSION,
    // Liveness is judged in real time, whatever clock stamps the events.
    startedAt: Date.now(),
    listen: config.listen,
    join: config.join,
    allowPeers: config.allowPeers,
    ...(config.swarmKey === undefined ? {} : { swarmKey: config.swarmKey }),
    timing: defaultTiming(config.probeIntervalMs, config.forgetAfterMs),
    http: () => server?.address ?? '',
    seq: () => log.lastSeq,
    serve: {
      ...handlers,
      // A sub-coordinator asks its group through the same targets as a coordinator.
      group: (request, options) => groupHandler(request, options),
      replicas: {
        space: (origin) => replicator.source.space(origin),
        appended: (origin, signal) => replicator.source.appended(origin, signal),
        acked: (holder, origin, seq) => replicator.source.acked(holder, origin, seq),
        admits: (peer, origin) => replicator.source.admits(peer, origin),
        announced: (origin) => replicator.source.announced(origin),
      },
    },
    clock: Date.now,
    logger: component(root, 'mesh'),
    recorder,
  })
  const { membership } = mesh

  // The array's settings, the same on every member (see settings.ts): the
  // health rules and the replica count.
  const allowedPeers = new Set(config.allowPeers)
  const settingComponents = (record: string): SettingComponents => ({
    selfPeerId: identity.peerId,
    load: () => log.getRecord(record),
    save: (bytes) => log.putRecord(record, bytes),
    changed: () => mesh.announce(),
    sign: createSigner(identity.privateKey),
    verify: verifySignature,
    allowed: (peerId) => allowedPeers.size === 0 || allowedPeers.has(peerId),
    ...(config.adminPublicKey === undefined
      ? {}
      : { adminKey: parseAdminPublicKey(config.adminPublicKey) as KeyObject }),
    liveMembers: () =>
      membership
        .table()
        .filter((e) => !e.self && e.state === 'alive')
        .map((e) => e.member),
    logger: component(root, 'settings'),
  })
  const healthConfig = createHealthConfig(settingComponents('health-config'))
  const replicasSetting = createReplicasSetting(config.replicas, settingComponents('replicas'))
  mesh.attachSettings(arraySettings([healthConfig, replicasSetting] as Setting<string, unknown>[]))
  const rules = (): Rule[] => healthConfig.current().rules
  const arrayRules = () => rules().filter((r): r is ArrayRule => r.kind === 'array')
  const health = createMemberHealth({
    rules: () => rules().filter((r): r is MemberRule => r.kind === 'member'),
    inputs: {
      rollup: (types, minSeverity, fromMs, toMs) =>
        rollupTotal(log, types, minSeverity, fromMs, toMs),
      maxClockOffsetMs: () => maxClockOffsetMs(membership.table()),
      clockJumpMs: () => log.clockJumpMs,
      clock,
      log: (event) => ingest.submit([event]),
    },
    logger: component(root, 'health'),
  })
  // The member announces its health as its rules last found it.
  health.onEvaluated(() =>
    mesh.setHealth(
      encodeHealth(
        health.state(),
        health.fired().map((f) => f.rule),
      ),
    ),
  )
  const healthOfArray = () => healthReport(membership.table(), arrayRules())

  // Health out: rules that fire and clear, to Alertmanager and webhooks.
  const notifier = createNotifier({
    ...config.notify,
    memberName: name,
    selfPeerId: identity.peerId,
    firing: () => {
      const byName = new Map(rules().map((r) => [r.name, r]))
      const own = health.fired().flatMap((f): FiringRule[] => {
        const rule = byName.get(f.rule)
        return rule === undefined
          ? []
          : [
              {
                rule: f.rule,
                kind: 'member',
                state: rule.state,
                value: f.value,
                description: describeRule(rule),
              },
            ]
      })
      const array = healthOfArray().array.rules.flatMap((fired): FiringRule[] => {
        const rule = byName.get(fired)
        return rule === undefined
          ? []
          : [{ rule: fired, kind: 'array', state: rule.state, description: describeRule(rule) }]
      })
      return [...own, ...array]
    },
    aliveMembers: () =>
      membership
        .table()
        .filter((e) => e.state === 'alive')
        .map((e) => e.member),
    ...(init.notifyResendMs === undefined ? {} : { resendMs: init.notifyResendMs }),
    ...(init.notifyQueueSize === undefined ? {} : { queueSize: init.notifyQueueSize }),
    ...(init.notifyTimeoutMs === undefined ? {} : { timeoutMs: init.notifyTimeoutMs }),
    logger: component(root, 'notify'),
  })
  health.onEvaluated(() => notifier.update())
  membership.onChange(() => notifier.update())

  // A store the backup command wrote says so until its first start settles
  // where new events begin (node/store/backup.ts).
  const fromBackup = ((await log.getRecord(FROM_BACKUP_RECORD))?.byteLength ?? 0) > 0
  // Copies of every member's events on `replicas` members (node/replica/).
  const replicator = createReplicator({
    selfPeerId: identity.peerId,
    log,
    replicas: () => replicasSetting.current().replicas,
    rereplicateAfterMs: config.rereplicateAfterMs,
    table: () => membership.table(),
    onChange: (listener) => membership.onChange(listener),
    peer: (peerId, peerName) => mesh.peer(peerId, peerName),
    // A member that was here before (its key kept) with a new, empty store,
    // or one restored from a backup: the others may hold its later events.
    restore: !identity.created && (log.lastSeq === 0 || fromBackup) && config.replicas > 1,
    restoreSettled: () => log.putRecord(FROM_BACKUP_RECORD, new Uint8Array()),
    ...(init.restoreWaitMs === undefined ? {} : { restoreWaitMs: init.restoreWaitMs }),
    logger: component(root, 'replica'),
  })

  // Queries: this member and its peers, asked through one fan-out; a dead
  // member through a holder of its events (pages, lookups, rollups, and the
  // array's metrics).
  const selfTarget = createSelfTarget({
    peerId: identity.peerId,
    name,
    tag,
    ...handlers,
    nameOf: (peerId) => membership.get(peerId)?.name ?? peerId,
  })
  const targets = createTargets(selfTarget, () => mesh.peers(), {
    holder: (origin) => replicator.servingHolder(origin),
    restoring: () => replicator.restoring() !== undefined,
  })
  const coordinator = createCoordinator({ targets, recorder, memory: requestMemory })
  const groupHandler = createGroupHandler(targets, requestMemory)

  // Metrics: the member's own, and the array's from one target.
  const exporter = createExporter({
    stats: createMemberStats({
      log,
      membership,
      mesh,
      notifications: () => notifier.counts(),
      ...(collector === undefined ? {} : { collector }),
      health: () => {
        const array = healthOfArray().array
        const fired = new Set(health.fired().map((f) => f.rule))
        const arrayFired = new Set(array.rules)
        return {
          name,
          member: health.state(),
          array: array.state,
          rules: rules().map((r) => ({
            rule: r.name,
            kind: r.kind,
            state: r.state,
            firing: r.kind === 'member' ? fired.has(r.name) : arrayFired.has(r.name),
          })),
        }
      },
      memory: {
        plan: config.memory,
        gate: requestMemory,
        heapLimit: () => getHeapStatistics().heap_size_limit,
      },
      severityOf: severityOfRank,
      // Read when scraped: retention starts with the member.
      retentionDeleted: () => retention?.deleted() ?? { age: 0, size: 0 },
    }),
    typeLimit: config.metricsTypeLimit,
  })
  recorder.attach(exporter.recorder)
  const cluster = createClusterExporter({
    source: {
      ...createArrayView({
        // This member's own counters even while it restores its events.
        targets: () => targets().map((t) => (t.peerId === identity.peerId ? selfTarget : t)),
        table: () => membership.table(),
        onChange: (listener) => membership.onChange(listener),
        clock,
      }),
      ruleStates: () => new Map(rules().map((r) => [r.name, r.state])),
    },
    typeLimit: config.metricsTypeLimit,
  })

  const credentials = createCredentials({
    tokens: config.tokens,
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    ...(config.warnings === undefined ? {} : { warnings: config.warnings }),
    logger: component(root, 'credentials'),
  })
  credentials.onTls((tls) => server?.setTls(tls))
  let started = false
  let stopping: Promise<void> | undefined
  let retention: Retention | undefined
  const app = createApp({
    ingest,
    coordinator,
    ingestLimits: config.ingestLimits,
    eventLimits: config.eventLimits,
    queryTimeoutMs: config.queryTimeoutMs,
    clock,
    logger: component(root, 'http'),
    ready: () =>
      started &&
      stopping === undefined &&
      log.writeError === undefined &&
      replicator.restoring() === undefined,
    version: VERSION,
    membership,
    selfPeerId: identity.peerId,
    rollupTargets: targets,
    tailTargets: targets,
    tokens: credentials.tokens,
    loopbackOnly: isLoopback(config.http.host),
    maxConcurrentQueries: config.maxConcurrentQueries,
    health: healthOfArray,
    answers: () => recorder.recentAnswers(),
    healthConfig,
    replicasSetting,
    recorder,
    metrics: (accept) => exporter.metrics(accept),
    clusterMetrics: (accept) => cluster.metrics(accept),
    requestMemory,
    ...(config.accessLog ? { accessLog: component(root, 'access') } : {}),
    replicated: (seq, signal) => replicator.replicated(seq, signal),
    holders: (origin) => replicator.holderRows(origin),
    restoring: () => replicator.restoring() !== undefined,
    // A backup (POST /v1/backup): the store as of now, and the identity key.
    backup: async () => {
      const snapshot = log.snapshot()
      const header = {
        peerId: identity.peerId,
        name,
        version: VERSION,
        storeFormat: STORE_FORMAT,
        takenAt: Date.now(),
        lastSeq: log.lastSeq,
      }
      try {
        const key = await readFile(join(dir, IDENTITY_FILE))
        return { header, files: [{ name: IDENTITY_FILE, bytes: key }], snapshot }
      } catch (err) {
        await snapshot.close()
        throw err
      }
    },
  })

  return {
    config,
    peerId: identity.peerId,
    name,
    get httpAddress() {
      return server?.address ?? ''
    },
    get url() {
      return `${config.tls === undefined ? 'http' : 'https'}://${server?.address ?? ''}`
    },
    app,
    log,
    ingest,
    coordinator,
    mesh,
    health,
    healthConfig,
    replicasSetting,
    collector,
    membership,
    replicator,
    p2pAddrs: () => mesh.addrs(),
    reloadCredentials: (load) => credentials.reload(load),
    async start() {
      if (started) return
      try {
        retention = startRetention({
          log,
          retentionMs: config.retentionMs,
          rollupRetentionMs: config.rollupRetentionMs,
          ...(config.retentionSizeBytes === undefined
            ? {}
            : { sizeBytes: config.retentionSizeBytes }),
          idempotencyTtlMs: config.ingestLimits.idempotencyTtlMs,
          clock,
          logger: component(root, 'retention'),
          ...(init.retentionIntervalMs === undefined
            ? {}
            : { intervalMs: init.retentionIntervalMs }),
        })
        server = await listen(app.fetch, config.http.host, config.http.port, config.tls)
        // The kept settings are in force before any member can offer others.
        await healthConfig.start()
        await replicasSetting.start()
        await mesh.start()
        replicator.start()
        cluster.start()
        collector?.start()
        health.start()
        notifier.start()
      } catch (err) {
        await server?.close(0)
        await replicator.stop()
        await mesh.stop({ leaving: false }).catch(() => {})
        await retention?.stop()
        await log.close()
        throw err
      }
      started = true
      logger.info(
        {
          peerId: identity.peerId,
          http: server.address,
          p2p: mesh.addrs(),
          dataDir: config.dataDir,
        },
        'member started',
      )
    },
    stop() {
      stopping ??= (async () => {
        await server?.close()
        // Announce leaving only after the last request is answered: until
        // then the others may still ask this member for slices.
        cluster.stop()
        collector?.stop()
        await health.stop()
        await notifier.stop()
        await replicator.stop()
        await mesh
          .stop({ leaving: true })
          .catch((err: unknown) => logger.warn({ err }, 'mesh stop failed'))
        await retention?.stop()
        await ingest.close()
        await log.close()
        logger.info('member stopped')
      })()
      return stopping
    },
  }
}
