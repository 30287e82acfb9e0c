// The health rule set in force, the same on every member without a master.
// A change made on any member gets the next version number and that
// member's peer id, and that member signs it with its key; each member names
// the set it holds in its word (`rules`, its version and digest), a member
// that sees a newer one asks the holder for it (/chorus/rules/1), signature
// and all, and each adopts a set with a higher
// (version, updatedBy) than its own, compared the same way everywhere, so
// concurrent changes converge on one winner. The set in force is kept in the
// store and survives restarts.
//
// What a member takes from another, and why (the threat is a peer that holds
// the swarm key, or a member's key, but no admin token):
// - the author's signature: a set names its author and is signed by the
//   author's key, so a relay cannot make one up in another member's name;
// - the allow-list: with `--allow-peer`, only sets authored by listed peers;
// - one step at a time: a set more than one version above the one in force
//   is taken only when most of the other live members hold that very set.
//   A lone peer can then raise the version by one, as any member with an
//   admin token can, but not to 2^53 - 1, past which no change could follow;
//   a member that was away catches up from the others;
// - with an admin public key (`--admin-public-key`), the admin's approval:
//   every set, made here or taken from another member, must carry the admin's signature of
//   its version and rules (see node/approval.ts), so that neither a member's
//   key nor an admin token is enough to change them.

