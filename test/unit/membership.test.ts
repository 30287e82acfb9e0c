// Membership rules with a fake clock: suspicion, Lifeguard's local health and
// confirmations, refutation, leaving and forgetting, and which claims a peer
// can make about itself.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createRootLogger } from '../../node/log.ts'
import { createMembership, defaultTiming, type Membership } from '../../node/mesh/membership.ts'
import type { Announcement } from '../../protocol/index.ts'

const T0 = 1_800_000_000_000
/** Each announcement a test makes is a later word of its member than the ones made before it. */
let beats = 0
const text = new TextEncoder()

interface Harness {
  membership: Membership
  published: Announcement[]
  pings: string[]
  dials: string[]
  pingAnswers: boolean
}

function harness(forgetAfterMs = 60_000): Harness {
  const h: Harness = {
    published: [],
    pings: [],
    dials: [],
    pingAnswers: false,
  } as unknown as Harness
  h.membership = createMembership({
    self: {
      peerId: 'self-id',
      name: 'self',
      version: '1',
      startedAt: T0,
      http: () => '127.0.0.1:1',
      addrs: () => ['/ip4/127.0.0.1/tcp/1'],
      seq: () => 0,
      health: () => 'ok',
    },
    timing: defaultTiming(1000, forgetAfterMs),
    clock: () => Date.now(),
    logger: createRootLogger({ level: 'silent' }),
    publish: async (a) => {
      h.published.push(a)
    },
    ping: async (peerId, signal) => {
      h.pings.push(peerId)
      if (h.pingAnswers) return
      await new Promise((_, reject) =>
        signal.addEventListener('abort', () => reject(signal.reason)),
      )
    },
    dial: async (peerId, _addrs, delayMs) => {
      h.dials.push(delayMs > 0 ? `${peerId} after ${delayMs} ms` : peerId)
    },
  })
  return h
}

function hello(peerId: string, name: string, extra: Partial<Announcement> = {}): Announcement {
  return {
    peerId,
    name,
    addrs: ['/ip4/127.0.0.1/tcp/2'],
    http: '127.0.0.1:2',
    version: '1',
    seq: 0,
    startedAt: T0,
    sentAt: Date.now(),
    health: 'ok',
    incarnation: 0,
    beat: ++beats,
    leaving: false,
    suspects: [],
    ...extra,
  }
}

/** Stands in for the signed bytes the mesh hands over with an announcement: here, its name. */
const word = (a: Announcement) => text.encode(a.name)
const known = (m: Membership) => m.known().map((bytes) => new TextDecoder().decode(bytes))

const stateOf = (m: Membership, name: string) => m.table().find((e) => e.name === name)?.state

/** Advances the fake clock while the named peers keep announcing every second. */
function run(h: Harness, ms: number, speaking: string[] = [], suspects: string[] = []) {
  for (let t = 0; t < ms; t += 250) {
    vi.advanceTimersByTime(250)
    if (t % 1000 === 0)
      for (const name of speaking)
        h.membership.receive(hello(`${name}-id`, name, { suspects }), Date.now())
  }
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0 })
})
afterEach(() => {
  vi.useRealTimers()
})

