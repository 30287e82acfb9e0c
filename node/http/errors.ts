// One mapping from error names to HTTP answers, used by app.onError and by
// validation hooks: `{ "error": { "code", "message", "details" } }`.

import { OpenAPIHono, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { ZodError } from 'zod'
import type { FieldProblem } from '../errors.ts'
import { InvalidInputError, isKnownError } from '../errors.ts'
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
  ConfigError: 400,
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

export function createOnError(log: Logger): (err: Error, c: Context) => Response {
  return (err, c) => {
    if (isKnownError(err)) {
      const status = STATUS[err.name] ?? 400
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
