// /chorus/group/1: a sub-coordinator's part in a tree fan-out. The handler
// merges the slices of the members a coordinator names (query/coordinator.ts
// does the merging) and sends the merged events as they are stored, then a
// row per member; the client checks every event against the group and the
// request, as the slice client does for one member.

import {
  decodeGroupAnswer,
  decodeGroupRequest,
  encodeBatches,
  encodeGroupRequest,
  encodeGroupTrailer,
  encodeSliceRequest,
  GROUP_PROTOCOL,
  type GroupRequest,
  ProtocolError,
} from '../../../protocol/index.ts'
import type { ChorusEvent } from '../../event/event.ts'
import { memberTag, tagHex } from '../../event/id.ts'
import type { GroupAnswer, GroupHandler } from '../../query/coordinator.ts'
import { createAnswerCheck } from '../../query/slice.ts'
import { toEvent } from '../../store/codec.ts'
import { open, type Peer, RemoteError, type ServedProtocol, translate } from './stream.ts'

export interface GroupComponents {
  /** Merges the slices of a group's members, as a sub-coordinator. */
  group: GroupHandler
}

export const groupProtocol: ServedProtocol<GroupComponents> = {
  protocol: GROUP_PROTOCOL,
  name: 'group',
  kind: 'events',
  async answer(request, lp, signal, components) {
    const { events, trailer } = await components.group(decodeGroupRequest(request), { signal })
    for (const batch of encodeBatches(events)) await lp.write(batch, { signal })
    await lp.write(encodeGroupTrailer(trailer), { signal })
  },
}

/**
 * Asks `peer` to merge the slices of `group` (peer ids and names), and
 * reads its whole answer: every event must belong to a member of the group,
 * lie within the request's bounds and come in scan order, and no more than
 * the request's limit; anything else is a ProtocolError.
 */
export async function remoteGroup(
  peer: Peer,
  request: GroupRequest,
  group: ReadonlyArray<{ peerId: string; name: string }>,
  options: { signal: AbortSignal },
): Promise<GroupAnswer> {
  const { signal } = options
  const members = new Map(
    group.map((m) => {
      const tag = memberTag(m.peerId)
      return [tagHex(tag), { ...m, check: createAnswerCheck(request.slice, tag) }]
    }),
  )
  const { stream, lp } = await open(peer, GROUP_PROTOCOL, signal)
  const events: ChorusEvent[] = []
  let previous: Uint8Array | undefined
  try {
    await lp.write(encodeGroupRequest(request, encodeSliceRequest(request.slice)), { signal })
    for (;;) {
      const message = decodeGroupAnswer((await lp.read({ signal })).subarray())
      if (message.kind === 'error')
        throw new RemoteError(`${peer.name} answered ${message.code}: ${message.message}`)
      if (message.kind === 'group-trailer') {
        await stream.close({ signal }).catch(() => {})
        const rows = message.trailer.rows.filter((r) => members.has(tagHex(memberTag(r.peerId))))
        return { events, trailer: { more: message.trailer.more, rows } }
      }
      for (const e of message.events) {
        const member = members.get(tagHex(e.id.subarray(6, 11)))
        const wrong =
          member === undefined
            ? 'sent an event of a member outside its group'
            : (member.check(e.id) ??
              (previous !== undefined &&
              (request.slice.reverse
                ? Buffer.compare(e.id, previous) >= 0
                : Buffer.compare(e.id, previous) <= 0)
                ? 'sent events out of order'
                : undefined))
        if (wrong !== undefined || member === undefined)
          throw new ProtocolError('malformed', `${peer.name} ${wrong}`)
        if (events.length >= request.slice.limit)
          throw new ProtocolError('malformed', `${peer.name} sent more events than the limit`)
        previous = e.id
        events.push(toEvent(e.id, e, member.peerId, member.name))
      }
    }
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw translate(err, signal)
  }
}
