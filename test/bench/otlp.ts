// The `otlp` part of npm run bench: one member takes the same records as
// native NDJSON (POST /v1/events) and as OTLP protobuf, gzip-encoded
// (POST /v1/logs), in 1,000-record requests from 2 clients, alternating
// rounds so the machine's load falls on both alike: events/s of each and
// their ratio, and the bytes each request sends.

import { gzipSync } from 'node:zlib'
import { encodeLogsRequest } from '../../node/ingest/otlp.ts'
import { sampleEvent, startBenchMember, summary } from './lib.ts'

const SEVERITY_NUMBER: Record<string, number> = { debug: 5, info: 9, warn: 13, error: 17 }

/** The 1,000 records of sampleEvent as an OTLP request: one resource per source, as an SDK sends them. */
function otlpRequest(): Uint8Array {
  const bySource = new Map<string, unknown[]>()
  for (let i = 0; i < 1000; i++) {
    const e = JSON.parse(sampleEvent(i)) as {
      type: string
      severity: string
      message: string
      source: string
      value: number
      attrs: Record<string, string | number>
    }
    const records = bySource.get(e.source) ?? []
    bySource.set(e.source, records)
    records.push({
      timeUnixNano: `${Date.now()}000000`,
      eventName: e.type,
      severityNumber: SEVERITY_NUMBER[e.severity],
      body: { stringValue: e.message },
      attributes: [
        { key: 'value', value: { intValue: e.value } },
        ...Object.entries(e.attrs).map(([key, v]) => ({
          key,
          value: typeof v === 'number' ? { intValue: v } : { stringValue: v },
        })),
      ],
    })
  }
  return encodeLogsRequest({
    resourceLogs: [...bySource].map(([source, logRecords]) => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: source } }] },
      scopeLogs: [{ scope: { name: 'bench' }, logRecords }],
    })),
  })
}

async function send(
  url: string,
  total: number,
  headers: Record<string, string>,
  body: Uint8Array | string,
) {
  let sent = 0
  const latencies: number[] = []
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      while (sent < total) {
        sent += 1000
        const s = performance.now()
        const r = await fetch(url, {
          method: 'POST',
          headers,
          body: typeof body === 'string' ? body : new Uint8Array(body),
        })
        await r.arrayBuffer()
        if (r.status !== 201 && r.status !== 200) throw new Error(`${url} answered ${r.status}`)
        latencies.push(performance.now() - s)
      }
    }),
  )
  return { events: sent, seconds: (performance.now() - t0) / 1000, latencies }
}

export async function otlpBench(total: number, rounds = 3) {
  const member = await startBenchMember('otlp')
  try {
    const ndjson = Array.from({ length: 1000 }, (_, i) => sampleEvent(i)).join('\n')
    const proto = gzipSync(otlpRequest())
    const totals = {
      native: { events: 0, seconds: 0, latencies: [] as number[] },
      otlp: { events: 0, seconds: 0, latencies: [] as number[] },
    }
    const per = Math.max(1000, Math.round(total / rounds / 1000) * 1000)
    for (let r = 0; r < rounds; r++) {
      const native = await send(
        `${member.url}/v1/events`,
        per,
        { 'content-type': 'application/x-ndjson' },
        ndjson,
      )
      const otlp = await send(
        `${member.url}/v1/logs`,
        per,
        { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' },
        proto,
      )
      for (const [kind, run] of [
        ['native', native],
        ['otlp', otlp],
      ] as const) {
        totals[kind].events += run.events
        totals[kind].seconds += run.seconds
        totals[kind].latencies.push(...run.latencies)
      }
    }
    const rate = (k: keyof typeof totals) => Math.round(totals[k].events / totals[k].seconds)
    return {
      native: {
        eventsPerS: rate('native'),
        p99: summary(totals.native.latencies).p99,
        requestBytes: Buffer.byteLength(ndjson),
      },
      otlp: {
        eventsPerS: rate('otlp'),
        p99: summary(totals.otlp.latencies).p99,
        requestBytes: proto.byteLength,
      },
      ratio: Math.round((rate('otlp') / rate('native')) * 100) / 100,
    }
  } finally {
    await member.stop()
  }
}
