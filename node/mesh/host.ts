// The member's libp2p host: TCP, noise, yamux and identify, with the
// member's own key and deliberate limits. Everything chorus speaks over it
// (membership, the slice, lookup and other protocols) is registered by the
// parts that own it.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type Identify, identify } from '@libp2p/identify'
import type { ConnectionGater, PeerId, PrivateKey } from '@libp2p/interface'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'

export type HostServices = { identify: Identify }
export type Host = Libp2p<HostServices>

/**
 * Connection limits. A member holds a few connections for membership (its
 * neighbours) and opens the others on demand (queries), closing them when
 * idle; the cap is for a coordinator of a large array mid-query.
 */
export const MAX_CONNECTIONS = 1024
/** Inbound connections per second from one host: a local array on 127.0.0.1 starts many at once. */
export const INBOUND_CONNECTIONS_PER_SECOND = 64
/** Connections still upgrading at once. */
export const MAX_PENDING_INBOUND = 128
/** A dial gives up after this, ms. */
export const DIAL_TIMEOUT_MS = 5_000

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
    // Membership probes every member a member watches (membership.ts);
    // libp2p's own ping of every connection every 10 s would only add to it.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
    },
    start: false,
  })
}
