// Health rules set on any member are in force on every member: spread by
// gossip without a master, converging on one winner when two members change
// them at once, and kept across restarts; so is any other array setting
// beside them.

import { afterEach, describe, expect, it } from 'vitest'
import type { HealthConfig } from '../../node/health/config.ts'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import { removeTempDirs, startArray, triggerRule, waitFor } from '../helpers.ts'
import { rawRequest } from '../raw-http.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

async function get(m: Member): Promise<HealthConfig> {
  return (await (await m.app.request('/v1/config/health')).json()) as HealthConfig
}

async function put(m: Member, body: unknown) {
  const response = await m.app.request('/v1/config/health', {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return {
    status: response.status,
    body: (await response.json()) as HealthConfig & {
      error: { details: Array<{ field: string }> }
    },
  }
}

describe('health rules', () => {
  it('answer the defaults before any change, and take back what GET gave, unchanged', async () => {
    const array = await startArray(1, { names: ['solo'] })
    members.push(...array)
    const [solo] = array as [Member]
    const defaults = await get(solo)
    expect(defaults.version).toBe(0)
    expect(defaults.updatedBy).toBeNull()
    expect(defaults.rules.map((r) => r.name)).toContain('cpu-high')
    const again = await put(solo, { rules: defaults.rules })
    expect(again.status).toBe(200)
    expect(again.body).toMatchObject({ version: 1, updatedBy: solo.peerId, rules: defaults.rules })
    const bad = await put(solo, { rules: [{ ...triggerRule(1), op: '>=' }] })
    expect(bad.status).toBe(400)
    expect(bad.body.error.details.map((d) => d.field).join(' ')).toMatch(/rules/)
    expect((await get(solo)).version).toBe(1)
  })

  it('set on one member are in force on the others within 5 s, and apply there', async () => {
    const array = await startArray(3, { names: ['ra', 'rb', 'rc'] })
    members.push(...array)
    const [a, b, c] = array as [Member, Member, Member]
    const started = Date.now()
    const { body } = await put(a, { rules: [triggerRule(0)] })
    expect(body.version).toBe(1)
    await waitFor(async () => (await get(b)).version === 1 && (await get(c)).version === 1, {
      timeoutMs: 10_000,
      what: 'version 1 everywhere',
    })
    expect(Date.now() - started).toBeLessThan(5000 * 2)
    // In force on c: one matching event makes c warning by the new rule.
    await c.app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":"test.trigger"}',
    })
    await c.health.evaluate()
    expect(c.health.state()).toBe('warning')
    expect(c.health.fired().map((f) => f.rule)).toEqual(['trigger'])
  })

  it('converge on one version when two members change them at once, and keep it across restarts', async () => {
    const array = await startArray(3, { names: ['ca', 'cb', 'cc'] })
    members.push(...array)
    const [a, b] = array as [Member, Member]
    await Promise.all([put(a, { rules: [triggerRule(5)] }), put(b, { rules: [triggerRule(7)] })])
    const winner = [a.peerId, b.peerId].sort().at(-1)
    await waitFor(
      async () => {
        const all = await Promise.all(array.map(get))
        return all.every((cfg) => cfg.version === 1 && cfg.updatedBy === winner)
      },
      { timeoutMs: 10_000, what: 'one winner everywhere' },
    )
    const expected = JSON.stringify((await get(a)).rules)
    // Stop every member, then start each alone: each still holds the winning version.
    await Promise.all(members.splice(0).map((m) => m.stop()))
    for (const m of array) {
      const restarted = await createMember({ ...m.config, join: [] })
      members.push(restarted)
      await restarted.start()
      const cfg = await get(restarted)
      expect(cfg.version).toBe(1)
      expect(cfg.updatedBy).toBe(winner)
      expect(JSON.stringify(cfg.rules)).toBe(expected)
    }
  })

  it('and the replica count, changed at once on two members, are both in force on every member', async () => {
    const array = await startArray(3, { names: ['sa', 'sb', 'sc'] })
    members.push(...array)
    const [a, b] = array as [Member, Member]
    // The two words carry the same version sum (1) and differ: each member fetches the other's.
    const [health, replicas] = await Promise.all([
      put(a, { rules: [triggerRule(5)] }),
      b.app.request('/v1/config/replicas', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ replicas: 3 }),
      }),
    ])
    expect([health.status, replicas.status]).toEqual([200, 200])
    await waitFor(
      () =>
        array.every(
          (m) =>
            m.healthConfig.current().updatedBy === a.peerId &&
            m.replicasSetting.current().updatedBy === b.peerId &&
            m.replicasSetting.current().replicas === 3,
        ),
      { timeoutMs: 10_000, what: 'both settings everywhere' },
    )
  })

  it('refuse a body over 256 KiB with 413 and the error body, streamed or declared, and change nothing', async () => {
    const array = await startArray(1, { names: ['bounded'] })
    members.push(...array)
    const [solo] = array as [Member]
    const streamed = await put(solo, {
      rules: [{ ...triggerRule(1), name: 'x'.repeat(1024 * 1024) }],
    })
    expect(streamed.status).toBe(413)
    const error = (
      streamed.body as unknown as {
        error: { code: string; details: Array<{ field: string; message: string }> }
      }
    ).error
    expect(error.code).toBe('limit_exceeded')
    expect(error.details).toEqual([{ field: 'body', message: `at most ${256 * 1024} bytes` }])
    // Declared 60 MB, of which only the first bytes are sent: answered at once.
    const declared = await rawRequest(`${solo.url}/v1/config/health`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'content-length': String(60 * 1024 * 1024) },
      body: '{"rules":[',
      partial: true,
    })
    expect(declared.status).toBe(413)
    expect(JSON.parse(declared.body).error.code).toBe('limit_exceeded')
    expect((await get(solo)).version).toBe(0)
  })
})
