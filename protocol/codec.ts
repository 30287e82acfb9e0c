// Binary codec of chorus messages. Each message is a MessagePack array whose
// first element is its kind:
//
//   slice request  [1, fromMs, toMs, lower|null, upper|null, position|null,
//                   reverse, types[], minSeverity, text|null, hwm|null, limit]
//                  where a bound is [id bytes(16), inclusive]
//                  , window]
//   slice head     [8, hwm]        first message of every slice answer
//   more           [9, events]     coordinator → member: a grant of more events
//   pause          [10]            member → coordinator: out of grant, more in hand
//   event batch    [2, events[]]   each event [id(16), fields], where fields is
//                  the event's value exactly as its owner stores it (see
//                  StoredEvent and event-value.ts)
//   trailer        [3, hwm, scanned, more]
//   error          [4, code, message]
//   lookup request [5, id(16)]
//   lookup reply   [6, event|null]  (an event as in a batch)
//   announcement   [7, fields...] (see encodeAnnouncement)
//   rollup request [11, fromMs, toMs, resolution, stepMs, types[], minSeverity,
//                   byType, bySeverity]
//   rollup series  [12, series[]]  each [type|null, severity|null, [[t, bucket bytes]...]];
//                   the answer ends with a trailer (or an error)
//   stats request  [13]
//   stats          [14, ingestedEvents, queries, storeSizeBytes, [[type, severity, count]...]]
//   peers request  [15]
//   peers          [16, [signed announcement bytes...]]  the latest word of each member it knows
//   signed announcement [17, announcement bytes, signature]: an announcement
//                  with its subject's Ed25519 signature over
//                  ANNOUNCEMENT_SIGNING_DOMAIN + announcement bytes, so that
//                  any member can pass it on and nobody can speak for another
//
// Decoders never trust the peer: sizes are bounded by the frame limits
// below (enforced by the framing before allocation), and every field is
// checked here; anything else is a ProtocolError with a code.

import { Packr } from 'msgpackr'
import { type EventFields, eventValueProblem, readEventValue } from './event-value.ts'
import type { IdBound, RollupRequest, RollupSeries, SliceRequest, SliceTrailer } from './slice.ts'
import { MAX_SLICE_LIMIT } from './slice.ts'

/** Largest request message (slice or lookup), bytes. */
export const MAX_REQUEST_BYTES = 64 * 1024
/** Largest event batch or other answer message, bytes. */
export const MAX_ANSWER_BYTES = 1024 * 1024
/** Largest membership announcement, bytes. */
export const MAX_ANNOUNCEMENT_BYTES = 16 * 1024
/** Events per batch a member sends at most. */
export const MAX_BATCH_EVENTS = 1024
/** Longest type filter list (of a slice or rollup request; HTTP refuses more) and longest single filter string. */
export const MAX_TYPE_FILTERS = 64
const MAX_TYPES = MAX_TYPE_FILTERS
const MAX_STRING = 16 * 1024
/** Attribute names that JavaScript objects treat specially; members refuse them at ingest. */

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
export const KIND_PEERS_REQUEST = 15
export const KIND_PEERS = 16
export const KIND_SIGNED_ANNOUNCEMENT = 17

/** Error codes carried by error messages. */
export const ERROR_CODES = ['malformed', 'too_large', 'internal', 'busy', 'shutting_down'] as const
export type ErrorCode = (typeof ERROR_CODES)[number]

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError'
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

/**
 * An event as its owner stores it: 16 id bytes and its value (the format of
 * event-value.ts). Members send these bytes from disk to the wire as they
 * are, without decoding them; the receiver checks every field (WireEvent).
 */
export interface StoredEvent {
  id: Uint8Array
  value: Uint8Array
}

/** An event as it comes off the wire, checked: the owner's peer id and name are known from the stream. */
export interface WireEvent extends EventFields {
  id: Uint8Array
}

export type AnswerMessage =
  | { kind: 'head'; hwm: number }
  | { kind: 'pause' }
  | { kind: 'batch'; events: WireEvent[] }
  | { kind: 'trailer'; trailer: SliceTrailer }
  | { kind: 'error'; code: ErrorCode; message: string }

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' })

function malformed(what: string): ProtocolError {
  return new ProtocolError('malformed', `malformed message: ${what}`)
}

