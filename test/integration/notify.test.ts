// Health out: rules that fire and clear reach a real Alertmanager (Debian's
// prometheus-alertmanager, started here on loopback with its own config and
// data dir) and webhooks. One member sends each array-level alert, and
// another takes it on when that one dies; a webhook that hangs or fails
// never holds up ingest or health evaluation, and its queue is bounded.

import { type ChildProcess, spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Member } from '../../node/index.ts'
import { createMember } from '../../node/index.ts'
import {
  metricSample,
  putTriggerRule,
  removeTempDirs,
  startArray,
  stateOf,
  tempDir,
  testConfig,
  waitFor,
} from '../helpers.ts'

const members: Member[] = []
const servers: Server[] = []
const children: ChildProcess[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise((resolve) => s.close(resolve))
  }
  for (const child of children.splice(0)) {
    if (child.exitCode !== null) continue
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
  }
  await removeTempDirs()
})

/** A local HTTP endpoint: `handle` answers each request; `received` keeps every body and its headers. */
async function endpoint(handle: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const received: Array<{ body: string; headers: IncomingMessage['headers'] }> = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => {
      body += d.toString()
    })
    req.on('end', () => {
      received.push({ body, headers: req.headers })
      handle(req, res, body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  servers.push(server)
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received }
}

/** Metric `series` of a member's /metrics (0 when absent). */
async function metric(m: Member, series: string): Promise<number> {
  return metricSample(await (await m.app.request('/metrics')).text(), series) ?? 0
}

async function trigger(m: Member) {
  const response = await m.app.request('/v1/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"type":"test.trigger"}',
  })
  expect(response.status).toBe(201)
}

describe('webhooks', () => {
  it('get each transition of a rule as signed JSON: firing, then resolved', async () => {
    const hook = await endpoint((_req, res) => res.end('ok'))
    const secretFile = join(await tempDir(), 'secret')
    await writeFile(secretFile, 'a-webhook-secret-of-some-length\n')
    let now = Date.now()
    const base = await testConfig('hooked')
    const m = await createMember(
      {
        ...base,
        notify: {
          ...base.notify,
          webhooks: [hook.url],
          webhookSecret: 'a-webhook-secret-of-some-length',
          arrayName: 'prod',
        },
      },
      { clock: () => now },
    )
    members.push(m)
    await m.start()
    await putTriggerRule(m, 0.5)
    await trigger(m)
    await m.health.evaluate()
    await waitFor(() => hook.received.length >= 1, { what: 'the firing message' })
    const firing = hook.received[0] as (typeof hook.received)[number]
    const expected = createHmac('sha256', 'a-webhook-secret-of-some-length')
      .update(firing.body)
      .digest('hex')
    expect(firing.headers['chorus-signature']).toBe(`sha256=${expected}`)
    expect(JSON.parse(firing.body)).toMatchObject({
      version: 1,
      status: 'firing',
      array: 'prod',
      member: m.name,
      rule: 'trigger',
      state: 'warning',
      value: 1,
      labels: {
        alertname: 'ChorusHealthRule',
        rule: 'trigger',
        severity: 'warning',
        array: 'prod',
      },
    })

    // The trigger event leaves the rule's window: the rule clears.
    now += 5 * 60_000
    await m.health.evaluate()
    await waitFor(() => hook.received.length >= 2, { what: 'the resolved message' })
    expect(JSON.parse((hook.received[1] as { body: string }).body)).toMatchObject({
      status: 'resolved',
      rule: 'trigger',
    })
    expect(
      await metric(m, 'chorus_notifications_total{kind="webhook",scope="member",outcome="sent"}'),
    ).toBe(2)
  })

  it('that hang or fail never hold up ingest or evaluation, and their queue is bounded, drops counted', async () => {
    const hanging = await endpoint(() => {}) // never answers
    const failing = await endpoint((_req, res) => {
      res.statusCode = 500
      res.end()
    })
    let now = Date.now()
    const base = await testConfig('stuck')
    const m = await createMember(
      { ...base, notify: { ...base.notify, webhooks: [hanging.url, failing.url] } },
      { clock: () => now, notifyQueueSize: 2, notifyTimeoutMs: 60_000 },
    )
    members.push(m)
    await m.start()
    await putTriggerRule(m, 0.5)
    // Five times firing then resolved: ten messages for each webhook.
    for (let round = 0; round < 5; round++) {
      const started = performance.now()
      await trigger(m)
      await m.health.evaluate()
      now += 5 * 60_000
      await m.health.evaluate()
      // Ingest and evaluation took no notice of the stuck webhook.
      expect(performance.now() - started).toBeLessThan(5000)
    }
    await waitFor(() => hanging.received.length >= 1, { what: 'the hanging webhook asked' })
    // The hanging one holds its first message; of the nine others, two wait, seven were dropped.
    expect(
      await metric(
        m,
        'chorus_notifications_total{kind="webhook",scope="member",outcome="dropped"}',
      ),
    ).toBeGreaterThanOrEqual(7)
    expect(hanging.received).toHaveLength(1)
    // The failing one was asked again (5xx is retried), and never more than the attempts allow.
    await waitFor(() => failing.received.length >= 2, { what: 'a retry of the failing webhook' })
    // Stopping does not wait for the hanging request (60 s) nor the back-off of the failing one.
    const stopping = performance.now()
    await m.stop()
    members.splice(members.indexOf(m), 1)
    expect(performance.now() - stopping).toBeLessThan(20_000)
  })
})

