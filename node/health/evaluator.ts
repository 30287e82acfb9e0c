// Evaluates health: a member's own rules on a timer (logging a health.change
// event when its state changes), and the array's rules on demand from the
// membership table and the members' announced health.

import type { EventInput } from '../event/event.ts'
import { severityRank } from '../event/event.ts'
import type { Logger } from '../log.ts'
import type { Bucket } from '../store/rollup.ts'
import { parseDuration } from '../time.ts'
import { type ArrayRule, type HealthState, type MemberRule, worst } from './rules.ts'

/** Default evaluation interval of member rules, ms. */
export const HEALTH_INTERVAL_MS = 5000
/** Relative margin past the threshold a firing rule's value must reach before it clears. */
const HYSTERESIS = 0.05

export interface HealthInputs {
  /**
   * The member's own events of `types` (exact or prefix.*; empty: all) with
   * severity ≥ minSeverity in [fromMs, toMs), rolled up into one bucket
   * (empty when there are none, so counts and rates read 0).
   */
  rollup(types: string[], minSeverity: number, fromMs: number, toMs: number): Promise<Bucket>
  /** Largest |clock offset| of the other live members from this one, ms; undefined when alone. */
  maxClockOffsetMs(): number | undefined
  /**
   * How far this member's stamps are from its wall clock beyond the jump it
   * follows, ms (0 normally; see EventLog.clockJumpMs). Default: always 0.
   */
  clockJumpMs?(): number
  clock(): number
  /** Logs an event of this member (health.change). */
  log(event: EventInput): Promise<unknown>
}

export interface FiredRule {
  rule: string
  value: number
}

export interface MemberHealth {
  state(): HealthState
  fired(): FiredRule[]
  /** Evaluates every rule now. */
  evaluate(): Promise<void>
  /** Calls `listener` after every evaluation (its state and fired rules may have changed); returns an unsubscribe function. */
  onEvaluated(listener: () => void): () => void
  start(): void
  /** Stops the timer and resolves once an evaluation under way has ended. */
  stop(): Promise<void>
}

interface Tracking {
  firing: boolean
  since?: number
  value?: number
}

/** The measure of a rule over its window, or undefined without data. */
export function measure(
  rule: MemberRule,
  bucket: Bucket | undefined,
  windowMs: number,
): number | undefined {
  if (!('type' in rule.metric) || bucket === undefined) return undefined
  switch (rule.metric.measure) {
    case 'count':
      return bucket.count
    case 'rate_per_minute':
      return bucket.count / (windowMs / 60_000)
    case 'avg':
      return bucket.valued === 0 ? undefined : bucket.sum / bucket.valued
    case 'max':
      return bucket.valued === 0 ? undefined : bucket.max
    case 'min':
      return bucket.valued === 0 ? undefined : bucket.min
    case 'last':
      return bucket.valued === 0 ? undefined : bucket.last
  }
}

function holds(op: '>' | '<', value: number, threshold: number): boolean {
  return op === '>' ? value > threshold : value < threshold
}

function cleared(op: '>' | '<', value: number, threshold: number): boolean {
  const margin = Math.max(Math.abs(threshold) * HYSTERESIS, 1e-9)
  return op === '>' ? value < threshold - margin : value > threshold + margin
}

