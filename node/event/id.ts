// Event ids. An id is 16 bytes: 48 bits of `ts` (ms since the epoch), a 40-bit
// tag of the owning member's peer id, and 40 bits of the member's `seq`, all
// big-endian, so that byte-wise order of ids is the array's order of events
// (ts, member, seq). As text it is 26 characters of Crockford base32, an
// alphabet that is URL-safe and sorts in ASCII order, so comparing two id
// strings compares two events, like a ULID.

import { createHash } from 'node:crypto'

export const ID_BYTES = 16
export const ID_LENGTH = 26
export const TAG_BYTES = 5
export const MAX_SEQ = 2 ** 40 - 1
export const MAX_TS = 2 ** 48 - 1

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const DECODE = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i

/** The parts an id is made of. */
export interface IdParts {
  ts: number
  /** 5 bytes naming the member; see `memberTag`. */
  tag: Uint8Array
  seq: number
}

/** The 40-bit tag of a member: the first 5 bytes of SHA-256 of its peer id text. */
export function memberTag(peerId: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(peerId).digest().subarray(0, TAG_BYTES))
}

/** Hex form of a tag, used as a map key for members. */
export function tagHex(tag: Uint8Array): string {
  return Buffer.from(tag.buffer, tag.byteOffset, tag.byteLength).toString('hex')
}

/** Writes the 16 id bytes into `out` at `offset` (so keys can embed them without a copy). */
export function writeIdBytes(
  out: Uint8Array,
  offset: number,
  ts: number,
  tag: Uint8Array,
  seq: number,
): void {
  const tsHigh = Math.floor(ts / 2 ** 16)
  out[offset] = (tsHigh >>> 24) & 0xff
  out[offset + 1] = (tsHigh >>> 16) & 0xff
  out[offset + 2] = (tsHigh >>> 8) & 0xff
  out[offset + 3] = tsHigh & 0xff
  out[offset + 4] = (ts >>> 8) & 0xff
  out[offset + 5] = ts & 0xff
  out.set(tag, offset + 6)
  const seqHigh = Math.floor(seq / 2 ** 32)
  out[offset + 11] = seqHigh & 0xff
  out[offset + 12] = (seq >>> 24) & 0xff
  out[offset + 13] = (seq >>> 16) & 0xff
  out[offset + 14] = (seq >>> 8) & 0xff
  out[offset + 15] = seq & 0xff
}

export function idBytes(ts: number, tag: Uint8Array, seq: number): Uint8Array {
  const out = new Uint8Array(ID_BYTES)
  writeIdBytes(out, 0, ts, tag, seq)
  return out
}

/** The `ts` of 16 id bytes at `offset`. */
export function tsOfIdBytes(b: Uint8Array, o = 0): number {
  return (
    (b[o] as number) * 2 ** 40 +
    (b[o + 1] as number) * 2 ** 32 +
    (((b[o + 2] as number) << 24) >>> 0) +
    (((b[o + 3] as number) << 16) | ((b[o + 4] as number) << 8) | (b[o + 5] as number))
  )
}

/** The `seq` of 16 id bytes at `offset`. */
export function seqOfIdBytes(b: Uint8Array, o = 0): number {
  return (
    (b[o + 11] as number) * 2 ** 32 +
    ((((b[o + 12] as number) << 24) |
      ((b[o + 13] as number) << 16) |
      ((b[o + 14] as number) << 8) |
      (b[o + 15] as number)) >>>
      0)
  )
}

export function partsOfIdBytes(bytes: Uint8Array, offset = 0): IdParts {
  return {
    ts: tsOfIdBytes(bytes, offset),
    tag: bytes.slice(offset + 6, offset + 11),
    seq: seqOfIdBytes(bytes, offset),
  }
}

const ALPHABET_CODES = Array.from(ALPHABET, (c) => c.charCodeAt(0))

/** Encodes 16 id bytes as 26 base32 characters (2 leading zero bits, then the 128 bits). */
export function encodeId(bytes: Uint8Array, offset = 0): string {
  // Character codes first, then one string: every event a query returns
  // gets its id here, and 26 appends made as many short-lived strings (and
  // a string of 13 nested parts, flattened again when first compared).
  const codes: number[] = []
  let acc = 0
  let bits = 2
  for (let i = offset; i < offset + ID_BYTES; i++) {
    acc = ((acc << 8) | (bytes[i] as number)) & 0x1fff
    bits += 8
    while (bits >= 5) {
      bits -= 5
      codes.push(ALPHABET_CODES[(acc >>> bits) & 31] as number)
    }
  }
  return String.fromCharCode(...codes)
}

/** Decodes an id string into its 16 bytes, or `undefined` if it is not a well-formed id. */
export function decodeId(text: string): Uint8Array | undefined {
  if (typeof text !== 'string' || text.length !== ID_LENGTH) return undefined
  const out = new Uint8Array(ID_BYTES)
  let acc = 0
  let bits = 0
  let n = 0
  for (let i = 0; i < ID_LENGTH; i++) {
    const code = text.charCodeAt(i)
    const value = code < 128 ? (DECODE[code] as number) : -1
    if (value < 0) return undefined
    if (i === 0) {
      // The first character carries the 2 padding bits, which must be zero.
      if (value > 7) return undefined
      acc = value
      bits = 3
      continue
    }
    acc = ((acc << 5) | value) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[n++] = (acc >>> bits) & 0xff
    }
  }
  return out
}

export function encodeIdParts(ts: number, tag: Uint8Array, seq: number): string {
  return encodeId(idBytes(ts, tag, seq))
}

/** Parses an id string into its parts, or `undefined` if malformed. */
export function parseId(text: string): IdParts | undefined {
  const bytes = decodeId(text)
  return bytes === undefined ? undefined : partsOfIdBytes(bytes)
}
