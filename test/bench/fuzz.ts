// The long fuzzing run: npm run fuzz [-- --runs 20000]. Every protocol
// decoder (the rollup request and answer among them), stored buckets, the
// HTTP ingest parser, the rollup query parameters and health rule sets as
// gossip brings them, then a live member fed
// random bodies and rollup queries over HTTP. Prints the cases run and the heap before and after; exits
// non-zero on the first undocumented error.

import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import fc from 'fast-check'
import { createMember } from '../../node/index.ts'
import {
  DECODERS,
  fuzzBuckets,
  fuzzDecoders,
  fuzzHealthConfig,
  fuzzIngestParser,
  fuzzOtlp,
  fuzzRollupParams,
  rollupQueryArb,
} from '../fuzz.ts'
import { removeTempDirs, testConfig } from '../helpers.ts'
import { printTable } from './lib.ts'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20000' } } })
const RUNS = Number(values.runs)
const mib = () => Math.round(process.memoryUsage().heapUsed / 1048576)

const heapBefore = mib()
const decoded = fuzzDecoders(RUNS)
const parsed = fuzzIngestParser(RUNS)
const buckets = fuzzBuckets(RUNS)
const rollupParams = await fuzzRollupParams(Math.min(RUNS, 20_000))
const healthRules = await fuzzHealthConfig(RUNS)
const otlp = fuzzOtlp(RUNS)

// A live member: random bodies over HTTP, then a valid request still succeeds.
const member = await createMember({
  ...(await testConfig('fuzzed')),
  listen: ['/ip4/127.0.0.1/tcp/0'],
})
const statuses = new Map<number, number>()
let http = 0
await fc.assert(
  fc.asyncProperty(
    fc.string({ maxLength: 500 }),
    fc.constantFrom('application/json', 'application/x-ndjson', 'text/plain'),
    async (body, type) => {
      const response = await member.app.request('/v1/events', {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      })
      await response.arrayBuffer()
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
      http++
      if (![201, 400, 413, 415].includes(response.status))
        throw new Error(`HTTP ${response.status} for ${JSON.stringify(body)}`)
    },
  ),
  { numRuns: Math.min(RUNS, 5000) },
)
// Rollup queries on the live member, over the events the fuzzing stored.
let rollupHttp = 0
await fc.assert(
  fc.asyncProperty(rollupQueryArb, async (query) => {
    const response = await member.app.request(`/v1/rollups?${query}`)
    await response.arrayBuffer()
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
    rollupHttp++
    if (![200, 400].includes(response.status))
      throw new Error(`HTTP ${response.status} for GET /v1/rollups?${query}`)
  }),
  { numRuns: Math.min(RUNS, 5000) },
)
// OTLP bodies over HTTP: random and cut protobuf and JSON, plain and gzip.
let otlpHttp = 0
await fc.assert(
  fc.asyncProperty(
    fc.uint8Array({ maxLength: 1024 }),
    fc.constantFrom('application/x-protobuf', 'application/json'),
    fc.boolean(),
    async (bytes, type, gzip) => {
      const response = await member.app.request('/v1/logs', {
        method: 'POST',
        headers: { 'content-type': type, ...(gzip ? { 'content-encoding': 'gzip' } : {}) },
        body: gzip ? gzipSync(bytes) : bytes,
      })
      await response.arrayBuffer()
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
      otlpHttp++
      if (![200, 400, 413].includes(response.status))
        throw new Error(`HTTP ${response.status} for POST /v1/logs`)
    },
  ),
  { numRuns: Math.min(RUNS, 5000) },
)
const ok = await member.app.request('/v1/events', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{"type":"after.fuzz"}',
})
if (ok.status !== 201) throw new Error(`the member stopped serving: ${ok.status}`)
await member.stop()
await removeTempDirs()
;(globalThis as { gc?: () => void }).gc?.()

printTable('Fuzzing', [
  { target: `protocol decoders (${DECODERS.length})`, cases: decoded },
  { target: 'ingest parser', cases: parsed },
  { target: 'stored buckets (decodeBucket)', cases: buckets },
  { target: 'rollup query parameters', cases: rollupParams },
  { target: 'health rule sets from gossip', cases: healthRules },
  { target: 'OTLP logs requests (decode and map)', cases: otlp },
  { target: 'HTTP ingest on a live member', cases: http },
  { target: 'HTTP rollups on a live member', cases: rollupHttp },
  { target: 'HTTP OTLP logs on a live member', cases: otlpHttp },
  {
    target: 'total',
    cases:
      decoded + parsed + buckets + rollupParams + healthRules + otlp + http + rollupHttp + otlpHttp,
  },
])
process.stdout.write(
  `\nHTTP statuses: ${JSON.stringify(Object.fromEntries(statuses))}\nheap: ${heapBefore} MiB before, ${mib()} MiB after\n`,
)
