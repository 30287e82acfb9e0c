// The member's libp2p host: TCP, noise, yamux, identify, ping and gossipsub,
// with the member's own key and deliberate limits. Everything chorus speaks
// over it (membership gossip, the slice and lookup protocols) is registered
// by the parts that own it.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type GossipSub, gossipsub } from '@libp2p/gossipsub'
import { type Identify, identify } from '@libp2p/identify'
import type { ConnectionGater, PeerId, PrivateKey } from '@libp2p/interface'
import { type Ping, ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { MAX_ANNOUNCEMENT_BYTES } from '../../protocol/index.ts'

export type HostServices = { identify: Identify; ping: Ping; pubsub: GossipSub }
export type Host = Libp2p<HostServices>

/**
 * Connection limits. Sized for arrays of a few hundred members, each
 * connected to every other (queries fan out to all of them directly).
 */
export const MAX_CONNECTIONS = 1024
/** Inbound connections per second from one host: a local array on 127.0.0.1 starts many at once. */
export const INBOUND_CONNECTIONS_PER_SECOND = 64
/** Connections still upgrading at once. */
export const MAX_PENDING_INBOUND = 128
/** A dial gives up after this, ms. */
export const DIAL_TIMEOUT_MS = 5_000
/** Largest gossipsub RPC frame accepted from a peer: a few announcements. */
export const MAX_GOSSIP_FRAME_BYTES = 8 * MAX_ANNOUNCEMENT_BYTES

export interface HostInit {
  privateKey: PrivateKey
  /** Multiaddrs to listen on, e.g. /ip4/127.0.0.1/tcp/7701. */
  listen: string[]
  /** Pre-shared key: only processes holding it complete a connection (libp2p pnet). */
  swarmKey?: Uint8Array
  /** Peer ids allowed to connect either way; empty: any. */
  allowPeers?: readonly string[]
}

/**
 * With an allow-list, refuses any other peer once its identity is proven
 * (after encryption), both ways; a dial to such a peer is not even tried.
 */
function gater(allowPeers: readonly string[]): ConnectionGater {
  if (allowPeers.length === 0) return {}
  const allowed = new Set(allowPeers)
  const deny = (peer: PeerId) => !allowed.has(peer.toString())
  return {
    denyDialPeer: deny,
    denyInboundEncryptedConnection: deny,
    denyOutboundEncryptedConnection: deny,
  }
}

export async function createHost(init: HostInit): Promise<Host> {
  return createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(init.swarmKey === undefined
      ? {}
      : { connectionProtector: preSharedKey({ psk: init.swarmKey }) }),
    connectionGater: gater(init.allowPeers ?? []),
    connectionManager: {
      maxConnections: MAX_CONNECTIONS,
      inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_SECOND,
      maxIncomingPendingConnections: MAX_PENDING_INBOUND,
      dialTimeout: DIAL_TIMEOUT_MS,
      addressDialTimeout: DIAL_TIMEOUT_MS,
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        // Announcements go out every second even before any peer is known.
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        floodPublish: true,
        heartbeatInterval: 700,
        maxInboundDataLength: MAX_GOSSIP_FRAME_BYTES,
        maxOutboundBufferSize: 4 * 1024 * 1024,
        globalSignaturePolicy: 'StrictSign',
        // Recognise a duplicate (same sender and sequence number) before
        // checking its signature: with a mesh of D peers every announcement
        // arrives up to D times, and each Ed25519 verification costs far more
        // than this. Only valid messages enter this cache, so a forgery
        // cannot shadow the real announcement.
        fastMsgIdFn: (message) =>
          message.from !== undefined && message.seqno !== undefined
            ? `${Buffer.from(message.from).toString('base64')}/${Buffer.from(message.seqno).toString('base64')}`
            : Buffer.from(message.data ?? new Uint8Array()).toString('base64'),
      }),
    },
    start: false,
  })
}
