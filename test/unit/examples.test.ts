// The deployment examples are true: the member's own config loader accepts
// examples/chorus.yaml, and the systemd unit confines the service.

import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKey } from '@libp2p/pnet'
import { afterEach, describe, expect, it } from 'vitest'
import { readConfigFile, resolveConfig } from '../../node/config.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples')
afterEach(removeTempDirs)

describe('examples/chorus.yaml', () => {
  it("is accepted by the member's own config loader as a private array with tokens, TLS and a swarm key", async () => {
    const file = join(EXAMPLES, 'chorus.yaml')
    const problems: Array<{ field: string; message: string }> = []
    const raw = readConfigFile(file, problems)
    expect(problems).toEqual([])
    expect(raw['tokens-file']).toBe('/etc/chorus/tokens')
    expect(raw['swarm-key']).toBe('/etc/chorus/swarm.key')
    // The files it names live on the server; give the loader real ones here.
    const dir = await tempDir()
    const key = new Uint8Array(95)
    generateKey(key)
    await writeFile(join(dir, 'swarm.key'), key)
    await writeFile(
      join(dir, 'tokens'),
      'read read-token-0123456789\nadmin admin-token-0123456789\n',
    )
    await writeFile(join(dir, 'cert.pem'), 'cert')
    await writeFile(join(dir, 'key.pem'), 'key')
    const config = resolveConfig({
      flags: {
        'swarm-key': join(dir, 'swarm.key'),
        'tokens-file': join(dir, 'tokens'),
        'tls-cert': join(dir, 'cert.pem'),
        'tls-key': join(dir, 'key.pem'),
      },
      env: {},
      configFile: file,
    })
    expect(config.name).toBe('web-1')
    expect(config.http).toEqual({ host: '192.0.2.11', port: 7700 })
    expect(config.join).toHaveLength(2)
    expect(config.tokens.map((t) => t.scope)).toEqual(['read', 'admin'])
    expect(config.swarmKey?.byteLength).toBe(95)
    expect(config.retentionMs).toBe(14 * 86_400_000)
    expect(config.insecure).toBe(false)
  })
})

describe('examples/systemd/chorus.service', () => {
  it('runs as a dedicated user, confined, with the data dir as its StateDirectory', () => {
    const unit = readFileSync(join(EXAMPLES, 'systemd', 'chorus.service'), 'utf8')
    const directives = new Map(
      unit
        .split('\n')
        .filter((l) => /^[A-Za-z]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    expect(directives.get('User')).toBe('chorus')
    expect(directives.get('ProtectSystem')).toBe('strict')
    expect(directives.get('NoNewPrivileges')).toBe('true')
    expect(directives.get('StateDirectory')).toBe('chorus')
    expect(directives.get('KillSignal')).toBe('SIGTERM')
    expect(directives.get('ExecStart')).toContain(
      'node/cli.ts start --config /etc/chorus/chorus.yaml',
    )
    const yaml = readFileSync(join(EXAMPLES, 'chorus.yaml'), 'utf8')
    expect(yaml).toContain('data-dir: /var/lib/chorus')
  })
})
