// What every chorus protocol does the same way on a libp2p stream, on both
// sides. Serving: read one request (bounded in size and time), answer it,
// close; on failure count it and answer an error code, or just reset the
// stream when the peer is gone or too slow; at most MAX_OPEN_STORE_REQUESTS
// requests that read the store at once, from all peers together. Asking:
// open a stream (optimistic negotiation), and turn every failure into an
// error whose name the fan-out maps to a member row: UnreachableError (the
// peer could not be dialled or its stream broke), UnsupportedProtocolError
// (it speaks another version), RemoteError (it answered with an error code),
// ProtocolError (it sent something malformed); an aborted signal is the
// deadline. Each protocol's module (slice.ts, lookup.ts, …) holds only what
// is its own.

import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import {
  decodeAnswer,
  type ErrorCode,
  encodeError,
  MAX_ANSWER_BYTES,
  MAX_REQUEST_BYTES,
  ProtocolError,
} from '../../../protocol/index.ts'
import type { Logger } from '../../log.ts'
import type { QueryKind } from '../../stats.ts'
import type { Host } from '../host.ts'

/** Concurrent inbound streams of one protocol per connection (that is, per peer). */
export const MAX_INBOUND_STREAMS_PER_PEER = 32
/**
 * Requests that read the store (slice, rollup, lookup) open at once, from
 * all peers together; more are answered `busy`. Each open slice holds a
 * store iterator and up to a grant of events, so this bounds what peers can
 * make a member hold, however many peer ids they bring.
 */
export const MAX_OPEN_STORE_REQUESTS = 64
/** A peer must send its request within this, ms. */
export const REQUEST_READ_TIMEOUT_MS = 10_000
/** A whole answer must be taken by the peer within this, ms. */
export const ANSWER_TIMEOUT_MS = 120_000

export type LengthPrefixed = ReturnType<typeof lpStream<Stream>>

/** The protocols a member serves, by the name their counters use. */
export type ServedName =
  | 'slice'
  | 'group'
  | 'lookup'
  | 'rollup'
  | 'stats'
  | 'settings'
  | 'replicate'
export type ServedOutcome = 'ok' | 'malformed' | 'error' | 'busy' | 'refused'

/** One protocol as a member serves it: its id, and how it answers one request. */
export interface ServedProtocol<C> {
  protocol: string
  name: ServedName
  /** The kind of query it answers, for request timing; undefined for those that do not read the store. */
  kind?: QueryKind
  /**
   * A stream that lasts as long as both sides want it (replication): no
   * ANSWER_TIMEOUT_MS, and not one of the MAX_OPEN_STORE_REQUESTS (the
   * protocol bounds its own streams).
   */
  lasting?: boolean
  /** Answers one request of the peer `from` (its peer id). */
  answer(
    request: Uint8Array,
    lp: LengthPrefixed,
    signal: AbortSignal,
    components: C,
    from: string,
  ): Promise<void>
}

export interface ProtocolServerInit<C> {
  host: Host
  logger: Logger
  /** What the protocols answer from: handlers, counters, the table. */
  components: C
  /** Times each request served to a peer, by kind, in seconds. */
  served?: (kind: QueryKind, seconds: number) => void
  /** Counts requests served and refused, by protocol and outcome. */
  count?: (protocol: ServedName, outcome: ServedOutcome) => void
  /** Notes that a peer used its connection (so it is not closed as idle). */
  touch?: (peerId: string) => void
}

export interface ProtocolServer {
  /** Handles every protocol given at creation. */
  start(): Promise<void>
  /** Stops handling them (streams under way finish on their own signals). */
  stop(): Promise<void>
}

/** The code an error answer carries: the codec's own, `too_large` for an oversized length prefix. */
function errorCode(err: unknown, otherwise: ErrorCode): ErrorCode {
  if (err instanceof ProtocolError) return err.code
  if (err instanceof Error && err.name.startsWith('InvalidDataLength')) return 'too_large'
  return otherwise
}

/**
 * Ends a stream with an error message carrying the codec's code (or
 * `internal`). An internal error's own text stays in this member's log: it
 * may name files and paths of this machine, which are no peer's business.
 */
async function answerError(
  lp: LengthPrefixed,
  stream: Stream,
  err: unknown,
  signal: AbortSignal,
): Promise<void> {
  const code = errorCode(err, 'internal')
  const message =
    code === 'internal' ? 'the member failed to answer; its log says why' : (err as Error).message
  await lp.write(encodeError(code, message), { signal }).catch(() => {})
  await stream.close().catch(() => stream.abort(err as Error))
}

function closedSignal(stream: Stream, lasting: boolean): AbortSignal {
  const controller = new AbortController()
  stream.addEventListener('close', () => controller.abort(new Error('stream closed')), {
    once: true,
  })
  if (lasting) return controller.signal
  return AbortSignal.any([controller.signal, AbortSignal.timeout(ANSWER_TIMEOUT_MS)])
}

/**
 * A protocol of one request and one answer message: `answer` turns the
 * request's bytes into the answer's (decoding, and so checking, the request).
 */
