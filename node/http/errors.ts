// One mapping from error names to HTTP answers, used by app.onError and by
// validation hooks: `{ "error": { "code", "message", "details" } }`.

import { OpenAPIHono, z } from '@hono/zod-openapi'
import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { ZodError } from 'zod'
import type { FieldProblem } from '../errors.ts'
import { BusyError, InvalidInputError, isKnownError, RestoringError } from '../errors.ts'
import { encodeStatus, type OtlpEncoding, otlpEncoding } from '../ingest/otlp.ts'
import type { Logger } from '../log.ts'

const STATUS: Record<string, ContentfulStatusCode> = {
  InvalidInputError: 400,
  LimitExceededError: 413,
  UnsupportedMediaTypeError: 415,
  NotFoundError: 404,
  ConflictError: 409,
  StorageFullError: 507,
  StoreUnavailableError: 503,
  OwnerUnreachableError: 503,
  BusyError: 503,
  RestoringError: 503,
  ConfigError: 400,
  ApprovalError: 403,
  DataDirError: 500,
}

export interface ErrorBody {
  error: { code: string; message: string; details: FieldProblem[] }
}

export function errorBody(code: string, message: string, details: FieldProblem[] = []): ErrorBody {
  return { error: { code, message, details } }
}

/** Turns a ZodError from a request validator into InvalidInputError naming each field. */
export function invalidRequest(error: ZodError, where: string): InvalidInputError {
  const details = error.issues.slice(0, 100).map((issue) => {
    const field = issue.path.length === 0 ? where : issue.path.map(String).join('.')
    let message = issue.message
    if (issue.code === 'unrecognized_keys')
      message = `unknown parameter(s): ${issue.keys.join(', ')}`
    return { field, message }
  })
  const first = details[0] ?? { field: where, message: 'invalid' }
  return new InvalidInputError(`"${first.field}": ${first.message}`, details)
}

/** An absolute file path inside a message, as RocksDB and the file system put in theirs (a multiaddr is not one). */
const FILE_PATH =
  /(?<![\w.:/])\/(?!(?:ip4|ip6|dns|dns4|dns6|tcp|udp|p2p)\/)(?:[\w.@+-]+\/)*[\w.@+-]+/g

/** The paths that answer errors as OTLP/HTTP does (a google.rpc.Status), not as the rest of the API. */
const OTLP_PATHS: ReadonlySet<string> = new Set(['/v1/logs'])

export const OTLP_CONTENT_TYPE: Record<OtlpEncoding, string> = {
  protobuf: 'application/x-protobuf',
  json: 'application/json',
}

/** gRPC's code for an HTTP status, as OTLP's Status carries it. */
function grpcCode(status: number): number {
  if (status === 400 || status === 415) return 3 // INVALID_ARGUMENT
  if (status === 401) return 16 // UNAUTHENTICATED
  if (status === 403) return 7 // PERMISSION_DENIED
  if (status === 413 || status === 429) return 8 // RESOURCE_EXHAUSTED
  if (status === 503) return 14 // UNAVAILABLE
  return 13 // INTERNAL
}

/** An error answer of the OTLP receiver: a google.rpc.Status in the request's encoding (JSON when it has none). */
export function otlpError(c: Context, status: ContentfulStatusCode, message: string): Response {
  const encoding = otlpEncoding(c.req.header('content-type')) ?? 'json'
  const headers = new Headers(c.res.headers)
  headers.set('content-type', OTLP_CONTENT_TYPE[encoding])
  return new Response(encodeStatus(encoding, grpcCode(status), message) as BodyInit, {
    status,
    headers,
  })
}

/** An error answer: the API's error body, or a google.rpc.Status on the OTLP receiver. */
function errorAnswer(
  c: Context,
  status: ContentfulStatusCode,
  code: string,
  message: string,
  details: FieldProblem[] = [],
): Response {
  if (OTLP_PATHS.has(c.req.path)) return otlpError(c, status, message)
  return c.json(errorBody(code, message, details), status)
}

export function createOnError(log: Logger): (err: Error, c: Context) => Response {
  return (err, c) => {
    if (isKnownError(err)) {
      const status = STATUS[err.name] ?? 400
      if (err instanceof BusyError || err instanceof RestoringError)
        c.header('Retry-After', String(err.retryAfterS))
      // A failure of the member itself may quote the store's own error, with
      // the paths of its files: those stay in the log, not in the answer.
      if (status >= 500) {
        log.debug({ err, path: c.req.path }, 'request failed')
        const message = err.message.replace(FILE_PATH, '<path>')
        return errorAnswer(c, status, err.code, message, err.details)
      }
      return errorAnswer(c, status, err.code, err.message, err.details)
    }
    if (err instanceof HTTPException) {
      const status = err.status
      const code = status === 413 ? 'limit_exceeded' : status === 400 ? 'bad_request' : 'http_error'
      return errorAnswer(c, status as ContentfulStatusCode, code, err.message || 'bad request')
    }
    log.error({ err, path: c.req.path }, 'request failed')
    return errorAnswer(c, 500, 'internal', 'internal error; see the member log')
  }
}

/**
 * Refuses a body over `maxBytes` with 413 and the error body, before a route
 * reads it: by Content-Length when given, else while it streams in.
 */
export function limitBody(maxBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: (c) =>
      errorAnswer(
        c,
        413,
        'limit_exceeded',
        `the body is larger than ${maxBytes} bytes; nothing was stored or changed`,
        [{ field: 'body', message: `at most ${maxBytes} bytes` }],
      ),
  })
}

export function notFound(c: Context): Response {
  return c.json(errorBody('route_not_found', `no route ${c.req.method} ${c.req.path}`), 404)
}

const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.array(z.object({ field: z.string(), message: z.string() })),
    }),
  })
  .openapi('Error')

/** An error answer for a route's OpenAPI description. */
export function errorResponse(description: string) {
  return { content: { 'application/json': { schema: ErrorSchema } }, description }
}

/** An OpenAPIHono whose request validation failures become InvalidInputError naming each field. */
export function createRoutes() {
  return new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) throw invalidRequest(result.error, result.target)
    },
  })
}

/**
 * A query parameter that may repeat or hold a comma list (`type=a&type=b`,
 * `type=a,b`), as a clean array.
 */
export const listParam = z
  .union([z.string(), z.array(z.string())])
  .optional()
  .transform((v) =>
    (v === undefined ? [] : Array.isArray(v) ? v : [v])
      .flatMap((s) => s.split(','))
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  )
