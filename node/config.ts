// Member configuration, parsed once at the entry point and passed down. Every
// option comes, in this order of precedence, from its flag, from the
// environment (CHORUS_ + the option in upper snake case), from the YAML file
// given by --config (same keys as the flags), or from its default. The three
// sources only gather text; one zod schema, MEMBER_OPTIONS, reads and checks
// it whatever its source, and every problem is reported at once, each naming
// its option, its source and the rule.

import { readFileSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { parseAdminPublicKey } from './approval.ts'
import type { FieldProblem } from './errors.ts'
import { ConfigError } from './errors.ts'
import { DEFAULT_EVENT_LIMITS, type EventLimits } from './event/event.ts'
import { isLoopback, parseTokens, type Token } from './http/auth.ts'
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from './ingest/ingest.ts'
import {
  BODY_HEAP_FACTOR,
  DEFAULT_MEMORY_BUDGET,
  formatBytes,
  type MemoryPlan,
  MIN_MEMORY_BUDGET,
  parseBytes,
  planMemory,
} from './memory.ts'
import { parseDuration } from './time.ts'

/** Default HTTP address: loopback, so an unconfigured member is not open to the network. */
export const DEFAULT_HTTP_HOST = '127.0.0.1'
export const DEFAULT_HTTP_PORT = 7700
export const DEFAULT_DATA_DIR = '.chorus/data'
/** Default p2p listen address: loopback, like HTTP. */
export const DEFAULT_LISTEN = '/ip4/127.0.0.1/tcp/7701'

export interface NotifyConfig {
  /** Alertmanager base URLs (API v2 is under /api/v2). */
  alertmanagers: string[]
  /** The Authorization header for them, from --alertmanager-credentials. */
  alertmanagerAuthorization?: string
  /** URLs that get every health transition as JSON. */
  webhooks: string[]
  /** Key of the HMAC-SHA256 signature of webhook bodies, from --webhook-secret. */
  webhookSecret?: string
  /** The `array` label of alerts. Default `chorus`. */
  arrayName: string
}

export interface MemberConfig {
  /** Human name of the member, unique in its array. Default: the host name. */
  name: string
  /** Directory for the member's files (kept under `<dataDir>/chorus/`). Default `.chorus/data`. */
  dataDir: string
  /** HTTP listen address. Default 127.0.0.1:7700; port 0 picks a free port. */
  http: { host: string; port: number }
  /** Events older than this are deleted, in ms. Default 7d. */
  retentionMs: number
  /**
   * Bound of the store's size, bytes: over it the oldest events (own and
   * held) and the rollups older than them are deleted (node/store/retention.ts).
   * At least half the memory budget. Default none.
   */
  retentionSizeBytes?: number
  /** Rollup buckets of 10 s, 1 min and 1 h older than these are deleted, in ms. Default 2d, 30d, 365d. */
  rollupRetentionMs: [number, number, number]
  /** Per-member deadline of a query, in ms. Default 2s. */
  queryTimeoutMs: number
  ingestLimits: IngestLimits
  eventLimits: EventLimits
  /** Log level: trace, debug, info, warn, error, fatal or silent. Default info. */
  logLevel: string
  /** libp2p listen multiaddrs. Default /ip4/127.0.0.1/tcp/7701. */
  listen: string[]
  /** Multiaddrs of members to join through, with or without /p2p/<peer id>. Default none. */
  join: string[]
  /** Membership probe interval, ms. Default 1s. */
  probeIntervalMs: number
  /** Dead and left members are forgotten after this, ms. Default 24h. */
  forgetAfterMs: number
  /**
   * Largest step of the wall clock, either way, that event stamps follow, ms;
   * a larger jump is logged, turns health warning and is not followed (see
   * node/store/event-log.ts), so one bad clock reading cannot push every
   * later stamp ahead for good. Default 1h.
   */
  maxClockJumpMs: number
  /** Most distinct `type` label values in /metrics and /metrics/cluster; the rest are "other". Default 200. */
  metricsTypeLimit: number
  /** Bearer tokens and their scopes. Default none: every route open (loopback only, unless insecure). */
  tokens: Token[]
  /** PEM certificate and key for HTTPS. Default none: plain HTTP. */
  tls?: { cert: string; key: string }
  /** Allow a non-loopback HTTP address without tokens, or p2p address without a swarm key. Default false. */
  insecure: boolean
  /** Pre-shared key of a private mesh (libp2p pnet), the 95-byte text of `chorus keygen`. Default none. */
  swarmKey?: Uint8Array
  /** Peer ids allowed to connect; empty: any peer (with the swarm key, if any). */
  allowPeers: string[]
  /**
   * The admin public key (`ed25519:…`, printed by `chorus keygen --admin`)
   * whose approval every change of an array-wide setting needs, on every
   * member. Default none: an admin token is enough.
   */
  adminPublicKey?: string
  /** Queries (events, rollups, lookups) this member coordinates at once; more get 429. Default 16. */
  maxConcurrentQueries: number
  /** Host sampling interval, ms; 0: the collector is off (--no-collect). Default 10 s. */
  collectIntervalMs: number
  /** The member's memory budget and its division (see memory.ts). Default 128 MiB. */
  memory: MemoryPlan
  /** Copies of every member's events in the array, its own included; 1: none. Default 2. */
  replicas: number
  /** A member away longer than this hands its copies of others' events on to the next in order, ms. Default 1m. */
  rereplicateAfterMs: number
  /** Where health changes are sent (node/health/notify.ts). Default: nowhere. */
  notify: NotifyConfig
  /** One log line per HTTP request answered. Default false. */
  accessLog: boolean
  /**
   * Problems that do not stop a member but deserve a log line at start and
   * on every reload, such as a tokens file that others can read. Default none.
   */
  warnings?: string[]
}

const DAY_MS = 86_400_000
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']
const DURATION_RULE = 'must be a duration such as 500ms, 10s, 2m, 1h or 7d'
const MULTIADDR: Rule = [
  'must be a multiaddr such as /ip4/127.0.0.1/tcp/7701 (optionally ending in /p2p/<peer id>)',
  (t) => /^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/\d{1,5}(\/p2p\/[A-Za-z0-9]+)?$/.test(t),
]
const SWARM_KEY = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\s*$/
type Rule = [message: string, test: (text: string) => boolean]

/** Which options are lists and which switches; filled as the schema is built, read by LIST_OPTIONS and FLAG_OPTIONS. */
const KINDS = z.registry<{ kind: 'list' | 'switch' }>()

/**
 * Reports a problem, on `field` or else the option being read. With `got`, a
 * value breaking the rule `message`, which resolveConfig prefixes with the
 * value's source. `continue` lets every other check run: all problems at once.
 */
function problem(ctx: z.RefinementCtx, message: string, got?: string, field?: string): void {
  const path = field === undefined ? {} : { path: [field] }
  ctx.addIssue({ code: 'custom', message, params: { got }, continue: true, ...path })
}

const text = (...rules: Rule[]) =>
  z.string().superRefine((t, ctx) => {
    for (const [message, test] of rules) if (!test(t)) problem(ctx, message, t)
  })

/**
 * Text read by `parse` (undefined: it breaks `rule`). The default is text as
 * an operator writes it, read the same way; it stands in for a refused value
 * too, so the rules across options still have one to look at.
 */
function value<T>(byDefault: string, rule: string, parse: (text: string) => T | undefined) {
  return z
    .string()
    .default(byDefault)
    .transform((t, ctx) => {
      const parsed = parse(t)
      if (parsed === undefined) problem(ctx, rule, t)
      return parsed ?? (parse(byDefault) as T)
    })
}

const duration = (byDefault: string, minMs: number) =>
  value(byDefault, `${DURATION_RULE} (at least ${minMs}ms)`, (t) => {
    const ms = parseDuration(t)
    return ms !== undefined && ms >= minMs ? ms : undefined
  })

const integer = (byDefault: number, min: number, max: number) =>
  value(String(byDefault), `must be a whole number from ${min} to ${max}`, (t) =>
    /^\d+$/.test(t.trim()) && Number(t) >= min && Number(t) <= max ? Number(t) : undefined,
  )

const list = (byDefault: string[], ...rules: Rule[]) =>
  z
    .array(text(...rules))
    .default(byDefault)
    .register(KINDS, { kind: 'list' })

/** On for any value but "false" and "0" (a bare flag arrives as "true"). */
const toggle = () =>
  value('false', '', (t) => t !== 'false' && t !== '0').register(KINDS, { kind: 'switch' })

/** The file the option names, read by `read`; if it cannot be, a problem, and `fallback`. */
function file<T>(read: (path: string, ctx: z.RefinementCtx) => T, fallback?: T) {
  return z
    .string()
    .optional()
    .transform((path, ctx) => {
      if (path === undefined) return undefined
      try {
        return read(path, ctx)
      } catch (err) {
        problem(ctx, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
        return fallback
      }
    })
}

/** Tokens in `entries`; parseTokens labels each problem by `at`, never quoting a token. */
function secrets(ctx: z.RefinementCtx, entries: string[], separator: ' ' | ':', at: string) {
  const parsed = parseTokens(entries, separator, at)
  for (const message of parsed.problems) problem(ctx, message)
  return parsed.tokens
}

function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim())
  if (match === null || Number(match[3]) > 65535) return undefined
  return { host: (match[1] ?? match[2]) as string, port: Number(match[3]) }
}

