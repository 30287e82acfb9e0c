// A member's lifecycle: identity kept in its data dir, retention in the background.

import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import type { RollupAnswer } from '../../node/query/rollups.ts'
import { removeTempDirs, testConfig, waitFor } from '../helpers.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

describe('a member', () => {
  it('creates its Ed25519 identity on first start and keeps it across restarts', async () => {
    const config = await testConfig('ident')
    const first = await createMember(config)
    await first.stop()
    const second = await createMember(config)
    members.push(second)
    expect(second.peerId).toBe(first.peerId)
    expect(second.peerId).toMatch(/^12D3KooW/) // Ed25519 peer ids are identity multihashes
    const other = await createMember(await testConfig('other'))
    members.push(other)
    expect(other.peerId).not.toBe(first.peerId)
  })

  it('deletes events older than --retention in the background while ingest goes on', async () => {
    let now = 1_800_000_000_000
    const config = {
      ...(await testConfig('retained')),
      retentionMs: 60 * 60_000,
      rollupRetentionMs: [90 * 60_000, 30 * 86_400_000, 365 * 86_400_000] as [
        number,
        number,
        number,
      ],
    }
    const member = await createMember(config, { clock: () => now, retentionIntervalMs: 50 })
    members.push(member)
    await member.start()
    const post = async (type: string) => {
      const response = await member.app.request('/v1/events', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(Array.from({ length: 100 }, () => ({ type }))),
      })
      expect(response.status).toBe(201)
    }
    await post('old.event')
    now += 2 * 60 * 60_000
    await post('new.event')
    const types = async () => {
      const response = await member.app.request(`/v1/events?from=0&to=${now + 1}&limit=1000`)
      return ((await response.json()) as ResultPage).events.map((e) => e.type)
    }
    // Deletion is by range, in the background: wait for exactly the new events.
    const remaining = await waitFor(
      async () => {
        const now = await types()
        return now.length === 100 && now.every((t) => t === 'new.event') && now
      },
      { what: 'only the new events left' },
    )
    expect(remaining).toEqual(Array(100).fill('new.event'))
    // Rollups outlive raw events, each resolution by its own retention: the
    // 10 s buckets of two hours ago are gone, the 1 min ones are kept.
    const rolled = async (step: string) => {
      const response = await member.app.request(
        `/v1/rollups?from=${now - 3 * 3_600_000}&to=${now}&step=${step}&type=old.event`,
      )
      const body = (await response.json()) as RollupAnswer
      return body.series.flatMap((s) => s.buckets).reduce((n, b) => n + b.count, 0)
    }
    await waitFor(async () => (await rolled('10s')) === 0, { what: 'old 10 s buckets deleted' })
    expect(await rolled('1m')).toBe(100)
    expect(await rolled('1h')).toBe(100)
  })
})
