// The member's HTTP API as a Hono app. `createApp(components)` builds it and
// never listens (tests drive it with app.request()); server.ts listens.

import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import type { MiddlewareHandler } from 'hono'
import { BusyError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { BODY_HEAP_FACTOR, type MemoryGate } from '../memory.ts'
import { requireLoopbackWhileOpen, requireTokens, type Token } from './auth.ts'
import { type BackupRoutesComponents, createBackupRoutes } from './backup.ts'
import { type ConfigRoutesComponents, createConfigRoutes } from './config.ts'
import { decodeBody } from './encoding.ts'
import { createOnError, errorBody, limitBody, notFound } from './errors.ts'
import type { EventRoutesComponents } from './events.ts'
import { createEventRoutes } from './events.ts'
import { createHealthRoutes, type HealthRoutesComponents } from './health.ts'
import type { MemberRoutesComponents } from './members.ts'
import { createMemberRoutes } from './members.ts'
import { createOtlpRoutes, type OtlpRoutesComponents } from './otlp.ts'
import type { RollupRoutesComponents } from './rollups.ts'
import { createRollupRoutes } from './rollups.ts'
import { afterBody } from './stream.ts'
import { createTailRoutes, type TailRoutesComponents } from './tail.ts'
import { createUiRoutes } from './ui.ts'

export interface AppComponents
  extends BackupRoutesComponents,
    ConfigRoutesComponents,
    EventRoutesComponents,
    HealthRoutesComponents,
    MemberRoutesComponents,
    OtlpRoutesComponents,
    RollupRoutesComponents,
    TailRoutesComponents {
  logger: Logger
  /** True once the store is open and the member is started. */
  ready: () => boolean
  version: string
  /** Renders this member's Prometheus metrics (handed over by the entry point from exporter/). */
  metrics: (accept: string | undefined) => Promise<{ contentType: string; body: string }>
  /** Bearer tokens in force, asked on every request (a reload replaces them); empty: every route open. */
  tokens: () => readonly Token[]
  /**
   * True when the member listens on loopback: while it has no tokens it then
   * answers only loopback Host names and loopback web origins (see auth.ts).
   * False for a member on another address with --insecure, open to whoever
   * reaches it, as its operator asked.
   */
  loopbackOnly: boolean
  /** Queries coordinated at once; more are answered 429. */
  maxConcurrentQueries: number
  /** Renders the whole array's metrics from the background snapshot. */
  clusterMetrics: (accept: string | undefined) => Promise<{ contentType: string; body: string }>
  /** The requests' share of the memory budget; ingest bodies take theirs here. Default: no limit. */
  requestMemory?: MemoryGate
  /** Where each request answered is logged (--access-log); none: not logged. */
  accessLog?: Logger
}

/** The routes that take events in, with the ingest body limit and encodings. */
const INGEST_PATHS: ReadonlySet<string> = new Set(['/v1/events', '/v1/logs'])

export function createApp(components: AppComponents) {
  const app = new OpenAPIHono()
  app.onError(createOnError(components.logger))
  app.notFound(notFound)
  const accessLog = components.accessLog
  if (accessLog !== undefined)
    app.use('*', async (c, next) => {
      const started = performance.now()
      await next()
      // The path only: a query string may hold what an operator searched for.
      accessLog.info(
        {
          method: c.req.method,
          path: c.req.path,
          status: c.res.status,
          ms: Math.round((performance.now() - started) * 10) / 10,
        },
        'request',
      )
    })
  if (components.loopbackOnly) app.use('*', requireLoopbackWhileOpen(components.tokens))
  app.use('*', requireTokens(components.tokens))
  // Every body is bounded before any route reads it: ingest by its own
  // limit, the rest (health rules and any later route) by a small one.
  const ingestMemory =
    components.requestMemory === undefined ? undefined : holdBodyMemory(components.requestMemory)
  // An ingest body may come compressed: the limit applies to it as sent,
  // and again once decoded (encoding.ts).
  const limitIngest = limitBody(components.ingestLimits.maxBodyBytes)
  const decode = decodeBody(components.ingestLimits.maxBodyBytes, components.requestMemory)
  const ingestBody: MiddlewareHandler = (c, next) =>
    limitIngest(c, async () => {
      await decode(c, next)
    })
  const otherBody = limitBody(MAX_REQUEST_BODY_BYTES)
  app.use('*', (c, next) => {
    if (c.req.method !== 'POST' || !INGEST_PATHS.has(c.req.path)) return otherBody(c, next)
    if (ingestMemory === undefined) return ingestBody(c, next)
    return ingestMemory(c, async () => {
      const refused = await ingestBody(c, next)
      if (refused instanceof Response) c.res = refused
    })
  })
  const limit = limitConcurrency(components.maxConcurrentQueries, 'queries')
  // A live tail holds its slot for as long as it is open: tails have their own.
  const limitTails = limitConcurrency(MAX_TAILS, 'live streams')
  app.use('*', (c, next) => {
    if (c.req.method !== 'GET') return next()
    if (c.req.path === '/v1/events/stream') return limitTails(c, next)
    return /^\/v1\/(events|export|rollups)(\/|$)/.test(c.req.path) ? limit(c, next) : next()
  })

  // Before the event routes: /v1/events/{id} would take "stream" for an id.
  app.route('/', createTailRoutes(components))
  app.route('/', createEventRoutes(components))
  app.route('/', createMemberRoutes(components))
  app.route('/', createHealthRoutes(components))
  app.route('/', createConfigRoutes(components))
  app.route('/', createOtlpRoutes(components))
  app.route('/', createUiRoutes())
  app.route('/', createRollupRoutes(components))
  app.route('/', createBackupRoutes(components))

  app.openapi(
    createRoute({
      method: 'get',
      path: '/healthz',
      summary: 'Liveness: the process answers',
      responses: {
        200: {
          content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } },
          description: 'Alive',
        },
      },
    }),
    (c) => c.json({ status: 'ok' as const }, 200),
  )

  const Ready = z.object({ ready: z.boolean() })
  app.openapi(
    createRoute({
      method: 'get',
      path: '/readyz',
      summary: 'Readiness: store open and member started; asks no other member',
      responses: {
        200: { content: { 'application/json': { schema: Ready } }, description: 'Ready' },
        503: { content: { 'application/json': { schema: Ready } }, description: 'Not ready' },
      },
    }),
    (c) => (components.ready() ? c.json({ ready: true }, 200) : c.json({ ready: false }, 503)),
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/metrics',
      summary: 'This member in Prometheus text format (OpenMetrics when Accept asks for it)',
      responses: {
        200: { content: { 'text/plain': { schema: z.string() } }, description: 'Metrics' },
      },
    }),
    async (c) => {
      const { contentType, body } = await components.metrics(c.req.header('accept'))
      return c.body(body, 200, { 'content-type': contentType }) as never
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/metrics/cluster',
      summary:
        'The whole array from one scrape target, from a snapshot refreshed every 2 s and on membership change',
      responses: {
        200: { content: { 'text/plain': { schema: z.string() } }, description: 'Metrics' },
      },
    }),
    async (c) => {
      const { contentType, body } = await components.clusterMetrics(c.req.header('accept'))
      return c.body(body, 200, { 'content-type': contentType }) as never
    },
  )

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'chorus',
      version: components.version,
      description: 'An array of servers that answers like one server.',
    },
  })
  return app
}

