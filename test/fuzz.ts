// Fuzzing shared by the test suite (a few thousand cases) and the dedicated
// script test/bench/fuzz.ts (npm run fuzz, 100,000 and more): random,
// truncated, corrupted and oversized input into every protocol decoder and
// the HTTP ingest parser must produce nothing but the documented errors.
// The rollup path too: stored and received buckets (decodeBucket), and the
// query parameters of GET /v1/rollups, which answer 200 or 400, never 500.

import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { DEFAULT_EVENT_LIMITS } from '../node/event/event.ts'
import { createHealthConfig, type HealthConfig, sealHealthConfig } from '../node/health/config.ts'
import { DEFAULT_RULES } from '../node/health/rules.ts'
import { createOnError } from '../node/http/errors.ts'
import { createRollupRoutes } from '../node/http/rollups.ts'
import { createIngest, DEFAULT_INGEST_LIMITS } from '../node/ingest/ingest.ts'
import {
  decodeLogsRequest,
  encodeLogsRequest,
  mapLogsRequest,
  OtlpDecodeError,
} from '../node/ingest/otlp.ts'
import { createRootLogger } from '../node/log.ts'
import { createSigner, verifySignature } from '../node/mesh/signatures.ts'
import { encodeStoredFields } from '../node/store/codec.ts'
import type { EventLog } from '../node/store/event-log.ts'
import {
  addEvent,
  copyBucket,
  decodeBucket,
  emptyBucket,
  encodeBucket,
  mergeBucket,
  quantile,
} from '../node/store/rollup.ts'
import {
  type Announcement,
  decodeAnnouncement,
  decodeAnswer,
  decodeGroupAnswer,
  decodeGroupRequest,
  decodeLookupReply,
  decodeLookupRequest,
  decodeMore,
  decodeReplicaAck,
  decodeReplicaMessage,
  decodeReplicaRequest,
  decodeRollupAnswer,
  decodeRollupRequest,
  decodeSettings,
  decodeSettingsRequest,
  decodeSignedAccusation,
  decodeSignedAnnouncement,
  decodeSliceRequest,
  decodeStats,
  decodeStatsRequest,
  decodeSwim,
  encodeAccusation,
  encodeAnnouncement,
  encodeBatches,
  encodeGroupRequest,
  encodeGroupTrailer,
  encodeReplicaAck,
  encodeReplicaBatches,
  encodeReplicaCaughtUp,
  encodeReplicaHead,
  encodeReplicaRequest,
  encodeRollupRequest,
  encodeRollupSeries,
  encodeSettings,
  encodeSignedAccusation,
  encodeSignedAnnouncement,
  encodeSliceRequest,
  encodeStats,
  encodeSwim,
} from '../protocol/index.ts'

export const DECODERS: Array<[string, (bytes: Uint8Array) => unknown]> = [
  ['slice request', decodeSliceRequest],
  ['slice answer', decodeAnswer],
  ['lookup request', decodeLookupRequest],
  ['lookup reply', decodeLookupReply],
  ['announcement', decodeAnnouncement],
  ['grant', decodeMore],
  ['rollup request', decodeRollupRequest],
  ['rollup answer', decodeRollupAnswer],
  ['stats request', decodeStatsRequest],
  ['stats', decodeStats],
  ['membership message', decodeSwim],
  ['signed accusation', decodeSignedAccusation],
  ['settings request', decodeSettingsRequest],
  ['group request', decodeGroupRequest],
  ['group answer', decodeGroupAnswer],
  ['settings', decodeSettings],
  ['signed announcement', decodeSignedAnnouncement],
  ['replica request', decodeReplicaRequest],
  ['replica message', decodeReplicaMessage],
  ['replica ack', decodeReplicaAck],
]

const INGEST_ERRORS = new Set([
  'InvalidInputError',
  'LimitExceededError',
  'UnsupportedMediaTypeError',
])

const ANNOUNCEMENT: Announcement = {
  peerId: '12D3KooWATU2e9goADgbYTNdziuiBSk4HNyTumrMwB8VxiBLjWkm',
  name: 'a',
  addrs: ['/ip4/127.0.0.1/tcp/1'],
  http: '127.0.0.1:2',
  version: '1',
  seq: 1,
  startedAt: 1,
  sentAt: 2,
  health: 'ok',
  incarnation: 0,
  beat: 1,
  leaving: false,
  settings: '3:0123456789abcdef',
  skewMs: -12,
}
const SIGNED = (a: Announcement) =>
  encodeSignedAnnouncement(encodeAnnouncement(a), new Uint8Array(64).fill(7))

