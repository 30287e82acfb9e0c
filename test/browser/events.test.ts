// The Events view in Debian's chromium, driven by playwright-core, against a
// real 3-member array on loopback: the histogram's drag narrows the range,
// a field value's "=" filters (and back restores), live mode shows a new
// event, "events around this one" crosses members, no serious axe
// violations. A screenshot goes to test/artifacts/ (git-ignored).

import { mkdir } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { removeTempDirs, waitFor } from '../helpers.ts'
import { type MemberProcess, postEvents, startProcessArray, stopAll } from '../process/harness.ts'
import { seriousViolations } from './a11y.ts'
import { launchChromium } from './chromium.ts'

const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts')
let browser: Browser
let page: Page
const members: MemberProcess[] = []
let a: MemberProcess

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true })
  members.push(...(await startProcessArray(['ea', 'eb', 'ec'], ['--replicas', '1'])))
  a = members[0] as MemberProcess
  // Rounds of one event per member, so the members' events interleave in the array's order.
  for (let round = 0; round < 8; round++) {
    for (const m of members) {
      await postEvents(m, [
        {
          type: round % 2 === 0 ? 'shop.order' : 'shop.view',
          severity: round === 5 ? 'error' : round === 3 ? 'warn' : 'info',
          message: `${m.name} round ${round}`,
          attrs: { region: round % 3 === 0 ? 'eu' : 'us', round },
        },
      ])
      await new Promise((resolve) => setTimeout(resolve, 3))
    }
  }
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  // Nothing the page does (live stream, histogram, details) may be refused by its security policy.
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) refused.push(message.text())
  })
}, 120_000)

const refused: string[] = []

afterAll(async () => {
  await browser?.close()
  await stopAll()
  await removeTempDirs()
})

/** Opens the view at `hash` and waits until the list for that URL is on the page. */
async function open(hash: string): Promise<void> {
  await page.goto(`${a.url}/${hash}`)
  await loaded()
}

async function loaded(): Promise<void> {
  await page.waitForFunction(
    () => (document.querySelector('#results') as HTMLElement).dataset.loaded === location.hash,
    undefined,
    { timeout: 10_000 },
  )
}

const rows = () =>
  page.$$eval('#results tbody tr', (trs) =>
    trs.map((tr) => ({
      id: (tr as HTMLElement).dataset.id as string,
      ts: Number((tr as HTMLElement).dataset.ts),
      member: tr.children[1]?.textContent,
      type: tr.children[2]?.textContent,
      message: tr.children[4]?.textContent,
    })),
  )

