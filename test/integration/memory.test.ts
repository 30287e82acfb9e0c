// The requests' share of the memory budget on one member: an ingest body
// that does not fit beside those in flight is answered 503 with Retry-After
// and stores nothing, with or without a declared length, and fits once the
// share is free again; a page waits for room rather than failing.

import { request } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import { planMemory } from '../../node/memory.ts'
import { metricSample, removeTempDirs, testConfig, waitFor } from '../helpers.ts'

const members: Member[] = []

afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

/** A member whose requests may hold `requestBytes` at once. */
async function memberWithShare(requestBytes: number): Promise<Member> {
  const config = await testConfig('share')
  const member = await createMember({
    ...config,
    memory: { ...planMemory(128 * 1024 ** 2), requestBytes },
  })
  await member.start()
  members.push(member)
  return member
}

function events(count: number, size: number): string {
  return Array.from({ length: count }, (_, i) =>
    JSON.stringify({ type: 'share.test', message: `${i} ${'x'.repeat(size)}` }),
  ).join('\n')
}

/**
 * Starts a POST whose body arrives in two parts: the first now, the rest
 * when `finish` is called; `declared` sends a Content-Length, else chunks.
 */
function slowPost(member: Member, body: string, declared: boolean) {
  const [host, port] = member.httpAddress.split(':') as [string, string]
  const headers: Record<string, string | number> = { 'content-type': 'application/x-ndjson' }
  if (declared) headers['content-length'] = Buffer.byteLength(body)
  const req = request({ host, port: Number(port), method: 'POST', path: '/v1/events', headers })
  const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = ''
      res.on('data', (d: Buffer) => {
        text += d.toString()
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
  })
  const half = Math.floor(body.length / 2)
  req.write(body.slice(0, half))
  return {
    answered,
    finish: () => req.end(body.slice(half)),
  }
}

async function post(member: Member, body: string) {
  const response = await fetch(`${member.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson' },
    body,
  })
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (await response.json()) as { ids?: string[]; error?: { code: string; message: string } },
  }
}

const used = async (member: Member) =>
  metricSample(await (await member.app.request('/metrics')).text(), 'chorus_requests_memory_bytes')

describe("the requests' share of the memory budget", () => {
  it('answers an ingest that does not fit 503 with Retry-After, stores nothing, and takes it once there is room', async () => {
    const member = await memberWithShare(256 * 1024)
    // 100 KiB declared: 200 KiB of the 256 held while it is read and stored.
    const held = slowPost(member, events(100, 1000), true)
    await waitFor(async () => (await used(member)) === 2 * Buffer.byteLength(events(100, 1000)), {
      what: 'the first body held',
    })
    const seq = member.log.lastSeq
    const refused = await post(member, events(40, 1000))
    expect(refused.status).toBe(503)
    expect(refused.retryAfter).toBe('1')
    expect(refused.body.error?.code).toBe('over_memory_budget')
    expect(refused.body.error?.message).toMatch(/nothing was stored; retry in 1s/)
    expect(member.log.lastSeq).toBe(seq)
    held.finish()
    expect((await held.answered).status).toBe(201)
    expect(member.log.lastSeq).toBe(seq + 100)
    expect(await used(member)).toBe(0)
    const retried = await post(member, events(40, 1000))
    expect(retried.status).toBe(201)
    expect(retried.body.ids).toHaveLength(40)
  })

  it('counts a body without a length as it streams in, and refuses it past the share', async () => {
    const member = await memberWithShare(256 * 1024)
    const held = slowPost(member, events(100, 1000), true)
    await waitFor(async () => ((await used(member)) ?? 0) > 0, { what: 'the first body held' })
    const seq = member.log.lastSeq
    // Chunked: its first half fits, its second does not.
    const chunked = slowPost(member, events(60, 1000), false)
    chunked.finish()
    const refused = await chunked.answered
    expect(refused.status).toBe(503)
    expect(JSON.parse(refused.body).error.code).toBe('over_memory_budget')
    expect(member.log.lastSeq).toBe(seq)
    held.finish()
    expect((await held.answered).status).toBe(201)
    await waitFor(async () => (await used(member)) === 0, { what: 'the share given back' })
  })

  it('has a page wait for room and answer once the share is free', async () => {
    const member = await memberWithShare(256 * 1024)
    expect((await post(member, events(50, 10))).status).toBe(201)
    const held = slowPost(member, events(120, 1000), true)
    await waitFor(async () => ((await used(member)) ?? 0) > 200 * 1024, {
      what: 'the first body held',
    })
    let answered = false
    const page = fetch(`${member.url}/v1/events?from=0&limit=10000`).then(async (r) => {
      answered = true
      return { status: r.status, body: (await r.json()) as { events: unknown[] } }
    })
    // While the body holds the share the page has not been answered.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(answered).toBe(false)
    held.finish()
    expect((await held.answered).status).toBe(201)
    const { status, body } = await page
    expect(status).toBe(200)
    // The set is the one asked for: the events stored before the page was.
    expect(body.events).toHaveLength(50)
  })
})
