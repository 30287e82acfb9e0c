// Members as separate processes, for tests where a crash or a pause matters.
// Every process started here is tracked and killed by stopAll(), which each
// test file calls in afterEach, so nothing outlives its test.

import type { ChildProcess } from 'node:child_process'
import { execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { tempDir, waitFor } from '../helpers.ts'

const ROOT = join(import.meta.dirname, '..', '..')
export const CLI = join(ROOT, 'node', 'cli.ts')
const running = new Set<MemberProcess>()

export interface MemberProcess {
  readonly name: string
  readonly pid: number
  /** Base URL of its HTTP API. */
  readonly url: string
  /** Its p2p multiaddr, ending in /p2p/<peer id>. */
  readonly p2p: string
  /** The data dir it was started with. */
  readonly dataDir: string
  readonly child: ChildProcess
  /** Everything it wrote to stdout and stderr so far. */
  output(): string
  /** Resolves with the exit code (or signal name) once the process has ended. */
  readonly exited: Promise<number | string>
  signal(signal: NodeJS.Signals): void
}

export interface StartOptions {
  name: string
  dataDir: string
  args?: string[]
  env?: Record<string, string>
  /** Run the host collector (off by default in tests). */
  collect?: boolean
  /** How long to wait for the listening line. Default 20 s. */
  timeoutMs?: number
}

/** Runs `chorus <args>` to completion (bounded), for CLI tests. */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runNode([CLI, ...args], options)
}

/**
 * Runs `node <args>` to completion (bounded, killed past `timeoutMs`),
 * without blocking this process (a member it talks to may run here).
 */
export function runNode(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCommand(process.execPath, args, options)
}

/** Runs `command <args>` to completion, bounded as runNode is. */
export async function runCommand(
  command: string,
  args: string[],
  { env = {}, timeoutMs = 20_000 }: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, {
    env: { ...process.env, CHORUS_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** Starts a member process and waits until it prints its HTTP address. */
export async function startMember(options: StartOptions): Promise<MemberProcess> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'start',
      '--name',
      options.name,
      '--data-dir',
      options.dataDir,
      '--http',
      '127.0.0.1:0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      // Off unless a test asks: the collector's events would mix with those a test counts.
      ...(options.collect === true ? [] : ['--no-collect']),
      ...(options.args ?? []),
    ],
    {
      env: { ...process.env, CHORUS_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown')
    })
  })
  const { url, p2p } = await new Promise<{ url: string; p2p: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(
          `${options.name} did not start within ${options.timeoutMs ?? 20_000} ms:\n${output}`,
        ),
      )
    }, options.timeoutMs ?? 20_000)
    const onData = (data: Buffer) => {
      output += data.toString()
      const match = /listening on (https?:\/\/[\d.:]+) and (\S+)/.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve({ url: match[1] as string, p2p: match[2] as string })
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (d: Buffer) => {
      output += d.toString()
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`${options.name} exited (${code}) before starting:\n${output}`))
    })
  })
  const member: MemberProcess = {
    name: options.name,
    pid: child.pid as number,
    url,
    p2p,
    dataDir: options.dataDir,
    child,
    output: () => output,
    exited,
    signal: (signal) => {
      if (child.exitCode === null && child.signalCode === null)
        process.kill(child.pid as number, signal)
    },
  }
  running.add(member)
  void exited.then(() => running.delete(member))
  return member
}

/** Kills every member process still running (SIGCONT first, so a stopped one can die). */
export async function stopAll(): Promise<void> {
  const all = [...running]
  for (const member of all) {
    member.signal('SIGCONT')
    member.signal('SIGKILL')
  }
  await Promise.all(all.map((m) => m.exited))
}

/**
 * Writes a new self-signed certificate for 127.0.0.1 and its key (P-256) into
 * `dir` with openssl, as `<name>.pem` and `<name>-key.pem`; returns their paths.
 */
export function selfSignedCert(dir: string, name = 'cert'): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`)
  const key = join(dir, `${name}-key.pem`)
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  )
  return { cert, key }
}

/** A row of a member's GET /v1/members, as process tests read it. */
export interface TableRow {
  name: string
  member: string
  state: string
  holders: Array<{ member: string; name: string; lagEvents?: number; lagMs?: number }>
}

/** A member's membership table, through its HTTP API. */
export async function tableOf(m: MemberProcess): Promise<TableRow[]> {
  return ((await (await fetch(`${m.url}/v1/members`)).json()) as { members: TableRow[] }).members
}

/** The state of member `name` in `m`'s table, or undefined if absent. */
export async function stateIn(m: MemberProcess, name: string): Promise<string | undefined> {
  return (await tableOf(m)).find((e) => e.name === name)?.state
}

/**
 * Starts members `names` as processes, each after the first joining it,
 * with `args` (fresh data dirs); waits until every table lists all alive.
 */
export async function startProcessArray(
  names: string[],
  args: string[] = [],
  options: Pick<StartOptions, 'collect'> = {},
): Promise<MemberProcess[]> {
  const out: MemberProcess[] = []
  for (const name of names) {
    const join = out.length === 0 ? [] : ['--join', (out[0] as MemberProcess).p2p]
    out.push(
      await startMember({ name, dataDir: await tempDir(), args: [...args, ...join], ...options }),
    )
  }
  await waitFor(
    async () => {
      for (const m of out)
        if ((await tableOf(m)).filter((e) => e.state === 'alive').length !== names.length)
          return false
      return true
    },
    { timeoutMs: 20_000, what: 'every member alive in every table' },
  )
  return out
}

/** A page of GET /v1/events from `m`, and how long it took, ms. */
export async function timedPage(
  m: MemberProcess,
  params: string,
): Promise<{ page: ResultPage; ms: number }> {
  const started = performance.now()
  const page = (await (await fetch(`${m.url}/v1/events?${params}`)).json()) as ResultPage
  return { page, ms: performance.now() - started }
}

/** Posts `events` (one or a list) to `m` as JSON; their ids, or an Error naming the status unless it is 201. */
export async function postEvents(m: MemberProcess, events: unknown): Promise<string[]> {
  const response = await fetch(`${m.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(events),
  })
  if (response.status !== 201)
    throw new Error(
      `POST /v1/events to ${m.name} answered ${response.status}: ${await response.text()}`,
    )
  return ((await response.json()) as { ids: string[] }).ids
}
