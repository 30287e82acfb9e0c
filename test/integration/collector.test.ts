// The host collector on this Linux machine: plausible values, logged as
// events and exported as gauges.

import { spawnSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { removeTempDirs, testConfig, waitFor } from '../helpers.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

describe('the host collector', () => {
  it('samples plausible values, logs them as host.* and process.* events, and exports gauges', async () => {
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
    expect(metrics).toMatch(/^chorus_host_cpu_utilisation_ratio\{core="all"\} [\d.e-]+$/m)
    expect(metrics).toMatch(/^chorus_host_memory_bytes\{kind="total"\} \d+/m)
    expect(metrics).toMatch(/^chorus_data_dir_filesystem_bytes\{kind="free"\} \d+/m)
    expect(metrics).toMatch(/^chorus_host_load_average\{period="1m"\} [\d.]+/m)
    expect(metrics).toMatch(/^chorus_event_loop_delay_p99_seconds [\d.e-]+/m)
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' })
    expect(`${lint.stdout}${lint.stderr}`).toBe('')
  })

  it('is off with --no-collect', async () => {
    const member = await createMember(await testConfig('quiet'))
    members.push(member)
    expect(member.collector).toBeUndefined()
  })
})
