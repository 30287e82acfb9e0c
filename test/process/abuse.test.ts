// Abuse: a flood of heavy queries is turned away with 429 while ingest keeps
// being acknowledged and loses nothing; a peer that opens streams in a loop
// or announces a 4 GiB message is cut off without the member's memory growing.

import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import { decodeAnswer, SLICE_PROTOCOL } from '../../protocol/index.ts'
import { rssMiB } from '../bench/lib.ts'
import { allEvents, removeTempDirs, tempDir, testConfig } from '../helpers.ts'
import { startMember, stopAll } from './harness.ts'

const local: Member[] = []
afterEach(async () => {
  await Promise.all(local.splice(0).map((m) => m.stop()))
  await stopAll()
  await removeTempDirs()
})

describe('under a flood of heavy queries', () => {
  it('answers the excess with 429 and Retry-After while concurrent ingest succeeds and loses nothing', async () => {
    const member = await startMember({
      name: 'flooded',
      dataDir: await tempDir(),
      args: ['--max-concurrent-queries', '4'],
    })
    const body = Array.from({ length: 5000 }, (_, i) =>
      JSON.stringify({ type: 'flood.seed', message: `seed ${i} ${'x'.repeat(100)}` }),
    ).join('\n')
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${member.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body,
      })
      expect(r.status).toBe(201)
    }
    const queries = Array.from({ length: 100 }, () =>
      fetch(`${member.url}/v1/events?from=0&limit=10000`).then(async (r) => {
        await r.arrayBuffer()
        return { status: r.status, retryAfter: r.headers.get('retry-after') }
      }),
    )
    const acked: string[] = []
    const ingest = Array.from({ length: 20 }, async (_, i) => {
      const r = await fetch(`${member.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ type: 'flood.ingest', attrs: { i } }]),
      })
      expect(r.status).toBe(201)
      acked.push(...((await r.json()) as { ids: string[] }).ids)
    })
    const answers = await Promise.all(queries)
    await Promise.all(ingest)
    const refused = answers.filter((a) => a.status === 429)
    expect(refused.length).toBeGreaterThan(0)
    expect(refused.every((a) => a.retryAfter === '1')).toBe(true)
    expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true)
    expect(acked).toHaveLength(20)
    const stored = (await allEvents(member.url, '&type=flood.ingest')).map((e) => e.id)
    expect(stored.sort()).toEqual([...acked].sort())
  })
})

describe('an abusive peer', () => {
  it("that opens slice streams in a loop and sends a 4 GiB length prefix is cut off; the member's RSS stays bounded", async () => {
    const victim = await startMember({ name: 'victim', dataDir: await tempDir() })
    const attacker = await createMember({
      ...(await testConfig('attacker')),
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
    local.push(attacker)
    await attacker.start()
    const before = rssMiB(victim.pid)
    const target = multiaddr(victim.p2p)
    let refused = 0
    let answeredWithError = 0
    for (let round = 0; round < 40; round++) {
      const opened = await Promise.allSettled(
        Array.from({ length: 50 }, async () => {
          const stream = await attacker.mesh.host.dialProtocol(target, SLICE_PROTOCOL, {
            signal: AbortSignal.timeout(5000),
          })
          // A varint length prefix of 4 GiB, then nothing.
          stream.send(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x10))
          const reply = await lpStream(stream)
            .read({ signal: AbortSignal.timeout(5000) })
            .catch(() => undefined)
          stream.abort(new Error('done'))
          return reply
        }),
      )
      for (const o of opened) {
        if (o.status === 'rejected' || o.value === undefined) refused++
        else {
          expect(decodeAnswer(o.value.subarray())).toMatchObject({
            kind: 'error',
            code: 'too_large',
          })
          answeredWithError++
        }
      }
    }
    const after = rssMiB(victim.pid)
    expect(after - before).toBeLessThan(150)
    // The member still serves: queries and ingest.
    const r = await fetch(`${victim.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":"still.here"}',
    })
    expect(r.status).toBe(201)
    expect(victim.child.exitCode).toBeNull()
    // Every stream was either refused outright or answered with an error code.
    expect(refused + answeredWithError).toBe(40 * 50)
    expect(answeredWithError).toBeGreaterThan(0)
  })
})
