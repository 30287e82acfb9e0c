// The fan-out and the coordinator with fake members: no store, no network.
// Each fake answers from a list of events, or is slow, fails, speaks another
// protocol version, or is dead; the tests check the rows, the page and that
// a member whose events the page no longer needs is stopped.

import { describe, expect, it } from 'vitest'
import type { ChorusEvent } from '../../node/event/event.ts'
import { encodeId, encodeIdParts, memberTag, tagHex } from '../../node/event/id.ts'
import { createCoordinator, type SliceTarget } from '../../node/query/coordinator.ts'
import { decodeCursor } from '../../node/query/cursor.ts'
import { collect, type MemberStatus, recordRows, startCall } from '../../node/query/fan-out.ts'
import type { SliceTrailer } from '../../protocol/index.ts'

const T0 = 1_800_000_000_000

class UnsupportedProtocolError extends Error {
  override readonly name = 'UnsupportedProtocolError'
}
class UnreachableError extends Error {
  override readonly name = 'UnreachableError'
}

type Behaviour = 'answers' | 'slow' | 'fails' | 'unsupported' | 'unreachable'

interface Fake extends SliceTarget {
  /** Batches read from its answer. */
  readonly reads: number
  /** True once its answer was closed by the coordinator (cancelled or finished). */
  readonly closed: boolean
}

/** A member holding `count` events, one ms apart from `T0 + offset`, that answers as `behaviour` says. */
function fake(
  name: string,
  count: number,
  behaviour: Behaviour = 'answers',
  state: SliceTarget['state'] = 'alive',
  offset = 0,
): Fake {
  const peerId = `peer-${name}`
  const tag = memberTag(peerId)
  const events: ChorusEvent[] = Array.from({ length: count }, (_, i) => ({
    id: encodeIdParts(T0 + offset + i, tag, i + 1),
    ts: T0 + offset + i,
    member: peerId,
    memberName: name,
    seq: i + 1,
    type: 'app.fake',
    severity: 'info',
  }))
  let reads = 0
  let closed = false
  const never = (signal: AbortSignal) =>
    new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
    )
  const failure = () =>
    behaviour === 'unsupported'
      ? new UnsupportedProtocolError(`${name} speaks /chorus/slice/1`)
      : behaviour === 'unreachable'
        ? new UnreachableError(`${name} cannot be dialled`)
        : new Error(`${name} broke`)
  return {
    peerId,
    name,
    tag: tagHex(tag),
    state,
    get reads() {
      return reads
    },
    get closed() {
      return closed
    },
    async slice(request, { signal }) {
      if (behaviour === 'slow') return never(signal)
      if (behaviour !== 'answers') throw failure()
      const position = request.position
      const past = (e: ChorusEvent) => {
        if (position === undefined) return true
        const at = encodeId(position.id)
        if (position.inclusive && e.id === at) return true
        return request.reverse ? e.id < at : e.id > at
      }
      const inRange = events.filter((e) => e.ts >= request.fromMs && e.ts < request.toMs && past(e))
      const ordered = request.reverse ? [...inRange].reverse() : inRange
      const batchSize = Math.max(1, request.window ?? request.limit)
      async function* batches(): AsyncGenerator<ChorusEvent[], SliceTrailer, 'peek' | undefined> {
        try {
          for (let at = 0; at < ordered.length; at += batchSize) {
            reads++
            yield ordered.slice(at, at + batchSize)
          }
          return { hwm: count, scanned: ordered.length, more: false }
        } finally {
          closed = true
        }
      }
      return { hwm: count, batches: batches() }
    },
    async lookup(id, { signal }) {
      if (behaviour === 'slow') return never(signal)
      if (behaviour !== 'answers') throw failure()
      return events.find((e) => e.id === encodeId(id))
    },
    async rollup(_request, { signal }) {
      if (behaviour === 'slow') return never(signal)
      if (behaviour !== 'answers') throw failure()
      return []
    },
    async stats({ signal }) {
      if (behaviour === 'slow') return never(signal)
      if (behaviour !== 'answers') throw failure()
      return { ingestedEvents: count, queries: 0, storeSizeBytes: 0, eventTotals: [] }
    },
  }
}

const query = (limit: number, order: 'asc' | 'desc' = 'asc') => ({
  fromMs: T0,
  toMs: T0 + 1_000_000,
  types: [],
  minSeverity: 0,
  members: [],
  limit,
  order,
})

