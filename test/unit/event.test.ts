import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createEventChecker,
  createEventInputSchema,
  DEFAULT_EVENT_LIMITS,
  type EventLimits,
  MAX_EVENT_VALUE,
} from '../../node/event/event.ts'

// Small limits, so that random strings often cross them.
const LIMITS: EventLimits = {
  maxTypeLength: 12,
  maxMessageLength: 20,
  maxSourceLength: 8,
  maxAttrs: 3,
  maxAttrKeyLength: 6,
  maxAttrValueLength: 10,
}

const anything = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
)
/** Mostly valid, sometimes just past the limit or the pattern, rarely anything at all. */
const mostly = <T>(valid: fc.Arbitrary<T>, edge: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 8, arbitrary: valid as fc.Arbitrary<unknown> },
    { weight: 2, arbitrary: edge },
    { weight: 1, arbitrary: anything },
  )
const near = (max: number) => fc.string({ minLength: max - 1, maxLength: max + 1 })

const validKey = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,6}$/)
const validValue = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
)
const attrs = mostly(
  fc.dictionary(validKey, validValue, { maxKeys: 3 }),
  fc.oneof(
    fc.dictionary(validKey, validValue, { minKeys: 4, maxKeys: 4 }),
    fc.dictionary(fc.stringMatching(/^[a-z]{6,7}$/), validValue, { minKeys: 1, maxKeys: 2 }),
    fc.dictionary(validKey, near(10), { minKeys: 1, maxKeys: 2 }),
    fc.dictionary(fc.constantFrom('a b', '', 'constructor', 'prototype', 'é'), validValue, {
      minKeys: 1,
      maxKeys: 1,
    }),
  ),
)

const candidate = fc
  .record({
    type: mostly(
      fc.stringMatching(/^[a-z0-9_-]{1,5}(\.[a-z0-9_-]{1,5})?$/),
      fc.oneof(
        fc.stringMatching(/^[a-z]{6}\.[a-z]{5,6}$/),
        fc.constantFrom('A.B', 'a..b', '.a', 'a.', '', 'é.x', 'a b'),
      ),
    ),
    severity: fc.option(
      mostly(
        fc.constantFrom('debug', 'info', 'warn', 'error', 'critical', 'WARNING', 'Err', 'fatal'),
        fc.constantFrom('fatality', 'warnx', '', 'x'.repeat(40), 'constructor'),
      ),
      { nil: undefined },
    ),
    message: fc.option(mostly(fc.string({ maxLength: 20 }), near(20)), { nil: undefined }),
    source: fc.option(mostly(fc.string({ maxLength: 8 }), near(8)), { nil: undefined }),
    value: fc.option(
      mostly(
        fc.double(),
        fc.oneof(
          fc.constant('1'),
          // Either side of the bound on |value|.
          fc
            .constantFrom(1, -1)
            .chain((sign) =>
              fc
                .constantFrom(
                  MAX_EVENT_VALUE,
                  MAX_EVENT_VALUE + 1,
                  MAX_EVENT_VALUE * (1 + 1e-15),
                  1.79e308,
                )
                .map((v) => sign * v),
            ),
        ),
      ),
      { nil: undefined },
    ),
    attrs: fc.option(attrs, { nil: undefined }),
    time: fc.option(mostly(fc.oneof(fc.string({ maxLength: 64 }), fc.integer()), near(64)), {
      nil: undefined,
    }),
    extra: fc.option(anything, { nil: undefined, freq: 10 }),
  })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)))

describe('the ingest checker', () => {
  it('accepts exactly what the event schema accepts, and returns the same event', () => {
    for (const limits of [LIMITS, DEFAULT_EVENT_LIMITS]) {
      const schema = createEventInputSchema(limits)
      const check = createEventChecker(limits)
      fc.assert(
        fc.property(
          fc.oneof({ weight: 9, arbitrary: candidate }, { weight: 1, arbitrary: anything }),
          (raw) => {
            // As the HTTP layer sees it: parsed from JSON.
            const text = JSON.stringify(raw) ?? 'null'
            const byChecker = check(JSON.parse(text))
            const bySchema = schema.safeParse(JSON.parse(text))
            expect(byChecker !== undefined).toBe(bySchema.success)
            if (bySchema.success) expect(byChecker).toEqual(bySchema.data)
          },
        ),
        { numRuns: 5000 },
      )
    }
  })
})

describe('event values', () => {
  it('are bounded to |value| <= 1e15 by the schema and the checker alike, with the rule named', () => {
    const schema = createEventInputSchema(DEFAULT_EVENT_LIMITS)
    const check = createEventChecker(DEFAULT_EVENT_LIMITS)
    for (const value of [0, 1e-300, MAX_EVENT_VALUE, -MAX_EVENT_VALUE]) {
      expect(check({ type: 'a.b', value })).toBeDefined()
      expect(schema.safeParse({ type: 'a.b', value }).success).toBe(true)
    }
    for (const value of [1.79e308, -1.79e308, MAX_EVENT_VALUE * 1.000001]) {
      expect(check({ type: 'a.b', value })).toBeUndefined()
      const result = schema.safeParse({ type: 'a.b', value })
      expect(result.success).toBe(false)
      expect(result.error?.issues[0]?.path).toEqual(['value'])
      expect(result.error?.issues[0]?.message).toBe('must be a finite number from -1e15 to 1e15')
      expect(MAX_EVENT_VALUE).toBe(1e15)
    }
  })
})

describe('severities', () => {
  it('are taken in any case and by the names shippers use, each as one of the five', () => {
    const check = createEventChecker(DEFAULT_EVENT_LIMITS)
    const cases: Array<[string, string | undefined]> = [
      ['WARNING', 'warn'],
      ['warning', 'warn'],
      ['Err', 'error'],
      ['fatal', 'critical'],
      ['TRACE', 'debug'],
      ['notice', 'info'],
      ['Info', 'info'],
      ['emerg', 'critical'],
      ['fatality', undefined],
      ['hasOwnProperty', undefined],
    ]
    for (const [given, taken] of cases) {
      const event = check({ type: 'app.x', severity: given })
      expect(event?.severity, given).toBe(taken)
    }
  })
})
