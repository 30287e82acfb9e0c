import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../node/config.ts'
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
})
