// The host collector: every member samples its own server, so no other agent
// is needed. Read through Node's own APIs (os, fs.statfs, perf_hooks) and
// Linux's /proc (stat, meminfo, diskstats, net/dev); each sample is logged
// as events (so it is queried, rolled up and merged like any event) and
// kept as the latest reading for the exporter's gauges and counters.

import { readFile, stat, statfs } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { EventInput } from '../event/event.ts'
import type { Logger } from '../log.ts'

/** Most per-core figures carried as attributes of one host.cpu event (attrs are capped at 32). */
const MAX_CORES_IN_ATTRS = 28

/** The modes of a cpu line of /proc/stat, in its order (guest time is already in user and nice). */
export const CPU_MODES = [
  'user',
  'nice',
  'system',
  'idle',
  'iowait',
  'irq',
  'softirq',
  'steal',
] as const
export type CpuMode = (typeof CPU_MODES)[number]

/** /proc/stat counts CPU time in ticks of USER_HZ, 100 a second on Linux (node_exporter assumes it too). */
const USER_HZ = 100

/** A cpu whose idle count falls back by at least this much, seconds, was taken offline and back: its counts start again. */
const CPU_RESET_SECONDS = 3

export interface HostSample {
  /** ms since the epoch. */
  at: number
  /** Utilisation since the previous sample, 0..1: whole machine, then per core. Undefined on the first sample. */
  cpu?: { all: number; cores: number[] }
  /**
   * CPU time since boot of each online cpu (its number in /proc/stat), seconds by mode; no
   * figure is lower than in the previous sample (see steadyCpuSeconds).
   */
  cpuSeconds: Array<{ cpu: string; seconds: Record<CpuMode, number> }>
  load: [number, number, number]
  memory: {
    totalBytes: number
    availableBytes: number
    usedBytes: number
    swapTotalBytes: number
    swapUsedBytes: number
  }
  dataDir: {
    path: string
    sizeBytes: number
    freeBytes: number
    /** Bytes read and written by the data dir's block device since boot, when it is one. */
    readBytes?: number
    writtenBytes?: number
  }
  /** Bytes received and sent since boot, per interface (loopback excluded). */
  net: Array<{ name: string; receivedBytes: number; sentBytes: number }>
  process: {
    rssBytes: number
    heapUsedBytes: number
    heapTotalBytes: number
    eventLoopDelayP99Seconds: number
    eventLoopDelayMaxSeconds: number
  }
}

interface CpuTimes {
  /** '' for the machine's line, else the cpu's number. */
  cpu: string
  /** Ticks by mode, in CPU_MODES' order. */
  ticks: number[]
  idle: number
  total: number
}

async function readCpuTimes(): Promise<CpuTimes[]> {
  const text = await readFile('/proc/stat', 'utf8')
  const out: CpuTimes[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) continue
    const [name = '', ...rest] = line.trim().split(/\s+/)
    const fields = rest.map(Number)
    const ticks = CPU_MODES.map((_, i) => fields[i] ?? 0)
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0) // idle + iowait
    const total = ticks.reduce((a, b) => a + b, 0) // user … steal
    out.push({ cpu: name.slice(3), ticks, idle, total })
  }
  return out // [all, cpu0, cpu1, …]
}

/**
 * Each online cpu's seconds by mode from /proc/stat's ticks (the machine's
 * line left out), as counters: the kernel's idle and iowait counts can step
 * back a little (tickless accounting), which a counter must not, so a figure
 * below the previous one keeps the previous one, as node_exporter does; only
 * idle falling back by CPU_RESET_SECONDS or more (the cpu was taken offline
 * and back) starts the cpu's counts again.
 */
export function steadyCpuSeconds(
  times: Array<Pick<CpuTimes, 'cpu' | 'ticks'>>,
  previous: HostSample['cpuSeconds'],
): HostSample['cpuSeconds'] {
  const before = new Map(previous.map((c) => [c.cpu, c.seconds]))
  return times
    .filter((t) => t.cpu !== '')
    .map((t) => {
      const now = Object.fromEntries(
        CPU_MODES.map((mode, i) => [mode, (t.ticks[i] ?? 0) / USER_HZ]),
      ) as Record<CpuMode, number>
      const last = before.get(t.cpu)
      if (last === undefined || last.idle - now.idle >= CPU_RESET_SECONDS)
        return { cpu: t.cpu, seconds: now }
      for (const mode of CPU_MODES) now[mode] = Math.max(now[mode], last[mode])
      return { cpu: t.cpu, seconds: now }
    })
}

async function readMemory(): Promise<HostSample['memory']> {
  const text = await readFile('/proc/meminfo', 'utf8')
  const kb = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024
  const totalBytes = kb('MemTotal')
  const availableBytes = kb('MemAvailable')
  const swapTotalBytes = kb('SwapTotal')
  return {
    totalBytes,
    availableBytes,
    usedBytes: totalBytes - availableBytes,
    swapTotalBytes,
    swapUsedBytes: swapTotalBytes - kb('SwapFree'),
  }
}

async function readDataDir(path: string): Promise<HostSample['dataDir']> {
  const fs = await statfs(path)
  const out: HostSample['dataDir'] = {
    path,
    sizeBytes: fs.blocks * fs.bsize,
    freeBytes: fs.bavail * fs.bsize,
  }
  // The block device under the data dir, by major:minor, in /proc/diskstats
  // (absent on overlay and network filesystems: then no I/O figures).
  const dev = (await stat(path)).dev
  const major = Math.floor(dev / 256) & 0xfff
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00)
  const stats = await readFile('/proc/diskstats', 'utf8').catch(() => '')
  for (const line of stats.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (Number(f[0]) === major && Number(f[1]) === minor) {
      out.readBytes = Number(f[5]) * 512
      out.writtenBytes = Number(f[9]) * 512
    }
  }
  return out
}

