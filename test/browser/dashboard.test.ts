// The dashboard in Debian's chromium, driven by playwright-core, against a
// real 3-member array on loopback. Screenshots of each view go to
// test/artifacts/ (git-ignored).

import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'
import {
  type MemberProcess,
  postEvents,
  startMember,
  startProcessArray,
  stopAll,
} from '../process/harness.ts'
import { seriousViolations } from './a11y.ts'
import { launchChromium } from './chromium.ts'

const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts')
let browser: Browser
let page: Page
const members: MemberProcess[] = []
let a: MemberProcess

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true })
  // No copies (--replicas 1): a paused member leaves its events out, which the banner shows.
  members.push(...(await startProcessArray(['da', 'db', 'dc'], ['--replicas', '1'])))
  a = members[0] as MemberProcess
  for (const [i, m] of members.entries()) {
    const events = Array.from({ length: 8 }, (_, j) => ({
      type: j % 2 === 0 ? 'ui.click' : 'ui.view',
      severity: j === 7 ? 'error' : 'info',
      message: `${m.name} event ${j}`,
      value: i * 10 + j,
      attrs: { member: m.name, n: j },
    }))
    await postEvents(m, events)
  }
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  members[2]?.signal('SIGCONT')
  await stopAll()
  await removeTempDirs()
})

const rowIds = () =>
  page.$$eval('#results tbody tr', (rows) =>
    rows.map((r) => (r as HTMLElement).dataset.id as string),
  )

