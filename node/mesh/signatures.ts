// Signatures that let one member pass on another's word: a member signs its
// words, its accusations and the health rule sets it makes with its libp2p
// key, and any member checks them against the public key inside the
// signer's peer id (Ed25519 peer ids carry it). The connection proves only
// who sent a message; these prove who said it, however many members relayed
// it.

import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  type Announcement,
  announcementSigningBytes,
  encodeAnnouncement,
  encodeSignedAnnouncement,
  type SignedAnnouncement,
} from '../../protocol/index.ts'

/** Signs `data` with this member's key. */
export type Signer = (data: Uint8Array) => Promise<Uint8Array>
/** Whether `signature` over `data` was made by the key of `peerId`; false for ids that carry no key. */
export type Verifier = (peerId: string, data: Uint8Array, signature: Uint8Array) => Promise<boolean>

export function createSigner(privateKey: PrivateKey): Signer {
  return async (data) => privateKey.sign(data)
}

export const verifySignature: Verifier = async (peerId, data, signature) => {
  try {
    const key = peerIdFromString(peerId).publicKey
    if (key === undefined) return false
    return await key.verify(data, signature)
  } catch {
    return false
  }
}

/** An announcement of this member, signed, as it goes on the topic and into peers answers. */
export async function sealAnnouncement(sign: Signer, a: Announcement): Promise<Uint8Array> {
  const body = encodeAnnouncement(a)
  return encodeSignedAnnouncement(body, await sign(announcementSigningBytes(body)))
}

/** Whether a signed announcement was signed by the member it is about. */
export function verifyAnnouncement(signed: SignedAnnouncement): Promise<boolean> {
  return verifySignature(
    signed.announcement.peerId,
    announcementSigningBytes(signed.body),
    signed.signature,
  )
}