async function readNet(): Promise<HostSample['net']> {
  const text = await readFile('/proc/net/dev', 'utf8').catch(() => '')
  const out: HostSample['net'] = []
  for (const line of text.split('\n').slice(2)) {
    const at = line.indexOf(':')
    if (at < 0) continue
    const name = line.slice(0, at).trim()
    if (name === 'lo') continue
    const f = line
      .slice(at + 1)
      .trim()
      .split(/\s+/)
      .map(Number)
    out.push({ name, receivedBytes: f[0] ?? 0, sentBytes: f[8] ?? 0 })
  }
  return out
}

export interface Collector {
  /** The latest sample, for gauges; undefined before the first. */
  latest(): HostSample | undefined
  /** Takes a sample now, logs its events, and returns it. */
  sample(): Promise<HostSample>
  start(): void
  stop(): void
}

export interface CollectorInit {
  dataDir: string
  /** Sampling interval, ms. */
  intervalMs: number
  /** Logs the sample's events (durably, like any ingest). */
  submit: (events: EventInput[]) => Promise<unknown>
  clock: () => number
  logger: Logger
}

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits

/** The events one sample is logged as. */
export function sampleEvents(s: HostSample): EventInput[] {
  const events: EventInput[] = []
  if (s.cpu !== undefined) {
    const attrs: Record<string, number> = { cores: s.cpu.cores.length }
    s.cpu.cores.slice(0, MAX_CORES_IN_ATTRS).forEach((u, i) => {
      attrs[`core${i}`] = round(u)
    })
    events.push({ type: 'host.cpu', source: 'collector', value: round(s.cpu.all), attrs })
  }
  events.push({
    type: 'host.load',
    source: 'collector',
    value: round(s.load[0], 2),
    attrs: { load5: round(s.load[1], 2), load15: round(s.load[2], 2) },
  })
  const m = s.memory
  events.push({
    type: 'host.memory',
    source: 'collector',
    value: m.usedBytes,
    attrs: {
      total: m.totalBytes,
      available: m.availableBytes,
      swap_total: m.swapTotalBytes,
      swap_used: m.swapUsedBytes,
    },
  })
  const d = s.dataDir
  const diskAttrs: Record<string, string | number> = {
    path: d.path,
    size: d.sizeBytes,
    free: d.freeBytes,
  }
  if (d.readBytes !== undefined) diskAttrs.read_bytes = d.readBytes
  if (d.writtenBytes !== undefined) diskAttrs.written_bytes = d.writtenBytes
  events.push({
    type: 'host.disk',
    source: 'collector',
    value: d.sizeBytes === 0 ? 0 : round(d.freeBytes / d.sizeBytes),
    attrs: diskAttrs,
  })
  for (const n of s.net) {
    events.push({
      type: 'host.net',
      source: 'collector',
      value: n.receivedBytes + n.sentBytes,
      attrs: { interface: n.name, received_bytes: n.receivedBytes, sent_bytes: n.sentBytes },
    })
  }
  const p = s.process
  events.push({
    type: 'process.memory',
    source: 'collector',
    value: p.rssBytes,
    attrs: { heap_used: p.heapUsedBytes, heap_total: p.heapTotalBytes },
  })
  events.push({
    type: 'process.event_loop_delay',
    source: 'collector',
    value: round(p.eventLoopDelayP99Seconds, 6),
    attrs: { max_seconds: round(p.eventLoopDelayMaxSeconds, 6) },
  })
  return events
}

export function createCollector(init: CollectorInit): Collector {
  let previous: CpuTimes[] | undefined
  let cpuSeconds: HostSample['cpuSeconds'] = []
  let latest: HostSample | undefined
  let timer: NodeJS.Timeout | undefined
  // Sampled every 100 ms: finer sampling wakes an idle member 100 times a second.
  const loop = monitorEventLoopDelay({ resolution: 100 })

  async function sample(): Promise<HostSample> {
    const [times, memory, dataDir, net] = await Promise.all([
      readCpuTimes(),
      readMemory(),
      readDataDir(init.dataDir),
      readNet(),
    ])
    let cpu: HostSample['cpu']
    if (previous !== undefined && previous.length === times.length) {
      const utilisation = times.map((t, i) => {
        const p = previous?.[i] as CpuTimes
        const total = t.total - p.total
        return total <= 0 ? 0 : Math.min(1, Math.max(0, 1 - (t.idle - p.idle) / total))
      })
      cpu = { all: utilisation[0] as number, cores: utilisation.slice(1) }
    }
    previous = times
    cpuSeconds = steadyCpuSeconds(times, cpuSeconds)
    const usage = process.memoryUsage()
    const s: HostSample = {
      at: init.clock(),
      cpuSeconds,
      load: loadavg() as [number, number, number],
      memory,
      dataDir,
      net,
      process: {
        rssBytes: usage.rss,
        heapUsedBytes: usage.heapUsed,
        heapTotalBytes: usage.heapTotal,
        eventLoopDelayP99Seconds: loop.percentile(99) / 1e9,
        eventLoopDelayMaxSeconds: loop.max / 1e9,
      },
    }
    if (cpu !== undefined) s.cpu = cpu
    loop.reset()
    latest = s
    await init.submit(sampleEvents(s))
    return s
  }

  return {
    latest: () => latest,
    sample,
    start() {
      loop.enable()
      const tick = () =>
        void sample().catch((err: unknown) =>
          init.logger.warn({ err }, 'host sample failed; will retry'),
        )
      tick()
      timer = setInterval(tick, init.intervalMs)
      timer.unref()
    },
    stop() {
      clearInterval(timer)
      loop.disable()
    },
  }
}
