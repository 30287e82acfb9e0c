#!/usr/bin/env node
// The chorus command: `start` runs a member; `emit` and `query` are clients
// of a member's HTTP API. Errors are one line on stderr and a non-zero exit.

import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, lstatSync, mkdirSync } from 'node:fs'
import { appendFile, readFile, writeFile } from 'node:fs/promises'
import { flushCompileCache } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { getCACertificates, setDefaultCACertificates } from 'node:tls'
import { generateKey } from '@libp2p/pnet'
import { Command, Option } from 'commander'
import { approve, generateAdminKey } from './approval.ts'
import type { RawOptions, StartOption } from './config.ts'
import {
  DEFAULT_HTTP_HOST,
  DEFAULT_HTTP_PORT,
  envName,
  FLAG_OPTIONS,
  LIST_OPTIONS,
  resolveConfig,
  START_OPTIONS,
} from './config.ts'
import { ConfigError, isKnownError } from './errors.ts'
import type { ChorusEvent } from './event/event.ts'
import { SEVERITIES } from './event/event.ts'
import { parseId } from './event/id.ts'
import { HEALTH_RULES_SETTING } from './health/config.ts'
import { SCOPES } from './http/auth.ts'
import { readSse } from './http/sse.ts'
import { heapFlags } from './memory.ts'
import { MAX_REPLICAS, MIN_REPLICAS, REPLICAS_SETTING } from './replica/setting.ts'
import { ROCKSDB_BINDING_VERSION, VERSION } from './version.ts'

const DEFAULT_URL = `http://${DEFAULT_HTTP_HOST}:${DEFAULT_HTTP_PORT}`

class CliError extends Error {
  override readonly name = 'CliError'
}

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`chorus: ${message}\n`)
  process.exit(isKnownError(err) && err.name === 'ConfigError' ? 2 : 1)
}

const START_HELP: Record<StartOption, string> = {
  name: 'member name, unique in the array (default: host name)',
  'data-dir': "directory for the member's files (default: .chorus/data)",
  http: `HTTP listen address HOST:PORT (default: ${DEFAULT_HTTP_HOST}:${DEFAULT_HTTP_PORT})`,
  retention: 'delete events older than this duration (default: 7d)',
  'retention-size':
    "bound of the store's size, such as 10GiB: over it the oldest events and rollups are deleted, at least half of --memory-budget (default: none)",
  'query-timeout': 'per-member deadline of queries (default: 2s)',
  'max-body-bytes':
    'largest ingest request body in bytes (default: 16777216, or less to fit --memory-budget: 8388608 at 128MiB)',
  'max-events-per-request': 'most events in one ingest request (default: 10000)',
  'log-level': 'trace, debug, info, warn, error, fatal or silent (default: info)',
  listen: 'p2p listen multiaddr, repeatable (default: /ip4/127.0.0.1/tcp/7701)',
  join: 'multiaddr of any member to join through, with or without /p2p/<id>; repeatable',
  'probe-interval':
    'membership probe interval: each member pings one it watches this often (default: 1s)',
  'forget-after': 'forget dead and left members after this duration (default: 24h)',
  'max-clock-jump':
    'a larger step of the clock is not followed by event stamps, and warns (default: 1h)',
  'rollup-retention': 'keep rollups per resolution (default: 10s=2d,1m=30d,1h=365d)',
  'metrics-type-limit':
    'most distinct type labels in /metrics; the rest count as "other" (default: 200)',
  'tokens-file':
    'file of "scope token" lines (scopes: ingest, read, admin, metrics); or CHORUS_TOKENS=scope:token,...',
  'tls-cert': 'PEM certificate: serve HTTPS (with --tls-key)',
  'tls-key': 'PEM private key of --tls-cert',
  insecure: 'allow a non-loopback address without tokens or swarm key',
  'swarm-key': 'file written by `chorus keygen`: only members holding it can connect',
  'allow-peer': 'peer id allowed to connect, repeatable (default: any holder of the swarm key)',
  'admin-public-key':
    'ed25519:… key printed by `chorus keygen --admin`: array-wide settings need its approval (default: none)',
  'max-concurrent-queries': 'queries coordinated at once; more are answered 429 (default: 16)',
  'collect-interval':
    'how often to sample this server (CPU, memory, disk, network, process) (default: 10s)',
  'no-collect': 'do not sample this server',
  replicas:
    "copies of every member's events in the array, its own included, 1 to 5; 1 keeps none; the array-wide count until `chorus config replicas N` sets another (default: 2)",
  'rereplicate-after':
    "a member away this long hands its copies of others' events on to the next member (default: 1m)",
  'memory-budget':
    'memory the member divides between its JS heap, RocksDB and requests in flight, at least 96MiB (default: 128MiB)',
  alertmanager:
    'Alertmanager URL (http://host:9093), repeatable: health rules that fire and clear are posted to its API v2',
  'alertmanager-credentials':
    'file whose first line is "Bearer TOKEN" or "Basic USER:PASSWORD", sent to the Alertmanagers',
  webhook: 'URL, repeatable: every health transition is posted to it as JSON',
  'webhook-secret':
    'file holding a secret (16+ characters): webhook bodies are signed with HMAC-SHA256 (Chorus-Signature header)',
  'array-name': 'the array label of alerts and webhook messages (default: chorus)',
  'access-log': 'log one line per HTTP request: method, path, status, duration (default: off)',
}

/**
 * The compile cache's directory: one per user in the temporary directory
 * (not the data dir, whose disk holds the events), shared by every member
 * that user runs. Used only if this user owns it and no one else can write
 * it, since Node runs what it finds there; undefined otherwise.
 */
function compileCacheDir(): string | undefined {
  const uid = process.getuid?.() ?? 0
  const dir = join(tmpdir(), `chorus-compile-cache-${uid}`)
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const stat = lstatSync(dir)
    if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o022) !== 0) return undefined
    return dir
  } catch {
    return undefined
  }
}

