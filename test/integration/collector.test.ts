// The host collector on this Linux machine: plausible values, logged as
// events and exported in node_exporter's manner (a size and what is left of
// it as separate series, CPU as seconds per cpu and mode).

import { spawnSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { CPU_MODES, steadyCpuSeconds } from '../../node/collect/host.ts'
import { createMember, type Member } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { metricSample, removeTempDirs, testConfig, waitFor } from '../helpers.ts'

/** The series of the old exposition, which mixed a total with its parts or repeated prom-client's. */
const REMOVED = [
  'chorus_host_cpu_utilisation_ratio',
  'chorus_host_memory_bytes',
  'chorus_data_dir_filesystem_bytes',
  'chorus_event_loop_delay_p99_seconds',
]

/** Every chorus_host_cpu_seconds_total series: its labels and value. */
function cpuSeconds(body: string): Array<{ labels: Record<string, string>; value: number }> {
  return [...body.matchAll(/^chorus_host_cpu_seconds_total\{([^}]*)\} (\S+)$/gm)].map((m) => ({
    labels: Object.fromEntries(
      [...(m[1] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
    ),
    value: Number(m[2]),
  }))
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

/** The series a body has, by name (no sample, no name: a TYPE line alone does not count). */
const seriesNames = (body: string) =>
  new Set([...body.matchAll(/^([a-z_]+)[{ ]/gm)].map((m) => m[1] as string))

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

describe('the host collector', () => {
  it('samples plausible values, logs them as host.* and process.* events, and exports them', async () => {
    const config = { ...(await testConfig('sampler')), collectIntervalMs: 200 }
    const member = await createMember(config)
    members.push(member)
    await member.start()
    const collector = member.collector
    expect(collector).toBeDefined()
    // Two samples: CPU utilisation needs an interval.
    const sample = await waitFor(
      () => collector?.latest()?.cpu !== undefined && collector?.latest(),
      { what: 'a sample with CPU' },
    )
    if (sample === false || sample === undefined) throw new Error('no sample')
    expect(sample.cpu?.all).toBeGreaterThanOrEqual(0)
    expect(sample.cpu?.all).toBeLessThanOrEqual(1)
    expect(sample.cpu?.cores.length).toBeGreaterThanOrEqual(1)
    for (const core of sample.cpu?.cores ?? []) expect(core >= 0 && core <= 1).toBe(true)
    expect(sample.memory.totalBytes).toBeGreaterThan(0)
    expect(sample.memory.usedBytes).toBeLessThanOrEqual(sample.memory.totalBytes)
    expect(sample.dataDir.path).toBe(config.dataDir)
    expect(sample.dataDir.sizeBytes).toBeGreaterThan(0)
    expect(sample.dataDir.freeBytes).toBeLessThanOrEqual(sample.dataDir.sizeBytes)
    expect(sample.net.every((n) => n.name !== 'lo')).toBe(true)
    expect(sample.process.rssBytes).toBeGreaterThan(0)
    expect(sample.process.eventLoopDelayP99Seconds).toBeGreaterThanOrEqual(0)

    const types = await waitFor(
      async () => {
        const page = (await (
          await member.app.request('/v1/events?from=0&limit=1000&type=host.*,process.*')
        ).json()) as ResultPage
        const seen = new Set(page.events.map((e) => e.type))
        return (
          [
            'host.cpu',
            'host.load',
            'host.memory',
            'host.disk',
            'process.memory',
            'process.event_loop_delay',
          ].every((t) => seen.has(t)) && page
        )
      },
      { what: 'the sample events' },
    )
    if (types === false) throw new Error('no events')
    const cpu = types.events.find((e) => e.type === 'host.cpu')
    expect(cpu?.value).toBeGreaterThanOrEqual(0)
    expect(cpu?.value).toBeLessThanOrEqual(1)
    expect(cpu?.attrs?.cores).toBe(sample.cpu?.cores.length)
    const disk = types.events.find((e) => e.type === 'host.disk')
    expect(disk?.attrs?.path).toBe(config.dataDir)

    const metrics = await (await member.app.request('/metrics')).text()
    const total = metricSample(metrics, 'chorus_host_memory_total_bytes') as number
    expect(total).toBeGreaterThan(0)
    expect(metricSample(metrics, 'chorus_host_memory_available_bytes')).toBeLessThanOrEqual(total)
    const swap = metricSample(metrics, 'chorus_host_memory_swap_total_bytes') as number
    expect(swap).toBeGreaterThanOrEqual(0)
    expect(metricSample(metrics, 'chorus_host_memory_swap_free_bytes')).toBeLessThanOrEqual(swap)
    const size = metricSample(metrics, 'chorus_data_dir_filesystem_size_bytes') as number
    expect(size).toBeGreaterThan(0)
    expect(metricSample(metrics, 'chorus_data_dir_filesystem_avail_bytes')).toBeLessThanOrEqual(
      size,
    )
    expect(metrics).toMatch(/^chorus_host_load_average\{period="1m"\} [\d.]+/m)
    // The event-loop delay is prom-client's alone.
    expect(metrics).toMatch(/^nodejs_eventloop_lag_p99_seconds [\d.e-]+$/m)
    const names = seriesNames(metrics)
    for (const name of REMOVED) {
      expect(names, name).not.toContain(name)
      expect(metrics, name).not.toContain(`# TYPE ${name} `)
    }
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' })
    expect(`${lint.stdout}${lint.stderr}`).toBe('')
  })

  it('exports CPU time as a counter of seconds, one series per cpu and mode, that never falls', async () => {
    const member = await createMember({
      ...(await testConfig('cpu-seconds')),
      collectIntervalMs: 200,
    })
    members.push(member)
    await member.start()
    const collector = member.collector
    const at = (await waitFor(() => collector?.latest()?.at, { what: 'a sample' })) as number
    const first = await (await member.app.request('/metrics')).text()
    expect(first).toMatch(/^# TYPE chorus_host_cpu_seconds_total counter$/m)
    const before = cpuSeconds(first)
    const cpus = [...new Set(before.map((s) => s.labels.cpu))]
    // One per online cpu of /proc/stat, by its number: no cpu="all" row.
    expect(cpus.length).toBe(collector?.latest()?.cpuSeconds.length)
    expect(cpus.length).toBeGreaterThanOrEqual(1)
    for (const cpu of cpus) expect(cpu).toMatch(/^\d+$/)
    expect(before).toHaveLength(cpus.length * CPU_MODES.length)
    const keys = before.map((s) => `${s.labels.cpu}/${s.labels.mode}`)
    expect(new Set(keys).size).toBe(keys.length)
    for (const s of before) {
      expect(Object.keys(s.labels).sort()).toEqual(['cpu', 'mode'])
      expect(CPU_MODES).toContain(s.labels.mode)
      expect(s.value).toBeGreaterThanOrEqual(0)
    }

    // A later sample: every series is still there and none has fallen.
    await waitFor(() => (collector?.latest()?.at ?? 0) > at, { what: 'the next sample' })
    const after = new Map(
      cpuSeconds(await (await member.app.request('/metrics')).text()).map((s) => [
        `${s.labels.cpu}/${s.labels.mode}`,
        s.value,
      ]),
    )
    expect([...after.keys()].sort()).toEqual([...keys].sort())
    for (const s of before)
      expect(after.get(`${s.labels.cpu}/${s.labels.mode}`)).toBeGreaterThanOrEqual(s.value)
    // Seconds, not ticks nor ms: every moment of a cpu is in one of its modes, so
    // together they moved on by the time between the two samples scraped (the
    // first no older than `at`), once per cpu.
    const elapsed = (Date.now() - at) / 1000
    const moved = sum([...after.values()]) - sum(before.map((s) => s.value))
    expect(moved).toBeGreaterThan(0)
    expect(moved).toBeLessThan(cpus.length * (elapsed + 0.5))
  })

  it("keeps each cpu's counts from falling back, and starts them again when the cpu came back", () => {
    // Ticks of USER_HZ in /proc/stat's order: user nice system idle iowait irq softirq steal.
    const line = (cpu: string, idle: number, iowait: number) => ({
      cpu,
      ticks: [1000, 0, 500, idle, iowait, 0, 10, 0],
    })
    const first = steadyCpuSeconds([line('', 9e9, 9e9), line('0', 50_000, 300)], [])
    expect(first).toEqual([
      {
        cpu: '0',
        seconds: {
          user: 10,
          nice: 0,
          system: 5,
          idle: 500,
          iowait: 3,
          irq: 0,
          softirq: 0.1,
          steal: 0,
        },
      },
    ])
    // iowait and idle stepping back a little keep their figures.
    const second = steadyCpuSeconds([line('0', 49_950, 200), line('1', 100, 0)], first)
    expect(second.map((c) => [c.cpu, c.seconds.idle, c.seconds.iowait])).toEqual([
      ['0', 500, 3],
      ['1', 1, 0],
    ])
    // idle falling back by 3 s or more: the cpu went offline and back, its counts start again;
    // a cpu no longer listed is gone.
    const third = steadyCpuSeconds([line('0', 100, 0)], second)
    expect(third.map((c) => [c.cpu, c.seconds.idle, c.seconds.iowait])).toEqual([['0', 1, 0]])
  })

  it('is off with --no-collect, and then no host series is exported', async () => {
    const member = await createMember(await testConfig('quiet'))
    members.push(member)
    expect(member.collector).toBeUndefined()
    const metrics = await (await member.app.request('/metrics')).text()
    const names = [...seriesNames(metrics)]
    expect(names.filter((n) => /^chorus_(host|data_dir)_/.test(n))).toEqual([])
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' })
    expect(`${lint.stdout}${lint.stderr}`).toBe('')
  })
})
