// /chorus/swim/1: membership, SWIM-style. Every exchange is one stream:
//
//   ping      [18, probe, sentAt, updates]          → ack
//   ack       [19, probe, sentAt, updates]
//   ping-req  [20, probe, target, updates]          → ack (the target answered) or nack
//   nack      [21, probe]
//   gossip    [22, updates]                         (no answer)
//   sync      [23, sentAt, digest, updates]         → sync (push/pull: a digest of the
//                                                   table, and all it holds when they differ)
//
// `updates` are what members piggyback: signed announcements (a member's
// word about itself, kind 17, announcement.ts) and signed accusations (one
// member's word that another is suspect or dead):
//
//   accusation         [24, subject, startedAt, incarnation, dead, accuser]
//   signed accusation  [25, accusation bytes, signature]: the accuser's
//                      Ed25519 signature over ACCUSATION_SIGNING_DOMAIN +
//                      accusation bytes, so a member can accuse only in
//                      its own name, however many members pass it on
//
// `sentAt` is the sender's clock, ms since the epoch, from which the other
// side estimates the offset between their clocks.

import { decodeSignedAnnouncement, type SignedAnnouncement } from './announcement.ts'
import {
  framed,
  isInt,
  isString,
  KIND_ACCUSATION,
  KIND_ACK,
  KIND_GOSSIP,
  KIND_NACK,
  KIND_PING,
  KIND_PING_REQUEST,
  KIND_SIGNED_ACCUSATION,
  KIND_SIGNED_ANNOUNCEMENT,
  KIND_SYNC,
  malformed,
  ProtocolError,
  pack,
  unpack,
} from './framing.ts'

/**
 * `/chorus/swim/1`: probes, indirect probes, gossip and push/pull of the
 * membership table. Replaces gossipsub's `/chorus/members/2` topic and
 * `/chorus/peers/2`.
 */
export const SWIM_PROTOCOL = '/chorus/swim/1'
/** Largest ping, ack, ping-req, nack or gossip message, bytes. */
export const MAX_SWIM_MESSAGE_BYTES = 256 * 1024
/** Largest sync message (every member's word), bytes: about 8,000 members. */
export const MAX_SYNC_BYTES = 4 * 1024 * 1024
/** Most updates one ping, ack, ping-req or gossip message carries. */
export const MAX_PIGGYBACK = 64
/** Most updates one sync message carries. */
export const MAX_SYNC_UPDATES = 16_384

export type SwimMessage =
  | { kind: 'ping'; probe: number; sentAt: number; updates: Uint8Array[] }
  | { kind: 'ack'; probe: number; sentAt: number; updates: Uint8Array[] }
  | { kind: 'ping-req'; probe: number; target: string; updates: Uint8Array[] }
  | { kind: 'nack'; probe: number }
  | { kind: 'gossip'; updates: Uint8Array[] }
  | { kind: 'sync'; sentAt: number; digest: string; updates: Uint8Array[] }

const KINDS = {
  ping: KIND_PING,
  ack: KIND_ACK,
  'ping-req': KIND_PING_REQUEST,
  nack: KIND_NACK,
  gossip: KIND_GOSSIP,
  sync: KIND_SYNC,
} as const

const limitOf = (kind: SwimMessage['kind']) =>
  kind === 'sync' ? MAX_SYNC_BYTES : MAX_SWIM_MESSAGE_BYTES
const updatesLimitOf = (kind: SwimMessage['kind']) =>
  kind === 'sync' ? MAX_SYNC_UPDATES : MAX_PIGGYBACK

/** The leading updates that fit a message of `kind` (an update is never cut). */
function fitting(updates: Uint8Array[], kind: SwimMessage['kind']): Uint8Array[] {
  const out: Uint8Array[] = []
  let bytes = 256
  for (const u of updates) {
    if (out.length === updatesLimitOf(kind) || bytes + u.byteLength + 5 > limitOf(kind)) break
    out.push(u)
    bytes += u.byteLength + 5
  }
  return out
}

/** Encodes a message, with as many of its updates as fit its limits. */
export function encodeSwim(m: SwimMessage): Uint8Array {
  const limit = limitOf(m.kind)
  switch (m.kind) {
    case 'ping':
    case 'ack':
      return pack([KINDS[m.kind], m.probe, m.sentAt, fitting(m.updates, m.kind)], limit)
    case 'ping-req':
      return pack([KINDS[m.kind], m.probe, m.target, fitting(m.updates, m.kind)], limit)
    case 'nack':
      return pack([KINDS[m.kind], m.probe], limit)
    case 'gossip':
      return pack([KINDS[m.kind], fitting(m.updates, m.kind)], limit)
    case 'sync':
      return pack([KINDS[m.kind], m.sentAt, m.digest, fitting(m.updates, m.kind)], limit)
  }
}

function updatesOf(v: unknown, kind: SwimMessage['kind']): Uint8Array[] {
  if (
    !Array.isArray(v) ||
    v.length > updatesLimitOf(kind) ||
    !v.every((u) => u instanceof Uint8Array && u.byteLength > 0)
  )
    throw malformed(`${kind} updates`)
  return v as Uint8Array[]
}

const isProbe = (v: unknown): v is number => isInt(v, 0, 2 ** 32)
const isTime = (v: unknown): v is number => isInt(v, 0, 2 ** 48)

