// Routes of /v1/events: ingest, result sets, and one event by id. The zod
// schemas here validate the requests and also describe them in /openapi.json.

import { createRoute, z } from '@hono/zod-openapi'
import { InvalidInputError } from '../errors.ts'
import type { EventLimits } from '../event/event.ts'
import {
  createEventInputSchema,
  EventSchema,
  SeverityInputSchema,
  severityRank,
} from '../event/event.ts'
import type { IdParts } from '../event/id.ts'
import { decodeId, ID_LENGTH, parseId } from '../event/id.ts'
import type { Ingest, IngestLimits } from '../ingest/ingest.ts'
import { bodyHash } from '../ingest/ingest.ts'
import type { Logger } from '../log.ts'
import type { Coordinator } from '../query/coordinator.ts'
import type { EventQuery } from '../query/cursor.ts'
import { decodeCursor, filterProblems } from '../query/cursor.ts'
import { type ExportEnd, exportEvents } from '../query/export.ts'
import type { MemberRecorder } from '../stats.ts'
import { parseDuration, parseTime } from '../time.ts'
import { createRoutes, errorResponse, listParam } from './errors.ts'
import { type ReadFilters, readFilters, withAttrParams } from './filters.ts'
import { exportNdjson, pageJson } from './stream.ts'

/** Default page size and the largest one. */
export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 10_000
/** The period a query covers when `from` is not given: the last 15 minutes. */
export const DEFAULT_FROM_BACK_MS = 15 * 60_000
/** Longest `timeout` a query may ask for. */
export const MAX_QUERY_TIMEOUT_MS = 60_000

export interface EventRoutesComponents {
  ingest: Ingest
  coordinator: Coordinator
  ingestLimits: IngestLimits
  eventLimits: EventLimits
  /** Default per-member deadline of queries, ms. */
  queryTimeoutMs: number
  recorder: MemberRecorder
  clock: () => number
  logger: Logger
  /**
   * Resolves once the array holds R copies of this member's events up to
   * `seq` (node/replica/); rejects when `signal` aborts first.
   */
  replicated?: (seq: number, signal: AbortSignal) => Promise<void>
}

/** How durable an ingest's events are when it is answered. */
const DURABILITIES = ['local', 'replicated'] as const

const QueryShape = {
  from: z.string().optional().openapi({
    description: 'RFC 3339, epoch ms, or a duration back from now (15m). Default 15m.',
  }),
  to: z
    .string()
    .optional()
    .openapi({ description: 'RFC 3339, epoch ms, or a duration back from now. Default now.' }),
  type: listParam.openapi({
    description:
      'Exact types or prefixes like http.*, a leading - excludes (-host.*); repeatable or comma-separated.',
  }),
  severity: SeverityInputSchema.optional().openapi({
    description: 'Minimum severity (any case, or an alias such as warning).',
  }),
  member: listParam.openapi({ description: 'Member names or peer ids; repeatable.' }),
  q: z
    .string()
    .max(1024)
    .optional()
    .openapi({ description: 'Case-insensitive substring of message.' }),
  limit: z
    .string()
    .optional()
    .openapi({ description: `Page size, 1 to ${MAX_LIMIT}. Default ${DEFAULT_LIMIT}.` }),
  order: z.enum(['asc', 'desc']).optional(),
  cursor: z
    .string()
    .optional()
    .openapi({ description: 'The next or prev of an earlier page; its values win.' }),
  after: z.string().optional().openapi({ description: 'Start a new set just after this id.' }),
  before: z.string().optional().openapi({ description: 'Start a new set just before this id.' }),
  timeout: z
    .string()
    .optional()
    .openapi({ description: 'Per-member deadline, a duration. Default 2s.' }),
  fanout: z.enum(['flat', 'tree']).optional().openapi({
    description:
      'Ask every member directly (flat) or through sub-coordinators (tree). Default: tree above 32 members.',
  }),
}
const QuerySchema = withAttrParams(QueryShape)

const MemberRowSchema = z.object({
  member: z.string(),
  name: z.string(),
  status: z.enum(['ok', 'timed_out', 'unreachable', 'error', 'dead', 'unsupported']),
  count: z.number().int(),
  ms: z.number().int(),
  error: z.string().optional(),
  via: z
    .string()
    .optional()
    .openapi({ description: 'Tree fan-out: the sub-coordinator that asked this member.' }),
})

const ResultSetSchema = z
  .object({
    events: z.array(EventSchema),
    firstId: z.string().nullable(),
    lastId: z.string().nullable(),
    next: z.string().nullable(),
    prev: z.string().nullable(),
    members: z.array(MemberRowSchema),
    partial: z.boolean(),
  })
  .openapi('ResultSet')

