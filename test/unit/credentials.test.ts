// The credentials in force and their reload: all or nothing, and a refusal
// that says why in the log.

import { Writable } from 'node:stream'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../node/errors.ts'
import { createCredentials } from '../../node/http/credentials.ts'

function capture() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk))
      done()
    },
  })
  return { logger: pino({ level: 'info' }, stream), lines }
}

const READ = { scope: 'read' as const, token: 'read-token-0123456789ab' }
const ADMIN = { scope: 'admin' as const, token: 'admin-token-0123456789a' }

describe('credentials', () => {
  it('put the tokens of a reload in force, and keep them when the next reload fails, logging why', () => {
    const { logger, lines } = capture()
    const credentials = createCredentials({ tokens: [READ], logger })
    expect(credentials.reload(() => ({ tokens: [ADMIN] }))).toBe(true)
    expect(credentials.tokens()).toEqual([ADMIN])
    const refused = credentials.reload(() => {
      throw new ConfigError('invalid configuration: tokens-file: /etc/chorus/tokens line 2: …')
    })
    expect(refused).toBe(false)
    expect(credentials.tokens()).toEqual([ADMIN])
    expect(lines.at(-1)).toContain('reload refused, the tokens and certificate in force are kept')
    expect(lines.at(-1)).toContain('/etc/chorus/tokens line 2')
  })

  it('refuse to turn TLS on by a reload, and change no token then', () => {
    const { logger, lines } = capture()
    const credentials = createCredentials({ tokens: [READ], logger })
    const installed: unknown[] = []
    credentials.onTls((tls) => installed.push(tls))
    expect(credentials.reload(() => ({ tokens: [ADMIN], tls: { cert: 'x', key: 'y' } }))).toBe(
      false,
    )
    expect(credentials.tokens()).toEqual([READ])
    expect(installed).toEqual([])
    expect(lines.at(-1)).toContain('TLS cannot be turned on by a reload')
  })

  it('log the warnings of the configuration at start and at each reload', () => {
    const { logger, lines } = capture()
    const credentials = createCredentials({ tokens: [READ], warnings: ['mode 0644'], logger })
    credentials.reload(() => ({ tokens: [READ], warnings: ['mode 0640'] }))
    expect(lines.filter((l) => l.includes('"level":40')).map((l) => JSON.parse(l).msg)).toEqual([
      'mode 0644',
      'mode 0640',
    ])
  })
})
