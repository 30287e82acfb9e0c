// How many copies of every member's events the array keeps: an array
// setting (see node/settings.ts), seeded by `--replicas` until someone
// changes it on any member (PUT /v1/config/replicas).

import { z } from 'zod'
import {
  createSetting,
  type Setting,
  type SettingComponents,
  type SettingSpec,
  type SettingVersion,
} from '../settings.ts'

/** The name of this setting in admin approvals and on the wire. */
export const REPLICAS_SETTING = 'replicas'
export const MIN_REPLICAS = 1
export const MAX_REPLICAS = 5

export const ReplicasSchema = z.number().int().min(MIN_REPLICAS).max(MAX_REPLICAS)

export const REPLICAS: SettingSpec<'replicas', number> = {
  name: REPLICAS_SETTING,
  field: 'replicas',
  schema: ReplicasSchema,
  signingDomain: 'chorus-replicas:',
}

export type ReplicasConfig = SettingVersion<'replicas', number>
export type ReplicasSetting = Setting<'replicas', number>

/** The replica count in force, `seed` (from --replicas) until a version is made. */
export function createReplicasSetting(
  seed: number,
  components: SettingComponents,
): ReplicasSetting {
  return createSetting(REPLICAS, seed, components)
}
