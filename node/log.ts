// Loggers, one per component (`chorus:coordinator`), written as JSON lines to
// stderr by pino, with the level by name and the time in ISO 8601 (UTC). The
// level comes from CHORUS_LOG_LEVEL (default `info`; `silent` in tests
// unless set). Hot paths log at `trace` only.

import pino from 'pino'

export type Logger = pino.Logger

export interface LoggerInit {
  /** Minimum level. Default: CHORUS_LOG_LEVEL, else `info` (`silent` under vitest). */
  level?: string
  /** Member name, added to every line so several members in one process can be told apart. */
  member?: string
}

export function createRootLogger(init: LoggerInit = {}): Logger {
  const level =
    init.level ??
    process.env.CHORUS_LOG_LEVEL ??
    (process.env.VITEST !== undefined ? 'silent' : 'info')
  return pino(
    {
      level,
      base: init.member === undefined ? {} : { member: init.member },
      // "level":"warn" and "time":"2026-11-30T12:00:00.000Z", as people and log shippers read them.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: false }),
  )
}

/** A child logger for one component, e.g. `component(root, 'ingest')` → `chorus:ingest`. */
export function component(root: Logger, name: string): Logger {
  return root.child({ component: `chorus:${name}` })
}