describe('the dashboard', () => {
  it('opens on the overview and lists the three members alive, by name, as text', async () => {
    await page.goto(`${a.url}/`)
    await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 3)
    const rows = await page.$$eval('#members tbody tr', (trs) =>
      trs.map((tr) => [...tr.children].map((td) => td.textContent)),
    )
    expect(rows.map((r) => r[0]?.replace(' (this member)', '')).sort()).toEqual(['da', 'db', 'dc'])
    expect(rows.every((r) => r[1] === 'alive')).toBe(true)
    await page.waitForFunction(
      () => document.querySelector('#array-health')?.textContent === 'array ok',
    )
    await page.screenshot({ path: join(ARTIFACTS, 'overview.png') })
  })

  it('shows events of all three members in order, and Older and Newer move through the set without repeats or gaps', async () => {
    const expected: string[] = []
    let cursor: string | null = null
    do {
      const query: string = cursor === null ? 'from=1h&order=desc&limit=5' : `cursor=${cursor}`
      const p = (await (await fetch(`${a.url}/v1/events?${query}`)).json()) as ResultPage
      expected.push(...p.events.map((e) => e.id))
      cursor = p.next
    } while (cursor !== null)
    expect(expected).toHaveLength(24)

    await page.goto(`${a.url}/#/events?range=1h&limit=5`)
    await page.waitForSelector('#results tbody tr')
    const seen = [...(await rowIds())]
    expect(
      await page.$$eval(
        '#results tbody tr td:nth-child(2)',
        (tds) => new Set(tds.map((td) => td.textContent)).size,
      ),
    ).toBeGreaterThan(0)
    const pages = [seen.slice()]
    for (
      let i = 0;
      i < 10 && !(await page.$eval('#older', (b) => (b as HTMLButtonElement).disabled));
      i++
    ) {
      const before = (await rowIds())[0]
      await page.click('#older')
      await page.waitForFunction(
        (id) => document.querySelector('#results tbody tr')?.getAttribute('data-id') !== id,
        before,
      )
      const ids = await rowIds()
      pages.push(ids)
      seen.push(...ids)
    }
    expect(seen).toEqual(expected)
    const summary = await page.textContent('#summary')
    const last = pages.at(-1) as string[]
    expect(summary).toBe(`${last.length} events, first id ${last[0]} … last id ${last.at(-1)}`)
    // Reloading reproduces the view from the URL.
    const url = page.url()
    expect(url).toContain('cursor=')
    await page.reload()
    await page.waitForSelector('#results tbody tr')
    expect(await rowIds()).toEqual(last)
    // Newer walks back.
    await page.click('#newer')
    await page.waitForFunction(
      (id) => document.querySelector('#results tbody tr')?.getAttribute('data-id') !== id,
      last[0],
    )
    expect(await rowIds()).toEqual(pages.at(-2))
    await page.screenshot({ path: join(ARTIFACTS, 'events.png') })
  })

  it("opens an event's details with its attributes when its row is clicked", async () => {
    await page.goto(`${a.url}/#/events?range=1h&limit=5&type=ui.view`)
    // Only the hash changes, so the last test's rows stay until this query's arrive.
    await page.waitForFunction(() => {
      const types = [...document.querySelectorAll('#results tbody tr td:nth-child(3)')]
      return types.length > 0 && types.every((td) => td.textContent === 'ui.view')
    })
    await page.click('#results tbody tr')
    await page.waitForSelector('#details:not([hidden])')
    // The panel opens at once; its fields come once the owner has answered.
    await page.waitForSelector('#details-fields:not([aria-busy]) dt')
    const text = (await page.textContent('#details-fields')) ?? ''
    expect(text).toContain('attrs.member')
    expect(text).toContain('attrs.n')
    expect(text).toMatch(/typeui\.view/)
    await page.screenshot({ path: join(ARTIFACTS, 'details.png') })
  })

  it('draws the rate chart for a range with events', async () => {
    await page.goto(`${a.url}/#/rates?range=1h&by=type&p99type=ui.click`)
    await page.waitForSelector('#rate-chart canvas')
    const painted = await page.$eval('#rate-chart canvas', (canvas) => {
      const c = canvas as HTMLCanvasElement
      const data =
        c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? new Uint8ClampedArray()
      let opaque = 0
      for (let i = 3; i < data.length; i += 4) if ((data[i] as number) > 0) opaque++
      return opaque
    })
    expect(painted).toBeGreaterThan(100)
    await page.waitForSelector('#p99-chart canvas')
    await page.screenshot({ path: join(ARTIFACTS, 'rates.png') })
    expect(await seriousViolations(page)).toEqual([])
  })

  it('asks for a read token when the member has tokens, and keeps it for the session', async () => {
    const token = 'dashboard-read-token-0123'
    const guarded = await startMember({
      name: 'dguard',
      dataDir: await tempDir(),
      env: { CHORUS_TOKENS: `read:${token}` },
    })
    const session = await browser.newPage()
    try {
      await session.goto(`${guarded.url}/`)
      await session.waitForSelector('#token:not([hidden])')
      await session.screenshot({ path: join(ARTIFACTS, 'token.png') })
      await session.fill('#token-input', token)
      await session.press('#token-input', 'Enter')
      await session.waitForFunction(
        () => document.querySelectorAll('#members tbody tr').length === 1,
      )
      expect(await session.isHidden('#token')).toBe(true)
      // Another view in the same session does not ask again.
      await session.goto(`${guarded.url}/#/events?range=1h`)
      await session.waitForSelector('#summary:not(:empty)')
      expect(await session.isHidden('#token')).toBe(true)
    } finally {
      await session.close()
      guarded.signal('SIGKILL')
    }
  })

  it('names a paused member in a banner when a set is partial, and shows it suspect or dead with the array warning', async () => {
    const c = members[2] as MemberProcess
    c.signal('SIGSTOP')
    await page.goto(`${a.url}/#/events?range=1h&limit=5`)
    await page.waitForSelector('#partial:not([hidden])', { timeout: 20_000 })
    expect(await page.textContent('#partial')).toMatch(/dc (timed out|unreachable|dead)/)
    await page.screenshot({ path: join(ARTIFACTS, 'partial.png') })
    await page.goto(`${a.url}/#/overview`)
    await page.waitForFunction(
      () => {
        const row = [...document.querySelectorAll('#members tbody tr')].find(
          (tr) => tr.getAttribute('data-member') === 'dc',
        )
        const state = row?.children[1]?.textContent
        return (
          (state === 'suspect' || state === 'dead') &&
          document.querySelector('#array-health')?.textContent === 'array warning'
        )
      },
      undefined,
      { timeout: 30_000 },
    )
    // The partial page above counts in the share of this member's partial answers.
    await page.waitForFunction(() =>
      /^[1-9]\d* of \d+ pages/.test(
        document.querySelector('#card-partial .muted')?.textContent ?? '',
      ),
    )
    expect(await page.textContent('#card-partial .figure')).toMatch(/^\d+\.\d %$/)
    expect(await page.getAttribute('#card-partial .figure', 'class')).toContain('warning')
    await page.screenshot({ path: join(ARTIFACTS, 'overview-member-down.png') })
  })
})
