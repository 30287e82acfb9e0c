// Shared test helpers: temporary data dirs, member configs on loopback port 0,
// and waitFor (a bounded poll) instead of sleeps.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MemberConfig } from '../node/config.ts'
import { resolveConfig } from '../node/config.ts'
import type { ResultPage } from '../node/query/coordinator.ts'

/** The loose shape of an API answer as tests read it. */
export interface ApiBody {
  ids: string[]
  error: { code: string; message: string; details: Array<{ field: string; message: string }> }
  [key: string]: unknown
}

const dirs: string[] = []

export async function tempDir(prefix = 'chorus-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })))
}

/** A member config on 127.0.0.1 port 0 with a fresh data dir. */
export async function testConfig(
  name: string,
  overrides: Partial<MemberConfig> = {},
): Promise<MemberConfig> {
  const dataDir = await tempDir(`chorus-${name}-`)
  const config = resolveConfig({
    flags: { name, 'data-dir': dataDir, http: '127.0.0.1:0', 'log-level': 'silent' },
    env: {},
  })
  return { ...config, ...overrides }
}

/** Polls `condition` every `intervalMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value) return value as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** Every event of the array from the beginning of time, paging with `next` through a member at `url`. */
export async function allEvents(url: string, params = ''): Promise<ResultPage['events']> {
  const events: ResultPage['events'] = []
  let next: string | null = null
  for (let i = 0; i < 1000; i++) {
    const query: string = next === null ? `from=0&limit=10000${params}` : `cursor=${next}`
    const response = await fetch(`${url}/v1/events?${query}`)
    if (response.status !== 200)
      throw new Error(`GET /v1/events answered ${response.status}: ${await response.text()}`)
    const page = (await response.json()) as ResultPage
    events.push(...page.events)
    next = page.next
    if (next === null) return events
  }
  throw new Error('more than 1000 pages')
}
