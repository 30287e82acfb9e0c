// Key layout of a member's RocksDB store. One keyspace, one leading byte per
// kind of record, so that every query is a range scan or a point lookup:
//
//   'E' id(16)                       → event value      time order; id lookup
//   'T' type 0x00 id(16)             → (empty)          time order within a type
//   'Y' type                         → (empty)          catalogue of types seen
//   'M' name                         → meta value       format, last seq and ts
//   'I' key                          → idempotency record (ids, body hash, time)
//   'J' at(6) key                    → (empty)          idempotency keys by age
//   'B' res(1) start(6) type 0x00 sev(1) → rollup bucket  time order per resolution
//   'N' type 0x00 sev(1)             → count            events ever logged, by type and severity
//   'H' tag(5) id(16)                → event value      another member's events held here (replicas)
//   'U' tag(5) type 0x00 id(16)      → (empty)          their type index
//   'V' tag(5) type                  → (empty)          their catalogue of types
//   'G' tag(5)                       → held mark        how far this member holds them (seq, id, peer id)
//   'K' tag(5) res(1) start(6) type 0x00 sev(1) → rollup bucket  their rollups, as 'B' is for its own
//   'O' tag(5) type 0x00 sev(1)      → count            their events held here, by type and severity, as 'N'
//
// Ids are big-endian (ts, member tag, seq), so the event keys of a time range
// are contiguous, and so are a type's index keys within the same range.
// Held events keep the same layout under their origin's tag ('H' for 'E',
// 'U' for 'T', 'V' for 'Y'): an origin's copy is one contiguous range,
// dropped with one DeleteRange, and read by the same scan as a member's own
// events (EventKeys). Every event and index key ends with its 16 id bytes. Types
// cannot contain 0x00 (TYPE_PATTERN), which makes the separator unambiguous.
//
// Nothing outside node/store/ builds or takes apart these keys: the rest of
// the member asks the store in domain terms (event-scan.ts, event-log.ts).

import type { IdBound } from '../../protocol/slice.ts'
import { ID_BYTES, idBytes, seqOfIdBytes, TAG_BYTES } from '../event/id.ts'

export const EVENT = 0x45 // 'E'
export const TYPE_INDEX = 0x54 // 'T'
export const TYPE_CATALOGUE = 0x59 // 'Y'
export const META = 0x4d // 'M'
export const IDEMPOTENCY = 0x49 // 'I'
export const IDEMPOTENCY_AGE = 0x4a // 'J'
export const ROLLUP = 0x42 // 'B'
export const TOTAL = 0x4e // 'N'

export const HELD = 0x48 // 'H'
export const HELD_TYPE_INDEX = 0x55 // 'U'
export const HELD_TYPE_CATALOGUE = 0x56 // 'V'
export const HELD_MARK = 0x47 // 'G'
export const HELD_ROLLUP = 0x4b // 'K'
export const HELD_TOTAL = 0x4f // 'O'

const ZERO_TAG = new Uint8Array(5)

/** The first byte of every event key: the prefix of the time index. Never written to. */
export const EVENT_PREFIX: Buffer = Buffer.of(EVENT)

/**
 * Where one member's events are kept in this store: this member's own, or
 * an origin's held here. Its event keys are `time` and the 16 id bytes, its
 * type index keys `typePrefix(type)` and the 16 id bytes.
 */
export interface EventKeys {
  readonly time: Buffer
  typePrefix(type: string): Buffer
}

/** The keys of this member's own events. */
export const OWN_KEYS: EventKeys = { time: EVENT_PREFIX, typePrefix }

/** The keys of the events of the origin with this tag, held here. */
export function heldKeys(tag: Uint8Array): EventKeys {
  const time = Buffer.concat([Buffer.of(HELD), tag])
  return {
    time,
    typePrefix(type) {
      const name = Buffer.from(type, 'utf8')
      const key = Buffer.allocUnsafe(2 + tag.length + name.length)
      key[0] = HELD_TYPE_INDEX
      key.set(tag, 1)
      name.copy(key, 1 + tag.length)
      key[1 + tag.length + name.length] = 0
      return key
    },
  }
}

/** The key of the event with these 16 id bytes under `time` (OWN_KEYS.time by default). */
export function eventKey(id: Uint8Array, time: Buffer = EVENT_PREFIX): Buffer {
  const key = Buffer.allocUnsafe(time.length + ID_BYTES)
  time.copy(key, 0)
  key.set(id, time.length)
  return key
}

/**
 * Every event key under `time` (OWN_KEYS.time or an origin's), from the
 * first id at or after `fromId` when given: in id order, so in `seq` order.
 */
export function eventKeyRange(time: Buffer, fromId?: Uint8Array): { gte: Buffer; lt: Buffer } {
  return { gte: fromId === undefined ? time : eventKey(fromId, time), lt: afterPrefix(time) }
}

/** True for the key of one of this member's own events ('E'), not a copy's or an index's. */
export function isOwnEventKey(key: Uint8Array): boolean {
  return key[0] === EVENT && key.length === 1 + ID_BYTES
}

