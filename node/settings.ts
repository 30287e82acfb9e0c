// The array's settings (the health rules, the replica count): each the same
// on every member without a master. A change made on any member gets the
// setting's next version number and that member's peer id, and that member
// signs it with its key; each member names the settings it holds in its word
// (`settings`: the sum of their versions and a digest), a member that sees
// another word fetches them from the holder (/chorus/settings/1), signatures
// and all, and each adopts a version of a setting with a higher
// (version, updatedBy) than its own, compared the same way everywhere, so
// concurrent changes converge on one winner. The version in force is kept in
// the store and survives restarts.
//
// What a member takes from another, and why (the threat is a peer that holds
// the swarm key, or a member's key, but no admin token):
// - the author's signature: a version names its author and is signed by the
//   author's key, so a relay cannot make one up in another member's name;
// - the allow-list: with `--allow-peer`, only versions authored by listed peers;
// - one step at a time: a version more than one above the one in force is
//   taken only when most of the other live members hold that very version.
//   A lone peer can then raise the version by one, as any member with an
//   admin token can, but not to 2^53 - 1, past which no change could follow;
//   a member that was away catches up from the others;
// - with an admin public key (`--admin-public-key`), the admin's approval:
//   every version, made here or taken from another member, must carry the
//   admin's signature of the setting's name, its version and its value (see
//   node/approval.ts), so that neither a member's key nor an admin token is
//   enough to change it.

import { createHash, type KeyObject } from 'node:crypto'
import type { z } from 'zod'
import { type Approval, checkApproval } from './approval.ts'
import { ApprovalError, ConflictError } from './errors.ts'
import type { Logger } from './log.ts'

/** Largest version of a setting accepted, bytes as it travels. */
export const MAX_SETTING_BYTES = 64 * 1024
/** Versions more than one ahead that a member keeps count of while it waits for a majority. */
const MAX_PENDING = 16

/** What a setting is: its name, how its value is checked, and how it is kept in a version's body. */
export interface SettingSpec<F extends string, T> {
  /** Its name in approvals, on the wire and in the store (`health-rules`, `replicas`). */
  name: string
  /** The key of the value in a version's body (`rules`, `replicas`). */
  field: F
  schema: z.ZodType<T>
  /** What an author signs: this prefix, then the version's body (so no other message's signature fits). */
  signingDomain: string
}

/** One version of a setting. */
export type SettingVersion<F extends string, T> = {
  /** 0 for the defaults; each change raises it by one. */
  version: number
  /** Peer id of the member that made this version; null for the defaults. */
  updatedBy: string | null
  /** The admin's approval of this version, where the array requires one. */
  approval?: Approval
} & { [K in F]: T }

/** A version as it travels and is kept: its body (JSON text) and the author's signature of it. */
export interface SignedVersion<F extends string, T> {
  config: SettingVersion<F, T>
  /** JSON `{ "body": "<version as JSON>", "signature": "<base64>" }`. */
  bytes: Uint8Array
}

