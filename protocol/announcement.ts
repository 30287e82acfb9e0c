// A member's word about itself: what it says of itself, signed, as the
// membership protocol (swim.ts) carries it from member to member.
//
//   announcement        [7, fields...] (see encodeAnnouncement)
//   signed announcement [17, announcement bytes, signature]: an announcement
//                       with its subject's Ed25519 signature over
//                       ANNOUNCEMENT_SIGNING_DOMAIN + announcement bytes, so
//                       that any member can pass it on and nobody can speak
//                       for another

import {
  framed,
  isInt,
  isString,
  KIND_ANNOUNCEMENT,
  KIND_SIGNED_ANNOUNCEMENT,
  malformed,
  pack,
} from './framing.ts'

/** Largest membership announcement, bytes. */
export const MAX_ANNOUNCEMENT_BYTES = 16 * 1024

/** A member's announcement of itself: a new one (a higher beat) whenever one of its fields changes. */
export interface Announcement {
  peerId: string
  name: string
  /** Multiaddrs it listens on, without /p2p/. */
  addrs: string[]
  /** Its HTTP address, host:port. */
  http: string
  version: string
  /** Newest seq in its store. */
  seq: number
  /** When it started, ms since the epoch (its clock). */
  startedAt: number
  /** Its clock when it sent this, ms since the epoch. */
  sentAt: number
  /** Its own health: `ok`, `warning`, `critical` or `unknown`, then `:` and the rules that fired (`warning:cpu-high`). */
  health: string
  /** Raised when it refutes a suspicion of itself (SWIM). */
  incarnation: number
  /**
   * Counts its announcements since it started: within one run (`startedAt`)
   * the higher beat is the newer word, whatever its clock did, and an old
   * announcement played again is recognised as old.
   */
  beat: number
  /** True when it is leaving the array (SIGTERM). */
  leaving: boolean
  /** The array settings it holds, `<sum of versions>:<digest>` (see node/settings.ts); empty for the defaults. */
  settings: string
  /** Its clock minus the median of the clocks of the members it probes, ms (so that two members that never talk can tell their offset). */
  skewMs: number
}

const MAX_ADDRS = 16

/** The order of an announcement's fields on the wire, after its kind. */
const FIELDS = [
  'peerId',
  'name',
  'addrs',
  'http',
  'version',
  'seq',
  'startedAt',
  'sentAt',
  'health',
  'incarnation',
  'beat',
  'leaving',
  'settings',
  'skewMs',
] as const satisfies ReadonlyArray<keyof Announcement>
/** The fields FIELDS does not list: `never` while it lists them all (decodeAnnouncement needs that). */
type Unlisted = Exclude<keyof Announcement, (typeof FIELDS)[number]>

export function encodeAnnouncement(a: Announcement): Uint8Array {
  const bounded = {
    ...a,
    addrs: a.addrs.slice(0, MAX_ADDRS),
  }
  return pack([KIND_ANNOUNCEMENT, ...FIELDS.map((f) => bounded[f])], MAX_ANNOUNCEMENT_BYTES)
}

export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  const m = framed(
    bytes,
    MAX_ANNOUNCEMENT_BYTES,
    KIND_ANNOUNCEMENT,
    FIELDS.length + 1,
    'an announcement',
  )
  const a = Object.fromEntries(FIELDS.map((f, i) => [f, m[i + 1]])) as Record<
    (typeof FIELDS)[number],
    unknown
  >
  if (!isString(a.peerId, 128) || !isString(a.name, 63) || a.name.length === 0)
    throw malformed('announcement peer id or name')
  if (
    !Array.isArray(a.addrs) ||
    a.addrs.length > MAX_ADDRS ||
    !a.addrs.every((x) => isString(x, 256))
  )
    throw malformed('announcement addrs')
  if (!isString(a.http, 256) || !isString(a.version, 64) || !isString(a.health, 1024))
    throw malformed('announcement http, version or health')
  if (
    !isInt(a.seq, 0, 2 ** 40) ||
    !isInt(a.startedAt, 0, 2 ** 48) ||
    !isInt(a.sentAt, 0, 2 ** 48) ||
    !isInt(a.incarnation, 0, 2 ** 32) ||
    !isInt(a.beat, 0, Number.MAX_SAFE_INTEGER)
  ) {
    throw malformed('announcement numbers')
  }
  if (typeof a.leaving !== 'boolean') throw malformed('announcement leaving')
  if (!isString(a.settings, 64)) throw malformed('announcement settings')
  if (!isInt(a.skewMs, -(2 ** 42), 2 ** 42)) throw malformed('announcement skew')
  // Every field is checked above, and FIELDS lists every field (else this does not compile).
  return a as unknown as [Unlisted] extends [never] ? Announcement : never
}

/** What a member signs: this prefix, then the announcement's bytes (so no other message's signature fits). */
export const ANNOUNCEMENT_SIGNING_DOMAIN = new TextEncoder().encode('chorus-announcement:')
/** Longest signature accepted (Ed25519's are 64 bytes; RSA keys would need more). */
const MAX_SIGNATURE_BYTES = 1024
/** Largest signed announcement, bytes. */
export const MAX_SIGNED_ANNOUNCEMENT_BYTES = MAX_ANNOUNCEMENT_BYTES + MAX_SIGNATURE_BYTES + 16

/** An announcement as its subject signed it: `body` is what the signature covers (after the domain). */
export interface SignedAnnouncement {
  announcement: Announcement
  body: Uint8Array
  signature: Uint8Array
  /** The whole message, to pass on as it came. */
  bytes: Uint8Array
}

/** The bytes a member signs for an announcement's `body`. */
export function announcementSigningBytes(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(ANNOUNCEMENT_SIGNING_DOMAIN.byteLength + body.byteLength)
  out.set(ANNOUNCEMENT_SIGNING_DOMAIN, 0)
  out.set(body, ANNOUNCEMENT_SIGNING_DOMAIN.byteLength)
  return out
}

export function encodeSignedAnnouncement(body: Uint8Array, signature: Uint8Array): Uint8Array {
  return pack([KIND_SIGNED_ANNOUNCEMENT, body, signature], MAX_SIGNED_ANNOUNCEMENT_BYTES)
}

/** Decodes a signed announcement; the signature is checked by the caller, which has the crypto. */
export function decodeSignedAnnouncement(bytes: Uint8Array): SignedAnnouncement {
  const [, body, signature] = framed(
    bytes,
    MAX_SIGNED_ANNOUNCEMENT_BYTES,
    KIND_SIGNED_ANNOUNCEMENT,
    3,
    'a signed announcement',
  )
  if (!(body instanceof Uint8Array) || body.byteLength > MAX_ANNOUNCEMENT_BYTES)
    throw malformed('signed announcement body')
  if (
    !(signature instanceof Uint8Array) ||
    signature.byteLength === 0 ||
    signature.byteLength > MAX_SIGNATURE_BYTES
  )
    throw malformed('signed announcement signature')
  return { announcement: decodeAnnouncement(body), body, signature, bytes }
}
