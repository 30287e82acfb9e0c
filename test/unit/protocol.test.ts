import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type Announcement,
  decodeAnnouncement,
  decodeAnswer,
  decodeGroupAnswer,
  decodeGroupRequest,
  decodeLookupReply,
  decodeLookupRequest,
  decodeMore,
  decodeSignedAnnouncement,
  decodeSliceRequest,
  decodeSwim,
  decodeUpdate,
  type EventFields,
  encodeAccusation,
  encodeAnnouncement,
  encodeBatches,
  encodeError,
  encodeEventValue,
  encodeGroupRequest,
  encodeGroupTrailer,
  encodeHead,
  encodeLookupReply,
  encodeLookupRequest,
  encodeMore,
  encodePause,
  encodeSignedAccusation,
  encodeSignedAnnouncement,
  encodeSliceRequest,
  encodeSwim,
  encodeTrailer,
  MAX_ANSWER_BYTES,
  MAX_BATCH_EVENTS,
  MAX_PIGGYBACK,
  MAX_REQUEST_BYTES,
  MAX_SWIM_MESSAGE_BYTES,
  ProtocolError,
  SLICE_MESSAGE_EVENTS,
  type SliceRequest,
  type StoredEvent,
  type WireEvent,
} from '../../protocol/index.ts'

/** An event's value as its owner stores it. */
const storedValue = (f: EventFields) => encodeEventValue(f, f.severity)

const id = fc.uint8Array({ minLength: 16, maxLength: 16 })
const bound = fc.option(fc.record({ id, inclusive: fc.boolean() }), { nil: undefined })
const requestArb: fc.Arbitrary<SliceRequest> = fc
  .record({
    fromMs: fc.integer({ min: 0, max: 2 ** 47 }),
    toMs: fc.integer({ min: 0, max: 2 ** 47 }),
    lower: bound,
    upper: bound,
    position: bound,
    reverse: fc.boolean(),
    types: fc.array(fc.string({ maxLength: 40 }), { maxLength: 10 }),
    minSeverity: fc.integer({ min: 0, max: 4 }),
    text: fc.option(fc.string({ maxLength: 100 }), { nil: undefined }),
    hwm: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
    limit: fc.integer({ min: 1, max: 10_000 }),
    window: fc.integer({ min: 1, max: 10_000 }),
    // Version 4's filters: absent (the request then goes out as version 3) or non-empty.
    notTypes: fc.option(fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 10 }), {
      nil: undefined,
    }),
    attrs: fc.option(
      fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ maxLength: 60 })), {
        minLength: 1,
        maxLength: 16,
      }),
      { nil: undefined },
    ),
  })
  .map((r) => {
    const out: Record<string, unknown> = { ...r }
    for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key]
    return out as unknown as SliceRequest
  })

const eventArb: fc.Arbitrary<WireEvent> = fc
  .record({
    id,
    type: fc.string({ minLength: 1, maxLength: 60 }),
    severity: fc.integer({ min: 0, max: 4 }),
    message: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
    source: fc.option(fc.string({ maxLength: 50 }), { nil: undefined }),
    value: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
    attrs: fc.option(
      fc.dictionary(
        fc
          .string({ minLength: 1, maxLength: 20 })
          .filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k)),
        fc.oneof(fc.string({ maxLength: 30 }), fc.boolean(), fc.integer()),
      ),
      { nil: undefined },
    ),
    time: fc.option(fc.oneof(fc.string({ maxLength: 30 }), fc.integer()), { nil: undefined }),
  })
  .map((e) => {
    const out: Record<string, unknown> = { ...e }
    for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key]
    return out as unknown as WireEvent
  })

/** A wire event as its owner stores it. */
const stored = (e: WireEvent): StoredEvent => ({ id: e.id, value: storedValue(e) })
/** One batch message of events (fewer than the limits). */
const encodeBatch = (events: WireEvent[]) => {
  const [batch, ...rest] = encodeBatches(events.map(stored))
  expect(rest).toEqual([])
  return batch ?? new Uint8Array()
}

/** Only the codec's own error may come out of a decoder. */
function onlyProtocolErrors(decode: () => unknown): void {
  try {
    decode()
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
  }
}

