// Ingest that shippers can use as they are: bodies compressed with gzip,
// deflate or zstd (the limits apply to the decoded bytes, so a small body
// that inflates past them is refused, not held), and severities as
// logging libraries name them.

import { deflateSync, gzipSync, zstdCompressSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import { planMemory } from '../../node/memory.ts'
import { type ApiBody, metricSample, removeTempDirs, testConfig } from '../helpers.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

async function member(): Promise<Member> {
  const config = await testConfig('encoded')
  const m = await createMember({
    ...config,
    memory: { ...planMemory(128 * 1024 ** 2), requestBytes: 8 * 1024 ** 2 },
    ingestLimits: { ...config.ingestLimits, maxBodyBytes: 1024 * 1024 },
  })
  await m.start()
  members.push(m)
  return m
}

async function post(m: Member, body: Uint8Array | string, encoding?: string) {
  const response = await fetch(`${m.url}/v1/events`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-ndjson',
      ...(encoding === undefined ? {} : { 'content-encoding': encoding }),
    },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  })
  return { status: response.status, body: (await response.json()) as ApiBody }
}

const ndjson = (count: number, type = 'encoded.test') =>
  Array.from({ length: count }, (_, i) => JSON.stringify({ type, message: `e${i}` })).join('\n')

describe('a compressed ingest body', () => {
  it('is taken with gzip, deflate or zstd, stored decoded, and the limit applies to the decoded bytes', async () => {
    const m = await member()
    const codecs: Array<[string, (b: Buffer) => Buffer]> = [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
      ['zstd', zstdCompressSync],
    ]
    for (const [encoding, compress] of codecs) {
      const answer = await post(
        m,
        compress(Buffer.from(ndjson(3, `encoded.${encoding}`))),
        encoding,
      )
      expect(answer.status, encoding).toBe(201)
      expect(answer.body.ids).toHaveLength(3)
      const page = (await (
        await fetch(`${m.url}/v1/events?from=0&type=encoded.${encoding}`)
      ).json()) as {
        events: Array<{ message: string }>
      }
      expect(page.events.map((e) => e.message)).toEqual(['e0', 'e1', 'e2'])
    }
    // Names in any case, with identity beside them.
    expect((await post(m, gzipSync(Buffer.from(ndjson(1))), 'GZIP')).status).toBe(201)
    expect((await post(m, ndjson(1), 'identity')).status).toBe(201)
  })

  it('is refused with 413 when it inflates past the limit, without holding it, and 400 or 415 when it cannot be decoded; nothing stored', async () => {
    const m = await member()
    // 64 MiB of zeros in about 64 KiB: far past the 1 MiB limit once decoded.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 })
    expect(bomb.byteLength).toBeLessThan(1024 * 1024)
    const heapBefore = process.memoryUsage().heapUsed
    const refused = await post(m, bomb, 'gzip')
    expect(refused.status).toBe(413)
    expect(refused.body.error.code).toBe('limit_exceeded')
    expect(refused.body.error.details).toEqual([
      { field: 'body', message: 'at most 1048576 bytes once decoded' },
    ])
    // Decoding stopped at the limit: the heap did not take the 64 MiB, and
    // the requests' share of the budget is free again.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024)
    const metrics = await (await fetch(`${m.url}/metrics`)).text()
    expect(metricSample(metrics, 'chorus_requests_memory_bytes')).toBe(0)

    const corrupt = await post(m, Buffer.from('this is not gzip'), 'gzip')
    expect(corrupt.status).toBe(400)
    expect(corrupt.body.error.details.map((d) => d.field)).toEqual(['body'])
    const cut = gzipSync(Buffer.from(ndjson(50)))
    const truncated = await post(m, cut.subarray(0, cut.byteLength - 20), 'gzip')
    expect(truncated.status).toBe(400)
    const unknown = await post(m, Buffer.from(ndjson(1)), 'br')
    expect(unknown.status).toBe(415)
    expect(unknown.body.error.details.map((d) => d.field)).toEqual(['content-encoding'])
    const twice = await post(m, gzipSync(gzipSync(Buffer.from(ndjson(1)))), 'gzip, gzip')
    expect(twice.status).toBe(415)
    expect(m.log.lastSeq).toBe(0)
  })
})

