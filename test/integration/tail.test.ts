// GET /v1/events/stream across three members, one of whose clocks lags by a
// minute: new events arrive as they are stored; a client that reconnects
// with Last-Event-ID (to the same member or another) gets every event it
// had not seen, including one stamped earlier than the last one it was
// sent, which a tail by `after=<last id>` would skip; filters apply; a
// malformed Last-Event-ID is refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChorusEvent } from '../../node/event/event.ts'
import { readSse } from '../../node/http/sse.ts'
import { createMember, type Member } from '../../node/index.ts'
import {
  aliveCount,
  postEvents,
  removeTempDirs,
  startArray,
  testConfig,
  waitFor,
} from '../helpers.ts'

let array: Member[] = []
/** The member whose clock is a minute behind the others'. */
let laggard: Member

beforeAll(async () => {
  array = await startArray(2, { names: ['ta', 'tb'] })
  laggard = await createMember(
    {
      ...(await testConfig('tlag')),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      join: [(array[0] as Member).p2pAddrs()[0] as string],
    },
    { clock: () => Date.now() - 60_000 },
  )
  await laggard.start()
  array.push(laggard)
  await waitFor(() => array.every((m) => aliveCount(m) === 3), { what: '3 members alive' })
}, 30_000)

afterAll(async () => {
  await Promise.all(array.map((m) => m.stop()))
  await removeTempDirs()
})

interface Stream {
  /** Waits (bounded) until the events received include one matching `match`; returns every event so far. */
  until(match: (e: ChorusEvent) => boolean, what: string): Promise<ChorusEvent[]>
  /** The last `id:` the stream sent. */
  lastId(): string | undefined
  members(): Array<{ name: string; status: string }> | undefined
  close(): void
}

/** Opens a stream and parses its messages as EventSource would. */
async function openStream(member: Member, query = '', lastEventId?: string): Promise<Stream> {
  const abort = new AbortController()
  const headers: Record<string, string> = { accept: 'text/event-stream' }
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
  const response = await fetch(`http://${member.httpAddress}/v1/events/stream?${query}`, {
    headers,
    signal: abort.signal,
  })
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
  const events: ChorusEvent[] = []
  let id: string | undefined
  let rows: Array<{ name: string; status: string }> | undefined
  const reading = (async () => {
    for await (const messages of readSse(response.body as ReadableStream<Uint8Array>)) {
      for (const m of messages) {
        if (m.id !== undefined) id = m.id
        if (m.data === '') continue
        if (m.type === 'members') rows = (JSON.parse(m.data) as { members: typeof rows }).members
        else events.push(JSON.parse(m.data) as ChorusEvent)
      }
    }
  })().catch(() => {})
  return {
    async until(match, what) {
      await waitFor(() => events.some(match), { what, timeoutMs: 10_000, intervalMs: 20 })
      return events
    },
    lastId: () => id,
    members: () => rows,
    close() {
      abort.abort()
      void reading
    },
  }
}

async function post(member: Member, body: unknown): Promise<ChorusEvent['id'][]> {
  const response = await postEvents(member, body)
  expect(response.status).toBe(201)
  return ((await response.json()) as { ids: string[] }).ids
}

describe('GET /v1/events/stream', () => {
  it('sends events stored after it opened, from every member, and names the members', async () => {
    const [a, b] = array as [Member, Member]
    const stream = await openStream(a, 'type=-host.*')
    try {
      const [fromB] = await post(b, { type: 'tail.live', message: 'from b' })
      const [fromLaggard] = await post(laggard, { type: 'tail.live', message: 'from the laggard' })
      const got = await stream.until((e) => e.id === fromLaggard, "the laggard's event")
      await stream.until((e) => e.id === fromB, "b's event")
      expect(got.every((e) => !e.type.startsWith('host.'))).toBe(true)
      await waitFor(() => stream.members()?.length === 3, { what: 'the members message' })
      expect(stream.members()?.map((r) => r.status)).toEqual(['ok', 'ok', 'ok'])
      expect(stream.lastId()).toBeDefined()
    } finally {
      stream.close()
    }
  })

  it('resumes with Last-Event-ID, on another member too, without missing an event stamped earlier than the last one sent', async () => {
    const [a, b] = array as [Member, Member]
    const stream = await openStream(a, 'type=tail.resume')
    const [first] = await post(b, { type: 'tail.resume', message: 'before the cut' })
    await stream.until((e) => e.id === first, 'the first event')
    await waitFor(() => stream.lastId() !== undefined, { what: 'an id after the first event' })
    const resumeFrom = stream.lastId() as string
    stream.close()

    // While no one listens: the laggard stores an event stamped a minute
    // before the one already sent, and b one more.
    const [late] = await post(laggard, { type: 'tail.resume', message: 'stamped a minute earlier' })
    const [after] = await post(b, { type: 'tail.resume', message: 'after the cut' })
    expect((late as string) < (first as string)).toBe(true)
    // A tail by one id would never see it: everything after `first` holds only b's new event.
    const byId = (await (
      await fetch(`http://${a.httpAddress}/v1/events?after=${first}&type=tail.resume`)
    ).json()) as { events: ChorusEvent[] }
    expect(byId.events.map((e) => e.id)).toEqual([after])

    for (const member of [a, laggard]) {
      const resumed = await openStream(member, 'type=tail.resume', resumeFrom)
      try {
        const got = await resumed.until((e) => e.id === after, 'the event after the cut')
        await resumed.until((e) => e.id === late, 'the late-stamped event')
        // Nothing of before the cut again, nothing twice.
        expect(got.map((e) => e.id).sort()).toEqual([late, after].sort())
      } finally {
        resumed.close()
      }
    }
  })

  it('applies attribute filters on the members', async () => {
    const [a, b] = array as [Member, Member]
    const stream = await openStream(a, 'attr.region=eu')
    try {
      const [us] = await post(b, { type: 'tail.attr', attrs: { region: 'us' } })
      const [eu] = await post(b, { type: 'tail.attr', attrs: { region: 'eu' } })
      const got = await stream.until((e) => e.id === eu, 'the eu event')
      expect(got.map((e) => e.id)).not.toContain(us)
      expect(got.every((e) => e.attrs?.region === 'eu')).toBe(true)
    } finally {
      stream.close()
    }
  })

  it('refuses a malformed Last-Event-ID and unknown parameters with 400', async () => {
    const a = array[0] as Member
    for (const [headers, query, field] of [
      [{ 'last-event-id': 'not!base64' }, '', 'Last-Event-ID'],
      [{ 'last-event-id': 'AAAA' }, '', 'Last-Event-ID'],
      [{}, 'from=soon', 'from'],
      [{}, 'limit=5', 'query'],
    ] as const) {
      const response = await fetch(`http://${a.httpAddress}/v1/events/stream?${query}`, { headers })
      expect(response.status).toBe(400)
      const body = (await response.json()) as { error: { details: Array<{ field: string }> } }
      expect(body.error.details.map((d) => d.field)).toContain(field)
    }
  })
})