function unpack(bytes: Uint8Array, limit: number): unknown {
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
function framed(
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

function pack(value: unknown, limit: number): Uint8Array {
  const bytes = packr.pack(value)
  if (bytes.byteLength > limit)
    throw new ProtocolError(
      'too_large',
      `message of ${bytes.byteLength} bytes over the limit of ${limit}`,
    )
  return bytes
}

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max
const isString = (v: unknown, max = MAX_STRING): v is string =>
  typeof v === 'string' && v.length <= max
const isId = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.byteLength === 16

function bound(v: unknown, what: string): IdBound | undefined {
  if (v === null) return undefined
  if (!Array.isArray(v) || v.length !== 2 || !isId(v[0]) || typeof v[1] !== 'boolean')
    throw malformed(what)
  return { id: new Uint8Array(v[0]), inclusive: v[1] }
}

const boundOut = (b: IdBound | undefined) => (b === undefined ? null : [b.id, b.inclusive])

export function encodeSliceRequest(r: SliceRequest): Uint8Array {
  return pack(
    [
      KIND_SLICE_REQUEST,
      r.fromMs,
      r.toMs,
      boundOut(r.lower),
      boundOut(r.upper),
      boundOut(r.position),
      r.reverse,
      r.types,
      r.minSeverity,
      r.text ?? null,
      r.hwm ?? null,
      r.limit,
      r.window ?? r.limit,
    ],
    MAX_REQUEST_BYTES,
  )
}

export function decodeSliceRequest(bytes: Uint8Array): SliceRequest {
  const m = framed(bytes, MAX_REQUEST_BYTES, KIND_SLICE_REQUEST, 13, 'a slice request')
  const [
    ,
    fromMs,
    toMs,
    lower,
    upper,
    position,
    reverse,
    types,
    minSeverity,
    text,
    hwm,
    limit,
    window,
  ] = m
  if (!isInt(fromMs, 0, 2 ** 48) || !isInt(toMs, 0, 2 ** 48)) throw malformed('period')
  if (typeof reverse !== 'boolean') throw malformed('reverse')
  if (!Array.isArray(types) || types.length > MAX_TYPES || !types.every((t) => isString(t, 256)))
    throw malformed('types')
  if (!isInt(minSeverity, 0, 4)) throw malformed('minSeverity')
  if (text !== null && !isString(text, 1024)) throw malformed('text')
  if (hwm !== null && !isInt(hwm, 0, 2 ** 40)) throw malformed('hwm')
  if (!isInt(limit, 1, MAX_SLICE_LIMIT)) throw malformed('limit')
  if (!isInt(window, 1, MAX_SLICE_LIMIT)) throw malformed('window')
  const out: SliceRequest = {
    fromMs,
    toMs,
    reverse,
    types: types as string[],
    minSeverity,
    limit,
    window,
  }
  const lo = bound(lower, 'lower')
  const up = bound(upper, 'upper')
  const pos = bound(position, 'position')
  if (lo !== undefined) out.lower = lo
  if (up !== undefined) out.upper = up
  if (pos !== undefined) out.position = pos
  if (text !== null) out.text = text
  if (hwm !== null) out.hwm = hwm
  return out
}

// Batches and lookup replies are written by hand, not packed, so that each
// event's stored value goes in as the bytes it is: [id, fields] is a fixarray
// of 2, a bin 8 of 16 bytes, then the value (itself one MessagePack array).
const EVENT_HEAD_BYTES = 3 + 16
/** fixarray of 2, the kind, an array 32 header. */
const BATCH_HEAD_BYTES = 2 + 5

function storedEventBytes(e: StoredEvent): number {
  if (e.id.byteLength !== 16) throw new Error(`an event id is 16 bytes, not ${e.id.byteLength}`)
  return EVENT_HEAD_BYTES + e.value.byteLength
}

function writeStoredEvent(out: Uint8Array, at: number, e: StoredEvent): number {
  out[at] = 0x92
  out[at + 1] = 0xc4
  out[at + 2] = 16
  out.set(e.id, at + 3)
  out.set(e.value, at + EVENT_HEAD_BYTES)
  return at + EVENT_HEAD_BYTES + e.value.byteLength
}

function writeBatch(events: readonly StoredEvent[], from: number, to: number, bytes: number) {
  const out = new Uint8Array(bytes)
  out[0] = 0x92
  out[1] = KIND_BATCH
  out[2] = 0xdd
  new DataView(out.buffer).setUint32(3, to - from)
  let at = BATCH_HEAD_BYTES
  for (let i = from; i < to; i++) at = writeStoredEvent(out, at, events[i] as StoredEvent)
  return out
}

/**
 * Encodes stored events into as few batch messages as the limits allow:
 * each under MAX_ANSWER_BYTES and MAX_BATCH_EVENTS. An event too large for
 * any message is a ProtocolError (`too_large`).
 */
export function encodeBatches(events: readonly StoredEvent[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let from = 0
  let bytes = BATCH_HEAD_BYTES
  for (let i = 0; i < events.length; i++) {
    const size = storedEventBytes(events[i] as StoredEvent)
    if (BATCH_HEAD_BYTES + size > MAX_ANSWER_BYTES)
      throw new ProtocolError(
        'too_large',
        `an event of ${size} bytes does not fit a message of ${MAX_ANSWER_BYTES}`,
      )
    if (bytes + size > MAX_ANSWER_BYTES || i - from === MAX_BATCH_EVENTS) {
      out.push(writeBatch(events, from, i, bytes))
      from = i
      bytes = BATCH_HEAD_BYTES
    }
    bytes += size
  }
  if (from < events.length) out.push(writeBatch(events, from, events.length, bytes))
  return out
}

/**
 * Checks and decodes stored events exactly as a receiver of them would, a
 * batch message at a time (one MessagePack pass per message, not per event).
 */
export function decodeStoredEvents(events: readonly StoredEvent[]): WireEvent[] {
  const out: WireEvent[] = []
  for (const message of encodeBatches(events)) {
    const answer = decodeAnswer(message)
    if (answer.kind === 'batch') for (const e of answer.events) out.push(e)
  }
  return out
}

function eventIn(v: unknown): WireEvent {
  if (!Array.isArray(v) || v.length !== 2 || !isId(v[0])) throw malformed('event')
  const fields: unknown = v[1]
  const problem = eventValueProblem(fields)
  if (problem !== undefined) throw malformed(problem)
  return readEventValue({ id: v[0] }, fields as unknown[])
}

export function encodeHead(hwm: number): Uint8Array {
  return pack([KIND_HEAD, hwm], MAX_ANSWER_BYTES)
}

export function encodePause(): Uint8Array {
  return pack([KIND_PAUSE], MAX_ANSWER_BYTES)
}

export function encodeMore(events: number): Uint8Array {
  return pack([KIND_MORE, events], MAX_REQUEST_BYTES)
}

/** Decodes a grant of more events (coordinator → member). */
export function decodeMore(bytes: Uint8Array): number {
  const [, events] = framed(bytes, MAX_REQUEST_BYTES, KIND_MORE, 2, 'a grant')
  if (!isInt(events, 1, MAX_SLICE_LIMIT)) throw malformed('grant')
  return events
}

export function encodeTrailer(t: SliceTrailer): Uint8Array {
  return pack([KIND_TRAILER, t.hwm, t.scanned, t.more], MAX_ANSWER_BYTES)
}

export function encodeError(code: ErrorCode, message: string): Uint8Array {
  return pack([KIND_ERROR, code, message.slice(0, 1024)], MAX_ANSWER_BYTES)
}

/** Decodes one message of a slice answer: the head, a batch, the trailer, or an error. */
export function decodeAnswer(bytes: Uint8Array): AnswerMessage {
  return answerFrom(unpack(bytes, MAX_ANSWER_BYTES))
}

/** The answer message an unpacked value is, or a ProtocolError. */
function answerFrom(m: unknown): AnswerMessage {
  if (!Array.isArray(m) || m.length === 0) throw malformed('not an answer')
  switch (m[0]) {
    case KIND_BATCH: {
      if (m.length !== 2 || !Array.isArray(m[1]) || m[1].length > MAX_BATCH_EVENTS)
        throw malformed('batch')
      return { kind: 'batch', events: m[1].map(eventIn) }
    }
    case KIND_HEAD: {
      if (m.length !== 2 || !isInt(m[1], 0, 2 ** 40)) throw malformed('head')
      return { kind: 'head', hwm: m[1] }
    }
    case KIND_PAUSE: {
      if (m.length !== 1) throw malformed('pause')
      return { kind: 'pause' }
    }
    case KIND_TRAILER: {
      const [, hwm, scanned, more] = m
      if (
        m.length !== 4 ||
        !isInt(hwm, 0, 2 ** 40) ||
        !isInt(scanned, 0, Number.MAX_SAFE_INTEGER) ||
        typeof more !== 'boolean'
      ) {
        throw malformed('trailer')
      }
      return { kind: 'trailer', trailer: { hwm, scanned, more } }
    }
    case KIND_ERROR: {
      const [, code, message] = m
      if (
        m.length !== 3 ||
        !(ERROR_CODES as readonly unknown[]).includes(code) ||
        !isString(message, 1024)
      )
        throw malformed('error')
      return { kind: 'error', code: code as ErrorCode, message }
    }
    default:
      throw malformed(`unknown kind ${String(m[0])}`)
  }
}

export function encodeLookupRequest(id: Uint8Array): Uint8Array {
  return pack([KIND_LOOKUP_REQUEST, id], MAX_REQUEST_BYTES)
}

export function decodeLookupRequest(bytes: Uint8Array): Uint8Array {
  const [, id] = framed(bytes, MAX_REQUEST_BYTES, KIND_LOOKUP_REQUEST, 2, 'a lookup request')
  if (!isId(id)) throw malformed('lookup id')
  return new Uint8Array(id)
}

export function encodeLookupReply(event: StoredEvent | undefined): Uint8Array {
  const bytes = 2 + (event === undefined ? 1 : storedEventBytes(event))
  if (bytes > MAX_ANSWER_BYTES)
    throw new ProtocolError('too_large', `an event of ${bytes} bytes does not fit a message`)
  const out = new Uint8Array(bytes)
  out[0] = 0x92
  out[1] = KIND_LOOKUP_REPLY
  if (event === undefined) out[2] = 0xc0
  else writeStoredEvent(out, 2, event)
  return out
}

/** Decodes a lookup answer: the event, `undefined` when the owner has none, or an error message. */
export function decodeLookupReply(
  bytes: Uint8Array,
): { event: WireEvent | undefined } | { code: ErrorCode; message: string } {
  const m = unpack(bytes, MAX_ANSWER_BYTES)
  if (Array.isArray(m) && m[0] === KIND_ERROR) {
    const answer = answerFrom(m)
    if (answer.kind === 'error') return { code: answer.code, message: answer.message }
  }
  if (!Array.isArray(m) || m.length !== 2 || m[0] !== KIND_LOOKUP_REPLY)
    throw malformed('not a lookup reply')
  return { event: m[1] === null ? undefined : eventIn(m[1]) }
}

/** A member's announcement of itself on the membership topic. */
export interface Announcement {
  peerId: string
  name: string
  /** Multiaddrs it listens on, without /p2p/. */
  addrs: string[]
  /** Its HTTP address, host:port. */
  http: string
  version: string
  /** Newest seq in its store. */
  seq: number
  /** When it started, ms since the epoch (its clock). */
  startedAt: number
  /** Its clock when it sent this, ms since the epoch. */
  sentAt: number
  /** Its own health: `ok`, `warning`, `critical` or `unknown`, then `:` and the rules that fired (`warning:cpu-high`). */
  health: string
  /** Raised when it refutes a suspicion of itself (SWIM). */
  incarnation: number
  /**
   * Counts its announcements since it started: within one run (`startedAt`)
   * the higher beat is the newer word, whatever its clock did, and an old
   * announcement played again is recognised as old.
   */
  beat: number
  /** True when it is leaving the array (SIGTERM). */
  leaving: boolean
  /** Peer ids this member currently suspects, for Lifeguard's suspicion confirmations. */
  suspects: string[]
}

const MAX_ADDRS = 16
const MAX_SUSPECTS = 64

export function encodeAnnouncement(a: Announcement): Uint8Array {
  return pack(
    [
      KIND_ANNOUNCEMENT,
      a.peerId,
      a.name,
      a.addrs.slice(0, MAX_ADDRS),
      a.http,
      a.version,
      a.seq,
      a.startedAt,
      a.sentAt,
      a.health,
      a.incarnation,
      a.beat,
      a.leaving,
      a.suspects.slice(0, MAX_SUSPECTS),
    ],
    MAX_ANNOUNCEMENT_BYTES,
  )
}

export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  const m = framed(bytes, MAX_ANNOUNCEMENT_BYTES, KIND_ANNOUNCEMENT, 14, 'an announcement')
  const [
    ,
    peerId,
    name,
    addrs,
    http,
    version,
    seq,
    startedAt,
    sentAt,
    health,
    incarnation,
    beat,
    leaving,
    suspects,
  ] = m
  if (!isString(peerId, 128) || !isString(name, 63) || name.length === 0)
    throw malformed('announcement peer id or name')
  if (!Array.isArray(addrs) || addrs.length > MAX_ADDRS || !addrs.every((x) => isString(x, 256)))
    throw malformed('announcement addrs')
  if (!isString(http, 256) || !isString(version, 64) || !isString(health, 1024))
    throw malformed('announcement http, version or health')
  if (
    !isInt(seq, 0, 2 ** 40) ||
    !isInt(startedAt, 0, 2 ** 48) ||
    !isInt(sentAt, 0, 2 ** 48) ||
    !isInt(incarnation, 0, 2 ** 32) ||
    !isInt(beat, 0, Number.MAX_SAFE_INTEGER)
  ) {
    throw malformed('announcement numbers')
  }
  if (typeof leaving !== 'boolean') throw malformed('announcement leaving')
  if (
    !Array.isArray(suspects) ||
    suspects.length > MAX_SUSPECTS ||
    !suspects.every((x) => isString(x, 128))
  ) {
    throw malformed('announcement suspects')
  }
  return {
    peerId,
    name,
    addrs,
    http,
    version,
    seq,
    startedAt,
    sentAt,
    health,
    incarnation,
    beat,
    leaving,
    suspects,
  }
}

/** What a member signs: this prefix, then the announcement's bytes (so no other message's signature fits). */
export const ANNOUNCEMENT_SIGNING_DOMAIN = new TextEncoder().encode('chorus-announcement:')
/** Longest signature accepted (Ed25519's are 64 bytes; RSA keys would need more). */
const MAX_SIGNATURE_BYTES = 1024
/** Largest signed announcement, bytes. */
export const MAX_SIGNED_ANNOUNCEMENT_BYTES = MAX_ANNOUNCEMENT_BYTES + MAX_SIGNATURE_BYTES + 16

/** An announcement as its subject signed it: `body` is what the signature covers (after the domain). */
export interface SignedAnnouncement {
  announcement: Announcement
  body: Uint8Array
  signature: Uint8Array
  /** The whole message, to pass on as it came. */
  bytes: Uint8Array
}

/** The bytes a member signs for an announcement's `body`. */
export function announcementSigningBytes(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(ANNOUNCEMENT_SIGNING_DOMAIN.byteLength + body.byteLength)
  out.set(ANNOUNCEMENT_SIGNING_DOMAIN, 0)
  out.set(body, ANNOUNCEMENT_SIGNING_DOMAIN.byteLength)
  return out
}

export function encodeSignedAnnouncement(body: Uint8Array, signature: Uint8Array): Uint8Array {
  return pack([KIND_SIGNED_ANNOUNCEMENT, body, signature], MAX_SIGNED_ANNOUNCEMENT_BYTES)
}

/** Decodes a signed announcement; the signature is checked by the caller, which has the crypto. */
export function decodeSignedAnnouncement(bytes: Uint8Array): SignedAnnouncement {
  const [, body, signature] = framed(
    bytes,
    MAX_SIGNED_ANNOUNCEMENT_BYTES,
    KIND_SIGNED_ANNOUNCEMENT,
    3,
    'a signed announcement',
  )
  if (!(body instanceof Uint8Array) || body.byteLength > MAX_ANNOUNCEMENT_BYTES)
    throw malformed('signed announcement body')
  if (
    !(signature instanceof Uint8Array) ||
    signature.byteLength === 0 ||
    signature.byteLength > MAX_SIGNATURE_BYTES
  )
    throw malformed('signed announcement signature')
  return { announcement: decodeAnnouncement(body), body, signature, bytes }
}

/** Largest encoded bucket accepted from a peer, bytes. */
const MAX_BUCKET_BYTES = 256 * 1024
/**
 * Most series in one member's rollup answer, over all its messages: room for
 * 2,000 types at every severity. A member with more answers `too_large`; a
 * coordinator stops reading a member that sends more and reports it as an
 * error row, so a hostile member cannot grow the coordinator's answer (each
 * series becomes a full row of steps in the JSON) without bound.
 */
export const MAX_ROLLUP_SERIES = 10_000
/**
 * Most bytes of one member's whole rollup answer (its messages together),
 * 16 MiB: about 100,000 buckets of a few dozen distinct values each. A
 * coordinator aborts the stream of a member that sends more.
 */
export const MAX_ROLLUP_ANSWER_BYTES = 16 * 1024 * 1024

export function encodeRollupRequest(r: RollupRequest): Uint8Array {
  return pack(
    [
      KIND_ROLLUP_REQUEST,
      r.fromMs,
      r.toMs,
      r.resolution,
      r.stepMs,
      r.types,
      r.minSeverity,
      r.byType,
      r.bySeverity,
    ],
    MAX_REQUEST_BYTES,
  )
}

export function decodeRollupRequest(bytes: Uint8Array): RollupRequest {
  const [, fromMs, toMs, resolution, stepMs, types, minSeverity, byType, bySeverity] = framed(
    bytes,
    MAX_REQUEST_BYTES,
    KIND_ROLLUP_REQUEST,
    9,
    'a rollup request',
  )
  if (!isInt(fromMs, 0, 2 ** 48) || !isInt(toMs, 0, 2 ** 48)) throw malformed('period')
  if (!isInt(resolution, 0, 2) || !isInt(stepMs, 1, 2 ** 40)) throw malformed('resolution or step')
  if (!Array.isArray(types) || types.length > MAX_TYPES || !types.every((t) => isString(t, 256)))
    throw malformed('types')
  if (!isInt(minSeverity, 0, 4) || typeof byType !== 'boolean' || typeof bySeverity !== 'boolean')
    throw malformed('filters')
  return {
    fromMs,
    toMs,
    resolution,
    stepMs,
    types: types as string[],
    minSeverity,
    byType,
    bySeverity,
  }
}

/** Encodes series into as many messages as the size limit needs (a series may span messages). */
export function encodeRollupSeries(series: readonly RollupSeries[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let chunk: unknown[] = []
  let size = 0
  const flush = () => {
    if (chunk.length > 0) out.push(pack([KIND_ROLLUP_SERIES, chunk], MAX_ANSWER_BYTES))
    chunk = []
    size = 0
  }
  for (const s of series) {
    let buckets: Array<[number, Uint8Array]> = []
    for (const b of s.buckets) {
      const cost = b.bucket.byteLength + 16
      if (size + cost > MAX_ANSWER_BYTES / 2 && (buckets.length > 0 || chunk.length > 0)) {
        if (buckets.length > 0) chunk.push([s.type ?? null, s.severity ?? null, buckets])
        flush()
        buckets = []
      }
      buckets.push([b.t, b.bucket])
      size += cost
    }
    chunk.push([s.type ?? null, s.severity ?? null, buckets])
    size += 32
  }
  flush()
  return out
}

/** Decodes one message of a rollup answer: series, the trailer, or an error. */
export function decodeRollupAnswer(
  bytes: Uint8Array,
):
  | { kind: 'series'; series: RollupSeries[] }
  | Exclude<AnswerMessage, { kind: 'batch' | 'head' | 'pause' }> {
  const m = unpack(bytes, MAX_ANSWER_BYTES)
  if (Array.isArray(m) && m[0] === KIND_ROLLUP_SERIES) {
    if (m.length !== 2 || !Array.isArray(m[1])) throw malformed('rollup series')
    if (m[1].length > MAX_ROLLUP_SERIES)
      throw new ProtocolError('too_large', `more than ${MAX_ROLLUP_SERIES} rollup series`)
    const series = (m[1] as unknown[]).map((raw): RollupSeries => {
      if (!Array.isArray(raw) || raw.length !== 3 || !Array.isArray(raw[2]))
        throw malformed('rollup series')
      const [type, severity, buckets] = raw
      if (type !== null && !isString(type, 256)) throw malformed('rollup series type')
      if (severity !== null && !isInt(severity, 0, 4)) throw malformed('rollup series severity')
      const s: RollupSeries = {
        buckets: (buckets as unknown[]).map((b) => {
          if (
            !Array.isArray(b) ||
            b.length !== 2 ||
            !isInt(b[0], 0, 2 ** 48) ||
            !(b[1] instanceof Uint8Array)
          ) {
            throw malformed('rollup bucket')
          }
          if (b[1].byteLength > MAX_BUCKET_BYTES) throw malformed('rollup bucket too large')
          return { t: b[0], bucket: b[1] }
        }),
      }
      if (type !== null) s.type = type
      if (severity !== null) s.severity = severity
      return s
    })
    return { kind: 'series', series }
  }
  const answer = answerFrom(m)
  if (answer.kind === 'trailer' || answer.kind === 'error') return answer
  throw malformed('not a rollup answer')
}

/** A member's counters, as /chorus/stats/1 carries them. */
export interface MemberCounters {
  /** Events stored by ingest since the member started. */
  ingestedEvents: number
  /** Queries it coordinated since it started. */
  queries: number
  storeSizeBytes: number
  /** Events ever logged, by type and severity rank. */
  eventTotals: Array<{ type: string; severity: number; count: number }>
}

/** Most (type, severity) totals one stats answer carries. */
export const MAX_STATS_TOTALS = 20_000

/** Most members one peers answer carries. */
export const MAX_PEERS = 1024

export function encodePeersRequest(): Uint8Array {
  return pack([KIND_PEERS_REQUEST], MAX_REQUEST_BYTES)
}

export function decodePeersRequest(bytes: Uint8Array): void {
  framed(bytes, MAX_REQUEST_BYTES, KIND_PEERS_REQUEST, 1, 'a peers request')
}

/** The members a member knows of, as their latest signed announcements: as many as fit one answer. */
export function encodePeers(signed: readonly Uint8Array[]): Uint8Array {
  const items: Uint8Array[] = []
  let bytes = 16
  for (const item of signed) {
    if (items.length === MAX_PEERS || bytes + item.byteLength + 5 > MAX_ANSWER_BYTES) break
    items.push(item)
    bytes += item.byteLength + 5
  }
  return pack([KIND_PEERS, items], MAX_ANSWER_BYTES)
}

export function decodePeers(bytes: Uint8Array): SignedAnnouncement[] {
  const [, items] = framed(bytes, MAX_ANSWER_BYTES, KIND_PEERS, 2, 'peers')
  if (
    !Array.isArray(items) ||
    items.length > MAX_PEERS ||
    !items.every((item) => item instanceof Uint8Array)
  )
    throw malformed('peers')
  return items.map((item: Uint8Array) => decodeSignedAnnouncement(item))
}

export function encodeStatsRequest(): Uint8Array {
  return pack([KIND_STATS_REQUEST], MAX_REQUEST_BYTES)
}

export function decodeStatsRequest(bytes: Uint8Array): void {
  framed(bytes, MAX_REQUEST_BYTES, KIND_STATS_REQUEST, 1, 'a stats request')
}

export function encodeStats(c: MemberCounters): Uint8Array {
  return pack(
    [
      KIND_STATS,
      c.ingestedEvents,
      c.queries,
      c.storeSizeBytes,
      c.eventTotals.slice(0, MAX_STATS_TOTALS).map((t) => [t.type, t.severity, t.count]),
    ],
    MAX_ANSWER_BYTES,
  )
}

export function decodeStats(bytes: Uint8Array): MemberCounters {
  const [, ingestedEvents, queries, storeSizeBytes, totals] = framed(
    bytes,
    MAX_ANSWER_BYTES,
    KIND_STATS,
    5,
    'stats',
  )
  if (
    !isInt(ingestedEvents, 0, Number.MAX_SAFE_INTEGER) ||
    !isInt(queries, 0, Number.MAX_SAFE_INTEGER)
  )
    throw malformed('stats counters')
  if (!isInt(storeSizeBytes, 0, Number.MAX_SAFE_INTEGER)) throw malformed('stats store size')
  if (!Array.isArray(totals) || totals.length > MAX_STATS_TOTALS) throw malformed('stats totals')
  return {
    ingestedEvents,
    queries,
    storeSizeBytes,
    eventTotals: totals.map((t) => {
      if (
        !Array.isArray(t) ||
        t.length !== 3 ||
        !isString(t[0], 256) ||
        !isInt(t[1], 0, 4) ||
        !isInt(t[2], 0, Number.MAX_SAFE_INTEGER)
      ) {
        throw malformed('stats total')
      }
      return { type: t[0], severity: t[1], count: t[2] }
    }),
  }
}
