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
//
// Ids are big-endian (ts, member tag, seq), so the event keys of a time range
// are contiguous, and so are a type's index keys within the same range. Types
// cannot contain 0x00 (TYPE_PATTERN), which makes the separator unambiguous.

import { ID_BYTES, idBytes, writeIdBytes } from '../event/id.ts'

export const EVENT = 0x45 // 'E'
export const TYPE_INDEX = 0x54 // 'T'
export const TYPE_CATALOGUE = 0x59 // 'Y'
export const META = 0x4d // 'M'
export const IDEMPOTENCY = 0x49 // 'I'
export const IDEMPOTENCY_AGE = 0x4a // 'J'
export const ROLLUP = 0x42 // 'B'
export const TOTAL = 0x4e // 'N'

const ZERO_TAG = new Uint8Array(5)

export function eventKey(ts: number, tag: Uint8Array, seq: number): Buffer {
  const key = Buffer.allocUnsafe(1 + ID_BYTES)
  key[0] = EVENT
  writeIdBytes(key, 1, ts, tag, seq)
  return key
}

export function eventKeyOfId(id: Uint8Array): Buffer {
  const key = Buffer.allocUnsafe(1 + ID_BYTES)
  key[0] = EVENT
  key.set(id, 1)
  return key
}

/** The smallest event key at or after `ts`. */
export function eventKeyAtTs(ts: number): Buffer {
  return eventKeyOfId(idBytes(ts, ZERO_TAG, 0))
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

export function typeCatalogueKey(type: string): Buffer {
  return Buffer.concat([Buffer.of(TYPE_CATALOGUE), Buffer.from(type, 'utf8')])
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

export function parseRollupKey(key: Uint8Array): {
  resolution: number
  startMs: number
  type: string
  severity: number
} {
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength)
  return {
    resolution: b[1] as number,
    startMs: b.readUIntBE(2, 6),
    type: b.toString('utf8', 8, b.length - 2),
    severity: b[b.length - 1] as number,
  }
}

export function totalKey(type: string, severity: number): Buffer {
  const name = Buffer.from(type, 'utf8')
  const key = Buffer.allocUnsafe(3 + name.length)
  key[0] = TOTAL
  name.copy(key, 1)
  key[1 + name.length] = 0
  key[2 + name.length] = severity
  return key
}
