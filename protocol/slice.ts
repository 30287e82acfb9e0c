// /chorus/slice/3 and /4: what a coordinator asks one member for, and the
// member's answer. Messages (see framing.ts for the framing):
//
//   slice request  [1, fromMs, toMs, lower|null, upper|null, position|null,
//                   reverse, types[], minSeverity, text|null, hwm|null, limit,
//                   window, origin|null]   where a bound is [id bytes(16), inclusive]
//                  and origin the peer id of the member whose events are
//                  asked for when it is not the member asked (one it holds);
//                  version 4 adds three fields: notTypes[] (types excluded,
//                  exact or prefix.*), attrs[] ([name, text] pairs the
//                  event's attributes must match, see AttrFilter) and tail
//                  (answer with the ts of the mark, see SliceRequest.tail)
//   slice head     [8, hwm, behind|null]  first message of every slice answer;
//                  behind: for a holder's answer, the origin's events it
//                  knows it lacks (0: none); null when it cannot tell;
//                  [8, hwm, behind|null, ts] to a request with tail
//   more           [9, events]     coordinator → member: a grant of more events
//   pause          [10]            member → coordinator: out of grant, more in hand
//   event batch    [2, events[]]   each event [id(16), value], the value
//                  exactly as its owner stores it (event-value.ts)
//   trailer        [3, hwm, scanned, more]
//   error          [4, code, message]

import { type EventFields, eventValueProblem, readEventValue } from './event-value.ts'
import {
  type ErrorCode,
  errorFrom,
  framed,
  isId,
  isInt,
  isString,
  KIND_BATCH,
  KIND_ERROR,
  KIND_HEAD,
  KIND_MORE,
  KIND_PAUSE,
  KIND_SLICE_REQUEST,
  KIND_TRAILER,
  MAX_ANSWER_BYTES,
  MAX_REQUEST_BYTES,
  malformed,
  ProtocolError,
  pack,
  unpack,
} from './framing.ts'

/**
 * `/chorus/slice/3`: one request, a stream of event batches, one trailer (or
 * an error). Version 2: events travel as their owner stores them. Version
 * 3: a request may ask a holder for an origin's events (`origin`).
 */
export const SLICE_PROTOCOL = '/chorus/slice/3'
/**
 * `/chorus/slice/4`: version 3, two filters (type exclusion and
 * attributes) and tails. A request goes out as the oldest version that
 * carries it (sliceProtocolOf), so members not yet upgraded still answer
 * every request that uses none of these; a member serves both.
 */
export const SLICE_FILTER_PROTOCOL = '/chorus/slice/4'
/** Most attribute filters of one request (slice or rollup); HTTP refuses more. */
export const MAX_ATTR_FILTERS = 16
/** Longest attribute name of a filter (the longest an event may carry). */
export const MAX_ATTR_FILTER_NAME = 256
/** Longest attribute value of a filter. */
export const MAX_ATTR_FILTER_VALUE = 1024

/**
 * One attribute filter: the attribute `name` equals `text`. A string
 * attribute matches the same string; a number matches a decimal `text` of
 * the same value (`1.10` matches 1.1); a boolean matches `true` or
 * `false`. Filters of one name are alternatives, of different names all
 * must match.
 */
export type AttrFilter = readonly [name: string, text: string]

/** The event filters that only version 4 of the slice and rollup protocols carry. */
export interface NewerFilters {
  /** Types excluded, exact or `prefix.*`; empty or absent: none. */
  notTypes?: readonly string[]
  /** Attribute filters; empty or absent: none. */
  attrs?: readonly AttrFilter[]
}

/** Whether a request uses filters that only the newer protocol versions carry. */
export function usesNewerFilters(r: NewerFilters): boolean {
  return (r.notTypes?.length ?? 0) > 0 || (r.attrs?.length ?? 0) > 0
}

/** Whether a slice request needs version 4: new filters, or a tail. */
function needsVersion4(r: SliceRequest): boolean {
  return usesNewerFilters(r) || r.tail === true
}

/** The slice protocol a request is sent over: the oldest version that carries it. */
export function sliceProtocolOf(r: SliceRequest): string {
  return needsVersion4(r) ? SLICE_FILTER_PROTOCOL : SLICE_PROTOCOL
}

/** A list of type filters off the wire (types or notTypes), or a ProtocolError naming `what`. */
export function typeListIn(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length > MAX_TYPE_FILTERS || !v.every((t) => isString(t, 256)))
    throw malformed(what)
  return v as string[]
}

