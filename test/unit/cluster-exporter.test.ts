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

describe('a member that a holder answers for', () => {
  it('counts the larger of its last own totals and its holder’s, so no counter goes back, and says which holder told them', async () => {
    const totals = (count: number) => [{ type: 'app.x', severity: 3, count }]
    let rows: Awaited<ReturnType<ArraySource['members']>> = [
      {
        member: 'peer-d',
        name: 'd',
        state: 'alive',
        counters: { ingestedEvents: 30, queries: 0, storeSizeBytes: 10, eventTotals: totals(30) },
      },
    ]
    const cluster = createClusterExporter({
      source: {
        members: async () => rows,
        valueQuantiles: async () => [],
        onChange: () => () => {},
      },
    })
    const scrape = async () => {
      await cluster.refresh()
      return (await cluster.metrics(undefined)).body
    }
    expect(await scrape()).toContain('chorus_member_events_total{member="d",severity="error"} 30')

    // Dead: its holder holds fewer (it was assigned late); the last own count stands.
    const held = (count: number) => ({
      member: 'peer-d',
      name: 'd',
      state: 'dead',
      servedBy: 'h',
      counters: { ingestedEvents: 0, queries: 0, storeSizeBytes: 0, eventTotals: totals(count) },
    })
    rows = [held(25)]
    let body = await scrape()
    expect(body).toContain('chorus_member_events_total{member="d",severity="error"} 30')
    expect(body).toContain('chorus_array_events_total{type="app.x",severity="error"} 30')
    expect(body).toContain('chorus_member_served_by{member="d",holder="h"} 1')
    expect(body).toContain('chorus_member_up{member="d"} 0')
    expect(body).toContain('chorus_array_members_answered 0')
    // Its own counters stay as last told, not the holder's zeros.
    expect(body).toContain('chorus_member_ingested_events_total{member="d"} 30')

    // The holder has more than this member last heard (events logged just before the death).
    rows = [held(34)]
    body = await scrape()
    expect(body).toContain('chorus_member_events_total{member="d",severity="error"} 34')

    // Back: its own count again, the holder no longer named.
    rows = [
      {
        member: 'peer-d',
        name: 'd',
        state: 'alive',
        counters: { ingestedEvents: 0, queries: 0, storeSizeBytes: 10, eventTotals: totals(35) },
      },
    ]
    body = await scrape()
    expect(body).toContain('chorus_member_events_total{member="d",severity="error"} 35')
    expect(body).not.toContain('chorus_member_served_by{')
  })
})
