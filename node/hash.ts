// FNV-1a of a string, 32 bits: a cheap, stable place for a member on a ring
// (mesh/membership.ts) and a rendezvous score (query/coordinator.ts).
// Not for anything an adversary chooses to collide with.

export function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}
