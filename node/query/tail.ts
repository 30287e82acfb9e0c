// Live tails: the engine of GET /v1/events/stream. A tail keeps one mark
// per member, not one id for the array: the member's high-water mark (seq)
// and the ts of its event at that mark. A member stamps its events in seq
// order with ts that never go back (node/store/event-log.ts), so its events
// past the mark are exactly those with ids past (ts, its tag, seq), however
// their ts compare with other members'. A round asks every member for the
// events past its mark (slice protocol version 4, `tail`), merges them in
// id order, and moves each member's mark to what it answered. An event of
// a member whose clock lags, or of a batch that committed late, comes in
// the round after it is stored, never skipped because a later-stamped
// event of another member went out first.
//
// The marks are the tail's whole state: they travel to the client as the
// SSE id (encodeTailState) and come back as Last-Event-ID, so any member
// can resume a tail another member served.

import { Packr } from 'msgpackr'
import { z } from 'zod'
import type { AttrFilter, SliceRequest } from '../../protocol/index.ts'
import { InvalidInputError } from '../errors.ts'
import type { ChorusEvent } from '../event/event.ts'
import { idBytes, MAX_SEQ, MAX_TS } from '../event/id.ts'
import { idAtTs } from '../store/keys.ts'
import type { SliceTarget } from './coordinator.ts'
import { collect, type MemberRow, matchesMembers } from './fan-out.ts'

/** Most events one round holds, over all members: what a round may cost in memory. */
export const MAX_ROUND_EVENTS = 10_000
/** Fewest events a round asks of each member, however large the array. */
const MIN_MEMBER_EVENTS = 20
/** Most members' marks a tail state holds. */
const MAX_MARKS = 10_000
/** Longest Last-Event-ID accepted, in characters. */
export const MAX_TAIL_STATE_LENGTH = 262_144
const TAIL_STATE_VERSION = 1

/** Where a tail stands with one member: its events up to `seq` (stamped `ts`) are sent. */
export interface TailMark {
  seq: number
  ts: number
}

export interface TailState {
  /** Members without a mark (first seen) are read from events stamped at or after this, ms. */
  startMs: number
  /** By the hex of each member's 40-bit id tag. */
  marks: Map<string, TailMark>
}

export interface TailFilters {
  types: string[]
  notTypes: string[]
  attrs: AttrFilter[]
  minSeverity: number
  text?: string
  /** Member names or peer ids; empty: all. */
  members: string[]
}

export interface TailRound {
  /** The round's new events, in id order. */
  events: ChorusEvent[]
  /** One row per member, as a page's. */
  rows: MemberRow[]
  /** True when some member had more than the round took: the next round need not wait. */
  more: boolean
}

/**
 * Asks every member for its events past its mark, and advances the marks
 * in `state` for those that answered. A member that fails keeps its mark:
 * its events come once it answers again.
 */
