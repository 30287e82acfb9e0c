// Membership, SWIM-style, with a fake clock and a fake transport: whole
// simulated arrays of up to 1,000 members in one process, each member the
// real module, the transport a function call that a test can cut.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createRootLogger } from '../../node/log.ts'
import {
  createMembership,
  defaultTiming,
  type Membership,
  type Message,
  type Update,
} from '../../node/mesh/membership.ts'
import type { Announcement } from '../../protocol/index.ts'

const T0 = 1_800_000_000_000
const INTERVAL = 1000

interface Sim {
  members: Map<string, Membership>
  /** Members that answer nothing (killed), by peer id. */
  down: Set<string>
  /** Messages each member sent, by peer id. */
  sent: Map<string, number>
  /** Updates each member sent, by peer id. */
  updates: Map<string, number>
  health: Map<string, string>
  add(id: string, options?: { name?: string; startedAt?: number }): Membership
}

/** A repeatable random source, so a failing run can be run again. */
function seeded(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/** Every simulated member a test started, stopped after it. */
const started: Membership[] = []

function createSim(seed = 1): Sim {
  const random = seeded(seed)
  const sim: Sim = {
    members: new Map(),
    down: new Set(),
    sent: new Map(),
    updates: new Map(),
    health: new Map(),
    add(id, options = {}) {
      const count = (m: Message, by = id) => {
        sim.sent.set(by, (sim.sent.get(by) ?? 0) + 1)
        const n = 'updates' in m ? m.updates.length : 0
        sim.updates.set(by, (sim.updates.get(by) ?? 0) + n)
      }
      const deliver = async (to: string, m: Message, timeoutMs: number): Promise<Message> => {
        count(m)
        const target = sim.members.get(to)
        if (target === undefined || sim.down.has(to) || sim.down.has(id)) {
          await new Promise((resolve) => setTimeout(resolve, timeoutMs))
          throw new Error('timed out')
        }
        const answer = await target.handle(id, m)
        if (answer === undefined) throw new Error('no answer')
        if (sim.down.has(id)) throw new Error('timed out')
        count(answer, to)
        return answer
      }
      const membership = createMembership({
        self: {
          peerId: id,
          name: options.name ?? id,
          version: '1',
          startedAt: options.startedAt ?? T0,
          http: () => '127.0.0.1:1',
          addrs: () => [],
          seq: () => 0,
          health: () => sim.health.get(id) ?? 'ok',
          settings: () => '',
        },
        timing: defaultTiming(INTERVAL, 60_000),
        clock: () => Date.now(),
        logger: createRootLogger({ level: 'silent' }),
        transport: {
          request: (to, m, timeoutMs) => deliver(to, m, timeoutMs),
          send(to, m) {
            count(m)
            const target = sim.members.get(to)
            if (target === undefined || sim.down.has(to) || sim.down.has(id)) return
            void Promise.resolve().then(() => target.handle(id, m))
          },
        },
        seal: () => new Uint8Array(1),
        random,
      })
      sim.members.set(id, membership)
      started.push(membership)
      return membership
    },
  }
  return sim
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `m${String(i).padStart(4, '0')}`)

/** Starts `n` members that all know each other already (as after a push/pull each). */
async function converged(n: number, seed = 1): Promise<Sim> {
  const sim = createSim(seed)
  const all = ids(n)
  for (const id of all) sim.add(id).start()
  // Each member's own word is the first update of its sync answer.
  const words: Update[] = []
  for (const id of all) {
    const answer = (await sim.members.get(id)?.handle('nobody', {
      kind: 'sync',
      sentAt: Date.now(),
      digest: '',
      updates: [],
    })) as Extract<Message, { kind: 'sync' }>
    words.push(answer.updates[0] as Update)
  }
  for (const id of all)
    await sim.members
      .get(id)
      ?.handle('nobody', { kind: 'sync', sentAt: Date.now(), digest: '', updates: words })
  return sim
}

const stateIn = (m: Membership | undefined, id: string) => m?.get(id)?.state
const healthIn = (m: Membership | undefined, id: string) => m?.get(id)?.health

async function advance(ms: number) {
  await vi.advanceTimersByTimeAsync(ms)
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0 })
})
afterEach(async () => {
  for (const m of started.splice(0)) await m.stop({ leaving: false })
  vi.useRealTimers()
})