/** Attribute filters off the wire, or a ProtocolError. */
export function attrFiltersIn(v: unknown): AttrFilter[] {
  if (!Array.isArray(v) || v.length > MAX_ATTR_FILTERS) throw malformed('attrs')
  for (const f of v) {
    if (
      !Array.isArray(f) ||
      f.length !== 2 ||
      !isString(f[0], MAX_ATTR_FILTER_NAME) ||
      f[0].length === 0 ||
      !isString(f[1], MAX_ATTR_FILTER_VALUE)
    )
      throw malformed('attrs')
  }
  return v as AttrFilter[]
}
/** Events per batch a member sends at most. */
export const MAX_BATCH_EVENTS = 1024
/**
 * Events per batch message a member sends in a slice answer (a reader takes
 * up to MAX_BATCH_EVENTS). A coordinator decodes a message whole and holds
 * its events until its merge takes them, which with k members takes about k
 * messages' worth of merging: small messages keep those events short-lived,
 * so they die in V8's young generation instead of being promoted and
 * collected by full mark-compacts. Measured on an export of 1,000,000
 * events over 5 members: at 1,024 a message the coordinator spent a third
 * of its time in GC (109 mark-compacts), at 64 a fifth (37), and its CPU
 * time fell by a third; at 32 it did worse than at 64 again.
 */
export const SLICE_MESSAGE_EVENTS = 64
/** Longest type filter list (of a slice or rollup request; HTTP refuses more) and longest single filter string. */
export const MAX_TYPE_FILTERS = 64

/** A bound on ids, exclusive unless `inclusive`. */
export interface IdBound {
  /** 16 id bytes. */
  id: Uint8Array
  inclusive: boolean
}

export interface SliceRequest extends NewerFilters {
  /** Lower end of the period over `ts`, ms since the epoch, inclusive. */
  fromMs: number
  /** Upper end of the period over `ts`, ms since the epoch, exclusive. */
  toMs: number
  /** Only events with ids past this bound (in id order), e.g. from `after=<id>`. */
  lower?: IdBound
  /** Only events with ids before this bound (in id order), e.g. from `before=<id>`. */
  upper?: IdBound
  /** Continue strictly past this id in scan direction (inclusive if said): a cursor's position. */
  position?: IdBound
  /** Scan from the newest end of the range down. */
  reverse: boolean
  /** Exact types, or prefixes written `http.*`; empty: every type. */
  types: readonly string[]
  /** Minimum severity rank (0 debug … 4 critical). */
  minSeverity: number
  /** Case-insensitive substring of `message`. */
  text?: string
  /** The member's high-water mark for this result set: events with a larger seq are not part of it. */
  hwm?: number
  /** Most events to answer with. */
  limit: number
  /**
   * Events the member may send before it waits for a grant of more (flow
   * control: the coordinator reads only what its merge needs). Default: limit.
   */
  window?: number
  /**
   * Peer id of the member whose events are asked for, when it is not the
   * member asked: a holder answers from its copy of that member's events.
   */
  origin?: string
  /**
   * A live tail's request (version 4): the head also says the ts of the
   * event at the high-water mark (`hwmTs`), which with the mark is that
   * event's id. A member stamps its events in seq order with ts that never
   * go back, so its next events are exactly those past that id, however
   * their ts compare with other members'.
   */
  tail?: boolean
}

export interface SliceTrailer {
  /** The high-water mark that was applied (the member's newest seq when none was given). */
  hwm: number
  /** How many stored entries were examined. */
  scanned: number
  /** True when more matching events exist past the last one sent. */
  more: boolean
}

/** Largest `limit` of one slice request: the page limit. */
export const MAX_SLICE_LIMIT = 10_000

/**
 * A member's answer to a slice request: its high-water mark, known before
 * the first event, then batches of events in scan order, then the trailer.
 */
export interface SliceAnswer<E> {
  hwm: number
  /** To a tail request (`tail`): the ts of the event at `hwm` (0 when it has none). */
  hwmTs?: number
  /**
   * A holder's answer for an origin (`origin`): how many of the origin's
   * events it knows it does not hold yet, 0 when it holds every one it
   * has heard of; undefined when it cannot tell. 0 for a member's own.
   */
  behind?: number
  /**
   * Batches in scan order, then the trailer. Calling `next('peek')` asks only
   * whether more events exist: a member waiting for a grant then answers with
   * an empty batch and `waiting()` turns true, instead of being granted more.
   */
  batches: AsyncGenerator<E[], SliceTrailer, 'peek' | undefined>
  /** True when the member has paused with more matching events in hand. */
  waiting?: () => boolean
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
  | { kind: 'head'; hwm: number; behind?: number; hwmTs?: number }
  | { kind: 'pause' }
  | { kind: 'batch'; events: WireEvent[] }
  | { kind: 'trailer'; trailer: SliceTrailer }
  | { kind: 'error'; code: ErrorCode; message: string }

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
      r.origin ?? null,
      // Version 4's fields, only where they say something: a version 3 member reads the rest.
      ...(needsVersion4(r) ? [r.notTypes ?? [], r.attrs ?? [], r.tail === true] : []),
    ],
    MAX_REQUEST_BYTES,
  )
}

