// SIGHUP puts a new tokens file and a new TLS certificate in force without a
// restart; a bad file changes nothing but a log line that says why.

import { X509Certificate } from 'node:crypto'
import { chmod, copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { rawRequest } from '../raw-http.ts'
import { selfSignedCert, startMember, stopAll } from './harness.ts'

afterEach(async () => {
  await stopAll()
  await removeTempDirs()
})

const OLD = 'old-read-token-0123456789'
const NEW = 'new-read-token-9876543210'

describe('SIGHUP', () => {
  it('re-reads the tokens file: the new token works and the old gets 401; a bad file keeps them and logs why', async () => {
    const dir = await tempDir()
    const file = join(dir, 'tokens')
    await writeFile(file, `read ${OLD}\n`)
    await chmod(file, 0o644)
    const member = await startMember({
      name: 'rotate',
      dataDir: await tempDir(),
      args: ['--tokens-file', file],
    })
    // Readable by others: a warning naming the file and its mode, and it runs.
    await waitFor(() => member.output().includes(`the tokens file ${file} has mode 0644`), {
      what: 'the mode warning',
    })
    expect(member.output()).toContain(`chmod 600 ${file}`)
    const status = async (token: string) =>
      (
        await rawRequest(`${member.url}/v1/members`, {
          headers: { authorization: `Bearer ${token}` },
        })
      ).status
    expect(await status(OLD)).toBe(200)
    expect(await status(NEW)).toBe(401)

    await writeFile(file, `read ${NEW}\n`)
    await chmod(file, 0o600)
    member.signal('SIGHUP')
    await waitFor(async () => (await status(NEW)) === 200, { what: 'the new token in force' })
    expect(await status(OLD)).toBe(401)

    // A bare token without its scope: refused, the last good tokens stay.
    await writeFile(file, `${OLD}\n`)
    member.signal('SIGHUP')
    await waitFor(() => member.output().includes('reload refused'), { what: 'the refusal' })
    // The log is JSON: the rule's quotes come escaped.
    expect(member.output()).toContain(`${file} line 1: must be`)
    expect(member.output()).toContain('scope must be one of ingest, read, admin, metrics')
    expect(await status(NEW)).toBe(200)
    expect(await status(OLD)).toBe(401)
    expect(member.output()).not.toContain(OLD.slice(0, 12))
    expect(member.output()).not.toContain(NEW.slice(0, 12))
    expect(member.child.exitCode).toBeNull()
  })

  it('serves a new TLS certificate to new connections; a bad key keeps the last good one and logs why', async () => {
    const dir = await tempDir()
    const first = selfSignedCert(dir, 'first')
    const second = selfSignedCert(dir, 'second')
    const cert = join(dir, 'cert.pem')
    const key = join(dir, 'key.pem')
    await copyFile(first.cert, cert)
    await copyFile(first.key, key)
    const member = await startMember({
      name: 'renew',
      dataDir: await tempDir(),
      args: ['--tls-cert', cert, '--tls-key', key],
    })
    const port = Number(new URL(member.url).port)
    const served = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
          resolve(socket.getPeerCertificate().fingerprint256)
          socket.end()
        })
        socket.on('error', reject)
        socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')))
      })
    const fingerprint = async (path: string) =>
      new X509Certificate(await readFile(path)).fingerprint256
    expect(await served()).toBe(await fingerprint(first.cert))

    await copyFile(second.cert, cert)
    await copyFile(second.key, key)
    member.signal('SIGHUP')
    const renewed = await fingerprint(second.cert)
    await waitFor(async () => (await served()) === renewed, { what: 'the new certificate served' })
    const ca = await readFile(second.cert, 'utf8')
    expect((await rawRequest(`${member.url}/healthz`, { ca })).status).toBe(200)

    // The first certificate's key with the second certificate: they do not match.
    await copyFile(first.key, key)
    member.signal('SIGHUP')
    await waitFor(() => member.output().includes('reload refused'), { what: 'the refusal' })
    expect(await served()).toBe(renewed)
    expect(member.child.exitCode).toBeNull()
  })
})
