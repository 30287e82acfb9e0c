// The dashboard: static files shipped in the package (node/ui/) and uPlot
// from node_modules, all served by the member itself at relative URLs, so
// the page needs no network beyond the member. The files hold no data: they
// are open, and the page asks for a read token when the API wants one.
// Each file has an ETag (a hash of its bytes): a reload or a page kept open
// revalidates with If-None-Match and gets 304 without the body. A content
// security policy holds the page to its own origin: no inline script, no
// other origin's script, style or connection, and no framing.

import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, extname, join } from 'node:path'
import { Hono } from 'hono'

const UI_DIR = join(import.meta.dirname, '..', 'ui')
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot'))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
}

/** Every file of node/ui/ under /ui/ (index.html at /), and uPlot's two files. */
const FILES: Record<string, { path: string; type: string }> = {
  '/': { path: join(UI_DIR, 'index.html'), type: TYPES['.html'] as string },
  ...Object.fromEntries(
    readdirSync(UI_DIR)
      .filter((name) => name !== 'index.html' && TYPES[extname(name)] !== undefined)
      .map((name) => [
        `/ui/${name}`,
        { path: join(UI_DIR, name), type: TYPES[extname(name)] as string },
      ]),
  ),
  '/ui/vendor/uplot.js': {
    path: join(UPLOT_DIR, 'uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  '/ui/vendor/uplot.css': {
    path: join(UPLOT_DIR, 'uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
}

const POLICY = [
  "default-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

/** Paths the dashboard serves; open to all (they hold no data). */
export const UI_PATHS = Object.keys(FILES)

export function createUiRoutes() {
  const app = new Hono()
  // Read once: a handful of small files.
  const bodies = new Map(
    Object.entries(FILES).map(([route, f]) => {
      const body = readFileSync(f.path)
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
      return [route, { body, type: f.type, etag }]
    }),
  )
  for (const [route, file] of bodies) {
    app.get(route, (c) => {
      const headers = {
        etag: file.etag,
        'cache-control': 'no-cache',
        'content-security-policy': POLICY,
        'x-content-type-options': 'nosniff',
      }
      const known = c.req.header('if-none-match')
      if (known?.split(/\s*,\s*/).some((tag) => tag === file.etag || tag === '*') === true)
        return c.body(null, 304, headers)
      return c.body(new Uint8Array(file.body), 200, { ...headers, 'content-type': file.type })
    })
  }
  return app
}
