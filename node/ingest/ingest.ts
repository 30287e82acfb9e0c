// Ingest: turns request bodies (one JSON event, a JSON array, or NDJSON) into
// validated events, and writes them with group commit: requests that arrive
// while a write is in progress are written together in the next batch, so
// concurrent clients share one WAL sync. A request's ids are answered only
// after the batch holding its events is synced.

import { createHash } from 'node:crypto'
import type { z } from '@hono/zod-openapi'
import type { FieldProblem } from '../errors.ts'
import {
  ConflictError,
  InvalidInputError,
  LimitExceededError,
  StoreUnavailableError,
  UnsupportedMediaTypeError,
} from '../errors.ts'
import type { EventInput, EventLimits } from '../event/event.ts'
import { createEventChecker, createEventInputSchema, RESERVED_ATTR_KEYS } from '../event/event.ts'
import type { AppendGroup, EventLog } from '../store/event-log.ts'

export interface IngestLimits {
  /** Largest request body, in bytes. Default 16 MiB. */
  maxBodyBytes: number
  /** Most events in one request. Default 10,000. */
  maxEventsPerRequest: number
  /** Longest Idempotency-Key, in characters. Default 256. */
  maxIdempotencyKeyLength: number
  /** How long an Idempotency-Key is remembered, in ms. Default 24 h. */
  idempotencyTtlMs: number
}

export const DEFAULT_INGEST_LIMITS: IngestLimits = {
  maxBodyBytes: 16 * 1024 * 1024,
  maxEventsPerRequest: 10_000,
  maxIdempotencyKeyLength: 256,
  idempotencyTtlMs: 24 * 3_600_000,
}

/** Most events written in one group-commit batch (a single larger request is still written whole). */
const MAX_GROUP_EVENTS = 8192
/** Most problems listed in one 400 answer. */
const MAX_PROBLEMS = 100

export interface IngestComponents {
  log: EventLog
  limits: IngestLimits
  eventLimits: EventLimits
  /** Wall clock in ms. Default `Date.now`. */
  clock?: () => number
}

export interface Ingest {
  /** Parses and validates a body; throws InvalidInputError, LimitExceededError or UnsupportedMediaTypeError. */
  parse(contentType: string | undefined, body: Uint8Array): EventInput[]
  /**
   * Parses a body and validates each event on its own: the valid ones and
   * the problems of the others. Throws only for the body as a whole (its
   * type, JSON that cannot be split into events, no events, too many).
   */
  parsePartial(contentType: string | undefined, body: Uint8Array): PartialParse
  /**
   * Validates events made elsewhere (OTLP records) as a body's are: each
   * the event, or its problems (fields as `events[i]…`). Throws for none
   * or too many.
   */
  checkEvents(raw: unknown[]): Array<EventInput | FieldProblem[]>
  /**
   * Writes events durably and answers their ids in order. With an
   * idempotency key seen before (and the same body hash), answers the ids
   * of that request and writes nothing.
   */
  submit(events: EventInput[], idempotency?: { key: string; hash: string }): Promise<string[]>
  /** Number of events waiting for the next batch. */
  readonly queued: number
  /** Refuses new work and waits for queued events to be written. */
  close(): Promise<void>
}

interface Pending {
  group: AppendGroup
  resolve: (ids: string[]) => void
  reject: (err: unknown) => void
}

export function bodyHash(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('base64url')
}

function describeIssues(index: number, issues: z.core.$ZodIssue[]): FieldProblem[] {
  return issues.slice(0, MAX_PROBLEMS).map((issue) => {
    const path = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
    let message = issue.message
    if (issue.code === 'unrecognized_keys') message = `unknown field(s): ${issue.keys.join(', ')}`
    return { field: `events[${index}]${path}`, message }
  })
}

/** An NDJSON line that is not JSON, kept in its place among the events. */
class NotJson {
  readonly line: number
  readonly reason: string
  constructor(line: number, reason: string) {
    this.line = line
    this.reason = reason
  }
}

/** A body read event by event: the valid events, where each stood, and what was wrong with the others. */
export interface PartialParse {
  /** Events in the request, valid or not. */
  count: number
  events: EventInput[]
  /** The position in the request of each of `events`. */
  indexes: number[]
  /** One entry per problem (at most 100): the event's position, its field, and the rule it broke. */
  errors: Array<{ index: number; field: string; rule: string }>
}

/**
 * A reserved attribute name in a raw event, if any. Checked before the schema:
 * JSON.parse makes `__proto__` an own key, but copying it into a new object
 * would set a prototype instead, and the attribute would silently vanish.
 */
