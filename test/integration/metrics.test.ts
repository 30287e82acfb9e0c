// GET /metrics: this member in Prometheus text (and OpenMetrics), checked by
// Debian's promtool, with event counters that come from the store.

import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { RocksLevel } from '@nxtedition/rocksdb'
import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import { rollupKey } from '../../node/store/keys.ts'
import {
  metricSample,
  removeTempDirs,
  startArray,
  testConfig,
  triggerRule,
  waitFor,
} from '../helpers.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

async function post(member: Member, events: object[]) {
  const response = await member.app.request('/v1/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(events),
  })
  expect(response.status).toBe(201)
}

async function scrape(member: Member, accept?: string, path = '/metrics') {
  const response = await member.app.request(
    path,
    accept === undefined ? {} : { headers: { accept } },
  )
  return {
    status: response.status,
    type: response.headers.get('content-type'),
    body: await response.text(),
  }
}

function promtool(body: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], {
    input: body,
    encoding: 'utf8',
    timeout: 20_000,
  })
  return { status: result.status, output: `${result.stdout}${result.stderr}` }
}

describe('health in the metrics', () => {
  it('says which rules fire and each state, on /metrics and for every member on /metrics/cluster', async () => {
    const array = await startArray(2, { names: ['ha', 'hb'] })
    members.push(...array)
    const [a, b] = array as [Member, Member]
    const put = await a.app.request('/v1/config/health', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rules: [triggerRule(0)] }),
    })
    expect(put.status).toBe(200)
    await waitFor(() => b.healthConfig.current().version === 1, { what: 'the rule at hb' })
    await post(b, [{ type: 'test.trigger' }])
    await b.health.evaluate()
    expect(b.health.state()).toBe('warning')

    const own = (await scrape(b)).body
    expect(
      metricSample(own, 'chorus_health_rule_firing{member="hb",rule="trigger",state="warning"}'),
    ).toBe(1)
    expect(metricSample(own, 'chorus_member_health{member="hb",state="warning"}')).toBe(1)
    expect(metricSample(own, 'chorus_member_health{member="hb",state="ok"}')).toBe(0)
    expect(promtool(own)).toEqual({ status: 0, output: '' })
    const quiet = (await scrape(a)).body
    expect(
      metricSample(quiet, 'chorus_health_rule_firing{member="ha",rule="trigger",state="warning"}'),
    ).toBe(0)

    // The array's view, from the member where nothing fires.
    const cluster = await waitFor(
      async () => {
        const text = (await scrape(a, undefined, '/metrics/cluster')).body
        return metricSample(text, 'chorus_member_health{member="hb",state="warning"}') === 1
          ? text
          : undefined
      },
      { what: "hb's warning in ha's /metrics/cluster" },
    )
    expect(
      metricSample(
        cluster,
        'chorus_health_rule_firing{member="hb",rule="trigger",state="warning"}',
      ),
    ).toBe(1)
    expect(metricSample(cluster, 'chorus_member_health{member="ha",state="ok"}')).toBe(1)
    expect(cluster).not.toContain('chorus_health_rule_firing{member="ha"')
    expect(promtool(cluster)).toEqual({ status: 0, output: '' })
  })
})

describe('GET /metrics/cluster', () => {
  it('exports array-wide quantiles of value per type for the last complete minute', async () => {
    let now = Date.UTC(2026, 10, 26, 9, 0, 10)
    const array = await startArray(2, { names: ['qa', 'qb'], clock: () => now })
    members.push(...array)
    for (const member of array) {
      await post(
        member,
        Array.from({ length: 100 }, (_, i) => ({ type: 'lat.request', value: i + 1 })),
      )
    }
    now += 60_000 // the minute of those events is now complete
    const series = (quantile: string) =>
      `chorus_array_event_value{type="lat.request",q="${quantile}"}`
    const body = await waitFor(
      async () => {
        const text = (await scrape(array[0] as Member, undefined, '/metrics/cluster')).body
        return metricSample(text, series('0.99')) === undefined ? undefined : text
      },
      { what: 'quantiles in /metrics/cluster' },
    )
    // Values 1..100 on each member: p50 is 50 or 51, p99 is 99 or 100, within 1%.
    expect(Math.abs((metricSample(body, series('0.5')) as number) - 50.5)).toBeLessThanOrEqual(
      0.5 + 0.51,
    )
    expect(Math.abs((metricSample(body, series('0.99')) as number) - 99.5)).toBeLessThanOrEqual(
      0.5 + 1,
    )
    expect(metricSample(body, 'chorus_array_members_answered')).toBe(2)
    expect(
      metricSample(body, 'chorus_array_events_total{type="lat.request",severity="info"}'),
    ).toBe(200)
    expect(promtool(body)).toEqual({ status: 0, output: '' })
  })
})