function problem(field: string, rule: string, got: string): InvalidInputError {
  return new InvalidInputError(`"${field}" ${rule}, got ${JSON.stringify(got)}`, [
    { field, message: rule },
  ])
}

type QueryParams = z.output<typeof QuerySchema>

/** An export's parameters: the filters of a page, without its size, cursor or fan-out. */
const {
  limit: _limit,
  cursor: _cursor,
  before: _before,
  fanout: _fanout,
  ...ExportShape
} = QueryShape
const ExportQuerySchema = withAttrParams(ExportShape)

/** The per-member deadline a request asks for with `timeout`, or the default. */
export function queryTimeout(text: string | undefined, byDefault: number): number {
  if (text === undefined) return byDefault
  const ms = parseDuration(text)
  if (ms === undefined || ms < 1 || ms > MAX_QUERY_TIMEOUT_MS) {
    throw problem(
      'timeout',
      `must be a duration from 1ms to ${MAX_QUERY_TIMEOUT_MS / 1000}s such as 2s`,
      text,
    )
  }
  return ms
}

function tsOfId(id: string): number {
  return (parseId(id) as IdParts).ts
}

/** Turns validated query parameters into an EventQuery with defaults applied and times absolute. */
export function toEventQuery(
  params: z.output<typeof ExportQuerySchema> & Partial<Pick<QueryParams, 'limit' | 'before'>>,
  nowMs: number,
): EventQuery {
  const problems: InvalidInputError[] = []
  const time = (field: 'from' | 'to'): number | undefined => {
    const text = params[field]
    if (text === undefined) return undefined
    const ms = parseTime(text, nowMs)
    if (ms === undefined) {
      problems.push(
        problem(
          field,
          'must be RFC 3339, epoch milliseconds, or a duration back from now such as 15m',
          text,
        ),
      )
    }
    return ms
  }
  const id = (field: 'after' | 'before'): string | undefined => {
    const text = params[field]
    if (text === undefined) return undefined
    if (decodeId(text) === undefined)
      problems.push(problem(field, `must be an event id (${ID_LENGTH} characters)`, text))
    return text
  }
  let limit = DEFAULT_LIMIT
  if (params.limit !== undefined) {
    const n = Number(params.limit)
    if (!/^\d+$/.test(params.limit) || n < 1 || n > MAX_LIMIT) {
      problems.push(problem('limit', `must be between 1 and ${MAX_LIMIT}`, params.limit))
    } else {
      limit = n
    }
  }
  let filters: ReadFilters = { types: [], notTypes: [], attrs: [] }
  try {
    filters = readFilters(params.type, params)
  } catch (err) {
    if (!(err instanceof InvalidInputError)) throw err
    problems.push(err)
  }
  for (const { field, message } of filterProblems(params.type, params.member))
    problems.push(new InvalidInputError(`"${field}": ${message}`, [{ field, message }]))
  const after = id('after')
  const before = id('before')
  let fromMs = time('from')
  let toMs = time('to')
  const first = problems[0]
  if (first !== undefined) {
    throw new InvalidInputError(
      first.message,
      problems.flatMap((p) => p.details),
    )
  }
  // after/before bound the set by id; the default period must not cut them.
  if (fromMs === undefined) {
    if (after !== undefined) fromMs = tsOfId(after)
    else if (before !== undefined) fromMs = Math.max(0, tsOfId(before) - DEFAULT_FROM_BACK_MS)
    else fromMs = Math.max(0, nowMs - DEFAULT_FROM_BACK_MS)
  }
  if (toMs === undefined) {
    // `to` is exclusive: now + 1 includes an event stamped this millisecond.
    toMs = before === undefined ? nowMs + 1 : tsOfId(before) + 1
  }
  if (fromMs > toMs) {
    throw new InvalidInputError(`"from" must not be after "to"`, [
      { field: 'from', message: 'must not be after "to"' },
    ])
  }
  const query: EventQuery = {
    fromMs,
    toMs,
    types: filters.types,
    minSeverity: params.severity === undefined ? 0 : severityRank(params.severity),
    members: params.member,
    limit,
    order: params.order ?? 'asc',
  }
  if (filters.notTypes.length > 0) query.notTypes = filters.notTypes
  if (filters.attrs.length > 0) query.attrs = filters.attrs
  if (params.q !== undefined && params.q !== '') query.text = params.q
  if (after !== undefined) query.after = after
  if (before !== undefined) query.before = before
  return query
}

