// Members as separate processes, where a crash or a pause is real: kill -9,
// SIGSTOP and SIGCONT, and joining through one address. These members keep
// no copies of each other's events (--replicas 1), so what a failure does to
// an answer shows plainly; with copies, test/process/replicas.test.ts.

import { afterEach, describe, expect, it } from 'vitest'
import { freePort, removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import {
  type MemberProcess,
  postEvents,
  runCli,
  startMember,
  startProcessArray,
  stateIn,
  stopAll,
  tableOf,
  timedPage,
} from './harness.ts'

afterEach(async () => {
  await stopAll()
  await removeTempDirs()
})

/** A member's chorus_member_transitions_total, by "from>to". */
async function transitions(m: MemberProcess): Promise<Map<string, number>> {
  const text = await (await fetch(`${m.url}/metrics`)).text()
  const out = new Map<string, number>()
  for (const match of text.matchAll(
    /^chorus_member_transitions_total\{from="(\w+)",to="(\w+)"\} (\d+)$/gm,
  ))
    out.set(`${match[1]}>${match[2]}`, Number(match[3]))
  return out
}

/** Members without copies of each other's events (see the file's comment). */
const startArray = (names: string[]) => startProcessArray(names, ['--replicas', '1'])

const emit = (m: MemberProcess, count: number): Promise<string[]> =>
  postEvents(
    m,
    Array.from({ length: count }, (_, i) => ({ type: 'fail.test', message: `${m.name} ${i}` })),
  )

const query = timedPage

describe('a member killed with SIGKILL', () => {
  it('makes answers partial, names it unreachable or timed out, and keeps the others complete within the deadline', async () => {
    const [a, b, c] = (await startArray(['pa', 'pb', 'pc'])) as [
      MemberProcess,
      MemberProcess,
      MemberProcess,
    ]
    const kept = [...(await emit(a, 30)), ...(await emit(b, 30))].sort()
    await emit(c, 30)
    c.signal('SIGKILL')
    await c.exited
    const { page, ms } = await query(a, 'from=0&limit=1000&timeout=2s')
    expect(page.partial).toBe(true)
    expect(['unreachable', 'timed_out']).toContain(
      page.members.find((r) => r.name === 'pc')?.status,
    )
    expect(
      page.members
        .filter((r) => r.status === 'ok')
        .map((r) => r.name)
        .sort(),
    ).toEqual(['pa', 'pb'])
    expect(page.events.map((e) => e.id)).toEqual(kept)
    expect(ms).toBeLessThan(4000) // the 2 s deadline, with a 2× margin
  })
})

describe('a member paused with SIGSTOP', () => {
  it('times out in queries, turns suspect then dead in every table, and is alive and answering again after SIGCONT', async () => {
    const [a, b, c] = (await startArray(['sa', 'sb', 'sc'])) as [
      MemberProcess,
      MemberProcess,
      MemberProcess,
    ]
    const all = [...(await emit(a, 10)), ...(await emit(b, 10)), ...(await emit(c, 10))].sort()
    c.signal('SIGSTOP')
    const paused = await query(a, 'from=0&limit=100&timeout=1s')
    expect(paused.page.partial).toBe(true)
    expect(paused.page.members.find((r) => r.name === 'sc')?.status).toBe('timed_out')
    expect(paused.ms).toBeLessThan(2000) // the 1 s deadline, with a 2× margin

    const seen = new Map<string, Set<string>>([
      ['sa', new Set()],
      ['sb', new Set()],
    ])
    await waitFor(
      async () => {
        for (const m of [a, b]) seen.get(m.name)?.add((await stateIn(m, 'sc')) ?? 'absent')
        return [a, b].every((m) => seen.get(m.name)?.has('dead'))
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'sc dead in every table' },
    )
    for (const states of seen.values()) expect(states.has('suspect')).toBe(true)
    const whileDead = await query(b, 'from=0&limit=100&timeout=1s')
    expect(whileDead.page.members.find((r) => r.name === 'sc')?.status).toBe('dead')

    c.signal('SIGCONT')
    await waitFor(
      async () => (await stateIn(a, 'sc')) === 'alive' && (await stateIn(b, 'sc')) === 'alive',
      {
        timeoutMs: 40_000,
        intervalMs: 100,
        what: 'sc alive again',
      },
    )
    await waitFor(async () => !(await query(a, 'from=0&limit=100&timeout=2s')).page.partial, {
      timeoutMs: 20_000,
      what: 'complete answers again',
    })
    const { page } = await query(b, 'from=0&limit=100&timeout=2s')
    expect(page.events.map((e) => e.id)).toEqual(all)
    // The whole round trip is counted for the operator, once each way.
    for (const m of [a, b]) {
      const counted = await transitions(m)
      expect(counted.get('alive>suspect')).toBeGreaterThanOrEqual(1)
      expect(counted.get('suspect>dead')).toBeGreaterThanOrEqual(1)
      expect(counted.get('dead>alive')).toBeGreaterThanOrEqual(1)
    }
  })
})

describe('a new member started with one --join address', () => {
  it("appears in every member's table, and sees every member, within 2 s of being ready (4 s allowed)", async () => {
    const [a, b] = (await startArray(['ja', 'jb'])) as [MemberProcess, MemberProcess]
    // Join through b, by address only (no /p2p/ part).
    const joinAddr = b.p2p.replace(/\/p2p\/.*$/, '')
    const c = await startMember({
      name: 'jc',
      dataDir: await tempDir(),
      args: ['--join', joinAddr],
    })
    const ready = performance.now()
    await waitFor(
      async () => {
        for (const m of [a, b, c]) {
          if ((await tableOf(m)).filter((e) => e.state === 'alive').length !== 3) return false
        }
        return true
      },
      { timeoutMs: 4000, intervalMs: 25, what: "jc in every table and every member in jc's" },
    )
    expect(performance.now() - ready).toBeLessThan(4000)
    const table = await runCli(['members', '--url', c.url])
    expect(table.code, table.stderr).toBe(0)
    const lines = table.stdout.trim().split('\n')
    expect(lines[0]).toMatch(
      /^NAME\s+STATE\s+LAST HEARD\s+SEQ\s+OFFSET\s+HTTP\s+ADDRESSES\s+PEER ID$/,
    )
    expect(
      lines
        .slice(1)
        .map((l) => l.split(/\s+/).slice(0, 2).join(' '))
        .sort(),
    ).toEqual(['ja alive', 'jb alive', 'jc (self)'])
    expect(lines.find((l) => l.startsWith('ja '))).toContain(a.url.replace('http://', ''))
  })

  it('keeps retrying a join that fails, without stopping, until the address answers', async () => {
    const port = await freePort()
    const lonely = await startMember({
      name: 'lonely',
      dataDir: await tempDir(),
      args: ['--join', `/ip4/127.0.0.1/tcp/${port}`],
    })
    expect((await fetch(`${lonely.url}/readyz`)).status).toBe(200)
    // Nobody listens there yet: the member keeps running and retrying.
    await waitFor(() => (lonely.output().match(/join failed; retrying/g)?.length ?? 0) >= 2, {
      what: 'two failed joins',
    })
    expect(lonely.child.exitCode).toBeNull()
    await startMember({
      name: 'later',
      dataDir: await tempDir(),
      args: ['--listen', `/ip4/127.0.0.1/tcp/${port}`],
    })
    await waitFor(async () => (await stateIn(lonely, 'later')) === 'alive', {
      timeoutMs: 40_000,
      what: 'the retried join',
    })
  })
})
