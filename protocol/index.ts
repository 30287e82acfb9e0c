// What crosses the wire between members: protocol ids and versions, message
// types, their binary codec and the size limits every decoder enforces. Pure
// code: it imports nothing from node/ or exporter/ and does no I/O, so it can
// be fuzzed on its own.
//
// Framing: every message on a chorus stream is an unsigned-varint length
// prefix followed by that many bytes of MessagePack (lpStream from
// @libp2p/utils). Readers pass the limit for the message they expect as
// `maxDataLength`, so an oversized prefix is refused before a byte of it is
// allocated; the codec then checks the shape of what it decoded.

export * from './codec.ts'
export * from './slice.ts'

/** Version of chorus's own protocols; part of every protocol id. */
export const PROTOCOL_VERSION = 1
const PREFIX = '/chorus'

/** `/chorus/slice/1`: one request, a stream of event batches, one trailer (or an error). */
export const SLICE_PROTOCOL = `${PREFIX}/slice/${PROTOCOL_VERSION}`
/** `/chorus/lookup/1`: one event by id from its owner. */
export const LOOKUP_PROTOCOL = `${PREFIX}/lookup/${PROTOCOL_VERSION}`
/** `/chorus/rollup/1`: one request, series of buckets, one trailer (or an error). */
export const ROLLUP_PROTOCOL = `${PREFIX}/rollup/${PROTOCOL_VERSION}`
/** `/chorus/stats/1`: a member's counters for the array-wide metrics. */
export const STATS_PROTOCOL = `${PREFIX}/stats/${PROTOCOL_VERSION}`
/** Gossipsub topic of the health rule set in force (JSON, see node/health/config.ts). */
export const HEALTH_CONFIG_TOPIC = `${PREFIX}/health-config/${PROTOCOL_VERSION}`
/** Gossipsub topic of membership announcements. */
export const MEMBERS_TOPIC = `${PREFIX}/members/${PROTOCOL_VERSION}`