describe('GET /metrics', () => {
  it('counts rollup buckets it found undecodable, and still starts and answers', async () => {
    const config = { ...(await testConfig('corrupt')), listen: ['/ip4/127.0.0.1/tcp/0'] }
    const first = await createMember(config)
    await first.start()
    await post(first, [{ type: 'app.kept', value: 1 }])
    const lastTs = first.log.lastTs
    await first.stop()
    // Damage in the open 10 s bucket of another type: the store reads it at start.
    const db = new RocksLevel(join(config.dataDir, 'chorus', 'store'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    })
    await db.open()
    const batch = db.batch()
    batch.put(rollupKey(0, lastTs - (lastTs % 10_000), 'app.damaged', 1), Buffer.from([0xc1]))
    await batch.write({ sync: true })
    await db.close()
    const member = await createMember(config)
    members.push(member)
    await member.start()
    const { body } = await scrape(member)
    expect(metricSample(body, 'chorus_store_corrupt_buckets_total')).toBe(1)
    expect(promtool(body).status).toBe(0)
    const rollups = await member.app.request('/v1/rollups?from=1h&step=1m&by=type')
    expect(rollups.status).toBe(200)
    const types = ((await rollups.json()) as { series: Array<{ key: { type: string } }> }).series
    expect(types.map((s) => s.key.type)).toEqual(['app.kept'])
  })

  it('counts events by type and severity from the store, across a restart, and passes promtool', async () => {
    const config = await testConfig('metered')
    let member = await createMember(config)
    members.push(member)
    await post(member, [
      { type: 'app.login' },
      { type: 'app.login' },
      { type: 'app.login', severity: 'error' },
    ])
    // A page is counted once it is written, so read it as a client does.
    await (await member.app.request('/v1/events?from=0')).json()
    let scraped = await scrape(member)
    expect(scraped.status).toBe(200)
    expect(scraped.type).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(
      metricSample(scraped.body, 'chorus_events_total{type="app.login",severity="info"}'),
    ).toBe(2)
    expect(
      metricSample(scraped.body, 'chorus_events_total{type="app.login",severity="error"}'),
    ).toBe(1)
    expect(metricSample(scraped.body, 'chorus_ingest_duration_seconds_count')).toBe(1)
    expect(metricSample(scraped.body, 'chorus_ingested_events_total')).toBe(3)
    expect(
      metricSample(
        scraped.body,
        'chorus_query_duration_seconds_count{role="coordinator",kind="events"}',
      ),
    ).toBe(1)
    expect(metricSample(scraped.body, 'chorus_members{state="alive"}')).toBe(1)
    expect(metricSample(scraped.body, 'chorus_store_size_bytes')).toBeGreaterThanOrEqual(0)
    expect(scraped.body).toContain('process_resident_memory_bytes')
    expect(promtool(scraped.body)).toEqual({ status: 0, output: '' })

    await member.stop()
    members.pop()
    member = await createMember(config)
    members.push(member)
    scraped = await scrape(member)
    expect(
      metricSample(scraped.body, 'chorus_events_total{type="app.login",severity="info"}'),
    ).toBe(2)
    expect(metricSample(scraped.body, 'chorus_ingested_events_total')).toBe(0)
  })

  it('speaks OpenMetrics when asked for it', async () => {
    const member = await createMember(await testConfig('open'))
    members.push(member)
    await post(member, [{ type: 'app.x' }])
    const scraped = await scrape(member, 'application/openmetrics-text; version=1.0.0')
    expect(scraped.type).toMatch(/^application\/openmetrics-text/)
    expect(scraped.body.trimEnd().endsWith('# EOF')).toBe(true)
    expect(scraped.body).toContain('chorus_events_total{type="app.x",severity="info"} 1')
  })

  it('caps distinct type labels, sums the rest under "other", and never puts an id in a label', async () => {
    const member = await createMember({ ...(await testConfig('capped')), metricsTypeLimit: 3 })
    members.push(member)
    await post(member, [
      ...Array.from({ length: 5 }, () => ({ type: 'busy.one' })),
      ...Array.from({ length: 4 }, () => ({ type: 'busy.two' })),
      ...Array.from({ length: 3 }, () => ({ type: 'busy.three' })),
      { type: 'rare.one' },
      { type: 'rare.two' },
    ])
    const { body } = await scrape(member)
    const typeLabels = new Set(
      [...body.matchAll(/chorus_events_total\{type="([^"]+)"/g)].map((m) => m[1]),
    )
    expect(typeLabels).toEqual(new Set(['busy.one', 'busy.two', 'busy.three', 'other']))
    expect(metricSample(body, 'chorus_events_total{type="other",severity="info"}')).toBe(2)
    expect(body).not.toMatch(/"[0-9A-HJKMNP-TV-Z]{26}"/)
    expect(promtool(body).status).toBe(0)
  })
})
