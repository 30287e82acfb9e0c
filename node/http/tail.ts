// GET /v1/events/stream: a live tail of the whole array as Server-Sent
// Events. Each new event is one message (`data:` its JSON, as in a page);
// after each round that moved, an `id:` line carries every member's mark
// (node/query/tail.ts), so a client that reconnects with Last-Event-ID (as
// EventSource does by itself) resumes where it stood, on this member or any
// other. Delivery is at least once: a client cut off in the middle of a
// round gets that round's events again, and tells them apart by `id`.
// `event: members` messages say which members answer (rows as in a page)
// whenever that changes, so a client can show that it is partial.

import { createRoute, z } from '@hono/zod-openapi'
import { InvalidInputError } from '../errors.ts'
import { SeverityInputSchema, severityRank } from '../event/event.ts'
import type { SliceTarget } from '../query/coordinator.ts'
import { filterProblems } from '../query/cursor.ts'
import type { MemberRow } from '../query/fan-out.ts'
import { decodeTailState, encodeTailState, type TailState, tailRound } from '../query/tail.ts'
import { parseTime } from '../time.ts'
import { createRoutes, errorResponse, listParam } from './errors.ts'
import { queryTimeout } from './events.ts'
import { readFilters, withAttrParams } from './filters.ts'

export interface TailRoutesComponents {
  /** The members a tail asks, this one included (dead ones as their holders answer for them). */
  tailTargets: () => SliceTarget[]
  /** Default per-member deadline of queries, ms. */
  queryTimeoutMs: number
  clock: () => number
}

/** Time between rounds while nothing is left to read, ms. */
export const TAIL_INTERVAL_MS = 1000
/** A comment line at least this often, ms, so proxies and clients see the stream is alive. */
const KEEP_ALIVE_MS = 15_000
/** What EventSource waits before it reconnects, ms (the `retry:` field). */
const RECONNECT_MS = 2000

const Query = withAttrParams({
  from: z.string().optional().openapi({
    description:
      'Start with the events stamped at or after this time (RFC 3339, epoch ms or a duration back from now). Default: now. Ignored when resuming with Last-Event-ID.',
  }),
  type: listParam.openapi({
    description: 'Exact types or prefixes like http.*, a leading - excludes (-host.*).',
  }),
  severity: SeverityInputSchema.optional(),
  member: listParam.openapi({ description: 'Member names or peer ids; repeatable.' }),
  q: z
    .string()
    .max(1024)
    .optional()
    .openapi({ description: 'Case-insensitive substring of message.' }),
  timeout: z
    .string()
    .optional()
    .openapi({ description: 'Per-member deadline of each round. Default 2s.' }),
  lastEventId: z.string().optional().openapi({
    description: 'The same as the Last-Event-ID header, for clients that cannot set it.',
  }),
})

const sse = (fields: string) => `${fields}\n\n`

const NO_FILTERS = { types: [], notTypes: [], attrs: [], minSeverity: 0, members: [] }

export function createTailRoutes(components: TailRoutesComponents) {
  const app = createRoutes()
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events/stream',
      summary: 'New events of the whole array as they are stored, as Server-Sent Events',
      description:
        'One message per event (data: the event as a page has it). After each round an id: line holds every member\'s mark; reconnect with Last-Event-ID to resume without missing an event, even one stamped earlier than the last one sent. "members" messages give the members\' rows when they change.',
      request: { query: Query },
      responses: {
        200: {
          content: { 'text/event-stream': { schema: { type: 'string' } } },
          description: 'The stream',
        },
        400: errorResponse('Invalid parameter or Last-Event-ID'),
        429: errorResponse('Too many streams on this member'),
      },
    }),
    async (c) => {
      const p = c.req.valid('query')
      const now = components.clock()
      const problems = filterProblems(p.type, p.member)
      const first = problems[0]
      if (first !== undefined)
        throw new InvalidInputError(`"${first.field}": ${first.message}`, problems)
      const { types, notTypes, attrs } = readFilters(p.type, p)
      const timeoutMs = queryTimeout(p.timeout, components.queryTimeoutMs)
      const resume = c.req.header('last-event-id') ?? p.lastEventId
      let state: TailState
      if (resume !== undefined && resume !== '') state = decodeTailState(resume)
      else {
        const startMs = p.from === undefined ? now : parseTime(p.from, now)
        if (startMs === undefined)
          throw new InvalidInputError(
            `"from" must be RFC 3339, epoch milliseconds, or a duration back from now such as 15m, got ${JSON.stringify(p.from)}`,
            [
              {
                field: 'from',
                message: 'must be RFC 3339, epoch milliseconds, or a duration back from now',
              },
            ],
          )
        state = { startMs, marks: new Map() }
        // From now: every member's mark is taken before the answer starts,
        // so whatever any member stores once the client has its 200 is sent.
        if (p.from === undefined)
          await tailRound(
            components.tailTargets(),
            state,
            { ...NO_FILTERS },
            {
              timeoutMs,
              signal: c.req.raw.signal,
              marksOnly: true,
            },
          )
      }
      const filters = {
        types,
        notTypes,
        attrs,
        minSeverity: p.severity === undefined ? 0 : severityRank(p.severity),
        members: p.member,
        ...(p.q === undefined || p.q === '' ? {} : { text: p.q }),
      }

      const stop = new AbortController()
      const signal = AbortSignal.any([stop.signal, c.req.raw.signal])
      let lastId = encodeTailState(state)
      let lastRows = ''
      let lastWrite = performance.now()
      let more = false
      let rounds = 0
      const wait = (ms: number) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms)
          signal.addEventListener(
            'abort',
            () => {
              clearTimeout(timer)
              resolve()
            },
            { once: true },
          )
        })
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(Buffer.from(sse(`retry: ${RECONNECT_MS}`)))
        },
        async pull(controller) {
          // Rounds until one has something to say (or it is time for a keep-alive).
          for (;;) {
            if (signal.aborted) {
              controller.close()
              return
            }
            if (rounds++ > 0 && !more) await wait(TAIL_INTERVAL_MS)
            if (signal.aborted) continue
            let text = ''
            try {
              const round = await tailRound(components.tailTargets(), state, filters, {
                timeoutMs,
                signal,
              })
              more = round.more
              for (const event of round.events) text += sse(`data: ${JSON.stringify(event)}`)
              const rows = JSON.stringify(round.rows.map(rowState))
              if (rows !== lastRows) {
                lastRows = rows
                const partial = round.rows.some((r) => r.status !== 'ok' || (r.missing ?? 0) > 0)
                text += sse(
                  `event: members\ndata: ${JSON.stringify({ members: round.rows, partial })}`,
                )
              }
            } catch (err) {
              if (signal.aborted) continue
              throw err
            }
            const id = encodeTailState(state)
            if (id !== lastId) {
              lastId = id
              text += sse(`id: ${id}`)
            }
            if (text === '' && performance.now() - lastWrite >= KEEP_ALIVE_MS) text = sse(': alive')
            if (text !== '') {
              lastWrite = performance.now()
              controller.enqueue(Buffer.from(text))
              return
            }
          }
        },
        cancel() {
          stop.abort(new Error('the client went away'))
        },
      })
      return c.body(body, 200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      }) as never
    },
  )
  return app
}

/** What of a row says whether it answers: a change of it is worth a `members` message. */
function rowState(row: MemberRow) {
  return [row.member, row.status, row.servedBy ?? '', row.missing ?? 0]
}
