// Health rules against injected values: state changes, health.change events,
// and hysteresis so a value hovering at a threshold does not flap.

import { describe, expect, it } from 'vitest'
import type { EventInput } from '../../node/event/event.ts'
import { createMemberHealth, evaluateArray, type MemberView } from '../../node/health/evaluator.ts'
import {
  type ArrayRule,
  DEFAULT_RULES,
  type MemberRule,
  RulesSchema,
} from '../../node/health/rules.ts'
import { createRootLogger } from '../../node/log.ts'
import { addEvent, emptyBucket } from '../../node/store/rollup.ts'

const CPU = DEFAULT_RULES.find((r) => r.name === 'cpu-high') as MemberRule
const ERRORS: MemberRule = {
  name: 'errors',
  kind: 'member',
  metric: { type: '*', measure: 'rate_per_minute', minSeverity: 'error' },
  op: '>',
  threshold: 10,
  window: '1m',
  for: '0s',
  state: 'critical',
}

function harness(rules: MemberRule[]) {
  let now = 1_800_000_000_000
  let cpu: number | undefined
  let errors = 0
  const logged: EventInput[] = []
  const health = createMemberHealth({
    rules: () => rules,
    inputs: {
      async rollup(types, minSeverity) {
        const bucket = emptyBucket()
        if (types[0] === 'host.cpu' && cpu !== undefined) addEvent(bucket, 'x', cpu)
        if (types.length === 0 && minSeverity >= 3)
          for (let i = 0; i < errors; i++) addEvent(bucket, `e${i}`, undefined)
        return bucket
      },
      maxClockOffsetMs: () => undefined,
      clock: () => now,
      log: async (event) => {
        logged.push(event)
      },
    },
    logger: createRootLogger({ level: 'silent' }),
  })
  const step = async (ms: number, value: number | undefined, errorsPerMinute = 0) => {
    cpu = value
    errors = errorsPerMinute
    now += ms
    await health.evaluate()
  }
  return { health, logged, step }
}

describe('member health', () => {
  it('turns warning only after the condition held for its duration, logging health.change with the rule and value', async () => {
    const { health, logged, step } = harness([CPU])
    await step(0, 0.95)
    for (let t = 0; t < 11; t++) await step(10_000, 0.95) // 110 s
    expect(health.state()).toBe('ok')
    await step(10_000, 0.95) // 120 s
    expect(health.state()).toBe('warning')
    expect(logged).toHaveLength(1)
    expect(logged[0]).toMatchObject({
      type: 'health.change',
      severity: 'warn',
      attrs: { from: 'ok', to: 'warning', rules: 'cpu-high', 'value.cpu-high': 0.95 },
    })
    expect(logged[0]?.message).toBe('health ok → warning: cpu-high=0.95')
    expect(health.fired()).toEqual([{ rule: 'cpu-high', value: 0.95 }])
  })

  it('does not flap when the value hovers at the threshold, and clears only past the margin for as long again', async () => {
    const { health, logged, step } = harness([CPU])
    // Hovering before firing: each dip below the threshold restarts the wait.
    for (let t = 0; t < 30; t++) await step(10_000, t % 2 === 0 ? 0.91 : 0.89)
    expect(health.state()).toBe('ok')
    for (let t = 0; t <= 12; t++) await step(10_000, 0.95)
    expect(health.state()).toBe('warning')
    // Hovering after firing: just below the threshold is not enough to clear.
    for (let t = 0; t < 30; t++) await step(10_000, t % 2 === 0 ? 0.89 : 0.91)
    expect(health.state()).toBe('warning')
    for (let t = 0; t < 30; t++) await step(10_000, 0.88) // within the 5% margin
    expect(health.state()).toBe('warning')
    for (let t = 0; t <= 12; t++) await step(10_000, 0.5)
    expect(health.state()).toBe('ok')
    expect(logged.map((e) => [e.attrs?.from, e.attrs?.to])).toEqual([
      ['ok', 'warning'],
      ['warning', 'ok'],
    ])
  })

  it('takes the worst state of the rules that fired, from event rates too', async () => {
    const { health, logged, step } = harness([CPU, ERRORS])
    await step(0, 0.1, 50)
    expect(health.state()).toBe('critical')
    expect(logged.at(-1)).toMatchObject({
      severity: 'critical',
      attrs: { to: 'critical', rules: 'errors' },
    })
    await step(1000, 0.1, 0)
    expect(health.state()).toBe('ok')
  })

  it('stops only once an evaluation under way has read what it needs, so the store can close after it', async () => {
    let closed = false
    let readsAfterClose = 0
    let entered = () => {}
    const reading = new Promise<void>((resolve) => {
      entered = resolve
    })
    let release = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const health = createMemberHealth({
      rules: () => [ERRORS],
      intervalMs: 5,
      inputs: {
        async rollup() {
          entered()
          await gate
          if (closed) readsAfterClose++
          return emptyBucket()
        },
        maxClockOffsetMs: () => undefined,
        clock: () => 1_800_000_000_000,
        log: async () => {},
      },
      logger: createRootLogger({ level: 'silent' }),
    })
    health.start()
    await reading
    // As the member does: close the store once health has stopped.
    const stopping = Promise.resolve(health.stop()).then(() => {
      closed = true
    })
    // A stop that did not wait would have let the store close by now.
    await new Promise(setImmediate)
    release()
    await stopping
    expect(closed).toBe(true)
    expect(readsAfterClose).toBe(0)
  })
})

describe('array health', () => {
  const rules = DEFAULT_RULES.filter((r): r is ArrayRule => r.kind === 'array')
  const member = (
    name: string,
    state: string,
    health: MemberView['health'] = 'ok',
  ): MemberView => ({
    member: name,
    name,
    state,
    health,
    rules: [],
  })

  it('is warning when a member is suspect, dead or warning, and critical below quorum or with a critical member', () => {
    expect(
      evaluateArray(rules, [member('a', 'alive'), member('b', 'alive'), member('c', 'alive')]),
    ).toEqual({ state: 'ok', rules: [] })
    expect(
      evaluateArray(rules, [member('a', 'alive'), member('b', 'alive'), member('c', 'suspect')]),
    ).toEqual({
      state: 'warning',
      rules: ['member-down'],
    })
    expect(
      evaluateArray(rules, [
        member('a', 'alive'),
        member('b', 'alive', 'warning'),
        member('c', 'left'),
      ]),
    ).toEqual({
      state: 'warning',
      rules: ['member-warning'],
    })
    expect(
      evaluateArray(rules, [
        member('a', 'alive'),
        member('b', 'alive', 'critical'),
        member('c', 'alive'),
      ]).state,
    ).toBe('critical')
    expect(
      evaluateArray(rules, [member('a', 'alive'), member('b', 'dead'), member('c', 'dead')]),
    ).toEqual({
      state: 'critical',
      rules: ['quorum', 'member-down'],
    })
  })

  it('accepts the default rules and refuses duplicate names', () => {
    expect(RulesSchema.safeParse(DEFAULT_RULES).success).toBe(true)
    expect(RulesSchema.safeParse([...DEFAULT_RULES, DEFAULT_RULES[0]]).success).toBe(false)
  })
})