/** A bucket with values of both signs, zero and a wide range of magnitudes. */
function sampleBucket(): Uint8Array {
  const bucket = emptyBucket()
  for (const [i, v] of [1, -2.5, 0, 1e-9, 1e15, -1e15, 42].entries()) addEvent(bucket, `id${i}`, v)
  return encodeBucket(bucket)
}

/** Valid messages to truncate and corrupt: the fuzzer's seeds. */
const SEEDS: Uint8Array[] = [
  encodeSliceRequest({
    fromMs: 1,
    toMs: 2,
    reverse: false,
    types: ['a.b', 'c.*'],
    minSeverity: 1,
    limit: 10,
    text: 'x',
    origin: '12D3KooWxyz',
  }),
  encodeReplicaRequest({ origin: '12D3KooWxyz', afterSeq: 7, afterId: new Uint8Array(16) }),
  encodeReplicaHead(9, 1_700_000_000_000),
  encodeReplicaAck(9),
  ...encodeReplicaBatches(
    [
      {
        id: new Uint8Array(16).fill(1),
        value: encodeStoredFields({ type: 'a.b', severity: 2, value: 1.5, attrs: { k: true } }),
      },
    ],
    3,
  ),
  encodeReplicaCaughtUp(3),
  ...encodeBatches([
    {
      id: new Uint8Array(16),
      value: encodeStoredFields({
        type: 'a.b',
        severity: 1,
        message: 'hello',
        attrs: { k: 'v', n: 1 },
      }),
    },
  ]),
  encodeSwim({
    kind: 'sync',
    sentAt: 5,
    digest: 'abc',
    updates: [SIGNED(ANNOUNCEMENT), SIGNED({ ...ANNOUNCEMENT, name: 'b' })],
  }),
  encodeSwim({
    kind: 'ping',
    probe: 7,
    sentAt: 5,
    updates: [
      encodeSignedAccusation(
        encodeAccusation({
          subject: ANNOUNCEMENT.peerId,
          startedAt: 1,
          incarnation: 2,
          dead: false,
          accuser: 'b',
        }),
        new Uint8Array(64).fill(3),
      ),
    ],
  }),
  encodeSwim({ kind: 'ping-req', probe: 8, target: ANNOUNCEMENT.peerId, updates: [] }),
  encodeSwim({ kind: 'nack', probe: 8 }),
  (() => {
    const slice = { fromMs: 1, toMs: 2, reverse: false, types: ['a.*'], minSeverity: 0, limit: 10 }
    return encodeGroupRequest(
      {
        slice,
        members: [
          { peerId: ANNOUNCEMENT.peerId, hwm: 3 },
          { peerId: 'b', hwm: undefined },
        ],
        deadlineMs: 1000,
      },
      encodeSliceRequest(slice),
    )
  })(),
  encodeGroupTrailer({
    more: true,
    rows: [
      { peerId: ANNOUNCEMENT.peerId, status: 'ok', ms: 3, error: undefined, hwm: 9 },
      { peerId: 'b', status: 'timed_out', ms: 1000, error: 'late', hwm: undefined },
    ],
  }),
  encodeSettings([['health-rules', new TextEncoder().encode('{"body":"{}","signature":"AA=="}')]]),
  encodeAnnouncement(ANNOUNCEMENT),
  SIGNED(ANNOUNCEMENT),
  encodeRollupRequest({
    fromMs: 0,
    toMs: 60_000,
    resolution: 0,
    stepMs: 10_000,
    types: [],
    minSeverity: 0,
    byType: true,
    bySeverity: false,
  }),
  ...encodeRollupSeries([
    { type: 'a.b', severity: 1, buckets: [{ t: 0, bucket: sampleBucket() }] },
    { buckets: [{ t: 10_000, bucket: sampleBucket() }] },
  ]),
  encodeStats({
    ingestedEvents: 1,
    queries: 2,
    storeSizeBytes: 3,
    eventTotals: [{ type: 'a', severity: 1, count: 4 }],
  }),
]

/** Bytes: random, or a seed truncated, corrupted or grown. */
export const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 4096 }),
  fc
    .tuple(fc.constantFrom(...SEEDS), fc.nat(), fc.nat(), fc.nat({ max: 255 }))
    .map(([seed, cut, at, value]) => {
      const copy = Uint8Array.from(seed.subarray(0, Math.max(1, cut % (seed.byteLength + 1))))
      copy[at % copy.byteLength] = value
      return copy
    }),
  fc.tuple(fc.constantFrom(...SEEDS), fc.uint8Array({ maxLength: 64 })).map(([seed, tail]) => {
    const out = new Uint8Array(seed.byteLength + tail.byteLength)
    out.set(seed)
    out.set(tail, seed.byteLength)
    return out
  }),
)

