import { describe, expect, it } from 'vitest'
import { ANSWERS_WINDOW_MS, createRecorder } from '../../node/stats.ts'

describe('the recorder', () => {
  it('counts answers given in full, and the partial ones, over the last 15 minutes', () => {
    let now = Date.parse('2026-11-30T10:00:30Z')
    const recorder = createRecorder(() => now)
    recorder.query('coordinator', 'events', 0.01, false)
    recorder.query('coordinator', 'rollups', 0.01, true)
    // Cut short, a lookup, or a peer's request: not an answer given in full.
    recorder.query('coordinator', 'events', 0.01)
    recorder.query('coordinator', 'lookup', 0.01)
    recorder.query('member', 'events', 0.01)
    expect(recorder.recentAnswers()).toEqual({ windowSeconds: 900, total: 2, partial: 1 })
    expect(recorder.queries).toBe(4)
    now += 10 * 60_000
    recorder.query('coordinator', 'export', 0.5, true)
    expect(recorder.recentAnswers()).toEqual({ windowSeconds: 900, total: 3, partial: 2 })
    // The first minute's answers leave the window; the later one stays.
    now += ANSWERS_WINDOW_MS - 9 * 60_000
    expect(recorder.recentAnswers()).toEqual({ windowSeconds: 900, total: 1, partial: 1 })
    now += 10 * 60_000
    expect(recorder.recentAnswers()).toEqual({ windowSeconds: 900, total: 0, partial: 0 })
  })
})
