import { readFileSync } from 'node:fs'
import { chmod, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { generateKey } from '@libp2p/pnet'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type ConfigSources,
  FLAG_OPTIONS,
  LIST_OPTIONS,
  resolveConfig,
  START_OPTIONS,
} from '../../node/config.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'

afterEach(removeTempDirs)

describe('member configuration', () => {
  it('takes a flag over the environment over the config file over the default', async () => {
    const file = join(await tempDir(), 'chorus.yaml')
    await writeFile(
      file,
      'name: from-file\nretention: 3d\nhttp: 127.0.0.1:9000\nquery-timeout: 5s\n',
    )
    const config = resolveConfig({
      flags: { name: 'from-flag' },
      env: { CHORUS_NAME: 'from-env', CHORUS_RETENTION: '2d', CHORUS_HTTP: '' },
      configFile: file,
    })
    expect(config.name).toBe('from-flag')
    expect(config.retentionMs).toBe(2 * 86_400_000)
    expect(config.http).toEqual({ host: '127.0.0.1', port: 9000 })
    expect(config.queryTimeoutMs).toBe(5000)
    expect(config.ingestLimits.maxEventsPerRequest).toBe(10_000)
  })

  it('reports every problem at once, each naming its option and where it came from', async () => {
    const file = join(await tempDir(), 'chorus.yaml')
    await writeFile(file, 'retention: forever\nunknown-key: 1\n')
    let error: unknown
    try {
      resolveConfig({
        flags: { http: 'nowhere' },
        env: { CHORUS_MAX_EVENTS_PER_REQUEST: '-5' },
        configFile: file,
      })
    } catch (err) {
      error = err
    }
    expect((error as Error).name).toBe('ConfigError')
    const fields = (error as { details: Array<{ field: string; message: string }> }).details
    expect(fields.map((d) => d.field).sort()).toEqual([
      'http',
      'max-events-per-request',
      'retention',
      'unknown-key',
    ])
    const message = (error as Error).message
    expect(message).toContain('--http must be HOST:PORT')
    expect(message).toContain('CHORUS_MAX_EVENTS_PER_REQUEST must be a whole number')
    expect(message).toContain(`retention in ${file} must be a duration`)
  })

  it('names the file, line and rule of a malformed tokens line, and no character of the token', async () => {
    const file = join(await tempDir(), 'tokens')
    const secret = 'Zq8s1kVb3nXw7eTy2mPa9cLd'
    // Line 3 has a token and no scope; line 4 a scope and a short token.
    await writeFile(
      file,
      `# tokens\nread ok-token-0123456789abcd\n${secret}\nadmin ${secret.slice(0, 9)}\n`,
      { mode: 0o600 },
    )
    let error: Error | undefined
    try {
      resolveConfig({ flags: { 'tokens-file': file }, env: {} })
    } catch (err) {
      error = err as Error
    }
    expect(error?.name).toBe('ConfigError')
    expect(error?.message).toContain(
      `${file} line 3: must be "SCOPE TOKEN", and scope must be one of ingest, read, admin, metrics`,
    )
    expect(error?.message).toContain(
      `${file} line 4: tokens shorter than 16 characters are refused`,
    )
    for (let i = 0; i + 4 <= secret.length; i++)
      expect(error?.message).not.toContain(secret.slice(i, i + 4))
  })

  it('does not quote a config file that is not valid YAML, since it may hold tokens', async () => {
    const file = join(await tempDir(), 'chorus.yaml')
    const secret = 'Zq8s1kVb3nXw7eTy2mPa9cLd'
    await writeFile(file, `tokens:\n  - read:${secret}\n - : [\n`, { mode: 0o600 })
    let error: Error | undefined
    try {
      resolveConfig({ flags: {}, env: {}, configFile: file })
    } catch (err) {
      error = err as Error
    }
    expect(error?.message).toMatch(
      new RegExp(`${file} is not valid YAML \\(\\w+ at line \\d+, column \\d+`),
    )
    expect(error?.message).not.toContain(secret.slice(0, 6))
  })

  it('warns, naming the file and its mode, when a tokens file can be read by group or others, and still starts', async () => {
    const dir = await tempDir()
    const file = join(dir, 'tokens')
    await writeFile(file, 'read ok-token-0123456789abcd\n')
    await chmod(file, 0o644)
    const open = resolveConfig({ flags: { 'tokens-file': file }, env: {} })
    expect(open.tokens).toHaveLength(1)
    expect(open.warnings).toEqual([
      `the tokens file ${file} has mode 0644: its group or others can read the tokens in it; run chmod 600 ${file}`,
    ])
    await chmod(file, 0o600)
    expect(resolveConfig({ flags: { 'tokens-file': file }, env: {} }).warnings).toBeUndefined()
  })

  it('gives every option its documented default', () => {
    const config = resolveConfig({ flags: {}, env: {} })
    expect(config).toEqual({
      name: hostname(),
      dataDir: resolve('.chorus/data'),
      http: { host: '127.0.0.1', port: 7700 },
      retentionMs: 7 * 86_400_000,
      rollupRetentionMs: [2 * 86_400_000, 30 * 86_400_000, 365 * 86_400_000],
      queryTimeoutMs: 2000,
      ingestLimits: expect.objectContaining({
        // The largest body whose parsing fits the requests' share of 128 MiB.
        maxBodyBytes: 8 * 1024 ** 2,
        maxEventsPerRequest: 10_000,
      }),
      eventLimits: expect.any(Object),
      logLevel: 'info',
      listen: ['/ip4/127.0.0.1/tcp/7701'],
      join: [],
      probeIntervalMs: 1000,
      forgetAfterMs: 86_400_000,
      maxClockJumpMs: 3_600_000,
      metricsTypeLimit: 200,
      tokens: [],
      insecure: false,
      allowPeers: [],
      maxConcurrentQueries: 16,
      collectIntervalMs: 10_000,
      memory: {
        budget: 128 * 1024 ** 2,
        heapOldMiB: 64,
        heapSemiMiB: 8,
        blockCacheBytes: 8 * 1024 ** 2,
        memtableBytes: 16 * 1024 ** 2,
        requestBytes: 16 * 1024 ** 2,
      },
      replicas: 2,
      rereplicateAfterMs: 60_000,
      notify: { alertmanagers: [], webhooks: [], arrayName: 'chorus' },
      accessLog: false,
    })
  })

  it('divides the memory budget, refuses one below the minimum, and a body that cannot fit it', () => {
    const big = resolveConfig({ flags: { 'memory-budget': '1GiB' }, env: {} })
    expect(big.memory).toMatchObject({
      budget: 1024 ** 3,
      heapOldMiB: 512,
      heapSemiMiB: 16,
      blockCacheBytes: 64 * 1024 ** 2,
    })
    expect(big.ingestLimits.maxBodyBytes).toBe(16 * 1024 ** 2)
    expect(resolveConfig({ flags: {}, env: { CHORUS_MEMORY_BUDGET: '200M' } }).memory.budget).toBe(
      200 * 1024 ** 2,
    )
    expect(() => resolveConfig({ flags: { 'memory-budget': '64MiB' }, env: {} })).toThrow(
      /memory-budget: --memory-budget must be a size such as 128MiB or 1GiB, at least 96MiB .*got "64MiB"/,
    )
    expect(() => resolveConfig({ flags: { 'memory-budget': 'lots' }, env: {} })).toThrow(
      /at least 96MiB/,
    )
    expect(() =>
      resolveConfig({ flags: { 'max-body-bytes': String(16 * 1024 ** 2) }, env: {} }),
    ).toThrow(
      /max-body-bytes: 16777216 bytes cannot be parsed within the requests' share of --memory-budget 128MiB \(at most 8388608 bytes\)/,
    )
  })

  it('takes list options as repeated flags, comma-separated environment values and YAML lists, and other options once', async () => {
    const file = join(await tempDir(), 'chorus.yaml')
    const a = '/ip4/127.0.0.1/tcp/7801'
    const b = '/ip4/127.0.0.1/tcp/7802'
    await writeFile(file, `join:\n  - ${a}\n  - ${b}\nlisten: ${a}\n`)
    expect(LIST_OPTIONS).toEqual(['listen', 'join', 'allow-peer', 'alertmanager', 'webhook'])
    const fromFile = (flags: ConfigSources['flags'], env: ConfigSources['env'] = {}) =>
      resolveConfig({ flags, env, configFile: file })
    const listed = join(await tempDir(), 'chorus.yaml')
    await writeFile(listed, 'name: [x, y]\n')
    expect(() => resolveConfig({ flags: {}, env: {}, configFile: listed })).toThrow(
      `name: must be a single value in ${listed}`,
    )
    const config = fromFile(
      { listen: [a, b], name: ['first', 'last'] },
      { CHORUS_ALLOW_PEER: ' 12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN , ,' },
    )
    expect(config.listen).toEqual([a, b])
    expect(config.join).toEqual([a, b])
    expect(config.allowPeers).toEqual(['12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'])
    expect(config.name).toBe('last')
    const single = resolveConfig({
      flags: { name: 'n' },
      env: { CHORUS_JOIN: `${a},${b}` },
      configFile: file,
    })
    expect(single.join).toEqual([a, b])
    expect(single.listen).toEqual([a])
  })

  it('turns a switch on for any value but "false" and "0"', () => {
    expect(FLAG_OPTIONS).toEqual(['insecure', 'no-collect', 'access-log'])
    const on = (env: Record<string, string>) => resolveConfig({ flags: {}, env })
    expect(on({ CHORUS_INSECURE: 'true' }).insecure).toBe(true)
    expect(on({ CHORUS_INSECURE: 'yes' }).insecure).toBe(true)
    expect(on({ CHORUS_INSECURE: 'false' }).insecure).toBe(false)
    expect(on({ CHORUS_NO_COLLECT: '1' }).collectIntervalMs).toBe(0)
    expect(on({ CHORUS_ACCESS_LOG: 'true' }).accessLog).toBe(true)
    expect(on({}).accessLog).toBe(false)
    expect(on({ CHORUS_NO_COLLECT: '0', CHORUS_COLLECT_INTERVAL: '5s' }).collectIntervalMs).toBe(
      5000,
    )
  })

  it('reads the TLS pair and the swarm key, and reports both halves of every rule across options at once', async () => {
    const dir = await tempDir()
    const swarmKey = join(dir, 'swarm.key')
    const key = new Uint8Array(95)
    generateKey(key)
    await writeFile(swarmKey, key)
    await writeFile(join(dir, 'cert.pem'), 'CERT')
    await writeFile(join(dir, 'key.pem'), 'KEY')
    const listen = ['/ip4/192.0.2.10/tcp/7701']
    const ok = resolveConfig({
      flags: { 'swarm-key': swarmKey, listen, 'tls-cert': join(dir, 'cert.pem') },
      env: { CHORUS_TLS_KEY: join(dir, 'key.pem') },
    })
    expect(ok.tls).toEqual({ cert: 'CERT', key: 'KEY' })
    expect(ok.swarmKey).toEqual(new Uint8Array(readFileSync(swarmKey)))
    expect(ok.listen).toEqual(listen)

    let error: Error & { details?: Array<{ field: string; message: string }> } = new Error()
    try {
      resolveConfig({
        flags: {
          'tls-cert': join(dir, 'cert.pem'),
          http: '192.0.2.10:7700',
          listen,
          retention: '1s',
        },
        env: { CHORUS_SWARM_KEY: join(dir, 'missing.key') },
      })
    } catch (err) {
      error = err as typeof error
    }
    expect(error.name).toBe('ConfigError')
    expect(error.details?.map((d) => d.field).sort()).toEqual([
      'http',
      'listen',
      'retention',
      'swarm-key',
      'tls-key',
    ])
    expect(error.message).toContain('tls-key: --tls-cert and --tls-key go together')
    expect(error.message).toContain(`swarm-key: cannot read ${join(dir, 'missing.key')}: ENOENT`)
    expect(error.message).toContain('refusing to serve HTTP on 192.0.2.10 without tokens')
    expect(error.message).toContain(
      '--retention must be a duration such as 500ms, 10s, 2m, 1h or 7d (at least 60000ms), got "1s"',
    )
    await writeFile(swarmKey, 'not a key')
    expect(() => resolveConfig({ flags: { 'swarm-key': swarmKey }, env: {} })).toThrow(
      `swarm-key: ${swarmKey} is not a swarm key (make one with: chorus keygen --out FILE)`,
    )
  })

  it('names every start option in the reference, and no option the member does not take', () => {
    const reference = readFileSync(
      join(import.meta.dirname, '..', '..', 'docs', 'reference.md'),
      'utf8',
    )
    const cli = reference.slice(reference.indexOf('\n## CLI\n'))
    const start = cli.slice(
      cli.indexOf('\n- `start`:'),
      cli.indexOf('\n- `', cli.indexOf('\n- `start`:') + 1),
    )
    // A flag opens a code span: `--http HOST:PORT`, not `keygen --admin`.
    const named = new Set([...start.matchAll(/`--([a-z][a-z-]*)/g)].map((m) => m[1]))
    // --config names the file the options come from; it is not one of them.
    named.delete('config')
    expect([...named].sort()).toEqual([...START_OPTIONS].sort())
  })

  it('takes where health goes: Alertmanager and webhook URLs, their credentials and secret from files, refused with the option named', async () => {
    const dir = await tempDir()
    const bearer = join(dir, 'am-bearer')
    await writeFile(bearer, 'Bearer s3cr3t-token\n')
    const basic = join(dir, 'am-basic')
    await writeFile(basic, 'basic alice:pw\n')
    const secret = join(dir, 'hook-secret')
    await writeFile(secret, 'sixteen-or-more-characters\n')
    const config = resolveConfig({
      flags: {
        alertmanager: ['http://127.0.0.1:9093', 'https://am.example:9093/'],
        'alertmanager-credentials': bearer,
        webhook: 'http://127.0.0.1:8080/hook',
        'webhook-secret': secret,
        'array-name': 'prod-eu',
      },
      env: {},
    })
    expect(config.notify).toEqual({
      alertmanagers: ['http://127.0.0.1:9093', 'https://am.example:9093/'],
      alertmanagerAuthorization: 'Bearer s3cr3t-token',
      webhooks: ['http://127.0.0.1:8080/hook'],
      webhookSecret: 'sixteen-or-more-characters',
      arrayName: 'prod-eu',
    })
    const withBasic = resolveConfig({ flags: { 'alertmanager-credentials': basic }, env: {} })
    expect(withBasic.notify.alertmanagerAuthorization).toBe(
      `Basic ${Buffer.from('alice:pw').toString('base64')}`,
    )
    expect(() => resolveConfig({ flags: { alertmanager: 'ftp://x' }, env: {} })).toThrow(
      /alertmanager: .*must be an http:\/\/ or https:\/\/ URL/,
    )
    expect(() => resolveConfig({ flags: { webhook: 'not a url' }, env: {} })).toThrow(/webhook: /)
    await writeFile(basic, 'token-without-a-kind\n')
    expect(() => resolveConfig({ flags: { 'alertmanager-credentials': basic }, env: {} })).toThrow(
      /Bearer TOKEN" or "Basic USER:PASSWORD/,
    )
    await writeFile(secret, 'short\n')
    expect(() => resolveConfig({ flags: { 'webhook-secret': secret }, env: {} })).toThrow(
      /at least 16 characters/,
    )
    expect(() => resolveConfig({ flags: { 'array-name': 'no spaces' }, env: {} })).toThrow(
      /array-name: /,
    )
  })
})
