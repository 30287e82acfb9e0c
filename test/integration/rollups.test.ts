// Rollups against brute force: random events over three members, at every
// resolution and for every grouping, agree with what the events themselves
// add up to; quantiles are within the sketch's stated error.

import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChorusEvent } from '../../node/event/event.ts'
import type { Member } from '../../node/index.ts'
import type { RollupAnswer } from '../../node/query/rollups.ts'
import { SKETCH_RELATIVE_ACCURACY } from '../../node/store/rollup.ts'
import { allEvents, removeTempDirs, startArray } from '../helpers.ts'

const T0 = Date.UTC(2026, 10, 26, 8, 0, 0)
let now = T0
let array: Member[] = []
let events: ChorusEvent[] = []

beforeAll(async () => {
  array = await startArray(3, { names: ['ra', 'rb', 'rc'], clock: () => now })
  const rng = fc.sample(
    fc.record({
      member: fc.integer({ min: 0, max: 2 }),
      advanceMs: fc.integer({ min: 1, max: 15 * 60_000 }),
      events: fc.array(
        fc.record({
          type: fc.constantFrom('app.login', 'app.logout', 'db.query', 'db.slow'),
          severity: fc.constantFrom('debug', 'info', 'warn', 'error', 'critical'),
          // Operational values: magnitudes from 1e-9 up, and zero.
          value: fc.option(
            fc
              .double({ min: -1000, max: 1e6, noNaN: true })
              .map((v) => (Math.abs(v) < 1e-9 ? 0 : v)),
            { nil: undefined },
          ),
        }),
        { minLength: 1, maxLength: 40 },
      ),
    }),
    { numRuns: 60, seed: 7 },
  )
  for (const batch of rng) {
    now += batch.advanceMs
    const body = batch.events.map((e) =>
      e.value === undefined ? { type: e.type, severity: e.severity } : e,
    )
    const response = await (array[batch.member] as Member).app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    expect(response.status).toBe(201)
  }
  now += 1000
  const first = array[0] as Member
  events = await allEvents(`http://${first.httpAddress}`)
}, 120_000)

afterAll(async () => {
  await Promise.all(array.map((m) => m.stop()))
  await removeTempDirs()
})

interface Expected {
  count: number
  sum: number
  min: number | null
  max: number | null
  last: number | null
  values: number[]
}

function bruteForce(stepMs: number, by: string[]): Map<string, Expected> {
  const out = new Map<string, Expected>()
  for (const e of [...events].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const t = e.ts - (e.ts % stepMs)
    const key = JSON.stringify([
      t,
      by.includes('type') ? e.type : null,
      by.includes('severity') ? e.severity : null,
      by.includes('member') ? e.memberName : null,
    ])
    let x = out.get(key)
    if (x === undefined) {
      x = { count: 0, sum: 0, min: null, max: null, last: null, values: [] }
      out.set(key, x)
    }
    x.count++
    if (e.value !== undefined) {
      x.sum += e.value
      x.min = x.min === null ? e.value : Math.min(x.min, e.value)
      x.max = x.max === null ? e.value : Math.max(x.max, e.value)
      x.last = e.value
      x.values.push(e.value)
    }
  }
  return out
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))
}

function withinSketchError(actual: number | null, values: number[], q: number): boolean {
  if (values.length === 0) return actual === null
  if (actual === null) return false
  const sorted = [...values].sort((a, b) => a - b)
  const rank = q * (sorted.length - 1)
  const low = sorted[Math.floor(rank)] as number
  const high = sorted[Math.ceil(rank)] as number
  const slack = (x: number) => Math.abs(x) * SKETCH_RELATIVE_ACCURACY + 1e-9
  return actual >= low - slack(low) && actual <= high + slack(high)
}

