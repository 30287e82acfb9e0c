// The events API of one member, through its Hono app and a real store.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { UI_PATHS } from '../../node/http/ui.ts'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { type ApiBody, removeTempDirs, testConfig } from '../helpers.ts'

let member: Member
let now: number

beforeEach(async () => {
  now = 1_800_000_000_000
  member = await createMember(await testConfig('alpha'), { clock: () => now })
})

afterEach(async () => {
  await member.stop()
  await removeTempDirs()
})

async function post(body: string, type = 'application/json', headers: Record<string, string> = {}) {
  const response = await member.app.request('/v1/events', {
    method: 'POST',
    body,
    headers: { 'content-type': type, ...headers },
  })
  return { status: response.status, body: (await response.json()) as ApiBody }
}

async function get(path: string) {
  const response = await member.app.request(path)
  // biome-ignore lint/suspicious/noExplicitAny: answers of several shapes, checked by the assertions
  return { status: response.status, body: (await response.json()) as any }
}

async function page(params: Record<string, string | string[]>): Promise<ResultPage> {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) search.append(key, v)
  }
  const { status, body } = await get(`/v1/events?${search}`)
  expect(status, JSON.stringify(body)).toBe(200)
  return body as ResultPage
}

const ALL = { from: '0', to: String(2_000_000_000_000) }