export function createEventRoutes(components: EventRoutesComponents) {
  const { ingest, coordinator } = components
  const app = createRoutes()
  /**
   * Counts a streamed answer, started at `started`, once it is written (or
   * logs why it was cut); one written in full counts as partial or not, as
   * `partial` then says.
   */
  const whenWritten =
    (kind: 'events' | 'export', started: number, partial: () => boolean) =>
    (outcome: 'done' | 'failed' | 'cancelled', err?: unknown) => {
      if (outcome === 'failed') components.logger.warn({ err, kind }, 'answer cut short')
      const seconds = (performance.now() - started) / 1000
      components.recorder.query(
        'coordinator',
        kind,
        seconds,
        outcome === 'done' ? partial() : undefined,
      )
    }

  const IdsSchema = z.object({ ids: z.array(z.string()) }).openapi('Ids')
  const PartialSchema = z
    .object({
      ids: z.array(z.string().nullable()),
      errors: z.array(z.object({ index: z.number().int(), field: z.string(), rule: z.string() })),
    })
    .openapi('PartialIngest')
  // Registered for the document only: ingest parses and validates bodies
  // itself (JSON and NDJSON alike) so that errors name the event's index.
  app.openAPIRegistry.register('EventInput', createEventInputSchema(components.eventLimits))
  const inputRef = { $ref: '#/components/schemas/EventInput' }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/events',
      summary: 'Log events durably',
      description:
        'One JSON event, a JSON array of events, or NDJSON. Answers once the events are synced to disk, or with durability=replicated once R members hold them synced. With an Idempotency-Key seen before, answers the same ids and stores nothing.',
      request: {
        headers: z.object({
          'idempotency-key': z.string().optional(),
          'chorus-durability': z.enum(DURABILITIES).optional().openapi({
            description: 'As the durability parameter; the parameter wins.',
          }),
        }),
        query: z.object({
          durability: z.enum(DURABILITIES).optional().openapi({
            description:
              'local (default): answer once synced here. replicated: once every copy (replicas) is synced.',
          }),
          timeout: z.string().optional().openapi({
            description:
              'With durability=replicated, how long to wait for the copies. Default: the query timeout (2s).',
          }),
          partial: z.enum(['true', 'false']).optional().openapi({
            description:
              'true: store the valid events and answer 200 with an id for each (null for the others) and the errors of the others, rather than 400 for the whole request.',
          }),
        }),
        body: {
          content: {
            'application/json': {
              schema: { oneOf: [inputRef, { type: 'array', items: inputRef }] },
            },
            'application/x-ndjson': {
              schema: { type: 'string', description: 'one event per line' },
            },
          },
          required: true,
        },
      },
      responses: {
        201: {
          content: { 'application/json': { schema: IdsSchema } },
          description: 'Stored; ids in request order',
        },
        200: {
          content: { 'application/json': { schema: PartialSchema } },
          description:
            'partial=true and some events invalid: the valid ones stored, an id for each in request order (null for the others), and what was wrong with the others',
        },
        400: errorResponse('Invalid event; nothing stored'),
        409: errorResponse('Idempotency-Key reused with another body'),
        413: errorResponse('Body or event count over the limit; nothing stored'),
        415: errorResponse('Unsupported content type'),
        503: errorResponse(
          'Requests in flight hold the memory budget, or the member is learning its newest seq after its data dir was replaced (restoring); nothing stored; retry after Retry-After',
        ),
        504: {
          content: {
            'application/json': {
              schema: z.object({
                error: z.object({ code: z.literal('replication_timeout'), message: z.string() }),
                ids: z.array(z.string()),
              }),
            },
          },
          description:
            'durability=replicated: stored here, but not every copy confirmed within timeout; the events will replicate, and a retry with the same Idempotency-Key stores nothing',
        },
        507: errorResponse('Disk full; nothing stored'),
      },
    }),
    async (c) => {
      const started = performance.now()
      const params = c.req.valid('query')
      const durability = params.durability ?? c.req.valid('header')['chorus-durability'] ?? 'local'
      const waitMs = queryTimeout(params.timeout, components.queryTimeoutMs)
      // The app bounds the body before this reads it (createApp, limitBody).
      const body = new Uint8Array(await c.req.arrayBuffer())
      const partial = params.partial === 'true'
      const parsed = partial
        ? ingest.parsePartial(c.req.header('content-type'), body)
        : { events: ingest.parse(c.req.header('content-type'), body) }
      const { events } = parsed
      const key = c.req.header('idempotency-key')
      // The same body always splits the same way, so a retry with its key,
      // partial or not, finds the ids of the events it stored.
      const ids =
        events.length === 0
          ? []
          : await ingest.submit(
              events,
              key === undefined ? undefined : { key, hash: bodyHash(body) },
            )
      if (durability === 'replicated' && components.replicated !== undefined && ids.length > 0) {
        const seq = Math.max(...ids.map((id) => (parseId(id) as IdParts).seq))
        const wait = AbortSignal.timeout(waitMs)
        try {
          await components.replicated(seq, AbortSignal.any([wait, c.req.raw.signal]))
        } catch {
          const message = `stored here, but not every copy was confirmed within ${waitMs} ms; the events will replicate, and a retry with the same Idempotency-Key stores nothing`
          return c.json({ error: { code: 'replication_timeout' as const, message }, ids }, 504)
        }
      }
      components.recorder.ingest((performance.now() - started) / 1000, ids.length)
      if ('errors' in parsed && parsed.errors.length > 0) {
        const placed: Array<string | null> = new Array(parsed.count).fill(null)
        parsed.indexes.forEach((index, i) => {
          placed[index] = ids[i] as string
        })
        return c.json({ ids: placed, errors: parsed.errors }, 200)
      }
      return c.json({ ids }, 201)
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events',
      summary: 'A page of a result set for the whole array',
      request: { query: QuerySchema },
      responses: {
        200: {
          content: { 'application/json': { schema: ResultSetSchema } },
          description: 'A page',
        },
        400: errorResponse('Invalid parameter or cursor'),
        503: errorResponse('Over the memory budget for 10 s; retry after Retry-After'),
      },
    }),
    async (c) => {
      const params = c.req.valid('query')
      const timeoutMs = queryTimeout(params.timeout, components.queryTimeoutMs)
      // With a cursor its frozen query wins over any parameters sent again.
      const fanout = params.fanout === undefined ? {} : { fanout: params.fanout }
      const input =
        params.cursor === undefined
          ? { query: toEventQuery(params, components.clock()), timeoutMs, ...fanout }
          : (() => {
              const cursor = decodeCursor(params.cursor)
              return { query: cursor.query, cursor, timeoutMs, ...fanout }
            })()
      const started = performance.now()
      const page = await coordinator.open(input, { signal: c.req.raw.signal })
      const body = pageJson(
        page,
        whenWritten('events', started, () => page.trailer().partial),
      )
      return c.body(body, 200, { 'content-type': 'application/json' }) as never
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/export',
      summary: 'The whole of a result set, streamed as NDJSON',
      description:
        'One event per line in the array\'s order, as a page has them, then one line {"end": {"count", "lastId", "members", "partial"}}. A slow reader slows the members\' scans; a reader that goes away cancels them. Resume a cut export with after=<the last id read>.',
      request: { query: ExportQuerySchema },
      responses: {
        200: {
          content: { 'application/x-ndjson': { schema: { type: 'string' } } },
          description: 'The events, then the end line',
        },
        400: errorResponse('Invalid parameter'),
        503: errorResponse('Over the memory budget; retry after Retry-After'),
      },
    }),
    async (c) => {
      const params = c.req.valid('query')
      const timeoutMs = queryTimeout(params.timeout, components.queryTimeoutMs)
      const query = toEventQuery(params, components.clock())
      const started = performance.now()
      let end: ExportEnd | undefined
      const exported = exportEvents(coordinator, query, { timeoutMs, signal: c.req.raw.signal })
      // The end line, kept as it goes by, says whether the export was partial.
      const chunks = (async function* () {
        end = yield* exported
        return end
      })()
      // The first page is opened before the answer starts: a 503 (memory) can still be said.
      const first = await chunks.next()
      const body = exportNdjson(
        chunks,
        first,
        whenWritten('export', started, () => end?.partial === true),
      )
      return c.body(body, 200, { 'content-type': 'application/x-ndjson' }) as never
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events/{id}',
      summary: 'One event, from the member that owns it',
      request: { params: z.object({ id: z.string() }) },
      responses: {
        200: { content: { 'application/json': { schema: EventSchema } }, description: 'The event' },
        400: errorResponse('Malformed id'),
        404: errorResponse('No such event'),
        503: errorResponse('The owner could not be asked'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param')
      if (decodeId(id) === undefined)
        throw problem('id', `must be an event id (${ID_LENGTH} characters of base32)`, id)
      const started = performance.now()
      const event = await coordinator.lookup(id, {
        timeoutMs: components.queryTimeoutMs,
        signal: c.req.raw.signal,
      })
      components.recorder.query('coordinator', 'lookup', (performance.now() - started) / 1000)
      return c.json(event, 200)
    },
  )

  return app
}
