// /chorus/group/1: a coordinator asks a sub-coordinator to merge its group's
// slices (a tree fan-out, for large arrays). One stream per request:
//
//   group request  [28, slice request bytes, [[peer id, hwm or -1]...], deadline ms]
//   answer         batches of events, as in the slice protocol (kind 2,
//                  stored ids and values, several members' tags, merged in
//                  scan order, at most the request's limit in all), then
//   group trailer  [29, more, [[peer id, status, ms, error or null, hwm or -1]...]]
//                  or an error message (kind 4)
//
// The sub-coordinator asks each member listed (itself directly) with the
// slice request, each member's hwm added, under the deadline given, and
// passes up one row per member: what a flat fan-out would have made of it.

import {
  framed,
  isInt,
  isString,
  KIND_GROUP_REQUEST,
  KIND_GROUP_TRAILER,
  MAX_ANSWER_BYTES,
  MAX_REQUEST_BYTES,
  malformed,
  pack,
  unpack,
} from './framing.ts'
import { type AnswerMessage, answerFrom, decodeSliceRequest, type SliceRequest } from './slice.ts'

export const GROUP_PROTOCOL = '/chorus/group/1'
/** Most members one group request names. */
export const MAX_GROUP_MEMBERS = 512

/** A member's status in a row, as the fan-out names them. */
const STATUSES = ['ok', 'timed_out', 'unreachable', 'error', 'dead', 'unsupported'] as const
export type GroupStatus = (typeof STATUSES)[number]

export interface GroupRequest {
  /** The slice request each member is asked, without its hwm. */
  slice: SliceRequest
  /** The members of the group, each with its high-water mark for the set (undefined: a first page). */
  members: Array<{ peerId: string; hwm: number | undefined }>
  /** Each member's deadline, ms. */
  deadlineMs: number
}

export interface GroupRow {
  peerId: string
  status: GroupStatus
  ms: number
  error: string | undefined
  /** Its high-water mark for the set; undefined when it did not answer. */
  hwm: number | undefined
}

export interface GroupTrailer {
  more: boolean
  rows: GroupRow[]
}

export function encodeGroupRequest(r: GroupRequest, sliceBytes: Uint8Array): Uint8Array {
  return pack(
    [KIND_GROUP_REQUEST, sliceBytes, r.members.map((m) => [m.peerId, m.hwm ?? -1]), r.deadlineMs],
    MAX_REQUEST_BYTES,
  )
}

export function decodeGroupRequest(bytes: Uint8Array): GroupRequest {
  const [, sliceBytes, members, deadlineMs] = framed(
    bytes,
    MAX_REQUEST_BYTES,
    KIND_GROUP_REQUEST,
    4,
    'a group request',
  )
  if (!(sliceBytes instanceof Uint8Array)) throw malformed('group slice request')
  const slice = decodeSliceRequest(sliceBytes)
  if (slice.hwm !== undefined) throw malformed('group slice request with a hwm')
  if (!Array.isArray(members) || members.length === 0 || members.length > MAX_GROUP_MEMBERS)
    throw malformed('group members')
  const out: GroupRequest['members'] = []
  for (const m of members) {
    if (!Array.isArray(m) || m.length !== 2 || !isString(m[0], 128) || !isInt(m[1], -1, 2 ** 40))
      throw malformed('group member')
    out.push({ peerId: m[0], hwm: m[1] === -1 ? undefined : m[1] })
  }
  if (!isInt(deadlineMs, 1, 600_000)) throw malformed('group deadline')
  return { slice, members: out, deadlineMs }
}

export function encodeGroupTrailer(t: GroupTrailer): Uint8Array {
  return pack(
    [
      KIND_GROUP_TRAILER,
      t.more,
      t.rows.map((r) => [r.peerId, r.status, r.ms, r.error?.slice(0, 512) ?? null, r.hwm ?? -1]),
    ],
    MAX_ANSWER_BYTES,
  )
}

export type GroupAnswerMessage =
  | Extract<AnswerMessage, { kind: 'batch' } | { kind: 'error' }>
  | { kind: 'group-trailer'; trailer: GroupTrailer }

/** Decodes one message of a group answer: a batch, the group trailer, or an error. */
export function decodeGroupAnswer(bytes: Uint8Array): GroupAnswerMessage {
  const m = unpack(bytes, MAX_ANSWER_BYTES)
  if (!Array.isArray(m) || m[0] !== KIND_GROUP_TRAILER) {
    const answer = answerFrom(m)
    if (answer.kind !== 'batch' && answer.kind !== 'error') throw malformed('group answer')
    return answer
  }
  const [, more, rows] = m
  if (m.length !== 3 || typeof more !== 'boolean' || !Array.isArray(rows))
    throw malformed('group trailer')
  if (rows.length > MAX_GROUP_MEMBERS) throw malformed('group rows')
  const out: GroupRow[] = []
  for (const r of rows) {
    if (
      !Array.isArray(r) ||
      r.length !== 5 ||
      !isString(r[0], 128) ||
      !(STATUSES as readonly unknown[]).includes(r[1]) ||
      !isInt(r[2], 0, 3_600_000) ||
      !(r[3] === null || isString(r[3], 512)) ||
      !isInt(r[4], -1, 2 ** 40)
    )
      throw malformed('group row')
    out.push({
      peerId: r[0],
      status: r[1] as GroupStatus,
      ms: r[2],
      error: r[3] ?? undefined,
      hwm: r[4] === -1 ? undefined : r[4],
    })
  }
  return { kind: 'group-trailer', trailer: { more, rows: out } }
}