export async function tailRound(
  targets: readonly SliceTarget[],
  state: TailState,
  filters: TailFilters,
  options: {
    timeoutMs: number
    signal?: AbortSignal
    /**
     * Only set each member's mark to where it stands now, sending nothing:
     * how a tail that starts now begins, so that every event stored after
     * this round (by any member's clock) is in the next.
     */
    marksOnly?: boolean
  },
): Promise<TailRound> {
  const asked = targets.filter((t) => matchesMembers(t, filters.members))
  const perMember = Math.max(
    MIN_MEMBER_EVENTS,
    Math.floor(MAX_ROUND_EVENTS / Math.max(1, asked.length)),
  )
  const events: ChorusEvent[] = []
  let more = false
  const answers = await collect(
    asked,
    options.signal === undefined
      ? { timeoutMs: options.timeoutMs }
      : { timeoutMs: options.timeoutMs, signal: options.signal },
    async (target, signal) => {
      const mark = state.marks.get(target.tag)
      // The newest event alone, for its mark: one row read.
      const request: SliceRequest =
        options.marksOnly === true
          ? {
              fromMs: 0,
              toMs: MAX_TS,
              reverse: true,
              types: [],
              minSeverity: 0,
              limit: 1,
              window: 1,
              tail: true,
            }
          : {
              fromMs: mark?.ts ?? state.startMs,
              toMs: MAX_TS,
              lower:
                mark === undefined
                  ? { id: idAtTs(state.startMs), inclusive: true }
                  : {
                      id: idBytes(mark.ts, Buffer.from(target.tag, 'hex'), mark.seq),
                      inclusive: false,
                    },
              reverse: false,
              types: filters.types,
              minSeverity: filters.minSeverity,
              limit: perMember,
              window: perMember,
              tail: true,
            }
      if (options.marksOnly !== true) {
        if (filters.notTypes.length > 0) request.notTypes = filters.notTypes
        if (filters.attrs.length > 0) request.attrs = filters.attrs
        if (filters.text !== undefined) request.text = filters.text
      }
      const answer = await target.slice(request, { signal })
      const got: ChorusEvent[] = []
      for (;;) {
        const next = await answer.batches.next()
        if (next.done === true) {
          if (options.marksOnly === true) {
            const moved =
              answer.hwmTs === undefined ? undefined : { seq: answer.hwm, ts: answer.hwmTs }
            return { got: [], moved, more: false }
          }
          const last = got.at(-1)
          // Past its limit: continue from the last event sent. Else the whole
          // of the member's events up to its mark are read.
          const moved: TailMark | undefined =
            next.value.more && last !== undefined
              ? { seq: last.seq, ts: last.ts }
              : answer.hwmTs !== undefined
                ? { seq: answer.hwm, ts: answer.hwmTs }
                : last === undefined
                  ? undefined
                  : { seq: last.seq, ts: last.ts }
          return { got, moved, more: next.value.more }
        }
        for (const e of next.value) got.push(e)
      }
    },
    {
      count: (a) => a.got.length,
      take: (target, a) => {
        for (const e of a.got) events.push(e)
        if (a.moved !== undefined) {
          const old = state.marks.get(target.tag)
          if (old === undefined || a.moved.seq >= old.seq) state.marks.set(target.tag, a.moved)
        }
        if (a.more) more = true
      },
    },
  )
  events.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return { events, rows: answers.map((a) => a.row), more }
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

const StateShape = z.tuple([
  z.literal(TAIL_STATE_VERSION),
  z.number().int().min(0).max(MAX_TS),
  z
    .array(
      z.tuple([
        z.instanceof(Uint8Array).refine((tag) => tag.byteLength === 5),
        z.number().int().min(0).max(MAX_SEQ),
        z.number().int().min(0).max(MAX_TS),
      ]),
    )
    .max(MAX_MARKS),
])

/** A tail's state as an SSE id: base64url of MessagePack [1, startMs, [[tag, seq, ts]...]]. */
export function encodeTailState(state: TailState): string {
  const marks = [...state.marks].map(([tag, m]) => [Buffer.from(tag, 'hex'), m.seq, m.ts])
  return Buffer.from(packr.pack([TAIL_STATE_VERSION, state.startMs, marks])).toString('base64url')
}

function invalidState(why: string): InvalidInputError {
  return new InvalidInputError(
    `"Last-Event-ID" is not a position this array's stream sent: ${why}`,
    [{ field: 'Last-Event-ID', message: why }],
    'invalid_cursor',
  )
}

/** The tail state a Last-Event-ID names, or an InvalidInputError. */
export function decodeTailState(text: string): TailState {
  if (text.length > MAX_TAIL_STATE_LENGTH)
    throw invalidState(`longer than ${MAX_TAIL_STATE_LENGTH} characters`)
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw invalidState('not base64url')
  let raw: unknown
  try {
    raw = packr.unpack(Buffer.from(text, 'base64url'))
  } catch {
    throw invalidState('cannot be decoded')
  }
  const parsed = StateShape.safeParse(raw)
  if (!parsed.success) throw invalidState('its contents are malformed')
  const [, startMs, marks] = parsed.data
  return {
    startMs,
    marks: new Map(
      marks.map(([tag, seq, ts]) => [Buffer.from(tag).toString('hex'), { seq, ts }] as const),
    ),
  }
}
