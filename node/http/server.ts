// Listens for the HTTP app and stops gracefully: stop accepting, let requests
// in flight finish (bounded), then close what is left.

import type { Server } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { ConfigError } from '../errors.ts'

export interface HttpServer {
  /** The bound address, e.g. `127.0.0.1:7700` (the real port when 0 was asked). */
  readonly address: string
  /** Stops accepting, waits up to `graceMs` for requests in flight, then drops the rest. */
  close(graceMs?: number): Promise<void>
  /**
   * Serves a new certificate and key (PEM) to connections made from now on;
   * those open keep theirs. Throws if they do not parse or match, and then
   * keeps the old ones. Only for a server started with TLS.
   */
  setTls(tls: { cert: string; key: string }): void
}

export async function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  host: string,
  port: number,
  tls?: { cert: string; key: string },
): Promise<HttpServer> {
  const { server, info } = await new Promise<{ server: Server; info: AddressInfo }>(
    (resolve, reject) => {
      const options =
        tls === undefined
          ? { fetch, hostname: host, port }
          : {
              fetch,
              hostname: host,
              port,
              createServer: createHttpsServer,
              serverOptions: { cert: tls.cert, key: tls.key },
            }
      // An address that cannot be had, or a certificate that cannot be
      // used, is the operator's to fix: a ConfigError naming the address.
      const refuse = (err: Error) =>
        reject(
          new ConfigError(`cannot listen for HTTP on ${host}:${port}: ${err.message}`, [
            { field: 'http', message: err.message },
          ]),
        )
      try {
        const s = serve(options, (info) => resolve({ server: s as Server, info }))
        ;(s as Server).once('error', refuse)
      } catch (err) {
        refuse(err as Error)
      }
    },
  )
  // Slow or idle clients cannot hold a member: bounded header and keep-alive times.
  server.headersTimeout = 20_000
  server.requestTimeout = 120_000
  server.keepAliveTimeout = 5_000
  const address =
    info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`
  let closing: Promise<void> | undefined
  return {
    address,
    close(graceMs = 10_000) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs)
        server.close(() => {
          clearTimeout(timer)
          resolve()
        })
        server.closeIdleConnections()
      })
      return closing
    },
    setTls(next) {
      if (tls === undefined) throw new Error('this server speaks plain HTTP: it has no certificate')
      ;(server as unknown as HttpsServer).setSecureContext({ cert: next.cert, key: next.key })
    },
  }
}
