// /chorus/peers/2: the latest signed announcement of every member a member
// knows, for a member that joins through it (as memberlist's push/pull on
// join). The signatures are the asker's to check.

import {
  decodePeers,
  decodePeersRequest,
  encodePeers,
  encodePeersRequest,
  PEERS_PROTOCOL,
  type SignedAnnouncement,
} from '../../../protocol/index.ts'
import { askOnce, oneAnswer, type Peer } from './stream.ts'

export interface PeersComponents {
  /** The signed announcements of the members this one knows, itself first. */
  peers(): Uint8Array[]
}

export const peersProtocol = oneAnswer<PeersComponents>(
  PEERS_PROTOCOL,
  'peers',
  undefined,
  (request, components) => {
    decodePeersRequest(request)
    return encodePeers(components.peers())
  },
)

/** Asks one peer which members it knows of. */
export function remotePeers(
  peer: Peer,
  options: { signal: AbortSignal },
): Promise<SignedAnnouncement[]> {
  return askOnce(peer, PEERS_PROTOCOL, encodePeersRequest(), decodePeers, options)
}