/** Runs every decoder on `runs` inputs; returns how many cases ran. Throws on any undocumented error. */
export function fuzzDecoders(runs: number, seed?: number): number {
  let cases = 0
  fc.assert(
    fc.property(bytesArb, (bytes) => {
      for (const [name, decode] of DECODERS) {
        cases++
        try {
          decode(bytes)
        } catch (err) {
          if (!(err instanceof Error) || err.name !== 'ProtocolError') {
            throw new Error(`${name} threw ${(err as Error)?.name}: ${(err as Error)?.message}`)
          }
        }
      }
    }),
    seed === undefined ? { numRuns: runs } : { numRuns: runs, seed },
  )
  return cases
}

const noLog = {} as EventLog
const ingest = createIngest({
  log: noLog,
  limits: { ...DEFAULT_INGEST_LIMITS, maxEventsPerRequest: 1000 },
  eventLimits: DEFAULT_EVENT_LIMITS,
})

const jsonish = fc.oneof(
  fc.json(),
  fc.array(fc.jsonValue(), { maxLength: 20 }).map((v) => JSON.stringify(v)),
  fc
    .record({
      type: fc.string(),
      severity: fc.string(),
      value: fc.jsonValue(),
      attrs: fc.jsonValue(),
    })
    .map((v) => JSON.stringify(v)),
  fc.array(fc.json(), { maxLength: 30 }).map((lines) => lines.join('\n')),
  fc.string({ maxLength: 2000 }),
)

