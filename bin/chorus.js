#!/usr/bin/env node
// The `chorus` command of an installed package (npm install -g, npx): runs
// node/cli.ts on the Node 24 that the `node` dependency installed, since
// the Node that runs this file may be older (Debian's is 20) and cannot
// run TypeScript. Plain JavaScript that Node 20 runs.

import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { constants } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { isatty } from 'node:tty'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = join(ROOT, 'node', 'cli.ts')
/** Signals a supervisor or a shell sends to stop the command or have it reload. */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP']

/** The pinned Node binary: the `bin` of the `node` package this package resolves, wherever npm put it. */
function pinnedNode() {
  try {
    const manifest = createRequire(join(ROOT, 'package.json')).resolve('node/package.json')
    const { bin } = JSON.parse(readFileSync(manifest, 'utf8'))
    const path = join(dirname(manifest), typeof bin === 'string' ? bin : bin.node)
    return existsSync(path) ? path : undefined
  } catch {
    return undefined
  }
}

// Without the pinned one, a Node 24 or newer running this file will do.
const major = Number(process.versions.node.split('.')[0])
const node = pinnedNode() ?? (major >= 24 ? process.execPath : undefined)
if (node === undefined) {
  process.stderr.write(
    `chorus: Node 24 is missing (the npm package "node" puts it there with its install script): install chorus again, with install scripts allowed (npm install -g chorus-<version>.tgz; in a checkout: npm ci)\n`,
  )
  process.exit(1)
}

// Node strips the types of TypeScript only outside node_modules; an
// installed package lies inside, so there strip-types.js does it.
const hooks = /[\\/]node_modules[\\/]/.test(ROOT)
  ? ['--import', new URL('./strip-types.js', import.meta.url).href]
  : []
const args = [...hooks, CLI, ...process.argv.slice(2)]

if (typeof process.execve === 'function' && process.platform !== 'win32') {
  // A Node that can (22.15+, 23.11+, so every Node 24, on POSIX) becomes the
  // pinned Node rather than run it as a child: one process, the same pid,
  // so a supervisor's or a terminal's signals reach the CLI itself, once.
  process.execve(node, [node, ...args], process.env)
}

// Older Node (20): run it as a child and pass signals on. A terminal sends
// SIGINT (Ctrl-C) and SIGHUP (hang-up) to the whole process group, the
// child included, so with a terminal those two are not passed on: a member
// seeing its stop signal twice would die of the second before it stopped.
const terminal = [0, 1, 2].some((fd) => isatty(fd))
const child = spawn(node, args, { stdio: 'inherit' })
for (const signal of FORWARDED) {
  process.on(signal, () => {
    if (signal !== 'SIGTERM' && terminal) return
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
  })
}
child.on('error', (err) => {
  process.stderr.write(`chorus: cannot run ${node}: ${err.message}\n`)
  process.exit(1)
})
child.on('exit', (code, signal) => {
  if (signal === null) process.exit(code ?? 1)
  // Die of the same signal, so the shell or supervisor sees what the child saw.
  process.removeAllListeners(signal)
  process.kill(process.pid, signal)
  process.exit(128 + (constants.signals[signal] ?? 0))
})
