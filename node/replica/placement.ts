// Placement: which members hold copies of each member's (each origin's)
// events. Rendezvous hashing: every candidate gets a score for the origin,
// and the R − 1 highest hold it. A member that joins takes only the
// assignments where it scores among the highest, and one that leaves gives
// up only its own, so about 1/N of them move either way; and every member
// computes the same answer from the same table, with nothing to agree on.
//
// Candidates are the members that are alive or suspect, and those dead or
// left for less than the re-replication delay: a holder that restarts, or
// is away for a minute, keeps its assignments, and only one that stays away
// longer hands them on, so the next member in the order copies the origin's
// events and R copies exist again (and an origin away that long gets one
// holder more in its own place: node/replica/replicator.ts).

import type { MemberEntry } from '../mesh/membership.ts'

/** 32-bit score of `member` as a holder of `origin`'s events: FNV-1a, then mixed (murmur3's finaliser). */
export function holderScore(origin: string, member: string): number {
  let h = 0x811c9dc5
  const text = `${origin}\n${member}`
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The members that hold `origin`'s events: the `replicas − 1` candidates scoring highest, best first. */
export function holdersOf(
  origin: string,
  candidates: readonly string[],
  replicas: number,
): string[] {
  if (replicas <= 1) return []
  return candidates
    .filter((c) => c !== origin)
    .map((c) => ({ c, score: holderScore(origin, c) }))
    .sort((a, b) => b.score - a.score || (a.c < b.c ? -1 : a.c > b.c ? 1 : 0))
    .slice(0, replicas - 1)
    .map((x) => x.c)
}

/** The members of a table that may hold copies now (see the module comment). */
export function candidatesOf(
  table: readonly MemberEntry[],
  now: number,
  rereplicateAfterMs: number,
): string[] {
  const out: string[] = []
  for (const e of table) {
    if (e.state === 'alive' || e.state === 'suspect') out.push(e.member)
    else if ((e.state === 'dead' || e.state === 'left') && now - e.lastSeen < rereplicateAfterMs)
      out.push(e.member)
  }
  return out
}
