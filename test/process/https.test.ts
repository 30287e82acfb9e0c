// HTTPS with a self-signed certificate made by the test, and tokens given
// through the environment, as an operator would run a member off loopback.

import { readFile } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir } from '../helpers.ts'
import { rawRequest } from '../raw-http.ts'
import { runCli, selfSignedCert, startMember, stopAll } from './harness.ts'

afterEach(async () => {
  await stopAll()
  await removeTempDirs()
})

function get(url: string, ca: string, token?: string): Promise<{ status: number; body: string }> {
  return rawRequest(url, {
    ca,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
}

describe('a member serving HTTPS', () => {
  it('answers over TLS with a certificate it was given, and requires tokens there too', async () => {
    const dir = await tempDir()
    const { cert, key } = selfSignedCert(dir)
    const ca = await readFile(cert, 'utf8')
    const readToken = 'read-token-for-tls-test'
    const ingestToken = 'ingest-token-for-tls-test'
    const member = await startMember({
      name: 'tls',
      dataDir: await tempDir(),
      args: ['--tls-cert', cert, '--tls-key', key],
      env: { CHORUS_TOKENS: `read:${readToken},ingest:${ingestToken}` },
    })
    expect(member.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    expect((await get(`${member.url}/healthz`, ca)).status).toBe(200)
    expect((await get(`${member.url}/v1/events`, ca)).status).toBe(401)
    // The CLI sends --token, and trusts the certificate through Node's usual variable.
    const emitted = await runCli(
      ['emit', '--url', member.url, '--token', ingestToken, '--type', 'tls.test'],
      {
        env: { NODE_EXTRA_CA_CERTS: cert },
      },
    )
    expect(emitted.code, emitted.stderr).toBe(0)
    const page = await get(`${member.url}/v1/events?from=0`, ca, readToken)
    expect(page.status).toBe(200)
    expect(
      (JSON.parse(page.body) as { events: Array<{ id: string }> }).events.map((e) => e.id),
    ).toEqual([emitted.stdout.trim()])
    const refused = await runCli(['query', '--url', member.url, '--token', ingestToken], {
      env: { NODE_EXTRA_CA_CERTS: cert },
    })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/403: this route needs a token with scope "read"/)
    expect(member.output()).not.toContain(readToken)
  })
})