/** Feeds the ingest parser random bodies and content types; returns the number of cases. */
export function fuzzIngestParser(runs: number, seed?: number): number {
  let cases = 0
  fc.assert(
    fc.property(
      fc.oneof(
        jsonish.map((s) => new TextEncoder().encode(s)),
        fc.uint8Array({ maxLength: 2048 }),
      ),
      fc.constantFrom(
        'application/json',
        'application/x-ndjson',
        'text/plain',
        undefined,
        'application/xml',
        'application/json; charset=utf-8',
      ),
      (body, type) => {
        cases++
        try {
          ingest.parse(type, body)
        } catch (err) {
          if (!(err instanceof Error) || !INGEST_ERRORS.has(err.name)) {
            throw new Error(
              `ingest parser threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
            )
          }
        }
      },
    ),
    seed === undefined ? { numRuns: runs } : { numRuns: runs, seed },
  )
  return cases
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true })
const bucketNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(0, -1, 2 ** 53, Number.MAX_VALUE, -Number.MAX_VALUE, 1.79e308, 1e-320),
)

/** Stored-bucket bytes: random, a real bucket cut or corrupted, or the stored shape with hostile numbers. */
const bucketBytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc.tuple(fc.nat(), fc.nat(), fc.nat({ max: 255 })).map(([cut, at, value]) => {
    const seed = sampleBucket()
    const copy = Uint8Array.from(seed.subarray(0, Math.max(1, cut % (seed.byteLength + 1))))
    copy[at % copy.byteLength] = value
    return copy
  }),
  fc
    .tuple(
      fc.array(bucketNumber, { minLength: 6, maxLength: 6 }),
      fc.string({ maxLength: 40 }),
      bucketNumber,
      fc.array(fc.array(bucketNumber, { maxLength: 20 }), { minLength: 4, maxLength: 4 }),
    )
    .map(([[count, valued, sum, min, max, last], lastId, zero, bins]) =>
      packr.pack([count, valued, sum, min, max, last, lastId, zero, ...bins]),
    ),
)

/**
 * Decodes random buckets as a member reads its store and a coordinator reads
 * a peer: only CorruptBucketError may come out, and a bucket that decodes
 * encodes, decodes again, merges (twice over, sums staying finite) and
 * answers quantiles. Returns the number of cases.
 */
export function fuzzBuckets(runs: number, seed?: number): number {
  let cases = 0
  fc.assert(
    fc.property(bucketBytesArb, (bytes) => {
      cases++
      let bucket: ReturnType<typeof decodeBucket>
      try {
        bucket = decodeBucket(bytes)
      } catch (err) {
        if ((err as Error)?.name === 'CorruptBucketError') return
        throw new Error(`decodeBucket threw ${(err as Error)?.name}: ${(err as Error)?.message}`)
      }
      const merged = copyBucket(bucket)
      mergeBucket(merged, bucket)
      mergeBucket(merged, decodeBucket(encodeBucket(merged)))
      if (!Number.isFinite(merged.sum)) throw new Error(`a merged sum is ${merged.sum}`)
      for (const q of [0, 0.5, 0.99, 1]) {
        const v = quantile(merged, q)
        if (v !== null && Number.isNaN(v)) throw new Error(`quantile ${q} is NaN`)
      }
    }),
    seed === undefined ? { numRuns: runs } : { numRuns: runs, seed },
  )
  return cases
}

const ROLLUP_PARAM_NAMES = [
  'from',
  'to',
  'step',
  'type',
  'severity',
  'member',
  'by',
  'q',
  'timeout',
]
const rollupParamValue = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    '1h',
    '10s',
    '7s',
    '0ms',
    '1m',
    '10000d',
    '0',
    '-1',
    '1e309',
    '0.5,0.99',
    '0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1',
    'type,severity,member',
    'colour',
    'http.*',
    'a..b',
    'critical',
    '2026-11-26T10:00:00Z',
    '281474976710655',
    '99999999999999999999',
  ),
  fc.integer().map(String),
  fc.double().map(String),
)
/** A query string of GET /v1/rollups: known parameters (some repeated), now and then an unknown one. */
export const rollupQueryArb = fc
  .array(
    fc.tuple(
      fc.oneof(
        { weight: 9, arbitrary: fc.constantFrom(...ROLLUP_PARAM_NAMES) },
        fc.string({ maxLength: 8 }),
      ),
      rollupParamValue,
    ),
    { maxLength: 8 },
  )
  .map((pairs) => new URLSearchParams(pairs).toString())

/**
 * The rollup route over one fake member with a bucket in every step asked
 * for: random query strings answer 200 or 400, never anything else. Returns
 * the number of cases.
 */
export async function fuzzRollupParams(runs: number, seed?: number): Promise<number> {
  const bucket = decodeBucket(sampleBucket())
  const app = createRollupRoutes({
    rollupTargets: () => [
      {
        peerId: 'fuzzed',
        name: 'fuzzed',
        state: 'alive',
        rollup: async (request) => [
          {
            type: 'a.b',
            severity: 1,
            buckets: [{ t: request.fromMs, bucket: copyBucket(bucket) }],
          },
        ],
      },
    ],
    queryTimeoutMs: 1000,
    clock: () => 1_800_000_000_000,
    recorder: { ingest() {}, query() {}, memberFailure() {}, otlp() {} },
  })
  const logger = {
    error: (obj: { err?: Error }) => {
      throw obj.err ?? new Error('internal error')
    },
  } as unknown as Parameters<typeof createOnError>[0]
  app.onError(createOnError(logger))
  let cases = 0
  await fc.assert(
    fc.asyncProperty(rollupQueryArb, async (query) => {
      cases++
      const response = await app.request(`/v1/rollups?${query}`)
      await response.arrayBuffer()
      if (response.status !== 200 && response.status !== 400)
        throw new Error(`GET /v1/rollups?${query} answered ${response.status}`)
    }),
    seed === undefined ? { numRuns: runs } : { numRuns: runs, seed },
  )
  return cases
}

/** A real message cut short, one byte changed, and bytes added after it. */
function mutations(sample: Uint8Array) {
  return fc
    .tuple(fc.nat(), fc.nat(), fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 32 }))
    .map(([cut, at, value, tail]) => {
      const copy = Uint8Array.from(sample.subarray(0, Math.max(1, cut % (sample.byteLength + 1))))
      copy[at % copy.byteLength] = value
      return Uint8Array.from([...copy, ...tail])
    })
}

/**
 * The health-rules topic as a member takes it: random bytes, a real signed
 * set cut, corrupted or grown, and sets signed by a real key with hostile
 * versions and rules, fed to a member's rule-set store with real signature
 * checks. Every one must come to a documented outcome, none may throw, and
 * the version in force may rise by one at most per set adopted (no live
 * members vouch for a jump here). Returns the number of cases.
 */
export async function fuzzHealthConfig(runs: number, seed?: number): Promise<number> {
  const key = await generateKeyPair('Ed25519')
  const author = peerIdFromPrivateKey(key).toString()
  const sign = createSigner(key)
  const valid = (
    await sealHealthConfig({ version: 1, updatedBy: author, rules: DEFAULT_RULES }, sign)
  ).bytes
  const store = createHealthConfig({
    selfPeerId: 'self',
    load: async () => undefined,
    save: async () => {},
    changed: () => {},
    sign,
    verify: verifySignature,
    allowed: () => true,
    liveMembers: () => [],
    logger: createRootLogger({ level: 'silent' }),
  })
  await store.start()
  const outcomes = new Set<string>([
    'adopted',
    'not_newer',
    'malformed',
    'not_allowed',
    'bad_signature',
    'not_approved',
    'awaiting_majority',
  ])
  const mutated = mutations(valid)
  const signedSpec = fc.record({
    version: fc.oneof(
      fc.integer({ min: -5, max: 5 }),
      fc.constantFrom(2 ** 53 - 1, 2 ** 53, 1.5, Number.MAX_VALUE),
      fc.nat(),
    ),
    rules: fc.oneof(fc.constant(DEFAULT_RULES as unknown), fc.jsonValue()),
  })
  let cases = 0
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 2048 }).map((bytes) => ({ bytes })),
        mutated.map((bytes) => ({ bytes })),
        signedSpec,
      ),
      async (input) => {
        cases++
        const bytes =
          'bytes' in input
            ? input.bytes
            : (
                await sealHealthConfig(
                  {
                    version: input.version,
                    updatedBy: author,
                    rules: input.rules as HealthConfig['rules'],
                  },
                  sign,
                )
              ).bytes
        const before = store.current().version
        const outcome = await store.receive(bytes, author)
        if (!outcomes.has(outcome)) throw new Error(`undocumented outcome ${outcome}`)
        const after = store.current().version
        if (outcome === 'adopted' ? after !== before + 1 : after !== before)
          throw new Error(`version went from ${before} to ${after} on ${outcome}`)
      },
    ),
    seed === undefined ? { numRuns: runs } : { numRuns: runs, seed },
  )
  return cases
}

/** A valid OTLP logs request, as OTLP's JSON writes it, to cut, corrupt and grow. */
const OTLP_SAMPLE = {
  resourceLogs: [
    {
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'fuzzed' } }] },
      scopeLogs: [
        {
          scope: { name: 'scope', version: '1' },
          logRecords: [
            {
              timeUnixNano: '1700000000000000000',
              severityNumber: 13,
              body: { kvlistValue: { values: [{ key: 'a', value: { intValue: '7' } }] } },
              attributes: [
                { key: 'k', value: { arrayValue: { values: [{ doubleValue: 1.5 }] } } },
                { key: 'b', value: { bytesValue: 'AAEC' } },
              ],
              traceId: '5B8EFFF798038103D269B633813FC60C',
              eventName: 'Some Event',
            },
          ],
        },
      ],
    },
  ],
}

/**
 * OTLP logs requests, protobuf and JSON: random bytes, a real request cut,
 * corrupted or grown, and random JSON. Each either fails to decode with
 * OtlpDecodeError, or maps to records that are every one a valid event
 * (the mapping fits what it takes to the event's rules). Returns the
 * number of cases.
 */
export function fuzzOtlp(runs: number, seed?: number): number {
  const proto = encodeLogsRequest(OTLP_SAMPLE)
  const json = new TextEncoder().encode(JSON.stringify(OTLP_SAMPLE))
  let cases = 0
  fc.assert(
    fc.property(
      fc.oneof(
        fc
          .uint8Array({ maxLength: 2048 })
          .map((bytes) => ({ bytes, encoding: 'protobuf' as const })),
        mutations(proto).map((bytes) => ({ bytes, encoding: 'protobuf' as const })),
        mutations(json).map((bytes) => ({ bytes, encoding: 'json' as const })),
        fc.jsonValue().map((v) => ({
          bytes: new TextEncoder().encode(JSON.stringify(v)),
          encoding: 'json' as const,
        })),
      ),
      ({ bytes, encoding }) => {
        cases++
        let request: ReturnType<typeof decodeLogsRequest>
        try {
          request = decodeLogsRequest(bytes, encoding)
        } catch (err) {
          if (err instanceof OtlpDecodeError) return
          throw err
        }
        const { records } = mapLogsRequest(request, DEFAULT_EVENT_LIMITS, 1000)
        if (records.length === 0) return
        const checked = ingest.checkEvents(records.map((r) => r.event))
        const bad = checked.find((c) => Array.isArray(c))
        if (bad !== undefined)
          throw new Error(`a mapped OTLP record is not a valid event: ${JSON.stringify(bad)}`)
      },
    ),
    seed === undefined ? { numRuns: runs } : { numRuns: runs, seed },
  )
  return cases
}
