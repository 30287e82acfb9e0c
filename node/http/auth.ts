// Bearer-token authentication with scopes. A token has one scope: `ingest`
// (POST /v1/events), `read` (queries, members, rollups, the API document),
// `metrics` (/metrics, /metrics/cluster) or `admin` (everything, including
// DELETE /v1/members and POST /v1/backup). With no tokens configured every route is open (the
// config refuses that on a non-loopback address unless --insecure), but on
// loopback only requests that name a loopback Host and come from no other
// web origin get in: a page the operator visits must not reach the member by
// DNS rebinding or a cross-site form. Tokens are compared in constant time
// and never logged, nor echoed in any error, not even a malformed one.

import { createHash, timingSafeEqual } from 'node:crypto'
import type { Context, MiddlewareHandler } from 'hono'
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
  if (method === 'POST' && (path === '/v1/events' || path === '/v1/logs')) return 'ingest'
  if (method === 'DELETE' && path.startsWith('/v1/members/')) return 'admin'
  if (method === 'PUT' && path.startsWith('/v1/config/')) return 'admin'
  // A backup holds every event and the member's private key.
  if (path === '/v1/backup') return 'admin'
  return 'read'
}

const digest = (text: string) => createHash('sha256').update(text).digest()

/**
 * Refuses requests without a token of the route's scope: 401 without a valid
 * token, 403 with the wrong scope. `tokens` is asked on every request, so a
 * reload (SIGHUP) takes effect at once; an empty list leaves every route open.
 */
export function requireTokens(tokens: () => readonly Token[]): MiddlewareHandler {
  // Compare digests: equal lengths for timingSafeEqual, and no early exit on
  // the first differing byte of the token itself. Computed again only when
  // the list in force is replaced.
  let digestsOf: readonly Token[] | undefined
  let known: Array<{ scope: Scope; digest: Buffer }> = []
  return async (c, next) => {
    const current = tokens()
    if (current !== digestsOf) {
      known = current.map((t) => ({ scope: t.scope, digest: digest(t.token) }))
      digestsOf = current
    }
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

/** True for 127.0.0.0/8, ::1 (bare or in brackets) and localhost: addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return (
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ||
    host === '::1' ||
    host === '[::1]' ||
    host === 'localhost'
  )
}

/** The hostname of `text` read as a URL (or as `host[:port]` with `scheme`), normalised; undefined if it is none. */
function hostnameOf(text: string, scheme = ''): string | undefined {
  try {
    return new URL(`${scheme}${text}`).hostname
  } catch {
    return undefined
  }
}

/**
 * While no token is in force (`tokens` empty), admits only requests whose
 * Host is a loopback name or address (any port) and whose Origin, when sent,
 * is a loopback origin: 403 otherwise, naming the rule. A member open to
 * whoever can reach it must stay open only to this machine: a web page the
 * operator visits can aim a request at 127.0.0.1 (a cross-site "simple"
 * request, which needs no preflight) or at a name of its own that it then
 * points at 127.0.0.1 (DNS rebinding, which the Host gives away). Use only
 * when the member listens on loopback; with tokens, a page cannot send the
 * Authorization header without a preflight this member never grants.
 */
export function requireLoopbackWhileOpen(tokens: () => readonly Token[]): MiddlewareHandler {
  const refuse = (c: Context, field: 'host' | 'origin', message: string) =>
    c.json(
      errorBody(
        `${field}_not_allowed`,
        `this member has no tokens, so it ${message}; configure tokens to serve others`,
        [
          {
            field,
            message: 'must be localhost, 127.0.0.0/8 or [::1] while no tokens are configured',
          },
        ],
      ),
      403,
    )
  return async (c, next) => {
    if (tokens().length > 0) return next()
    // Node's server always has a Host (HTTP/1.1 requires one; it fills in the
    // listening address for HTTP/1.0); app.request() in tests has only a URL.
    const host = hostnameOf(c.req.header('host') ?? new URL(c.req.url).host, 'http://')
    if (host === undefined || !isLoopback(host)) {
      return refuse(
        c,
        'host',
        'answers only requests addressed to a loopback name (Host: localhost, 127.0.0.1 or [::1], any port)',
      )
    }
    const origin = c.req.header('origin')
    const from = origin === undefined ? 'localhost' : hostnameOf(origin)
    if (from === undefined || !isLoopback(from)) {
      return refuse(
        c,
        'origin',
        'refuses requests from web pages of other sites (Origin: http(s)://localhost, 127.0.0.1 or [::1], any port)',
      )
    }
    return next()
  }
}

/**
 * Parses `scope token` lines (a tokens file) or `scope:token` items
 * (CHORUS_TOKENS, config). Problems name `where` and the line or entry
 * number and the rule, never any of the entry's text: a line without a
 * scope may be a bare token.
 */
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
    const label = `${where} ${separator === ' ' ? 'line' : 'entry'} ${index + 1}`
    const form = separator === ' ' ? '"SCOPE TOKEN"' : '"scope:token"'
    if (!(SCOPES as readonly string[]).includes(scope)) {
      problems.push(
        `${label}: must be ${form}, and scope must be one of ${SCOPES.join(', ')} (the text is not shown: it may hold a token)`,
      )
      return
    }
    if (token.length < MIN_TOKEN_LENGTH) {
      problems.push(`${label}: tokens shorter than ${MIN_TOKEN_LENGTH} characters are refused`)
      return
    }
    tokens.push({ scope: scope as Scope, token })
  })
  return { tokens, problems }
}
