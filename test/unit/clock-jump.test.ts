// A forward jump of the wall clock is not followed by event stamps: it is
// configurable (--max-clock-jump), it turns the member's health warning while
// it lasts, and a member's own ingest keeps stamping near real time.

import { afterEach, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../node/config.ts'
import type { EventInput } from '../../node/event/event.ts'
import { createMemberHealth } from '../../node/health/evaluator.ts'
import { DEFAULT_RULES, type MemberRule } from '../../node/health/rules.ts'
import { createMember } from '../../node/index.ts'
import { createRootLogger } from '../../node/log.ts'
import { emptyBucket } from '../../node/store/rollup.ts'
import { removeTempDirs, testConfig } from '../helpers.ts'

afterEach(removeTempDirs)

const YEAR = 365 * 86_400_000

describe('--max-clock-jump', () => {
  it('defaults to 1h, takes a duration, and names itself when it is not one', () => {
    expect(resolveConfig({ flags: {}, env: {} }).maxClockJumpMs).toBe(3_600_000)
    expect(resolveConfig({ flags: { 'max-clock-jump': '10m' }, env: {} }).maxClockJumpMs).toBe(
      600_000,
    )
    expect(() => resolveConfig({ flags: { 'max-clock-jump': 'soon' }, env: {} })).toThrow(
      /max-clock-jump/,
    )
  })
})

describe('the clock-jump health rule', () => {
  it('turns a member warning while its stamps do not follow its wall clock, and ok once they do', async () => {
    const rule = DEFAULT_RULES.find((r) => r.name === 'clock-jump') as MemberRule
    let jump = 0
    const logged: EventInput[] = []
    const health = createMemberHealth({
      rules: () => [rule],
      inputs: {
        rollup: async () => emptyBucket(),
        maxClockOffsetMs: () => undefined,
        clockJumpMs: () => jump,
        clock: () => 1_800_000_000_000,
        log: async (event) => {
          logged.push(event)
        },
      },
      logger: createRootLogger({ level: 'silent' }),
    })
    await health.evaluate()
    expect(health.state()).toBe('ok')
    jump = YEAR
    await health.evaluate()
    expect(health.state()).toBe('warning')
    expect(health.fired()).toEqual([{ rule: 'clock-jump', value: YEAR }])
    jump = 0
    await health.evaluate()
    expect(health.state()).toBe('ok')
    expect(logged.map((e) => e.attrs?.to)).toEqual(['warning', 'ok'])
  })
})

describe('a member whose clock leaps a year ahead', () => {
  it('stamps the events it takes meanwhile near real time', async () => {
    let ahead = 0
    const member = await createMember(await testConfig('leaper'), {
      clock: () => Date.now() + ahead,
      monotonic: () => performance.now(),
    })
    try {
      const post = async () => {
        const response = await member.app.request('/v1/events', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"type":"clock.leap"}',
        })
        expect(response.status).toBe(201)
        const [id] = ((await response.json()) as { ids: string[] }).ids
        const event = await member.app.request(`/v1/events/${id}`)
        return ((await event.json()) as { ts: number }).ts
      }
      expect(Math.abs((await post()) - Date.now())).toBeLessThan(60_000)
      ahead = YEAR
      expect(Math.abs((await post()) - Date.now())).toBeLessThan(60_000)
      ahead = 0
      expect(Math.abs((await post()) - Date.now())).toBeLessThan(60_000)
    } finally {
      await member.stop()
    }
  })
})