function reservedAttr(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined
  const attrs = (raw as { attrs?: unknown }).attrs
  if (typeof attrs !== 'object' || attrs === null) return undefined
  return Object.keys(attrs).find((key) => RESERVED_ATTR_KEYS.has(key))
}

/**
 * The media type of an ingest body: application/json or application/x-ndjson,
 * with at most a UTF-8 charset parameter; anything else, a missing type
 * included, throws UnsupportedMediaTypeError. Strict on purpose: a web page
 * can send text/plain, a form or no type at all to any address without the
 * browser asking first (a CORS "simple request"), but not these two, so a
 * page the operator visits cannot write events to a member on loopback.
 */
export function ingestMediaType(
  contentType: string | undefined,
): 'application/json' | 'application/x-ndjson' {
  const [type = '', ...params] = (contentType ?? '')
    .split(';')
    .map((p) => p.trim().toLowerCase())
    .filter((p, i) => i === 0 || p !== '')
  const utf8 = params.every((p) => /^charset\s*=\s*"?utf-?8"?$/.test(p))
  if ((type === 'application/json' || type === 'application/x-ndjson') && utf8) return type
  throw new UnsupportedMediaTypeError(
    `${contentType === undefined ? 'a body without a content type' : `content type ${JSON.stringify(contentType.slice(0, 100))}`} is not accepted; send application/json or application/x-ndjson, optionally with charset=utf-8 (with curl: -H 'content-type: application/json')`,
    [
      {
        field: 'content-type',
        message: 'application/json or application/x-ndjson (charset=utf-8 allowed)',
      },
    ],
  )
}

