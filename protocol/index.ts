// What crosses the wire between members: protocol ids and versions, message
// types, their binary codec and the size limits every decoder enforces. Pure
// code: it imports nothing from node/ or exporter/ and does no I/O, so it can
// be fuzzed on its own. One module per protocol, each with its id, its
// messages and their limits; framing.ts holds what they share, and
// event-value.ts the event as its owner stores it (on disk and on the wire).
//
// Each protocol id carries its own version, raised when its messages change:
// a member dialled on a version it does not speak refuses it in libp2p's
// negotiation, and the coordinator reports it as `unsupported`.

export * from './announcement.ts'
export * from './event-value.ts'
export {
  ERROR_CODES,
  type ErrorCode,
  encodeError,
  MAX_ANSWER_BYTES,
  MAX_REQUEST_BYTES,
  ProtocolError,
} from './framing.ts'
export * from './group.ts'
export * from './lookup.ts'
export * from './replicate.ts'
export * from './rollup.ts'
export * from './settings.ts'
export * from './slice.ts'
export * from './stats.ts'
export * from './swim.ts'
