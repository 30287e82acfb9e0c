// Server-Sent Events over fetch(): EventSource cannot send the
// Authorization header, so the stream is read with a ReadableStream reader
// and parsed here (messages end at a blank line; fields event, data, id,
// retry; lines starting with ":" are comments). After a cut it reconnects
// with Last-Event-ID, the marks of the last round that moved.

import { authHeaders, showToken } from './core.js'

/** Parses SSE text: feed chunks, get whole messages `{ event, data, id }`. */
export function sseParser(onMessage, onRetry = () => {}) {
  let buffer = ''
  return (chunk) => {
    buffer += chunk
    const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/)
    buffer = blocks.pop() ?? ''
    for (const block of blocks) {
      let event = 'message'
      let id
      const data = []
      for (const line of block.split(/\r\n|\n|\r/)) {
        if (line === '' || line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon === -1 ? line : line.slice(0, colon)
        let value = colon === -1 ? '' : line.slice(colon + 1)
        if (value.startsWith(' ')) value = value.slice(1)
        if (field === 'event') event = value
        else if (field === 'data') data.push(value)
        else if (field === 'id') id = value
        else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value))
      }
      if (data.length > 0 || id !== undefined) onMessage({ event, data: data.join('\n'), id })
    }
  }
}

/**
 * Opens a stream at `url` and keeps it open until `close()`: `onMessage`
 * for each message with data, `onStatus(text)` as it connects, drops and
 * reconnects.
 */
export function openStream(url, { onMessage, onStatus = () => {} }) {
  let lastId
  let retryMs = 2000
  let closed = false
  let controller
  let timer

  async function connect() {
    controller = new AbortController()
    const headers = { ...authHeaders(), accept: 'text/event-stream' }
    if (lastId) headers['last-event-id'] = lastId
    try {
      const response = await fetch(url, { headers, signal: controller.signal })
      if (response.status === 401 || response.status === 403) {
        showToken(response.status)
        onStatus('stopped: a read token is needed')
        return
      }
      if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`)
      onStatus('live')
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      const feed = sseParser(
        (m) => {
          if (m.id) lastId = m.id
          if (m.data !== '') onMessage(m)
        },
        (ms) => {
          retryMs = ms
        },
      )
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        feed(value)
      }
      if (!closed) throw new Error('stream ended')
    } catch (err) {
      if (closed) return
      onStatus(`cut (${err.message}); reconnecting in ${Math.round(retryMs / 1000)} s`)
      timer = setTimeout(connect, retryMs)
    }
  }
  connect()
  return {
    close() {
      closed = true
      clearTimeout(timer)
      controller?.abort()
    },
  }
}