describe('the Events view', () => {
  it('narrows the range to a drag over the histogram: the URL gets from/to and the list follows', async () => {
    await open('#/events?range=15m')
    await page.waitForSelector('#histogram .u-over', { timeout: 10_000 })
    expect((await rows()).length).toBe(24)
    const box = await page.$eval('#histogram .u-over', (el) => {
      const r = el.getBoundingClientRect()
      return { x: r.x, y: r.y, width: r.width, height: r.height }
    })
    const y = box.y + box.height / 2
    // Hovering a bar says its time and counts by severity; the bars of all 24 events add up.
    const hovered = new Set<string>()
    for (let i = 0; i <= 180; i++) {
      await page.mouse.move(box.x + (box.width * i) / 180, y)
      hovered.add((await page.textContent('#histogram-hover')) ?? '')
    }
    hovered.delete('') // the cursor past the plot's edge
    const counts = [...hovered].map((text) =>
      Number(/: (\d+) events/.exec(text)?.[1] ?? Number.NaN),
    )
    expect(counts.reduce((a, b) => a + b, 0)).toBe(24)
    expect([...hovered].some((text) => /: \d+ events \(.*info \d+/.test(text))).toBe(true)
    await page.mouse.move(box.x + box.width * 0.5, y)
    await page.mouse.down()
    await page.mouse.move(box.x + box.width * 0.8, y, { steps: 5 })
    await page.mouse.move(box.x + box.width + 20, y, { steps: 5 })
    await page.mouse.up()
    await page.waitForFunction(
      () => /[?&]from=\d+/.test(location.hash) && /[?&]to=\d+/.test(location.hash),
      undefined,
      {
        timeout: 5_000,
      },
    )
    await loaded()
    const hash = new URLSearchParams(page.url().split('?')[1])
    const from = Number(hash.get('from'))
    const to = Number(hash.get('to'))
    expect(to).toBeGreaterThan(from)
    expect(to - from).toBeLessThan(15 * 60_000)
    expect(hash.get('range')).toBeNull()
    const listed = await rows()
    expect(listed.length).toBeGreaterThan(0)
    for (const r of listed) {
      expect(r.ts).toBeGreaterThanOrEqual(from)
      expect(r.ts).toBeLessThanOrEqual(to)
    }
    // The histogram is redrawn for the narrower range.
    await page.waitForSelector('#histogram .u-over', { timeout: 5_000 })
  })

  it('filters by a field value with "=", keeps it in the URL, and back restores the view', async () => {
    await open('#/events?range=1h')
    const before = page.url()
    await page.click(
      '#fields section[data-field="type"] li[data-value="shop.order"] button[aria-label^="Only"]',
    )
    await page.waitForFunction(() => location.hash.includes('type=shop.order'), undefined, {
      timeout: 5_000,
    })
    await loaded()
    const filtered = await rows()
    expect(filtered.length).toBe(12)
    expect(filtered.every((r) => r.type === 'shop.order')).toBe(true)
    await page.goBack()
    expect(page.url()).toBe(before)
    await loaded()
    expect(new Set((await rows()).map((r) => r.type))).toEqual(new Set(['shop.order', 'shop.view']))

    // "≠" on a member is not an API filter: the page filters and says so.
    await page.click(
      '#fields section[data-field="member"] li[data-value="ea"] button[aria-label^="Exclude"]',
    )
    await page.waitForFunction(() => location.hash.includes('ne.member=ea'), undefined, {
      timeout: 5_000,
    })
    await loaded()
    expect(await page.isVisible('#page-only')).toBe(true)
    expect(await page.textContent('#page-only')).toMatch(/filtered on this page only/i)
    const others = await rows()
    expect(others.length).toBe(16)
    expect(others.every((r) => r.member !== 'ea')).toBe(true)

    // An attribute's "=" goes to the API.
    await open('#/events?range=1h')
    await page.click(
      '#fields section[data-field="attr.region"] li[data-value="eu"] button[aria-label^="Only"]',
    )
    await page.waitForFunction(() => location.hash.includes('attr.region=eu'), undefined, {
      timeout: 5_000,
    })
    await loaded()
    const eu = (await (
      await fetch(`${a.url}/v1/events?from=1h&attr.region=eu&limit=100`)
    ).json()) as ResultPage
    expect((await rows()).map((r) => r.id).sort()).toEqual(eu.events.map((e) => e.id).sort())
    expect(eu.events.length).toBe(9)
  })

  it('shows an event posted after the page opened within 2 s in live mode', async () => {
    await open('#/events?range=15m&live=1')
    await page.waitForSelector('#live-status[data-state="live"]', { timeout: 10_000 })
    const message = `live ${Date.now()}`
    await postEvents(members[1] as MemberProcess, [{ type: 'shop.live', message }])
    await page.waitForFunction(
      (text) => document.querySelector('#results tbody tr td:nth-child(5)')?.textContent === text,
      message,
      { timeout: 2_000 },
    )
    // With an event open, new ones wait and are counted.
    await page.click('#results tbody tr')
    await page.waitForSelector('#details:not([hidden])')
    await postEvents(members[2] as MemberProcess, [
      { type: 'shop.live', message: `${message} later` },
    ])
    await page.waitForSelector('#live-new:not([hidden])', { timeout: 5_000 })
    expect(await page.textContent('#live-new')).toMatch(/^1 new event/)
    await page.keyboard.press('Escape')
    await page.waitForFunction(
      (text) => document.querySelector('#results tbody tr td:nth-child(5)')?.textContent === text,
      `${message} later`,
      { timeout: 2_000 },
    )
    expect(await page.isHidden('#live-new')).toBe(true)
  })

  it('opens an event from its permalink and shows the events around it from several members', async () => {
    const all = (await (
      await fetch(`${a.url}/v1/events?from=1h&type=shop.order,shop.view&limit=100`)
    ).json()) as ResultPage
    const middle = all.events[12] as ResultPage['events'][number]
    await page.goto(`${a.url}/#/events?event=${middle.id}`)
    await page.waitForSelector('#details:not([hidden])', { timeout: 10_000 })
    await page.waitForFunction(() =>
      (document.querySelector('#details-fields')?.textContent ?? '').includes('attrs.region'),
    )
    expect(await page.inputValue('#permalink')).toContain(`#/events?event=${middle.id}`)
    await page.click('#around-button')
    await page.waitForSelector('#around-table', { timeout: 10_000 })
    const around = await page.$$eval('#around-table tbody tr', (trs) =>
      trs.map((tr) => ({
        id: (tr as HTMLElement).dataset.id as string,
        side: (tr as HTMLElement).dataset.side,
        member: tr.children[1]?.textContent,
        current: tr.getAttribute('aria-current'),
      })),
    )
    const self = around.filter((r) => r.side === 'self')
    expect(self).toEqual([
      { id: middle.id, side: 'self', member: middle.memberName, current: 'true' },
    ])
    const before = around.filter((r) => r.side === 'before')
    const after = around.filter((r) => r.side === 'after')
    expect(before.length).toBeGreaterThan(0)
    expect(after.length).toBeGreaterThan(0)
    expect(before.every((r) => r.id < middle.id)).toBe(true)
    expect(after.every((r) => r.id > middle.id)).toBe(true)
    expect(new Set(before.map((r) => r.member)).size).toBeGreaterThan(1)
    expect(new Set(after.map((r) => r.member)).size).toBeGreaterThan(1)
    // In the array's order.
    const ids = around.map((r) => r.id)
    expect(ids).toEqual([...ids].sort())
    await page.keyboard.press('Escape')
    await page.waitForSelector('#details', { state: 'hidden', timeout: 2_000 })
    expect(page.url()).not.toContain('event=')
  })

  it('is reachable by keyboard and has no serious accessibility violations', async () => {
    await open('#/events?range=1h')
    await page.waitForSelector('#histogram .u-over', { timeout: 10_000 })
    await page.focus('#results tbody tr')
    await page.keyboard.press('Enter')
    await page.waitForSelector('#details:not([hidden])', { timeout: 5_000 })
    await page.waitForFunction(() =>
      (document.querySelector('#details-fields')?.textContent ?? '').includes('type'),
    )
    await page.keyboard.press('Escape')
    await page.waitForSelector('#details', { state: 'hidden', timeout: 2_000 })
    expect(
      await page.evaluate(() => document.activeElement?.closest('#results tbody tr') !== null),
    ).toBe(true)
    await page.screenshot({ path: join(ARTIFACTS, 'events-view.png'), fullPage: true })
    expect(await seriousViolations(page)).toEqual([])
    // And with an event open.
    await page.keyboard.press('Enter')
    await page.waitForSelector('#details:not([hidden])', { timeout: 5_000 })
    await page.click('#around-button')
    await page.waitForSelector('#around-table', { timeout: 10_000 })
    await page.screenshot({ path: join(ARTIFACTS, 'events-around.png') })
    expect(await seriousViolations(page)).toEqual([])
  })

  it('says what to do when nothing matches, and when the API refuses the filters', async () => {
    await open('#/events?range=15m&type=no.such.type')
    expect(await page.isVisible('#empty')).toBe(true)
    expect(await page.textContent('#empty')).toMatch(/Widen the range/)
    expect(await page.textContent('#histogram-caption')).toMatch(/No events in this period/)
    await page.goto(`${a.url}/#/events?range=15m&type=NOT%20A%20TYPE`)
    await page.waitForSelector('#events-error:not([hidden])', { timeout: 10_000 })
    expect(await page.textContent('#events-error')).toMatch(/Could not load events: .*search again/)
    expect(refused).toEqual([])
  })
})

describe("the dashboard's SSE parser", () => {
  it('parses messages split across chunks, with CRLF, comments, several data lines, event and id', async () => {
    type Message = { event: string; data: string; id?: string }
    const path: string = '../../node/ui/sse.js'
    const { sseParser } = (await import(path)) as {
      sseParser: (
        onMessage: (m: Message) => void,
        onRetry: (ms: number) => void,
      ) => (chunk: string) => void
    }
    const got: Message[] = []
    const retries: number[] = []
    const feed = sseParser(
      (m) => got.push(m),
      (ms: number) => retries.push(ms),
    )
    feed(': hello\n\nretry: 2000\n\ndata: {"a"')
    feed(':1}\n\nevent: members\r\ndata: {"members":[],\r\ndata: "partial":false}\r\nid: m1\r\n')
    expect(got).toEqual([{ event: 'message', data: '{"a":1}', id: undefined }])
    feed('\r\nid: m2\n\n')
    expect(retries).toEqual([2000])
    expect(got.slice(1)).toEqual([
      { event: 'members', data: '{"members":[],\n"partial":false}', id: 'm1' },
      { event: 'message', data: '', id: 'm2' },
    ])
  })

  it('reads a stream with fetch and, after a cut, reconnects with Last-Event-ID', async () => {
    const path: string = '../../node/ui/sse.js'
    const { openStream } = (await import(path)) as {
      openStream: (
        url: string,
        handlers: { onMessage: (m: { data: string }) => void },
      ) => { close(): void }
    }
    // core.js keeps the token in sessionStorage: none here.
    const g = globalThis as unknown as { sessionStorage?: unknown }
    const hadStorage = 'sessionStorage' in g
    if (!hadStorage) g.sessionStorage = { getItem: () => null }
    const seen: Array<string | undefined> = []
    const server = createServer((req, res) => {
      seen.push(req.headers['last-event-id'] as string | undefined)
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      if (seen.length === 1) {
        // One message and its marks, then the connection is cut.
        res.write('retry: 50\n\ndata: {"n":1}\nid: marks-1\n\n', () => res.socket?.destroy())
      } else {
        res.write(`data: {"n":${seen.length}}\n\n`)
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const got: string[] = []
    const stream = openStream(`http://127.0.0.1:${port}/v1/events/stream`, {
      onMessage: (m) => got.push(m.data),
    })
    try {
      await waitFor(() => got.length >= 2, { timeoutMs: 5_000, what: 'a message after the cut' })
      expect(got.slice(0, 2)).toEqual(['{"n":1}', '{"n":2}'])
      expect(seen.slice(0, 2)).toEqual([undefined, 'marks-1'])
    } finally {
      stream.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      if (!hadStorage) delete g.sessionStorage
    }
  })
})