export type App = ReturnType<typeof createApp>

/** Largest body of any request but ingest (which has --max-body-bytes), in bytes: 256 KiB. */
export const MAX_REQUEST_BODY_BYTES = 256 * 1024

/** Live tails (GET /v1/events/stream) open at once on one member; more are answered 429. */
export const MAX_TAILS = 32

/** Seconds a client told 429 should wait before it tries again. */
const RETRY_AFTER_S = 1

/**
 * Admits at most `max` requests at once; the rest get 429 with Retry-After
 * at once rather than a queue, so a flood of heavy queries cannot starve
 * ingest or pile up memory.
 */
function limitConcurrency(max: number, what: string): MiddlewareHandler {
  let running = 0
  return async (c, next) => {
    if (running >= max) {
      c.header('Retry-After', String(RETRY_AFTER_S))
      return c.json(
        errorBody(
          'too_many_queries',
          `this member is already answering ${max} ${what}; retry in ${RETRY_AFTER_S}s`,
          [{ field: 'request', message: `at most ${max} concurrent ${what}` }],
        ),
        429,
      )
    }
    running++
    try {
      await next()
    } catch (err) {
      running--
      throw err
    }
    // A streamed answer holds its slot until it is written (or its client goes away).
    c.res = afterBody(c.res, () => {
      running--
    })
  }
}

/**
 * Holds an ingest body's share of the requests' memory from before it is
 * read until it is answered (its events synced): BODY_HEAP_FACTOR times its
 * length, taken at once when the length is declared, else chunk by chunk as
 * it streams in. When the share is full the request is answered 503 with
 * Retry-After (BusyError) before its body is parsed, so nothing of it is
 * stored.
 */
function holdBodyMemory(gate: MemoryGate): MiddlewareHandler {
  return async (c, next) => {
    const busy = () =>
      new BusyError(
        `this member's requests in flight hold their whole share of its memory budget (${gate.limit} bytes); nothing was stored; retry in ${RETRY_AFTER_S}s`,
        RETRY_AFTER_S,
      )
    let held = 0
    const take = (bytes: number) => {
      if (!gate.tryTake(bytes * BODY_HEAP_FACTOR)) return false
      held += bytes * BODY_HEAP_FACTOR
      return true
    }
    const declared = Number(c.req.header('content-length'))
    const body = c.req.raw.body
    try {
      if (Number.isSafeInteger(declared) && declared >= 0) {
        if (!take(declared)) throw busy()
      } else if (body !== null) {
        const counted = body.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              if (!take(chunk.byteLength)) throw busy()
              controller.enqueue(chunk)
            },
          }),
        )
        c.req.raw = new Request(c.req.raw, { body: counted, duplex: 'half' } as RequestInit)
      }
      await next()
    } finally {
      gate.give(held)
    }
  }
}
