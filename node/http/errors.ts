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
        return c.json(errorBody(err.code, message, err.details), status)
      }
      return c.json(errorBody(err.code, err.message, err.details), status)
    }
    if (err instanceof HTTPException) {
      const status = err.status
      const code = status === 413 ? 'limit_exceeded' : status === 400 ? 'bad_request' : 'http_error'
      return c.json(errorBody(code, err.message || 'bad request'), status as ContentfulStatusCode)
    }
    log.error({ err, path: c.req.path }, 'request failed')
    return c.json(errorBody('internal', 'internal error; see the member log'), 500)
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
      c.json(
        errorBody(
          'limit_exceeded',
          `the body is larger than ${maxBytes} bytes; nothing was stored or changed`,
          [{ field: 'body', message: `at most ${maxBytes} bytes` }],
        ),
        413,
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
