import { describe, expect, it } from 'vitest'
import { fuzzDecoders, fuzzIngestParser } from '../fuzz.ts'

describe('fuzzing (a sample; npm run fuzz runs 100,000+ cases)', () => {
  it('every protocol decoder turns random, truncated, corrupted and grown input into ProtocolError only', () => {
    expect(fuzzDecoders(1500)).toBeGreaterThanOrEqual(15_000)
  })

  it('the ingest parser turns random bodies into its documented errors only', () => {
    expect(fuzzIngestParser(3000)).toBe(3000)
  })
})