describe('rollups', () => {
  it('agree with the events at every resolution, for every grouping, from any member', async () => {
    expect(events.length).toBeGreaterThan(300)
    const groupings = [
      [],
      ['type'],
      ['severity'],
      ['member'],
      ['type', 'severity'],
      ['type', 'member'],
      ['type', 'severity', 'member'],
    ]
    const steps: Array<[string, number]> = [
      ['10s', 10_000],
      ['1m', 60_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['2h', 7_200_000],
    ]
    let compared = 0
    for (const [step, stepMs] of steps) {
      for (const by of groupings) {
        const asker = array[compared % 3] as Member
        const response = await asker.app.request(
          `/v1/rollups?from=${T0 - 3_600_000}&to=${now}&step=${step}&q=0.5,0.9,0.99${by.length > 0 ? `&by=${by.join(',')}` : ''}`,
        )
        const answer = (await response.json()) as RollupAnswer
        expect(response.status, JSON.stringify(answer)).toBe(200)
        expect(answer.partial).toBe(false)
        expect(answer.step).toBe(step)
        const expected = bruteForce(stepMs, by)
        let seen = 0
        for (const series of answer.series) {
          for (const b of series.buckets) {
            const key = JSON.stringify([
              b.t,
              series.key.type ?? null,
              series.key.severity ?? null,
              series.key.member ?? null,
            ])
            const x = expected.get(key)
            if (x === undefined) {
              expect(b.count, key).toBe(0)
              continue
            }
            seen++
            expect(b.count, key).toBe(x.count)
            // Sums are added in another order than here: equal up to rounding.
            expect(close(b.sum, x.sum), `${key} sum ${b.sum} ${x.sum}`).toBe(true)
            expect(b.min, key).toBe(x.min)
            expect(b.max, key).toBe(x.max)
            expect(b.last, key).toBe(x.last)
            if (x.values.length === 0) expect(b.avg, key).toBeNull()
            else expect(close(b.avg as number, x.sum / x.values.length), `${key} avg`).toBe(true)
            for (const q of [0.5, 0.9, 0.99]) {
              expect(
                withinSketchError(b.quantiles?.[String(q)] ?? null, x.values, q),
                `${key} q${q}`,
              ).toBe(true)
            }
          }
        }
        expect(seen, `${step} by ${by.join(',')}`).toBe(expected.size)
        compared++
      }
    }
  })

  it('filter by type prefix, minimum severity and member', async () => {
    const response = await (array[1] as Member).app.request(
      `/v1/rollups?from=${T0}&to=${now}&step=1h&type=db.*&severity=error&member=ra&member=rc&by=member`,
    )
    const answer = (await response.json()) as RollupAnswer
    expect(answer.members.map((r) => r.name).sort()).toEqual(['ra', 'rc'])
    const total = answer.series.flatMap((s) => s.buckets).reduce((n, b) => n + b.count, 0)
    const expected = events.filter(
      (e) =>
        e.type.startsWith('db.') &&
        ['error', 'critical'].includes(e.severity) &&
        ['ra', 'rc'].includes(e.memberName),
    ).length
    expect(total).toBe(expected)
    expect(new Set(answer.series.map((s) => s.key.member))).toEqual(
      new Set(
        ['ra', 'rc'].filter((m) =>
          events.some(
            (e) =>
              e.memberName === m &&
              e.type.startsWith('db.') &&
              ['error', 'critical'].includes(e.severity),
          ),
        ),
      ),
    )
  })

  it('answers 400 naming the parameter for a bad step, grouping or quantile', async () => {
    for (const [query, field] of [
      ['step=7s', 'step'],
      ['step=1s', 'step'],
      ['by=colour', 'by'],
      ['q=1.5', 'q'],
      [`from=0&to=${T0}&step=10s`, 'step'],
    ] as const) {
      const response = await (array[0] as Member).app.request(`/v1/rollups?${query}`)
      expect(response.status, query).toBe(400)
      const body = (await response.json()) as { error: { details: Array<{ field: string }> } }
      expect(
        body.error.details.map((d) => d.field),
        query,
      ).toContain(field)
    }
  })
})
