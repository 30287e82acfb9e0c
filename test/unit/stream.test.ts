// Answers rendered piece by piece: the bytes must be those of one
// JSON.stringify of the whole answer, whatever its size.

import { describe, expect, it } from 'vitest'
import { objectJson } from '../../node/http/stream.ts'

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(stream).text()
}

describe('objectJson', () => {
  it('writes the bytes of JSON.stringify, its list item by item, in chunks', async () => {
    const series = Array.from({ length: 5000 }, (_, i) => ({
      key: { type: `t.${i}`, 'é"\\': i },
      buckets: [{ t: i, count: i % 7, sum: i / 3, quantiles: { '0.5': null } }],
    }))
    const answer = {
      step: '10s',
      series,
      skipped: undefined,
      members: [{ ok: true }],
      partial: false,
    }
    const written = await text(objectJson(answer, 'series'))
    expect(written.length).toBeGreaterThan(64 * 1024)
    expect(written).toBe(JSON.stringify(answer))
    expect(await text(objectJson({ series: [], partial: true }, 'series'))).toBe(
      '{"series":[],"partial":true}',
    )
  })
})
