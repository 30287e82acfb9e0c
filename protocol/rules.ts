// /chorus/rules/1: the health rule set a member holds, for a member that
// saw in its word (`rules`) that it holds a newer one than its own.
//
//   rules request  [26]
//   rules          [27, signed rule set bytes, or empty when it holds none]

import * as frame from './framing.ts'

export const RULES_PROTOCOL = '/chorus/rules/1'
/** Largest signed health rule set, bytes. */
export const MAX_RULES_BYTES = 64 * 1024

export function encodeRulesRequest(): Uint8Array {
  return frame.pack([frame.KIND_RULES_REQUEST], frame.MAX_REQUEST_BYTES)
}

export function decodeRulesRequest(bytes: Uint8Array): void {
  frame.framed(bytes, frame.MAX_REQUEST_BYTES, frame.KIND_RULES_REQUEST, 1, 'a rules request')
}

export function encodeRules(set: Uint8Array | undefined): Uint8Array {
  return frame.pack([frame.KIND_RULES, set ?? new Uint8Array()], MAX_RULES_BYTES + 16)
}

/** The signed set, undefined when the member holds none; the caller checks its signature. */
export function decodeRules(bytes: Uint8Array): Uint8Array | undefined {
  const [, set] = frame.framed(bytes, MAX_RULES_BYTES + 16, frame.KIND_RULES, 2, 'rules')
  if (!(set instanceof Uint8Array) || set.byteLength > MAX_RULES_BYTES)
    throw frame.malformed('rules')
  return set.byteLength === 0 ? undefined : set
}