/** Decodes a slice request of version 3 (14 fields) or 4 (17). */
export function decodeSliceRequest(bytes: Uint8Array): SliceRequest {
  const m = unpack(bytes, MAX_REQUEST_BYTES)
  if (!Array.isArray(m) || (m.length !== 14 && m.length !== 17) || m[0] !== KIND_SLICE_REQUEST)
    throw malformed('not a slice request')
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
    origin,
  ] = m
  if (!isInt(fromMs, 0, 2 ** 48) || !isInt(toMs, 0, 2 ** 48)) throw malformed('period')
  if (typeof reverse !== 'boolean') throw malformed('reverse')
  typeListIn(types, 'types')
  if (!isInt(minSeverity, 0, 4)) throw malformed('minSeverity')
  if (text !== null && !isString(text, 1024)) throw malformed('text')
  if (hwm !== null && !isInt(hwm, 0, 2 ** 40)) throw malformed('hwm')
  if (!isInt(limit, 1, MAX_SLICE_LIMIT)) throw malformed('limit')
  if (!isInt(window, 1, MAX_SLICE_LIMIT)) throw malformed('window')
  if (origin !== null && (!isString(origin, 128) || origin.length === 0)) throw malformed('origin')
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
  if (origin !== null) out.origin = origin
  if (m.length === 17) {
    const notTypes = typeListIn(m[14], 'notTypes')
    const attrs = attrFiltersIn(m[15])
    if (typeof m[16] !== 'boolean') throw malformed('tail')
    if (notTypes.length > 0) out.notTypes = notTypes
    if (attrs.length > 0) out.attrs = attrs
    if (m[16]) out.tail = true
  }
  return out
}

// Batches and lookup replies are written by hand, not packed, so that each
// event's stored value goes in as the bytes it is: [id, fields] is a fixarray
// of 2, a bin 8 of 16 bytes, then the value (itself one MessagePack array).
const EVENT_HEAD_BYTES = 3 + 16
/** fixarray of 2, the kind, an array 32 header. */
const BATCH_HEAD_BYTES = 2 + 5

export function storedEventBytes(e: StoredEvent): number {
  if (e.id.byteLength !== 16) throw new Error(`an event id is 16 bytes, not ${e.id.byteLength}`)
  return EVENT_HEAD_BYTES + e.value.byteLength
}

export function writeStoredEvent(out: Uint8Array, at: number, e: StoredEvent): number {
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
 * each under MAX_ANSWER_BYTES and of at most `maxEvents` events (at most
 * MAX_BATCH_EVENTS). An event too large for any message is a ProtocolError
 * (`too_large`).
 */
export function encodeBatches(
  events: readonly StoredEvent[],
  maxEvents = MAX_BATCH_EVENTS,
): Uint8Array[] {
  const most = Math.max(1, Math.min(maxEvents, MAX_BATCH_EVENTS))
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
    if (bytes + size > MAX_ANSWER_BYTES || i - from === most) {
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

export function eventIn(v: unknown): WireEvent {
  if (!Array.isArray(v) || v.length !== 2 || !isId(v[0])) throw malformed('event')
  const fields: unknown = v[1]
  const problem = eventValueProblem(fields)
  if (problem !== undefined) throw malformed(problem)
  return readEventValue({ id: v[0] }, fields as unknown[])
}

/** A head; `hwmTs` only to a tail request (a version 3 reader takes three elements). */
export function encodeHead(hwm: number, behind?: number, hwmTs?: number): Uint8Array {
  return pack(
    hwmTs === undefined
      ? [KIND_HEAD, hwm, behind ?? null]
      : [KIND_HEAD, hwm, behind ?? null, hwmTs],
    MAX_ANSWER_BYTES,
  )
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

/** Decodes one message of a slice answer: the head, a batch, the trailer, or an error. */
export function decodeAnswer(bytes: Uint8Array): AnswerMessage {
  return answerFrom(unpack(bytes, MAX_ANSWER_BYTES))
}

/** The answer message an unpacked value is, or a ProtocolError. */
export function answerFrom(m: unknown): AnswerMessage {
  if (!Array.isArray(m) || m.length === 0) throw malformed('not an answer')
  switch (m[0]) {
    case KIND_BATCH: {
      if (m.length !== 2 || !Array.isArray(m[1]) || m[1].length > MAX_BATCH_EVENTS)
        throw malformed('batch')
      return { kind: 'batch', events: m[1].map(eventIn) }
    }
    case KIND_HEAD: {
      const [, hwm, behind, hwmTs] = m
      if ((m.length !== 3 && m.length !== 4) || !isInt(hwm, 0, 2 ** 40)) throw malformed('head')
      const head: AnswerMessage & { kind: 'head' } = { kind: 'head', hwm }
      if (behind !== null) {
        if (!isInt(behind, 0, 2 ** 40)) throw malformed('head')
        head.behind = behind
      }
      if (m.length === 4) {
        if (!isInt(hwmTs, 0, 2 ** 48)) throw malformed('head')
        head.hwmTs = hwmTs
      }
      return head
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
    case KIND_ERROR:
      return errorFrom(m)
    default:
      throw malformed(`unknown kind ${String(m[0])}`)
  }
}
