// Loaded by bin/chorus.js (--import) into the pinned Node when the package
// lies under node_modules: Node refuses to strip the types of TypeScript
// there (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING), so this load hook
// strips the package's own .ts files as Node would elsewhere (erasable
// syntax only; positions kept, so stack traces point at the sources).

import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { registerHooks, stripTypeScriptTypes } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = new URL('../', import.meta.url).href

/**
 * Where stripped sources are kept: beside Node's compile cache, which
 * `chorus start` turns on for a member (node/cli.ts, compileCacheDir).
 * Node's own stripping is cached there too; without this a member would
 * load the stripper (about 15 MiB resident, measured) at every start.
 */
const CACHE = process.env.NODE_COMPILE_CACHE
  ? join(process.env.NODE_COMPILE_CACHE, 'chorus-stripped', process.version)
  : undefined

/** Whether `url` is a TypeScript file of this package (not of a dependency). */
function ours(url) {
  return url.startsWith(ROOT) && url.endsWith('.ts') && !url.includes('/node_modules/', ROOT.length)
}

function strip(source, url) {
  // Node warns once that stripTypeScriptTypes is experimental; that is ours to know, not the user's.
  const emitWarning = process.emitWarning
  process.emitWarning = (warning, ...rest) => {
    if (!String(warning).startsWith('stripTypeScriptTypes'))
      emitWarning.call(process, warning, ...rest)
  }
  try {
    return stripTypeScriptTypes(source, { mode: 'strip', sourceUrl: url })
  } finally {
    process.emitWarning = emitWarning
  }
}

/** The stripped source, from the cache when it holds this very source. */
function stripped(source, url) {
  if (CACHE === undefined) return strip(source, url)
  const file = join(CACHE, `${createHash('sha256').update(`${url}\0${source}`).digest('hex')}.js`)
  try {
    return readFileSync(file, 'utf8')
  } catch {
    // Not cached yet.
  }
  const code = strip(source, url)
  try {
    mkdirSync(CACHE, { recursive: true, mode: 0o700 })
    const temporary = `${file}.${process.pid}`
    writeFileSync(temporary, code, { mode: 0o600 })
    renameSync(temporary, file)
  } catch {
    // A cache that cannot be written costs only time.
  }
  return code
}

registerHooks({
  load(url, context, nextLoad) {
    if (!ours(url)) return nextLoad(url, context)
    const source = readFileSync(fileURLToPath(url), 'utf8')
    return { format: 'module', source: stripped(source, url), shortCircuit: true }
  },
})