/** Plain JSON of a message, bytes as arrays (Buffer's toJSON runs before a replacer sees it). */
const normalise = (v: unknown) =>
  JSON.parse(
    JSON.stringify(v, (_, x) =>
      x instanceof Uint8Array ? [...x] : x?.type === 'Buffer' && Array.isArray(x.data) ? x.data : x,
    ),
  )

describe('the wire codec', () => {
  it('round-trips slice requests, heads, batches, trailers, errors, lookups and announcements', () => {
    fc.assert(
      fc.property(requestArb, (r) => {
        expect(normalise(decodeSliceRequest(encodeSliceRequest(r)))).toEqual(normalise(r))
      }),
    )
    fc.assert(
      fc.property(fc.array(eventArb, { minLength: 1, maxLength: 50 }), (events) => {
        const decoded = decodeAnswer(encodeBatch(events))
        expect(normalise(decoded)).toEqual(normalise({ kind: 'batch', events }))
      }),
    )
    expect(decodeAnswer(encodeHead(42))).toEqual({ kind: 'head', hwm: 42 })
    expect(decodeAnswer(encodePause())).toEqual({ kind: 'pause' })
    expect(decodeMore(encodeMore(500))).toBe(500)
    expect(() => decodeMore(encodeMore(0))).toThrowError(
      expect.objectContaining({ name: 'ProtocolError' }),
    )
    expect(decodeAnswer(encodeTrailer({ hwm: 9, scanned: 100, more: true }))).toEqual({
      kind: 'trailer',
      trailer: { hwm: 9, scanned: 100, more: true },
    })
    expect(decodeAnswer(encodeError('busy', 'try later'))).toEqual({
      kind: 'error',
      code: 'busy',
      message: 'try later',
    })
    fc.assert(
      fc.property(id, eventArb, (lookupId, event) => {
        expect([...decodeLookupRequest(encodeLookupRequest(lookupId))]).toEqual([...lookupId])
        expect(normalise(decodeLookupReply(encodeLookupReply(stored(event))))).toEqual(
          normalise({ event }),
        )
      }),
    )
    expect(decodeLookupReply(encodeLookupReply(undefined))).toEqual({ event: undefined })
    const announcement: Announcement = {
      peerId: '12D3KooWATU2e9goADgbYTNdziuiBSk4HNyTumrMwB8VxiBLjWkm',
      name: 'a',
      addrs: ['/ip4/127.0.0.1/tcp/7701'],
      http: '127.0.0.1:7700',
      version: '0.1.0',
      seq: 12,
      startedAt: 1,
      sentAt: 2,
      health: 'ok',
      incarnation: 3,
      beat: 4,
      leaving: false,
      settings: '2:00ff00ff00ff00ff',
      skewMs: -40,
    }
    expect(decodeAnnouncement(encodeAnnouncement(announcement))).toEqual(announcement)
    const signature = new Uint8Array(64).fill(9)
    const sign = (a: Announcement) => encodeSignedAnnouncement(encodeAnnouncement(a), signature)
    const opened = decodeSignedAnnouncement(sign(announcement))
    expect(opened.announcement).toEqual(announcement)
    expect([...opened.signature]).toEqual([...signature])
    expect([...opened.body]).toEqual([...encodeAnnouncement(announcement)])
    expect(() =>
      encodeSignedAnnouncement(encodeAnnouncement(announcement), new Uint8Array(0)),
    ).not.toThrow()
    expect(() =>
      decodeSignedAnnouncement(
        encodeSignedAnnouncement(encodeAnnouncement(announcement), new Uint8Array(0)),
      ),
    ).toThrow(/signature/)
    // Membership messages carry words and accusations, each decoded by its kind.
    const accusation = {
      subject: announcement.peerId,
      startedAt: 1,
      incarnation: 3,
      dead: true,
      accuser: '12D3KooWB',
    }
    const charge = encodeSignedAccusation(encodeAccusation(accusation), signature)
    const sync = decodeSwim(
      encodeSwim({ kind: 'sync', sentAt: 9, digest: 'x', updates: [sign(announcement), charge] }),
    )
    expect(sync.kind).toBe('sync')
    const updates = (sync as { updates: Uint8Array[] }).updates.map(decodeUpdate)
    expect(updates.map((u) => u.kind)).toEqual(['word', 'accusation'])
    expect(updates[0]?.kind === 'word' && updates[0].signed.announcement).toEqual(announcement)
    expect(updates[1]?.kind === 'accusation' && updates[1].signed.accusation).toEqual(accusation)
    expect(() => decodeUpdate(Uint8Array.of(1, 2, 3))).toThrow(/update/)
    // Piggybacked updates: as many as fit one message, every one whole.
    const big = Array.from({ length: 200 }, (_, i) =>
      sign({ ...announcement, peerId: `p${i}`, health: 'x'.repeat(1000) }),
    )
    const ping = encodeSwim({ kind: 'ping', probe: 1, sentAt: 2, updates: big })
    expect(ping.byteLength).toBeLessThanOrEqual(MAX_SWIM_MESSAGE_BYTES)
    const fitted = (decodeSwim(ping) as { updates: Uint8Array[] }).updates
    expect(fitted.length).toBe(MAX_PIGGYBACK)
    expect(fitted.map((u) => Buffer.from(u).toString('hex'))).toEqual(
      big.slice(0, MAX_PIGGYBACK).map((u) => Buffer.from(u).toString('hex')),
    )
    const sized = decodeSwim(
      encodeSwim({
        kind: 'sync',
        sentAt: 2,
        digest: '',
        updates: Array.from({ length: 5000 }, () => big[0] as Uint8Array),
      }),
    ) as { updates: Uint8Array[] }
    expect(sized.updates.length).toBeGreaterThan(3000)
    expect(sized.updates.length).toBeLessThan(5000)
  })

  it('round-trips group requests and trailers, and refuses a group with a hwm in its slice or too many members', () => {
    const slice = {
      fromMs: 1,
      toMs: 2,
      reverse: true,
      types: ['a.*'],
      minSeverity: 2,
      limit: 100,
      window: 40,
    }
    const request = {
      slice,
      members: [
        { peerId: 'p1', hwm: 7 },
        { peerId: 'p2', hwm: undefined },
      ],
      deadlineMs: 1000,
    }
    expect(decodeGroupRequest(encodeGroupRequest(request, encodeSliceRequest(slice)))).toEqual(
      request,
    )
    expect(() =>
      decodeGroupRequest(encodeGroupRequest(request, encodeSliceRequest({ ...slice, hwm: 3 }))),
    ).toThrow(/hwm/)
    const crowd = Array.from({ length: 513 }, (_, i) => ({ peerId: `p${i}`, hwm: undefined }))
    expect(() =>
      decodeGroupRequest(
        encodeGroupRequest({ ...request, members: crowd }, encodeSliceRequest(slice)),
      ),
    ).toThrow(/members/)
    const trailer = {
      more: true,
      rows: [
        { peerId: 'p1', status: 'ok' as const, ms: 3, error: undefined, hwm: 7 },
        { peerId: 'p2', status: 'timed_out' as const, ms: 500, error: 'late', hwm: undefined },
      ],
    }
    expect(decodeGroupAnswer(encodeGroupTrailer(trailer))).toEqual({
      kind: 'group-trailer',
      trailer,
    })
  })

  it('splits batches at the answer size limit and at the event count limit, in order', () => {
    const event = (i: number, message: string) =>
      stored({ id: new Uint8Array(16).fill(i % 256), type: 'big.event', severity: 1, message })
    const decodeAll = (batches: Uint8Array[]) =>
      batches.flatMap((b) => {
        expect(b.byteLength).toBeLessThanOrEqual(MAX_ANSWER_BYTES)
        const answer = decodeAnswer(b)
        expect(answer.kind).toBe('batch')
        return answer.kind === 'batch' ? answer.events.map((e) => e.id[0]) : []
      })
    const big = Array.from({ length: 300 }, (_, i) => event(i, 'x'.repeat(8000)))
    const bySize = encodeBatches(big)
    expect(bySize.length).toBe(3)
    expect(decodeAll(bySize)).toEqual(big.map((e) => e.id[0]))
    const many = Array.from({ length: MAX_BATCH_EVENTS * 2 + 1 }, (_, i) => event(i, 'small'))
    const byCount = encodeBatches(many)
    expect(byCount.length).toBe(3)
    expect(decodeAll(byCount)).toEqual(many.map((e) => e.id[0]))
    // As a member sends a slice: messages of at most SLICE_MESSAGE_EVENTS, in order.
    const small = encodeBatches(many, SLICE_MESSAGE_EVENTS)
    expect(small.length).toBe(Math.ceil(many.length / SLICE_MESSAGE_EVENTS))
    for (const b of small) {
      const answer = decodeAnswer(b)
      expect(answer.kind === 'batch' && answer.events.length).toBeLessThanOrEqual(
        SLICE_MESSAGE_EVENTS,
      )
    }
    expect(decodeAll(small)).toEqual(many.map((e) => e.id[0]))
    expect(() => encodeBatches([event(1, 'x'.repeat(MAX_ANSWER_BYTES))])).toThrowError(
      expect.objectContaining({ name: 'ProtocolError', code: 'too_large' }),
    )
  })

  it('refuses events whose stored fields are not the stored layout', () => {
    const id = new Uint8Array(16)
    const bad = [
      storedValue({ type: 'a', severity: 9 }),
      Buffer.from([0x93, 0x01, 0xa1, 0x61, 0x01]), // three fields, not eight
      Buffer.from([0x98, 0x02, 0xa1, 0x61, 0x01, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0]), // format 2
      storedValue({ type: 'a', severity: 1, attrs: { k: { nested: 1 } as never } }),
    ]
    for (const value of bad) {
      expect(() => decodeAnswer(encodeBatches([{ id, value }])[0] as Uint8Array)).toThrowError(
        expect.objectContaining({ name: 'ProtocolError', code: 'malformed' }),
      )
    }
  })

  it('turns random bytes into nothing but ProtocolError, in every decoder', () => {
    const decoders = [
      decodeSliceRequest,
      decodeAnswer,
      decodeLookupRequest,
      decodeLookupReply,
      decodeAnnouncement,
      decodeMore,
    ]
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        for (const decode of decoders) onlyProtocolErrors(() => decode(bytes))
      }),
      { numRuns: 3000 },
    )
  })

  it('turns truncated and corrupted messages into nothing but ProtocolError', () => {
    fc.assert(
      fc.property(
        requestArb,
        fc.array(eventArb, { minLength: 1, maxLength: 20 }),
        fc.nat(),
        fc.nat(),
        (r, events, cut, flip) => {
          for (const message of [
            encodeSliceRequest(r),
            encodeBatch(events),
            encodeTrailer({ hwm: 1, scanned: 2, more: false }),
          ]) {
            const truncated = message.subarray(0, cut % (message.byteLength + 1))
            const corrupted = Uint8Array.from(message)
            const at = flip % corrupted.byteLength
            corrupted[at] = (corrupted[at] as number) ^ 0xff
            for (const bytes of [truncated, corrupted]) {
              onlyProtocolErrors(() => decodeSliceRequest(bytes))
              onlyProtocolErrors(() => decodeAnswer(bytes))
            }
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('refuses a message over its limit before decoding it, and messages that claim huge sizes', () => {
    expect(() => decodeSliceRequest(new Uint8Array(MAX_REQUEST_BYTES + 1))).toThrowError(
      expect.objectContaining({ name: 'ProtocolError', code: 'too_large' }),
    )
    // MessagePack headers claiming 4 GiB strings, arrays and maps in a few bytes.
    for (const header of [
      [0xdb, 0xff, 0xff, 0xff, 0xff],
      [0xdd, 0xff, 0xff, 0xff, 0xff],
      [0xdf, 0xff, 0xff, 0xff, 0xff],
      [0xc6, 0xff, 0xff, 0xff, 0xff],
    ]) {
      const before = process.memoryUsage().arrayBuffers
      onlyProtocolErrors(() => decodeAnswer(Uint8Array.from(header)))
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024)
    }
  })
})