import { createHash, type KeyObject } from 'node:crypto'
import { type Approval, checkApproval } from '../approval.ts'
import { ApprovalError, ConflictError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { DEFAULT_RULES, type Rule, RulesSchema } from './rules.ts'

/** The name of this setting in admin approvals. */
export const HEALTH_RULES_SETTING = 'health-rules'

/** Largest rule-set message accepted, bytes. */
export const MAX_HEALTH_CONFIG_BYTES = 64 * 1024
/** Sets more than one version ahead that a member keeps count of while it waits for a majority. */
const MAX_PENDING_SETS = 16
/** What an author signs: this prefix, then the set's body (so no other message's signature fits). */
const SIGNING_DOMAIN = 'chorus-health-rules:'

export interface HealthConfig {
  /** 0 for the defaults; each change raises it by one. */
  version: number
  /** Peer id of the member that made this version; null for the defaults. */
  updatedBy: string | null
  rules: Rule[]
  /** The admin's approval of this version, where the array requires one. */
  approval?: Approval
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

/** A set as it travels and is kept: its body (JSON text of the set) and the author's signature of it. */
export interface SignedHealthConfig {
  config: HealthConfig
  /** The message as it travels: JSON `{ "body": "<set as JSON>", "signature": "<base64>" }`. */
  bytes: Uint8Array
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** How a member's word names a set: its version and the start of the SHA-256 of its bytes. */
export function healthConfigTag(config: HealthConfig, bytes: Uint8Array): string {
  return `${config.version}:${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`
}

/** The version a tag names; undefined for an empty or malformed tag. */
export function tagVersion(tag: string): number | undefined {
  const m = /^(\d{1,16}):[0-9a-f]{16}$/.exec(tag)
  return m === null ? undefined : Number(m[1])
}

/** The bytes an author signs for a set's body. */
export function healthConfigSigningBytes(body: string): Uint8Array {
  return encoder.encode(SIGNING_DOMAIN + body)
}

/** Signs a set made by this member, as it goes on the topic and into the store. */
export async function sealHealthConfig(
  config: HealthConfig,
  sign: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<SignedHealthConfig> {
  const body = JSON.stringify(config)
  const signature = Buffer.from(await sign(healthConfigSigningBytes(body))).toString('base64')
  return { config, bytes: encoder.encode(JSON.stringify({ body, signature })) }
}

/** Validates a set's body; undefined when it is not one. */
function configOf(raw: unknown): HealthConfig | undefined {
  const r = raw as { version?: unknown; updatedBy?: unknown; rules?: unknown } | null
  if (typeof r !== 'object' || r === null) return undefined
  if (!Number.isSafeInteger(r.version) || (r.version as number) < 1) return undefined
  if (typeof r.updatedBy !== 'string' || r.updatedBy.length > 128) return undefined
  const rules = RulesSchema.safeParse(r.rules)
  if (!rules.success) return undefined
  const config: HealthConfig = {
    version: r.version as number,
    updatedBy: r.updatedBy,
    rules: rules.data,
  }
  const approval = (raw as { approval?: unknown }).approval
  if (approval !== undefined) {
    const a = approval as Partial<Approval> | null
    if (typeof a?.body !== 'string' || typeof a.signature !== 'string') return undefined
    config.approval = { body: a.body, signature: a.signature }
  }
  return config
}

/** Whether an approval's value is these rules (both read through the schema, so key order agrees). */
function sameRules(value: unknown, rules: Rule[]): boolean {
  const approved = RulesSchema.safeParse(value)
  const given = RulesSchema.safeParse(rules)
  return (
    approved.success &&
    given.success &&
    JSON.stringify(approved.data) === JSON.stringify(given.data)
  )
}

/**
 * Decodes a set as it travels or is kept and its signature, checking its shape and
 * size (the signature is the caller's to check, with `healthConfigSigningBytes`).
 * Undefined when it is not one.
 */
export function decodeHealthConfig(
  bytes: Uint8Array,
): { signed: SignedHealthConfig; body: string; signature: Uint8Array } | undefined {
  if (bytes.byteLength > MAX_HEALTH_CONFIG_BYTES) return undefined
  try {
    const outer = JSON.parse(decoder.decode(bytes)) as { body?: unknown; signature?: unknown }
    if (typeof outer.body !== 'string' || typeof outer.signature !== 'string') return undefined
    if (outer.signature.length > 1024) return undefined
    const config = configOf(JSON.parse(outer.body))
    if (config === undefined) return undefined
    const signature = Buffer.from(outer.signature, 'base64')
    if (signature.byteLength === 0) return undefined
    return { signed: { config, bytes }, body: outer.body, signature }
  } catch {
    return undefined
  }
}

export interface HealthConfigComponents {
  selfPeerId: string
  /** The set kept in the store, as it travels, if any. */
  load(): Promise<Uint8Array | undefined>
  /** Keeps a set in the store (durably), as it travels. */
  save(bytes: Uint8Array): Promise<void>
  /** Tells the other members that this member holds another set now (see `tag`). */
  changed(): void
  /** Signs with this member's key. */
  sign(data: Uint8Array): Promise<Uint8Array>
  /** Whether `peerId`'s key made `signature` over `data`. */
  verify(peerId: string, data: Uint8Array, signature: Uint8Array): Promise<boolean>
  /** Whether a peer may author sets (the allow-list; every peer without one). */
  allowed(peerId: string): boolean
  /** Peer ids of the other members this one holds alive now. */
  liveMembers(): string[]
  /** The admin public key whose approval every set needs; none: no approval needed. */
  adminKey?: KeyObject
  logger: Logger
}

export interface HealthConfigStore {
  current(): HealthConfig
  /** The set in force as it travels (signed), undefined for the defaults. */
  bytes(): Uint8Array | undefined
  /** `<version>:<digest>` of the set in force, for this member's word; empty for the defaults. */
  tag(): string
  /**
   * Replaces the rules with a new version made by this member, keeps it,
   * and names it in this member's word. Where the array requires the admin's approval, throws
   * ApprovalError without one for exactly this version and these rules, and
   * ConflictError when it approves another version.
   */
  put(rules: Rule[], approval?: Approval): Promise<HealthConfig>
  /**
   * Takes a set from the member `from` (which the connection authenticated,
   * and whose word names this set); adopts it if it wins over the one in
   * force and passes the checks in the module comment. Resolves to what
   * became of it.
   */
  receive(bytes: Uint8Array, from: string): Promise<HealthConfigOutcome>
  /** How many sets taken from other members came to each outcome since start. */
  outcomes(): Readonly<Record<HealthConfigOutcome, number>>
  start(): Promise<void>
  stop(): void
}

export type HealthConfigOutcome =
  | 'adopted'
  | 'not_newer'
  | 'malformed'
  | 'not_allowed'
  | 'bad_signature'
  | 'not_approved'
  | 'awaiting_majority'

export function createHealthConfig(components: HealthConfigComponents): HealthConfigStore {
  const { logger } = components
  /** The set in force; `bytes` undefined for a set kept by an older release, which is held but not passed on. */
  let current: { config: HealthConfig; bytes: Uint8Array | undefined } | undefined
  let saving = Promise.resolve()
  /** Sets more than one version ahead, by body, and the live members that hold each. */
  const pending = new Map<string, { signed: SignedHealthConfig; from: Set<string> }>()
  const outcomes: Record<HealthConfigOutcome, number> = {
    adopted: 0,
    not_newer: 0,
    malformed: 0,
    not_allowed: 0,
    bad_signature: 0,
    not_approved: 0,
    awaiting_majority: 0,
  }

  const config = () => current?.config ?? DEFAULT_HEALTH_CONFIG

  const adopt = async (signed: SignedHealthConfig) => {
    current = signed
    pending.clear()
    components.changed()
    // Saves in order, so the store always ends with the latest adopted set.
    saving = saving
      .then(() => components.save(signed.bytes))
      .catch((err: unknown) => {
        logger.warn({ err }, 'could not keep the health rules')
      })
    await saving
  }

  /**
   * A kept set: as it travels, or as an older release kept it (the set alone,
   * unsigned), which is signed again if this member made it and otherwise
   * held without being passed on until a newer one comes.
   */
  const fromStore = async (kept: Uint8Array) => {
    const decoded = decodeHealthConfig(kept)
    if (decoded !== undefined) return decoded.signed
    let legacy: HealthConfig | undefined
    try {
      legacy = configOf(JSON.parse(decoder.decode(kept)))
    } catch {}
    if (legacy === undefined) {
      logger.warn('the kept health rules are unreadable; using the defaults')
      return undefined
    }
    if (legacy.updatedBy === components.selfPeerId)
      return await sealHealthConfig(legacy, components.sign)
    return { config: legacy, bytes: undefined }
  }

  /** Whether most of the other live members hold this set (at least one). */
  const endorsed = (from: Set<string>) => {
    const live = components.liveMembers()
    const endorsers = live.filter((peerId) => from.has(peerId)).length
    return endorsers >= Math.floor(live.length / 2) + 1
  }

  /** What is wrong with a set's approval where the array requires one; undefined when nothing is. */
  function approvalProblem(set: HealthConfig): ApprovalError | ConflictError | undefined {
    const key = components.adminKey
    if (key === undefined) return undefined
    if (set.approval === undefined)
      return new ApprovalError(
        'this array takes health rules only with the admin approval: chorus config set --admin-key FILE',
        'approval_required',
      )
    const approved = checkApproval(key, set.approval)
    if (approved === undefined || approved.setting !== HEALTH_RULES_SETTING)
      return new ApprovalError(
        'the approval is not signed by the admin key of this array',
        'approval_invalid',
      )
    if (approved.version !== set.version)
      return new ConflictError(
        `the approval is for version ${approved.version}, and the next version is ${set.version}: approve again`,
        'version_conflict',
      )
    if (!sameRules(approved.value, set.rules))
      return new ApprovalError('the approval is for other rules than these', 'approval_invalid')
    return undefined
  }

  /** Decides what becomes of a set taken from another member (see `receive`). */
  async function take(bytes: Uint8Array, from: string): Promise<HealthConfigOutcome> {
    const decoded = decodeHealthConfig(bytes)
    if (decoded === undefined) return 'malformed'
    const { signed, body, signature } = decoded
    const set = signed.config
    if (!newer(set, config())) return 'not_newer'
    const author = set.updatedBy as string
    if (!components.allowed(author)) return 'not_allowed'
    if (!(await components.verify(author, healthConfigSigningBytes(body), signature))) {
      logger.warn({ author, from }, 'a health rule set not signed by its author; ignored')
      return 'bad_signature'
    }
    if (approvalProblem(set) !== undefined) return 'not_approved'
    if (!newer(set, config())) return 'not_newer' // another won meanwhile
    if (set.version > config().version + 1) {
      let entry = pending.get(body)
      if (entry === undefined) {
        if (pending.size >= MAX_PENDING_SETS) pending.delete(pending.keys().next().value as string)
        entry = { signed, from: new Set() }
        pending.set(body, entry)
      }
      entry.from.add(from)
      if (!endorsed(entry.from)) {
        logger.debug(
          { version: set.version, from, endorsers: entry.from.size },
          'health rules more than one version ahead; waiting for most members to hold them',
        )
        return 'awaiting_majority'
      }
    }
    logger.info({ version: set.version, updatedBy: set.updatedBy }, 'health rules adopted')
    await adopt(signed)
    return 'adopted'
  }

  return {
    current: config,
    bytes: () => current?.bytes,
    tag: () => (current?.bytes === undefined ? '' : healthConfigTag(current.config, current.bytes)),
    outcomes: () => outcomes,
    async put(rules, approval) {
      const next: HealthConfig = {
        version: config().version + 1,
        updatedBy: components.selfPeerId,
        rules,
        ...(approval === undefined ? {} : { approval }),
      }
      const problem = approvalProblem(next)
      if (problem !== undefined) throw problem
      await adopt(await sealHealthConfig(next, components.sign))
      logger.info({ version: next.version }, 'health rules changed here')
      return next
    },
    async receive(bytes, from) {
      const outcome = await take(bytes, from)
      outcomes[outcome]++
      return outcome
    },
    async start() {
      const kept = await components.load()
      // What this member kept is its own record: it was checked when adopted.
      if (kept !== undefined) current = await fromStore(kept)
      components.changed()
    },
    stop() {},
  }
}