export function createMemberHealth(init: {
  rules: () => MemberRule[]
  inputs: HealthInputs
  intervalMs?: number
  logger: Logger
}): MemberHealth {
  const { inputs } = init
  const tracking = new Map<string, Tracking>()
  let state: HealthState = 'ok'
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  const listeners = new Set<() => void>()

  async function currentValue(rule: MemberRule, now: number): Promise<number | undefined> {
    if ('clockOffsetMs' in rule.metric) return inputs.maxClockOffsetMs()
    if ('clockJumpMs' in rule.metric) return inputs.clockJumpMs?.() ?? 0
    const windowMs = parseDuration(rule.window ?? '1m') ?? 60_000
    const bucket = await inputs.rollup(
      [rule.metric.type === '*' ? '' : rule.metric.type].filter((t) => t !== ''),
      rule.metric.minSeverity === undefined ? 0 : severityRank(rule.metric.minSeverity),
      now - windowMs,
      now + 1,
    )
    return measure(rule, bucket, windowMs)
  }

  async function evaluate(): Promise<void> {
    const now = inputs.clock()
    const rules = init.rules()
    for (const name of tracking.keys())
      if (!rules.some((r) => r.name === name)) tracking.delete(name)
    for (const rule of rules) {
      const t = tracking.get(rule.name) ?? { firing: false }
      tracking.set(rule.name, t)
      const value = await currentValue(rule, now)
      const forMs = parseDuration(rule.for) ?? 0
      if (value === undefined) {
        t.since = undefined
        continue
      }
      t.value = value
      const changing = t.firing
        ? cleared(rule.op, value, rule.threshold)
        : holds(rule.op, value, rule.threshold)
      if (!changing) {
        t.since = undefined
        continue
      }
      t.since ??= now
      if (now - t.since >= forMs) {
        t.firing = !t.firing
        t.since = undefined
      }
    }
    let next: HealthState = 'ok'
    for (const rule of rules)
      if (tracking.get(rule.name)?.firing === true) next = worst(next, rule.state)
    if (next !== state) {
      const from = state
      state = next
      const firing = fired()
      const why = firing.map((f) => `${f.rule}=${Math.round(f.value * 1000) / 1000}`).join(', ')
      const attrs: Record<string, string | number> = {
        from,
        to: next,
        rules: firing.map((f) => f.rule).join(','),
      }
      for (const f of firing.slice(0, 20)) attrs[`value.${f.rule}`] = f.value
      await inputs.log({
        type: 'health.change',
        severity: next === 'critical' ? 'critical' : next === 'warning' ? 'warn' : 'info',
        message: `health ${from} → ${next}${why === '' ? '' : `: ${why}`}`,
        source: 'health',
        attrs,
      })
    }
  }

  function fired(): FiredRule[] {
    const out: FiredRule[] = []
    for (const [rule, t] of tracking) if (t.firing) out.push({ rule, value: t.value ?? Number.NaN })
    return out
  }

  const evaluated = () => {
    for (const listener of listeners) listener()
  }

  return {
    state: () => state,
    fired,
    onEvaluated(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    evaluate: () => {
      running ??= evaluate().finally(() => {
        running = undefined
        evaluated()
      })
      return running
    },
    start() {
      timer = setInterval(() => {
        running ??= evaluate()
          .catch((err: unknown) => init.logger.warn({ err }, 'health evaluation failed'))
          .finally(() => {
            running = undefined
            evaluated()
          })
      }, init.intervalMs ?? HEALTH_INTERVAL_MS)
      timer.unref()
    },
    async stop() {
      clearInterval(timer)
      // Its rollup reads must end before the store they read is closed.
      await running?.catch(() => {})
    },
  }
}

export interface MemberView {
  member: string
  name: string
  /** Membership state: alive, suspect, dead, left, conflict. */
  state: string
  /** Announced health: ok, warning, critical, unknown. */
  health: HealthState | 'unknown'
  rules: string[]
}

/** The array's health from its members, by the array rules. */
export function evaluateArray(
  rules: ArrayRule[],
  members: MemberView[],
): { state: HealthState; rules: string[] } {
  const present = members.filter((m) => m.state !== 'left')
  let state: HealthState = 'ok'
  const firing: string[] = []
  for (const rule of rules) {
    const w = rule.when
    let fires = false
    if ('aliveBelow' in w) {
      const quorum = w.aliveBelow === 'majority' ? Math.floor(present.length / 2) + 1 : w.aliveBelow
      fires = present.filter((m) => m.state === 'alive').length < quorum
    } else if ('membersIn' in w) {
      fires =
        present.filter((m) => (w.membersIn as string[]).includes(m.state)).length >=
        (w.atLeast ?? 1)
    } else {
      const level = w.membersWithHealth
      const count = present.filter(
        (m) => m.health === 'critical' || (level === 'warning' && m.health === 'warning'),
      ).length
      fires = count >= (w.atLeast ?? 1)
    }
    if (fires) {
      firing.push(rule.name)
      state = worst(state, rule.state)
    }
  }
  return { state, rules: firing }
}

/** The largest |clock offset| of the other live members of a table, ms; undefined when there are none. */
export function maxClockOffsetMs(
  table: ReadonlyArray<{ self: boolean; state: string; offsetMs: number }>,
): number | undefined {
  const others = table.filter((e) => !e.self && e.state === 'alive')
  return others.length === 0 ? undefined : Math.max(...others.map((e) => Math.abs(e.offsetMs)))
}
