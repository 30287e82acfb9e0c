// A coordinator bounds a member's rollup answer while reading it: a hostile
// member that streams more series, buckets or bytes than the protocol allows
// ends as an `error` row, not as unbounded memory in the coordinator.

import type { PeerId } from '@libp2p/interface'
import { lpStream, streamPair } from '@libp2p/utils'
import { describe, expect, it } from 'vitest'
import type { Host } from '../../node/mesh/host.ts'
import { remoteRollup } from '../../node/mesh/protocols/rollup.ts'
import { queryRollups } from '../../node/query/rollups.ts'
import { addEvent, emptyBucket, encodeBucket } from '../../node/store/rollup.ts'
import {
  encodeRollupSeries,
  encodeTrailer,
  MAX_ROLLUP_ANSWER_BYTES,
  MAX_ROLLUP_SERIES,
  type RollupRequest,
  type RollupSeries,
} from '../../protocol/index.ts'

const REQUEST: RollupRequest = {
  fromMs: 0,
  toMs: 600_000,
  resolution: 0,
  stepMs: 60_000,
  types: [],
  minSeverity: 0,
  byType: true,
  bySeverity: false,
}

/** A host whose every dial reaches `serve`, which answers like a (hostile) member. */
async function hostAnswering(
  serve: (lp: ReturnType<typeof lpStream>) => Promise<void>,
): Promise<{ host: Host; written: () => number }> {
  let written = 0
  const host = {
    async dialProtocol() {
      const [outbound, inbound] = await streamPair()
      const lp = lpStream(inbound, { maxDataLength: 4 * 1024 * 1024 })
      void (async () => {
        await lp.read()
        const counting = {
          write: async (bytes: Uint8Array) => {
            written += bytes.byteLength
            await lp.write(bytes)
          },
        } as ReturnType<typeof lpStream>
        await serve(counting)
      })().catch(() => {})
      return outbound
    },
  } as unknown as Host
  return { host, written: () => written }
}

const peer = { toString: () => 'hostile' } as unknown as PeerId

function oneValueBucket(): Uint8Array {
  const b = emptyBucket()
  addEvent(b, 'x', 1)
  return encodeBucket(b)
}

describe('a rollup answer from a member', () => {
  it('is read in full when it keeps to the limits, pieces of a series merged', async () => {
    const bucket = oneValueBucket()
    const { host } = await hostAnswering(async (lp) => {
      const series: RollupSeries[] = [
        { type: 'a', buckets: [{ t: 0, bucket }] },
        {
          type: 'a',
          buckets: [
            { t: 0, bucket },
            { t: 60_000, bucket },
          ],
        },
      ]
      for (const m of encodeRollupSeries(series)) await lp.write(m)
      await lp.write(encodeTrailer({ hwm: 0, scanned: 3, more: false }))
    })
    const series = await remoteRollup({ host, id: peer, name: 'h' }, REQUEST, {
      signal: AbortSignal.timeout(5000),
    })
    expect(series.map((s) => [s.type, s.buckets.map((b) => [b.t, b.bucket.count])])).toEqual([
      [
        'a',
        [
          [0, 2],
          [60_000, 1],
        ],
      ],
    ])
  })

  it(`is refused once it holds more than ${MAX_ROLLUP_SERIES} series`, async () => {
    const { host } = await hostAnswering(async (lp) => {
      for (let chunk = 0; chunk < 3; chunk++) {
        const series = Array.from({ length: 5000 }, (_, i) => ({
          type: `t${chunk}.${i}`,
          buckets: [],
        }))
        for (const m of encodeRollupSeries(series)) await lp.write(m)
      }
      await lp.write(encodeTrailer({ hwm: 0, scanned: 0, more: false }))
    })
    await expect(
      remoteRollup({ host, id: peer, name: 'h' }, REQUEST, { signal: AbortSignal.timeout(5000) }),
    ).rejects.toMatchObject({
      name: 'ProtocolError',
      message: `h sent more than ${MAX_ROLLUP_SERIES} series of rollups`,
    })
  })

  it('is cut off, not buffered, once it is over its byte or bin budget, and the member gets an error row', async () => {
    const bucket = oneValueBucket()
    // 1 MiB messages of one series, its one step sent again and again: tiny
    // on the wire, merged in place, but every decoded copy costs sketch bins.
    const piece: RollupSeries = {
      type: 'a',
      buckets: Array.from({ length: 20_000 }, () => ({ t: 0, bucket })),
    }
    const messages = encodeRollupSeries([piece])
    const { host, written } = await hostAnswering(async (lp) => {
      for (let i = 0; i < 1000; i++) for (const m of messages) await lp.write(m)
      await lp.write(encodeTrailer({ hwm: 0, scanned: 0, more: false }))
    })
    const answer = await queryRollups(
      [
        {
          peerId: 'hostile',
          name: 'h',
          state: 'alive',
          rollup: (request, options) =>
            remoteRollup({ host, id: peer, name: 'h' }, request, options),
        },
      ],
      { request: REQUEST, members: [], byMember: false, quantiles: [], timeoutMs: 10_000 },
      '1m',
    )
    expect(answer.members).toMatchObject([{ name: 'h', status: 'error' }])
    expect(answer.members[0]?.error).toMatch(
      /^h sent more than \d+ (bytes|sketch bins) of rollups$/,
    )
    expect(answer.partial).toBe(true)
    expect(answer.series).toEqual([])
    // The member was stopped well before it could send its 1000 rounds.
    expect(written()).toBeLessThan(MAX_ROLLUP_ANSWER_BYTES + 4 * 1024 * 1024)
  })
})
