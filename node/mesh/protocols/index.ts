// Every chorus protocol a member serves, one line each: a new protocol is a
// module beside these (its constants, components, handler and client) and
// one line here.

import { type GroupComponents, groupProtocol } from './group.ts'
import { type LookupComponents, lookupProtocol } from './lookup.ts'
import { type ReplicateComponents, replicateProtocol } from './replicate.ts'
import { type RollupComponents, rollupFilterProtocol, rollupProtocol } from './rollup.ts'
import { type SettingsComponents, settingsProtocol } from './settings.ts'
import { type SliceComponents, sliceFilterProtocol, sliceProtocol } from './slice.ts'
import { type StatsComponents, statsProtocol } from './stats.ts'
import {
  createProtocolServer,
  type ProtocolServer,
  type ProtocolServerInit,
  type ServedProtocol,
} from './stream.ts'

/** What the served protocols answer from, together. */
export type ServedComponents = SliceComponents &
  GroupComponents &
  LookupComponents &
  RollupComponents &
  StatsComponents &
  SettingsComponents &
  ReplicateComponents

const SERVED: ReadonlyArray<ServedProtocol<ServedComponents>> = [
  sliceProtocol,
  sliceFilterProtocol,
  groupProtocol,
  lookupProtocol,
  rollupProtocol,
  rollupFilterProtocol,
  statsProtocol,
  settingsProtocol,
  replicateProtocol,
]

/** Serves every chorus protocol from `components`; `start` handles, `stop` unhandles. */
export function createServedProtocols(init: ProtocolServerInit<ServedComponents>): ProtocolServer {
  return createProtocolServer(init, SERVED)
}
