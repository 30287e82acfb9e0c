// Admin approval of array-wide settings (the health rule set; later ones
// such as the replica count go the same way). With `--admin-public-key`, a
// member takes a new version of a setting only when it carries an approval:
// the setting's name, its version and its value, as JSON text, signed with
// the admin's Ed25519 private key, which no member holds (`chorus keygen
// --admin` makes the pair; `chorus config set --admin-key FILE` signs). A
// member's key, an admin token or the swarm key is then not enough to change
// the array's settings: the approval is checked where the change is made and
// by every member it reaches.

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto'

/** What an admin signs: this prefix, then the approval's body. */
const APPROVAL_DOMAIN = 'chorus-admin-approval:'
/** How an admin public key is written: this prefix, then the 32 key bytes in base64url. */
const PUBLIC_KEY_PREFIX = 'ed25519:'

/** An approval as it travels inside a setting: the signed body and its signature (base64). */
export interface Approval {
  /** JSON text `{ "setting", "version", "value" }`. */
  body: string
  signature: string
}

/** What an approval says. */
export interface Approved {
  setting: string
  version: number
  value: unknown
}

/** A new admin key pair: the private key as PEM (PKCS #8), the public key as `ed25519:<base64url>`. */
export function generateAdminKey(): { privatePem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const x = publicKey.export({ format: 'jwk' }).x as string
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey: `${PUBLIC_KEY_PREFIX}${x}`,
  }
}

/** The admin public key in `text`, or undefined when it is not one. */
export function parseAdminPublicKey(text: string): KeyObject | undefined {
  if (!text.startsWith(PUBLIC_KEY_PREFIX)) return undefined
  const x = text.slice(PUBLIC_KEY_PREFIX.length)
  if (!/^[A-Za-z0-9_-]{43}$/.test(x)) return undefined
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
  } catch {
    return undefined
  }
}

/** Signs an approval of `value` as version `version` of `setting` with the admin's private key (PEM). */
export function approve(privatePem: string, approved: Approved): Approval {
  const key = createPrivateKey(privatePem)
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 private key')
  const body = JSON.stringify(approved)
  const signature = sign(null, Buffer.from(APPROVAL_DOMAIN + body), key).toString('base64')
  return { body, signature }
}

/**
 * What an approval says, when `key` signed it and it has the approval's
 * shape; undefined otherwise. The caller compares setting, version and value
 * with the change it is asked to make.
 */
export function checkApproval(key: KeyObject, approval: unknown): Approved | undefined {
  const a = approval as Partial<Approval> | null
  if (typeof a !== 'object' || a === null) return undefined
  if (typeof a.body !== 'string' || typeof a.signature !== 'string') return undefined
  if (a.body.length > 256 * 1024 || a.signature.length > 256) return undefined
  let ok = false
  try {
    ok = verify(
      null,
      Buffer.from(APPROVAL_DOMAIN + a.body),
      key,
      Buffer.from(a.signature, 'base64'),
    )
  } catch {
    return undefined
  }
  if (!ok) return undefined
  try {
    const parsed = JSON.parse(a.body) as Partial<Approved>
    if (typeof parsed.setting !== 'string' || !Number.isSafeInteger(parsed.version))
      return undefined
    return { setting: parsed.setting, version: parsed.version as number, value: parsed.value }
  } catch {
    return undefined
  }
}
