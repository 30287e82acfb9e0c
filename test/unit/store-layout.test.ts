import { describe, expect, it } from 'vitest'
import { idBytes, memberTag, seqOfIdBytes } from '../../node/event/id.ts'
import { CorruptValueError, decodeEventValue, encodeEventValue } from '../../node/store/codec.ts'
import { openEventLog } from '../../node/store/event-log.ts'
import { queryIdRange } from '../../node/store/event-scan.ts'
import {
  eventKey,
  idempotencyAgeKey,
  idempotencyKeyOfAgeKey,
  idOfEventKey,
  idOfTypeIndexKey,
  parseTotalKey,
  seqOfEventKey,
  totalKey,
  typeCatalogueKey,
  typeIndexKey,
  typeOfCatalogueKey,
  typePrefix,
} from '../../node/store/keys.ts'
import {
  EVENT_VALUE_FORMAT,
  encodeEventValue as encodeValue,
  eventValueProblem,
  readEventValue,
  unpackEventValue,
} from '../../protocol/event-value.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'

const TAG = memberTag('member-a')
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

describe('the stored event value', () => {
  // Pinned bytes, written by the store before the format moved to
  // protocol/event-value.ts: a change here changes every store on disk.
  const FULL =
    '9801ac687474702e7265717565737402a4736c6f77a56e67696e78cb3ff800000000000083a470617468a22f61a16e03a26f6bc3b4323032302d30312d30315430303a30303a30305a'
  const full = {
    type: 'http.request',
    message: 'slow',
    source: 'nginx',
    value: 1.5,
    attrs: { path: '/a', n: 3, ok: true },
    time: '2020-01-01T00:00:00Z',
  }

  it('keeps the bytes of format 1, from ingest and from wire fields alike', () => {
    expect(hex(encodeEventValue({ ...full, severity: 'warn' }))).toBe(FULL)
    expect(hex(encodeValue(full, 2))).toBe(FULL)
    expect(hex(encodeValue({ type: 'app.login' }, 1))).toBe('9801a96170702e6c6f67696e01c0c0c0c0c0')
  })

  it('reads back what it wrote, both as the store trusts it and as a receiver checks it', () => {
    const bytes = encodeValue(full, 2)
    expect(decodeEventValue(bytes)).toStrictEqual({ ...full, severity: 2 })
    expect(unpackEventValue(encodeValue({ type: 'a' }, 0))).toStrictEqual({
      type: 'a',
      severity: 0,
    })
    const unpacked = [EVENT_VALUE_FORMAT, 'a', 4, null, null, 7, null, 12]
    expect(eventValueProblem(unpacked)).toBeUndefined()
    expect(readEventValue({ id: 1 }, unpacked)).toStrictEqual({
      id: 1,
      type: 'a',
      severity: 4,
      value: 7,
      time: 12,
    })
  })

  it('names the first bad field of a value from another member', () => {
    const good = [EVENT_VALUE_FORMAT, 'a', 1, null, null, null, null, null]
    const bad = (at: number, v: unknown) => good.map((f, i) => (i === at ? v : f))
    expect(eventValueProblem([2, ...good.slice(1)])).toBe('event fields')
    expect(eventValueProblem(good.slice(0, 7))).toBe('event fields')
    expect(eventValueProblem(bad(2, 5))).toBe('event type or severity')
    expect(eventValueProblem(bad(2, 1.5))).toBe('event type or severity')
    expect(eventValueProblem(bad(3, 3))).toBe('event message')
    expect(eventValueProblem(bad(5, Number.NaN))).toBe('event value')
    expect(eventValueProblem(bad(6, [1]))).toBe('event attrs')
    expect(eventValueProblem(bad(6, { k: { nested: 1 } }))).toBe('event attr')
    expect(eventValueProblem(bad(6, JSON.parse('{"__proto__": 1}')))).toBe('event attr')
    expect(eventValueProblem(bad(7, true))).toBe('event time')
  })

  it('is refused by the store as corrupt when it is not of a known format', () => {
    expect(() => decodeEventValue(Buffer.from([0x92, 0x02, 0xa1, 0x61]))).toThrow(CorruptValueError)
    expect(unpackEventValue(Buffer.from([0xc0]))).toBeUndefined()
  })
})

describe('the key layout', () => {
  it('builds and takes apart every key it writes', () => {
    const id = idBytes(1_800_000_000_000, TAG, 42)
    const key = eventKey(id)
    expect(hex(key)).toBe(`45${hex(id)}`)
    expect(hex(idOfEventKey(key))).toBe(hex(id))
    expect(seqOfEventKey(key)).toBe(42)
    expect(hex(idOfTypeIndexKey(typeIndexKey(typePrefix('http.request'), id)))).toBe(hex(id))
    expect(typeOfCatalogueKey(typeCatalogueKey('http.request'))).toBe('http.request')
    expect(idempotencyKeyOfAgeKey(idempotencyAgeKey(1234, 'retry-é'))).toBe('retry-é')
    const total = totalKey('http.request', 3)
    expect(total).toEqual(Buffer.from('Nhttp.request\u0000\u0003', 'latin1'))
    expect(parseTotalKey(total)).toEqual({ type: 'http.request', severity: 3 })
  })

  it("narrows a query's period by its id bounds and its position in scan direction", () => {
    const at = (ts: number, seq = 0) => idBytes(ts, TAG, seq)
    const period = { fromMs: 1000, toMs: 2000 }
    const range = queryIdRange({
      ...period,
      reverse: false,
      lower: { id: at(1500), inclusive: true },
      position: { id: at(1600, 3), inclusive: false },
    })
    expect(hex(range.lower.id)).toBe(hex(at(1600, 3)))
    expect(range.lower.inclusive).toBe(false)
    expect(range.upper).toMatchObject({ inclusive: false })
    expect(seqOfIdBytes(range.upper.id)).toBe(0)
    const desc = queryIdRange({
      ...period,
      reverse: true,
      position: { id: at(1600), inclusive: true },
    })
    expect(hex(desc.upper.id)).toBe(hex(at(1600)))
    expect(desc.upper.inclusive).toBe(true)
  })

  it('keeps the totals of every type and severity across a restart', async () => {
    const dir = await tempDir()
    try {
      const log = await openEventLog({ dir, tag: TAG })
      log.append([{ events: [{ type: 'a.b', severity: 'warn' }, { type: 'a.b' }, { type: 'c' }] }])
      const before = log.totals()
      await log.close()
      const reopened = await openEventLog({ dir, tag: TAG })
      expect(reopened.totals()).toEqual(expect.arrayContaining(before))
      expect(reopened.totals()).toHaveLength(3)
      expect(reopened.types()).toEqual(['a.b', 'c'])
      reopened.append([{ events: [{ type: 'a.b', severity: 'warn' }] }])
      expect(reopened.totals()).toContainEqual({ type: 'a.b', severity: 2, count: 2 })
      await reopened.close()
    } finally {
      await removeTempDirs()
    }
  })
})
