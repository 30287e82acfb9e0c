// HTTP(S) requests with headers sent exactly as given, for tests: fetch()
// sets Host and Origin itself, cannot send a body shorter than its declared
// length, and trusts no certificate of a test's own.

import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'

export interface RawRequest {
  /** Default GET. */
  method?: string
  headers?: Record<string, string>
  /** Written, then the request ends; with `partial` it does not end (the body is shorter than declared). */
  body?: string
  partial?: boolean
  /** PEM certificate to trust, for https. */
  ca?: string
  /** Default 10 s. */
  timeoutMs?: number
}

/** Sends one request and resolves with its status and body as text. */
export function rawRequest(
  url: string,
  options: RawRequest = {},
): Promise<{ status: number; body: string }> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ...(options.ca === undefined ? {} : { ca: options.ca }),
      },
      (res) => {
        let body = ''
        res.on('data', (d: Buffer) => {
          body += d.toString()
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      },
    )
    req.on('error', reject)
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error('timeout')))
    if (options.partial === true) req.write(options.body ?? '')
    else req.end(options.body)
  })
}
