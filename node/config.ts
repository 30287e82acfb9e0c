// Member configuration, parsed once at the entry point and passed down. Every
// option comes, in this order of precedence, from its flag, from the
// environment (CHORUS_ + the option in upper snake case), from the YAML file
// given by --config (same keys as the flags), or from its default. Every
// problem is reported at once, each naming its option and source.

import { readFileSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { parseAdminPublicKey } from './approval.ts'
import type { FieldProblem } from './errors.ts'
import { ConfigError } from './errors.ts'
import { DEFAULT_EVENT_LIMITS, type EventLimits } from './event/event.ts'
import { isLoopback, parseTokens, type Token } from './http/auth.ts'
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from './ingest/ingest.ts'
import { parseDuration } from './time.ts'

/** Default HTTP address: loopback, so an unconfigured member is not open to the network. */
export const DEFAULT_HTTP_HOST = '127.0.0.1'
export const DEFAULT_HTTP_PORT = 7700
export const DEFAULT_DATA_DIR = '.chorus/data'
/** Default p2p listen address: loopback, like HTTP. */
export const DEFAULT_LISTEN = '/ip4/127.0.0.1/tcp/7701'

export interface MemberConfig {
  /** Human name of the member, unique in its array. Default: the host name. */
  name: string
  /** Directory for the member's files (kept under `<dataDir>/chorus/`). Default `.chorus/data`. */
  dataDir: string
  /** HTTP listen address. Default 127.0.0.1:7700; port 0 picks a free port. */
  http: { host: string; port: number }
  /** Events older than this are deleted, in ms. Default 7d. */
  retentionMs: number
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
  /** Membership announcement interval, ms. Default 1s. */
  announceIntervalMs: number
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
  /**
   * Problems that do not stop a member but deserve a log line at start and
   * on every reload, such as a tokens file that others can read. Default none.
   */
  warnings?: string[]
}

/** The options a member takes, as flag names; the env name and YAML key derive from them. */
export const START_OPTIONS = [
  'name',
  'data-dir',
  'http',
  'retention',
  'query-timeout',
  'max-body-bytes',
  'max-events-per-request',
  'log-level',
  'listen',
  'join',
  'announce-interval',
  'forget-after',
  'max-clock-jump',
  'rollup-retention',
  'metrics-type-limit',
  'tokens-file',
  'tls-cert',
  'tls-key',
  'insecure',
  'swarm-key',
  'allow-peer',
  'admin-public-key',
  'max-concurrent-queries',
  'collect-interval',
  'no-collect',
] as const
/** Options that may be given several times (flags repeated, env comma-separated, YAML lists). */
export const LIST_OPTIONS: readonly StartOption[] = ['listen', 'join', 'allow-peer']
/** Options that are switches: given without a value. */
export const FLAG_OPTIONS: readonly StartOption[] = ['insecure', 'no-collect']
export type StartOption = (typeof START_OPTIONS)[number]

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

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

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

function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim())
  if (match === null) return undefined
  const port = Number(match[3])
  if (port > 65535) return undefined
  return { host: (match[1] ?? match[2]) as string, port }
}

