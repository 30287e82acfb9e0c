// Reading Server-Sent Events (GET /v1/events/stream) off a response body,
// for clients of the live stream: `chorus query --follow` and the tests.
// Only the fields the stream sends are read: event, data and id.

/** One message: its type (`message` when it names none), its data, and the id it sets, if any. */
export interface SseMessage {
  type: string
  data: string
  id?: string
}

/**
 * The messages of an SSE body, in batches as they complete (a message ends
 * at a blank line). Comments and `retry:` lines are skipped; a message that
 * only sets an id comes with empty data.
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage[]> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      buffer += decoder.decode(value, { stream: true })
      const messages: SseMessage[] = []
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const message: SseMessage = { type: 'message', data: '' }
        for (const line of buffer.slice(0, end).split('\n')) {
          if (line.startsWith('event: ')) message.type = line.slice(7)
          else if (line.startsWith('data: ')) message.data += line.slice(6)
          else if (line.startsWith('id: ')) message.id = line.slice(4)
        }
        buffer = buffer.slice(end + 2)
        if (message.data !== '' || message.id !== undefined) messages.push(message)
      }
      if (messages.length > 0) yield messages
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
}
