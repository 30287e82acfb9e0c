// Admin approvals: only the admin's private key makes one that a member
// holding the public key accepts, and only for what it says.

import { describe, expect, it } from 'vitest'
import {
  approve,
  checkApproval,
  generateAdminKey,
  parseAdminPublicKey,
} from '../../node/approval.ts'

describe('admin approvals', () => {
  it('are accepted with the public key of the private key that signed them, for exactly what they say', () => {
    const admin = generateAdminKey()
    const other = generateAdminKey()
    const key = parseAdminPublicKey(admin.publicKey)
    expect(key).toBeDefined()
    const approval = approve(admin.privatePem, { setting: 'health-rules', version: 3, value: [1] })
    expect(checkApproval(key as never, approval)).toEqual({
      setting: 'health-rules',
      version: 3,
      value: [1],
    })
    // Another admin's key, a changed body, a changed signature: refused.
    expect(checkApproval(parseAdminPublicKey(other.publicKey) as never, approval)).toBeUndefined()
    const altered = { ...approval, body: approval.body.replace('"version":3', '"version":4') }
    expect(checkApproval(key as never, altered)).toBeUndefined()
    const signature = Buffer.from(approval.signature, 'base64')
    signature[0] = (signature[0] as number) ^ 1
    expect(
      checkApproval(key as never, { ...approval, signature: signature.toString('base64') }),
    ).toBeUndefined()
    for (const junk of [null, 'x', { body: 1, signature: 'x' }, { body: '{}' }])
      expect(checkApproval(key as never, junk)).toBeUndefined()
  })

  it('take public keys only in the form keygen prints', () => {
    expect(parseAdminPublicKey(generateAdminKey().publicKey)).toBeDefined()
    for (const text of ['', 'ed25519:', 'ed25519:abc', 'rsa:AAAA', `ed25519:${'A'.repeat(44)}`])
      expect(parseAdminPublicKey(text)).toBeUndefined()
  })
})
