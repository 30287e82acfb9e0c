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
export * from './event-value.ts'
export * from './slice.ts'

// Each protocol id carries its own version, raised when its messages change:
// a member dialled on a version it does not speak refuses it in libp2p's
// negotiation, and the coordinator reports it as `unsupported`.
const PREFIX = '/chorus'

/**
 * `/chorus/slice/2`: one request, a stream of event batches, one trailer (or
 * an error). Version 2: events travel as their owner stores them.
 */
export const SLICE_PROTOCOL = `${PREFIX}/slice/2`
/** `/chorus/lookup/2`: one event by id from its owner, as it stores it. */
export const LOOKUP_PROTOCOL = `${PREFIX}/lookup/2`
/** `/chorus/rollup/1`: one request, series of buckets, one trailer (or an error). */
export const ROLLUP_PROTOCOL = `${PREFIX}/rollup/1`
/** `/chorus/stats/1`: a member's counters for the array-wide metrics. */
export const STATS_PROTOCOL = `${PREFIX}/stats/1`
/**
 * `/chorus/peers/2`: the members a member knows of and their addresses. A
 * member that joins asks the member it joined through, and dials them all,
 * instead of learning of them one gossip relay at a time. Version 2: each
 * member's word comes with its own signature, so the member passing it on
 * cannot forge it.
 */
export const PEERS_PROTOCOL = `${PREFIX}/peers/2`
/**
 * Gossipsub topic of the health rule set in force (JSON, see
 * node/health/config.ts). Version 2: each set carries its author's signature.
 */
export const HEALTH_CONFIG_TOPIC = `${PREFIX}/health-config/2`
/**
 * Gossipsub topic of membership announcements. Version 2: each is a signed
 * announcement (its subject's signature inside, so it can be passed on).
 */
export const MEMBERS_TOPIC = `${PREFIX}/members/2`
