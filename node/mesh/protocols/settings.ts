// /chorus/settings/1: the array settings this member holds, for a member
// whose table shows (in this member's word) that it holds others.

import {
  decodeSettings,
  decodeSettingsRequest,
  encodeSettings,
  encodeSettingsRequest,
  SETTINGS_PROTOCOL,
} from '../../../protocol/index.ts'
import { askOnce, oneAnswer, type Peer } from './stream.ts'

export interface SettingsComponents {
  /** Each setting's signed version in force here, by name (defaults left out). */
  settings(): Array<[string, Uint8Array]>
}

export const settingsProtocol = oneAnswer<SettingsComponents>(
  SETTINGS_PROTOCOL,
  'settings',
  undefined,
  (request, components) => {
    decodeSettingsRequest(request)
    return encodeSettings(components.settings())
  },
)

/** Asks one member for the settings it holds (their signatures are the asker's to check). */
export function remoteSettings(
  peer: Peer,
  options: { signal: AbortSignal },
): Promise<Array<[string, Uint8Array]>> {
  return askOnce(peer, SETTINGS_PROTOCOL, encodeSettingsRequest(), decodeSettings, options)
}