describe('POST /v1/events', () => {
  it('stores every field and returns it by id and in result sets', async () => {
    const event = {
      type: 'app.login',
      severity: 'warn',
      message: 'user bob logged in from a new device',
      source: 'auth-service',
      value: 3.25,
      attrs: { user: 'bob', attempts: 2, mfa: true },
      time: '2026-11-26T10:00:00.123Z',
    }
    const created = await post(JSON.stringify(event))
    expect(created.status).toBe(201)
    const [id] = created.body.ids as [string]
    const byId = await get(`/v1/events/${id}`)
    expect(byId.status).toBe(200)
    expect(byId.body).toEqual({
      ...event,
      id,
      ts: now,
      member: member.peerId,
      memberName: 'alpha',
      seq: 1,
    })
    const set = await page(ALL)
    expect(set.events).toEqual([byId.body])
    expect(set.firstId).toBe(id)
    expect(set.lastId).toBe(id)
    expect(set.members).toEqual([
      { member: member.peerId, name: 'alpha', status: 'ok', count: 1, ms: expect.any(Number) },
    ])
    expect(set.partial).toBe(false)
  })

  it('takes a JSON array and NDJSON, answers ids in request order, and defaults severity to info', async () => {
    const array = await post(
      JSON.stringify([{ type: 'a.one' }, { type: 'a.two', severity: 'error' }]),
    )
    const ndjson = await post('{"type":"b.one"}\n\n{"type":"b.two"}\n', 'application/x-ndjson')
    expect(array.status).toBe(201)
    expect(ndjson.status).toBe(201)
    const ids = [...array.body.ids, ...ndjson.body.ids]
    const set = await page(ALL)
    expect(set.events.map((e) => [e.id, e.type, e.severity])).toEqual([
      [ids[0], 'a.one', 'info'],
      [ids[1], 'a.two', 'error'],
      [ids[2], 'b.one', 'info'],
      [ids[3], 'b.two', 'info'],
    ])
  })

  const invalid: Array<[string, string, string, number, string, string]> = [
    ['bad JSON', '{"type": "x"', 'application/json', 400, 'invalid_input', 'body'],
    [
      'a bad NDJSON line',
      '{"type":"x"}\n{"type": nope}\n',
      'application/x-ndjson',
      400,
      'invalid_input',
      'events[1]',
    ],
    [
      'a missing type',
      '[{"type":"ok"},{"message":"no type"}]',
      'application/json',
      400,
      'invalid_input',
      'events[1].type',
    ],
    [
      'a wrongly typed field',
      '{"type":"x","value":"12"}',
      'application/json',
      400,
      'invalid_input',
      'events[0].value',
    ],
    [
      'a bad severity',
      '{"type":"x","severity":"loud"}',
      'application/json',
      400,
      'invalid_input',
      'events[0].severity',
    ],
    [
      'a malformed type',
      '{"type":"Not A Type"}',
      'application/json',
      400,
      'invalid_input',
      'events[0].type',
    ],
    [
      'an unknown field',
      '{"type":"x","colour":"red"}',
      'application/json',
      400,
      'invalid_input',
      'events[0]',
    ],
    [
      'an oversized message',
      JSON.stringify({ type: 'x', message: 'm'.repeat(8193) }),
      'application/json',
      400,
      'invalid_input',
      'events[0].message',
    ],
    [
      'an oversized attribute',
      JSON.stringify({ type: 'x', attrs: { k: 'v'.repeat(1025) } }),
      'application/json',
      400,
      'invalid_input',
      'events[0].attrs.k',
    ],
    [
      'too many attributes',
      JSON.stringify({
        type: 'x',
        attrs: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])),
      }),
      'application/json',
      400,
      'invalid_input',
      'events[0].attrs',
    ],
    [
      'a reserved attribute name',
      '{"type":"x","attrs":{"__proto__":1}}',
      'application/json',
      400,
      'invalid_input',
      'events[0].attrs.__proto__',
    ],
    [
      'a nested attribute',
      JSON.stringify({ type: 'x', attrs: { k: { deep: 1 } } }),
      'application/json',
      400,
      'invalid_input',
      'events[0].attrs.k',
    ],
    [
      'too many events',
      JSON.stringify(Array.from({ length: 10_001 }, () => ({ type: 'x' }))),
      'application/json',
      413,
      'limit_exceeded',
      'events',
    ],
    ['no events', '[]', 'application/json', 400, 'invalid_input', 'events'],
    [
      'an unsupported media type',
      'type=x',
      'application/x-www-form-urlencoded',
      415,
      'unsupported_media_type',
      'content-type',
    ],
  ]
  for (const [what, body, type, status, code, field] of invalid) {
    it(`rejects ${what} with ${status} naming ${field}, and stores nothing`, async () => {
      await post(JSON.stringify({ type: 'before.bad' }))
      const seq = member.log.lastSeq
      const answer = await post(body, type)
      expect(answer.status).toBe(status)
      expect(answer.body.error.code).toBe(code)
      expect(answer.body.error.details.map((d: { field: string }) => d.field)).toContain(field)
      expect(answer.body.error.message).toMatch(/\S/)
      expect(member.log.lastSeq).toBe(seq)
      expect((await page(ALL)).events.map((e) => e.type)).toEqual(['before.bad'])
    })
  }

  it('rejects a body over the size limit with 413 before reading it all', async () => {
    await member.stop()
    const config = await testConfig('small', {})
    member = await createMember(
      { ...config, ingestLimits: { ...config.ingestLimits, maxBodyBytes: 4096 } },
      { clock: () => now },
    )
    const answer = await post(JSON.stringify([{ type: 'x', message: 'y'.repeat(5000) }]))
    expect(answer.status).toBe(413)
    expect(answer.body.error.code).toBe('limit_exceeded')
    expect(member.log.lastSeq).toBe(0)
  })

  it('answers a retried Idempotency-Key with the same ids and stores nothing again', async () => {
    const body = JSON.stringify([
      { type: 'pay.charge', value: 10 },
      { type: 'pay.charge', value: 20 },
    ])
    const first = await post(body, 'application/json', { 'idempotency-key': 'charge-42' })
    expect(first.status).toBe(201)
    const seq = member.log.lastSeq
    now += 60_000
    const again = await post(body, 'application/json', { 'idempotency-key': 'charge-42' })
    expect(again.status).toBe(201)
    expect(again.body.ids).toEqual(first.body.ids)
    expect(member.log.lastSeq).toBe(seq)
    const concurrent = await Promise.all(
      [1, 2, 3].map(() =>
        post(JSON.stringify({ type: 'pay.refund' }), 'application/json', {
          'idempotency-key': 'refund-7',
        }),
      ),
    )
    expect(new Set(concurrent.map((c) => JSON.stringify(c.body.ids))).size).toBe(1)
    expect(member.log.lastSeq).toBe(seq + 1)
    const conflict = await post('{"type":"pay.other"}', 'application/json', {
      'idempotency-key': 'charge-42',
    })
    expect(conflict.status).toBe(409)
    expect(conflict.body.error.code).toBe('idempotency_key_reused')
    expect(member.log.lastSeq).toBe(seq + 1)
  })

  it('forgets an Idempotency-Key after 24 hours', async () => {
    const body = '{"type":"job.run"}'
    const first = await post(body, 'application/json', { 'idempotency-key': 'nightly' })
    now += 24 * 3_600_000 + 1
    const later = await post(body, 'application/json', { 'idempotency-key': 'nightly' })
    expect(later.body.ids).not.toEqual(first.body.ids)
  })
})

