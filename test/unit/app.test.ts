// The HTTP app with a fake member: routes, validation and answers without
// RocksDB or libp2p. The member's parts are stand-ins that record what the
// routes asked of them.

import { describe, expect, it } from 'vitest'
import { DEFAULT_EVENT_LIMITS, type EventInput } from '../../node/event/event.ts'
import { DEFAULT_HEALTH_CONFIG } from '../../node/health/config.ts'
import { createApp } from '../../node/http/app.ts'
import { DEFAULT_INGEST_LIMITS } from '../../node/ingest/ingest.ts'
import { createRootLogger } from '../../node/log.ts'
import type { MemberEntry, Membership } from '../../node/mesh/membership.ts'
import type { QueryInput, ResultPage } from '../../node/query/coordinator.ts'
import type { ApiBody } from '../helpers.ts'

const PAGE: ResultPage = {
  events: [
    {
      id: '01M8C3SPGBYGR35JM900000002',
      ts: 1,
      member: 'peer-a',
      memberName: 'a',
      seq: 2,
      type: 'http.request',
      severity: 'warn',
    },
  ],
  firstId: '01M8C3SPGBYGR35JM900000002',
  lastId: '01M8C3SPGBYGR35JM900000002',
  next: null,
  prev: null,
  members: [{ member: 'peer-a', name: 'a', status: 'ok', count: 1, ms: 1 }],
  partial: false,
}

const SELF: MemberEntry = {
  member: 'peer-a',
  name: 'a',
  state: 'alive',
  lastSeen: 5,
  addrs: ['/ip4/127.0.0.1/tcp/7701'],
  http: '127.0.0.1:7700',
  seq: 2,
  offsetMs: 0,
  version: '0.1.0',
  health: 'ok',
  startedAt: 1,
  incarnation: 0,
  settings: '',
  self: true,
}

function fakeApp(ready = true) {
  const asked: QueryInput[] = []
  const stored: EventInput[][] = []
  const app = createApp({
    ingest: {
      parse: (_type, body) => {
        const parsed = JSON.parse(new TextDecoder().decode(body)) as EventInput | EventInput[]
        return Array.isArray(parsed) ? parsed : [parsed]
      },
      parsePartial: (_type, body) => {
        const parsed = JSON.parse(new TextDecoder().decode(body)) as EventInput | EventInput[]
        const events = Array.isArray(parsed) ? parsed : [parsed]
        return { count: events.length, events, indexes: events.map((_, i) => i), errors: [] }
      },
      checkEvents: (raw) => raw as EventInput[],
      submit: async (events) => {
        stored.push(events)
        return events.map((_, i) => `id-${i}`)
      },
      queued: 0,
      close: async () => {},
    },
    coordinator: {
      query: async (input) => {
        asked.push(input)
        return PAGE
      },
      open: async (input) => {
        asked.push(input)
        const { events, ...trailer } = PAGE
        return {
          events: (async function* () {
            yield events
          })(),
          trailer: () => trailer,
          close: async () => {},
        }
      },
      lookup: async () => PAGE.events[0] as ResultPage['events'][number],
    },
    ingestLimits: DEFAULT_INGEST_LIMITS,
    eventLimits: DEFAULT_EVENT_LIMITS,
    queryTimeoutMs: 2000,
    clock: () => 1_800_000_000_000,
    logger: createRootLogger({ level: 'silent' }),
    ready: () => ready,
    version: 'test',
    membership: { table: () => [SELF] } as unknown as Membership,
    selfPeerId: 'peer-a',
    rollupTargets: () => [],
    tailTargets: () => [],
    tokens: () => [],
    loopbackOnly: false,
    maxConcurrentQueries: 4,
    health: () => ({ array: { state: 'ok', rules: [] }, members: [] }),
    answers: () => ({ windowSeconds: 900, total: 0, partial: 0 }),
    healthConfig: { current: () => DEFAULT_HEALTH_CONFIG, put: async () => DEFAULT_HEALTH_CONFIG },
    replicasSetting: {
      current: () => ({ version: 0, updatedBy: null, replicas: 2 }),
      put: async (replicas) => ({ version: 1, updatedBy: 'fake', replicas }),
    },
    recorder: { ingest() {}, query() {}, memberFailure() {}, otlp() {} },
    metrics: async () => ({ contentType: 'text/plain', body: 'm 1\n' }),
    clusterMetrics: async () => ({ contentType: 'text/plain', body: 'c 1\n' }),
  })
  return { app, asked, stored }
}

describe('the HTTP app (a fake member)', () => {
  it('hands GET /v1/events to the coordinator as a parsed query and answers its page', async () => {
    const { app, asked } = fakeApp()
    const response = await app.request('/v1/events?from=0&to=1000&type=http.*&limit=5&order=desc')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual(PAGE)
    expect(asked).toHaveLength(1)
    expect(asked[0]?.query).toMatchObject({
      fromMs: 0,
      toMs: 1000,
      types: ['http.*'],
      limit: 5,
      order: 'desc',
    })
    expect(asked[0]?.timeoutMs).toBe(2000)
  })

  it('refuses a bad parameter with 400 naming it, and never asks the coordinator', async () => {
    const { app, asked } = fakeApp()
    const response = await app.request('/v1/events?limit=20000')
    expect(response.status).toBe(400)
    const body = (await response.json()) as ApiBody
    expect(body.error.details.map((d) => d.field)).toContain('limit')
    expect(asked).toHaveLength(0)
  })

  it('stores what POST /v1/events carries and answers the ids in order with 201', async () => {
    const { app, stored } = fakeApp()
    const response = await app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ type: 'a.b' }, { type: 'c.d' }]),
    })
    expect(response.status).toBe(201)
    expect(await response.json()).toEqual({ ids: ['id-0', 'id-1'] })
    expect(stored).toEqual([[{ type: 'a.b' }, { type: 'c.d' }]])
  })

  it('serves the dashboard under a same-origin security policy, with an ETag, and 304 without a body when the browser has it', async () => {
    const { app } = fakeApp()
    for (const path of ['/', '/ui/app.js', '/ui/vendor/uplot.js']) {
      const first = await app.request(path)
      expect(first.status, path).toBe(200)
      expect(first.headers.get('content-security-policy'), path).toContain("default-src 'self'")
      expect(first.headers.get('content-security-policy'), path).toContain("frame-ancestors 'none'")
      const etag = first.headers.get('etag') as string
      expect(etag, path).toMatch(/^"[\w-]{22}"$/)
      expect((await first.arrayBuffer()).byteLength, path).toBeGreaterThan(1000)
      const again = await app.request(path, { headers: { 'if-none-match': `"other", ${etag}` } })
      expect(again.status, path).toBe(304)
      expect(await again.text(), path).toBe('')
      const changed = await app.request(path, { headers: { 'if-none-match': '"other"' } })
      expect(changed.status, path).toBe(200)
    }
  })

  it('answers the table, readiness, metrics and unknown routes', async () => {
    const { app } = fakeApp(false)
    const members = (await (await app.request('/v1/members')).json()) as {
      self: string
      members: Array<{ name: string }>
    }
    expect(members.self).toBe('peer-a')
    expect(members.members.map((m) => m.name)).toEqual(['a'])
    expect((await app.request('/readyz')).status).toBe(503)
    expect((await app.request('/healthz')).status).toBe(200)
    expect(await (await app.request('/metrics')).text()).toBe('m 1\n')
    const missing = await app.request('/v1/nothing')
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as ApiBody).error.code).toBe('route_not_found')
  })
})
