// Replicas with members as separate processes, where a crash or a pause is
// real: a member killed with SIGKILL is answered for by its holder, at once
// and once it is declared dead; a member frozen with SIGSTOP costs pages the
// hedge delay, not the deadline, and after 30 s frozen it comes back without
// a duplicate in any answer and its copies catch up; and the replica count,
// changed at runtime, places, fills and drops copies on every member.

import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { holdersOf } from '../../node/replica/placement.ts'
import { removeTempDirs, waitFor } from '../helpers.ts'
import {
  type MemberProcess,
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

const startArray = (names: string[]) => startProcessArray(names)
const table = tableOf

/** Posts `count` events, by default with durability=replicated: resolves to their ids once both copies are synced. */
async function emit(
  m: MemberProcess,
  count: number,
  tag = '',
  durability = 'replicated',
): Promise<string[]> {
  const response = await fetch(`${m.url}/v1/events?durability=${durability}&timeout=10s`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(
      Array.from({ length: count }, (_, i) => ({
        type: 'replica.test',
        message: `${m.name}${tag} ${i}`,
      })),
    ),
  })
  expect(response.status).toBe(201)
  return ((await response.json()) as { ids: string[] }).ids
}

const query = timedPage

/** Every origin's holders have all of its events, as each origin reports them. */
async function caughtUp(all: MemberProcess[]): Promise<boolean> {
  for (const m of all) {
    const own = (await table(m)).find((r) => r.name === m.name)
    if (own === undefined || own.holders.length !== 1 || own.holders[0]?.lagEvents !== 0)
      return false
  }
  return true
}

describe('a member killed with SIGKILL, with replicas 2', () => {
  it('is answered for by its holder: every event it acknowledged as replicated, partial false, at once and once it is dead', async () => {
    const [a, b, c] = (await startArray(['ka', 'kb', 'kc'])) as [
      MemberProcess,
      MemberProcess,
      MemberProcess,
    ]
    const all = [...(await emit(a, 20)), ...(await emit(b, 20)), ...(await emit(c, 20))].sort()
    c.signal('SIGKILL')
    await c.exited

    // At once: kc cannot be reached, and its holder answers for it.
    const now = await query(a, 'from=0&limit=1000&timeout=2s')
    expect(now.page.events.map((e) => e.id)).toEqual(all)
    expect(now.page.partial).toBe(false)
    expect(now.page.members.find((r) => r.name === 'kc')?.servedBy).toBeDefined()

    await waitFor(
      async () => (await stateIn(a, 'kc')) === 'dead' && (await stateIn(b, 'kc')) === 'dead',
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: 'kc dead in every table',
      },
    )
    for (const m of [a, b]) {
      const { page } = await query(m, 'from=0&limit=1000&timeout=2s')
      expect(page.events.map((e) => e.id)).toEqual(all)
      expect(page.partial).toBe(false)
      const row = page.members.find((r) => r.name === 'kc')
      expect(row).toMatchObject({ status: 'ok', count: 20, heldSeq: 20 })
      expect(['ka', 'kb']).toContain(row?.servedBy)
      // One of its events by id.
      const id = page.events.find((e) => e.memberName === 'kc')?.id as string
      const one = await fetch(`${m.url}/v1/events/${id}`)
      expect(one.status).toBe(200)
      expect(((await one.json()) as { memberName: string }).memberName).toBe('kc')
    }
  })
})