export function createIngest(components: IngestComponents): Ingest {
  const { log, limits } = components
  const clock = components.clock ?? Date.now
  const schema = createEventInputSchema(components.eventLimits)
  const check = createEventChecker(components.eventLimits)
  const pending: Pending[] = []
  const inflight = new Map<string, Promise<{ ids: string[]; hash: string }>>()
  let queued = 0
  let scheduled = false
  let closing = false
  let drained: (() => void) | undefined

  /** Each raw event checked: the event, or what is wrong with it (fields as `events[i]…`). */
  function checkEach(raw: unknown[]): Array<EventInput | FieldProblem[]> {
    if (raw.length > limits.maxEventsPerRequest) {
      throw new LimitExceededError(
        `a request may carry at most ${limits.maxEventsPerRequest} events, got ${raw.length}`,
        [{ field: 'events', message: `at most ${limits.maxEventsPerRequest} events` }],
      )
    }
    if (raw.length === 0) {
      throw new InvalidInputError('the request carries no events', [
        { field: 'events', message: 'at least one event' },
      ])
    }
    const out: Array<EventInput | FieldProblem[]> = new Array(raw.length)
    for (let i = 0; i < raw.length; i++) {
      const item = raw[i]
      if (item instanceof NotJson) {
        out[i] = [{ field: `events[${i}]`, message: `line ${item.line} is not valid JSON` }]
        continue
      }
      const reserved = reservedAttr(item)
      if (reserved !== undefined) {
        out[i] = [{ field: `events[${i}].attrs.${reserved}`, message: 'is a reserved name' }]
        continue
      }
      const event = check(item)
      if (event !== undefined) {
        out[i] = event
        continue
      }
      // Invalid: the schema says why (and is the judge, should the two ever differ).
      const result = schema.safeParse(item)
      if (result.success) out[i] = result.data as EventInput
      else out[i] = describeIssues(i, result.error.issues)
    }
    return out
  }

  /**
   * The body's events, raw: an NDJSON line that is not JSON is kept as
   * NotJson (all-or-nothing refuses the body for it, partial ingest only
   * that event).
   */
  function rawEvents(contentType: string | undefined, body: Uint8Array): unknown[] {
    const media = ingestMediaType(contentType)
    const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')
    if (media === 'application/x-ndjson') {
      const raw: unknown[] = []
      let start = 0
      let line = 0
      while (start <= text.length) {
        let end = text.indexOf('\n', start)
        if (end === -1) end = text.length
        line++
        const chunk = text.slice(start, end).trim()
        start = end + 1
        if (chunk === '') continue
        if (raw.length >= limits.maxEventsPerRequest) {
          throw new LimitExceededError(
            `a request may carry at most ${limits.maxEventsPerRequest} events`,
            [{ field: 'events', message: `at most ${limits.maxEventsPerRequest} events` }],
          )
        }
        try {
          raw.push(JSON.parse(chunk))
        } catch (err) {
          raw.push(new NotJson(line, (err as Error).message))
        }
      }
      return raw
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (err) {
      throw new InvalidInputError(`the body is not valid JSON: ${(err as Error).message}`, [
        { field: 'body', message: 'not valid JSON' },
      ])
    }
    return Array.isArray(raw) ? raw : [raw]
  }

  function parse(contentType: string | undefined, body: Uint8Array): EventInput[] {
    const raw = rawEvents(contentType, body)
    const firstBad = raw.findIndex((r) => r instanceof NotJson)
    if (firstBad !== -1) {
      const bad = raw[firstBad] as NotJson
      throw new InvalidInputError(
        `line ${bad.line} (events[${firstBad}]) is not valid JSON: ${bad.reason}; nothing was stored`,
        [{ field: `events[${firstBad}]`, message: `line ${bad.line} is not valid JSON` }],
      )
    }
    const checked = checkEach(raw)
    const problems = checked.filter((c) => Array.isArray(c)).flat()
    if (problems.length > 0) {
      const first = problems[0] as FieldProblem
      throw new InvalidInputError(
        `"${first.field}": ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more problems)` : ''}; nothing was stored`,
        problems.slice(0, MAX_PROBLEMS),
      )
    }
    return checked as EventInput[]
  }

  function parsePartial(contentType: string | undefined, body: Uint8Array): PartialParse {
    const checked = checkEach(rawEvents(contentType, body))
    const events: EventInput[] = []
    const indexes: number[] = []
    const errors: PartialParse['errors'] = []
    checked.forEach((c, index) => {
      if (!Array.isArray(c)) {
        events.push(c)
        indexes.push(index)
        return
      }
      const prefix = `events[${index}]`
      for (const problem of c) {
        if (errors.length >= MAX_PROBLEMS) return
        const field = problem.field.slice(prefix.length).replace(/^\./, '')
        errors.push({ index, field: field === '' ? 'event' : field, rule: problem.message })
      }
    })
    return { count: checked.length, events, indexes, errors }
  }

  function flush(): void {
    scheduled = false
    if (pending.length === 0) return
    let events = 0
    let count = 0
    while (count < pending.length) {
      const size = (pending[count] as Pending).group.events.length
      if (count > 0 && events + size > MAX_GROUP_EVENTS) break
      events += size
      count++
    }
    const batch = pending.splice(0, count)
    queued -= events
    try {
      const ids = log.append(batch.map((p) => p.group))
      for (let i = 0; i < batch.length; i++) (batch[i] as Pending).resolve(ids[i] as string[])
    } catch (err) {
      for (const p of batch) p.reject(err)
    }
    if (pending.length > 0) {
      scheduled = true
      // setImmediate, not a microtask: requests that arrived during the
      // write get parsed first and join the next batch.
      setImmediate(flush)
    } else if (drained !== undefined) {
      drained()
    }
  }

  function enqueue(group: AppendGroup): Promise<string[]> {
    if (closing) return Promise.reject(new StoreUnavailableError('the member is shutting down'))
    return new Promise((resolve, reject) => {
      pending.push({ group, resolve, reject })
      queued += group.events.length
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    })
  }

  async function submitOnce(events: EventInput[], key: string, hash: string) {
    const record = await log.findIdempotency(key)
    if (record !== undefined && record.atMs > clock() - limits.idempotencyTtlMs) {
      return { ids: record.ids, hash: record.hash }
    }
    const ids = await enqueue({ events, idempotency: { key, hash, atMs: clock() } })
    return { ids, hash }
  }

  return {
    parse,
    parsePartial,
    checkEvents: checkEach,
    get queued() {
      return queued
    },
    async submit(events, idempotency) {
      if (idempotency === undefined) return enqueue({ events })
      const { key, hash } = idempotency
      if (key.length === 0 || key.length > limits.maxIdempotencyKeyLength) {
        throw new InvalidInputError(
          `"Idempotency-Key" must be 1 to ${limits.maxIdempotencyKeyLength} characters`,
          [
            {
              field: 'Idempotency-Key',
              message: `1 to ${limits.maxIdempotencyKeyLength} characters`,
            },
          ],
        )
      }
      let work = inflight.get(key)
      if (work === undefined) {
        work = submitOnce(events, key, hash)
        inflight.set(key, work)
        const settled = () => inflight.delete(key)
        work.then(settled, settled)
      }
      const done = await work
      if (done.hash !== hash) {
        throw new ConflictError(
          `"Idempotency-Key" ${JSON.stringify(key)} was used before with a different body`,
          'idempotency_key_reused',
        )
      }
      return done.ids
    },
    async close() {
      closing = true
      if (pending.length === 0) return
      await new Promise<void>((resolve) => {
        drained = resolve
      })
    },
  }
}
