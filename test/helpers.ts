// Shared test helpers: temporary data dirs, member configs on loopback port 0,
// and waitFor (a bounded poll) instead of sleeps.

import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MemberConfig } from '../node/config.ts'
import { resolveConfig } from '../node/config.ts'
import { createMember, type Member, type MemberInit } from '../node/index.ts'
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

/** A member config on 127.0.0.1 port 0 (HTTP and p2p) with a fresh data dir. */
export async function testConfig(
  name: string,
  overrides: Partial<MemberConfig> = {},
): Promise<MemberConfig> {
  const dataDir = await tempDir(`chorus-${name}-`)
  const config = resolveConfig({
    // The host collector is off unless a test turns it on: its events would
    // mix with the events a test counts.
    flags: {
      name,
      'data-dir': dataDir,
      http: '127.0.0.1:0',
      // Port 0: test files run in parallel, and the default port is one.
      listen: '/ip4/127.0.0.1/tcp/0',
      'log-level': 'silent',
      'no-collect': 'true',
    },
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

/** Starts `count` members in this process on loopback, each joining the first; waits until every table lists all alive. */
export async function startArray(
  count: number,
  options: {
    names?: string[]
    overrides?: Partial<MemberConfig>
    clock?: () => number
    /** Given to every member's createMember (timings a test shortens). */
    init?: MemberInit
  } = {},
): Promise<Member[]> {
  const members: Member[] = []
  for (let i = 0; i < count; i++) {
    const name = options.names?.[i] ?? `m${i}`
    const join = i === 0 ? [] : [members[0]?.p2pAddrs()[0] as string]
    const config = {
      ...(await testConfig(name)),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      join,
      ...options.overrides,
    }
    const member = await createMember(config, {
      ...options.init,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    })
    await member.start()
    members.push(member)
  }
  await waitFor(() => members.every((m) => aliveCount(m) === count), {
    timeoutMs: 15_000,
    what: `${count} members alive in every table`,
  })
  return members
}

export function aliveCount(member: Member): number {
  return member.membership.table().filter((e) => e.state === 'alive').length
}

/** The state of member `name` in `member`'s table, or undefined if absent. */
export function stateOf(member: Member, name: string): string | undefined {
  return member.membership.table().find((e) => e.name === name)?.state
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a process the test starts next). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** The value of one sample line of a scrape, e.g. `chorus_events_total{type="a",severity="info"}`. */
export function metricSample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** A member health rule that fires on one `test.trigger` event more than `threshold` in a minute. */
export const triggerRule = (threshold: number) => ({
  name: 'trigger',
  kind: 'member',
  metric: { type: 'test.trigger', measure: 'count' },
  op: '>',
  threshold,
  window: '1m',
  for: '0s',
  state: 'warning',
})

/** Replaces a member's health rules with the trigger rule at `threshold` (PUT /v1/config/health), which must succeed. */
export async function putTriggerRule(m: Member, threshold: number): Promise<void> {
  const response = await m.app.request('/v1/config/health', {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ rules: [triggerRule(threshold)] }),
  })
  if (response.status !== 200)
    throw new Error(`PUT /v1/config/health answered ${response.status}: ${await response.text()}`)
}

/** Posts events as JSON to a member's app; answers the response. */
export function postEvents(member: Member, body: unknown): Promise<Response> {
  return Promise.resolve(
    member.app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  )
}