/** glibc malloc settings of a member process (see startWithHeapFlags). */
const MALLOC_TUNABLES =
  'glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=1048576:glibc.malloc.arena_max=2'

/** Set in the environment of a member process once heapFlags are in force (see startWithHeapFlags). */
const HEAP_FLAGS_ENV = 'CHORUS_HEAP_FLAGS'

/**
 * Replaces this process with one running the same command under the V8
 * flags of the memory budget (the heap's limits are fixed when V8 starts,
 * so they cannot be set from inside). The new process keeps the pid, so a
 * supervisor or `kill` sees no change. It also keeps a compile cache (see
 * compileCacheDir): from the second start on, Node loads the stripped
 * TypeScript from it and never loads its TypeScript stripper (about 17 MiB).
 * Returns only where the runtime cannot replace a process (then the member
 * runs with V8's default limits).
 */
function startWithHeapFlags(flags: string[]): void {
  if (process.env[HEAP_FLAGS_ENV] !== undefined || typeof process.execve !== 'function') return
  const env: Record<string, string> = { [HEAP_FLAGS_ENV]: flags.join(' ') }
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined) env[name] = value
  if (!env.NODE_COMPILE_CACHE) {
    const cache = compileCacheDir()
    if (cache !== undefined) env.NODE_COMPILE_CACHE = cache
  }
  // glibc's malloc otherwise raises its mmap threshold after large frees and
  // keeps freed memory (request bodies, RocksDB blocks) in per-thread
  // arenas: measured, 12 MiB more resident after the same load. (Thresholds
  // of 128 KiB saved 40 MiB but cost ingest about 10%.)
  env.GLIBC_TUNABLES ??= MALLOC_TUNABLES
  // Flags given to this process come after the budget's, so they win.
  const args = [...flags, ...process.execArgv, ...process.argv.slice(1)]
  process.execve(process.execPath, [process.execPath, ...args], env)
}

function camel(option: string): string {
  return option.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
}

interface ClientOptions {
  url: string
  token?: string
}

/** The error of an answer that is not 2xx: its status and the message of its error body (or the body). */
function refused(status: number, text: string): CliError {
  let message = text
  try {
    message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text
  } catch {
    // Not JSON: the body as it came.
  }
  return new CliError(`${status}: ${message}`)
}

async function request(
  client: ClientOptions,
  method: string,
  path: string,
  init: {
    body?: string
    type?: string
    /** Statuses besides 2xx whose JSON body is returned rather than refused. */
    allow?: readonly number[]
  } = {},
) {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (client.token !== undefined) headers.authorization = `Bearer ${client.token}`
  if (init.type !== undefined) headers['content-type'] = init.type
  let response: Response
  const url = new URL(path, client.url.endsWith('/') ? client.url : `${client.url}/`)
  try {
    response = await fetch(url, {
      method,
      headers,
      body: init.body,
      signal: AbortSignal.timeout(30_000),
    })
  } catch (err) {
    throw new CliError(
      `cannot reach ${client.url}: ${(err as Error).cause ?? (err as Error).message}`,
    )
  }
  const text = await response.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new CliError(
      `${method} ${url.pathname} answered ${response.status} with a body that is not JSON`,
    )
  }
  if (!response.ok && !(init.allow ?? []).includes(response.status))
    throw refused(response.status, text)
  return body
}

/** The ts of an event id given on the command line, or a usage error naming `field`. */
function tsOfId(text: string, field = '--after'): number {
  const parts = parseId(text)
  if (parts === undefined)
    throw new ConfigError(`${field} must be an event id, got ${JSON.stringify(text)}`)
  return parts.ts
}

/**
 * Reads a member's live stream (GET /v1/events/stream, Server-Sent Events):
 * yields [] once the stream is open (every member's mark taken), then the
 * events of each chunk as they come. A cut stream is opened again with the
 * last id it sent (Last-Event-ID), after 1 s and up to 10 s between tries,
 * until `signal` aborts; an answer that is not 200 ends it with that error.
 */
async function* followStream(
  client: ClientOptions,
  path: string,
  signal: AbortSignal,
): AsyncGenerator<ChorusEvent[]> {
  const url = new URL(path, client.url.endsWith('/') ? client.url : `${client.url}/`)
  let lastId: string | undefined
  let backoffMs = 1000
  let opened = false
  while (!signal.aborted) {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (client.token !== undefined) headers.authorization = `Bearer ${client.token}`
    if (lastId !== undefined) headers['last-event-id'] = lastId
    let response: Response
    try {
      response = await fetch(url, { headers, signal })
    } catch (err) {
      if (signal.aborted) return
      if (!opened)
        throw new CliError(
          `cannot reach ${client.url}: ${(err as Error).cause ?? (err as Error).message}`,
        )
      await new Promise((resolve) => setTimeout(resolve, backoffMs))
      backoffMs = Math.min(10_000, backoffMs * 2)
      continue
    }
    if (response.status !== 200 || response.body === null)
      throw refused(response.status, await response.text())
    if (!opened) {
      opened = true
      yield []
    }
    backoffMs = 1000
    try {
      for await (const messages of readSse(response.body)) {
        const events: ChorusEvent[] = []
        for (const m of messages) {
          if (m.id !== undefined) lastId = m.id
          if (m.type === 'message' && m.data !== '') events.push(JSON.parse(m.data) as ChorusEvent)
        }
        if (events.length > 0) yield events
      }
    } catch {
      // Cut: opened again below, from the last id.
    }
    if (signal.aborted) return
    await new Promise((resolve) => setTimeout(resolve, backoffMs))
  }
}

function clientOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--url <url>', 'member HTTP address').env('CHORUS_URL').default(DEFAULT_URL),
    )
    .addOption(new Option('--token <token>', 'bearer token').env('CHORUS_TOKEN'))
    .addOption(
      new Option(
        '--ca-cert <file>',
        "PEM certificate(s) to trust for the member's HTTPS besides the system's (a private CA)",
      ).env('CHORUS_CA_CERT'),
    )
    .hook('preAction', async (_command, action) => {
      const file = action.opts().caCert as string | undefined
      if (file === undefined) return
      let pem: string
      try {
        pem = await readFile(file, 'utf8')
      } catch (err) {
        throw new ConfigError(
          `--ca-cert: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`,
        )
      }
      const certs = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)
      if (certs === null) throw new ConfigError(`--ca-cert: ${file} holds no PEM certificate`)
      // Every HTTPS connection this process makes after this trusts them too.
      setDefaultCACertificates([...getCACertificates('default'), ...certs])
    })
}

/** The filters of a result set, as `query` and `export` take them. */
function filterOptions(command: Command): Command {
  return command
    .option('--from <time>', 'RFC 3339, epoch ms, or a duration back from now (default 15m)')
    .option('--to <time>', 'end of the period (default now)')
    .option(
      '--type <type>',
      'exact type or prefix like http.*; a leading - excludes (--type=-host.*); repeatable',
      collect,
    )
    .addOption(new Option('--severity <severity>', 'minimum severity').choices(SEVERITIES))
    .option('--member <name>', 'member name or peer id, repeatable', collect)
    .option('--q <text>', 'substring of message')
    .option(
      '--where <name=value>',
      'attribute equals value (numbers and booleans by value); repeatable',
      collect,
    )
}

/** The filters given to a command of filterOptions, as query parameters. */
function filterParams(opts: Record<string, unknown>): URLSearchParams {
  const params = new URLSearchParams()
  for (const key of ['from', 'to', 'severity', 'q'] as const) {
    const value = opts[key]
    if (typeof value === 'string') params.set(key, value)
  }
  for (const key of ['type', 'member'] as const) {
    for (const value of (opts[key] as string[] | undefined) ?? []) params.append(key, value)
  }
  for (const where of (opts.where as string[] | undefined) ?? []) {
    const at = where.indexOf('=')
    if (at < 1) throw new ConfigError(`--where must be name=value, got ${JSON.stringify(where)}`)
    params.append(`attr.${where.slice(0, at)}`, where.slice(at + 1))
  }
  return params
}

