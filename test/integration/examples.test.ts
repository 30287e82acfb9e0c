// The monitoring examples are true: Prometheus accepts the scrape config, and
// every metric the Grafana dashboard asks for is one a member exports.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { createMember, type Member } from '../../node/index.ts'
import { encodeLogsRequest } from '../../node/ingest/otlp.ts'
import { removeTempDirs, testConfig, waitFor } from '../helpers.ts'
import { runNode } from '../process/harness.ts'

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
    expect(result.stdout).toMatch(/SUCCESS: 5 rules found/)
    const wanted = new Set(
      [...readFileSync(file, 'utf8').matchAll(/\b(chorus_[a-z_]+)\{/g)].map((m) => m[1] as string),
    )
    expect(wanted.size).toBe(6)
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

  describe('recipes for sending events', () => {
    const TOKEN = 'ingest-token-for-the-recipes-0123456789'
    async function tokenMember() {
      const member = await createMember({
        ...(await testConfig('recipes')),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        tokens: [
          { scope: 'ingest', token: TOKEN },
          { scope: 'read', token: 'read-token-for-the-recipes-0123456789' },
        ],
      })
      members.push(member)
      await member.start()
      return member
    }
    const read = async (m: Member, query: string) =>
      (
        (await (
          await fetch(`${m.url}/v1/events?from=0&${query}`, {
            headers: { authorization: 'Bearer read-token-for-the-recipes-0123456789' },
          })
        ).json()) as { events: Array<{ type: string; message?: string; source?: string }> }
      ).events

    it('the OpenTelemetry JS SDK snippet runs and its records arrive as events', async () => {
      const m = await tokenMember()
      // Not spawnSync: the member answering it runs in this process.
      const { code, stdout, stderr } = await runNode([join(EXAMPLES, 'otel', 'send-logs.ts')], {
        env: { CHORUS_URL: m.url, CHORUS_TOKEN: TOKEN },
        timeoutMs: 30_000,
      })
      expect(code, stderr).toBe(0)
      expect(stdout).toBe('sent 2 log records\n')
      const declined = await read(m, 'type=payment.declined')
      expect(declined).toMatchObject([
        { source: 'checkout', message: 'card declined by the issuer' },
      ])
      expect(await read(m, 'type=log.checkout')).toHaveLength(1)
    })

    it('the Collector, Vector and Fluent Bit configs send to routes a member takes, with the token, as they are written', async () => {
      const m = await tokenMember()
      const { port } = new URL(m.url)
      const gzip = (body: Uint8Array | string) => new Uint8Array(gzipSync(body))
      const otlp = gzip(
        encodeLogsRequest({
          resourceLogs: [
            {
              resource: {
                attributes: [{ key: 'service.name', value: { stringValue: 'shipped' } }],
              },
              scopeLogs: [{ logRecords: [{ body: { stringValue: 'via a shipper' } }] }],
            },
          ],
        }),
      )
      const asWritten = (text: string) =>
        text
          .replaceAll('127.0.0.1:7700', `127.0.0.1:${port}`)
          .replace(/\bPort\s+7700\b/, `Port ${port}`)
      const withToken = (header: string) => header.replace(/\$\{(env:)?CHORUS_TOKEN\}/, TOKEN)

      // The Collector's otlphttp exporter posts protobuf, gzip, to <endpoint>/v1/logs.
      const collector = parseYaml(
        asWritten(readFileSync(join(EXAMPLES, 'otel', 'collector.yaml'), 'utf8')),
      ) as {
        exporters: Record<
          string,
          { endpoint: string; compression: string; headers: Record<string, string> }
        >
        service: { pipelines: { logs: { exporters: string[] } } }
      }
      const exporter = collector.exporters['otlphttp/chorus']
      expect(collector.service.pipelines.logs.exporters).toEqual(['otlphttp/chorus'])
      expect(exporter?.compression).toBe('gzip')
      const fromCollector = await fetch(`${exporter?.endpoint}/v1/logs`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-protobuf',
          'content-encoding': 'gzip',
          authorization: withToken(exporter?.headers.Authorization ?? ''),
        },
        body: otlp,
      })
      expect(fromCollector.status).toBe(200)

      // Vector's http sink: NDJSON of the remapped events, gzip, to its uri.
      const vector = parseYaml(
        asWritten(readFileSync(join(EXAMPLES, 'vector', 'vector.yaml'), 'utf8')),
      ) as {
        sinks: {
          chorus: {
            uri: string
            compression: string
            encoding: { codec: string }
            framing: { method: string }
            request: { headers: Record<string, string> }
          }
        }
      }
      const sink = vector.sinks.chorus
      expect([sink.compression, sink.encoding.codec, sink.framing.method]).toEqual([
        'gzip',
        'json',
        'newline_delimited',
      ])
      const remapped = [
        {
          type: 'log.app',
          severity: 'info',
          message: 'one',
          source: 'web-1',
          attrs: { file: 'a.log' },
        },
        {
          type: 'log.app',
          severity: 'info',
          message: 'two',
          source: 'web-1',
          attrs: { file: 'a.log' },
        },
      ]
      const fromVector = await fetch(sink.uri, {
        method: 'POST',
        headers: {
          'content-type': sink.request.headers['Content-Type'] ?? '',
          'content-encoding': 'gzip',
          authorization: withToken(sink.request.headers.Authorization ?? ''),
        },
        body: gzip(remapped.map((e) => JSON.stringify(e)).join('\n')),
      })
      expect(fromVector.status).toBe(201)

      // Fluent Bit's opentelemetry output: protobuf, gzip, to Host:Port + Logs_uri.
      const conf = asWritten(readFileSync(join(EXAMPLES, 'fluent-bit', 'fluent-bit.conf'), 'utf8'))
      const setting = (name: string) =>
        new RegExp(`^\\s*${name}\\s+(.+)$`, 'mi').exec(conf)?.[1]?.trim() ?? ''
      expect(setting('compress')).toBe('gzip')
      const [headerName, ...headerValue] = setting('Header').split(/\s+/)
      const fromFluentBit = await fetch(
        `http://${setting('Host')}:${setting('Port')}${setting('Logs_uri')}`,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/x-protobuf',
            'content-encoding': 'gzip',
            [headerName as string]: withToken(headerValue.join(' ')),
          },
          body: otlp,
        },
      )
      expect(fromFluentBit.status).toBe(200)

      expect((await read(m, 'type=log.shipped')).map((e) => e.message)).toEqual([
        'via a shipper',
        'via a shipper',
      ])
      expect((await read(m, 'type=log.app')).map((e) => e.message)).toEqual(['one', 'two'])
    })
  })
})