/** Decodes any SWIM message, each kind within its own size limit. */
export function decodeSwim(bytes: Uint8Array): SwimMessage {
  const m = unpack(bytes, MAX_SYNC_BYTES)
  if (!Array.isArray(m)) throw malformed('not a membership message')
  const entry = Object.entries(KINDS).find(([, k]) => k === m[0])
  if (entry === undefined) throw malformed('not a membership message')
  const kind = entry[0] as SwimMessage['kind']
  if (bytes.byteLength > limitOf(kind))
    throw new ProtocolError(
      'too_large',
      `${kind} of ${bytes.byteLength} bytes over the limit of ${limitOf(kind)}`,
    )
  const need = { ping: 4, ack: 4, 'ping-req': 4, nack: 2, gossip: 2, sync: 4 }[kind]
  if (m.length !== need) throw malformed(kind)
  switch (kind) {
    case 'ping':
    case 'ack':
      if (!isProbe(m[1]) || !isTime(m[2])) throw malformed(kind)
      return { kind, probe: m[1], sentAt: m[2], updates: updatesOf(m[3], kind) }
    case 'ping-req':
      if (!isProbe(m[1]) || !isString(m[2], 128)) throw malformed(kind)
      return { kind, probe: m[1], target: m[2], updates: updatesOf(m[3], kind) }
    case 'nack':
      if (!isProbe(m[1])) throw malformed(kind)
      return { kind, probe: m[1] }
    case 'gossip':
      return { kind, updates: updatesOf(m[1], kind) }
    case 'sync':
      if (!isTime(m[1]) || !isString(m[2], 64)) throw malformed(kind)
      return { kind, sentAt: m[1], digest: m[2], updates: updatesOf(m[3], kind) }
  }
}

/** One member's word that another (in the run that started at `startedAt`) is suspect, or dead. */
export interface Accusation {
  subject: string
  startedAt: number
  /** The subject's incarnation the accusation is about: a word with a higher one refutes it. */
  incarnation: number
  dead: boolean
  accuser: string
}

const MAX_ACCUSATION_BYTES = 1024
const MAX_SIGNATURE_BYTES = 1024
const MAX_SIGNED_ACCUSATION_BYTES = MAX_ACCUSATION_BYTES + MAX_SIGNATURE_BYTES + 16
/** What an accuser signs: this prefix, then the accusation's bytes. */
export const ACCUSATION_SIGNING_DOMAIN = new TextEncoder().encode('chorus-accusation:')

export interface SignedAccusation {
  accusation: Accusation
  body: Uint8Array
  signature: Uint8Array
  bytes: Uint8Array
}

export function encodeAccusation(a: Accusation): Uint8Array {
  return pack(
    [KIND_ACCUSATION, a.subject, a.startedAt, a.incarnation, a.dead, a.accuser],
    MAX_ACCUSATION_BYTES,
  )
}

export function decodeAccusation(bytes: Uint8Array): Accusation {
  const [, subject, startedAt, incarnation, dead, accuser] = framed(
    bytes,
    MAX_ACCUSATION_BYTES,
    KIND_ACCUSATION,
    6,
    'an accusation',
  )
  if (
    !isString(subject, 128) ||
    !isString(accuser, 128) ||
    !isTime(startedAt) ||
    !isInt(incarnation, 0, 2 ** 32) ||
    typeof dead !== 'boolean'
  )
    throw malformed('accusation')
  return { subject, startedAt, incarnation, dead, accuser }
}

export function accusationSigningBytes(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(ACCUSATION_SIGNING_DOMAIN.byteLength + body.byteLength)
  out.set(ACCUSATION_SIGNING_DOMAIN, 0)
  out.set(body, ACCUSATION_SIGNING_DOMAIN.byteLength)
  return out
}

export function encodeSignedAccusation(body: Uint8Array, signature: Uint8Array): Uint8Array {
  return pack([KIND_SIGNED_ACCUSATION, body, signature], MAX_SIGNED_ACCUSATION_BYTES)
}

export function decodeSignedAccusation(bytes: Uint8Array): SignedAccusation {
  const [, body, signature] = framed(
    bytes,
    MAX_SIGNED_ACCUSATION_BYTES,
    KIND_SIGNED_ACCUSATION,
    3,
    'a signed accusation',
  )
  if (!(body instanceof Uint8Array)) throw malformed('signed accusation body')
  if (
    !(signature instanceof Uint8Array) ||
    signature.byteLength === 0 ||
    signature.byteLength > MAX_SIGNATURE_BYTES
  )
    throw malformed('signed accusation signature')
  return { accusation: decodeAccusation(body), body, signature, bytes }
}

export type Update =
  | { kind: 'word'; signed: SignedAnnouncement }
  | { kind: 'accusation'; signed: SignedAccusation }

/** Decodes one piggybacked update, a signed announcement or a signed accusation. */
export function decodeUpdate(bytes: Uint8Array): Update {
  // Both are MessagePack arrays of three: the kind is the second byte.
  if (bytes[0] === 0x93 && bytes[1] === KIND_SIGNED_ANNOUNCEMENT)
    return { kind: 'word', signed: decodeSignedAnnouncement(bytes) }
  if (bytes[0] === 0x93 && bytes[1] === KIND_SIGNED_ACCUSATION)
    return { kind: 'accusation', signed: decodeSignedAccusation(bytes) }
  throw malformed('not a membership update')
}
