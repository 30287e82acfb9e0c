// /chorus/lookup/2: one event by id from its owner, as it stores it.
//
//   lookup request [5, id(16)]
//   lookup reply   [6, event|null]  (an event as in a batch)

import * as frame from './framing.ts'
import {
  answerFrom,
  eventIn,
  type StoredEvent,
  storedEventBytes,
  type WireEvent,
  writeStoredEvent,
} from './slice.ts'

/** `/chorus/lookup/2`: one event by id from its owner, as it stores it. */
export const LOOKUP_PROTOCOL = '/chorus/lookup/2'

export function encodeLookupRequest(id: Uint8Array): Uint8Array {
  return frame.pack([frame.KIND_LOOKUP_REQUEST, id], frame.MAX_REQUEST_BYTES)
}

export function decodeLookupRequest(bytes: Uint8Array): Uint8Array {
  const [, id] = frame.framed(
    bytes,
    frame.MAX_REQUEST_BYTES,
    frame.KIND_LOOKUP_REQUEST,
    2,
    'a lookup request',
  )
  if (!frame.isId(id)) throw frame.malformed('lookup id')
  return new Uint8Array(id)
}

export function encodeLookupReply(event: StoredEvent | undefined): Uint8Array {
  const bytes = 2 + (event === undefined ? 1 : storedEventBytes(event))
  if (bytes > frame.MAX_ANSWER_BYTES)
    throw new frame.ProtocolError('too_large', `an event of ${bytes} bytes does not fit a message`)
  const out = new Uint8Array(bytes)
  out[0] = 0x92
  out[1] = frame.KIND_LOOKUP_REPLY
  if (event === undefined) out[2] = 0xc0
  else writeStoredEvent(out, 2, event)
  return out
}

/** Decodes a lookup answer: the event, `undefined` when the owner has none, or an error message. */
export function decodeLookupReply(
  bytes: Uint8Array,
): { event: WireEvent | undefined } | { code: frame.ErrorCode; message: string } {
  const m = frame.unpack(bytes, frame.MAX_ANSWER_BYTES)
  if (Array.isArray(m) && m[0] === frame.KIND_ERROR) {
    const answer = answerFrom(m)
    if (answer.kind === 'error') return { code: answer.code, message: answer.message }
  }
  if (!Array.isArray(m) || m.length !== 2 || m[0] !== frame.KIND_LOOKUP_REPLY)
    throw frame.malformed('not a lookup reply')
  return { event: m[1] === null ? undefined : eventIn(m[1]) }
}
