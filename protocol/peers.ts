// /chorus/peers/2: the latest signed word of every member a member knows,
// for a member that joins through it.
//
//   peers request  [15]
//   peers          [16, [signed announcement bytes...]]

import { decodeSignedAnnouncement, type SignedAnnouncement } from './announcement.ts'
import * as frame from './framing.ts'

/**
 * `/chorus/peers/2`: the members a member knows of and their addresses. A
 * member that joins asks the member it joined through, and dials them all,
 * instead of learning of them one gossip relay at a time. Version 2: each
 * member's word comes with its own signature, so the member passing it on
 * cannot forge it.
 */
export const PEERS_PROTOCOL = '/chorus/peers/2'

/** Most members one peers answer carries. */
export const MAX_PEERS = 1024

export function encodePeersRequest(): Uint8Array {
  return frame.pack([frame.KIND_PEERS_REQUEST], frame.MAX_REQUEST_BYTES)
}

export function decodePeersRequest(bytes: Uint8Array): void {
  frame.framed(bytes, frame.MAX_REQUEST_BYTES, frame.KIND_PEERS_REQUEST, 1, 'a peers request')
}

/** The members a member knows of, as their latest signed announcements: as many as fit one answer. */
export function encodePeers(signed: readonly Uint8Array[]): Uint8Array {
  const items: Uint8Array[] = []
  let bytes = 16
  for (const item of signed) {
    if (items.length === MAX_PEERS || bytes + item.byteLength + 5 > frame.MAX_ANSWER_BYTES) break
    items.push(item)
    bytes += item.byteLength + 5
  }
  return frame.pack([frame.KIND_PEERS, items], frame.MAX_ANSWER_BYTES)
}

export function decodePeers(bytes: Uint8Array): SignedAnnouncement[] {
  const [, items] = frame.framed(bytes, frame.MAX_ANSWER_BYTES, frame.KIND_PEERS, 2, 'peers')
  if (
    !Array.isArray(items) ||
    items.length > MAX_PEERS ||
    !items.every((item) => item instanceof Uint8Array)
  )
    throw frame.malformed('peers')
  return items.map((item: Uint8Array) => decodeSignedAnnouncement(item))
}
