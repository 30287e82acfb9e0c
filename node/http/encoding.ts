// Request bodies their senders compressed (`Content-Encoding: gzip`, which
// shippers and OpenTelemetry exporters use by default, `deflate`, or `zstd`
// where the runtime has it), decoded before the route reads them. The
// ingest limit applies to the decoded bytes, counted as they come, so a
// small body that inflates past it (a "zip bomb") is refused with 413 once
// the limit is reached, never held whole; and the decoded bytes take their
// share of the requests' memory budget as they grow.

import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import type { MiddlewareHandler } from 'hono'
import {
  BusyError,
  ChorusError,
  InvalidInputError,
  LimitExceededError,
  UnsupportedMediaTypeError,
} from '../errors.ts'
import { BODY_HEAP_FACTOR, type MemoryGate } from '../memory.ts'

type Decompressor = () => NodeJS.ReadWriteStream

const zstd = (zlib as { createZstdDecompress?: Decompressor }).createZstdDecompress

/** The content codings taken, and how each is undone. */
const DECODERS: ReadonlyMap<string, Decompressor> = new Map<string, Decompressor>([
  ['gzip', () => zlib.createGunzip()],
  ['x-gzip', () => zlib.createGunzip()],
  ['deflate', () => zlib.createInflate()],
  ...(zstd === undefined ? [] : [['zstd', zstd] as [string, Decompressor]]),
])

/** The codings a request may name, for errors and the README. */
export const CONTENT_ENCODINGS = ['identity', ...DECODERS.keys()].filter((c) => c !== 'x-gzip')

/** Whether `err` is zlib's (or zstd's) complaint about the compressed bytes. */
function isCodecError(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ZSTD_'))
}

/**
 * Decodes a compressed request body before the route reads it, at most
 * `maxBytes` once decoded; the decoded bytes are taken from `gate` (the
 * requests' share of the memory budget) until the request is answered.
 */
export function decodeBody(maxBytes: number, gate?: MemoryGate): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header('content-encoding')
    if (header === undefined) return next()
    const codings = header
      .split(',')
      .map((p) => p.trim().toLowerCase())
      .filter((p) => p !== '' && p !== 'identity')
    if (codings.length === 0) return next()
    const decoder = codings.length === 1 ? DECODERS.get(codings[0] as string) : undefined
    if (decoder === undefined)
      throw new UnsupportedMediaTypeError(
        `content encoding ${JSON.stringify(header.slice(0, 100))} is not accepted; send one of ${CONTENT_ENCODINGS.join(', ')}`,
        [{ field: 'content-encoding', message: `one of ${CONTENT_ENCODINGS.join(', ')}` }],
      )
    const coding = codings[0] as string
    const body = c.req.raw.body
    if (body === null) return next()
    let held = 0
    const declared = Number(c.req.header('content-length'))
    const sent = Number.isSafeInteger(declared) && declared > 0 ? declared * BODY_HEAP_FACTOR : 0
    try {
      const chunks: Buffer[] = []
      let total = 0
      try {
        const inflating = Readable.fromWeb(body as never).pipe(decoder())
        for await (const chunk of inflating as AsyncIterable<Buffer>) {
          total += chunk.byteLength
          if (total > maxBytes)
            throw new LimitExceededError(
              `the body is larger than ${maxBytes} bytes once decoded (${coding}); nothing was stored`,
              [{ field: 'body', message: `at most ${maxBytes} bytes once decoded` }],
            )
          if (gate !== undefined) {
            const cost = chunk.byteLength * BODY_HEAP_FACTOR
            // What this request holds already (its body as sent, and decoded so far)
            // and more past the whole share: it could never be held, too large, not busy.
            if (sent + held + cost > gate.limit)
              throw new LimitExceededError(
                `the body is larger than this member's requests may hold once decoded (${coding}); nothing was stored`,
                [
                  {
                    field: 'body',
                    message: `at most ${Math.floor(gate.limit / BODY_HEAP_FACTOR)} bytes once decoded`,
                  },
                ],
              )
            if (!gate.tryTake(cost))
              throw new BusyError(
                `this member's requests in flight hold their whole share of its memory budget (${gate.limit} bytes); nothing was stored; retry in 1s`,
              )
            held += cost
          }
          chunks.push(chunk)
        }
      } catch (err) {
        if (err instanceof ChorusError || !isCodecError(err)) throw err
        throw new InvalidInputError(
          `the body is not valid ${coding} (${err.message || err.code}); nothing was stored`,
          [{ field: 'body', message: `not valid ${coding}` }],
        )
      }
      const headers = new Headers(c.req.raw.headers)
      headers.delete('content-encoding')
      headers.set('content-length', String(total))
      c.req.raw = new Request(c.req.raw.url, {
        method: c.req.raw.method,
        headers,
        body: Buffer.concat(chunks, total),
        signal: c.req.raw.signal,
      })
      await next()
    } finally {
      gate?.give(held)
    }
  }
}
