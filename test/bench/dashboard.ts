// The `dashboard` part of npm run bench: N members (10 by default) as
// processes with some events each, and Debian's chromium (playwright-core)
// opening the Overview of one of them in a fresh page, again and again:
// the first meaningful paint (navigation start to the members' rows drawn,
// the page's own `chorus:members` mark), and the bytes of the page's own
// script and styles (uPlot aside), against the 500 ms and 150 kB.

import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { launchChromium } from '../browser/chromium.ts'
import { type BenchMember, round, sampleEvent, spread, startBenchMember, summary } from './lib.ts'

const UI_DIR = join(import.meta.dirname, '..', '..', 'node', 'ui')

export interface DashboardFigures {
  members: number
  loads: number
  /** First meaningful paint of each load, ms: median, min, max and p95. */
  paintMs: ReturnType<typeof spread> & { p95: number }
  ownBytes: number
}

export async function dashboardBench(n: number, loads: number): Promise<DashboardFigures> {
  const members: BenchMember[] = []
  const browser = await launchChromium()
  try {
    for (let i = 0; i < n; i++) {
      const join = i === 0 ? [] : ['--join', (members[0] as BenchMember).p2p]
      members.push(await startBenchMember(`d${i}`, join))
    }
    const first = members[0] as BenchMember
    for (const m of members) {
      const body = Array.from({ length: 100 }, (_, i) => sampleEvent(i)).join('\n')
      const r = await fetch(`${m.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body,
      })
      if (r.status !== 201) throw new Error(`ingest answered ${r.status}`)
    }
    // Every member in the first one's table before the page is measured.
    for (const started = performance.now(); ; ) {
      const table = (await (await fetch(`${first.url}/v1/members`)).json()) as {
        members: Array<{ state: string }>
      }
      if (table.members.filter((m) => m.state === 'alive').length === n) break
      if (performance.now() - started > 60_000) throw new Error(`${n} members not alive in 60 s`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const paints: number[] = []
    for (let i = 0; i < loads; i++) {
      // A fresh context: nothing cached from the last load.
      const context = await browser.newContext()
      const page = await context.newPage()
      await page.goto(`${first.url}/#/overview`)
      await page.waitForFunction(() => performance.getEntriesByName('chorus:members').length > 0, {
        timeout: 30_000,
      })
      paints.push(
        await page.evaluate(
          () => performance.getEntriesByName('chorus:members')[0]?.startTime ?? Number.NaN,
        ),
      )
      await context.close()
    }
    const ownBytes = readdirSync(UI_DIR).reduce((sum, f) => sum + statSync(join(UI_DIR, f)).size, 0)
    return {
      members: n,
      loads,
      paintMs: { ...spread(paints.map((p) => round(p, 1))), p95: summary(paints).p95 },
      ownBytes,
    }
  } finally {
    await browser.close()
    await Promise.all(members.map((m) => m.stop()))
  }
}
