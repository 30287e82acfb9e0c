// The members a coordinator asks: this member itself, answered by a direct
// call of its own handlers (the same ones peers reach over the network, as
// Serf's Query() answers for its own node), then the others, as the mesh's
// protocol clients. A member that is dead, or that left with events, is
// asked through a holder of its events (node/replica/), this member or
// another, when one is alive: its slices, lookups, rollups and event totals
// come from the holder's copy, under its own name and tag, and its row says which holder
// served it. Assembled here, so that the mesh knows nothing of
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
  counters: (origin?: string) => MemberCounters
  /** The name of a member by its peer id (whose events a request names as `origin`). */
  nameOf?: (peerId: string) => string
}

/** This member as a target: its handlers called directly, their stored events decoded here. */
export function createSelfTarget(init: SelfTargetInit): SliceTarget {
  const { peerId, name } = init
  return {
    peerId,
    name,
    tag: tagHex(init.tag),
    state: 'alive',
    slice: async (request, options) => {
      const answer = init.slice(request, options)
      const { origin } = request
      if (origin === undefined) return decodedAnswer(answer, peerId, name)
      return decodedAnswer(answer, origin, init.nameOf?.(origin) ?? origin)
    },
    lookup: async (id) => {
      const stored = await init.lookup(id)
      return stored === undefined ? undefined : decodeStored([stored], peerId, name)[0]
    },
    rollup: (request, options) => init.rollup(request, options),
    stats: async (options) => init.counters(options.origin),
  }
}

/** Where a dead member's events can be read instead (node/replica/). */
export interface HeldReads {
  /** The peer id of a live holder of `origin`'s events, this member's possibly; undefined when none. */
  holder(origin: string): string | undefined
  /** True while this member restores its own events from a holder: its holder answers for it. */
  restoring?(): boolean
}

/**
 * Every member to ask, this one first, from a snapshot of the others taken
 * at each call. With `held`: a dead member, one that left with events, and
 * this member while it restores, are asked through a live holder of their
 * events; a live member carries a hedge to its holder.
 */
export function createTargets(
  self: SliceTarget,
  peers: () => readonly SliceTarget[],
  held?: HeldReads,
): () => SliceTarget[] {
  return () => {
    // A member that left is asked only through a holder of its events.
    const all = peers()
    const others = all.filter((t) => t.state !== 'left')
    if (held === undefined) return [self, ...others]
    const byId = new Map(others.map((t) => [t.peerId, t]))
    byId.set(self.peerId, self)
    let me = self
    if (held.restoring?.() === true) {
      const holder = byId.get(held.holder(self.peerId) ?? '')
      if (holder !== undefined && holder !== self) me = heldTarget(self, holder)
    }
    const answeredFor: SliceTarget[] = []
    for (const target of all) {
      if (target.state !== 'left' || (target.seq ?? 0) === 0) continue
      const holder = byId.get(held.holder(target.peerId) ?? '')
      if (holder !== undefined && holder.state !== 'dead')
        answeredFor.push(heldTarget(target, holder))
    }
    return [
      me,
      ...answeredFor,
      ...others.map((target) => {
        const holder = byId.get(held.holder(target.peerId) ?? '')
        if (holder === undefined || holder.state === 'dead' || holder === target) return target
        if (target.state === 'dead') return heldTarget(target, holder)
        // Alive: asked itself, and its holder too if it is slow to answer (hedge.ts).
        return {
          ...target,
          hedge: (request, options) => holder.slice({ ...request, origin: target.peerId }, options),
          hedgeBy: holder.name,
        } satisfies SliceTarget
      }),
    ]
  }
}

/** A dead or departed member as its holder answers for it: slices, lookups, rollups and event totals from the holder's copy. */
function heldTarget(origin: SliceTarget, holder: SliceTarget): SliceTarget {
  const { peerId, name } = origin
  return {
    ...origin,
    state: 'alive',
    servedBy: holder.name,
    covers: origin.seq ?? 0,
    slice: (request, options) => holder.slice({ ...request, origin: peerId }, options),
    rollup: (request, options) => holder.rollup({ ...request, origin: peerId }, options),
    stats: (options) => holder.stats({ ...options, origin: peerId }),
    lookup: async (id, options) => {
      const event = await holder.lookup(id, options)
      return event === undefined ? undefined : { ...event, member: peerId, memberName: name }
    },
  }
}
