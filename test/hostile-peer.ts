// A hostile peer for tests: a real libp2p node on loopback, holding the swarm
// key when given one, that can say anything a member could say — gossip on
// any topic, signed with its own key, and any message on chorus's protocols,
// as a dialler or as an answerer — and nothing a member would refuse to
// send. It plays both an outsider and a member gone bad; the tests that use
// it check that the members it talks to keep their data and their word.

import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createHost, type Host } from '../node/mesh/host.ts'
import { createSigner, sealAnnouncement } from '../node/mesh/signatures.ts'
import {
  type Announcement,
  HEALTH_CONFIG_TOPIC,
  MAX_ANSWER_BYTES,
  MEMBERS_TOPIC,
} from '../protocol/index.ts'

export interface HostilePeer {
  readonly host: Host
  readonly peerId: string
  readonly privateKey: PrivateKey
  /** Multiaddr to join through, with /p2p/. */
  readonly addr: string
  /** Signs with this peer's own key. */
  sign(data: Uint8Array): Promise<Uint8Array>
  /** Connects to a member and waits until gossip flows both ways on the chorus topics. */
  connect(addr: string, options?: { timeoutMs?: number }): Promise<void>
  /** Publishes raw bytes on a topic (gossipsub signs them as this peer). */
  publish(topic: string, bytes: Uint8Array): Promise<void>
  /** Announces itself with any fields it likes, signed with its own key. */
  announce(fields: Partial<Announcement>): Promise<void>
  /** Answers `protocol` with whatever `answer` writes. */
  answer(
    protocol: string,
    answer: (
      request: Uint8Array,
      lp: ReturnType<typeof lpStream<Stream>>,
      stream: Stream,
    ) => Promise<void>,
  ): Promise<void>
  stop(): Promise<void>
}

export async function startHostilePeer(
  options: { swarmKey?: Uint8Array; name?: string } = {},
): Promise<HostilePeer> {
  const privateKey = await generateKeyPair('Ed25519')
  const host = await createHost({
    privateKey,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    ...(options.swarmKey === undefined ? {} : { swarmKey: options.swarmKey }),
  })
  await host.start()
  const pubsub = host.services.pubsub
  pubsub.subscribe(MEMBERS_TOPIC)
  pubsub.subscribe(HEALTH_CONFIG_TOPIC)
  const peerId = host.peerId.toString()
  const sign = createSigner(privateKey)
  const startedAt = Date.now()
  let beat = 0

  return {
    host,
    peerId,
    privateKey,
    addr: `${host.getMultiaddrs()[0]?.toString()}`,
    sign,
    async connect(addr, { timeoutMs = 10_000 } = {}) {
      const connection = await host.dial(multiaddr(addr), {
        signal: AbortSignal.timeout(timeoutMs),
      })
      const remote = connection.remotePeer
      const deadline = Date.now() + timeoutMs
      // Gossip reaches a peer once it is in our mesh (or fanout) for the topic.
      while (
        !pubsub.getSubscribers(MEMBERS_TOPIC).some((p) => p.equals(remote)) ||
        !pubsub.getSubscribers(HEALTH_CONFIG_TOPIC).some((p) => p.equals(remote))
      ) {
        if (Date.now() > deadline)
          throw new Error('the member never subscribed in view of the hostile peer')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    },
    async publish(topic, bytes) {
      await pubsub.publish(topic, bytes)
    },
    async announce(fields) {
      const a: Announcement = {
        peerId,
        name: options.name ?? 'hostile',
        addrs: host.getMultiaddrs().map((m) => m.toString().replace(/\/p2p\/[^/]+$/, '')),
        http: '127.0.0.1:1',
        version: '0.1.0',
        seq: 0,
        startedAt,
        sentAt: Date.now(),
        health: 'ok',
        incarnation: 0,
        beat: ++beat,
        leaving: false,
        suspects: [],
        ...fields,
      }
      await pubsub.publish(MEMBERS_TOPIC, await sealAnnouncement(sign, a))
    },
    async answer(protocol, answer) {
      await host.handle(protocol, async (stream) => {
        const lp = lpStream(stream, { maxDataLength: MAX_ANSWER_BYTES })
        try {
          const request = await lp.read({ signal: AbortSignal.timeout(10_000) })
          await answer(request.subarray(), lp, stream)
          await stream.close()
        } catch (err) {
          stream.abort(err as Error)
        }
      })
    },
    async stop() {
      await host.stop()
    },
  }
}

/** The peer id object of a member, for dialling it from the hostile peer. */
export const peerOf = (id: string) => peerIdFromString(id)
