// The one error mapping of the HTTP API: what a client is told when a route throws.

import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { StorageFullError, StoreUnavailableError } from '../../node/errors.ts'
import { createOnError } from '../../node/http/errors.ts'
import { createRootLogger } from '../../node/log.ts'

function appThrowing(err: Error) {
  const app = new Hono()
  app.onError(createOnError(createRootLogger({ level: 'silent' })))
  app.get('/', () => {
    throw err
  })
  return app
}

describe('the HTTP error mapping', () => {
  it("keeps the store's file paths out of a 5xx answer, and multiaddrs in", async () => {
    const answer = await appThrowing(
      new StoreUnavailableError(
        'the store refused the write: IO error: While appending to file: /var/lib/chorus/data/chorus/store/000012.log: Input/output error; via /ip4/127.0.0.1/tcp/7701',
      ),
    ).request('/')
    expect(answer.status).toBe(503)
    const body = (await answer.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('store_unavailable')
    expect(body.error.message).toBe(
      'the store refused the write: IO error: While appending to file: <path>: Input/output error; via /ip4/127.0.0.1/tcp/7701',
    )
    const full = await appThrowing(new StorageFullError('the disk is full')).request('/')
    expect(full.status).toBe(507)
  })
})
