// GET /v1/export across five members in one process: the same events as
// paging the set, a page's JSON unchanged by streaming it, the same 400s as
// /v1/events, a reader that goes away cancelling every member's scan, and
// the memory share a page holds given back.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChorusEvent } from '../../node/event/event.ts'
import type { Member } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import type { ExportEnd } from '../../node/query/export.ts'
import { allEvents, metricSample, removeTempDirs, startArray, waitFor } from '../helpers.ts'

// Above the slice protocol's limit of 10,000: each member is asked again
// past its last event, in the middle of the export.
const PER_MEMBER = 12_000

let array: Member[]
let url: string

/** NDJSON lines of an export, parsed: its events and its end line. */
function parseExport(text: string): { events: ChorusEvent[]; end: ExportEnd | undefined } {
  const events: ChorusEvent[] = []
  let end: ExportEnd | undefined
  for (const line of text.split('\n')) {
    if (line === '') continue
    const parsed = JSON.parse(line) as ChorusEvent | { end: ExportEnd }
    if ('end' in parsed) end = parsed.end
    else events.push(parsed)
  }
  return { events, end }
}

async function exportText(query: string): Promise<string> {
  const response = await fetch(`${url}/v1/export?${query}`)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toBe('application/x-ndjson')
  return response.text()
}

beforeAll(async () => {
  array = await startArray(5, { names: ['x0', 'x1', 'x2', 'x3', 'x4'] })
  url = (array[0] as Member).url
  // Interleaved in time across members, with a type that sets some apart.
  await Promise.all(
    array.map(async (member, m) => {
      for (let sent = 0; sent < PER_MEMBER; sent += 1000) {
        const body = Array.from({ length: 1000 }, (_, i) =>
          JSON.stringify({
            type: (sent + i) % 3 === 0 ? 'export.rare' : 'export.common',
            message: `event ${sent + i} of x${m}`,
            attrs: { m, i: sent + i },
          }),
        ).join('\n')
        const response = await fetch(`${member.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body,
        })
        expect(response.status).toBe(201)
      }
    }),
  )
}, 60_000)

afterAll(async () => {
  await Promise.all(array.map((m) => m.stop()))
  await removeTempDirs()
})

describe('GET /v1/export', () => {
  it('streams the same events in the same order as paging the set with cursors, then an end line', async () => {
    const paged = await allEvents(url)
    expect(paged).toHaveLength(5 * PER_MEMBER)
    const { events, end } = parseExport(await exportText('from=0'))
    expect(events.map((e) => e.id)).toEqual(paged.map((e) => e.id))
    expect(events[17]).toEqual(paged[17])
    expect(end).toMatchObject({
      count: 5 * PER_MEMBER,
      lastId: paged[paged.length - 1]?.id,
      partial: false,
    })
    expect(end?.members.map((r) => [r.name, r.status, r.count]).sort()).toEqual(
      array.map((m) => [m.name, 'ok', PER_MEMBER]).sort(),
    )

    // Newest first, filtered, and resumed after an id: still the pages' events.
    const filtered = await allEvents(url, '&type=export.rare&order=desc')
    const desc = parseExport(await exportText('from=0&type=export.rare&order=desc'))
    expect(desc.events.map((e) => e.id)).toEqual(filtered.map((e) => e.id))
    const cut = paged[32_345] as ChorusEvent
    const resumed = parseExport(await exportText(`after=${cut.id}&to=${Date.now() + 1}`))
    expect(resumed.events.map((e) => e.id)).toEqual(paged.slice(32_346).map((e) => e.id))
    expect(resumed.end?.count).toBe(5 * PER_MEMBER - 32_346)
  }, 60_000)

  it('writes a page as the same JSON a whole page object makes', async () => {
    const response = await fetch(`${url}/v1/events?from=0&limit=10000&type=export.common`)
    expect(response.headers.get('content-type')).toBe('application/json')
    const text = await response.text()
    const page = JSON.parse(text) as ResultPage
    expect(page.events).toHaveLength(10_000)
    expect(Object.keys(page)).toEqual([
      'events',
      'firstId',
      'lastId',
      'next',
      'prev',
      'members',
      'partial',
    ])
    expect(text).toBe(JSON.stringify(page))
    expect(page.firstId).toBe(page.events[0]?.id)
    expect(page.lastId).toBe(page.events[9999]?.id)
    // Read backwards from its end, the previous page is the same events.
    const next = (await (await fetch(`${url}/v1/events?cursor=${page.next}`)).json()) as ResultPage
    const back = (await (await fetch(`${url}/v1/events?cursor=${next.prev}`)).json()) as ResultPage
    expect(back.events.map((e) => e.id)).toEqual(page.events.map((e) => e.id))
  }, 30_000)

  it('answers bad input with the same 400 as /v1/events', async () => {
    for (const query of ['bogus=1', 'after=not-an-id', 'from=yesterday', 'severity=loud']) {
      const [exported, paged] = await Promise.all([
        fetch(`${url}/v1/export?${query}`),
        fetch(`${url}/v1/events?${query}`),
      ])
      expect(exported.status).toBe(400)
      expect(await exported.json()).toEqual(await paged.json())
    }
    // A page's own parameters are not an export's.
    const limited = await fetch(`${url}/v1/export?limit=10`)
    expect(limited.status).toBe(400)
    expect(((await limited.json()) as { error: { message: string } }).error.message).toMatch(
      /unknown parameter\(s\): limit/,
    )
  })

  it('cancels every member scan and gives back its memory when the reader goes away', async () => {
    const abort = new AbortController()
    const response = await fetch(`${url}/v1/export?from=0`, { signal: abort.signal })
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    let read = 0
    while (read < 256 * 1024) {
      const chunk = await reader.read()
      if (chunk.done) throw new Error('the export ended before the reader left')
      read += chunk.value.byteLength
    }
    const open = () => array.reduce((n, m) => n + m.log.openScans, 0)
    expect(open()).toBeGreaterThan(0)
    abort.abort()
    await waitFor(() => open() === 0, { what: 'every member scan closed', timeoutMs: 15_000 })
    const metrics = await (await fetch(`${url}/metrics`)).text()
    await waitFor(
      async () =>
        metricSample(
          await (await fetch(`${url}/metrics`)).text(),
          'chorus_requests_memory_bytes',
        ) === 0,
      { what: 'the memory share given back' },
    )
    expect(metricSample(metrics, 'chorus_store_scans_open')).toBe(0)
  }, 30_000)
})
