// Conversions between events as the member handles them and as they cross
// the wire (protocol/codec.ts), where the owner is implied by the stream.

import type { WireEvent } from '../../protocol/index.ts'
import type { ChorusEvent } from '../event/event.ts'
import { severityOfRank, severityRank } from '../event/event.ts'
import { decodeId, encodeId, partsOfIdBytes } from '../event/id.ts'

export function toWire(event: ChorusEvent): WireEvent {
  const wire: WireEvent = {
    id: decodeId(event.id) as Uint8Array,
    type: event.type,
    severity: severityRank(event.severity),
  }
  if (event.message !== undefined) wire.message = event.message
  if (event.source !== undefined) wire.source = event.source
  if (event.value !== undefined) wire.value = event.value
  if (event.attrs !== undefined) wire.attrs = event.attrs
  if (event.time !== undefined) wire.time = event.time
  return wire
}

export function fromWire(wire: WireEvent, member: string, memberName: string): ChorusEvent {
  const parts = partsOfIdBytes(wire.id)
  const event: ChorusEvent = {
    id: encodeId(wire.id),
    ts: parts.ts,
    member,
    memberName,
    seq: parts.seq,
    type: wire.type,
    severity: severityOfRank(wire.severity),
  }
  if (wire.message !== undefined) event.message = wire.message
  if (wire.source !== undefined) event.source = wire.source
  if (wire.value !== undefined) event.value = wire.value
  if (wire.attrs !== undefined) event.attrs = wire.attrs
  if (wire.time !== undefined) event.time = wire.time
  return event
}