/** Merges the sources and validates every option; throws ConfigError listing all problems. */
export function resolveConfig(sources: ConfigSources): MemberConfig {
  const problems: FieldProblem[] = []
  const configFile = sources.configFile ?? sources.env.CHORUS_CONFIG
  const file = configFile === undefined ? {} : readConfigFile(configFile, problems)
  const fileTokens = file.tokens ?? []
  const origin: Partial<Record<StartOption, string>> = {}
  const rawAny = (option: StartOption): string | string[] | undefined => {
    const flag = sources.flags[option]
    if (flag !== undefined) {
      origin[option] = `--${option}`
      return flag
    }
    const env = sources.env[envName(option)]
    if (env !== undefined && env !== '') {
      origin[option] = envName(option)
      return LIST_OPTIONS.includes(option)
        ? env
            .split(',')
            .map((v) => v.trim())
            .filter(Boolean)
        : env
    }
    if (file[option] !== undefined) {
      origin[option] = `${option} in ${configFile}`
      return file[option]
    }
    return undefined
  }
  const raw = (option: StartOption): string | undefined => {
    const value = rawAny(option)
    return Array.isArray(value) ? value.at(-1) : value
  }
  const list = (option: StartOption): string[] | undefined => {
    const value = rawAny(option)
    return value === undefined ? undefined : Array.isArray(value) ? value : [value]
  }
  const bad = (option: StartOption, rule: string, got: string) =>
    problems.push({
      field: option,
      message: `${origin[option]} ${rule}, got ${JSON.stringify(got)}`,
    })

  const duration = (option: StartOption, fallback: number, min: number): number => {
    const text = raw(option)
    if (text === undefined) return fallback
    const ms = parseDuration(text)
    if (ms === undefined || ms < min) {
      bad(option, `must be a duration such as 500ms, 10s, 2m, 1h or 7d (at least ${min}ms)`, text)
      return fallback
    }
    return ms
  }
  const integer = (option: StartOption, fallback: number, min: number, max: number): number => {
    const text = raw(option)
    if (text === undefined) return fallback
    const n = Number(text)
    if (!/^\d+$/.test(text.trim()) || n < min || n > max) {
      bad(option, `must be a whole number from ${min} to ${max}`, text)
      return fallback
    }
    return n
  }

  const name = raw('name') ?? hostname()
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    bad('name', 'must be 1 to 63 letters, digits, _ . - starting with a letter or digit', name)
  }
  const dataDir = resolve(raw('data-dir') ?? DEFAULT_DATA_DIR)
  const httpText = raw('http')
  let http = { host: DEFAULT_HTTP_HOST, port: DEFAULT_HTTP_PORT }
  if (httpText !== undefined) {
    const parsed = parseHostPort(httpText)
    if (parsed === undefined) bad('http', 'must be HOST:PORT such as 127.0.0.1:7700', httpText)
    else http = parsed
  }
  const retentionMs = duration('retention', 7 * 86_400_000, 60_000)
  const queryTimeoutMs = duration('query-timeout', 2000, 1)
  const maxBodyBytes = integer(
    'max-body-bytes',
    DEFAULT_INGEST_LIMITS.maxBodyBytes,
    1024,
    1024 ** 3,
  )
  const maxEventsPerRequest = integer(
    'max-events-per-request',
    DEFAULT_INGEST_LIMITS.maxEventsPerRequest,
    1,
    1_000_000,
  )
  const logLevel = raw('log-level') ?? 'info'
  if (!LOG_LEVELS.includes(logLevel))
    bad('log-level', `must be one of ${LOG_LEVELS.join(', ')}`, logLevel)

  const multiaddrs = (option: StartOption, fallback: string[]): string[] => {
    const values = list(option)
    if (values === undefined) return fallback
    for (const value of values) {
      if (!/^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/\d{1,5}(\/p2p\/[A-Za-z0-9]+)?$/.test(value)) {
        bad(
          option,
          'must be a multiaddr such as /ip4/127.0.0.1/tcp/7701 (optionally ending in /p2p/<peer id>)',
          value,
        )
      }
    }
    return values
  }
  const listen = multiaddrs('listen', [DEFAULT_LISTEN])
  for (const address of listen) {
    if (address.includes('/p2p/'))
      bad('listen', 'is where this member listens: no /p2p/ part', address)
  }
  const join = multiaddrs('join', [])
  const announceIntervalMs = duration('announce-interval', 1000, 50)
  const rollupRetentionMs: [number, number, number] = [
    2 * 86_400_000,
    30 * 86_400_000,
    365 * 86_400_000,
  ]
  const rollupText = raw('rollup-retention')
  if (rollupText !== undefined) {
    const resolutions = ['10s', '1m', '1h']
    for (const part of rollupText.split(',')) {
      const [res, keep] = part.split('=').map((s) => s.trim())
      const index = resolutions.indexOf(res ?? '')
      const ms = keep === undefined ? undefined : parseDuration(keep)
      if (index < 0 || ms === undefined || ms < 60_000) {
        bad(
          'rollup-retention',
          'must be a comma list such as 10s=2d,1m=30d,1h=365d (at least 1m each)',
          rollupText,
        )
        break
      }
      rollupRetentionMs[index] = ms
    }
  }
  const forgetAfterMs = duration('forget-after', 86_400_000, 1000)
  const maxClockJumpMs = duration('max-clock-jump', 3_600_000, 1000)
  const metricsTypeLimit = integer('metrics-type-limit', 200, 1, 10_000)
  const maxConcurrentQueries = integer('max-concurrent-queries', 16, 1, 10_000)
  const noCollect = raw('no-collect')
  const collectIntervalMs =
    noCollect !== undefined && noCollect !== 'false' && noCollect !== '0'
      ? 0
      : duration('collect-interval', 10_000, 100)

  // Tokens come from a file, CHORUS_TOKENS or the config file, never from a
  // flag of their own, where `ps` would show them.
  const tokens: Token[] = []
  const warnings: string[] = []
  const tokensFile = raw('tokens-file')
  if (tokensFile !== undefined) {
    try {
      const parsed = parseTokens(readFileSync(tokensFile, 'utf8').split('\n'), ' ', tokensFile)
      tokens.push(...parsed.tokens)
      for (const p of parsed.problems) problems.push({ field: 'tokens-file', message: p })
      const warning = readableByOthers(tokensFile, 'the tokens file')
      if (warning !== undefined) warnings.push(warning)
    } catch (err) {
      problems.push({
        field: 'tokens-file',
        message: `cannot read ${tokensFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      })
    }
  }
  const envTokens = sources.env.CHORUS_TOKENS
  if (envTokens !== undefined && envTokens !== '') {
    const parsed = parseTokens(envTokens.split(','), ':', 'CHORUS_TOKENS')
    tokens.push(...parsed.tokens)
    for (const p of parsed.problems) problems.push({ field: 'tokens', message: p })
  }
  if (fileTokens.length > 0) {
    const parsed = parseTokens(fileTokens, ':', `tokens in ${configFile}`)
    tokens.push(...parsed.tokens)
    for (const p of parsed.problems) problems.push({ field: 'tokens', message: p })
    const warning = readableByOthers(configFile as string, 'the config file')
    if (warning !== undefined) warnings.push(warning)
  }
  const certFile = raw('tls-cert')
  const keyFile = raw('tls-key')
  let tls: { cert: string; key: string } | undefined
  if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push({
      field: certFile === undefined ? 'tls-cert' : 'tls-key',
      message: '--tls-cert and --tls-key go together',
    })
  } else if (certFile !== undefined && keyFile !== undefined) {
    try {
      tls = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }
    } catch (err) {
      problems.push({
        field: 'tls-cert',
        message: `cannot read the certificate or key: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      })
    }
  }
  const insecureText = raw('insecure')
  const insecure = insecureText !== undefined && insecureText !== 'false' && insecureText !== '0'
  if (!insecure && tokens.length === 0 && !isLoopback(http.host)) {
    problems.push({
      field: 'http',
      message: `refusing to serve HTTP on ${http.host} without tokens: anyone who can reach it could read and write; configure tokens (--tokens-file or CHORUS_TOKENS) or pass --insecure`,
    })
  }
  const swarmKeyFile = raw('swarm-key')
  let swarmKey: Uint8Array | undefined
  if (swarmKeyFile !== undefined) {
    try {
      swarmKey = new Uint8Array(readFileSync(swarmKeyFile))
      if (
        !/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\s*$/.test(
          Buffer.from(swarmKey).toString('utf8'),
        )
      ) {
        problems.push({
          field: 'swarm-key',
          message: `${swarmKeyFile} is not a swarm key (make one with: chorus keygen --out FILE)`,
        })
      }
    } catch (err) {
      problems.push({
        field: 'swarm-key',
        message: `cannot read ${swarmKeyFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      })
    }
  }
  const allowPeers = list('allow-peer') ?? []
  for (const peer of allowPeers) {
    if (!/^[1-9A-HJ-NP-Za-km-z]{46,60}$/.test(peer))
      bad('allow-peer', 'must be a peer id such as 12D3KooW…', peer)
  }
  const adminPublicKey = raw('admin-public-key')
  if (adminPublicKey !== undefined && parseAdminPublicKey(adminPublicKey) === undefined)
    bad(
      'admin-public-key',
      'must be the public key printed by chorus keygen --admin (ed25519:…)',
      adminPublicKey,
    )
  for (const address of listen) {
    const host = address.split('/')[2] ?? ''
    if (!insecure && swarmKey === undefined && !isLoopback(host)) {
      problems.push({
        field: 'listen',
        message: `refusing to listen for peers on ${address} without a swarm key: any process that can reach it could join the array; listen on loopback or pass --insecure`,
      })
    }
  }

  if (problems.length > 0) {
    const lines = problems.map((p) => `${p.field}: ${p.message}`)
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`, problems)
  }
  return {
    name,
    dataDir,
    http,
    retentionMs,
    rollupRetentionMs,
    queryTimeoutMs,
    ingestLimits: { ...DEFAULT_INGEST_LIMITS, maxBodyBytes, maxEventsPerRequest },
    eventLimits: { ...DEFAULT_EVENT_LIMITS },
    logLevel,
    listen,
    join,
    announceIntervalMs,
    forgetAfterMs,
    maxClockJumpMs,
    metricsTypeLimit,
    tokens,
    ...(tls === undefined ? {} : { tls }),
    insecure,
    ...(swarmKey === undefined ? {} : { swarmKey }),
    allowPeers,
    ...(adminPublicKey === undefined ? {} : { adminPublicKey }),
    maxConcurrentQueries,
    collectIntervalMs,
    ...(warnings.length === 0 ? {} : { warnings }),
  }
}
