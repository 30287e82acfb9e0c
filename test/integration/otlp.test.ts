// OpenTelemetry logs in: the real OpenTelemetry JS SDK, with its OTLP/HTTP
// exporters (JSON and protobuf, gzip), sends log records to one member; the
// events come back from another with the fields mapped as the README's
// table says. Records that cannot be events are refused one by one
// (partialSuccess), and bodies that are not requests get a google.rpc.Status.

import { gzipSync } from 'node:zlib'
import { SeverityNumber } from '@opentelemetry/api-logs'
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http'
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs'
import protobuf from 'protobufjs'
import { afterEach, describe, expect, it } from 'vitest'
import type { Member } from '../../node/index.ts'
import { DEFAULT_INGEST_LIMITS } from '../../node/ingest/ingest.ts'
import { encodeLogsRequest } from '../../node/ingest/otlp.ts'
import { metricSample, removeTempDirs, startArray } from '../helpers.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

interface Returned {
  type: string
  severity: string
  message?: string
  source?: string
  time?: number
  attrs?: Record<string, string | number | boolean>
  memberName: string
}

async function eventsOf(m: Member, query: string): Promise<Returned[]> {
  const response = await fetch(`${m.url}/v1/events?from=0&limit=1000&${query}`)
  return ((await response.json()) as { events: Returned[] }).events
}

