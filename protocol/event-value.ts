// The event value: the one format in which a member stores an event's fields
// (node/store writes and reads it) and in which they cross the wire (event
// batches and lookup replies carry it as stored, see slice.ts and lookup.ts). Its layout
// is owned here alone, so that disk and wire cannot drift apart: a
// MessagePack array of the fields that are not already in the event's id
// (`ts`, member tag and `seq` are), so a typical operational event costs
// about as many bytes as its text:
//
//   [EVENT_VALUE_FORMAT=1, type, severityRank, message|null, source|null,
//    value|null, attrs|null, time|null]
//
// A member trusts the values of its own store (only their format is
// checked); a value from another member is checked field by field
// (eventValueProblem) before anything reads it.

import { Packr } from 'msgpackr'

/** First element of a stored event value: the layout of the fields that follow. */
export const EVENT_VALUE_FORMAT = 1

/** The fields an event value carries: everything of an event but what its id holds. */
export interface EventFields {
  type: string
  /** Severity rank, 0 debug … 4 critical. */
  severity: number
  message?: string
  source?: string
  value?: number
  attrs?: Record<string, string | number | boolean>
  time?: string | number
}

const MAX_TYPE_CHARS = 256
const MAX_MESSAGE_CHARS = 64 * 1024
/** Longest `source` and attribute value. */
const MAX_TEXT_CHARS = 16 * 1024
const MAX_TIME_CHARS = 256
const MAX_ATTRS = 256
const MAX_ATTR_KEY_CHARS = 256
const MAX_SEVERITY = 4
/** Keys that JavaScript objects treat specially: refused, so that attributes decode as they were sent. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

// variableMapSize: attrs maps get the smallest header, as every stored value
// has had since format 1; changing it would change the bytes on disk.
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  int64AsType: 'number',
})

/**
 * The value of an event with these fields. `severity` (a rank) comes apart
 * from the fields, so an ingested event, which names its severity, is
 * written without a copy.
 */
export function encodeEventValue(fields: Omit<EventFields, 'severity'>, severity: number): Buffer {
  return packr.pack([
    EVENT_VALUE_FORMAT,
    fields.type,
    severity,
    fields.message ?? null,
    fields.source ?? null,
    fields.value ?? null,
    fields.attrs ?? null,
    fields.time ?? null,
  ])
}

/**
 * The fields of a value this member's own store wrote: trusted, so only its
 * format and type are checked. Undefined when it is not a value of this
 * format (a damaged record).
 */
export function unpackEventValue(bytes: Uint8Array): EventFields | undefined {
  const fields = packr.unpack(bytes) as unknown
  if (!Array.isArray(fields) || fields[0] !== EVENT_VALUE_FORMAT || typeof fields[1] !== 'string')
    return undefined
  // A literal of both required fields first: one object shape for every event.
  return readOptionalFields({ type: fields[1], severity: fields[2] as number }, fields)
}

const isString = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

/**
 * What is wrong with an unpacked value that came from another member (the
 * name of its first bad field, for an error message), or undefined when
 * every field is of this format and within its limit.
 */
export function eventValueProblem(fields: unknown): string | undefined {
  if (!Array.isArray(fields) || fields.length !== 8 || fields[0] !== EVENT_VALUE_FORMAT)
    return 'event fields'
  const [, type, severity, message, source, value, attrs, time] = fields
  if (
    !isString(type, MAX_TYPE_CHARS) ||
    !(typeof severity === 'number' && Number.isSafeInteger(severity)) ||
    severity < 0 ||
    severity > MAX_SEVERITY
  )
    return 'event type or severity'
  if (message !== null && !isString(message, MAX_MESSAGE_CHARS)) return 'event message'
  if (source !== null && !isString(source, MAX_TEXT_CHARS)) return 'event source'
  if (value !== null && !isFiniteNumber(value)) return 'event value'
  if (attrs !== null) {
    if (typeof attrs !== 'object' || Array.isArray(attrs) || attrs instanceof Uint8Array)
      return 'event attrs'
    let count = 0
    for (const k in attrs) {
      const a = (attrs as Record<string, unknown>)[k]
      if (
        ++count > MAX_ATTRS ||
        k.length > MAX_ATTR_KEY_CHARS ||
        RESERVED_KEYS.has(k) ||
        !(typeof a === 'boolean' || isString(a, MAX_TEXT_CHARS) || isFiniteNumber(a))
      )
        return 'event attr'
    }
  }
  if (time !== null && !(isString(time, MAX_TIME_CHARS) || isFiniteNumber(time)))
    return 'event time'
  return undefined
}

/**
 * Adds the fields of an unpacked value, trusted or checked by
 * eventValueProblem, to `head` (an event's id, say), so that one object
 * holds the event. Absent fields (null) stay absent.
 */
export function readEventValue<T extends object>(
  head: T,
  fields: readonly unknown[],
): T & EventFields {
  const out = head as T & EventFields
  out.type = fields[1] as string
  out.severity = fields[2] as number
  return readOptionalFields(out, fields)
}

function readOptionalFields<T extends EventFields>(out: T, fields: readonly unknown[]): T {
  const [, , , message, source, value, attrs, time] = fields
  if (message !== null) out.message = message as string
  if (source !== null) out.source = source as string
  if (value !== null) out.value = value as number
  if (attrs !== null) out.attrs = attrs as Record<string, string | number | boolean>
  if (time !== null) out.time = time as string | number
  return out
}
