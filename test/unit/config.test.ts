import { writeFile } from 'node:fs/promises'
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
})
