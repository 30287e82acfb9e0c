// Tokens and scopes on every route, and the configuration rules around them.

import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../node/config.ts'
import { scopeOf } from '../../node/http/auth.ts'
import { createMember, type Member } from '../../node/index.ts'
import { removeTempDirs, tempDir, testConfig } from '../helpers.ts'

const TOKENS = {
  ingest: 'ingest-token-0123456789',
  read: 'read-token-0123456789ab',
  metrics: 'metrics-token-012345678',
  admin: 'admin-token-0123456789a',
}

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

describe('authenticated HTTP', () => {
  it('answers 401 without a token and 403 with the wrong scope on every route; liveness and readiness stay open', async () => {
    const config = await testConfig('guarded')
    const member = await createMember({
      ...config,
      tokens: Object.entries(TOKENS).map(([scope, token]) => ({
        scope: scope as keyof typeof TOKENS,
        token,
      })),
    })
    members.push(member)
    const routes = member.app.routes.filter((r) => r.method !== 'ALL')
    expect(routes.length).toBeGreaterThan(8)
    for (const route of routes) {
      const path = route.path
        .replace(':id', '01M8C4NR94B4PR6WG200000001')
        .replace(':name', 'nobody')
      const call = (token?: string) =>
        member.app.request(path, {
          method: route.method,
          headers: {
            'content-type': 'application/json',
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          },
          ...(route.method === 'POST' ? { body: '{"type":"auth.test"}' } : {}),
        })
      const needed = scopeOf(route.method, route.path)
      const anonymous = await call()
      if (needed === undefined) {
        expect([200, 503], path).toContain(anonymous.status)
        continue
      }
      expect(anonymous.status, `${route.method} ${path}`).toBe(401)
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/)
      expect((await call('not-a-real-token-at-all')).status, path).toBe(401)
      const wrong = needed === 'read' ? TOKENS.ingest : TOKENS.read
      const forbidden = await call(wrong)
      expect(forbidden.status, `${route.method} ${path} with a wrong scope`).toBe(403)
      expect(((await forbidden.json()) as { error: { code: string } }).error.code).toBe('forbidden')
      for (const token of [TOKENS[needed], TOKENS.admin]) {
        expect([401, 403], `${route.method} ${path} with scope ${needed}`).not.toContain(
          (await call(token)).status,
        )
      }
    }
  })
})

describe('token and address configuration', () => {
  it('reads tokens from a file, CHORUS_TOKENS and the config file, and refuses short ones without echoing them', async () => {
    const dir = await tempDir()
    await writeFile(
      join(dir, 'tokens'),
      `# operators\nread ${TOKENS.read}\n\nadmin ${TOKENS.admin}\n`,
    )
    await writeFile(join(dir, 'chorus.yaml'), `tokens:\n  - metrics:${TOKENS.metrics}\n`)
    const config = resolveConfig({
      flags: { 'tokens-file': join(dir, 'tokens') },
      env: { CHORUS_TOKENS: `ingest:${TOKENS.ingest}` },
      configFile: join(dir, 'chorus.yaml'),
    })
    expect(config.tokens.map((t) => t.scope).sort()).toEqual(['admin', 'ingest', 'metrics', 'read'])
    let error: Error | undefined
    try {
      resolveConfig({
        flags: {},
        env: { CHORUS_TOKENS: 'read:short-secret,writer:abcdefghijklmnopqrs' },
      })
    } catch (err) {
      error = err as Error
    }
    expect(error?.name).toBe('ConfigError')
    expect(error?.message).toContain('tokens shorter than 16 characters are refused')
    expect(error?.message).toContain('scope must be one of ingest, read, admin, metrics')
    expect(error?.message).not.toContain('short-secret')
  })

  // Only parsed, never bound: 192.0.2.0/24 is the documentation range.
  it('refuses a non-loopback HTTP address without tokens, or a non-loopback p2p address, unless --insecure', () => {
    expect(() => resolveConfig({ flags: { http: '192.0.2.10:7700' }, env: {} })).toThrow(
      /refusing to serve HTTP on 192\.0\.2\.10 without tokens/,
    )
    expect(() =>
      resolveConfig({ flags: { listen: ['/ip4/192.0.2.10/tcp/7701'] }, env: {} }),
    ).toThrow(/refusing to listen for peers on \/ip4\/192\.0\.2\.10\/tcp\/7701 without a swarm key/)
    const insecure = resolveConfig({
      flags: { http: '192.0.2.10:7700', listen: ['/ip4/192.0.2.10/tcp/7701'], insecure: 'true' },
      env: {},
    })
    expect(insecure.insecure).toBe(true)
    const withTokens = resolveConfig({
      flags: { http: '192.0.2.10:7700' },
      env: { CHORUS_TOKENS: `read:${TOKENS.read}` },
    })
    expect(withTokens.tokens).toHaveLength(1)
    expect(resolveConfig({ flags: { http: '127.0.0.2:7700' }, env: {} }).http.host).toBe(
      '127.0.0.2',
    )
  })
})
