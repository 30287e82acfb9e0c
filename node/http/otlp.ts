// POST /v1/logs: the OTLP/HTTP logs receiver (node/ingest/otlp.ts maps the
// records). Answers as OTLP/HTTP defines: 200 with an
// ExportLogsServiceResponse, with partialSuccess when records were refused
// (how many, and the first reason), in the request's encoding; errors as a
// google.rpc.Status in that encoding (400 for a body that is not a request,
// 413 past the limits, 415 for another content type, 503 with Retry-After
// while over the memory budget or restoring), so that exporters retry only
// what the specification says they may.

import { createRoute } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { BusyError, LimitExceededError, UnsupportedMediaTypeError } from '../errors.ts'
import type { EventInput, EventLimits } from '../event/event.ts'
import type { Ingest, IngestLimits } from '../ingest/ingest.ts'
import {
  decodeLogsRequest,
  encodeLogsResponse,
  mapLogsRequest,
  OtlpDecodeError,
  otlpEncoding,
} from '../ingest/otlp.ts'
import { BODY_HEAP_FACTOR, type MemoryGate } from '../memory.ts'
import type { MemberRecorder } from '../stats.ts'
import { createRoutes, errorResponse, OTLP_CONTENT_TYPE, otlpError } from './errors.ts'

export interface OtlpRoutesComponents {
  ingest: Ingest
  ingestLimits: IngestLimits
  eventLimits: EventLimits
  recorder: MemberRecorder
  /** The requests' share of the memory budget. Default: no limit. */
  requestMemory?: MemoryGate
}

/**
 * Heap a request takes while decoded and mapped, per byte of its (decoded)
 * body, measured: 10,000 records took 25 times their protobuf and 7 times
 * their JSON. The body itself is already held (BODY_HEAP_FACTOR); the rest
 * is taken before decoding.
 */
const DECODED_HEAP_FACTOR = { protobuf: 26, json: 8 } as const

export function createOtlpRoutes(components: OtlpRoutesComponents) {
  const app = createRoutes()
  const max = components.ingestLimits.maxEventsPerRequest
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/logs',
      summary: 'OpenTelemetry logs (OTLP/HTTP): each log record stored as an event',
      description:
        'An ExportLogsServiceRequest, protobuf or JSON, optionally gzip, deflate or zstd encoded. Answers 200 with an ExportLogsServiceResponse (partialSuccess when records were refused); errors are a google.rpc.Status.',
      request: {
        body: {
          content: {
            'application/x-protobuf': { schema: { type: 'string', format: 'binary' } },
            'application/json': { schema: { type: 'object' } },
          },
          required: true,
        },
      },
      responses: {
        200: {
          content: {
            'application/x-protobuf': { schema: { type: 'string', format: 'binary' } },
            'application/json': { schema: { type: 'object' } },
          },
          description: 'Taken; partialSuccess names how many records were refused and why',
        },
        400: errorResponse('Not an OTLP logs request (a google.rpc.Status)'),
        413: errorResponse('Body or record count over the limit (a google.rpc.Status)'),
        415: errorResponse('Neither application/x-protobuf nor application/json'),
        503: errorResponse('Over the memory budget, or restoring; retry after Retry-After'),
      },
    }),
    async (c) => {
      const started = performance.now()
      const encoding = otlpEncoding(c.req.header('content-type'))
      if (encoding === undefined)
        throw new UnsupportedMediaTypeError(
          'OTLP/HTTP takes application/x-protobuf or application/json',
          [{ field: 'content-type', message: 'application/x-protobuf or application/json' }],
        )
      // The app bounds the body, decoded, before this reads it.
      const body = new Uint8Array(await c.req.arrayBuffer())
      const gate = components.requestMemory
      const extra = body.byteLength * (DECODED_HEAP_FACTOR[encoding] - BODY_HEAP_FACTOR)
      if (gate !== undefined) {
        const heldForBody = body.byteLength * BODY_HEAP_FACTOR
        if (extra + heldForBody > gate.limit)
          throw new LimitExceededError(
            `an OTLP request of ${body.byteLength} bytes (${encoding}) takes more memory to decode than this member's requests may hold; send smaller batches; nothing was stored`,
            [
              {
                field: 'body',
                message: `at most ${Math.floor(gate.limit / DECODED_HEAP_FACTOR[encoding])} bytes of ${encoding}`,
              },
            ],
          )
        if (!gate.tryTake(extra))
          throw new BusyError(
            `this member's requests in flight hold their whole share of its memory budget (${gate.limit} bytes); nothing was stored; retry in 1s`,
          )
      }
      try {
        return await take(c, body, encoding, started)
      } finally {
        gate?.give(extra)
      }
    },
  )

  /** Decodes, maps, validates and stores a request's records; answers OTLP's response. */
  async function take(
    c: Context,
    body: Uint8Array,
    encoding: 'protobuf' | 'json',
    started: number,
  ): Promise<Response> {
    let request: ReturnType<typeof decodeLogsRequest>
    try {
      request = decodeLogsRequest(body, encoding)
    } catch (err) {
      if (err instanceof OtlpDecodeError) return otlpError(c, 400, err.message)
      throw err
    }
    const { records, total } = mapLogsRequest(request, components.eventLimits, max)
    const events: EventInput[] = []
    // Past the per-request limit, records are refused, the others kept.
    let refused = total - records.length
    let reason =
      refused > 0
        ? `log records ${max} and after: a request may carry at most ${max} (--max-events-per-request)`
        : ''
    if (records.length > 0) {
      const checked = components.ingest.checkEvents(records.map((r) => r.event))
      // The first reason: an invalid record comes before those past the limit.
      let named = false
      checked.forEach((c, i) => {
        if (!Array.isArray(c)) {
          events.push(c)
          return
        }
        refused++
        if (!named) {
          named = true
          const problem = c[0]
          reason = `log record ${i}: ${problem?.field.replace(/^events\[\d+\]\.?/, '') || 'record'} ${problem?.message ?? 'is invalid'}`
        }
      })
    }
    if (events.length > 0) await components.ingest.submit(events)
    components.recorder.ingest((performance.now() - started) / 1000, events.length)
    components.recorder.otlp({
      stored: events.length,
      refused,
      droppedAttributes: records.reduce((n, r) => n + r.droppedAttributes, 0),
      truncated: records.filter((r) => r.truncated).length,
    })
    return c.body(encodeLogsResponse(encoding, refused, reason) as never, 200, {
      'content-type': OTLP_CONTENT_TYPE[encoding],
    })
  }
  return app
}
