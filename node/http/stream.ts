// Answers written to the socket as they are produced: a page's JSON (the
// same bytes as one JSON.stringify of the page) and an export's NDJSON.
// Each is a pull stream: the next chunk is made only when the socket has
// taken the last one, so a slow reader slows the merge, and through it the
// members' scans (the slice protocol's credit), instead of filling memory.

import type { ChorusEvent } from '../event/event.ts'
import type { PageStream } from '../query/coordinator.ts'
import type { ExportEnd } from '../query/export.ts'

/** Bytes gathered before a chunk is handed to the socket. */
const CHUNK_BYTES = 64 * 1024
/**
 * Chunks made ahead of the socket: the merge works while the socket
 * writes, and a stalled reader holds at most this many (256 KiB).
 */
const CHUNKS_AHEAD = 4

/**
 * A byte stream of text parts pulled from `next` (undefined: the end),
 * gathered into chunks of about CHUNK_BYTES. `finish` runs once, when the
 * stream ends, fails or is cancelled (the client went away).
 */
function textStream(
  next: () => Promise<string | undefined>,
  cancel: () => Promise<void>,
  finish: (outcome: 'done' | 'failed' | 'cancelled', err?: unknown) => void,
): ReadableStream<Uint8Array> {
  let finished = false
  const end = (outcome: 'done' | 'failed' | 'cancelled', err?: unknown) => {
    if (finished) return
    finished = true
    finish(outcome, err)
  }
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          let text = ''
          for (;;) {
            const part = await next()
            if (part === undefined) {
              if (text !== '') controller.enqueue(Buffer.from(text))
              controller.close()
              end('done')
              return
            }
            text += part
            if (text.length >= CHUNK_BYTES) break
          }
          controller.enqueue(Buffer.from(text))
        } catch (err) {
          // Headers are sent: the client sees a cut answer (and the log says why).
          controller.error(err)
          await cancel().catch(() => {})
          end('failed', err)
        }
      },
      async cancel() {
        await cancel().catch(() => {})
        end('cancelled')
      },
    },
    { highWaterMark: CHUNKS_AHEAD },
  )
}

/** Renders events as a JSON list's items, each as JSON.stringify has it. */
function eventsText(events: readonly ChorusEvent[], first: boolean): string {
  let text = ''
  for (const [i, event] of events.entries())
    text += (first && i === 0 ? '' : ',') + JSON.stringify(event)
  return text
}

/**
 * A page as JSON, `{"events":[…],"firstId":…,…}`, exactly the shape of the
 * ResultPage object, written as its events are merged.
 */
export function pageJson(
  page: PageStream,
  finish: (outcome: 'done' | 'failed' | 'cancelled', err?: unknown) => void,
): ReadableStream<Uint8Array> {
  const events = page.events[Symbol.asyncIterator]()
  let state: 'head' | 'events' | 'end' = 'head'
  let first = true
  return textStream(
    async () => {
      if (state === 'head') {
        state = 'events'
        return '{"events":['
      }
      if (state === 'end') return undefined
      const next = await events.next()
      if (next.done === true) {
        state = 'end'
        // The trailer's own JSON, its opening brace replaced by the list's end.
        return `],${JSON.stringify(page.trailer()).slice(1)}`
      }
      const text = eventsText(next.value, first)
      if (next.value.length > 0) first = false
      return text
    },
    () => page.close(),
    finish,
  )
}

/**
 * An object already in memory as JSON, the items of its list `key` written
 * one at a time, so that no string of the whole answer is ever made; the
 * bytes are those of JSON.stringify(object). For answers made whole but
 * possibly large (a rollup of 100,000 cells).
 */
export function objectJson<T extends object>(
  object: T,
  key: keyof T & string,
): ReadableStream<Uint8Array> {
  const entries = Object.entries(object).filter(([, value]) => value !== undefined)
  let at = 0
  let items: unknown[] | undefined
  let item = 0
  return textStream(
    async () => {
      if (items !== undefined) {
        if (item < items.length) {
          const text = (item === 0 ? '' : ',') + JSON.stringify(items[item] ?? null)
          item++
          return text
        }
        items = undefined
        return ']'
      }
      if (at > entries.length) return undefined
      if (at === entries.length) {
        at++
        return '}'
      }
      const [name, value] = entries[at] as [string, unknown]
      const head = `${at === 0 ? '{' : ','}${JSON.stringify(name)}:`
      at++
      if (name === key && Array.isArray(value)) {
        items = value
        item = 0
        return `${head}[`
      }
      return head + JSON.stringify(value)
    },
    async () => {},
    () => {},
  )
}

/** An export as NDJSON: one event a line, then `{"end": {…}}`; `first` is what `chunks` gave already. */
export function exportNdjson(
  chunks: AsyncGenerator<ChorusEvent[], ExportEnd, undefined>,
  first: IteratorResult<ChorusEvent[], ExportEnd>,
  finish: (outcome: 'done' | 'failed' | 'cancelled', err?: unknown) => void,
): ReadableStream<Uint8Array> {
  let ended = false
  let taken: IteratorResult<ChorusEvent[], ExportEnd> | undefined = first
  return textStream(
    async () => {
      if (ended) return undefined
      const next = taken ?? (await chunks.next())
      taken = undefined
      if (next.done === true) {
        ended = true
        return `${JSON.stringify({ end: next.value })}\n`
      }
      let text = ''
      for (const event of next.value) text += `${JSON.stringify(event)}\n`
      return text
    },
    async () => {
      await chunks.return(undefined as never)
    },
    finish,
  )
}

/**
 * The same response, but `done` runs once its body is read to the end,
 * fails or is cancelled (a bodiless response: at once). A middleware that
 * holds something for a request (a query slot) keeps it while the answer
 * streams, not only until the handler returns.
 */
export function afterBody(res: Response, done: () => void): Response {
  if (res.body === null) {
    done()
    return res
  }
  const reader = res.body.getReader()
  let finished = false
  const finish = () => {
    if (finished) return
    finished = true
    done()
  }
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await reader.read()
          if (next.done) {
            finish()
            controller.close()
          } else {
            controller.enqueue(next.value)
          }
        } catch (err) {
          finish()
          controller.error(err)
        }
      },
      async cancel(reason) {
        finish()
        await reader.cancel(reason)
      },
    },
    { highWaterMark: 0 },
  )
  return new Response(body, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  })
}
