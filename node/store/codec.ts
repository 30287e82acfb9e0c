// An event's stored value, as the store writes and reads it. The format
// itself (a MessagePack array of the fields its id does not hold) is owned
// by protocol/event-value.ts, because the value is also the wire form:
// slices go from disk to the wire without being decoded and encoded again.
// This file adds what only a member knows: severities by name on ingest,
// and the event a query returns (member id and name beside the fields).

import {
  type EventFields,
  encodeEventValue as encodeValue,
  unpackEventValue,
} from '../../protocol/event-value.ts'
import type { StoredEvent } from '../../protocol/slice.ts'
import type { ChorusEvent, EventInput } from '../event/event.ts'
import { severityOfRank, severityRank } from '../event/event.ts'
import { decodeId, encodeId, seqOfIdBytes, tsOfIdBytes } from '../event/id.ts'

export function encodeEventValue(event: EventInput): Buffer {
  return encodeValue(event, severityRank(event.severity ?? 'info'))
}

/** The stored value of fields as they come off the wire (the severity a rank). */
export function encodeStoredFields(fields: EventFields): Buffer {
  return encodeValue(fields, fields.severity)
}

export class CorruptValueError extends Error {
  override readonly name = 'CorruptValueError'
}

/** The fields of a value read from this member's store; CorruptValueError when it is not one. */
export function decodeEventValue(bytes: Uint8Array): EventFields {
  const fields = unpackEventValue(bytes)
  if (fields === undefined) throw new CorruptValueError('stored event value has an unknown format')
  return fields
}

/** The event that 16 id bytes and a stored value's fields make, as queries return it. */
export function toEvent(
  id: Uint8Array,
  fields: EventFields,
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

/** An event as its owner stored it, again: how a sub-coordinator passes on the events it merged. */
export function toStored(event: ChorusEvent): StoredEvent {
  const id = decodeId(event.id)
  if (id === undefined) throw new Error(`not an event id: ${event.id}`)
  return { id, value: encodeEventValue(event) }
}
