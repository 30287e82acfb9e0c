// /chorus/lookup/2: one id, one event as its owner stores it, or none. The
// client checks that the event answered is the one asked. A holder of the
// owner's events answers for them as the owner would.

import {
  decodeLookupReply,
  decodeLookupRequest,
  encodeLookupReply,
  encodeLookupRequest,
  LOOKUP_PROTOCOL,
  ProtocolError,
  type StoredEvent,
} from '../../../protocol/index.ts'
import type { ChorusEvent } from '../../event/event.ts'
import { toEvent } from '../../store/codec.ts'
import { oneAnswer, open, type Peer, RemoteError, translate } from './stream.ts'

export interface LookupComponents {
  /** This member's event with these 16 id bytes, as stored, if it has it. */
  lookup(id: Uint8Array): Promise<StoredEvent | undefined>
}

export const lookupProtocol = oneAnswer<LookupComponents>(
  LOOKUP_PROTOCOL,
  'lookup',
  'lookup',
  async (request, components) =>
    encodeLookupReply(await components.lookup(decodeLookupRequest(request))),
)

/** Asks the member that owns an id for its event. */
export async function remoteLookup(
  peer: Peer,
  id: Uint8Array,
  options: {
    signal: AbortSignal
    /** Whose event it is, when `peer` answers as a holder of its events. */
    owner?: { member: string; name: string }
  },
): Promise<ChorusEvent | undefined> {
  const { signal } = options
  const { name } = peer
  const { stream, lp } = await open(peer, LOOKUP_PROTOCOL, signal)
  try {
    await lp.write(encodeLookupRequest(id), { signal })
    const reply = decodeLookupReply((await lp.read({ signal })).subarray())
    await stream.close({ signal }).catch(() => {})
    if ('code' in reply) throw new RemoteError(`${name} answered ${reply.code}: ${reply.message}`)
    if (reply.event !== undefined && Buffer.compare(reply.event.id, id) !== 0)
      throw new ProtocolError('malformed', `${name} answered with another event than the one asked`)
    return reply.event === undefined
      ? undefined
      : toEvent(
          reply.event.id,
          reply.event,
          options.owner?.member ?? peer.id.toString(),
          options.owner?.name ?? name,
        )
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
}