describe('a member frozen with SIGSTOP, with replicas 2', () => {
  it('costs pages the hedge delay, not the deadline; after 30 s frozen it is back with no duplicate anywhere and its copies caught up', async () => {
    const [a, b, c] = (await startArray(['fa', 'fb', 'fc'])) as [
      MemberProcess,
      MemberProcess,
      MemberProcess,
    ]
    const ids = [...(await emit(a, 50)), ...(await emit(b, 50)), ...(await emit(c, 50))].sort()
    c.signal('SIGSTOP')
    const frozenAt = performance.now()

    // Pages of 100 through either member, while fc is frozen (suspect, then dead).
    const times: number[] = []
    const during: string[] = []
    let round = 0
    while (performance.now() - frozenAt < 30_000) {
      const asker = round % 2 === 0 ? a : b
      const { page, ms } = await query(asker, 'from=0&limit=100&timeout=2s')
      times.push(ms)
      expect(page.partial).toBe(false)
      expect(page.events.map((e) => e.id)).toEqual(ids.slice(0, 100))
      expect(page.members.find((r) => r.name === 'fc')?.servedBy).toBeDefined()
      // The members that stayed take events throughout (acknowledged
      // locally: a copy on the frozen member cannot be confirmed).
      if (round % 5 === 0)
        during.push(...(await emit(round % 2 === 0 ? a : b, 5, `-frozen${round}`, 'local')))
      round++
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    times.sort((x, y) => x - y)
    // Generous: the hedge delay is at most half the 2 s deadline; a page waited the deadline before.
    expect(times[Math.floor(times.length * 0.99)]).toBeLessThan(1500)

    c.signal('SIGCONT')
    await waitFor(
      async () => (await stateIn(a, 'fc')) === 'alive' && (await stateIn(b, 'fc')) === 'alive',
      {
        timeoutMs: 40_000,
        intervalMs: 100,
        what: 'fc alive again',
      },
    )
    await waitFor(() => caughtUp([a, b, c]), {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'every holder caught up',
    })
    const expected = [...ids, ...during].sort()
    for (const m of [a, b, c]) {
      const { page } = await query(m, 'from=0&limit=10000&timeout=2s')
      expect(page.partial).toBe(false)
      expect(new Set(page.events.map((e) => e.id)).size).toBe(page.events.length)
      expect(page.events.map((e) => e.id)).toEqual(expected)
    }
  })
})

describe('a member whose data dir is replaced, with replicas 2', () => {
  it('killed, its store deleted and started again with its key: every event back with its ids, and its seq goes on', async () => {
    const [a, , c] = (await startArray(['ra', 'rb', 'rc'])) as [
      MemberProcess,
      MemberProcess,
      MemberProcess,
    ]
    const ids = [...(await emit(a, 10)), ...(await emit(c, 30))].sort()
    c.signal('SIGKILL')
    await c.exited
    await rm(join(c.dataDir, 'chorus', 'store'), { recursive: true, force: true })
    const back = await startMember({ name: 'rc', dataDir: c.dataDir, args: ['--join', a.p2p] })
    await waitFor(async () => (await fetch(`${back.url}/readyz`)).status === 200, {
      timeoutMs: 40_000,
      intervalMs: 200,
      what: 'rc restored and ready',
    })
    const { page } = await query(back, 'from=0&limit=1000&timeout=2s')
    expect(page.events.map((e) => e.id)).toEqual(ids)
    await emit(back, 1, '-after')
    const seqs = (await query(back, 'from=0&limit=1000&member=rc')).page.events.map((e) => e.seq)
    expect(seqs).toEqual(Array.from({ length: 31 }, (_, i) => i + 1))
  })
})

describe('the replica count changed at runtime', () => {
  it('from 2 to 3 and back: every member ends with the right holders, caught up, and no event is lost', async () => {
    const started = await startProcessArray(['xa', 'xb', 'xc', 'xd'], ['--rereplicate-after', '2s'])
    const [a, b] = started as [MemberProcess, MemberProcess]
    const ids = (await Promise.all(started.map((m) => emit(m, 10)))).flat()
    const peerIds = (await table(a)).map((r) => r.member)

    /**
     * Every member's table names, for every origin, the holders placement
     * gives it at `replicas`; and each origin says they are caught up (only
     * an origin knows its holders' lag).
     */
    const placedEverywhere = async (replicas: number) => {
      for (const m of started) {
        for (const row of await table(m)) {
          const expected = holdersOf(row.member, peerIds, replicas).sort()
          const holders = row.holders.map((h) => h.member).sort()
          if (JSON.stringify(holders) !== JSON.stringify(expected)) return false
          if (row.name === m.name && row.holders.some((h) => h.lagEvents !== 0)) return false
        }
      }
      return true
    }
    await waitFor(() => placedEverywhere(2), { timeoutMs: 20_000, what: 'holders at replicas 2' })

    const three = await runCli(['config', 'replicas', '3', '--url', b.url])
    expect(three.stderr).toBe('')
    expect(three.stdout).toMatch(/^replicas 3 in force as version 1/)
    await waitFor(() => placedEverywhere(3), {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'holders at replicas 3, caught up',
    })
    // Acknowledged as replicated now means three copies synced.
    ids.push(...(await Promise.all(started.map((m) => emit(m, 5, '-three')))).flat())
    const shown = await runCli(['config', 'replicas', '--url', a.url])
    expect(shown.stdout).toBe('replicas 3 (version 1)\n')

    const two = await runCli(['config', 'replicas', '2', '--url', a.url])
    expect(two.stdout).toMatch(/^replicas 2 in force as version 2/)
    await waitFor(() => placedEverywhere(2), {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'holders at replicas 2 again',
    })
    ids.push(...(await Promise.all(started.map((m) => emit(m, 5, '-two')))).flat())
    ids.sort()
    for (const m of started) {
      const { page } = await query(m, 'from=0&limit=10000&type=replica.test&timeout=5s')
      expect(page.partial).toBe(false)
      expect(page.events.map((e) => e.id)).toEqual(ids)
    }
    const refused = await runCli(['config', 'replicas', '6', '--url', a.url])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/count: 6 is not a whole number from 1 to 5/)
  })
})
