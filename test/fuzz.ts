// Fuzzing shared by the test suite (a few thousand cases) and the dedicated
// script test/bench/fuzz.ts (npm run fuzz, 100,000 and more): random,
// truncated, corrupted and oversized input into every protocol decoder and
// the HTTP ingest parser must produce nothing but the documented errors.

import fc from 'fast-check'
import { DEFAULT_EVENT_LIMITS } from '../node/event/event.ts'
import { createIngest, DEFAULT_INGEST_LIMITS } from '../node/ingest/ingest.ts'
import { encodeStoredFields } from '../node/store/codec.ts'
import type { EventLog } from '../node/store/event-log.ts'
import {
  type Announcement,
  decodeAnnouncement,
  decodeAnswer,
  decodeLookupReply,
  decodeLookupRequest,
  decodeMore,
  decodePeers,
  decodePeersRequest,
  decodeRollupAnswer,
  decodeRollupRequest,
  decodeSliceRequest,
  decodeStats,
  decodeStatsRequest,
  encodeAnnouncement,
  encodeBatches,
  encodePeers,
  encodeRollupRequest,
  encodeSliceRequest,
  encodeStats,
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
  ['peers request', decodePeersRequest],
  ['peers', decodePeers],
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
  leaving: false,
  suspects: [],
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
  }),
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
  encodePeers([ANNOUNCEMENT, { ...ANNOUNCEMENT, name: 'b', suspects: [ANNOUNCEMENT.peerId] }]),
  encodeAnnouncement(ANNOUNCEMENT),
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
