// The framing every chorus message shares, and the rules every decoder
// keeps. Every message on a chorus stream is an unsigned-varint length
// prefix followed by that many bytes of MessagePack (lpStream from
// @libp2p/utils); readers pass the limit for the message they expect as
// `maxDataLength`, so an oversized prefix is refused before a byte of it is
// allocated. Each message is a MessagePack array whose first element is its
// kind; the kinds are numbered here, in one place, so no two protocols can
// take the same number:
//
//   1 slice request, 2 event batch, 3 trailer, 4 error, 8 slice head,
//   9 more, 10 pause (slice.ts); 5 lookup request, 6 lookup reply
//   (lookup.ts); 7 announcement, 17 signed announcement (announcement.ts);
//   11 rollup request, 12 rollup series (rollup.ts); 13 stats request,
//   14 stats (stats.ts); 18 ping, 19 ack, 20 ping-req, 21 nack, 22 gossip,
//   23 sync, 24 accusation, 25 signed accusation (swim.ts); 26 settings
//   request, 27 settings (settings.ts); 28 group request, 29 group trailer
//   (group.ts); 30 replica request, 31 replica head, 32 replica batch,
//   33 replica ack, 34 replica caught up (replicate.ts). 15 and 16 were the peers protocol's.
//
// Decoders never trust the peer: sizes are bounded by the frame limits
// (enforced before allocation), and every field is checked; anything else is
// a ProtocolError with a code, which a member answers as an error message.

import { Packr } from 'msgpackr'

/** Largest request message, bytes. */
export const MAX_REQUEST_BYTES = 64 * 1024
/** Largest event batch or other answer message, bytes. */
export const MAX_ANSWER_BYTES = 1024 * 1024
/** Longest string field a decoder takes unless it says otherwise. */
const MAX_STRING = 16 * 1024

export const KIND_SLICE_REQUEST = 1
export const KIND_BATCH = 2
export const KIND_TRAILER = 3
export const KIND_ERROR = 4
export const KIND_LOOKUP_REQUEST = 5
export const KIND_LOOKUP_REPLY = 6
export const KIND_ANNOUNCEMENT = 7
export const KIND_HEAD = 8
export const KIND_MORE = 9
export const KIND_PAUSE = 10
export const KIND_ROLLUP_REQUEST = 11
export const KIND_ROLLUP_SERIES = 12
export const KIND_STATS_REQUEST = 13
export const KIND_STATS = 14
export const KIND_SIGNED_ANNOUNCEMENT = 17
export const KIND_PING = 18
export const KIND_ACK = 19
export const KIND_PING_REQUEST = 20
export const KIND_NACK = 21
export const KIND_GOSSIP = 22
export const KIND_SYNC = 23
export const KIND_ACCUSATION = 24
export const KIND_SIGNED_ACCUSATION = 25
export const KIND_SETTINGS_REQUEST = 26
export const KIND_SETTINGS = 27
export const KIND_GROUP_REQUEST = 28
export const KIND_GROUP_TRAILER = 29
export const KIND_REPLICA_REQUEST = 30
export const KIND_REPLICA_HEAD = 31
export const KIND_REPLICA_BATCH = 32
export const KIND_REPLICA_ACK = 33
export const KIND_REPLICA_CAUGHT_UP = 34

/** Error codes carried by error messages. */
export const ERROR_CODES = [
  'malformed',
  'too_large',
  'internal',
  'busy',
  'shutting_down',
  'not_holder',
] as const
export type ErrorCode = (typeof ERROR_CODES)[number]

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError'
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' })

export function malformed(what: string): ProtocolError {
  return new ProtocolError('malformed', `malformed message: ${what}`)
}

export function unpack(bytes: Uint8Array, limit: number): unknown {
  if (bytes.byteLength > limit)
    throw new ProtocolError(
      'too_large',
      `message of ${bytes.byteLength} bytes over the limit of ${limit}`,
    )
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw malformed(err instanceof Error ? err.message : 'undecodable')
  }
}

/** Unpacks a message that must be an array of `length` elements starting with `kind`. */
export function framed(
  bytes: Uint8Array,
  limit: number,
  kind: number,
  length: number,
  what: string,
): unknown[] {
  const m = unpack(bytes, limit)
  if (!Array.isArray(m) || m.length !== length || m[0] !== kind) throw malformed(`not ${what}`)
  return m
}

export function pack(value: unknown, limit: number): Uint8Array {
  const bytes = packr.pack(value)
  if (bytes.byteLength > limit)
    throw new ProtocolError(
      'too_large',
      `message of ${bytes.byteLength} bytes over the limit of ${limit}`,
    )
  return bytes
}

export const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max
export const isString = (v: unknown, max = MAX_STRING): v is string =>
  typeof v === 'string' && v.length <= max
export const isId = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.byteLength === 16

/** The error message an unpacked `[4, code, message]` is, checked. */
export function errorFrom(m: unknown[]): { kind: 'error'; code: ErrorCode; message: string } {
  const [, code, message] = m
  if (
    m.length !== 3 ||
    !(ERROR_CODES as readonly unknown[]).includes(code) ||
    !isString(message, 1024)
  )
    throw malformed('error')
  return { kind: 'error', code: code as ErrorCode, message }
}

/** An error message: `[4, code, message]`, the last message of an answer that failed. */
export function encodeError(code: ErrorCode, message: string): Uint8Array {
  return pack([KIND_ERROR, code, message.slice(0, 1024)], MAX_ANSWER_BYTES)
}