/** Prints rows as left-aligned columns, the first row being the header. */
function printRows(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  for (const row of rows) {
    process.stdout.write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd()}\n`,
    )
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** The event table's columns and their widths: the same on every page, so a followed table stays aligned. */
const TABLE_COLUMNS: ReadonlyArray<readonly [string, number]> = [
  ['TIME', 24],
  ['MEMBER', 12],
  ['TYPE', 24],
  ['SEVERITY', 8],
  ['VALUE', 10],
  ['ATTRS', 32],
  ['MESSAGE', 0],
]

/** A cell cut to `width` characters (… marks a cut), then padded; the last column is left whole. */
function cell(text: string, width: number): string {
  if (width === 0) return text
  const cut = text.length > width ? `${text.slice(0, width - 1)}…` : text
  return cut.padEnd(width)
}

function tableHeader(): string {
  return TABLE_COLUMNS.map(([name, width]) => cell(name, width))
    .join('  ')
    .trimEnd()
}

function formatTable(events: ChorusEvent[]): string {
  return events
    .map((e) =>
      [
        new Date(e.ts).toISOString(),
        e.memberName,
        e.type,
        e.severity,
        e.value === undefined ? '' : String(e.value),
        Object.entries(e.attrs ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
        e.message ?? '',
      ]
        .map((text, i) => cell(text, (TABLE_COLUMNS[i] as readonly [string, number])[1]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

const program = new Command('chorus')
  .description('An array of servers that answers like one server.')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  // Exit codes: 0 ok, 1 failure, 2 usage or configuration error (commander's own are 1).
  .exitOverride((err) => {
    const shown = ['commander.helpDisplayed', 'commander.version', 'commander.help']
    process.exit(shown.includes(err.code) ? 0 : 2)
  })

// A reader that goes away (`chorus query | head -1`) ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  fail(new CliError(`cannot write to standard output: ${err.code ?? err.message}`))
})

program
  .command('version')
  .description('print the version, and the Node and RocksDB binding versions it runs on')
  .action(() => {
    process.stdout.write(
      `chorus ${VERSION}\nnode ${process.versions.node}\nrocksdb binding ${ROCKSDB_BINDING_VERSION}\n`,
    )
  })

const start = program.command('start').description('run a member')
for (const option of START_OPTIONS) {
  const help = `${START_HELP[option]} [env ${envName(option)}]`
  if (LIST_OPTIONS.includes(option)) start.option(`--${option} <value>`, help, collect)
  else if (FLAG_OPTIONS.includes(option)) start.option(`--${option}`, help)
  else start.option(`--${option} <value>`, help)
}
start.option('--config <file>', 'YAML file with the same keys as these flags [env CHORUS_CONFIG]')
start.action(async (opts: Record<string, string | string[] | boolean | undefined>) => {
  const flags: RawOptions = {}
  for (const option of START_OPTIONS) {
    // Commander turns --no-collect into collect: false.
    const value = (
      option === 'no-collect' ? (opts.collect === false ? true : undefined) : opts[camel(option)]
    ) as string | string[] | boolean | undefined
    if (value !== undefined) flags[option] = typeof value === 'boolean' ? String(value) : value
  }
  const configFile = typeof opts.config === 'string' ? opts.config : undefined
  const sources =
    configFile === undefined ? { flags, env: process.env } : { flags, env: process.env, configFile }
  const config = resolveConfig(sources)
  startWithHeapFlags(heapFlags(config.memory))
  const { createMember } = await import('./index.ts')
  const member = await createMember(config)
  await member.start()
  // Every module is loaded by now: keep them for the next start (see startWithHeapFlags).
  flushCompileCache()
  process.stdout.write(
    `chorus member ${member.name} (${member.peerId}) listening on ${member.url} and ${member.p2pAddrs().join(' ')}\n`,
  )
  // A signal may come twice (to the launcher's process group and to this
  // process): one stop, and the second is not left to kill it half-stopped.
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    process.stdout.write(`${signal}: stopping\n`)
    member.stop().then(
      () => process.exit(0),
      (err: unknown) => fail(err),
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  // SIGHUP reads the configuration again from the same flags, environment
  // and file, and puts its tokens and TLS certificate in force; the member
  // logs why when it cannot, and keeps those it has. Other options need a
  // restart. (A listener also stops SIGHUP from ending the process.)
  process.on('SIGHUP', () => {
    member.reloadCredentials(() => resolveConfig(sources))
  })
})

clientOptions(
  program
    .command('emit')
    .description('log one event on a member')
    .requiredOption('--type <type>', 'dotted event type, e.g. app.deploy')
    .addOption(new Option('--severity <severity>', 'severity').choices(SEVERITIES))
    .option('--message <text>', 'message text')
    .option('--source <text>', 'origin of the event')
    .option('--value <number>', 'a number that rollups aggregate')
    .option('--time <time>', 'when the event happened, as the client says')
    .option(
      '--attr <key=value>',
      'attribute, repeatable (values are text; see --attr-json)',
      collect,
    )
    .option('--attr-json', 'read attribute values as JSON: numbers, true and false stay typed')
    .addOption(
      new Option(
        '--durability <durability>',
        'answer once stored here (local), or once every copy is synced (replicated)',
      )
        .choices(['local', 'replicated'])
        .default('local'),
    )
    .option('--timeout <duration>', 'with --durability replicated, how long to wait (default 2s)'),
).action(async (opts: Record<string, string | string[] | boolean | undefined> & ClientOptions) => {
  const event: Record<string, unknown> = { type: opts.type }
  for (const field of ['severity', 'message', 'source', 'time'] as const) {
    if (opts[field] !== undefined) event[field] = opts[field]
  }
  if (opts.value !== undefined) {
    const value = Number(opts.value)
    if (!Number.isFinite(value))
      throw new CliError(`--value must be a number, got ${JSON.stringify(opts.value)}`)
    event.value = value
  }
  if (opts.attr !== undefined) {
    const attrs: Record<string, string | number | boolean> = {}
    for (const pair of opts.attr as string[]) {
      const at = pair.indexOf('=')
      if (at <= 0) throw new CliError(`--attr must be key=value, got ${JSON.stringify(pair)}`)
      const raw = pair.slice(at + 1)
      // Text unless asked: version=1.10 stays "1.10", not the number 1.1.
      let value: string | number | boolean = raw
      if (opts.attrJson === true) {
        let parsed: unknown
        try {
          parsed = JSON.parse(raw)
        } catch {
          parsed = raw
        }
        if (typeof parsed !== 'string' && typeof parsed !== 'number' && typeof parsed !== 'boolean')
          throw new CliError(
            `--attr ${pair.slice(0, at)}: with --attr-json a value is a JSON string, number or boolean`,
          )
        value = parsed
      }
      attrs[pair.slice(0, at)] = value
    }
    event.attrs = attrs
  }
  const params = new URLSearchParams({ durability: String(opts.durability) })
  if (opts.timeout !== undefined) params.set('timeout', String(opts.timeout))
  const body = (await request(opts, 'POST', `v1/events?${params}`, {
    body: JSON.stringify(event),
    type: 'application/json',
    allow: [504],
  })) as { ids: string[]; error?: { code: string; message: string } }
  process.stdout.write(`${body.ids[0]}\n`)
  // Stored, but its copies unconfirmed: the id is printed, and the exit code says so.
  if (body.error !== undefined) throw new CliError(`${body.error.code}: ${body.error.message}`)
})

clientOptions(
  filterOptions(program.command('query').description('print a result set of the whole array'))
    .option('--limit <n>', 'page size, 1 to 10000')
    .addOption(new Option('--order <order>', 'asc or desc').choices(['asc', 'desc']))
    .option('--cursor <cursor>', 'continue a result set (next or prev of an earlier page)')
    .option('--after <id>', 'start just after this event id')
    .option('--before <id>', 'start just before this event id')
    .option('--timeout <duration>', 'per-member deadline, e.g. 2s')
    .option('--all', 'include host samples (host.*), which are left out unless --type names them')
    .addOption(
      new Option(
        '--output <format>',
        'table (default), json (the whole answer) or ndjson (one event a line)',
      ).choices(['table', 'json', 'ndjson']),
    )
    .option('--json', 'the same as --output json')
    .option('--follow', 'keep printing new events as they arrive, oldest first (Ctrl-C stops)'),
).action(async (opts: Record<string, string | string[] | boolean | undefined> & ClientOptions) => {
  const output = opts.json === true ? 'json' : ((opts.output as string | undefined) ?? 'table')
  // Newest first for a person looking; oldest first for a tail, and from
  // an id (--after, --before) or a cursor as those name it.
  if (
    opts.order === undefined &&
    opts.cursor === undefined &&
    opts.after === undefined &&
    opts.before === undefined
  )
    opts.order = opts.follow === true ? 'asc' : 'desc'
  const params = filterParams(opts)
  // Host samples (about one a second per member) would bury everything else.
  if (opts.all !== true && ((opts.type as string[] | undefined) ?? []).length === 0)
    params.append('type', '-host.*')
  for (const key of ['limit', 'order', 'cursor', 'after', 'before', 'timeout'] as const) {
    const value = opts[key]
    if (typeof value === 'string') params.set(key, value)
  }
  const print = (events: ChorusEvent[]) => {
    if (events.length === 0) return
    if (output === 'table') process.stdout.write(`${formatTable(events)}\n`)
    else for (const e of events) process.stdout.write(`${JSON.stringify(e)}\n`)
  }
  type Page = {
    events: ChorusEvent[]
    firstId: string | null
    lastId: string | null
    next: string | null
    members: Array<{ name: string; status: string }>
    partial: boolean
  }
  if (opts.follow !== true) {
    const page = (await request(opts, 'GET', `v1/events?${params}`)) as Page
    if (output === 'json') {
      process.stdout.write(`${JSON.stringify(page)}\n`)
      return
    }
    if (output === 'table') process.stdout.write(`${tableHeader()}\n`)
    print(page.events)
    if (output !== 'table') return
    const missing = page.members
      .filter((m) => m.status !== 'ok')
      .map((m) => `${m.name} ${m.status}`)
    process.stdout.write(
      `${page.events.length} events, first id ${page.firstId ?? '-'}, last id ${page.lastId ?? '-'}${page.partial ? ` (partial: ${missing.join(', ')})` : ''}\n`,
    )
    if (page.next !== null) process.stdout.write(`next: ${page.next}\n`)
    return
  }
  // Follow: the live stream is opened first (it takes every member's mark),
  // then the recent events are printed, then the stream's; an event in both
  // is printed once.
  const stream = new URLSearchParams(params)
  for (const key of ['limit', 'order', 'cursor', 'after', 'before', 'to']) stream.delete(key)
  if (opts.after === undefined) stream.delete('from')
  else stream.set('from', String(tsOfId(opts.after as string)))
  const seen = new Set<string>()
  const fresh = (events: ChorusEvent[]) => {
    const out = events.filter((e) => !seen.has(e.id))
    for (const e of out) seen.add(e.id)
    // Duplicates come only from a round resent after a reconnect: recent ids suffice.
    if (seen.size > 100_000) seen.clear()
    return out
  }
  const stopped = new AbortController()
  process.once('SIGINT', () => stopped.abort())
  const tail = followStream(opts, `v1/events/stream?${stream}`, stopped.signal)
  const opening = await tail.next()
  if (output === 'table') process.stdout.write(`${tableHeader()}\n`)
  if (opts.after === undefined) {
    const page = (await request(opts, 'GET', `v1/events?${params}`)) as Page
    print(fresh(page.events))
  }
  if (opening.done !== true) print(fresh(opening.value))
  for await (const events of tail) print(fresh(events))
})

/** Exit code of an export that ended but is partial (some member's events are missing). */
const EXIT_PARTIAL = 3
/** `chorus health`'s exit code by the array's state. */
const HEALTH_EXIT: Record<string, number> = { ok: 0, warning: 1, critical: 2 }
clientOptions(
  filterOptions(
    program
      .command('export')
      .description('write the whole of a result set as NDJSON, one event a line, then an end line'),
  )
    .addOption(new Option('--order <order>', 'asc or desc').choices(['asc', 'desc']))
    .option('--after <id>', 'start just after this event id (resume a cut export)')
    .option('--timeout <duration>', 'per-member deadline, e.g. 2s')
    .option('--out <file>', 'write to this file instead of standard output'),
).action(async (opts: Record<string, string | string[] | undefined> & ClientOptions) => {
  const params = filterParams(opts)
  for (const key of ['order', 'after', 'timeout'] as const) {
    const value = opts[key]
    if (typeof value === 'string') params.set(key, value)
  }
  const url = new URL(`v1/export?${params}`, opts.url.endsWith('/') ? opts.url : `${opts.url}/`)
  const headers: Record<string, string> = { accept: 'application/x-ndjson' }
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
  const abort = new AbortController()
  // Only the start of the answer has a deadline; the export takes as long as it takes.
  const started = setTimeout(() => abort.abort(new Error('no answer within 30s')), 30_000)
  let response: Response
  try {
    response = await fetch(url, { headers, signal: abort.signal })
  } catch (err) {
    throw new CliError(
      `cannot reach ${opts.url}: ${(err as Error).cause ?? (err as Error).message}`,
    )
  } finally {
    clearTimeout(started)
  }
  if (!response.ok || response.body === null) {
    throw refused(response.status, await response.text())
  }
  const out = typeof opts.out === 'string' ? createWriteStream(opts.out) : process.stdout
  let broken = false
  out.on('error', (err: NodeJS.ErrnoException) => {
    // A reader that went away (| head) ends the export quietly; anything else is an error.
    broken = true
    abort.abort(err)
    if (err.code !== 'EPIPE')
      fail(new CliError(`cannot write ${opts.out ?? 'stdout'}: ${err.code}`))
  })
  const progress = process.stderr.isTTY === true
  const begun = performance.now()
  let count = 0
  let lastId: string | null = null
  const members = new Set<string>()
  let shown = 0
  const show = (final: boolean) => {
    const seconds = (performance.now() - begun) / 1000
    process.stderr.write(
      `\r${count} events, ${Math.round(count / Math.max(seconds, 0.001))} events/s, ${members.size} members${final ? '\n' : ''}`,
    )
  }
  let end:
    | {
        count: number
        lastId: string | null
        partial: boolean
        members: Array<{ name: string; status: string; error?: string }>
      }
    | undefined
  let rest = ''
  const decoder = new TextDecoder()
  try {
    for await (const bytes of Readable.fromWeb(
      response.body as never,
    ) as AsyncIterable<Uint8Array>) {
      const text = rest + decoder.decode(bytes, { stream: true })
      const cut = text.lastIndexOf('\n')
      if (cut < 0) {
        rest = text
        continue
      }
      rest = text.slice(cut + 1)
      let lines = ''
      for (const line of text.slice(0, cut).split('\n')) {
        if (line.startsWith('{"end":')) {
          // Written too: a file with its end line is a whole export.
          end = (JSON.parse(line) as { end: NonNullable<typeof end> }).end
          lines += `${line}\n`
          continue
        }
        // An event's line begins {"id":"<id>","ts":…,"member":"<peer id>",…
        lastId = line.slice(7, line.indexOf('"', 7))
        const at = line.indexOf('"member":"')
        if (at >= 0) members.add(line.slice(at + 10, line.indexOf('"', at + 10)))
        count++
        lines += `${line}\n`
      }
      if (lines !== '' && !out.write(lines)) await once(out, 'drain')
      if (progress && performance.now() - shown > 250) {
        shown = performance.now()
        show(false)
      }
    }
  } catch (err) {
    if (!broken) {
      throw new CliError(
        `the export was cut after ${count} events${lastId === null ? '' : `; resume with --after ${lastId}`} (${(err as Error).message})`,
      )
    }
  }
  if (broken) process.exit(0)
  if (out !== process.stdout) await new Promise<void>((resolve) => out.end(resolve))
  if (progress) show(true)
  if (end === undefined) {
    throw new CliError(
      `the export ended without its end line after ${count} events${lastId === null ? '' : `; resume with --after ${lastId}`}`,
    )
  }
  if (end.partial) {
    const missing = end.members.filter((m) => m.status !== 'ok').map((m) => `${m.name} ${m.status}`)
    process.stderr.write(
      `chorus: partial export, events of ${missing.join(', ')} are missing${end.lastId === null ? '' : `; last id ${end.lastId}`}\n`,
    )
    process.exitCode = EXIT_PARTIAL
  }
})

clientOptions(
  program
    .command('members')
    .description('print the membership table as a member sees it')
    .option('--json', 'print the whole answer as JSON'),
).action(async (opts: { json?: boolean } & ClientOptions) => {
  const body = (await request(opts, 'GET', 'v1/members')) as {
    self: string
    members: Array<{
      member: string
      name: string
      state: string
      lastSeen: number
      addrs: string[]
      http: string
      seq: number
      offsetMs: number
    }>
  }
  if (opts.json === true) {
    process.stdout.write(`${JSON.stringify(body)}\n`)
    return
  }
  const now = Date.now()
  const rows = [
    ['NAME', 'STATE', 'LAST HEARD', 'SEQ', 'OFFSET', 'HTTP', 'ADDRESSES', 'PEER ID'],
    ...body.members.map((m) => [
      m.member === body.self ? `${m.name} (self)` : m.name,
      m.state,
      m.member === body.self ? '-' : `${((now - m.lastSeen) / 1000).toFixed(1)}s ago`,
      String(m.seq),
      `${m.offsetMs}ms`,
      m.http,
      m.addrs.join(','),
      m.member,
    ]),
  ]
  printRows(rows)
})

clientOptions(
  program
    .command('rollup')
    .description('print time buckets of events for the whole array')
    .option('--from <time>', 'RFC 3339, epoch ms, or a duration back from now (default 1h)')
    .option('--to <time>', 'end of the period (default now)')
    .option('--step <duration>', 'bucket width, a multiple of 10s, 1m or 1h')
    .option(
      '--type <type>',
      'exact type or prefix like http.*; a leading - excludes (--type=-host.*); repeatable',
      collect,
    )
    .addOption(new Option('--severity <severity>', 'minimum severity').choices(SEVERITIES))
    .option('--member <name>', 'member name or peer id, repeatable', collect)
    .option('--where <name=value>', 'attribute equals value; repeatable', collect)
    .option('--by <dims>', 'comma list of type, severity, member')
    .option('--q <quantiles>', 'comma list of quantiles, e.g. 0.5,0.99')
    .option('--json', 'print the whole answer as JSON'),
).action(async (opts: Record<string, string | string[] | boolean | undefined> & ClientOptions) => {
  // --q is the quantiles here, not a text filter.
  const params = filterParams({ ...opts, q: undefined })
  for (const key of ['step', 'by', 'q'] as const) {
    const value = opts[key]
    if (typeof value === 'string') params.set(key, value)
  }
  const body = (await request(opts, 'GET', `v1/rollups?${params}`)) as {
    step: string
    series: Array<{
      key: Record<string, string>
      buckets: Array<Record<string, unknown> & { t: number; count: number }>
    }>
    members: Array<{ name: string; status: string }>
    partial: boolean
  }
  if (opts.json === true) {
    process.stdout.write(`${JSON.stringify(body)}\n`)
    return
  }
  const fmt = (v: unknown) =>
    v === null || v === undefined
      ? '-'
      : typeof v === 'number'
        ? String(Math.round(v * 1000) / 1000)
        : String(v)
  const rows = [['TIME', 'SERIES', 'COUNT', 'SUM', 'MIN', 'MAX', 'AVG', 'QUANTILES']]
  for (const series of body.series) {
    const name =
      Object.entries(series.key)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || 'all'
    for (const b of series.buckets) {
      if (b.count === 0) continue
      const quantiles = b.quantiles as Record<string, number | null> | undefined
      rows.push([
        new Date(b.t).toISOString(),
        name,
        String(b.count),
        fmt(b.sum),
        fmt(b.min),
        fmt(b.max),
        fmt(b.avg),
        quantiles === undefined
          ? ''
          : Object.entries(quantiles)
              .map(([q, v]) => `p${Number(q) * 100}=${fmt(v)}`)
              .join(' '),
      ])
    }
  }
  printRows(rows)
  const missing = body.members.filter((m) => m.status !== 'ok').map((m) => `${m.name} ${m.status}`)
  process.stdout.write(
    `step ${body.step}${body.partial ? ` (partial: ${missing.join(', ')})` : ''}\n`,
  )
})

clientOptions(
  program
    .command('health')
    .description("print the array's health and each member's")
    .option('--json', 'print the whole answer as JSON'),
).action(async (opts: { json?: boolean } & ClientOptions) => {
  const body = (await request(opts, 'GET', 'v1/health')) as {
    array: { state: string; rules: string[] }
    members: Array<{ name: string; membership: string; state: string; rules: string[] }>
  }
  if (opts.json === true) {
    process.stdout.write(`${JSON.stringify(body)}\n`)
    process.exitCode = HEALTH_EXIT[body.array.state] ?? 1
    return
  }
  const rows = [
    ['NAME', 'MEMBERSHIP', 'HEALTH', 'RULES'],
    ['array', '-', body.array.state, body.array.rules.join(',')],
    ...body.members.map((m) => [m.name, m.membership, m.state, m.rules.join(',')]),
  ]
  printRows(rows)
  // For scripts and checks: 0 ok, 1 warning, 2 critical (as Nagios plugins do).
  process.exitCode = HEALTH_EXIT[body.array.state] ?? 1
})

/** A backup whose member sends nothing for this long is given up, ms. */
const BACKUP_STALL_MS = 60_000

clientOptions(
  program
    .command('backup')
    .description(
      "write a consistent copy of a member's store and identity key, taken while it runs, as a data dir that `chorus start --data-dir DIR` starts from (admin token)",
    )
    .requiredOption('--out <dir>', 'a new or empty directory to write it into'),
).action(async (opts: { out: string } & ClientOptions) => {
  // Loaded here: only this command opens a RocksDB store.
  const { BACKUP_MEDIA_TYPE, checkBackupTarget, writeBackup } = await import('./store/backup.ts')
  // Before the member is asked: a target that cannot take the backup is a usage error.
  await checkBackupTarget(opts.out)
  const url = new URL('v1/backup', opts.url.endsWith('/') ? opts.url : `${opts.url}/`)
  const headers: Record<string, string> = { accept: BACKUP_MEDIA_TYPE }
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
  const abort = new AbortController()
  process.once('SIGINT', () => abort.abort(new Error('interrupted')))
  const stall = setTimeout(
    () => abort.abort(new Error(`the member sent nothing for ${BACKUP_STALL_MS / 1000}s`)),
    BACKUP_STALL_MS,
  )
  let response: Response
  try {
    response = await fetch(url, { method: 'POST', headers, signal: abort.signal })
  } catch (err) {
    clearTimeout(stall)
    throw new CliError(
      `cannot reach ${opts.url}: ${abort.signal.aborted ? (abort.signal.reason as Error).message : ((err as Error).cause ?? (err as Error).message)}`,
    )
  }
  if (!response.ok || response.body === null) {
    clearTimeout(stall)
    throw refused(response.status, await response.text())
  }
  const body = response.body
  // Every chunk puts the stall deadline off again.
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      stall.refresh()
      yield chunk
    }
  }
  const began = performance.now()
  const progress = process.stderr.isTTY === true
  let shown = 0
  let summary: Awaited<ReturnType<typeof writeBackup>>
  try {
    summary = await writeBackup(opts.out, chunks(), (bytes) => {
      if (!progress || performance.now() - shown < 250) return
      shown = performance.now()
      process.stderr.write(`\r${(bytes / 1024 ** 2).toFixed(1)} MiB of records written`)
    })
  } catch (err) {
    if (isKnownError(err)) throw err
    const why = abort.signal.aborted
      ? (abort.signal.reason as Error).message
      : (err as Error).message
    throw new CliError(`the backup was not written (nothing is left in ${opts.out}): ${why}`)
  } finally {
    clearTimeout(stall)
    if (progress && shown > 0) process.stderr.write('\n')
  }
  const { header, end } = summary
  const seconds = (performance.now() - began) / 1000
  process.stdout.write(
    `backup of member ${header.name} (${header.peerId}) as of ${new Date(header.takenAt).toISOString()}: ${end.events} events, ${end.heldEvents} held for other members, ${end.records} records (${(end.bytes / 1024 ** 2).toFixed(1)} MiB) written to ${opts.out} (${(summary.diskBytes / 1024 ** 2).toFixed(1)} MiB on disk) in ${seconds.toFixed(1)}s\nstart a member from it with: chorus start --data-dir ${opts.out}\n`,
  )
})

const config = program
  .command('config')
  .description('the array’s settings, in force on every member: health rules and replicas')
clientOptions(config.command('get').description('print the health rules in force (JSON)')).action(
  async (opts: ClientOptions) => {
    process.stdout.write(
      `${JSON.stringify(await request(opts, 'GET', 'v1/config/health'), null, 2)}\n`,
    )
  },
)
clientOptions(
  config
    .command('set')
    .description(
      'replace the health rules with those in a JSON file ({ "rules": [...] }, as config get prints)',
    )
    .requiredOption('--file <file>', 'the JSON file, or - for standard input')
    .option(
      '--admin-key <file>',
      'private key of `chorus keygen --admin`: approve the change (arrays started with --admin-public-key need it)',
    ),
).action(async (opts: { file: string; adminKey?: string } & ClientOptions) => {
  let text: string
  try {
    text =
      opts.file === '-'
        ? await new Response(Readable.toWeb(process.stdin) as ReadableStream).text()
        : await readFile(opts.file, 'utf8')
  } catch (err) {
    throw new CliError(
      `cannot read ${opts.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    )
  }
  let parsed: { rules?: unknown }
  try {
    parsed = JSON.parse(text) as { rules?: unknown }
  } catch {
    throw new CliError(`${opts.file} is not JSON`)
  }
  const approval = await approvalOf(opts, HEALTH_RULES_SETTING, 'v1/config/health', parsed.rules)
  const body = (await request(opts, 'PUT', 'v1/config/health', {
    body: JSON.stringify({ rules: parsed.rules, ...(approval === undefined ? {} : { approval }) }),
    type: 'application/json',
  })) as { version: number }
  process.stdout.write(`health rules version ${body.version} in force; spreading to every member\n`)
})