/** Whether `a` wins over `b`: the higher version, then the larger peer id. */
export function newer(
  a: { version: number; updatedBy: string | null },
  b: { version: number; updatedBy: string | null },
): boolean {
  if (a.version !== b.version) return a.version > b.version
  return (a.updatedBy ?? '') > (b.updatedBy ?? '')
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** How one setting's version is named: its version and the start of the SHA-256 of its bytes. */
export function versionTag(version: number, bytes: Uint8Array): string {
  return `${version}:${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`
}

/** The version (for settings, the sum of versions) a tag names; undefined for an empty or malformed tag. */
export function tagVersion(tag: string): number | undefined {
  const m = /^(\d{1,16}):[0-9a-f]{16}$/.exec(tag)
  return m === null ? undefined : Number(m[1])
}

/**
 * How a member's word names every setting it holds: the sum of their
 * versions (which only grows as it adopts) and a digest of their tags;
 * empty while it holds the defaults of all.
 */
export function settingsTag(tags: Array<{ version: number; tag: string }>): string {
  const held = tags.filter((t) => t.tag !== '')
  if (held.length === 0) return ''
  const sum = held.reduce((total, t) => total + t.version, 0)
  const digest = createHash('sha256')
    .update(held.map((t) => t.tag).join('\n'))
    .digest('hex')
    .slice(0, 16)
  return `${Math.min(sum, 2 ** 53 - 1)}:${digest}`
}

/** The bytes an author signs for a version's body. */
export function signingBytes(spec: SettingSpec<string, unknown>, body: string): Uint8Array {
  return encoder.encode(spec.signingDomain + body)
}

/** Signs a version made by this member, as it travels and is kept. */
export async function sealVersion<F extends string, T>(
  spec: SettingSpec<F, T>,
  config: SettingVersion<F, T>,
  sign: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<SignedVersion<F, T>> {
  const body = JSON.stringify(config)
  const signature = Buffer.from(await sign(signingBytes(spec, body))).toString('base64')
  return { config, bytes: encoder.encode(JSON.stringify({ body, signature })) }
}

/** Validates a version's body; undefined when it is not one. */
function versionOf<F extends string, T>(
  spec: SettingSpec<F, T>,
  raw: unknown,
): SettingVersion<F, T> | undefined {
  const r = raw as Record<string, unknown> | null
  if (typeof r !== 'object' || r === null) return undefined
  if (!Number.isSafeInteger(r.version) || (r.version as number) < 1) return undefined
  if (typeof r.updatedBy !== 'string' || r.updatedBy.length > 128) return undefined
  const value = spec.schema.safeParse(r[spec.field])
  if (!value.success) return undefined
  const config = {
    version: r.version as number,
    updatedBy: r.updatedBy,
    [spec.field]: value.data,
  } as SettingVersion<F, T>
  if (r.approval !== undefined) {
    const a = r.approval as Partial<Approval> | null
    if (typeof a?.body !== 'string' || typeof a.signature !== 'string') return undefined
    config.approval = { body: a.body, signature: a.signature }
  }
  return config
}

/**
 * Decodes a version as it travels or is kept and its signature, checking its
 * shape and size (the signature is the caller's to check, with
 * `signingBytes`). Undefined when it is not one.
 */
export function decodeVersion<F extends string, T>(
  spec: SettingSpec<F, T>,
  bytes: Uint8Array,
): { signed: SignedVersion<F, T>; body: string; signature: Uint8Array } | undefined {
  if (bytes.byteLength > MAX_SETTING_BYTES) return undefined
  try {
    const outer = JSON.parse(decoder.decode(bytes)) as { body?: unknown; signature?: unknown }
    if (typeof outer.body !== 'string' || typeof outer.signature !== 'string') return undefined
    if (outer.signature.length > 1024) return undefined
    const config = versionOf(spec, JSON.parse(outer.body))
    if (config === undefined) return undefined
    const signature = Buffer.from(outer.signature, 'base64')
    if (signature.byteLength === 0) return undefined
    return { signed: { config, bytes }, body: outer.body, signature }
  } catch {
    return undefined
  }
}

export interface SettingComponents {
  selfPeerId: string
  /** The version kept in the store, as it travels, if any. */
  load(): Promise<Uint8Array | undefined>
  /** Keeps a version in the store (durably), as it travels. */
  save(bytes: Uint8Array): Promise<void>
  /** Tells the other members that this member holds another version now (see `tag`). */
  changed(): void
  /** Signs with this member's key. */
  sign(data: Uint8Array): Promise<Uint8Array>
  /** Whether `peerId`'s key made `signature` over `data`. */
  verify(peerId: string, data: Uint8Array, signature: Uint8Array): Promise<boolean>
  /** Whether a peer may author versions (the allow-list; every peer without one). */
  allowed(peerId: string): boolean
  /** Peer ids of the other members this one holds alive now. */
  liveMembers(): string[]
  /** The admin public key whose approval every version needs; none: no approval needed. */
  adminKey?: KeyObject
  logger: Logger
}

export type SettingOutcome =
  | 'adopted'
  | 'not_newer'
  | 'malformed'
  | 'not_allowed'
  | 'bad_signature'
  | 'not_approved'
  | 'awaiting_majority'

export interface Setting<F extends string, T> {
  readonly spec: SettingSpec<F, T>
  current(): SettingVersion<F, T>
  /** The version in force as it travels (signed), undefined for the defaults. */
  bytes(): Uint8Array | undefined
  /** `<version>:<digest>` of the version in force; empty for the defaults. */
  tag(): string
  /**
   * Replaces the value with a new version made by this member, keeps it,
   * and names it in this member's word. Where the array requires the admin's
   * approval, throws ApprovalError without one for exactly this version and
   * this value, and ConflictError when it approves another version.
   */
  put(value: T, approval?: Approval): Promise<SettingVersion<F, T>>
  /**
   * Takes a version from the member `from` (which the connection
   * authenticated, and whose word names it); adopts it if it wins over the
   * one in force and passes the checks in the module comment. Resolves to
   * what became of it.
   */
  receive(bytes: Uint8Array, from: string): Promise<SettingOutcome>
  /** How many versions taken from other members came to each outcome since start. */
  outcomes(): Readonly<Record<SettingOutcome, number>>
  /** Calls `listener` whenever another version comes into force. */
  onChange(listener: () => void): void
  start(): Promise<void>
}

/** A setting whose value is `defaults` until a version is made, here or on another member. */
export function createSetting<F extends string, T>(
  spec: SettingSpec<F, T>,
  defaults: T,
  components: SettingComponents,
): Setting<F, T> {
  const { logger } = components
  const initial = { version: 0, updatedBy: null, [spec.field]: defaults } as SettingVersion<F, T>
  /** The version in force; `bytes` undefined for one kept by an older release, held but not passed on. */
  let current: { config: SettingVersion<F, T>; bytes: Uint8Array | undefined } | undefined
  let saving = Promise.resolve()
  /** Versions more than one ahead, by body, and the live members that hold each. */
  const pending = new Map<string, { signed: SignedVersion<F, T>; from: Set<string> }>()
  const listeners: Array<() => void> = []
  const outcomes: Record<SettingOutcome, number> = {
    adopted: 0,
    not_newer: 0,
    malformed: 0,
    not_allowed: 0,
    bad_signature: 0,
    not_approved: 0,
    awaiting_majority: 0,
  }

  const config = () => current?.config ?? initial

  const adopt = async (signed: SignedVersion<F, T>) => {
    current = signed
    pending.clear()
    components.changed()
    for (const listener of listeners) listener()
    // Saves in order, so the store always ends with the latest adopted version.
    saving = saving
      .then(() => components.save(signed.bytes))
      .catch((err: unknown) => {
        logger.warn({ err, setting: spec.name }, 'could not keep a setting')
      })
    await saving
  }

  /**
   * A kept version: as it travels, or as an older release kept it (the
   * version alone, unsigned), which is signed again if this member made it
   * and otherwise held without being passed on until a newer one comes.
   */
  const fromStore = async (kept: Uint8Array) => {
    const decoded = decodeVersion(spec, kept)
    if (decoded !== undefined) return decoded.signed
    let legacy: SettingVersion<F, T> | undefined
    try {
      legacy = versionOf(spec, JSON.parse(decoder.decode(kept)))
    } catch {}
    if (legacy === undefined) {
      logger.warn({ setting: spec.name }, 'the kept setting is unreadable; using the default')
      return undefined
    }
    if (legacy.updatedBy === components.selfPeerId)
      return await sealVersion(spec, legacy, components.sign)
    return { config: legacy, bytes: undefined }
  }

  /** Whether most of the other live members hold this version (at least one). */
  const endorsed = (from: Set<string>) => {
    const live = components.liveMembers()
    const endorsers = live.filter((peerId) => from.has(peerId)).length
    return endorsers >= Math.floor(live.length / 2) + 1
  }

  /** Whether two values are the same once read through the schema (so key order agrees). */
  const same = (a: unknown, b: unknown) => {
    const x = spec.schema.safeParse(a)
    const y = spec.schema.safeParse(b)
    return x.success && y.success && JSON.stringify(x.data) === JSON.stringify(y.data)
  }

  /** What is wrong with a version's approval where the array requires one; undefined when nothing is. */
  function approvalProblem(set: SettingVersion<F, T>): ApprovalError | ConflictError | undefined {
    const key = components.adminKey
    if (key === undefined) return undefined
    if (set.approval === undefined)
      return new ApprovalError(
        `this array takes its ${spec.name} setting only with the admin approval: chorus config … --admin-key FILE`,
        'approval_required',
      )
    const approved = checkApproval(key, set.approval)
    if (approved === undefined || approved.setting !== spec.name)
      return new ApprovalError(
        `the approval is not the admin key's approval of ${spec.name} in this array`,
        'approval_invalid',
      )
    if (approved.version !== set.version)
      return new ConflictError(
        `the approval is for version ${approved.version}, and the next version is ${set.version}: approve again`,
        'version_conflict',
      )
    if (!same(approved.value, set[spec.field]))
      return new ApprovalError(
        `the approval is for another ${spec.name} value than this one`,
        'approval_invalid',
      )
    return undefined
  }

  /** Decides what becomes of a version taken from another member (see `receive`). */
  async function take(bytes: Uint8Array, from: string): Promise<SettingOutcome> {
    const decoded = decodeVersion(spec, bytes)
    if (decoded === undefined) return 'malformed'
    const { signed, body, signature } = decoded
    const set = signed.config
    if (!newer(set, config())) return 'not_newer'
    const author = set.updatedBy as string
    if (!components.allowed(author)) return 'not_allowed'
    if (!(await components.verify(author, signingBytes(spec, body), signature))) {
      logger.warn(
        { author, from, setting: spec.name },
        'a setting not signed by its author; ignored',
      )
      return 'bad_signature'
    }
    if (approvalProblem(set) !== undefined) return 'not_approved'
    if (!newer(set, config())) return 'not_newer' // another won meanwhile
    if (set.version > config().version + 1) {
      let entry = pending.get(body)
      if (entry === undefined) {
        if (pending.size >= MAX_PENDING) pending.delete(pending.keys().next().value as string)
        entry = { signed, from: new Set() }
        pending.set(body, entry)
      }
      entry.from.add(from)
      if (!endorsed(entry.from)) {
        logger.debug(
          { setting: spec.name, version: set.version, from, endorsers: entry.from.size },
          'a setting more than one version ahead; waiting for most members to hold it',
        )
        return 'awaiting_majority'
      }
    }
    logger.info(
      { setting: spec.name, version: set.version, updatedBy: set.updatedBy },
      'setting adopted',
    )
    await adopt(signed)
    return 'adopted'
  }

  return {
    spec,
    current: config,
    bytes: () => current?.bytes,
    tag: () =>
      current?.bytes === undefined ? '' : versionTag(current.config.version, current.bytes),
    outcomes: () => outcomes,
    onChange(listener) {
      listeners.push(listener)
    },
    async put(value, approval) {
      const next = {
        version: config().version + 1,
        updatedBy: components.selfPeerId,
        [spec.field]: value,
        ...(approval === undefined ? {} : { approval }),
      } as SettingVersion<F, T>
      const problem = approvalProblem(next)
      if (problem !== undefined) throw problem
      await adopt(await sealVersion(spec, next, components.sign))
      logger.info({ setting: spec.name, version: next.version }, 'setting changed here')
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
      if (current !== undefined) for (const listener of listeners) listener()
      components.changed()
    },
  }
}

/** The settings a member holds, as the mesh names, passes and takes them. */
export interface ArraySettings {
  /** `<sum of versions>:<digest>` of the settings in force here; empty while all are defaults. */
  tag(): string
  /** Each setting's version in force, signed, by name (those at their defaults left out). */
  sets(): Array<[string, Uint8Array]>
  /** Takes a version of the setting `name` that `from` holds; unknown names are ignored. */
  receive(name: string, bytes: Uint8Array, from: string): Promise<SettingOutcome | undefined>
}

export function arraySettings(settings: Array<Setting<string, unknown>>): ArraySettings {
  const byName = new Map(settings.map((s) => [s.spec.name, s]))
  return {
    tag: () => settingsTag(settings.map((s) => ({ version: s.current().version, tag: s.tag() }))),
    sets() {
      const out: Array<[string, Uint8Array]> = []
      for (const s of settings) {
        const bytes = s.bytes()
        if (bytes !== undefined) out.push([s.spec.name, bytes])
      }
      return out
    },
    async receive(name, bytes, from) {
      return await byName.get(name)?.receive(bytes, from)
    },
  }
}
