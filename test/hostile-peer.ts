// A hostile peer for tests: a real libp2p node on loopback, holding the swarm
// key when given one, that can say anything a member could say — any
// membership message, signed with its own key, and any message on chorus's
// protocols, as a dialler or as an answerer — and nothing a member would
// refuse to send. Left alone it passes for a member: it answers probes and
// push/pull with its own word, and refutes a suspicion of itself as a member
// does (a higher incarnation), so members keep it alive on a busy machine. It plays both an
// outsider and a member gone bad; the tests that use it check that the
// members it talks to keep their data and their word.

import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createHost, type Host } from '../node/mesh/host.ts'
import { createSigner, sealAnnouncement } from '../node/mesh/signatures.ts'
import {
  type Announcement,
  decodeSwim,
  decodeUpdate,
  encodeSwim,
  MAX_ANSWER_BYTES,
  MAX_SYNC_BYTES,
  SWIM_PROTOCOL,
  type SwimMessage,
} from '../protocol/index.ts'

export interface HostilePeer {
  readonly host: Host
  readonly peerId: string
  readonly privateKey: PrivateKey
  /** Multiaddr to join through, with /p2p/. */
  readonly addr: string
  /** Signs with this peer's own key. */
  sign(data: Uint8Array): Promise<Uint8Array>
  /**
   * Connects to a member and, unless `join` is false, joins through it
   * (push/pull with its own word); resolves once the member holds it.
   */
  connect(addr: string, options?: { timeoutMs?: number; join?: boolean }): Promise<void>
  /** The signed words the members it connected to gave it, by peer id. */
  readonly words: Map<string, Uint8Array>
  /** Sends a raw membership message to every member it connected to; resolves to their answers. */
  send(message: SwimMessage): Promise<Array<SwimMessage | undefined>>
  /** Says its word again with any fields it likes, signed with its own key, to every member it connected to. */
  announce(fields: Partial<Announcement>): Promise<void>
  /** Answers `protocol` with whatever `answer` writes (replacing its own answers on the membership protocol). */
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
  const peerId = host.peerId.toString()
  const sign = createSigner(privateKey)
  const startedAt = Date.now()
  const connected = new Set<string>()
  const words = new Map<string, Uint8Array>()
  let beat = 0
  let incarnation = 0
  let fields: Partial<Announcement> = {}

  const word = async () =>
    sealAnnouncement(sign, {
      peerId,
      name: options.name ?? 'hostile',
      addrs: host.getMultiaddrs().map((m) => m.toString().replace(/\/p2p\/[^/]+$/, '')),
      http: '127.0.0.1:1',
      version: '0.1.0',
      seq: 0,
      startedAt,
      sentAt: Date.now(),
      health: 'ok',
      incarnation,
      beat: ++beat,
      leaving: false,
      settings: '',
      skewMs: 0,
      ...fields,
    })

  async function ask(to: string, message: SwimMessage): Promise<SwimMessage | undefined> {
    const stream = await host.dialProtocol(peerIdFromString(to), SWIM_PROTOCOL, {
      signal: AbortSignal.timeout(5000),
    })
    const lp = lpStream(stream, { maxDataLength: MAX_SYNC_BYTES })
    await lp.write(encodeSwim(message))
    try {
      if (message.kind === 'gossip') return undefined
      const answer = decodeSwim((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())
      if ('updates' in answer)
        for (const bytes of answer.updates) {
          const u = decodeUpdate(bytes)
          if (u.kind === 'word') words.set(u.signed.announcement.peerId, bytes)
        }
      return answer
    } finally {
      await stream.close().catch(() => {})
    }
  }

  /** A member suspects this peer (its probe was late): says its word again with a higher incarnation. */
  function refute(updates: Uint8Array[]) {
    for (const bytes of updates) {
      let u: ReturnType<typeof decodeUpdate>
      try {
        u = decodeUpdate(bytes)
      } catch {
        continue
      }
      if (u.kind !== 'accusation') continue
      const { subject, incarnation: accused } = u.signed.accusation
      if (subject !== peerId || accused < incarnation) continue
      incarnation = accused + 1
      void word().then((w) => hostile.send({ kind: 'gossip', updates: [w] }))
    }
  }

  // Passes for a member: answers probes, and push/pull with its own word.
  await host.handle(SWIM_PROTOCOL, async (stream) => {
    const lp = lpStream(stream, { maxDataLength: MAX_SYNC_BYTES })
    try {
      const m = decodeSwim((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())
      if ('updates' in m) refute(m.updates)
      if (m.kind === 'ping')
        await lp.write(encodeSwim({ kind: 'ack', probe: m.probe, sentAt: Date.now(), updates: [] }))
      else if (m.kind === 'ping-req') await lp.write(encodeSwim({ kind: 'nack', probe: m.probe }))
      else if (m.kind === 'sync')
        await lp.write(
          encodeSwim({ kind: 'sync', sentAt: Date.now(), digest: '', updates: [await word()] }),
        )
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  })

  const hostile: HostilePeer = {
    host,
    peerId,
    privateKey,
    addr: `${host.getMultiaddrs()[0]?.toString()}`,
    sign,
    words,
    async connect(addr, { timeoutMs = 10_000, join = true } = {}) {
      const connection = await host.dial(multiaddr(addr), {
        signal: AbortSignal.timeout(timeoutMs),
      })
      // Streams opened before identify has run on a new connection may be
      // reset; wait until the member's protocols are known.
      const deadline = Date.now() + timeoutMs
      while (
        !(
          await host.peerStore.get(connection.remotePeer).catch(() => undefined)
        )?.protocols.includes(SWIM_PROTOCOL)
      ) {
        if (Date.now() > deadline) throw new Error('identify never completed with the member')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      if (!join) return
      const remote = connection.remotePeer.toString()
      connected.add(remote)
      await ask(remote, { kind: 'sync', sentAt: Date.now(), digest: '', updates: [await word()] })
    },
    async send(message) {
      return Promise.all([...connected].map((to) => ask(to, message).catch(() => undefined)))
    },
    async announce(extra) {
      fields = { ...fields, ...extra }
      await hostile.send({ kind: 'gossip', updates: [await word()] })
    },
    async answer(protocol, answer) {
      await host.handle(
        protocol,
        async (stream) => {
          const lp = lpStream(stream, { maxDataLength: MAX_ANSWER_BYTES })
          try {
            const request = await lp.read({ signal: AbortSignal.timeout(10_000) })
            await answer(request.subarray(), lp, stream)
            await stream.close()
          } catch (err) {
            stream.abort(err as Error)
          }
        },
        { force: true },
      )
    },
    async stop() {
      await host.stop()
    },
  }
  return hostile
}

/** The peer id object of a member, for dialling it from the hostile peer. */
export const peerOf = (id: string) => peerIdFromString(id)
