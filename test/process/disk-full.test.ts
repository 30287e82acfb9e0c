// A full disk: the write is refused with 507, nothing of the refused request
// is acknowledged or half-stored, and everything acknowledged before is kept.
// The data dir is a small tmpfs mounted by the test (CI runs as root). The
// messages are random so that the WAL's compression cannot absorb them.

import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { type ApiBody, removeTempDirs, tempDir, testConfig } from '../helpers.ts'

let mounted: string | undefined
let member: Member | undefined

afterEach(async () => {
  await member?.stop().catch(() => {})
  member = undefined
  if (mounted !== undefined) execFileSync('umount', ['-l', mounted])
  mounted = undefined
  await removeTempDirs()
})

describe('a member whose disk fills up', () => {
  it('answers 507, stores nothing of the refused request, and keeps what it acknowledged', async () => {
    const dir = await tempDir()
    mounted = join(dir, 'small')
    await mkdir(mounted)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mounted])
    const config = { ...(await testConfig('full')), dataDir: mounted }
    member = await createMember(config)
    const acked: string[] = []
    let refused: { status: number; body: ApiBody } | undefined
    for (let i = 0; i < 200 && refused === undefined; i++) {
      const body = Array.from({ length: 100 }, () =>
        JSON.stringify({ type: 'fill.disk', message: randomBytes(300).toString('base64') }),
      ).join('\n')
      const response = await member.app.request('/v1/events', {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body,
      })
      const json = await response.json()
      if (response.status === 201) acked.push(...(json as ApiBody).ids)
      else refused = { status: response.status, body: json as ApiBody }
    }
    expect(refused?.status).toBe(507)
    expect(refused?.body.error.code).toBe('insufficient_storage')
    expect(acked.length).toBeGreaterThan(0)
    await member.stop()

    // Make room, restart, and read back.
    execFileSync('mount', ['-o', 'remount,size=64m', mounted])
    member = await createMember(config)
    const seen: string[] = []
    let next: string | null = null
    for (let i = 0; i < 100; i++) {
      const query: string = next === null ? 'from=0&limit=10000' : `cursor=${next}`
      const page = (await (await member.app.request(`/v1/events?${query}`)).json()) as ResultPage
      seen.push(...page.events.map((e) => e.id))
      next = page.next
      if (next === null) break
    }
    expect(seen).toEqual(acked)
    const again = await member.app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":"after.full"}',
    })
    expect(again.status).toBe(201)
  })
})
