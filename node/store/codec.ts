// The stored form of an event's value: a MessagePack array of the fields that
// are not already in its key, so a typical operational event costs about as
// many bytes as its text. `ts`, member tag and `seq` live in the key (the id).
//
//   [format=1, type, severityRank, message|null, source|null, value|null,
//    attrs|null, time|null]

import { Packr } from 'msgpackr'
import type { Attrs, ChorusEvent, EventInput } from '../event/event.ts'
import { severityOfRank, severityRank } from '../event/event.ts'

const VALUE_FORMAT = 1

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true })

/** The fields of a stored event that its value carries. */
export interface StoredFields {
  type: string
  severity: number
  message?: string
  source?: string
  value?: number
  attrs?: Attrs
  time?: string | number
}

export function encodeEventValue(event: EventInput): Buffer {
  return packr.pack([
    VALUE_FORMAT,
    event.type,
    severityRank(event.severity ?? 'info'),
    event.message ?? null,
    event.source ?? null,
    event.value ?? null,
    event.attrs ?? null,
    event.time ?? null,
  ])
}

export class CorruptValueError extends Error {
  override readonly name = 'CorruptValueError'
}

export function decodeEventValue(bytes: Uint8Array): StoredFields {
  const fields = packr.unpack(bytes) as unknown
  if (!Array.isArray(fields) || fields[0] !== VALUE_FORMAT || typeof fields[1] !== 'string') {
    throw new CorruptValueError('stored event value has an unknown format')
  }
  const [, type, severity, message, source, value, attrs, time] = fields as [
    number,
    string,
    number,
    string | null,
    string | null,
    number | null,
    Attrs | null,
    string | number | null,
  ]
  const out: StoredFields = { type, severity }
  if (message !== null) out.message = message
  if (source !== null) out.source = source
  if (value !== null) out.value = value
  if (attrs !== null) out.attrs = attrs
  if (time !== null) out.time = time
  return out
}

/** The event a stored value and its id's parts make, as queries return it. */
export function toEvent(
  id: string,
  parts: { ts: number; seq: number },
  fields: StoredFields,
  member: string,
  memberName: string,
): ChorusEvent {
  const event: ChorusEvent = {
    id,
    ts: parts.ts,
    member,
    memberName,
    seq: parts.seq,
    type: fields.type,
    severity: severityOfRank(fields.severity),
  }
  if (fields.message !== undefined) event.message = fields.message
  if (fields.source !== undefined) event.source = fields.source
  if (fields.value !== undefined) event.value = fields.value
  if (fields.attrs !== undefined) event.attrs = fields.attrs
  if (fields.time !== undefined) event.time = fields.time
  return event
}
