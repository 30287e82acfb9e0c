// Conversions between events as the member handles them and as they cross
// the wire (protocol/codec.ts), where the owner is implied by the stream.
// A WireEvent carries the same fields as a stored value, so decoding one
// is the store's own `toEvent`.

import type { WireEvent } from '../../protocol/index.ts'
import type { ChorusEvent } from '../event/event.ts'
import { severityRank } from '../event/event.ts'
import { decodeId, encodeId, partsOfIdBytes } from '../event/id.ts'
import { toEvent } from '../store/codec.ts'

export function toWire(event: ChorusEvent): WireEvent {
  const { id, ts: _ts, member: _member, memberName: _name, seq: _seq, severity, ...fields } = event
  return { ...fields, id: decodeId(id) as Uint8Array, severity: severityRank(severity) }
}

export function fromWire(wire: WireEvent, member: string, memberName: string): ChorusEvent {
  return toEvent(encodeId(wire.id), partsOfIdBytes(wire.id), wire, member, memberName)
}
