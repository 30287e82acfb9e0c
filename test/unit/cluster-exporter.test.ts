// The array's snapshot for /metrics/cluster asks the members only while
// someone scrapes it: a member nobody scrapes sends nothing for it.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { type ArraySource, createClusterExporter } from '../../exporter/cluster.ts'

beforeEach(() => {
  vi.useFakeTimers({ now: 1_800_000_000_000 })
})
afterEach(() => {
  vi.useRealTimers()
})

function source() {
  const asked = { members: 0 }
  let changed: () => void = () => {}
  const s: ArraySource = {
    async members() {
      asked.members++
      return [
        {
          member: 'peer-a',
          name: 'a',
          state: 'alive',
          health: 'ok',
          counters: { ingestedEvents: 3, queries: 1, storeSizeBytes: 10, eventTotals: [] },
        },
      ]
    },
    async valueQuantiles() {
      return []
    },
    onChange(listener) {
      changed = listener
      return () => {}
    },
  }
  return { source: s, asked, change: () => changed() }
}

describe('the array snapshot', () => {
  it('asks the members nothing until scraped, stays fresh while scraped, and goes quiet again', async () => {
    const { source: s, asked, change } = source()
    const cluster = createClusterExporter({ source: s, intervalMs: 2000, activeWindowMs: 60_000 })
    cluster.start()
    await vi.advanceTimersByTimeAsync(30_000)
    change()
    await vi.advanceTimersByTimeAsync(0)
    expect(asked.members).toBe(0)

    // The first scrape waits for a refresh and renders it.
    const { body } = await cluster.metrics(undefined)
    expect(asked.members).toBe(1)
    expect(body).toContain('chorus_member_up{member="a"} 1')

    // Scraped: refreshed every interval, and on a change of membership.
    await vi.advanceTimersByTimeAsync(10_000)
    expect(asked.members).toBeGreaterThanOrEqual(5)
    const before = asked.members
    change()
    await vi.advanceTimersByTimeAsync(0)
    expect(asked.members).toBe(before + 1)

    // Nobody scrapes for longer than the window: quiet again.
    await vi.advanceTimersByTimeAsync(61_000)
    const quiet = asked.members
    await vi.advanceTimersByTimeAsync(30_000)
    change()
    await vi.advanceTimersByTimeAsync(0)
    expect(asked.members).toBe(quiet)
    cluster.stop()
  })
})