export function oneAnswer<C>(
  protocol: string,
  name: ServedName,
  kind: QueryKind | undefined,
  answer: (request: Uint8Array, components: C) => Uint8Array | Promise<Uint8Array>,
): ServedProtocol<C> {
  return {
    protocol,
    name,
    ...(kind === undefined ? {} : { kind }),
    async answer(request, lp, signal, components) {
      await lp.write(await answer(request, components), { signal })
    },
  }
}

/** Serves `protocols` on the host; `start` handles them, `stop` unhandles them. */
export function createProtocolServer<C>(
  init: ProtocolServerInit<C>,
  protocols: ReadonlyArray<ServedProtocol<C>>,
): ProtocolServer {
  const { host, logger } = init
  const count = init.count ?? (() => {})
  let openStoreRequests = 0

  const handler = (served: ServedProtocol<C>) => async (stream: Stream, connection: Connection) => {
    const from = connection.remotePeer.toString()
    init.touch?.(from)
    const started = performance.now()
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    const signal = closedSignal(stream, served.lasting === true)
    const readsStore = served.kind !== undefined && served.lasting !== true
    if (readsStore && openStoreRequests >= MAX_OPEN_STORE_REQUESTS) {
      count(served.name, 'busy')
      const busy = new ProtocolError('busy', 'too many requests open at this member')
      await answerError(lp, stream, busy, signal)
      return
    }
    if (readsStore) openStoreRequests++
    try {
      const request = await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) })
      await served.answer(request.subarray(), lp, signal, init.components, from)
      await stream.close({ signal })
      count(served.name, 'ok')
      if (served.kind !== undefined)
        init.served?.(served.kind, (performance.now() - started) / 1000)
    } catch (err) {
      const code = errorCode(err, 'internal')
      const malformed = code !== 'internal'
      count(
        served.name,
        code === 'busy'
          ? 'busy'
          : code === 'not_holder'
            ? 'refused'
            : malformed
              ? 'malformed'
              : 'error',
      )
      // The peer is gone (it reset or closed the stream, or timed out) or
      // this member is closing its connections as it stops: nobody is left
      // to answer, and it is no fault of this member's.
      if (signal.aborted || stream.status !== 'open' || stream.writeStatus !== 'writable') {
        stream.abort(err as Error)
        return
      }
      if (!malformed) logger.warn({ err, protocol: served.protocol }, 'request failed')
      await answerError(lp, stream, err, signal)
    } finally {
      if (readsStore) openStoreRequests--
    }
  }

  return {
    async start() {
      for (const served of protocols)
        await host.handle(served.protocol, handler(served), {
          maxInboundStreams: MAX_INBOUND_STREAMS_PER_PEER,
        })
    },
    async stop() {
      for (const served of protocols) await host.unhandle(served.protocol)
    },
  }
}

export class UnreachableError extends Error {
  override readonly name = 'UnreachableError'
}

export class RemoteError extends Error {
  override readonly name = 'RemoteError'
}

/** The error a failure of asking becomes (see the module comment). */
export function translate(err: unknown, signal: AbortSignal): Error {
  if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error('aborted')
  const e = err instanceof Error ? err : new Error(String(err))
  if (
    e.name === 'UnsupportedProtocolError' ||
    e.name === 'ProtocolError' ||
    e.name === 'RemoteError'
  )
    return e
  return new UnreachableError(e.message || e.name, { cause: e })
}

/**
 * Opens a stream of `protocol` to `peer`, its messages length-prefixed and
 * bounded: on the connection to it if there is one, else on a new one to
 * the addresses its word gave (no peer-store entry needed).
 */
export async function open(peer: Peer, protocol: string, signal: AbortSignal) {
  try {
    peer.touch?.()
    const to = peer.addrs !== undefined && peer.addrs.length > 0 ? peer.addrs : peer.id
    // Optimistic negotiation: the protocol id travels with the request, which
    // saves a round trip per member per query; a refusal still surfaces as
    // UnsupportedProtocolError, on the first read.
    const stream = await peer.host.dialProtocol(to, protocol, { signal, negotiateFully: false })
    return { stream, lp: lpStream(stream, { maxDataLength: MAX_ANSWER_BYTES }) }
  } catch (err) {
    throw translate(err, signal)
  }
}

/** A peer as a client addresses it: the host to dial from, its peer id, and its name for messages. */
export interface Peer {
  host: Host
  id: PeerId
  name: string
  /** Where to dial it when not connected, each with /p2p/<its id>. */
  addrs?: Multiaddr[]
  /** Notes that its connection is in use. */
  touch?: () => void
}

/** One request, one answer message (or an error message). */
export async function askOnce<T>(
  peer: Peer,
  protocol: string,
  request: Uint8Array,
  decode: (bytes: Uint8Array) => T,
  options: { signal: AbortSignal },
): Promise<T> {
  const { signal } = options
  const { stream, lp } = await open(peer, protocol, signal)
  try {
    await lp.write(request, { signal })
    const bytes = (await lp.read({ signal })).subarray()
    await stream.close({ signal }).catch(() => {})
    try {
      return decode(bytes)
    } catch (err) {
      const answer = decodeAnswer(bytes)
      if (answer.kind === 'error')
        throw new RemoteError(`${peer.name} answered ${answer.code}: ${answer.message}`)
      throw err
    }
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
}
