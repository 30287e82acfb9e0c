import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type CursorState, decodeCursor, encodeCursor } from '../../node/query/cursor.ts'
import { createHeap, scanOrder } from '../../node/query/merge.ts'
import { formatDuration, parseDuration, parseTime } from '../../node/time.ts'

describe('the merge heap', () => {
  it("yields members' head events in scan order, both directions", () => {
    const idArb = fc.string({
      minLength: 3,
      maxLength: 3,
      unit: fc.constantFrom('0', '1', '2', 'A', 'B', 'Z'),
    })
    fc.assert(
      fc.property(fc.uniqueArray(idArb, { maxLength: 200 }), fc.boolean(), (ids, reverse) => {
        const heap = createHeap(scanOrder(reverse))
        for (const id of ids) heap.push({ id })
        const out: string[] = []
        for (let e = heap.pop(); e !== undefined; e = heap.pop()) out.push(e.id)
        const expected = [...ids].sort()
        expect(out).toEqual(reverse ? expected.reverse() : expected)
        expect(heap.size).toBe(0)
      }),
      { numRuns: 1000 },
    )
  })
})

describe('cursors', () => {
  const state: CursorState = {
    query: {
      fromMs: 1,
      toMs: 2,
      types: ['http.*'],
      minSeverity: 2,
      members: ['a'],
      text: 'x',
      limit: 50,
      order: 'desc',
    },
    dir: 'prev',
    position: '01M8C3SPGBYGR35JM900000002',
    inclusive: true,
    marks: [
      ['0a1b2c3d4e', 17],
      ['ffee000102', -1],
    ],
  }

  it('round-trip through an opaque URL-safe string', () => {
    const text = encodeCursor(state)
    expect(encodeURIComponent(text)).toBe(text)
    expect(decodeCursor(text)).toEqual(state)
  })

  it('reject anything they did not issue with invalid_cursor', () => {
    const text = encodeCursor(state)
    for (const bad of [
      '',
      'not base64!',
      'AAAA',
      text.slice(0, -6),
      `${text}AAAA`,
      'x'.repeat(300_000),
    ]) {
      expect(() => decodeCursor(bad), bad.slice(0, 20)).toThrowError(
        expect.objectContaining({ code: 'invalid_cursor' }),
      )
    }
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(
            ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
          ),
        }),
        (s) => {
          try {
            decodeCursor(s)
          } catch (err) {
            expect((err as Error).name).toBe('InvalidInputError')
          }
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('times and durations', () => {
  it('parse the forms operators write', () => {
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('10s')).toBe(10_000)
    expect(parseDuration('2m')).toBe(120_000)
    expect(parseDuration('1h')).toBe(3_600_000)
    expect(parseDuration('7d')).toBe(604_800_000)
    expect(parseDuration('7 days')).toBeUndefined()
    expect(parseDuration('-1s')).toBeUndefined()
    expect(formatDuration(604_800_000)).toBe('1w')
    expect(formatDuration(90_000)).toBe('90s')
    const now = Date.parse('2026-11-26T10:00:00Z')
    expect(parseTime('2026-11-26T09:00:00Z', now)).toBe(now - 3_600_000)
    expect(parseTime('2026-11-26T11:00:00+02:00', now)).toBe(now - 3_600_000)
    expect(parseTime('1795600000000', now)).toBe(1_795_600_000_000)
    expect(parseTime('15m', now)).toBe(now - 900_000)
    expect(parseTime('yesterday', now)).toBeUndefined()
    expect(parseTime('2026-11-26', now)).toBeUndefined()
  })
})
