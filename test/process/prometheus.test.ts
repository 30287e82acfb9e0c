// A real Prometheus (Debian's package, installed by .ci/run) scrapes one
// member's /metrics/cluster on loopback and sees the whole array: the array's
// total of the test's event type equals what the test ingested, and does not
// drop when a member is killed.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort, removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { type MemberProcess, postEvents, startMember, stopAll } from './harness.ts'

let prometheus: ChildProcess | undefined

afterEach(async () => {
  if (prometheus !== undefined && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus?.once('exit', resolve))
    prometheus.kill('SIGKILL')
    await exited
  }
  prometheus = undefined
  await stopAll()
  await removeTempDirs()
})

async function promQuery(port: number, query: string): Promise<number | undefined> {
  const response = await fetch(
    `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(query)}`,
  )
  const body = (await response.json()) as { data?: { result?: Array<{ value: [number, string] }> } }
  const value = body.data?.result?.[0]?.value[1]
  return value === undefined ? undefined : Number(value)
}

const emit = (m: MemberProcess, count: number, type: string) =>
  postEvents(
    m,
    Array.from({ length: count }, () => ({ type })),
  )

describe("Prometheus scraping one member's /metrics/cluster", () => {
  it('sees every member, counts exactly the events ingested, and keeps the sum when a member is killed', async () => {
    const a = await startMember({ name: 'pa', dataDir: await tempDir() })
    const b = await startMember({ name: 'pb', dataDir: await tempDir(), args: ['--join', a.p2p] })
    const c = await startMember({ name: 'pc', dataDir: await tempDir(), args: ['--join', a.p2p] })
    await waitFor(
      async () => {
        const body = (await (await fetch(`${a.url}/v1/members`)).json()) as {
          members: Array<{ state: string }>
        }
        return body.members.filter((m) => m.state === 'alive').length === 3
      },
      { what: 'three members alive' },
    )
    await emit(a, 7, 'prom.test')
    await emit(b, 11, 'prom.test')
    await emit(c, 13, 'prom.test')
    await emit(c, 5, 'prom.other')

    // The exposition itself is clean.
    await waitFor(
      async () => (await (await fetch(`${a.url}/metrics/cluster`)).text()).includes('member="pc"'),
      {
        what: 'pc in the snapshot',
      },
    )
    const exposition = await (await fetch(`${a.url}/metrics/cluster`)).text()
    const lint = spawnSync('promtool', ['check', 'metrics'], {
      input: exposition,
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(`${lint.stdout}${lint.stderr}`).toBe('')
    expect(lint.status).toBe(0)

    const dir = await tempDir()
    const port = await freePort()
    const target = a.url.replace('http://', '')
    await writeFile(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: chorus\n    metrics_path: /metrics/cluster\n    static_configs:\n      - targets: ['${target}']\n`,
    )
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    )
    const total = 'sum(chorus_array_events_total{type="prom.test"})'
    await waitFor(async () => (await promQuery(port, total)) === 31, {
      timeoutMs: 40_000,
      intervalMs: 250,
      what: 'Prometheus to see 31 prom.test events',
    })
    expect(await promQuery(port, 'sum(chorus_member_up)')).toBe(3)
    expect(await promQuery(port, 'chorus_array_members_answered')).toBe(3)

    c.signal('SIGKILL')
    await c.exited
    await waitFor(async () => (await promQuery(port, 'chorus_member_up{member="pc"}')) === 0, {
      timeoutMs: 40_000,
      intervalMs: 250,
      what: 'pc down in Prometheus',
    })
    expect(await promQuery(port, total)).toBe(31)
    expect(await promQuery(port, 'sum(chorus_member_events_total)')).toBe(36)
  })
})