describe('OTLP/HTTP logs from the OpenTelemetry JS SDK', () => {
  it('are stored as events, with the mapped fields, whichever member is asked; JSON and gzip protobuf alike', async () => {
    const array = await startArray(2, { names: ['oa', 'ob'] })
    members.push(...array)
    const [a, b] = array as [Member, Member]
    const exporters = [
      new JsonExporter({ url: `${a.url}/v1/logs` }),
      new ProtoExporter({ url: `${a.url}/v1/logs`, compression: 'gzip' as never }),
    ]
    const at = Date.now() - 60_000
    for (const [i, exporter] of exporters.entries()) {
      const provider = new LoggerProvider({
        resource: resourceFromAttributes({
          'service.name': 'checkout',
          'deployment.environment': 'prod',
        }),
        processors: [new SimpleLogRecordProcessor({ exporter })],
      })
      const logger = provider.getLogger('payments', '1.2.3')
      logger.emit({
        eventName: 'payment.slow',
        severityNumber: SeverityNumber.WARN,
        severityText: 'WARN',
        body: `payment took 3 s (${i})`,
        timestamp: at + i,
        attributes: { 'http.route': '/pay', attempt: 2, retried: true },
      })
      logger.emit({
        severityText: 'Error',
        body: { code: 502, upstream: 'bank' },
        attributes: { region: 'eu' },
      })
      await provider.forceFlush()
      await provider.shutdown()
    }

    const slow = await eventsOf(b, 'type=payment.slow')
    expect(slow).toHaveLength(2)
    expect(slow[0]).toMatchObject({
      type: 'payment.slow',
      severity: 'warn',
      message: 'payment took 3 s (0)',
      source: 'checkout',
      time: at,
      memberName: 'oa',
      attrs: {
        'http.route': '/pay',
        attempt: 2,
        retried: true,
        'scope.name': 'payments',
        'scope.version': '1.2.3',
        'resource.service.name': 'checkout',
        'resource.deployment.environment': 'prod',
      },
    })
    expect(slow[1]?.message).toBe('payment took 3 s (1)')
    // No event name: the service's logs; a structured body as its JSON.
    const errors = await eventsOf(b, 'type=log.checkout')
    expect(
      errors.map((e) => [e.severity, JSON.parse(e.message ?? 'null'), e.attrs?.region]),
    ).toEqual([
      ['error', { code: 502, upstream: 'bank' }, 'eu'],
      ['error', { code: 502, upstream: 'bank' }, 'eu'],
    ])
    const metrics = await (await fetch(`${a.url}/metrics`)).text()
    expect(metricSample(metrics, 'chorus_otlp_log_records_total{outcome="stored"}')).toBe(4)
  })

  it('refuses the records that cannot be events one by one (partialSuccess), keeps what does not fit, and answers a body that is not a request with a Status', async () => {
    const [m] = await startArray(1, {
      names: ['oc'],
      overrides: { ingestLimits: { ...DEFAULT_INGEST_LIMITS, maxEventsPerRequest: 4 } },
    })
    members.push(m as Member)
    const member = m as Member
    const attributes = Array.from({ length: 40 }, (_, i) => ({
      key: `k${i}`,
      value: { stringValue: `v${i}` },
    }))
    const records = [
      { severityNumber: 9, body: { stringValue: 'kept' }, attributes },
      { eventName: 'Order Placed!', body: { stringValue: 'named' } },
      { severityNumber: 17, timeUnixNano: '1700000000000000000', body: { intValue: '7' } },
      { severityText: 'loud', body: { doubleValue: 'NaN' } },
      // Past the 4 records a request may carry: refused, the others kept.
      { body: { stringValue: 'fifth' } },
      { body: { stringValue: 'sixth' } },
    ]
    const request = {
      resourceLogs: [
        {
          resource: {
            attributes: [{ key: 'service.name', value: { stringValue: 'Billing API' } }],
          },
          scopeLogs: [{ logRecords: records }],
        },
      ],
    }
    const post = (body: string | Uint8Array, type: string, encoding?: string) =>
      fetch(`${member.url}/v1/logs`, {
        method: 'POST',
        headers: {
          'content-type': type,
          ...(encoding === undefined ? {} : { 'content-encoding': encoding }),
        },
        body: typeof body === 'string' ? body : new Uint8Array(body),
      })
    const answer = await post(gzipSync(JSON.stringify(request)), 'application/json', 'gzip')
    expect(answer.status).toBe(200)
    const { partialSuccess } = (await answer.json()) as {
      partialSuccess: { rejectedLogRecords: number; errorMessage: string }
    }
    expect(partialSuccess.rejectedLogRecords).toBe(2)
    expect(partialSuccess.errorMessage).toMatch(/log records 4 and after/)
    const kept = await eventsOf(member, 'type=log.billing_api')
    expect(kept.map((e) => [e.message, e.severity])).toEqual([
      ['kept', 'info'],
      ['7', 'error'],
      ['NaN', 'info'],
    ])
    // 32 attributes at most: the record kept with the first that fit, the rest counted.
    expect(Object.keys(kept[0]?.attrs ?? {})).toHaveLength(32)
    expect(kept[0]?.attrs?.k0).toBe('v0')
    expect(kept[1]?.time).toBe(1_700_000_000_000)
    // An event name is made a type.
    expect((await eventsOf(member, 'type=order_placed_'))[0]?.message).toBe('named')
    const metrics = await (await fetch(`${member.url}/metrics`)).text()
    expect(metricSample(metrics, 'chorus_otlp_attributes_dropped_total')).toBe(9)
    expect(metricSample(metrics, 'chorus_otlp_log_records_total{outcome="refused"}')).toBe(2)

    // Not a request: 400 with a google.rpc.Status, JSON or protobuf as asked.
    const status = new protobuf.Type('Status')
      .add(new protobuf.Field('code', 1, 'int32'))
      .add(new protobuf.Field('message', 2, 'string'))
    const garbage = await post(
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]),
      'application/x-protobuf',
    )
    expect(garbage.status).toBe(400)
    expect(garbage.headers.get('content-type')).toBe('application/x-protobuf')
    const decoded = status.toObject(status.decode(new Uint8Array(await garbage.arrayBuffer()))) as {
      code: number
      message: string
    }
    expect(decoded.code).toBe(3)
    expect(decoded.message).toMatch(/not an OTLP logs request/)
    const badJson = await post('{"resourceLogs": [', 'application/json')
    expect(badJson.status).toBe(400)
    expect(((await badJson.json()) as { code: number }).code).toBe(3)
    const wrongType = await post('{}', 'text/plain')
    expect(wrongType.status).toBe(415)
    // A request that would decode past the requests' share of the memory
    // budget (16 MiB here: protobuf takes 26 times its size) is refused
    // before it is decoded.
    const big = encodeLogsRequest({
      resourceLogs: [
        {
          scopeLogs: [
            {
              logRecords: Array.from({ length: 3 }, (_, i) => ({
                body: { stringValue: `${i} ${'x'.repeat(300_000)}` },
              })),
            },
          ],
        },
      ],
    })
    expect(big.byteLength).toBeGreaterThan((16 * 1024 ** 2) / 26)
    const tooBig = await post(big, 'application/x-protobuf')
    expect(tooBig.status).toBe(413)
    // A bomb: 413, as a Status.
    const bomb = await post(
      gzipSync(Buffer.alloc(64 * 1024 * 1024)),
      'application/x-protobuf',
      'gzip',
    )
    expect(bomb.status).toBe(413)
    expect(bomb.headers.get('content-type')).toBe('application/x-protobuf')
  })
})
