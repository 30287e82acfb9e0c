// Sending logs to chorus from an application with the OpenTelemetry JS SDK:
// OTLP/HTTP, protobuf, gzip, to any member's /v1/logs, with an ingest token.
//
//   npm install @opentelemetry/api-logs @opentelemetry/sdk-logs \
//     @opentelemetry/exporter-logs-otlp-proto @opentelemetry/resources
//   CHORUS_URL=http://127.0.0.1:7700 CHORUS_TOKEN=<ingest token> node send-logs.ts
//
// Each record becomes one event (the README's mapping table): the event
// name its type, the severity its severity, the body its message, the
// service.name its source, the attributes its attrs.

import { SeverityNumber } from '@opentelemetry/api-logs'
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs'

const url = process.env.CHORUS_URL ?? 'http://127.0.0.1:7700'
const token = process.env.CHORUS_TOKEN

const exporter = new OTLPLogExporter({
  url: `${url}/v1/logs`,
  compression: 'gzip' as never, // CompressionAlgorithm.GZIP
  headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
})
const provider = new LoggerProvider({
  resource: resourceFromAttributes({ 'service.name': 'checkout', 'service.version': '2.4.1' }),
  processors: [new BatchLogRecordProcessor({ exporter })],
})
const logger = provider.getLogger('checkout.payments', '2.4.1')

logger.emit({
  eventName: 'payment.declined',
  severityNumber: SeverityNumber.WARN,
  body: 'card declined by the issuer',
  attributes: { 'payment.provider': 'acme', amount: 42.5, retried: false },
})
logger.emit({
  severityNumber: SeverityNumber.ERROR,
  body: { error: 'upstream timeout', upstream: 'bank', after_ms: 3000 },
})

// Sends what is batched before the process ends.
await provider.shutdown()
process.stdout.write('sent 2 log records\n')