/** True for the key of another member's event held here ('H'). */
export function isHeldEventKey(key: Uint8Array): boolean {
  return key[0] === HELD && key.length === 1 + TAG_BYTES + ID_BYTES
}

/** The 16 id bytes of an event or type index key, own or held: its last bytes (a view, not a copy). */
export function idOfEventKey(key: Buffer): Buffer {
  return key.subarray(key.length - ID_BYTES)
}

/** The `seq` of the event an event or type index key names, read in place. */
export function seqOfEventKey(key: Uint8Array): number {
  return seqOfIdBytes(key, key.length - ID_BYTES)
}

/** The smallest id at or after `ts`: the boundary of a period over ts in id order. */
export function idAtTs(ts: number): Uint8Array {
  return idBytes(ts, ZERO_TAG, 0)
}

export function typePrefix(type: string): Buffer {
  const name = Buffer.from(type, 'utf8')
  const key = Buffer.allocUnsafe(2 + name.length)
  key[0] = TYPE_INDEX
  name.copy(key, 1)
  key[1 + name.length] = 0
  return key
}

export function typeIndexKey(prefix: Buffer, id: Uint8Array): Buffer {
  const key = Buffer.allocUnsafe(prefix.length + ID_BYTES)
  prefix.copy(key, 0)
  key.set(id, prefix.length)
  return key
}

/** The 16 id bytes of a type index key (a view of the key): its last bytes, whatever the type. */
export const idOfTypeIndexKey = idOfEventKey

/**
 * The key range, under `prefix` (EVENT_PREFIX or a typePrefix), of the ids
 * between two bounds, scanned from the upper end down when `reverse`.
 */
export function idRange(prefix: Buffer, lower: IdBound, upper: IdBound, reverse: boolean) {
  const lowerKey = typeIndexKey(prefix, lower.id)
  const upperKey = typeIndexKey(prefix, upper.id)
  return {
    ...(lower.inclusive ? { gte: lowerKey } : { gt: lowerKey }),
    ...(upper.inclusive ? { lte: upperKey } : { lt: upperKey }),
    reverse,
  }
}

export function typeCatalogueKey(type: string): Buffer {
  return Buffer.concat([Buffer.of(TYPE_CATALOGUE), Buffer.from(type, 'utf8')])
}

/** Every key of the type catalogue. */
export function typeCatalogueRange(): { gt: Buffer; lt: Buffer } {
  return { gt: Buffer.of(TYPE_CATALOGUE), lt: Buffer.of(TYPE_CATALOGUE + 1) }
}

export function typeOfCatalogueKey(key: Buffer): string {
  return key.toString('utf8', 1)
}

export function metaKey(name: string): Buffer {
  return Buffer.concat([Buffer.of(META), Buffer.from(name, 'utf8')])
}

export function idempotencyKey(key: string): Buffer {
  return Buffer.concat([Buffer.of(IDEMPOTENCY), Buffer.from(key, 'utf8')])
}

export function idempotencyAgeKey(atMs: number, key: string): Buffer {
  const out = Buffer.allocUnsafe(7 + Buffer.byteLength(key))
  out[0] = IDEMPOTENCY_AGE
  out.writeUIntBE(atMs, 1, 6)
  out.write(key, 7, 'utf8')
  return out
}

/** Every idempotency age key of a key remembered before `beforeMs`. */
export function idempotencyAgeRange(beforeMs: number): { gte: Buffer; lt: Buffer } {
  return { gte: Buffer.of(IDEMPOTENCY_AGE), lt: idempotencyAgeKey(beforeMs, '') }
}

/** The idempotency key (as the client sent it) that an age key files. */
export function idempotencyKeyOfAgeKey(ageKey: Buffer): string {
  return ageKey.toString('utf8', 7)
}

/** Key of a rollup bucket: resolution index, bucket start (ms), type, severity rank. */
export function rollupKey(
  resolution: number,
  startMs: number,
  type: string,
  severity: number,
): Buffer {
  const name = Buffer.from(type, 'utf8')
  const key = Buffer.allocUnsafe(10 + name.length)
  key[0] = ROLLUP
  key[1] = resolution
  key.writeUIntBE(startMs, 2, 6)
  name.copy(key, 8)
  key[8 + name.length] = 0
  key[9 + name.length] = severity
  return key
}

/** The first rollup key of a resolution at or after `startMs`. */
export function rollupKeyAt(resolution: number, startMs: number): Buffer {
  const key = Buffer.allocUnsafe(8)
  key[0] = ROLLUP
  key[1] = resolution
  key.writeUIntBE(startMs, 2, 6)
  return key
}