/** Starts Debian's Alertmanager on a free loopback port, clustering off; resolves to its URL. */
async function startAlertmanager(): Promise<string> {
  const dir = await tempDir()
  const config = join(dir, 'alertmanager.yml')
  await writeFile(
    config,
    [
      'route:',
      '  receiver: nowhere',
      '  group_wait: 1s',
      'receivers:',
      '  - name: nowhere',
      '',
    ].join('\n'),
  )
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as AddressInfo).port
  await new Promise((resolve) => probe.close(resolve))
  const child = spawn(
    'prometheus-alertmanager',
    [
      `--config.file=${config}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  await waitFor(
    async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200,
    { timeoutMs: 20_000, what: 'Alertmanager ready' },
  )
  return url
}

interface AmAlert {
  labels: Record<string, string>
  endsAt: string
  status: { state: string }
}

async function alertsOf(url: string): Promise<AmAlert[]> {
  return (await (await fetch(`${url}/api/v2/alerts`)).json()) as AmAlert[]
}

describe('Alertmanager', () => {
  it('gets an alert whose send was given up again at the next look, not a resend interval later', async () => {
    // Refuses the first post (a 4xx is not retried), then takes them.
    const am = await endpoint((_req, res) => {
      res.statusCode = am.received.length === 1 ? 400 : 200
      res.end()
    })
    let now = Date.now()
    const base = await testConfig('refused')
    const m = await createMember(
      { ...base, notify: { ...base.notify, alertmanagers: [am.url.replace(/\/hook$/, '')] } },
      { clock: () => now },
    )
    members.push(m)
    await m.start()
    await putTriggerRule(m, 0.5)
    await trigger(m)
    await m.health.evaluate()
    const failed = 'chorus_notifications_total{kind="alertmanager",scope="member",outcome="failed"}'
    await waitFor(async () => (await metric(m, failed)) === 1, {
      what: 'the refused send given up',
    })
    // A second later by the member's clock, well inside the 60 s resend interval.
    now += 1000
    await m.health.evaluate()
    await waitFor(() => am.received.length >= 2, { what: 'the alert sent again' })
    expect(JSON.parse((am.received[1] as { body: string }).body)[0].labels.rule).toBe('trigger')
    await waitFor(
      async () =>
        (await metric(
          m,
          'chorus_notifications_total{kind="alertmanager",scope="member",outcome="sent"}',
        )) === 1,
      { what: 'the second send counted' },
    )
  })

  it('gets a member rule that fires, and sees it resolved when it clears', async () => {
    const am = await startAlertmanager()
    let now = Date.now()
    const base = await testConfig('alerting')
    const m = await createMember(
      { ...base, notify: { ...base.notify, alertmanagers: [am] } },
      { clock: () => now, notifyResendMs: 1000 },
    )
    members.push(m)
    await m.start()
    await putTriggerRule(m, 0.5)
    await trigger(m)
    await m.health.evaluate()
    const firing = await waitFor(
      async () => (await alertsOf(am)).find((a) => a.labels.rule === 'trigger'),
      { timeoutMs: 15_000, what: 'the alert in Alertmanager' },
    )
    expect(firing.labels).toEqual({
      alertname: 'ChorusHealthRule',
      rule: 'trigger',
      severity: 'warning',
      array: 'chorus',
      member: m.name,
    })
    expect(firing.status.state).toBe('active')
    now += 5 * 60_000
    await m.health.evaluate()
    await waitFor(
      async () => {
        const alert = (await alertsOf(am)).find((a) => a.labels.rule === 'trigger')
        return alert === undefined || Date.parse(alert.endsAt) <= Date.now()
      },
      { timeoutMs: 15_000, what: 'the alert resolved' },
    )
  })

  it('gets each array-level alert from one member only, and from another once that one dies', {
    timeout: 150_000,
  }, async () => {
    const am = await startAlertmanager()
    const array = await startArray(3, {
      names: ['aa', 'ab', 'ac'],
      overrides: {
        notify: { alertmanagers: [am], webhooks: [], arrayName: 'chorus' },
      },
      // Sent again every second while it fires: a send that failed is not
      // left to the next minute.
      init: { notifyResendMs: 1000 },
    })
    members.push(...array)
    const [, , c] = array as [Member, Member, Member]
    // ac goes silent: member-down fires on the other two.
    await c.mesh.stop({ leaving: false })
    const rest = array.filter((m) => m !== c)
    const sent = (m: Member) =>
      metric(m, 'chorus_notifications_total{kind="alertmanager",scope="array",outcome="sent"}')
    // One of the two sends it (its counter counts what Alertmanager took).
    await waitFor(async () => (await Promise.all(rest.map(sent))).some((n) => n > 0), {
      timeoutMs: 45_000,
      what: 'a member sending the array alert',
    })
    const arrayAlerts = (await alertsOf(am)).filter(
      (a) => a.labels.alertname === 'ChorusArrayHealthRule',
    )
    expect(arrayAlerts.map((a) => a.labels.rule)).toContain('member-down')
    for (const a of arrayAlerts) expect(a.labels.member).toBeUndefined()
    const senders = []
    for (const m of rest) if ((await sent(m)) > 0) senders.push(m)
    expect(senders).toHaveLength(1)

    // The sender dies too: the one left takes the alert on.
    const [sender] = senders as [Member]
    const survivor = rest.find((m) => m !== sender) as Member
    await sender.mesh.stop({ leaving: false })
    await waitFor(() => stateOf(survivor, sender.name) !== 'alive', {
      timeoutMs: 40_000,
      what: 'the sender no longer alive at the survivor',
    })
    await waitFor(async () => (await sent(survivor)) > 0, {
      timeoutMs: 40_000,
      what: 'the survivor sending the array alerts',
    })
    const still = (await alertsOf(am)).filter((a) => a.labels.alertname === 'ChorusArrayHealthRule')
    expect(still.map((a) => a.labels.rule)).toContain('member-down')
  })
})
