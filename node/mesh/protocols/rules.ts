// /chorus/rules/1: the health rule set this member holds, for a member whose
// table shows (in this member's word) that it holds a newer one.

import {
  decodeRules,
  decodeRulesRequest,
  encodeRules,
  encodeRulesRequest,
  RULES_PROTOCOL,
} from '../../../protocol/index.ts'
import { askOnce, oneAnswer, type Peer } from './stream.ts'

export interface RulesComponents {
  /** The signed rule set in force here, undefined for the defaults. */
  rules(): Uint8Array | undefined
}

export const rulesProtocol = oneAnswer<RulesComponents>(
  RULES_PROTOCOL,
  'rules',
  undefined,
  (request, components) => {
    decodeRulesRequest(request)
    return encodeRules(components.rules())
  },
)

/** Asks one member for the rule set it holds (its signature is the asker's to check). */
export function remoteRules(
  peer: Peer,
  options: { signal: AbortSignal },
): Promise<Uint8Array | undefined> {
  return askOnce(peer, RULES_PROTOCOL, encodeRulesRequest(), decodeRules, options)
}
