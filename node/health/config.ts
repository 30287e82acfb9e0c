// The health rule set in force, the same on every member without a master.
// A change made on any member gets the next version number and that
// member's peer id; members gossip the set they hold, and each adopts a set
// with a higher (version, updatedBy) than its own, compared the same way
// everywhere, so concurrent changes converge on one winner. The set in force
// is kept in the store and survives restarts.

import type { Logger } from '../log.ts'
import { DEFAULT_RULES, type Rule, RulesSchema } from './rules.ts'

/** How often a member gossips the set it holds, so that newcomers and the partitioned catch up. */
export const HEALTH_CONFIG_GOSSIP_MS = 2000
/** Largest rule-set message accepted, bytes. */
export const MAX_HEALTH_CONFIG_BYTES = 64 * 1024

export interface HealthConfig {
  /** 0 for the defaults; each change raises it by one. */
  version: number
  /** Peer id of the member that made this version; null for the defaults. */
  updatedBy: string | null
  rules: Rule[]
}

export const DEFAULT_HEALTH_CONFIG: HealthConfig = {
  version: 0,
  updatedBy: null,
  rules: DEFAULT_RULES,
}

/** Whether `a` wins over `b`: the higher version, then the larger peer id. */
export function newer(a: HealthConfig, b: HealthConfig): boolean {
  if (a.version !== b.version) return a.version > b.version
  return (a.updatedBy ?? '') > (b.updatedBy ?? '')
}

export function encodeHealthConfig(config: HealthConfig): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(config))
}

/** Decodes and validates a gossiped rule set; undefined when it is not one. */
export function decodeHealthConfig(bytes: Uint8Array): HealthConfig | undefined {
  if (bytes.byteLength > MAX_HEALTH_CONFIG_BYTES) return undefined
  try {
    const raw = JSON.parse(new TextDecoder().decode(bytes)) as {
      version?: unknown
      updatedBy?: unknown
      rules?: unknown
    }
    if (!Number.isSafeInteger(raw.version) || (raw.version as number) < 1) return undefined
    if (typeof raw.updatedBy !== 'string' || raw.updatedBy.length > 128) return undefined
    const rules = RulesSchema.safeParse(raw.rules)
    if (!rules.success) return undefined
    return { version: raw.version as number, updatedBy: raw.updatedBy, rules: rules.data }
  } catch {
    return undefined
  }
}

export interface HealthConfigComponents {
  selfPeerId: string
  /** The set kept in the store, if any. */
  load(): Promise<HealthConfig | undefined>
  /** Keeps a set in the store (durably). */
  save(config: HealthConfig): Promise<void>
  /** Gossips a set to the other members. */
  publish(bytes: Uint8Array): Promise<void>
  logger: Logger
}

export interface HealthConfigStore {
  current(): HealthConfig
  /** Replaces the rules with a new version made by this member, keeps it, and gossips it. */
  put(rules: Rule[]): Promise<HealthConfig>
  /** Takes a gossiped set; adopts it if it wins over the one in force. */
  receive(bytes: Uint8Array): Promise<void>
  start(): Promise<void>
  stop(): void
}

export function createHealthConfig(components: HealthConfigComponents): HealthConfigStore {
  let current = DEFAULT_HEALTH_CONFIG
  let timer: NodeJS.Timeout | undefined
  let saving = Promise.resolve()

  const publish = () => {
    if (current.version === 0) return
    components.publish(encodeHealthConfig(current)).catch(() => {})
  }

  const adopt = async (config: HealthConfig) => {
    current = config
    // Saves in order, so the store always ends with the latest adopted set.
    saving = saving
      .then(() => components.save(config))
      .catch((err: unknown) => {
        components.logger.warn({ err }, 'could not keep the health rules')
      })
    await saving
  }

  return {
    current: () => current,
    async put(rules) {
      const config: HealthConfig = {
        version: current.version + 1,
        updatedBy: components.selfPeerId,
        rules,
      }
      await adopt(config)
      components.logger.info({ version: config.version }, 'health rules changed here')
      publish()
      return config
    },
    async receive(bytes) {
      const config = decodeHealthConfig(bytes)
      if (config === undefined || !newer(config, current)) return
      components.logger.info(
        { version: config.version, updatedBy: config.updatedBy },
        'health rules adopted',
      )
      await adopt(config)
    },
    async start() {
      const kept = await components.load()
      if (kept !== undefined && newer(kept, current)) current = kept
      timer = setInterval(publish, HEALTH_CONFIG_GOSSIP_MS)
      timer.unref()
      publish()
    },
    stop() {
      clearInterval(timer)
    },
  }
}
