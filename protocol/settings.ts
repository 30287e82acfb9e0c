// /chorus/settings/1: the array settings a member holds (each one signed
// version), for a member that saw in its word (`settings`) that it holds
// others than its own.
//
//   settings request  [26]
//   settings          [27, [[name, signed version bytes]...]] (settings at
//                     their defaults left out)

import * as frame from './framing.ts'

export const SETTINGS_PROTOCOL = '/chorus/settings/1'
/** Largest signed version of one setting, bytes. */
export const MAX_SETTING_VERSION_BYTES = 64 * 1024
/** Most settings in one answer. */
export const MAX_SETTINGS = 8
const MAX_SETTINGS_BYTES = MAX_SETTINGS * (MAX_SETTING_VERSION_BYTES + 64) + 16

export function encodeSettingsRequest(): Uint8Array {
  return frame.pack([frame.KIND_SETTINGS_REQUEST], frame.MAX_REQUEST_BYTES)
}

export function decodeSettingsRequest(bytes: Uint8Array): void {
  frame.framed(bytes, frame.MAX_REQUEST_BYTES, frame.KIND_SETTINGS_REQUEST, 1, 'a settings request')
}

export function encodeSettings(sets: Array<[string, Uint8Array]>): Uint8Array {
  return frame.pack([frame.KIND_SETTINGS, sets.slice(0, MAX_SETTINGS)], MAX_SETTINGS_BYTES)
}

/** Each setting's signed version, by name; the caller checks each signature. */
export function decodeSettings(bytes: Uint8Array): Array<[string, Uint8Array]> {
  const [, sets] = frame.framed(bytes, MAX_SETTINGS_BYTES, frame.KIND_SETTINGS, 2, 'settings')
  if (!Array.isArray(sets) || sets.length > MAX_SETTINGS) throw frame.malformed('settings')
  return sets.map((entry: unknown) => {
    if (
      !Array.isArray(entry) ||
      entry.length !== 2 ||
      !frame.isString(entry[0], 32) ||
      !(entry[1] instanceof Uint8Array) ||
      entry[1].byteLength > MAX_SETTING_VERSION_BYTES
    )
      throw frame.malformed('settings entry')
    return [entry[0], entry[1]] as [string, Uint8Array]
  })
}