function parseRollupRetention(text: string): [number, number, number] | undefined {
  const kept: [number, number, number] = [2 * DAY_MS, 30 * DAY_MS, 365 * DAY_MS]
  for (const part of text.split(',')) {
    const [resolution, keep] = part.split('=').map((s) => s.trim())
    const index = ['10s', '1m', '1h'].indexOf(resolution ?? '')
    const ms = keep === undefined ? undefined : parseDuration(keep)
    if (index < 0 || ms === undefined || ms < 60_000) return undefined
    kept[index] = ms
  }
  return kept
}

/** The options, keyed by flag name, in the order of `chorus start --help`; MemberConfig documents them. */
const OPTIONS = z.object({
  // Checked even as the default: a host name need not be a valid member name.
  name: text([
    'must be 1 to 63 letters, digits, _ . - starting with a letter or digit',
    (t) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(t),
  ]).prefault(() => hostname()),
  'data-dir': value(DEFAULT_DATA_DIR, '', (t) => resolve(t)),
  http: value(
    `${DEFAULT_HTTP_HOST}:${DEFAULT_HTTP_PORT}`,
    'must be HOST:PORT such as 127.0.0.1:7700',
    parseHostPort,
  ),
  retention: duration('7d', 60_000),
  // Off unless given; its least value follows the memory budget (the rule below).
  'retention-size': z
    .string()
    .optional()
    .transform((t, ctx) => {
      if (t === undefined) return undefined
      const bytes = parseBytes(t)
      if (bytes !== undefined && bytes > 0 && bytes <= 1024 ** 5) return bytes
      problem(ctx, 'must be a size such as 500MiB or 10GiB', t)
      return undefined
    }),
  'query-timeout': duration('2s', 1),
  // Its default follows the memory budget (see the transform below).
  'max-body-bytes': z
    .string()
    .optional()
    .transform((t, ctx) => {
      if (t === undefined) return undefined
      const n = Number(t)
      if (/^\d+$/.test(t.trim()) && n >= 1024 && n <= 1024 ** 3) return n
      problem(ctx, 'must be a whole number from 1024 to 1073741824', t)
      return undefined
    }),
  'max-events-per-request': integer(DEFAULT_INGEST_LIMITS.maxEventsPerRequest, 1, 1_000_000),
  'log-level': value('info', `must be one of ${LOG_LEVELS.join(', ')}`, (t) =>
    LOG_LEVELS.includes(t) ? t : undefined,
  ),
  listen: list([DEFAULT_LISTEN], MULTIADDR, [
    'is where this member listens: no /p2p/ part',
    (t) => !t.includes('/p2p/'),
  ]),
  join: list([], MULTIADDR),
  'probe-interval': duration('1s', 50),
  'forget-after': duration('24h', 1000),
  'max-clock-jump': duration('1h', 1000),
  'rollup-retention': value(
    '10s=2d,1m=30d,1h=365d',
    'must be a comma list such as 10s=2d,1m=30d,1h=365d (at least 1m each)',
    parseRollupRetention,
  ),
  'metrics-type-limit': integer(200, 1, 10_000),
  'tokens-file': file((path, ctx) => ({
    tokens: secrets(ctx, readFileSync(path, 'utf8').split('\n'), ' ', path),
    warning: readableByOthers(path, 'the tokens file'),
  })),
  // An unreadable half of the pair is '', so it is not also taken for a missing one.
  'tls-cert': file((path) => readFileSync(path, 'utf8'), ''),
  'tls-key': file((path) => readFileSync(path, 'utf8'), ''),
  insecure: toggle(),
  'swarm-key': file((path, ctx) => {
    const key = new Uint8Array(readFileSync(path))
    if (!SWARM_KEY.test(Buffer.from(key).toString()))
      problem(ctx, `${path} is not a swarm key (make one with: chorus keygen --out FILE)`)
    return key
  }),
  'allow-peer': list(
    [],
    ['must be a peer id such as 12D3KooW…', (t) => /^[1-9A-HJ-NP-Za-km-z]{46,60}$/.test(t)],
  ),
  'admin-public-key': text([
    'must be the public key printed by chorus keygen --admin (ed25519:…)',
    (t) => parseAdminPublicKey(t) !== undefined,
  ]).optional(),
  'max-concurrent-queries': integer(16, 1, 10_000),
  'collect-interval': duration('10s', 100),
  'no-collect': toggle(),
  replicas: integer(2, 1, 5),
  'rereplicate-after': duration('1m', 1000),
  alertmanager: list([], ['must be an http:// or https:// URL', isHttpUrl]),
  'alertmanager-credentials': file((path, ctx) => {
    const line = readFileSync(path, 'utf8').split('\n')[0]?.trim() ?? ''
    const m = /^(bearer|basic)\s+(\S.*)$/i.exec(line)
    if (m === null || (m[1]?.toLowerCase() === 'basic' && !(m[2] as string).includes(':'))) {
      problem(ctx, `${path} must hold "Bearer TOKEN" or "Basic USER:PASSWORD" on its first line`)
      return undefined
    }
    return m[1]?.toLowerCase() === 'bearer'
      ? `Bearer ${m[2]}`
      : `Basic ${Buffer.from(m[2] as string).toString('base64')}`
  }),
  webhook: list([], ['must be an http:// or https:// URL', isHttpUrl]),
  'webhook-secret': file((path, ctx) => {
    const secret = readFileSync(path, 'utf8').trim()
    if (secret.length < 16) problem(ctx, `${path} must hold a secret of at least 16 characters`)
    return secret
  }),
  'access-log': toggle(),
  'array-name': text([
    'must be 1 to 63 letters, digits, . _ or -',
    (t) => /^[A-Za-z0-9._-]{1,63}$/.test(t),
  ]).default('chorus'),
  'memory-budget': value(
    formatBytes(DEFAULT_MEMORY_BUDGET),
    `must be a size such as 128MiB or 1GiB, at least ${formatBytes(MIN_MEMORY_BUDGET)} (the least a member runs in)`,
    (t) => {
      const bytes = parseBytes(t)
      return bytes !== undefined && bytes >= MIN_MEMORY_BUDGET && bytes <= 1024 ** 4
        ? bytes
        : undefined
    },
  ),
})

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text)
    return url.protocol === 'http:' || url.protocol === 'https:'
  } catch {
    return false
  }
}

