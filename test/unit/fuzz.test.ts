import { describe, expect, it } from 'vitest'
import {
  fuzzBuckets,
  fuzzDecoders,
  fuzzHealthConfig,
  fuzzIngestParser,
  fuzzOtlp,
  fuzzRollupParams,
} from '../fuzz.ts'

describe('fuzzing (a sample; npm run fuzz runs 100,000+ cases)', () => {
  it('every protocol decoder turns random, truncated, corrupted and grown input into ProtocolError only', () => {
    expect(fuzzDecoders(1500)).toBeGreaterThanOrEqual(15_000)
  })

  it('the ingest parser turns random bodies into its documented errors only', () => {
    expect(fuzzIngestParser(3000)).toBe(3000)
  })

  it('an OTLP logs request, random, cut or corrupted, fails to decode or maps to valid events only', () => {
    expect(fuzzOtlp(3000)).toBe(3000)
  })

  it('decodeBucket turns random and hostile buckets into CorruptBucketError only, and what it decodes merges to finite sums', () => {
    expect(fuzzBuckets(3000)).toBe(3000)
  })

  it('GET /v1/rollups answers random parameters with 200 or 400 only', async () => {
    expect(await fuzzRollupParams(400)).toBe(400)
  })

  it('a gossiped health rule set, random, corrupted or signed with hostile versions, comes to a documented outcome and raises the version by one at most', async () => {
    expect(await fuzzHealthConfig(500)).toBe(500)
  })
})
