// The members a coordinator asks: this member itself, answered by a direct
// call of its own handlers (the same ones peers reach over the network, as
// Serf's Query() answers for its own node), then the others, as the mesh's
// protocol clients. Assembled here, so that the mesh knows nothing of
// queries and a query goes one way: query → (self: store | peers: client →
// network → handler → store) → query.

import type { MemberCounters } from '../../protocol/index.ts'
import { tagHex } from '../event/id.ts'
import type { SliceTarget } from './coordinator.ts'
import type { RollupHandler } from './rollups.ts'
import { decodedAnswer, decodeStored, type LookupHandler, type SliceHandler } from './slice.ts'

export interface SelfTargetInit {
  peerId: string
  name: string
  /** The member's 40-bit id tag. */
  tag: Uint8Array
  slice: SliceHandler
  lookup: LookupHandler
  rollup: RollupHandler
  counters: () => MemberCounters
}

/** This member as a target: its handlers called directly, their stored events decoded here. */
export function createSelfTarget(init: SelfTargetInit): SliceTarget {
  const { peerId, name } = init
  return {
    peerId,
    name,
    tag: tagHex(init.tag),
    state: 'alive',
    slice: async (request, options) => decodedAnswer(init.slice(request, options), peerId, name),
    lookup: async (id) => {
      const stored = await init.lookup(id)
      return stored === undefined ? undefined : decodeStored([stored], peerId, name)[0]
    },
    rollup: (request, options) => init.rollup(request, options),
    stats: async () => init.counters(),
  }
}

/** Every member to ask, this one first, from a snapshot of the others taken at each call. */
export function createTargets(
  self: SliceTarget,
  peers: () => readonly SliceTarget[],
): () => SliceTarget[] {
  return () => [self, ...peers()]
}