describe('GET /v1/events', () => {
  async function seed(): Promise<string[]> {
    const lines = [
      { type: 'http.request', severity: 'debug', message: 'GET /' },
      { type: 'http.error', severity: 'error', message: 'Upstream TIMEOUT on /api' },
      { type: 'db.query', severity: 'info', message: 'select 1' },
      { type: 'http.request', severity: 'warn', message: 'slow GET /api' },
      { type: 'httpx.other', severity: 'critical', message: 'timeout elsewhere' },
    ]
    const ids: string[] = []
    for (const line of lines) {
      ids.push(...(await post(JSON.stringify(line))).body.ids)
      now += 1000
    }
    return ids
  }

  it('filters by exact type, type prefix, minimum severity, text and member', async () => {
    const ids = await seed()
    const types = (p: ResultPage) => p.events.map((e) => e.id)
    expect(types(await page({ ...ALL, type: 'http.request' }))).toEqual([ids[0], ids[3]])
    expect(types(await page({ ...ALL, type: 'http.*' }))).toEqual([ids[0], ids[1], ids[3]])
    expect(types(await page({ ...ALL, type: ['db.query', 'httpx.*'] }))).toEqual([ids[2], ids[4]])
    expect(types(await page({ ...ALL, type: 'db.query,http.error' }))).toEqual([ids[1], ids[2]])
    expect(types(await page({ ...ALL, severity: 'warn' }))).toEqual([ids[1], ids[3], ids[4]])
    expect(types(await page({ ...ALL, q: 'timeout' }))).toEqual([ids[1], ids[4]])
    expect(types(await page({ ...ALL, type: 'http.*', severity: 'error', q: 'upstream' }))).toEqual(
      [ids[1]],
    )
    expect(types(await page({ ...ALL, member: 'alpha' }))).toEqual(ids)
    expect(types(await page({ ...ALL, member: member.peerId }))).toEqual(ids)
    const other = await page({ ...ALL, member: 'nobody' })
    expect(other.events).toEqual([])
    expect(other.members).toEqual([])
  })

  it('covers [from, to) over ts, accepting RFC 3339, epoch ms and durations back from now', async () => {
    const ids = await seed() // ts = T, T+1s, ..., T+4s; now = T+5s
    const t = 1_800_000_000_000
    const ids1 = (p: ResultPage) => p.events.map((e) => e.id)
    expect(ids1(await page({ from: String(t + 1000), to: String(t + 3000) }))).toEqual([
      ids[1],
      ids[2],
    ])
    expect(
      ids1(
        await page({
          from: new Date(t + 3000).toISOString(),
          to: new Date(t + 4000).toISOString(),
        }),
      ),
    ).toEqual([ids[3]])
    expect(ids1(await page({ from: '2500ms' }))).toEqual([ids[3], ids[4]])
    expect(ids1(await page({}))).toEqual(ids) // default: the last 15 minutes up to now
    now += 16 * 60_000
    expect(ids1(await page({}))).toEqual([])
  })

  it('pages forward and back over 5,000 events, each exactly once and in order', async () => {
    const ids: string[] = []
    for (let batch = 0; batch < 5; batch++) {
      const body = Array.from({ length: 1000 }, (_, i) =>
        JSON.stringify({ type: `load.t${i % 7}`, value: i }),
      ).join('\n')
      ids.push(...(await post(body, 'application/x-ndjson')).body.ids)
      now += 1
    }
    expect(new Set(ids).size).toBe(5000)
    for (const order of ['asc', 'desc'] as const) {
      const expected = order === 'asc' ? ids : [...ids].reverse()
      const seen: string[] = []
      const pages: ResultPage[] = []
      let current = await page({ ...ALL, limit: '137', order })
      expect(current.prev).toBeNull()
      for (let i = 0; i < 100; i++) {
        pages.push(current)
        seen.push(...current.events.map((e) => e.id))
        expect(current.firstId).toBe(current.events[0]?.id)
        expect(current.lastId).toBe(current.events.at(-1)?.id)
        if (current.next === null) break
        current = await page({ cursor: current.next })
      }
      expect(seen).toEqual(expected)
      expect(pages.at(-1)?.events).toHaveLength(5000 % 137)
      // Walk back from the last page with prev.
      const back: string[] = []
      current = pages.at(-1) as ResultPage
      for (let i = 0; i < 100 && current.prev !== null; i++) {
        current = await page({ cursor: current.prev })
        back.unshift(...current.events.map((e) => e.id))
      }
      expect(current.prev).toBeNull()
      expect(back).toEqual(expected.slice(0, expected.length - (5000 % 137)))
    }
  })

  it('freezes a result set: events logged after its first page never enter its later pages', async () => {
    const first = (
      await post(JSON.stringify(Array.from({ length: 10 }, () => ({ type: 'set.before' }))))
    ).body.ids as string[]
    const p1 = await page({ ...ALL, limit: '4' })
    // Same millisecond as the first batch, and inside [from, to): only the
    // high-water mark can keep these out.
    await post(JSON.stringify(Array.from({ length: 5 }, () => ({ type: 'set.after' }))))
    const seen = [...p1.events]
    let next = p1.next
    while (next !== null) {
      const p = await page({ cursor: next, limit: '2', type: 'other.*' }) // the cursor's values win
      seen.push(...p.events)
      next = p.next
    }
    expect(seen.map((e) => e.id)).toEqual(first)
    // after=<id> starts a new set just past an id, with fresh marks.
    const tail = await page({ after: first.at(-1) as string })
    expect(tail.events.map((e) => e.type)).toEqual(Array(5).fill('set.after'))
    expect(tail.prev).toBeNull()
    const head = await page({ before: first[3] as string, order: 'desc', limit: '2' })
    expect(head.events.map((e) => e.id)).toEqual([first[2], first[1]])
  })

  it('answers 400 naming the parameter for bad limits, times, types, ids and cursors', async () => {
    const cases: Array<[string, string]> = [
      ['limit=0', 'limit'],
      ['limit=10001', 'limit'],
      ['limit=ten', 'limit'],
      ['from=yesterday', 'from'],
      ['to=2026-13-45T99:00:00Z', 'to'],
      ['from=10&to=5', 'from'],
      ['type=Bad Type', 'type'],
      ['severity=loud', 'severity'],
      ['order=sideways', 'order'],
      ['after=not-an-id', 'after'],
      ['cursor=garbage!', 'cursor'],
      ['cursor=AAAA', 'cursor'],
      ['timeout=forever', 'timeout'],
      ['colour=red', 'query'],
    ]
    for (const [query, field] of cases) {
      const { status, body } = await get(`/v1/events?${query}`)
      expect(status, query).toBe(400)
      expect(
        body.error.details.map((d: { field: string }) => d.field),
        query,
      ).toContain(field)
    }
  })
})

