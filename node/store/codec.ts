// The stored form of an event's value: a MessagePack array of the fields that
// are not already in its key, so a typical operational event costs about as
// many bytes as its text. `ts`, member tag and `seq` live in the key (the id).
//
//   [format=1, type, severityRank, message|null, source|null, value|null,
//    attrs|null, time|null]
//
// It is also the wire form (protocol/codec.ts, StoredEvent): slices go from
// disk to the wire without being decoded and encoded again.

import { Packr } from 'msgpackr'
import { EVENT_VALUE_FORMAT } from '../../protocol/codec.ts'
import type { Attrs, ChorusEvent, EventInput } from '../event/event.ts'
import { severityOfRank, severityRank } from '../event/event.ts'
import { encodeId, seqOfIdBytes, tsOfIdBytes } from '../event/id.ts'

const VALUE_FORMAT = EVENT_VALUE_FORMAT

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
  return packValue(event, severityRank(event.severity ?? 'info'))
}

/** The stored value of fields as they come off the wire (the severity a rank). */
export function encodeStoredFields(fields: StoredFields): Buffer {
  return packValue(fields, fields.severity)
}

function packValue(fields: Omit<StoredFields, 'severity'>, severity: number): Buffer {
  return packr.pack([
    VALUE_FORMAT,
    fields.type,
    severity,
    fields.message ?? null,
    fields.source ?? null,
    fields.value ?? null,
    fields.attrs ?? null,
    fields.time ?? null,
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

/** The event that 16 id bytes and a stored value's fields make, as queries return it. */
export function toEvent(
  id: Uint8Array,
  fields: StoredFields,
  member: string,
  memberName: string,
): ChorusEvent {
  const event: ChorusEvent = {
    id: encodeId(id),
    ts: tsOfIdBytes(id),
    member,
    memberName,
    seq: seqOfIdBytes(id),
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
