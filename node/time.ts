// Durations and points in time as operators write them, in flags and query
// parameters alike: durations `500ms`, `10s`, `2m`, `1h`, `7d`; times as RFC
// 3339, epoch milliseconds, or a duration back from now (`15m`).

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/

/**
 * Parses a duration such as `500ms` or `7d` into milliseconds. Returns
 * `undefined` when the text is not a duration, so callers can name the field
 * in their own error.
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim())
  if (match === null) return undefined
  const [, amount, unit] = match
  const ms = Number(amount) * (UNIT_MS[unit as string] as number)
  return Number.isFinite(ms) ? Math.round(ms) : undefined
}

/** Formats milliseconds as the largest exact unit, e.g. 604800000 → `7d`. */
export function formatDuration(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit] as number
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})$/

/** Largest timestamp an id can hold: 48 bits of milliseconds. */
export const MAX_TS_MS = 2 ** 48 - 1

/**
 * Parses a point in time: RFC 3339 (`2026-11-26T10:00:00Z`), epoch
 * milliseconds (`1764151200000`), or a duration back from `nowMs` (`15m`).
 * Returns epoch milliseconds, or `undefined` when the text is none of these.
 */
export function parseTime(text: string, nowMs: number): number | undefined {
  const value = text.trim()
  if (/^\d+$/.test(value)) {
    const ms = Number(value)
    return Number.isSafeInteger(ms) && ms <= MAX_TS_MS ? ms : undefined
  }
  const back = parseDuration(value)
  if (back !== undefined) return Math.max(0, nowMs - back)
  if (RFC3339.test(value)) {
    const ms = Date.parse(value)
    return Number.isFinite(ms) && ms >= 0 && ms <= MAX_TS_MS ? ms : undefined
  }
  return undefined
}
