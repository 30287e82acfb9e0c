import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decodeId,
  encodeId,
  encodeIdParts,
  ID_LENGTH,
  idBytes,
  memberTag,
  parseId,
} from '../../node/event/id.ts'

const tsArb = fc.integer({ min: 0, max: 2 ** 48 - 1 })
const seqArb = fc.integer({ min: 0, max: 2 ** 40 - 1 })
const tagArb = fc.uint8Array({ minLength: 5, maxLength: 5 })

function compareTuples(a: [number, Uint8Array, number], b: [number, Uint8Array, number]): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1
  const t = Buffer.compare(a[1], b[1])
  if (t !== 0) return t
  return a[2] === b[2] ? 0 : a[2] < b[2] ? -1 : 1
}

describe('event ids', () => {
  it('round-trip their parts through text', () => {
    fc.assert(
      fc.property(tsArb, tagArb, seqArb, (ts, tag, seq) => {
        const id = encodeIdParts(ts, tag, seq)
        const parts = parseId(id)
        expect(parts?.ts).toBe(ts)
        expect(parts?.seq).toBe(seq)
        expect(Buffer.compare(parts?.tag ?? new Uint8Array(), tag)).toBe(0)
      }),
      { numRuns: 2000 },
    )
  })

  it('sort as strings and as bytes exactly as (ts, member, seq) do', () => {
    const tuple = fc.tuple(tsArb, tagArb, seqArb)
    fc.assert(
      fc.property(tuple, tuple, (a, b) => {
        const expected = Math.sign(compareTuples(a, b))
        const ida = encodeIdParts(...a)
        const idb = encodeIdParts(...b)
        expect(Math.sign(ida < idb ? -1 : ida > idb ? 1 : 0)).toBe(expected)
        expect(Math.sign(Buffer.compare(idBytes(...a), idBytes(...b)))).toBe(expected)
      }),
      { numRuns: 5000 },
    )
  })

  it('are URL-safe and at most 32 characters', () => {
    fc.assert(
      fc.property(tsArb, tagArb, seqArb, (ts, tag, seq) => {
        const id = encodeIdParts(ts, tag, seq)
        expect(id).toHaveLength(ID_LENGTH)
        expect(ID_LENGTH).toBeLessThanOrEqual(32)
        expect(encodeURIComponent(id)).toBe(id)
      }),
    )
  })

  it('name their member through the tag of its peer id', () => {
    const peer = '12D3KooWCWucp3XCJtHTmvGC5G2D8XjitML53SPtmswezsD92MWL'
    const id = encodeIdParts(1_700_000_000_000, memberTag(peer), 42)
    expect(Buffer.compare(parseId(id)?.tag ?? new Uint8Array(), memberTag(peer))).toBe(0)
    expect(Buffer.compare(memberTag(peer), memberTag(`${peer}x`))).not.toBe(0)
  })

  it('reject malformed text', () => {
    const good = encodeId(idBytes(1_795_702_970_891, Uint8Array.of(250, 9, 200, 77, 31), 123_456))
    expect(decodeId(good)).toBeDefined()
    expect(decodeId(good.slice(1))).toBeUndefined()
    expect(decodeId(`${good}0`)).toBeUndefined()
    expect(decodeId(good.replace(/.$/, 'U'))).toBeUndefined() // U is not in the alphabet
    expect(decodeId(`8${good.slice(1)}`)).toBeUndefined() // padding bits must be zero
    expect(decodeId(good.toLowerCase())).toBeUndefined()
    fc.assert(
      fc.property(fc.string(), (text) => {
        const bytes = decodeId(text)
        if (bytes !== undefined) expect(encodeId(bytes)).toBe(text)
      }),
    )
  })
})