describe('severities as shippers name them', () => {
  it('are stored as one of the five, and a query takes them too', async () => {
    const m = await member()
    const names = ['WARNING', 'err', 'Fatal', 'trace', 'notice', 'INFO']
    const body = names.map((severity) => JSON.stringify({ type: 'sev.test', severity })).join('\n')
    expect((await post(m, body)).status).toBe(201)
    const page = (await (await fetch(`${m.url}/v1/events?from=0&type=sev.test`)).json()) as {
      events: Array<{ severity: string }>
    }
    expect(page.events.map((e) => e.severity)).toEqual([
      'warn',
      'error',
      'critical',
      'debug',
      'info',
      'info',
    ])
    const warnings = (await (
      await fetch(`${m.url}/v1/events?from=0&type=sev.test&severity=Warning`)
    ).json()) as { events: unknown[] }
    expect(warnings.events).toHaveLength(3)
    const refused = await post(m, JSON.stringify({ type: 'sev.test', severity: 'loud' }))
    expect(refused.status).toBe(400)
    expect(refused.body.error.details[0]?.field).toBe('events[0].severity')
  })
})

describe('partial ingest (?partial=true)', () => {
  it('stores the valid events, answers 200 with an id for each and null for the others, and names what was wrong; a retry with the key stores nothing', async () => {
    const m = await member()
    const lines = [
      JSON.stringify({ type: 'partial.ok', message: 'first' }),
      JSON.stringify({ type: 'Not A Type' }),
      '{"type": "partial.ok", "message": "cut',
      JSON.stringify({ type: 'partial.ok', severity: 'loud' }),
      JSON.stringify({ type: 'partial.ok', message: 'last', severity: 'WARNING' }),
    ].join('\n')
    const send = async (query: string, key?: string) => {
      const response = await fetch(`${m.url}/v1/events${query}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-ndjson',
          ...(key === undefined ? {} : { 'idempotency-key': key }),
        },
        body: lines,
      })
      return {
        status: response.status,
        body: (await response.json()) as {
          ids: Array<string | null>
          errors: Array<{ index: number; field: string; rule: string }>
        } & ApiBody,
      }
    }
    // All or nothing by default.
    const whole = await send('')
    expect(whole.status).toBe(400)
    expect(m.log.lastSeq).toBe(0)

    const first = await send('?partial=true', 'k1')
    expect(first.status).toBe(200)
    expect(first.body.ids.map((id) => id !== null)).toEqual([true, false, false, false, true])
    expect(first.body.errors.map((e) => [e.index, e.field])).toEqual([
      [1, 'type'],
      [2, 'event'],
      [3, 'severity'],
    ])
    expect(first.body.errors[1]?.rule).toMatch(/line 3 is not valid JSON/)
    const page = (await (await fetch(`${m.url}/v1/events?from=0&type=partial.ok`)).json()) as {
      events: Array<{ id: string; message: string; severity: string }>
    }
    expect(page.events.map((e) => [e.id, e.message, e.severity])).toEqual([
      [first.body.ids[0], 'first', 'info'],
      [first.body.ids[4], 'last', 'warn'],
    ])

    // The same request again with its key: the same answer, nothing stored.
    const again = await send('?partial=true', 'k1')
    expect(again.status).toBe(200)
    expect(again.body.ids).toEqual(first.body.ids)
    expect(m.log.lastSeq).toBe(2)
    // Every event valid: as without partial.
    const clean = await fetch(`${m.url}/v1/events?partial=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'partial.clean' }),
    })
    expect(clean.status).toBe(201)
  })
})
