// The health rule set in force, the same on every member: an array setting
// (see node/settings.ts for how a change spreads and what a member takes
// from another).

import {
  createSetting,
  decodeVersion,
  type Setting,
  type SettingComponents,
  type SettingSpec,
  type SettingVersion,
  type SignedVersion,
  sealVersion,
  signingBytes,
  versionTag,
} from '../settings.ts'
import { DEFAULT_RULES, type Rule, RulesSchema } from './rules.ts'

/** The name of this setting in admin approvals and on the wire. */
export const HEALTH_RULES_SETTING = 'health-rules'

export const HEALTH_RULES: SettingSpec<'rules', Rule[]> = {
  name: HEALTH_RULES_SETTING,
  field: 'rules',
  schema: RulesSchema,
  signingDomain: 'chorus-health-rules:',
}

export type HealthConfig = SettingVersion<'rules', Rule[]>
export type HealthConfigStore = Setting<'rules', Rule[]>

export const DEFAULT_HEALTH_CONFIG: HealthConfig = {
  version: 0,
  updatedBy: null,
  rules: DEFAULT_RULES,
}

export function createHealthConfig(components: SettingComponents): HealthConfigStore {
  return createSetting(HEALTH_RULES, DEFAULT_RULES, components)
}

/** Signs a rule set made by this member, as it travels and is kept. */
export function sealHealthConfig(
  config: HealthConfig,
  sign: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<SignedVersion<'rules', Rule[]>> {
  return sealVersion(HEALTH_RULES, config, sign)
}

/** How a rule set is named: its version and the start of the SHA-256 of its bytes. */
export function healthConfigTag(config: { version: number }, bytes: Uint8Array): string {
  return versionTag(config.version, bytes)
}

/** The bytes an author signs for a rule set's body. */
export function healthConfigSigningBytes(body: string): Uint8Array {
  return signingBytes(HEALTH_RULES, body)
}

/** Decodes a rule set as it travels; undefined when it is not one. */
export function decodeHealthConfig(bytes: Uint8Array) {
  return decodeVersion(HEALTH_RULES, bytes)
}