/** The largest ingest body whose parsing fits in the requests' share of `plan`. */
function bodyShare(plan: MemoryPlan): number {
  return Math.floor(plan.requestBytes / BODY_HEAP_FACTOR)
}

/**
 * The options, the rules across them, and the MemberConfig they make. Tokens
 * have no flag (where `ps` would show them); those of CHORUS_TOKENS and of the
 * config file's `tokens` add up with those of --tokens-file.
 */
const MEMBER_OPTIONS = OPTIONS.extend({
  tokens: z
    .custom<Array<{ entries: string[]; at: string; warning?: string | undefined }>>()
    .transform((lists, ctx) =>
      lists.map((l) => ({ tokens: secrets(ctx, l.entries, ':', l.at), warning: l.warning })),
    ),
})
  .superRefine((o, ctx) => {
    const refuse = (message: string, field: StartOption) => problem(ctx, message, undefined, field)
    const [cert, key] = [o['tls-cert'], o['tls-key']]
    if ((cert === undefined) !== (key === undefined))
      refuse('--tls-cert and --tls-key go together', cert === undefined ? 'tls-cert' : 'tls-key')
    const tokens = [o['tokens-file'], ...o.tokens].flatMap((t) => t?.tokens ?? [])
    const share = bodyShare(planMemory(o['memory-budget']))
    if ((o['max-body-bytes'] ?? 0) > share)
      refuse(
        `${o['max-body-bytes']} bytes cannot be parsed within the requests' share of --memory-budget ${formatBytes(o['memory-budget'])} (at most ${share} bytes); raise the budget or lower --max-body-bytes`,
        'max-body-bytes',
      )
    // RocksDB's memtables (up to 1.5 times their eighth of the budget) and
    // its two uncompressed levels, each about as large, come before any
    // event can be deleted: a bound below half the budget would be cut into
    // the newest events and still not be held.
    const size = o['retention-size']
    if (size !== undefined && size < o['memory-budget'] / 2)
      refuse(
        `--retention-size ${formatBytes(size)} is below half of --memory-budget ${formatBytes(o['memory-budget'])} (${formatBytes(o['memory-budget'] / 2)}), the least a store holds whatever it deletes; raise it or lower the budget`,
        'retention-size',
      )
    const { host } = o.http
    if (!o.insecure && tokens.length === 0 && !isLoopback(host))
      refuse(
        `refusing to serve HTTP on ${host} without tokens: anyone who can reach it could read and write; configure tokens (--tokens-file or CHORUS_TOKENS) or pass --insecure`,
        'http',
      )
    for (const address of o.insecure || o['swarm-key'] !== undefined ? [] : o.listen) {
      if (!isLoopback(address.split('/')[2] ?? ''))
        refuse(
          `refusing to listen for peers on ${address} without a swarm key: any process that can reach it could join the array; listen on loopback or pass --insecure`,
          'listen',
        )
    }
  })
  .transform((o): MemberConfig => {
    const tokens = [o['tokens-file'], ...o.tokens].filter((t) => t !== undefined)
    const warnings = tokens.flatMap((t) => t.warning ?? [])
    const [cert, key] = [o['tls-cert'], o['tls-key']]
    const memory = planMemory(o['memory-budget'])
    return {
      name: o.name,
      dataDir: o['data-dir'],
      http: o.http,
      retentionMs: o.retention,
      ...(o['retention-size'] === undefined ? {} : { retentionSizeBytes: o['retention-size'] }),
      rollupRetentionMs: o['rollup-retention'],
      queryTimeoutMs: o['query-timeout'],
      ingestLimits: {
        ...DEFAULT_INGEST_LIMITS,
        maxBodyBytes:
          o['max-body-bytes'] ?? Math.min(DEFAULT_INGEST_LIMITS.maxBodyBytes, bodyShare(memory)),
        maxEventsPerRequest: o['max-events-per-request'],
      },
      eventLimits: { ...DEFAULT_EVENT_LIMITS },
      logLevel: o['log-level'],
      listen: o.listen,
      join: o.join,
      probeIntervalMs: o['probe-interval'],
      forgetAfterMs: o['forget-after'],
      maxClockJumpMs: o['max-clock-jump'],
      metricsTypeLimit: o['metrics-type-limit'],
      tokens: tokens.flatMap((t) => t.tokens),
      ...(cert === undefined || key === undefined ? {} : { tls: { cert, key } }),
      insecure: o.insecure,
      ...(o['swarm-key'] === undefined ? {} : { swarmKey: o['swarm-key'] }),
      allowPeers: o['allow-peer'],
      ...(o['admin-public-key'] === undefined ? {} : { adminPublicKey: o['admin-public-key'] }),
      maxConcurrentQueries: o['max-concurrent-queries'],
      collectIntervalMs: o['no-collect'] ? 0 : o['collect-interval'],
      memory,
      replicas: o.replicas,
      rereplicateAfterMs: o['rereplicate-after'],
      accessLog: o['access-log'],
      notify: {
        alertmanagers: o.alertmanager,
        ...(o['alertmanager-credentials'] === undefined
          ? {}
          : { alertmanagerAuthorization: o['alertmanager-credentials'] }),
        webhooks: o.webhook,
        ...(o['webhook-secret'] === undefined ? {} : { webhookSecret: o['webhook-secret'] }),
        arrayName: o['array-name'],
      },
      ...(warnings.length === 0 ? {} : { warnings }),
    }
  })

