// The monitoring examples are true: Prometheus accepts the scrape config, and
// every metric the Grafana dashboard asks for is one a member exports.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import { removeTempDirs, testConfig, waitFor } from '../helpers.ts'

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples')
const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

describe('examples', () => {
  it('prometheus.yml passes promtool check config', () => {
    const result = spawnSync(
      'promtool',
      ['check', 'config', join(EXAMPLES, 'prometheus', 'prometheus.yml')],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    )
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0)
  })

  it('alerts.yml passes promtool check rules, and asks only for metrics that members export', async () => {
    const file = join(EXAMPLES, 'prometheus', 'alerts.yml')
    const result = spawnSync('promtool', ['check', 'rules', file], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0)
    expect(result.stdout).toMatch(/SUCCESS: 4 rules found/)
    const wanted = new Set(
      [...readFileSync(file, 'utf8').matchAll(/\b(chorus_[a-z_]+)\{/g)].map((m) => m[1] as string),
    )
    expect(wanted.size).toBe(4)
    const member = await createMember({
      ...(await testConfig('alerts')),
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
    members.push(member)
    await member.start()
    const exported = `${await (await member.app.request('/metrics')).text()}${await (await member.app.request('/metrics/cluster')).text()}`
    for (const name of wanted) expect(exported, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'))
  })

  it('the Grafana dashboard asks only for metrics that members export', async () => {
    const dashboard = JSON.parse(
      readFileSync(join(EXAMPLES, 'grafana', 'chorus.json'), 'utf8'),
    ) as {
      panels: Array<{ targets: Array<{ expr: string }> }>
    }
    const wanted = new Set(
      dashboard.panels
        .flatMap((p) => p.targets.map((t) => t.expr))
        .flatMap((expr) =>
          [...expr.matchAll(/\b(chorus_[a-z_]+)/g)].map((m) =>
            (m[1] as string).replace(/_bucket$/, ''),
          ),
        ),
    )
    expect(wanted.size).toBeGreaterThan(5)
    const member = await createMember({
      ...(await testConfig('dash')),
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
    members.push(member)
    await member.start()
    await member.app.request('/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ type: 'dash.test', value: 1 }]),
    })
    await (await member.app.request('/v1/events?from=0')).json()
    const own = await (await member.app.request('/metrics')).text()
    const cluster = await waitFor(
      async () => {
        const text = await (await member.app.request('/metrics/cluster')).text()
        return text.includes('chorus_member_up{member="dash"} 1') ? text : undefined
      },
      { what: 'the cluster snapshot' },
    )
    const exported = new Set([...`${own}\n${cluster}`.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]))
    for (const name of wanted) expect(exported, name).toContain(name)
  })
})