clientOptions(
  config
    .command('replicas')
    .description(
      'print the replica count in force, or set it: copies of every member’s events, its own included (1 to 5)',
    )
    .argument('[count]', 'the new count; none: print the one in force')
    .option(
      '--admin-key <file>',
      'private key of `chorus keygen --admin`: approve the change (arrays started with --admin-public-key need it)',
    ),
).action(async (count: string | undefined, opts: { adminKey?: string } & ClientOptions) => {
  if (count === undefined) {
    const current = (await request(opts, 'GET', 'v1/config/replicas')) as {
      replicas: number
      version: number
    }
    process.stdout.write(`replicas ${current.replicas} (version ${current.version})\n`)
    return
  }
  const replicas = Number(count)
  if (!Number.isInteger(replicas) || replicas < MIN_REPLICAS || replicas > MAX_REPLICAS)
    throw new CliError(
      `count: ${count} is not a whole number from ${MIN_REPLICAS} to ${MAX_REPLICAS}`,
    )
  const approval = await approvalOf(opts, REPLICAS_SETTING, 'v1/config/replicas', replicas)
  const body = (await request(opts, 'PUT', 'v1/config/replicas', {
    body: JSON.stringify({ replicas, ...(approval === undefined ? {} : { approval }) }),
    type: 'application/json',
  })) as { version: number }
  process.stdout.write(
    `replicas ${replicas} in force as version ${body.version}; spreading to every member\n`,
  )
})