export type StartOption = keyof typeof OPTIONS.shape
/** The options a member takes, as flag names; the env name and YAML key derive from them. */
export const START_OPTIONS = Object.keys(OPTIONS.shape) as readonly StartOption[]
const ofKind = (kind: 'list' | 'switch') =>
  START_OPTIONS.filter((option) => KINDS.get(OPTIONS.shape[option])?.kind === kind)
/** Options that may be given several times (flags repeated, env comma-separated, YAML lists). */
export const LIST_OPTIONS: readonly StartOption[] = ofKind('list')
/** Options that are switches: given without a value. */
export const FLAG_OPTIONS: readonly StartOption[] = ofKind('switch')

export function envName(option: string): string {
  return `CHORUS_${option.toUpperCase().replaceAll('-', '_')}`
}

export type RawOptions = Partial<Record<StartOption, string | string[]>>

export interface ConfigSources {
  /** Values given as flags. */
  flags: RawOptions
  /** The environment (process.env). */
  env: Record<string, string | undefined>
  /** Path of a YAML config file, from --config or CHORUS_CONFIG. */
  configFile?: string
}

/**
 * Reads a YAML config file into raw option values; unknown keys are
 * problems. Besides the options it may hold `tokens`, a list of
 * `scope:token` (the file then needs the same care as a tokens file).
 */
