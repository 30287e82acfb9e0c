// The health report: the array's state and each member's, from the
// membership table (other members' health as they announce it) and this
// member's own evaluation.

import type { MemberEntry } from '../mesh/membership.ts'
import { evaluateArray, type MemberView } from './evaluator.ts'
import { type ArrayRule, HEALTH_STATES, type HealthState } from './rules.ts'

export interface HealthReport {
  array: { state: HealthState; rules: string[] }
  members: Array<{
    member: string
    name: string
    membership: string
    state: HealthState | 'unknown'
    rules: string[]
  }>
}

/** Announced health is `state` or `state:rule,rule`. */
export function encodeHealth(state: HealthState, rules: string[]): string {
  return rules.length === 0 ? state : `${state}:${rules.join(',')}`
}

export function decodeHealth(text: string): { state: HealthState | 'unknown'; rules: string[] } {
  const at = text.indexOf(':')
  const state = at < 0 ? text : text.slice(0, at)
  const rules =
    at < 0
      ? []
      : text
          .slice(at + 1)
          .split(',')
          .filter(Boolean)
  return {
    state: (HEALTH_STATES as readonly string[]).includes(state)
      ? (state as HealthState)
      : 'unknown',
    rules,
  }
}

export function healthReport(table: MemberEntry[], rules: ArrayRule[]): HealthReport {
  const views: MemberView[] = table.map((m) => {
    const { state, rules: fired } = decodeHealth(m.health)
    return { member: m.member, name: m.name, state: m.state, health: state, rules: fired }
  })
  return {
    array: evaluateArray(rules, views),
    members: views.map((v) => ({
      member: v.member,
      name: v.name,
      membership: v.state,
      state: v.health,
      rules: v.rules,
    })),
  }
}
