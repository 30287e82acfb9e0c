// The member's identity: a libp2p Ed25519 key kept in the data dir, created on
// first start and reused after. The member id is its peer id.

import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { DataDirError } from '../errors.ts'

export const IDENTITY_FILE = 'identity.key'

export interface Identity {
  privateKey: PrivateKey
  peerId: string
  /** True when the key was made now: a new member, not one that was here before. */
  created: boolean
}

/** Loads the key in `dir`, or creates it. Safe when two processes race: one key wins, both use it. */
export async function loadOrCreateIdentity(dir: string): Promise<Identity> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const file = join(dir, IDENTITY_FILE)
  let bytes: Uint8Array
  let created = false
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    created = true
    const key = await generateKeyPair('Ed25519')
    const temp = `${file}.${process.pid}.tmp`
    await writeFile(temp, privateKeyToProtobuf(key), { mode: 0o600, flush: true })
    try {
      // link() never replaces an existing file, unlike rename().
      await link(temp, file)
    } catch (linkErr) {
      if ((linkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw linkErr
    } finally {
      await rm(temp, { force: true })
    }
    bytes = await readFile(file)
  }
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new DataDirError(
      `${file} is not a libp2p private key (${(err as Error).message}); restore it or remove it to become a new member`,
    )
  }
  if (privateKey.type !== 'Ed25519') {
    throw new DataDirError(`${file} holds a ${privateKey.type} key; chorus members use Ed25519`)
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created }
}
