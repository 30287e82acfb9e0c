// Health rules: what makes a member, and the array, ok, warning or critical.
// A member rule reads the member's own rollups (or its clock offsets) over a
// window, compares a measure with a threshold, and fires after the
// condition has held for a while; it clears only once the value is back past
// the threshold by a margin for as long again (hysteresis), so a value
// hovering at the threshold does not flap. Array rules read the membership
// table and the members' announced health.

import { z } from 'zod'
import { SEVERITIES, TYPE_PATTERN } from '../event/event.ts'

export const HEALTH_STATES = ['ok', 'warning', 'critical'] as const
export type HealthState = (typeof HEALTH_STATES)[number]

export function worst(a: HealthState, b: HealthState): HealthState {
  return HEALTH_STATES.indexOf(a) >= HEALTH_STATES.indexOf(b) ? a : b
}

const duration = z.string().regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'a duration such as 30s, 2m or 1h')

export const MemberRuleSchema = z.strictObject({
  name: z.string().min(1).max(64),
  kind: z.literal('member'),
  /** What is measured: rollups of an event type (or prefix), or the largest clock offset from the others. */
  metric: z.union([
    z.strictObject({
      type: z
        .string()
        .max(128)
        .refine(
          (t) => t === '*' || TYPE_PATTERN.test(t.endsWith('.*') ? t.slice(0, -2) : t),
          'a type, prefix.* or *',
        ),
      measure: z.enum(['avg', 'max', 'min', 'last', 'count', 'rate_per_minute']),
      minSeverity: z.enum(SEVERITIES).optional(),
    }),
    z.strictObject({ clockOffsetMs: z.literal('max_abs') }),
    /**
     * How far this member's event stamps are from its wall clock beyond what
     * it follows (ms; 0 normally): a clock jump past --max-clock-jump.
     */
    z.strictObject({ clockJumpMs: z.literal('abs') }),
  ]),
  op: z.enum(['>', '<']),
  threshold: z.number().finite(),
  /** The measure's window. Default 1m. */
  window: duration.optional(),
  /** How long the condition must hold before the rule fires (and clear before it clears). */
  for: duration,
  state: z.enum(['warning', 'critical']),
})

export const ArrayRuleSchema = z.strictObject({
  name: z.string().min(1).max(64),
  kind: z.literal('array'),
  when: z.union([
    /** Fewer than `quorum` of the members that have not left are alive (default: a majority). */
    z.strictObject({ aliveBelow: z.union([z.literal('majority'), z.number().int().min(1)]) }),
    /** At least `atLeast` members (default 1) are in one of these states. */
    z.strictObject({
      membersIn: z.array(z.enum(['suspect', 'dead', 'conflict'])).min(1),
      atLeast: z.number().int().min(1).optional(),
    }),
    /** At least `atLeast` members (default 1) have this health or worse. */
    z.strictObject({
      membersWithHealth: z.enum(['warning', 'critical']),
      atLeast: z.number().int().min(1).optional(),
    }),
  ]),
  state: z.enum(['warning', 'critical']),
})

export const RuleSchema = z.discriminatedUnion('kind', [MemberRuleSchema, ArrayRuleSchema])
export const RulesSchema = z
  .array(RuleSchema)
  .max(100)
  .refine(
    (rules) => new Set(rules.map((r) => r.name)).size === rules.length,
    'rule names must be unique',
  )

export type MemberRule = z.infer<typeof MemberRuleSchema>
export type ArrayRule = z.infer<typeof ArrayRuleSchema>
export type Rule = z.infer<typeof RuleSchema>

/** The rules in force before anyone sets others. */
export const DEFAULT_RULES: Rule[] = [
  {
    name: 'cpu-high',
    kind: 'member',
    metric: { type: 'host.cpu', measure: 'avg' },
    op: '>',
    threshold: 0.9,
    window: '1m',
    for: '2m',
    state: 'warning',
  },
  {
    name: 'disk-low',
    kind: 'member',
    metric: { type: 'host.disk', measure: 'last' },
    op: '<',
    threshold: 0.1,
    window: '1m',
    for: '0s',
    state: 'critical',
  },
  {
    name: 'errors',
    kind: 'member',
    metric: { type: '*', measure: 'rate_per_minute', minSeverity: 'error' },
    op: '>',
    threshold: 100,
    window: '1m',
    for: '1m',
    state: 'warning',
  },
  {
    name: 'event-loop-delay',
    kind: 'member',
    metric: { type: 'process.event_loop_delay', measure: 'max' },
    op: '>',
    threshold: 1,
    window: '1m',
    for: '30s',
    state: 'warning',
  },
  {
    name: 'clock-offset',
    kind: 'member',
    metric: { clockOffsetMs: 'max_abs' },
    op: '>',
    threshold: 1000,
    for: '1m',
    state: 'warning',
  },
  {
    // Stamps not following the wall clock (see node/store/event-log.ts):
    // either the clock jumped, or the member's last stamp is far ahead of it.
    // The measure is 0 or over --max-clock-jump (at least 1s), and a
    // threshold above 0 lets the rule clear (hysteresis) when it is 0 again.
    name: 'clock-jump',
    kind: 'member',
    metric: { clockJumpMs: 'abs' },
    op: '>',
    threshold: 1000,
    for: '0s',
    state: 'warning',
  },
  { name: 'quorum', kind: 'array', when: { aliveBelow: 'majority' }, state: 'critical' },
  {
    name: 'member-critical',
    kind: 'array',
    when: { membersWithHealth: 'critical' },
    state: 'critical',
  },
  {
    name: 'member-warning',
    kind: 'array',
    when: { membersWithHealth: 'warning' },
    state: 'warning',
  },
  {
    name: 'member-down',
    kind: 'array',
    when: { membersIn: ['suspect', 'dead'] },
    state: 'warning',
  },
]

/** A rule in words, for alerts: what it measures and when it fires. */
export function describeRule(rule: Rule): string {
  if (rule.kind === 'member') {
    const m = rule.metric
    const what =
      'type' in m
        ? `${m.measure} of ${m.type}${m.minSeverity === undefined ? '' : ` (${m.minSeverity} or worse)`} over ${rule.window ?? '1m'}`
        : 'clockOffsetMs' in m
          ? 'the largest clock offset from the others, ms'
          : 'the clock jump, ms'
    return `${what} ${rule.op} ${rule.threshold} for ${rule.for}`
  }
  const w = rule.when
  if ('aliveBelow' in w)
    return `fewer than ${w.aliveBelow === 'majority' ? 'a majority' : w.aliveBelow} of the members alive`
  if ('membersIn' in w) return `at least ${w.atLeast ?? 1} member(s) ${w.membersIn.join(' or ')}`
  return `at least ${w.atLeast ?? 1} member(s) ${w.membersWithHealth} or worse`
}