/**
 * The admin's approval of `value` as the next version of `setting`, when
 * --admin-key is given; it names the version it makes, so it cannot be
 * played again later.
 */
async function approvalOf(
  opts: { adminKey?: string } & ClientOptions,
  setting: string,
  path: string,
  value: unknown,
): Promise<ReturnType<typeof approve> | undefined> {
  if (opts.adminKey === undefined) return undefined
  let pem: string
  try {
    pem = await readFile(opts.adminKey, 'utf8')
  } catch (err) {
    throw new CliError(
      `cannot read ${opts.adminKey}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    )
  }
  const current = (await request(opts, 'GET', path)) as { version: number }
  try {
    return approve(pem, { setting, version: current.version + 1, value })
  } catch {
    throw new CliError(
      `${opts.adminKey} is not an admin key (make one with: chorus keygen --admin)`,
    )
  }
}

config
  .command('check')
  .description(
    'check a configuration as `chorus start` would read it (flags aside: the environment and --config FILE); exit 0, or 2 listing every problem',
  )
  .option('--config <file>', 'YAML file with the same keys as the start flags [env CHORUS_CONFIG]')
  .action((opts: { config?: string }) => {
    const configFile = opts.config ?? process.env.CHORUS_CONFIG
    const checked = resolveConfig(
      configFile === undefined
        ? { flags: {}, env: process.env }
        : { flags: {}, env: process.env, configFile },
    )
    for (const warning of checked.warnings ?? [])
      process.stderr.write(`chorus: warning: ${warning}\n`)
    process.stdout.write(
      `configuration ok: member ${checked.name}, data dir ${checked.dataDir}, http ${checked.http.host}:${checked.http.port}\n`,
    )
  })

program
  .command('token')
  .description('make a new random token, and print it and its line for a tokens file')
  .requiredOption('--scope <scope>', `what it may do: ${SCOPES.join(', ')}`)
  .option(
    '--append <file>',
    'add its line to this tokens file (made readable by its owner only) and print only the token',
  )
  .action(async (opts: { scope: string; append?: string }) => {
    if (!(SCOPES as readonly string[]).includes(opts.scope))
      throw new ConfigError(
        `--scope must be one of ${SCOPES.join(', ')}, got ${JSON.stringify(opts.scope)}`,
      )
    const token = randomBytes(32).toString('base64url')
    if (opts.append !== undefined) {
      try {
        await appendFile(opts.append, `${opts.scope} ${token}\n`, { mode: 0o600 })
      } catch (err) {
        throw new CliError(
          `--append: cannot write ${opts.append}: ${(err as NodeJS.ErrnoException).code}`,
        )
      }
      process.stdout.write(`${token}\n`)
      return
    }
    process.stderr.write('the token, then its line for --tokens-file:\n')
    process.stdout.write(`${token}\n${opts.scope} ${token}\n`)
  })

program
  .command('keygen')
  .description(
    'write a new swarm key for a private mesh (give the same file to every member), or with --admin an admin key',
  )
  .requiredOption('--out <file>', 'where to write the key (refuses to overwrite)')
  .option(
    '--admin',
    'an admin key pair instead: the private key goes to --out (keep it off the members), the public key to standard output',
  )
  .action(async (opts: { out: string; admin?: boolean }) => {
    const what = opts.admin === true ? 'an admin key' : 'a swarm key'
    let contents: Uint8Array | string
    let publicKey: string | undefined
    if (opts.admin === true) {
      const pair = generateAdminKey()
      contents = pair.privatePem
      publicKey = pair.publicKey
    } else {
      contents = new Uint8Array(95)
      generateKey(contents)
    }
    try {
      await writeFile(opts.out, contents, { mode: 0o600, flag: 'wx' })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      throw new CliError(
        code === 'EEXIST'
          ? `${opts.out} exists; not overwriting ${what}`
          : `cannot write ${opts.out}: ${code}`,
      )
    }
    if (publicKey === undefined) {
      process.stdout.write(`swarm key written to ${opts.out}\n`)
    } else {
      process.stderr.write(
        `admin private key written to ${opts.out}; start every member with --admin-public-key (or CHORUS_ADMIN_PUBLIC_KEY):\n`,
      )
      process.stdout.write(`${publicKey}\n`)
    }
  })

program.parseAsync(process.argv).catch(fail)
