// Shared pieces of the benchmark scripts: member processes on loopback,
// percentiles, peak RSS from /proc, and a printed table. Benchmarks print
// figures; they never assert on speed.

import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const CLI = join(import.meta.dirname, '..', '..', 'node', 'cli.ts')

export interface BenchMember {
  name: string
  url: string
  /** p2p multiaddr with /p2p/<peer id>. */
  p2p: string
  pid: number
  child: ChildProcess
  dataDir: string
  stop(): Promise<void>
}

export async function startBenchMember(
  name: string,
  args: string[] = [],
  extraEnv: Record<string, string> = {},
): Promise<BenchMember> {
  const dataDir = await mkdtemp(join(tmpdir(), `chorus-bench-${name}-`))
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      CLI,
      'start',
      '--name',
      name,
      '--data-dir',
      dataDir,
      '--http',
      '127.0.0.1:0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--no-collect',
      ...args,
    ],
    {
      env: { ...process.env, CHORUS_LOG_LEVEL: 'warn', ...extraEnv },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const { url, p2p } = await new Promise<{ url: string; p2p: string }>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${name} did not start in 30 s`))
    }, 30_000)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const match = /listening on (http:\/\/[\d.:]+) and (\S+)/.exec(out)
      if (match) {
        clearTimeout(timer)
        resolve({ url: match[1] as string, p2p: match[2] as string })
      }
    })
    child.once('exit', (code) => reject(new Error(`${name} exited ${code}`)))
  })
  return {
    name,
    url,
    p2p,
    pid: child.pid as number,
    child,
    dataDir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        await exited
        clearTimeout(timer)
      }
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** Peak resident set size of a process so far, in MiB (VmHWM). */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /VmHWM:\s+(\d+) kB/.exec(status)
  return match ? Math.round(Number(match[1]) / 1024) : Number.NaN
}

/** Resident memory of a process that is its own (anonymous pages: heap, stacks, buffers), MiB. */
export function anonRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /RssAnon:\s+(\d+) kB/.exec(status)
  return match ? Math.round(Number(match[1]) / 1024) : Number.NaN
}

/**
 * Samples the RSS of `pids` every `everyMs` until `stop()`, which returns
 * each process's largest sample, MiB.
 */
export function sampleRss(pids: number[], everyMs = 200): { stop(): number[] } {
  const most = pids.map(rssMiB)
  const timer = setInterval(() => {
    for (const [i, pid] of pids.entries()) {
      const now = rssMiB(pid)
      if (now > (most[i] as number)) most[i] = now
    }
  }, everyMs)
  return {
    stop() {
      clearInterval(timer)
      for (const [i, pid] of pids.entries()) most[i] = Math.max(most[i] as number, rssMiB(pid))
      return most
    },
  }
}

export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /VmRSS:\s+(\d+) kB/.exec(status)
  return match ? Math.round(Number(match[1]) / 1024) : Number.NaN
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)
  return sorted[Math.max(0, index)] as number
}

export function summary(latenciesMs: number[]) {
  const sorted = [...latenciesMs].sort((a, b) => a - b)
  return {
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    n: sorted.length,
  }
}

/** Median, min and max (NaN for none). */
export function spread(xs: number[]): { median: number; min: number; max: number } {
  if (xs.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN }
  const sorted = [...xs].sort((a, b) => a - b)
  return {
    median: sorted[Math.floor(sorted.length / 2)] as number,
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
  }
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export function printTable(title: string, rows: Array<Record<string, string | number>>): void {
  if (rows.length === 0) return
  const keys = Object.keys(rows[0] as object)
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => String(r[k]).length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ')
  process.stdout.write(`\n${title}\n${line(keys)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`)
  for (const row of rows) process.stdout.write(`${line(keys.map((k) => String(row[k])))}\n`)
}

/** A ~200-byte operational event, varied enough that compression does not flatter the figures. */
export function sampleEvent(i: number): string {
  const types = ['http.request', 'http.error', 'db.query', 'app.login', 'queue.depth']
  const severities = ['debug', 'info', 'info', 'warn', 'error']
  return JSON.stringify({
    type: types[i % types.length],
    severity: severities[(i >> 3) % severities.length],
    message: `request ${i.toString(36)} to /api/v1/items/${(i * 7919) % 100_000} took ${(i * 31) % 997} ms`,
    source: `web-${i % 16}`,
    value: (i * 31) % 997,
    attrs: {
      region: i % 2 ? 'eu-west' : 'us-east',
      status: 200 + (i % 5),
      user: `u${(i * 104729) % 50_000}`,
    },
  })
}

/** Polls `condition` every 10 ms; returns how long it took to hold, or NaN after `timeoutMs`. */
export async function timeUntil(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<number> {
  const t0 = performance.now()
  while (performance.now() - t0 < timeoutMs) {
    if (await condition()) return performance.now() - t0
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return Number.NaN
}

/** A member's membership table ([] when it does not answer). */
export async function tableOf(m: BenchMember): Promise<Array<{ name: string; state: string }>> {
  try {
    const answer = await fetch(`${m.url}/v1/members`, { signal: AbortSignal.timeout(5000) })
    const body = (await answer.json()) as {
      members: Array<{ name: string; state: string }>
    }
    return body.members
  } catch {
    return []
  }
}

export function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000))
}

/** A member's /metrics as Prometheus text. */
export async function scrape(m: BenchMember): Promise<string> {
  return (await fetch(`${m.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
}

/** The samples of metric `name` in Prometheus text, each with its labels. */
export function samples(
  text: string,
  name: string,
): Array<{ labels: Record<string, string>; value: number }> {
  const out = []
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !/[{ ]/.test(line.charAt(name.length))) continue
    const labels: Record<string, string> = {}
    const close = line.lastIndexOf('}')
    for (const [, key, value] of line.slice(0, close + 1).matchAll(/(\w+)="([^"]*)"/g))
      labels[key as string] = value as string
    const rest = close === -1 ? line.slice(name.length) : line.slice(close + 1)
    out.push({ labels, value: Number(rest.trim().split(' ')[0]) })
  }
  return out
}

/**
 * Sum of the samples of `name` whose labels include `match`; `absent` when
 * the text has no sample of `name` at all (a labelled counter never raised
 * has none).
 */
export function sampleSum(
  text: string,
  name: string,
  match: Record<string, string> = {},
  absent = Number.NaN,
): number {
  const all = samples(text, name)
  if (all.length === 0) return absent
  return all
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)
}