describe('GET /v1/events/:id', () => {
  it('answers 404 for an id of this member that does not exist and 400 for a malformed id', async () => {
    const [id] = (await post('{"type":"x"}')).body.ids as [string]
    const missing = `${id.slice(0, -1)}${id.endsWith('9') ? '8' : '9'}`
    const notFound = await get(`/v1/events/${missing}`)
    expect(notFound.status).toBe(404)
    expect(notFound.body.error.code).toBe('not_found')
    const malformed = await get('/v1/events/hello')
    expect(malformed.status).toBe(400)
    expect(malformed.body.error.details[0].field).toBe('id')
  })
})

describe('the app', () => {
  it('describes every route it serves in /openapi.json', async () => {
    const { status, body } = await get('/openapi.json')
    expect(status).toBe(200)
    const documented = new Set<string>()
    for (const [path, methods] of Object.entries(body.paths as Record<string, object>)) {
      for (const method of Object.keys(methods))
        documented.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`)
    }
    const served = member.app.routes
      // The dashboard's static files are not part of the API.
      .filter((r) => r.method !== 'ALL' && r.path !== '/openapi.json' && !UI_PATHS.includes(r.path))
      .map((r) => `${r.method} ${r.path}`)
    expect(served.length).toBeGreaterThan(4)
    for (const route of served) expect(documented, route).toContain(route)
  })

  it('answers liveness always and readiness once started, without asking anyone', async () => {
    expect((await get('/healthz')).status).toBe(200)
    expect((await get('/readyz')).status).toBe(503)
    await member.start()
    expect((await get('/readyz')).body).toEqual({ ready: true })
    const unknown = await get('/v2/nothing')
    expect(unknown.status).toBe(404)
    expect(unknown.body.error.code).toBe('route_not_found')
  })
})