export function readConfigFile(
  path: string,
  problems: FieldProblem[],
): RawOptions & { tokens?: string[] } {
  let doc: unknown
  try {
    doc = parseYaml(readFileSync(path, 'utf8'))
  } catch (err) {
    // A YAML error quotes the offending line, which may hold a token: give
    // only where it is.
    const at = (err as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0]
    problems.push({
      field: 'config',
      message:
        (err as Error).name === 'YAMLParseError'
          ? `${path} is not valid YAML (${(err as { code?: string }).code ?? 'error'}${at === undefined ? '' : ` at line ${at.line}, column ${at.col}`}; the text is not shown: it may hold a token)`
          : `cannot read ${path}: ${(err as Error).message}`,
    })
    return {}
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push({
      field: 'config',
      message: `${path} must be a YAML mapping of option names to values`,
    })
    return {}
  }
  const out: RawOptions & { tokens?: string[] } = {}
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'tokens') {
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) out.tokens = value
      else problems.push({ field: 'tokens', message: `must be a list of "scope:token" in ${path}` })
      continue
    }
    if (!(START_OPTIONS as readonly string[]).includes(key)) {
      problems.push({ field: key, message: `unknown option in ${path}` })
      continue
    }
    if (Array.isArray(value) && LIST_OPTIONS.includes(key as StartOption)) {
      out[key as StartOption] = value.map(String)
      continue
    }
    if (typeof value === 'object' && value !== null) {
      problems.push({ field: key, message: `must be a single value in ${path}` })
      continue
    }
    out[key as StartOption] = String(value)
  }
  return out
}