describe('collect', () => {
  it('gives every member one row: answers, deadline, failures by kind, and the dead and conflicted unasked', async () => {
    const targets = [
      fake('a', 3),
      fake('slow', 3, 'slow'),
      fake('old', 3, 'unsupported'),
      fake('gone', 3, 'unreachable'),
      fake('broken', 3, 'fails'),
      fake('dead', 3, 'answers', 'dead'),
      fake('twin', 3, 'answers', 'conflict'),
    ]
    const taken: string[] = []
    const started = Date.now()
    const answers = await collect(
      targets,
      { timeoutMs: 200 },
      (target, signal) => target.stats({ signal }),
      {
        count: (counters) => counters.ingestedEvents,
        take: (target) => taken.push(target.name),
      },
    )
    // Bounded by the deadline (with a wide margin for a loaded machine).
    expect(Date.now() - started).toBeLessThan(200 * 10)
    expect(answers.map((a) => [a.row.name, a.row.status, a.row.count])).toEqual([
      ['a', 'ok', 3],
      ['slow', 'timed_out', 0],
      ['old', 'unsupported', 0],
      ['gone', 'unreachable', 0],
      ['broken', 'error', 0],
      ['dead', 'dead', 0],
      ['twin', 'error', 0],
    ])
    expect(answers.find((a) => a.row.name === 'twin')?.row.error).toMatch(/name conflict/)
    expect(answers.find((a) => a.row.name === 'broken')?.row.error).toBe('broken broke')
    expect(taken).toEqual(['a'])
    const failures: MemberStatus[] = []
    expect(
      recordRows(
        answers.map((a) => a.row),
        { memberFailure: (s) => failures.push(s) },
      ),
    ).toBe(true)
    expect(failures.sort()).toEqual([
      'dead',
      'error',
      'error',
      'timed_out',
      'unreachable',
      'unsupported',
    ])
  })

  it("stops asking when the caller's signal aborts, without waiting for the deadline", async () => {
    const caller = new AbortController()
    const answering = collect(
      [fake('slow', 1, 'slow')],
      { timeoutMs: 60_000, signal: caller.signal },
      (t, signal) => t.stats({ signal }),
    )
    caller.abort(new Error('the client went away'))
    const [answer] = await answering
    expect(answer?.row.status).toBe('error')
    expect(answer?.answer).toBeUndefined()
  })
})

describe('a call', () => {
  const answerIn = (ms: number) =>
    new Promise<string>((resolve) => setTimeout(() => resolve('batch'), ms))
  const target = { peerId: 'p', name: 'p', state: 'alive' as const }

  it('counts only time spent waiting on the member: the sum of the waits for a page, each wait alone for an export', async () => {
    const page = startCall(target, 150)
    expect(await page.race(answerIn(100))).toBe('batch')
    // Time between waits (a slow reader) is not the member's.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(page.signal.aborted).toBe(false)
    // 100 ms waited already: a second wait of 100 ms passes the page's 150.
    await expect(page.race(answerIn(100))).rejects.toThrow()
    page.fail(new Error('late'))
    expect(page.row.status).toBe('timed_out')

    const whole = startCall(target, 150, undefined, 'each')
    for (let i = 0; i < 3; i++) expect(await whole.race(answerIn(100))).toBe('batch')
    whole.done()
    expect(whole.row.status).toBe('ok')
    // A call that is over lets go of its signal's listeners.
    expect(whole.signal.aborted).toBe(true)
  })
})

describe('the coordinator', () => {
  it('merges members in the array order, stops at the limit, closes the members it no longer needs, and goes on by cursor', async () => {
    const a = fake('a', 50, 'answers', 'alive', 0)
    const b = fake('b', 50, 'answers', 'alive', 1000)
    const coordinator = createCoordinator({ targets: () => [a, b] })
    const first = await coordinator.query({ query: query(30), timeoutMs: 1000 })
    expect(first.events).toHaveLength(30)
    expect(first.events.every((e) => e.memberName === 'a')).toBe(true)
    expect(first.events.map((e) => e.id)).toEqual([...first.events.map((e) => e.id)].sort())
    expect(first.partial).toBe(false)
    expect(first.next).not.toBeNull()
    // b's answer was begun and closed: the page never needed its events.
    expect(b.closed).toBe(true)
    let next = first.next
    const all = [...first.events]
    for (let i = 0; next !== null && i < 10; i++) {
      const page = await coordinator.query({
        query: query(30),
        timeoutMs: 1000,
        cursor: decodeCursor(next),
      })
      all.push(...page.events)
      next = page.next
    }
    expect(all).toHaveLength(100)
    expect(new Set(all.map((e) => e.id)).size).toBe(100)
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort())
  })

  it('answers with the others within the deadline when one member is slow or speaks another version, and says so', async () => {
    const coordinator = createCoordinator({
      targets: () => [fake('a', 5), fake('slow', 5, 'slow'), fake('old', 5, 'unsupported')],
    })
    const page = await coordinator.query({ query: query(100, 'desc'), timeoutMs: 200 })
    expect(page.events.map((e) => e.memberName)).toEqual(Array(5).fill('a'))
    expect(page.events.map((e) => e.seq)).toEqual([5, 4, 3, 2, 1])
    expect(page.members.map((r) => [r.name, r.status])).toEqual([
      ['a', 'ok'],
      ['slow', 'timed_out'],
      ['old', 'unsupported'],
    ])
    expect(page.partial).toBe(true)
  })

  it('fetches an event from its owner, and tells a missing event from an owner that cannot be asked', async () => {
    const a = fake('a', 3)
    const coordinator = createCoordinator({ targets: () => [a, fake('slow', 3, 'slow')] })
    const page = await coordinator.query({ query: query(10), timeoutMs: 1000 })
    const id = page.events[1]?.id as string
    expect((await coordinator.lookup(id, { timeoutMs: 1000 })).id).toBe(id)
    const missing = encodeIdParts(T0, memberTag('peer-a'), 99)
    await expect(coordinator.lookup(missing, { timeoutMs: 1000 })).rejects.toThrow(
      'a has no event with id',
    )
    const slowId = encodeIdParts(T0, memberTag('peer-slow'), 1)
    await expect(coordinator.lookup(slowId, { timeoutMs: 100 })).rejects.toMatchObject({
      name: 'OwnerUnreachableError',
    })
    const nobody = encodeIdParts(T0, memberTag('peer-nobody'), 1)
    await expect(coordinator.lookup(nobody, { timeoutMs: 100 })).rejects.toMatchObject({
      name: 'NotFoundError',
    })
  })
})