describe('membership in a simulated array', () => {
  it('declares a killed member dead in every table within ten intervals, and no live member suspect', async () => {
    const sim = await converged(50)
    await advance(5 * INTERVAL)
    const victim = 'm0007'
    sim.down.add(victim)
    let allDeadAfter: number | undefined
    for (let t = 1; t <= 15; t++) {
      await advance(INTERVAL)
      const others = [...sim.members].filter(([id]) => id !== victim)
      if (others.every(([, m]) => stateIn(m, victim) === 'dead')) {
        allDeadAfter = t
        break
      }
    }
    expect(allDeadAfter).toBeDefined()
    expect(allDeadAfter).toBeLessThanOrEqual(10)
    for (const [id, m] of sim.members) {
      if (id === victim) continue
      const wrong = m.table().filter((e) => e.member !== victim && e.state !== 'alive')
      expect(wrong.map((e) => e.name)).toEqual([])
      expect(m.transitions().filter((t) => t.to === 'dead')).toEqual([
        { from: 'suspect', to: 'dead', count: 1 },
      ])
    }
  })

  it('watches past a suspect member: a member that fails while those before it on the rings are suspect is suspected too', async () => {
    // Of four members, m0001 watches m0000 and m0002 on its rings (not m0003).
    // Three fail at once: m0001 must suspect m0003 while the other two are
    // still only suspected, not once one of them is declared dead.
    const sim = await converged(4)
    await advance(5 * INTERVAL)
    const survivor = sim.members.get('m0001')
    for (const id of ['m0000', 'm0002', 'm0003']) sim.down.add(id)
    for (let t = 0; t < 300 && stateIn(survivor, 'm0003') === 'alive'; t++) await advance(100)
    expect(stateIn(survivor, 'm0003')).toBe('suspect')
    expect(['m0000', 'm0002'].map((id) => stateIn(survivor, id))).toContain('suspect')
  })

  it('spreads a change to all of 1,000 members within O(log N) gossip rounds', async () => {
    const sim = await converged(1000)
    await advance(3 * INTERVAL)
    const source = 'm0123'
    sim.health.set(source, 'warning:disk-full')
    sim.members.get(source)?.announceNow()
    const round = defaultTiming(INTERVAL).gossipIntervalMs
    let rounds = 0
    while (rounds < 100) {
      await advance(round)
      rounds++
      const informed = [...sim.members.values()].filter(
        (m) => healthIn(m, source) === 'warning:disk-full',
      ).length
      if (informed === 1000) break
    }
    // log2(1000) ≈ 10: every member heard within a small multiple of it.
    expect(rounds).toBeLessThanOrEqual(3 * Math.ceil(Math.log2(1000)))
  }, 120_000)

  it('sends a bounded number of messages per member per interval, the same at 10, 100 and 1,000 members', async () => {
    const perMember: number[] = []
    for (const n of [10, 100, 1000]) {
      const sim = await converged(n, n)
      // Let the convergence's own gossip die down, then count idle traffic.
      await advance(5 * INTERVAL)
      sim.sent.clear()
      sim.updates.clear()
      const intervals = 10
      await advance(intervals * INTERVAL)
      const rates = [...sim.members.keys()].map((id) => (sim.sent.get(id) ?? 0) / intervals)
      perMember.push(Math.max(...rates))
      const mean = rates.reduce((a, b) => a + b, 0) / rates.length
      // One ping out and about one ack back: two messages a member an interval.
      expect(mean).toBeGreaterThan(1.5)
      expect(mean).toBeLessThan(2.5)
      for (const m of sim.members.values()) await m.stop({ leaving: false })
    }
    // The busiest member sends no more at 1,000 members than a few times the mean.
    for (const rate of perMember) expect(rate).toBeLessThanOrEqual(5)
  }, 120_000)

  it('brings a paused member back alive everywhere once it answers again, with a higher incarnation', async () => {
    const sim = await converged(20, 7)
    await advance(3 * INTERVAL)
    const paused = 'm0003'
    sim.down.add(paused)
    await advance(15 * INTERVAL)
    expect(stateIn(sim.members.get('m0000'), paused)).toBe('dead')
    sim.down.delete(paused)
    for (let t = 0; t < 40; t++) {
      await advance(INTERVAL)
      if ([...sim.members.values()].every((m) => stateIn(m, paused) === 'alive')) break
    }
    for (const [id, m] of sim.members)
      if (id !== paused) expect([id, stateIn(m, paused)]).toEqual([id, 'alive'])
    expect(sim.members.get(paused)?.get(paused)?.incarnation).toBeGreaterThan(0)
  }, 60_000)

  it('joins a new member through one member: every table lists it, and it lists everyone', async () => {
    const sim = await converged(30, 3)
    await advance(2 * INTERVAL)
    const late = sim.add('z-late')
    late.start()
    await late.syncWith('m0010')
    expect(late.table().filter((e) => e.state === 'alive')).toHaveLength(31)
    for (let t = 0; t < 20; t++) {
      await advance(defaultTiming(INTERVAL).gossipIntervalMs)
      if ([...sim.members.values()].every((m) => stateIn(m, 'z-late') === 'alive')) break
    }
    for (const m of sim.members.values()) expect(stateIn(m, 'z-late')).toBe('alive')
  })

  it('pushes and pulls only a digest between members that agree, and the whole table to one that lacks a word', async () => {
    const sim = await converged(20, 11)
    await advance(10 * INTERVAL)
    const [a, b] = [sim.members.get('m0001') as Membership, sim.members.get('m0002') as Membership]
    const sent = () => [...sim.updates.values()].reduce((x, y) => x + y, 0)
    // Its first push/pull is a join: it pushes its table whatever the other holds.
    await a.syncWith('m0002')
    await b.syncWith('m0001')
    const before = sent()
    await a.syncWith('m0002')
    await b.syncWith('m0001')
    expect(sent() - before).toBe(0)
    // A newcomer known to b only: a's push/pull with b brings it, words and all.
    const late = sim.add('z-late')
    late.start()
    sim.down.add('z-late')
    await b.handle('z-late', {
      kind: 'sync',
      sentAt: Date.now(),
      digest: '',
      updates: [
        (
          (await late.handle('x', {
            kind: 'sync',
            sentAt: Date.now(),
            digest: '',
            updates: [],
          })) as {
            updates: Update[]
          }
        ).updates[0] as Update,
      ],
    })
    expect(a.get('z-late')).toBeUndefined()
    const pulled = sent()
    await a.syncWith('m0002')
    expect(a.get('z-late')?.state).toBe('alive')
    expect(sent() - pulled).toBeGreaterThanOrEqual(21)
  })

  it('marks a member that leaves as left everywhere, which is not a failure, and forgets it later', async () => {
    const sim = await converged(12, 5)
    await advance(2 * INTERVAL)
    await sim.members.get('m0004')?.stop({ leaving: true })
    sim.down.add('m0004')
    await advance(3 * INTERVAL)
    for (const [id, m] of sim.members)
      if (id !== 'm0004') expect([id, stateIn(m, 'm0004')]).toEqual([id, 'left'])
    await advance(61_000)
    expect(sim.members.get('m0000')?.get('m0004')).toBeUndefined()
  })

  it('stretches its timeouts when its own timers run late (local health)', async () => {
    const sim = await converged(5)
    await advance(2 * INTERVAL)
    const m = sim.members.get('m0000') as Membership
    expect(m.localHealthMultiplier).toBe(1)
    // The process stalls for 4 s: its next tick comes late.
    vi.setSystemTime(Date.now() + 4000)
    await advance(INTERVAL)
    expect(m.localHealthMultiplier).toBeGreaterThan(1)
    expect(m.table().every((e) => e.state === 'alive')).toBe(true)
  })
})