/** A rollup key's parts, own ('B') or held ('K', then the origin's tag: `tagged`). */
export function parseRollupKey(
  key: Uint8Array,
  tagged = false,
): {
  resolution: number
  startMs: number
  type: string
  severity: number
} {
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength)
  const at = tagged ? TAG_BYTES : 0
  return {
    resolution: b[1 + at] as number,
    startMs: b.readUIntBE(2 + at, 6),
    type: b.toString('utf8', 8 + at, b.length - 2),
    severity: b[b.length - 1] as number,
  }
}

/** Key of a rollup bucket of the origin with this tag, held here: 'K', the tag, then as rollupKey. */
export function heldRollupKey(
  tag: Uint8Array,
  resolution: number,
  startMs: number,
  type: string,
  severity: number,
): Buffer {
  return Buffer.concat([
    Buffer.of(HELD_ROLLUP),
    tag,
    rollupKey(resolution, startMs, type, severity).subarray(1),
  ])
}

/** The first held rollup key of an origin's resolution at or after `startMs`. */
export function heldRollupKeyAt(tag: Uint8Array, resolution: number, startMs: number): Buffer {
  return Buffer.concat([Buffer.of(HELD_ROLLUP), tag, rollupKeyAt(resolution, startMs).subarray(1)])
}

/** Key of the count of events ever logged of one type and severity rank. */
export function totalKey(type: string, severity: number): Buffer {
  const name = Buffer.from(type, 'utf8')
  const key = Buffer.allocUnsafe(3 + name.length)
  key[0] = TOTAL
  name.copy(key, 1)
  key[1 + name.length] = 0
  key[2 + name.length] = severity
  return key
}

/** Every total's key. */
export function totalsRange(): { gt: Buffer; lt: Buffer } {
  return { gt: Buffer.of(TOTAL), lt: Buffer.of(TOTAL + 1) }
}

export function parseTotalKey(key: Buffer): { type: string; severity: number } {
  return { type: key.toString('utf8', 1, key.length - 2), severity: key[key.length - 1] as number }
}

/** Key of the count of an origin's events held here, of one type and severity rank. */
export function heldTotalKey(tag: Uint8Array, type: string, severity: number): Buffer {
  return Buffer.concat([Buffer.of(HELD_TOTAL), tag, totalKey(type, severity).subarray(1)])
}

/** Every held total's key. */
export function heldTotalsRange(): { gt: Buffer; lt: Buffer } {
  return { gt: Buffer.of(HELD_TOTAL), lt: Buffer.of(HELD_TOTAL + 1) }
}

/** The origin's tag, type and severity rank of a held total's key. */
export function parseHeldTotalKey(key: Buffer): { tag: Buffer; type: string; severity: number } {
  return {
    tag: key.subarray(1, 1 + TAG_BYTES),
    ...parseTotalKey(key.subarray(TAG_BYTES)),
  }
}

/** Key of an origin's type in the catalogue of its held events. */
export function heldCatalogueKey(tag: Uint8Array, type: string): Buffer {
  return Buffer.concat([Buffer.of(HELD_TYPE_CATALOGUE), tag, Buffer.from(type, 'utf8')])
}

/** Every key of the catalogue of types held for every origin. */
export function heldCatalogueRange(): { gt: Buffer; lt: Buffer } {
  return { gt: Buffer.of(HELD_TYPE_CATALOGUE), lt: Buffer.of(HELD_TYPE_CATALOGUE + 1) }
}

/** The origin's tag and the type a held catalogue key files. */
export function parseHeldCatalogueKey(key: Buffer): { tag: Buffer; type: string } {
  return { tag: key.subarray(1, 1 + TAG_BYTES), type: key.toString('utf8', 1 + TAG_BYTES) }
}

/** Key of the mark of an origin's held events. */
export function heldMarkKey(tag: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(HELD_MARK), tag])
}

/** Every held mark's key. */
export function heldMarkRange(): { gt: Buffer; lt: Buffer } {
  return { gt: Buffer.of(HELD_MARK), lt: Buffer.of(HELD_MARK + 1) }
}

/** The origin's tag of a held mark key. */
export function tagOfHeldMarkKey(key: Buffer): Buffer {
  return key.subarray(1, 1 + TAG_BYTES)
}

/** Every key of one origin's held events, index and catalogue, as ranges to clear, and its mark. */
export function heldRanges(tag: Uint8Array): Array<{ gte: Buffer; lt: Buffer }> {
  const within = (kind: number) => {
    const start = Buffer.concat([Buffer.of(kind), tag])
    return { gte: start, lt: afterPrefix(start) }
  }
  return [
    within(HELD),
    within(HELD_TYPE_INDEX),
    within(HELD_TYPE_CATALOGUE),
    within(HELD_ROLLUP),
    within(HELD_TOTAL),
  ]
}

/** The smallest key past every key that starts with `prefix`. */
function afterPrefix(prefix: Buffer): Buffer {
  const out = Buffer.from(prefix)
  for (let i = out.length - 1; i >= 0; i--) {
    if ((out[i] as number) < 0xff) {
      out[i] = (out[i] as number) + 1
      return out.subarray(0, i + 1)
    }
  }
  return Buffer.of(0xff, 0xff)
}
