// The Overview, member and health views in Debian's chromium, driven by
// playwright-core, against a real 3-member array on loopback that samples
// its hosts (collect: true). Each view is checked with data, with axe-core
// in light and dark colour schemes, and with a member killed (SIGKILL).
// Screenshots go to test/artifacts/ (git-ignored).

import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeTempDirs, triggerRule, waitFor } from '../helpers.ts'
import { type MemberProcess, postEvents, startProcessArray, stopAll } from '../process/harness.ts'
import { seriousViolations } from './a11y.ts'
import { launchChromium } from './chromium.ts'

const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts')
const HOST_TYPES = ['host.cpu', 'host.memory', 'host.disk']
let browser: Browser
let page: Page
const members: MemberProcess[] = []
let a: MemberProcess

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init)
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`)
  return (await response.json()) as T
}

interface Rollups {
  series: Array<{ key: { member?: string }; buckets: Array<{ count: number }> }>
}

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true })
  members.push(
    ...(await startProcessArray(['oa', 'ob', 'oc'], ['--collect-interval', '2s'], {
      collect: true,
    })),
  )
  a = members[0] as MemberProcess
  // Host samples of every member, for every chart of the overview.
  await waitFor(
    async () => {
      for (const type of HOST_TYPES) {
        const r = await json<Rollups>(`${a.url}/v1/rollups?from=5m&step=30s&type=${type}&by=member`)
        const withData = r.series.filter((s) => s.buckets.some((b) => b.count > 0))
        if (withData.length < 3) return false
      }
      return true
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'host samples of the three members' },
  )
  for (const m of members) {
    const events = [
      { type: 'ui.view', severity: 'info', message: `${m.name} viewed` },
      { type: 'ui.fail', severity: 'error', message: `${m.name} failed to render` },
      { type: 'ui.slow', severity: 'warn', message: `${m.name} slow` },
    ]
    await postEvents(m, events)
  }
  browser = await launchChromium()
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  // Nothing but the member itself: a request to another origin fails the test.
  page.on('request', (request) => {
    const url = new URL(request.url())
    if (url.origin !== new URL(a.url).origin) foreign.push(request.url())
  })
  // Nothing the page does may be refused by its own content security policy.
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) refused.push(message.text())
  })
}, 120_000)

const foreign: string[] = []
const refused: string[] = []

afterAll(async () => {
  await browser?.close()
  await stopAll()
  await removeTempDirs()
})

/** Pixels drawn on a canvas that are not transparent. */
const paintedPixels = (selector: string) =>
  page.$eval(selector, (canvas) => {
    const c = canvas as HTMLCanvasElement
    const data =
      c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? new Uint8ClampedArray()
    let opaque = 0
    for (let i = 3; i < data.length; i += 4) if ((data[i] as number) > 0) opaque++
    return opaque
  })

async function axeBothSchemes(name: string) {
  for (const colorScheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme })
    // uPlot takes its colours when a chart is made: reload for the scheme.
    await page.reload()
    await page.waitForSelector(`#${name}:not([hidden])`)
    await page.waitForLoadState('networkidle', { timeout: 10_000 }).catch(() => {})
    expect(await seriousViolations(page), `${name} in ${colorScheme}`).toEqual([])
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${colorScheme}.png`), fullPage: true })
  }
  await page.emulateMedia({ colorScheme: 'light' })
}

describe('the overview, member and health views', () => {
  it('shows the array as one server: cards, and every member with its charts; first paint measured', async () => {
    await page.goto(`${a.url}/`)
    await page.waitForFunction(() => document.querySelectorAll('#members tbody tr').length === 3)
    const paint = await page.evaluate(
      () => performance.getEntriesByName('chorus:members')[0]?.startTime ?? -1,
    )
    expect(paint).toBeGreaterThan(0)
    const timings = await page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .map(
          (e) =>
            `${new URL(e.name).pathname} ${e.startTime.toFixed(0)}–${(e as PerformanceResourceTiming).responseEnd.toFixed(0)}`,
        )
        .join(', '),
    )
    console.log(
      `overview first meaningful paint (members rendered): ${paint.toFixed(0)} ms (${timings})`,
    )
    expect(paint).toBeLessThan(10_000)
    const rows = await page.$$eval('#members tbody tr', (trs) =>
      trs.map((tr) => [...tr.children].map((td) => td.textContent)),
    )
    expect(rows.map((r) => r[0]?.replace(' (this member)', '')).sort()).toEqual(['oa', 'ob', 'oc'])
    expect(rows.every((r) => r[1] === 'alive')).toBe(true)
    expect(await page.textContent('#card-members .figure')).toBe('3 / 3')
    await page.waitForFunction(
      () => document.querySelector('#card-health .figure')?.textContent === 'ok',
    )
    // Rates from the rollups, with units and the change against the 15 min before.
    await page.waitForFunction(() =>
      /\/s$/.test(document.querySelector('#card-events .figure')?.textContent ?? ''),
    )
    expect(await page.textContent('#card-events .muted')).toMatch(/15 min before/)
    expect(await page.textContent('#card-errors .figure')).toMatch(/\/min$/)
    // The rollups just drawn were answers, all whole: none partial.
    await page.waitForFunction(() =>
      /^0 of [1-9]\d* pages/.test(
        document.querySelector('#card-partial .muted')?.textContent ?? '',
      ),
    )
    expect(await page.textContent('#card-partial .figure')).toBe('0.0 %')
    // Five small charts per member, each with its latest value as text.
    expect(await page.$$eval('#members tbody tr canvas', (c) => c.length)).toBe(15)
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#members tbody tr')].every((tr) =>
        /%/.test(tr.children[3]?.textContent ?? ''),
      ),
    )
    const cpuText = await page.$eval('#members tbody tr td:nth-child(4)', (td) => td.textContent)
    expect(cpuText).toMatch(/\d+\.\d %/)
    expect(await page.$eval('#members tbody tr td:nth-child(5)', (td) => td.textContent)).toMatch(
      /[KMG]iB/,
    )
    expect(await paintedPixels('#members tbody tr td:nth-child(7) canvas')).toBeGreaterThan(20)
    expect(await page.isHidden('#overview-partial')).toBe(true)
    await page.screenshot({ path: join(ARTIFACTS, 'overview-array.png'), fullPage: true })
    await axeBothSchemes('overview')
  })

  it("opens a member's page from its row, by keyboard, with host charts, rules, warnings and facts", async () => {
    await page.goto(`${a.url}/#/overview`)
    await page.waitForSelector('#members tbody tr[data-member="ob"] a')
    await page.focus('#members tbody tr[data-member="ob"] a')
    await page.keyboard.press('Enter')
    await page.waitForFunction(() => location.hash.startsWith('#/member?name=ob'))
    await page.waitForSelector('#member:not([hidden])')
    await page.waitForFunction(() => document.querySelectorAll('#member-charts canvas').length >= 7)
    expect(await page.textContent('#member-name')).toBe('ob')
    expect(await paintedPixels('#member-charts canvas')).toBeGreaterThan(100)
    // Its rules with the value now against the threshold (rendered from their own requests).
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#member-rules tbody tr td:first-child')].some(
        (td) => td.textContent === 'cpu-high',
      ),
    )
    const rules = await page.$$eval('#member-rules tbody tr', (trs) =>
      trs.map((tr) => [...tr.children].map((td) => td.textContent)),
    )
    const cpu = rules.find((r) => r[0] === 'cpu-high')
    expect(cpu?.[2]).toMatch(/\d+\.\d %/)
    expect(cpu?.[3]).toContain('> 90.0 %')
    // Its newest warnings and errors, in the browser's zone with UTC on hover.
    await page.waitForSelector('#member-events tbody tr')
    const messages = await page.$$eval('#member-events tbody tr td:nth-child(4)', (tds) =>
      tds.map((td) => td.textContent),
    )
    expect(messages).toContain('ob failed to render')
    expect(messages).toContain('ob slow')
    expect(messages).not.toContain('ob viewed')
    expect(await page.getAttribute('#member-events time', 'title')).toMatch(/UTC$/)
    const facts = (await page.textContent('#member-facts')) ?? ''
    expect(facts).toContain('Holders of its events')
    expect(facts).toMatch(/Clock offset-?\d+ ms/)
    // Another range redraws from the URL.
    await page.selectOption('#member-form select[name="range"]', '1h')
    await page.waitForFunction(() => location.hash.includes('range=1h'))
    await page.waitForFunction(() => document.querySelectorAll('#member-charts canvas').length >= 7)
    await page.screenshot({ path: join(ARTIFACTS, 'member.png'), fullPage: true })
    await axeBothSchemes('member')
  })

  it('shows the rules in force, each member per rule, and a health change in the history', async () => {
    const config = await json<{ version: number; rules: unknown[] }>(`${a.url}/v1/config/health`)
    const put = await fetch(`${a.url}/v1/config/health`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rules: [...config.rules, triggerRule(0)] }),
    })
    expect(put.status).toBe(200)
    // Every member takes the new version before the trigger is logged.
    await waitFor(
      async () => {
        for (const m of members) {
          const c = await json<{ version: number }>(`${m.url}/v1/config/health`)
          if (c.version <= config.version) return false
        }
        return true
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'the new rules on every member' },
    )
    const b = members[1] as MemberProcess
    await postEvents(b, { type: 'test.trigger', message: 'trip the rule' })
    await waitFor(
      async () => {
        const p = await json<{ events: unknown[] }>(
          `${a.url}/v1/events?type=health.change&from=10m`,
        )
        return p.events.length > 0
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'a health.change event' },
    )
    // What the page reads: ob's health as the member it asks has heard it (by gossip).
    await waitFor(
      async () => {
        const h = await json<{ members: Array<{ name: string; rules: string[] }> }>(
          `${a.url}/v1/health`,
        )
        return h.members.find((m) => m.name === 'ob')?.rules.includes('trigger') === true
      },
      { timeoutMs: 20_000, intervalMs: 250, what: "ob's rule firing as the first member sees it" },
    )
    // The Overview's health card names the rule, where it fires, and its value against the threshold.
    await page.goto(`${a.url}/#/overview`)
    await page.waitForFunction(
      () =>
        /trigger on ob: 1 events \(> 0 events\)/.test(
          document.querySelector('#card-health .muted')?.textContent ?? '',
        ),
      undefined,
      { timeout: 20_000, polling: 250 },
    )
    await page.click('#nav-health')
    await page.waitForSelector('#health:not([hidden])')
    expect(await page.getAttribute('#nav-health', 'aria-current')).toBe('page')
    await page.waitForSelector('#health-history tbody tr')
    expect(await page.textContent('#health-meta')).toMatch(/Rules version \d+, set by /)
    const ruleNames = await page.$$eval('#health-rules tbody tr td:first-child', (tds) =>
      tds.map((td) => td.textContent),
    )
    expect(ruleNames).toContain('trigger')
    expect(ruleNames).toContain('quorum')
    const header = await page.$$eval('#health-matrix thead th', (ths) =>
      ths.map((th) => th.textContent),
    )
    expect(header).toContain('trigger')
    const obRow = await page.$$eval('#health-matrix tbody tr', (trs) =>
      trs
        .map((tr) => [...tr.children].map((td) => td.textContent))
        .find((cells) => cells[0] === 'ob'),
    )
    const triggerCol = header.indexOf('trigger')
    expect(obRow?.[triggerCol]).toBe('firing (warning)')
    const history = await page.$$eval('#health-history tbody tr', (trs) =>
      trs.map((tr) => [...tr.children].map((td) => td.textContent)),
    )
    expect(
      history.some((r) => r[1] === 'ob' && /health ok → warning: trigger=/.test(r[3] ?? '')),
    ).toBe(true)
    await page.screenshot({ path: join(ARTIFACTS, 'health.png'), fullPage: true })
    await axeBothSchemes('health')
  })

  it('shows a member killed with SIGKILL as dead, and says the answers are partial', async () => {
    const c = members[2] as MemberProcess
    c.signal('SIGKILL')
    await c.exited
    await page.goto(`${a.url}/#/overview`)
    await page.waitForFunction(
      () => {
        const row = document.querySelector('#members tbody tr[data-member="oc"]')
        return row?.children[1]?.textContent === 'dead'
      },
      undefined,
      { timeout: 45_000, polling: 250 },
    )
    await page.waitForSelector('#overview-partial:not([hidden])', { timeout: 10_000 })
    expect(await page.textContent('#overview-partial')).toMatch(/Answers are partial: .*oc is dead/)
    expect(await page.textContent('#card-members .figure')).toBe('2 / 3')
    // The array rule that fires, with what it counts now.
    await page.waitForFunction(
      () =>
        /member-down: 1 suspect or dead/.test(
          document.querySelector('#card-health .muted')?.textContent ?? '',
        ),
      undefined,
      { timeout: 20_000, polling: 250 },
    )
    // Its samples up to its death still come, from a holder of its events.
    await page.waitForFunction(
      () =>
        /%/.test(
          document.querySelector('#members tbody tr[data-member="oc"] td:nth-child(4)')
            ?.textContent ?? '',
        ),
      undefined,
      { timeout: 25_000, polling: 250 },
    )
    await page.screenshot({ path: join(ARTIFACTS, 'overview-member-dead.png'), fullPage: true })
    expect(foreign).toEqual([])
    expect(refused).toEqual([])
  })
})