/**
 * A warning when a file that holds secrets can be read by its group or by
 * others; undefined when only its owner can (or it cannot be examined).
 */
export function readableByOthers(path: string, what: string): string | undefined {
  let mode: number
  try {
    mode = statSync(path).mode & 0o777
  } catch {
    return undefined
  }
  if ((mode & 0o077) === 0) return undefined
  return `${what} ${path} has mode ${mode.toString(8).padStart(4, '0')}: its group or others can read the tokens in it; run chmod 600 ${path}`
}

/** Merges the sources and validates every option; throws ConfigError listing all problems. */
export function resolveConfig(sources: ConfigSources): MemberConfig {
  const problems: FieldProblem[] = []
  const configFile = sources.configFile ?? sources.env.CHORUS_CONFIG
  const file = configFile === undefined ? {} : readConfigFile(configFile, problems)
  const raw: Record<string, unknown> = {}
  const origin: Record<string, string> = {}
  for (const option of START_OPTIONS) {
    const isList = LIST_OPTIONS.includes(option)
    // An empty variable counts as unset.
    const env = sources.env[envName(option)] || undefined
    const envList = env
      ?.split(',')
      .map((v) => v.trim())
      .filter(Boolean)
    const [given, from] =
      sources.flags[option] !== undefined
        ? [sources.flags[option], `--${option}`]
        : env !== undefined
          ? [isList ? envList : env, envName(option)]
          : [file[option], `${option} in ${configFile}`]
    if (given === undefined) continue
    origin[option] = from
    // A list keeps every value; any other option its last, as a repeated flag does.
    raw[option] = isList ? [given].flat() : [given].flat().at(-1)
  }
  // Tokens make the config file as secret as a tokens file.
  const secret = file.tokens?.length ? configFile : undefined
  raw.tokens = [
    { entries: sources.env.CHORUS_TOKENS?.split(',') ?? [], at: 'CHORUS_TOKENS' },
    {
      entries: file.tokens ?? [],
      at: `tokens in ${configFile}`,
      warning: secret && readableByOthers(secret, 'the config file'),
    },
  ]
  const parsed = MEMBER_OPTIONS.safeParse(raw)
  for (const issue of parsed.error?.issues ?? []) {
    const field = String(issue.path[0])
    const got: unknown = issue.code === 'custom' ? issue.params?.got : undefined
    problems.push({
      field,
      message:
        got === undefined
          ? issue.message
          : `${origin[field] ?? 'the default'} ${issue.message}, got ${JSON.stringify(got)}`,
    })
  }
  if (!parsed.success || problems.length > 0) {
    const lines = problems.map((p) => `${p.field}: ${p.message}`)
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`, problems)
  }
  return parsed.data
}