describe('membership words and names', () => {
  function one() {
    const sim = createSim()
    const m = sim.add('self-id', { name: 'self' })
    m.start()
    return { sim, m }
  }
  let beats = 0
  const word = (peerId: string, name: string, extra: Partial<Announcement> = {}): Update => ({
    word: {
      peerId,
      name,
      addrs: [],
      http: '127.0.0.1:2',
      version: '1',
      seq: 0,
      startedAt: T0,
      sentAt: Date.now(),
      health: 'ok',
      incarnation: 0,
      beat: ++beats,
      leaving: false,
      settings: '',
      skewMs: 0,
      ...extra,
    },
    bytes: new Uint8Array(1),
  })
  const gossip = (...updates: Update[]): Message => ({ kind: 'gossip', updates })
  const state = (m: Membership, name: string) => m.table().find((e) => e.name === name)?.state

  it('keeps a name for the member it heard holding it first and marks a later one in conflict', async () => {
    const { m } = one()
    await m.handle('a1', gossip(word('a1', 'a')))
    await m.handle('a2', gossip(word('a2', 'a', { startedAt: T0 - 3_600_000 })))
    expect(m.get('a1')?.state).toBe('alive')
    expect(m.get('a2')?.state).toBe('conflict')
    // Its own name: a peer claiming it is in conflict, whatever start it claims.
    await m.handle('x', gossip(word('x', 'self', { startedAt: 1 })))
    expect(m.get('x')?.state).toBe('conflict')
    expect(m.get('self-id')?.state).toBe('alive')
  })

  it("orders a member's words by its beat, not its clock, and takes an earlier run only once the one it knew ended", async () => {
    const { m } = one()
    const newer = word('b', 'b', { sentAt: Date.now() - 3_600_000, health: 'warning:x' })
    const older = {
      ...newer,
      word: { ...(newer as { word: Announcement }).word, beat: 0, health: 'ok' },
    }
    await m.handle('b', gossip(newer))
    await m.handle('b', gossip(older))
    expect(m.get('b')?.health).toBe('warning:x')
    await m.handle('b', gossip(word('b', 'b', { startedAt: T0 - 10 })))
    expect(m.get('b')?.startedAt).toBe(T0)
    await m.handle('b', gossip(word('b', 'b', { leaving: true })))
    expect(state(m, 'b')).toBe('left')
    await m.handle('b', gossip(word('b', 'b', { startedAt: T0 - 10 })))
    expect([state(m, 'b'), m.get('b')?.startedAt]).toEqual(['alive', T0 - 10])
  })

  it('refutes an accusation of itself with a higher incarnation, and an accusation of an older incarnation changes nothing', async () => {
    const { m } = one()
    await m.handle('b', gossip(word('b', 'b', { incarnation: 2 })))
    const accuse = (subject: string, incarnation: number, dead = false): Update => ({
      accusation: { subject, startedAt: T0, incarnation, dead, accuser: 'c' },
      bytes: new Uint8Array(1),
    })
    await m.handle('c', gossip(accuse('b', 1)))
    expect(state(m, 'b')).toBe('alive')
    await m.handle('c', gossip(accuse('b', 2)))
    expect(state(m, 'b')).toBe('suspect')
    await m.handle('b', gossip(word('b', 'b', { incarnation: 3 })))
    expect(state(m, 'b')).toBe('alive')
    // A restart (a new run) starts from incarnation 0: what was said of the
    // run before does not hold its refutations back.
    await m.handle('c', gossip(accuse('b', 3, true)))
    expect(state(m, 'b')).toBe('dead')
    await m.handle('b', gossip(word('b', 'b', { startedAt: T0 + 1 })))
    expect(state(m, 'b')).toBe('alive')
    const again = (incarnation: number): Update => ({
      accusation: { subject: 'b', startedAt: T0 + 1, incarnation, dead: false, accuser: 'c' },
      bytes: new Uint8Array(1),
    })
    await m.handle('c', gossip(again(0)))
    expect(state(m, 'b')).toBe('suspect')
    await m.handle('b', gossip(word('b', 'b', { startedAt: T0 + 1, incarnation: 1 })))
    expect(state(m, 'b')).toBe('alive')
    await m.handle('c', gossip(accuse('self-id', 0, true)))
    expect(m.get('self-id')?.incarnation).toBe(1)
    const answer = (await m.handle('c', {
      kind: 'ping',
      probe: 1,
      sentAt: Date.now(),
      updates: [],
    })) as Extract<Message, { kind: 'ack' }>
    const refutation = answer.updates.find((u) => 'word' in u && u.word.peerId === 'self-id')
    expect(refutation && 'word' in refutation ? refutation.word.incarnation : -1).toBe(1)
  })
})