describe('membership', () => {
  it('lists itself alive, learns a member from its announcement and dials it a moment later', () => {
    const h = harness()
    h.membership.start()
    h.membership.receive(hello('b-id', 'b'), Date.now())
    h.membership.receive(hello('z-id', 'z'), Date.now())
    expect(h.membership.table().map((e) => [e.name, e.state, e.self])).toEqual([
      ['b', 'alive', false],
      ['self', 'alive', true],
      ['z', 'alive', false],
    ])
    // Heard of through gossip, a member is given time to dial us first; of
    // two that heard of each other so, the smaller peer id dials first
    // ('b-id' < 'self-id' < 'z-id').
    expect(h.dials).toEqual(['b-id after 2000 ms', 'z-id after 1000 ms'])
    run(h, 3000)
    expect(h.published.length).toBeGreaterThanOrEqual(3)
  })

  it('takes members relayed on join at once, dials them at once, and never lets a relay overwrite first-hand word', () => {
    const h = harness()
    h.membership.start()
    const b = hello('b-id', 'b')
    const c = hello('c-id', 'c', { health: 'warning:disk' })
    h.membership.receive(b, Date.now(), false, word(b))
    h.membership.receive(c, Date.now(), true, word(c))
    expect(h.dials).toEqual(['b-id after 2000 ms', 'c-id'])
    expect(stateOf(h.membership, 'c')).toBe('alive')
    // A relayed word about b, newer or not, changes nothing: b speaks for itself.
    h.membership.receive(
      hello('b-id', 'b', { health: 'critical:cpu', sentAt: Date.now() + 1 }),
      Date.now(),
      true,
    )
    expect(h.membership.table().find((e) => e.name === 'b')?.health).toBe('ok')
    // What it relays in turn is the signed word of everyone alive it holds
    // (the mesh puts this member's own first).
    expect(known(h.membership).sort()).toEqual(['b', 'c'])
  })

  it('relays only members it holds alive, and takes no suspicion from a relayed word', () => {
    const h = harness()
    h.membership.start()
    const b = hello('b-id', 'b')
    h.membership.receive(b, Date.now(), false, word(b))
    expect(known(h.membership)).toEqual(['b'])
    run(h, 3000)
    expect(stateOf(h.membership, 'b')).toBe('suspect')
    // A suspect may be dead: a newcomer told of it would take it for alive.
    expect(known(h.membership)).toEqual([])

    // Relayed members that suspect b (and this member) confirm nothing and
    // are not answered with a refutation: only first-hand word counts.
    vi.advanceTimersByTime(500) // past the debounce of its last announcement
    const published = h.published.length
    for (const name of ['c', 'd', 'e'])
      h.membership.receive(
        hello(`${name}-id`, name, { suspects: ['b-id', 'self-id'] }),
        Date.now(),
        true,
      )
    expect(h.published.length).toBe(published)
    const relayedAt = Date.now()
    for (let t = 0; t < 20_000 && stateOf(h.membership, 'b') !== 'dead'; t += 250) run(h, 250)
    // Without confirmations b is dead after the whole suspicion timeout (5 s
    // from its suspicion, over 4 s from here); three would have made it 1.5 s.
    expect(Date.now() - relayedAt).toBeGreaterThanOrEqual(4000)
  })

  it('makes a silent member suspect, probes it, then declares it dead; confirmations make that sooner', () => {
    const alone = harness()
    alone.membership.start()
    alone.membership.receive(hello('b-id', 'b'), Date.now())
    const deadAt = (h: Harness, speaking: string[], suspects: string[]) => {
      const start = Date.now()
      let sawSuspect = false
      for (let t = 0; t < 20_000; t += 250) {
        run(h, 250, speaking, suspects)
        if (stateOf(h.membership, 'b') === 'suspect') sawSuspect = true
        if (stateOf(h.membership, 'b') === 'dead') return { ms: Date.now() - start, sawSuspect }
      }
      return { ms: Number.POSITIVE_INFINITY, sawSuspect }
    }
    const lonely = deadAt(alone, [], [])
    expect(lonely.sawSuspect).toBe(true)
    expect(alone.pings).toContain('b-id')
    expect(lonely.ms).toBeGreaterThanOrEqual(2500 + 4000)

    vi.setSystemTime(T0 + 100_000)
    const confirmed = harness()
    confirmed.membership.start()
    for (const name of ['b', 'c', 'd', 'e'])
      confirmed.membership.receive(hello(`${name}-id`, name), Date.now())
    // c, d and e keep speaking and all suspect b.
    const withOthers = deadAt(confirmed, ['c', 'd', 'e'], ['b-id'])
    expect(withOthers.sawSuspect).toBe(true)
    expect(withOthers.ms).toBeLessThan(lonely.ms)
    expect(stateOf(confirmed.membership, 'c')).toBe('alive')
  })

  it('clears a suspicion when the member answers a direct ping', async () => {
    const h = harness()
    h.pingAnswers = true
    h.membership.start()
    h.membership.receive(hello('b-id', 'b'), Date.now())
    run(h, 3000)
    expect(stateOf(h.membership, 'b')).toBe('suspect')
    await vi.advanceTimersByTimeAsync(1) // the ping's answer arrives
    expect(h.pings).toContain('b-id')
    expect(stateOf(h.membership, 'b')).toBe('alive')
  })

  it('stretches its timeouts when its own timers run late (local health), so a stall is not taken for deaths', () => {
    const h = harness()
    h.membership.start()
    h.membership.receive(hello('b-id', 'b'), Date.now())
    run(h, 1000, ['b'])
    // This process stalls for 6 s: the clock moves, no timer runs.
    vi.setSystemTime(Date.now() + 6000)
    vi.advanceTimersByTime(1000)
    expect(h.membership.localHealthMultiplier).toBeGreaterThan(1)
    expect(stateOf(h.membership, 'b')).toBe('alive')
    run(h, 2000, ['b'])
    expect(stateOf(h.membership, 'b')).toBe('alive')
  })

  it('refutes a suspicion of itself at once with a higher incarnation', () => {
    const h = harness()
    h.membership.start()
    vi.advanceTimersByTime(500)
    const before = h.published.length
    h.membership.receive(hello('b-id', 'b', { suspects: ['self-id'] }), Date.now())
    expect(h.published.length).toBe(before + 1)
    expect(h.published.at(-1)?.incarnation).toBe(1)
  })

  it('marks a leaving member left, ignores stale announcements, and forgets it after forget-after', () => {
    const h = harness(10_000)
    h.membership.start()
    h.membership.receive(hello('b-id', 'b'), Date.now())
    const stale = hello('b-id', 'b', { sentAt: Date.now() - 500 })
    h.membership.receive(hello('b-id', 'b', { leaving: true }), Date.now())
    h.membership.receive(stale, Date.now())
    expect(stateOf(h.membership, 'b')).toBe('left')
    run(h, 9000)
    expect(stateOf(h.membership, 'b')).toBe('left')
    run(h, 2000)
    expect(stateOf(h.membership, 'b')).toBeUndefined()
    // It comes back with a new run.
    h.membership.receive(hello('b-id', 'b', { startedAt: Date.now() }), Date.now())
    expect(stateOf(h.membership, 'b')).toBe('alive')
  })

  it('keeps a name for the member it heard holding it first and marks a later one in conflict', () => {
    const h = harness()
    h.membership.start()
    h.membership.receive(hello('b1-id', 'b', { startedAt: T0 - 10 }), Date.now())
    h.membership.receive(hello('b2-id', 'b', { startedAt: T0 - 5 }), Date.now())
    const rows = h.membership.table().filter((e) => e.name === 'b')
    expect(rows.find((r) => r.member === 'b1-id')?.state).toBe('alive')
    expect(rows.find((r) => r.member === 'b2-id')?.state).toBe('conflict')
    // Its own name it gives up only to a member that the one it joined
    // through listed under it: never to one that claims it first-hand.
    h.membership.receive(hello('x-id', 'self', { startedAt: T0 - 1000 }), Date.now())
    expect(h.membership.table().find((e) => e.self)?.state).toBe('alive')
    expect(h.membership.get('x-id')?.state).toBe('conflict')
    h.membership.receive(hello('y-id', 'self'), Date.now(), true)
    expect(h.membership.table().find((e) => e.self)?.state).toBe('conflict')
    expect(h.membership.get('y-id')?.state).toBe('alive')
  })

  it('lets no peer take a name by claiming it started earlier, its own name included', () => {
    const h = harness()
    h.membership.start()
    h.membership.receive(hello('b-id', 'b'), Date.now())
    run(h, 40_000, ['b'])
    // A keyed peer announces the taken names with the earliest start time there is.
    h.membership.receive(hello('evil-1', 'b', { startedAt: 0 }), Date.now())
    h.membership.receive(hello('evil-2', 'self', { startedAt: 0 }), Date.now())
    const rows = h.membership.table()
    expect(rows.find((r) => r.member === 'b-id')?.state).toBe('alive')
    expect(rows.find((r) => r.member === 'evil-1')?.state).toBe('conflict')
    expect(rows.find((r) => r.member === 'evil-2')?.state).toBe('conflict')
    expect(rows.find((r) => r.self)?.state).toBe('alive')
  })

  it("orders a member's words by its beat, not its clock: a clock set back an hour keeps it alive, an old word played again changes nothing", () => {
    const h = harness()
    h.membership.start()
    h.membership.receive(hello('b-id', 'b'), Date.now())
    const old = hello('b-id', 'b', { health: 'critical:old' })
    // b's clock is set back an hour: its announcements say so, and still count.
    for (let t = 0; t < 10_000; t += 1000) {
      vi.advanceTimersByTime(1000)
      h.membership.receive(hello('b-id', 'b', { sentAt: Date.now() - 3_600_000 }), Date.now())
    }
    expect(stateOf(h.membership, 'b')).toBe('alive')
    expect(h.membership.get('b-id')?.offsetMs).toBeLessThan(-3_500_000)
    // Its leaving word, then an older word of the same run played again.
    h.membership.receive(hello('b-id', 'b', { leaving: true }), Date.now())
    h.membership.receive(old, Date.now())
    expect(stateOf(h.membership, 'b')).toBe('left')
    expect(h.membership.get('b-id')?.health).toBe('ok')
  })

  it('takes a run that reports an earlier start only once the run it knew has ended', () => {
    const h = harness()
    h.membership.start()
    h.membership.receive(hello('b-id', 'b'), Date.now())
    // A word of an earlier run (a replay, or a clock set back) while b is alive: ignored.
    h.membership.receive(hello('b-id', 'b', { startedAt: T0 - 60_000, http: 'old:1' }), Date.now())
    expect(h.membership.get('b-id')?.http).toBe('127.0.0.1:2')
    // b leaves; it starts again with its clock set back: taken.
    h.membership.receive(hello('b-id', 'b', { leaving: true }), Date.now())
    h.membership.receive(hello('b-id', 'b', { startedAt: T0 - 60_000, http: 'new:1' }), Date.now())
    expect(stateOf(h.membership, 'b')).toBe('alive')
    expect(h.membership.get('b-id')?.http).toBe('new:1')
  })
})
