// The HTTP credentials in force: bearer tokens and the TLS certificate and
// key. They are read with the configuration at start; `reload()` (on SIGHUP)
// puts those of a configuration read again in force, all or nothing, so an
// operator can rotate a token or renew a certificate without a restart, and a
// bad file changes nothing but a log line that says why.

import { createSecureContext } from 'node:tls'
import type { Logger } from '../log.ts'
import type { Token } from './auth.ts'

/** PEM text of a certificate (chain) and its private key. */
export interface TlsPem {
  cert: string
  key: string
}

/** What a reload takes from a configuration read again. */
export interface CredentialsSource {
  tokens: Token[]
  tls?: TlsPem
  /** Problems worth a log line that do not stop the reload (a tokens file others can read). */
  warnings?: string[]
}

export interface CredentialsInit extends CredentialsSource {
  logger: Logger
}

export interface Credentials {
  /** The tokens in force; a new array after each reload that changed them. */
  tokens(): readonly Token[]
  /** Called with the new certificate and key after a reload (the HTTPS server installs them). */
  onTls(listener: (tls: TlsPem) => void): void
  /**
   * Reads the credentials again with `load` (which throws ConfigError on a
   * bad file) and puts them in force; true if it did. On any problem it logs
   * why and keeps the credentials in force. TLS cannot be turned on or off
   * this way: that changes the URL, and needs a restart.
   */
  reload(load: () => CredentialsSource): boolean
}

export function createCredentials(init: CredentialsInit): Credentials {
  const { logger } = init
  let tokens: readonly Token[] = init.tokens
  const serving = init.tls !== undefined
  const listeners: Array<(tls: TlsPem) => void> = []
  for (const warning of init.warnings ?? []) logger.warn(warning)

  return {
    tokens: () => tokens,
    onTls(listener) {
      listeners.push(listener)
    },
    reload(load) {
      let next: CredentialsSource
      try {
        next = load()
        if ((next.tls !== undefined) !== serving) {
          throw new Error(
            `TLS cannot be turned ${serving ? 'off' : 'on'} by a reload (the URL changes): restart the member`,
          )
        }
        // Checked before anything changes: a certificate that does not
        // parse, or a key that does not match it, throws here.
        if (next.tls !== undefined) createSecureContext(next.tls)
      } catch (err) {
        logger.warn(
          `reload refused, the tokens and certificate in force are kept: ${(err as Error).message}`,
        )
        return false
      }
      for (const warning of next.warnings ?? []) logger.warn(warning)
      tokens = next.tokens
      const tls = next.tls
      if (tls !== undefined) for (const listener of listeners) listener(tls)
      logger.info(
        { tokens: tokens.length, tls: tls !== undefined },
        'reloaded the tokens and the TLS certificate',
      )
      return true
    },
  }
}
