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

function bruteForce(
  stepMs: number,
  by: string[],
  fromMs = 0,
  toMs = Infinity,
): Map<string, Expected> {
  const out = new Map<string, Expected>()
  for (const e of [...events].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (e.ts < fromMs || e.ts >= toMs) continue
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
      // The whole run at 10 s steps would be over the answer's cell limit
      // (3,000 steps × 60 series × 3 quantiles): two hours of it instead.
      const [fromMs, toMs] =
        stepMs === 10_000 ? [T0 + 3_600_000, T0 + 3 * 3_600_000] : [T0 - 3_600_000, now]
      for (const by of groupings) {
        const asker = array[compared % 3] as Member
        const response = await asker.app.request(
          `/v1/rollups?from=${fromMs}&to=${toMs - 1}&step=${step}&q=0.5,0.9,0.99${by.length > 0 ? `&by=${by.join(',')}` : ''}`,
        )
        const answer = (await response.json()) as RollupAnswer
        expect(response.status, JSON.stringify(answer)).toBe(200)
        expect(answer.partial, JSON.stringify(answer.members)).toBe(false)
        expect(answer.step).toBe(step)
        const expected = bruteForce(stepMs, by, fromMs, stepMs === 10_000 ? toMs : Infinity)
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

  it('answers 400 naming the parameter for a bad step, grouping, quantile or timeout', async () => {
    for (const [query, field] of [
      ['timeout=2min', 'timeout'],
      ['timeout=soon', 'timeout'],
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

  it('refuses an event value beyond ±1e15 with a 400 naming the field, and keeps answering rollups', async () => {
    const member = array[0] as Member
    const response = await member.app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '[{"type":"app.huge","value":1.79e308},{"type":"app.huge","value":1.79e308}]',
    })
    expect(response.status).toBe(400)
    const body = (await response.json()) as {
      error: { code: string; details: Array<{ field: string; message: string }> }
    }
    expect(body.error.details).toContainEqual({
      field: 'events[0].value',
      message: 'must be a finite number from -1e15 to 1e15',
    })
    const rollups = await member.app.request(
      `/v1/rollups?from=${T0}&to=${now}&step=1h&type=app.huge`,
    )
    expect(rollups.status).toBe(200)
    expect(((await rollups.json()) as RollupAnswer).series).toEqual([])
  })

  it('refuses more than 10 quantiles, and answers over 100,000 cells, with a 400 naming the limit', async () => {
    const member = array[0] as Member
    const many = Array.from({ length: 1000 }, (_, i) => (i / 1000).toString()).join(',')
    for (const q of [many, '0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1']) {
      const response = await member.app.request(`/v1/rollups?step=10s&q=${q}`)
      expect(response.status).toBe(400)
      const body = (await response.json()) as { error: { details: Array<{ field: string }> } }
      expect(body.error.details.map((d) => d.field)).toEqual(['q'])
    }
    // About 500 steps × 10 quantiles × 60 series (4 types, 5 severities, 3 members).
    const ten = '0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9'
    const response = await member.app.request(
      `/v1/rollups?from=${T0 - 3_600_000}&to=${now}&step=1m&q=${ten}&by=type,severity,member`,
    )
    expect(response.status).toBe(400)
    const body = (await response.json()) as {
      error: { code: string; message: string; details: Array<{ field: string }> }
    }
    expect(body.error.code).toBe('limit_exceeded')
    expect(body.error.message).toContain('at most 100000 cells')
    expect(body.error.details.map((d) => d.field)).toContain('by')
    // The same without quantiles fits.
    const fits = await member.app.request(
      `/v1/rollups?from=${T0 - 3_600_000}&to=${now}&step=1m&by=type,severity,member`,
    )
    expect(fits.status).toBe(200)
  })

  it('refuses more than 64 type filters at the edge, for events and rollups, and 64 give a cursor that works', async () => {
    const member = array[0] as Member
    const types = (n: number) =>
      `${Array.from({ length: n }, (_, i) => `type=app.t${i}`).join('&')}&type=app.*`
    for (const path of ['/v1/events', '/v1/rollups']) {
      const response = await member.app.request(`${path}?${types(65)}`)
      expect(response.status, path).toBe(400)
      const body = (await response.json()) as { error: { details: Array<{ field: string }> } }
      expect(body.error.details.map((d) => d.field)).toContain('type')
    }
    const first = await member.app.request(`/v1/events?from=${T0}&to=${now}&limit=5&${types(63)}`)
    expect(first.status).toBe(200)
    const page = (await first.json()) as { next: string | null }
    expect(page.next).not.toBeNull()
    const second = await member.app.request(`/v1/events?cursor=${page.next}`)
    expect(second.status).toBe(200)
  })
})
