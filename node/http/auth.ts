// Bearer-token authentication with scopes. A token has one scope: `ingest`
// (POST /v1/events), `read` (queries, members, rollups, the API document),
// `metrics` (/metrics, /metrics/cluster) or `admin` (everything, including
// DELETE /v1/members). With no tokens configured every route is open (the
// config refuses that on a non-loopback address unless --insecure).
// Tokens are compared in constant time and never logged.

import { createHash, timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { errorBody } from './errors.ts'

export const SCOPES = ['ingest', 'read', 'admin', 'metrics'] as const
export type Scope = (typeof SCOPES)[number]

/** Shortest token accepted at start. */
export const MIN_TOKEN_LENGTH = 16

export interface Token {
  scope: Scope
  token: string
}

/** The scope a route needs, or undefined for routes open to all (liveness, readiness). */
export function scopeOf(method: string, path: string): Scope | undefined {
  if (path === '/healthz' || path === '/readyz') return undefined
  // The dashboard's files hold no data; its page asks for a token for the API.
  if (path === '/' || path.startsWith('/ui/')) return undefined
  if (path === '/metrics' || path === '/metrics/cluster') return 'metrics'
  if (method === 'POST' && path === '/v1/events') return 'ingest'
  if (method === 'DELETE' && path.startsWith('/v1/members/')) return 'admin'
  if (method === 'PUT' && path === '/v1/config/health') return 'admin'
  return 'read'
}

const digest = (text: string) => createHash('sha256').update(text).digest()

/** Refuses requests without a token of the route's scope: 401 without a valid token, 403 with the wrong scope. */
export function requireTokens(tokens: readonly Token[]): MiddlewareHandler {
  // Compare digests: equal lengths for timingSafeEqual, and no early exit on
  // the first differing byte of the token itself.
  const known = tokens.map((t) => ({ scope: t.scope, digest: digest(t.token) }))
  return async (c, next) => {
    if (known.length === 0) return next()
    const needed = scopeOf(c.req.method, c.req.path)
    if (needed === undefined) return next()
    const header = c.req.header('authorization') ?? ''
    const match = /^Bearer\s+(\S+)$/i.exec(header)
    let scopes: Scope[] = []
    if (match !== null) {
      const presented = digest(match[1] as string)
      scopes = known.filter((k) => timingSafeEqual(k.digest, presented)).map((k) => k.scope)
    }
    if (scopes.length === 0) {
      c.header('WWW-Authenticate', 'Bearer realm="chorus"')
      return c.json(
        errorBody('unauthorized', 'a valid token is required: send "Authorization: Bearer TOKEN"', [
          { field: 'authorization', message: 'missing or unknown token' },
        ]),
        401,
      )
    }
    if (!scopes.includes(needed) && !scopes.includes('admin')) {
      return c.json(
        errorBody('forbidden', `this route needs a token with scope "${needed}" (or "admin")`, [
          { field: 'authorization', message: `scope "${needed}" required` },
        ]),
        403,
      )
    }
    return next()
  }
}

/** Parses `scope token` lines (a tokens file) or `scope:token` items (CHORUS_TOKENS, config). */
export function parseTokens(
  entries: readonly string[],
  separator: ' ' | ':',
  where: string,
): { tokens: Token[]; problems: string[] } {
  const tokens: Token[] = []
  const problems: string[] = []
  entries.forEach((raw, index) => {
    const entry = raw.trim()
    if (entry === '' || entry.startsWith('#')) return
    const at = separator === ' ' ? entry.search(/\s/) : entry.indexOf(':')
    const scope = at < 0 ? entry : entry.slice(0, at)
    const token = at < 0 ? '' : entry.slice(at + 1).trim()
    const label = `${where} entry ${index + 1}`
    if (!(SCOPES as readonly string[]).includes(scope)) {
      problems.push(
        `${label}: scope must be one of ${SCOPES.join(', ')} (got ${JSON.stringify(scope.slice(0, 20))})`,
      )
      return
    }
    if (token.length < MIN_TOKEN_LENGTH) {
      // Never echo a token, not even a short one.
      problems.push(`${label}: tokens shorter than ${MIN_TOKEN_LENGTH} characters are refused`)
      return
    }
    tokens.push({ scope: scope as Scope, token })
  })
  return { tokens, problems }
}
