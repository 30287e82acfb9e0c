// The dashboard: static files shipped in the package (node/ui/) and uPlot
// from node_modules, all served by the member itself at relative URLs, so
// the page needs no network beyond the member. The files hold no data: they
// are open, and the page asks for a read token when the API wants one.

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

/** Paths the dashboard serves; open to all (they hold no data). */
export const UI_PATHS = Object.keys(FILES)

export function createUiRoutes() {
  const app = new Hono()
  // Read once: a handful of small files.
  const bodies = new Map(
    Object.entries(FILES).map(([route, f]) => [
      route,
      { body: readFileSync(f.path), type: f.type },
    ]),
  )
  for (const [route, file] of bodies) {
    app.get(route, (c) =>
      c.body(new Uint8Array(file.body), 200, {
        'content-type': file.type,
        'cache-control': 'no-cache',
      }),
    )
  }
  return app
}
