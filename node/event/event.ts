// The event: what a member logs and what queries return, plus the schema that
// validates events arriving over HTTP. Field limits are part of the member's
// configuration (see EventLimits) and are enforced here, at the edge.

import { z } from '@hono/zod-openapi'

export const SEVERITIES = ['debug', 'info', 'warn', 'error', 'critical'] as const
export type Severity = (typeof SEVERITIES)[number]
const SEVERITY_NAMES: ReadonlySet<string> = new Set<string>(SEVERITIES)

/** Severity as its rank, 0 (debug) to 4 (critical); stored and compared as a number. */
export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity)
}

export function severityOfRank(rank: number): Severity {
  return SEVERITIES[rank] ?? 'info'
}

/**
 * Other names shippers and logging libraries use, each taken as one of the
 * five (syslog's and OpenTelemetry's among them).
 */
export const SEVERITY_ALIASES: Readonly<Record<string, Severity>> = {
  trace: 'debug',
  notice: 'info',
  information: 'info',
  informational: 'info',
  warning: 'warn',
  err: 'error',
  fatal: 'critical',
  crit: 'critical',
  alert: 'critical',
  emerg: 'critical',
  emergency: 'critical',
  panic: 'critical',
}

/** One of the five severities for `text` (any case, or an alias); undefined when it names none. */
export function parseSeverity(text: string): Severity | undefined {
  if (text.length > 16) return undefined
  const lower = text.toLowerCase()
  if (SEVERITY_NAMES.has(lower)) return lower as Severity
  return Object.hasOwn(SEVERITY_ALIASES, lower) ? SEVERITY_ALIASES[lower] : undefined
}

const SEVERITY_RULE = `one of ${SEVERITIES.join(', ')} (any case), or an alias: ${Object.keys(
  SEVERITY_ALIASES,
).join(', ')}`

/** A severity as a client may write it, read as one of the five. */
export const SeverityInputSchema = z
  .string()
  .transform((text, ctx) => {
    const severity = parseSeverity(text)
    if (severity === undefined) {
      ctx.addIssue({ code: 'custom', message: SEVERITY_RULE })
      return z.NEVER
    }
    return severity
  })
  .openapi({ type: 'string', description: SEVERITY_RULE, example: 'warn' })

export type AttrValue = string | number | boolean
export type Attrs = Record<string, AttrValue>

/** An event as a client sends it. */
export interface EventInput {
  type: string
  severity?: Severity
  message?: string
  source?: string
  value?: number
  attrs?: Attrs
  time?: string | number
}

/** An event as stored and returned. */
export interface ChorusEvent {
  id: string
  ts: number
  member: string
  memberName: string
  seq: number
  type: string
  severity: Severity
  message?: string
  source?: string
  value?: number
  attrs?: Attrs
  time?: string | number
}

/** Size limits of one event's fields. Defaults suit operational events, not documents. */
export interface EventLimits {
  /** Longest `type`, in characters. Default 128. */
  maxTypeLength: number
  /** Longest `message`, in characters. Default 8192. */
  maxMessageLength: number
  /** Longest `source`, in characters. Default 256. */
  maxSourceLength: number
  /** Most attributes on one event. Default 32. */
  maxAttrs: number
  /** Longest attribute name, in characters. Default 64. */
  maxAttrKeyLength: number
  /** Longest string attribute value, in characters. Default 1024. */
  maxAttrValueLength: number
}

export const DEFAULT_EVENT_LIMITS: EventLimits = {
  maxTypeLength: 128,
  maxMessageLength: 8192,
  maxSourceLength: 256,
  maxAttrs: 32,
  maxAttrKeyLength: 64,
  maxAttrValueLength: 1024,
}

/**
 * Largest magnitude of an event's `value`: |value| <= 1e15. Rollups sum
 * values, and a bucket of 10^290 such events still sums to a finite double, so
 * no realistic number of events (over any period, merged across any number of
 * members) overflows a sum to Infinity; 1e15 is still above any byte count,
 * duration in nanoseconds or counter an operational event carries, and below
 * 2^53, so integer values and their sums over moderate counts stay exact.
 */
export const MAX_EVENT_VALUE = 1e15
// Written out, as operators read it; the event tests hold it to MAX_EVENT_VALUE.
const VALUE_RULE = 'must be a finite number from -1e15 to 1e15'

/** Dotted lower-case words: `http.request`, `host.cpu`, `app.login_failed`. */
export const TYPE_PATTERN = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/
const ATTR_KEY_PATTERN = /^[A-Za-z0-9_.:-]+$/
/** Names that JavaScript objects treat specially; refused so that attributes round-trip exactly. */
export const RESERVED_ATTR_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

export function createEventInputSchema(limits: EventLimits) {
  return z
    .strictObject({
      type: z
        .string()
        .min(1)
        .max(limits.maxTypeLength)
        .regex(TYPE_PATTERN, 'must be dotted lower-case words such as "http.request"'),
      severity: SeverityInputSchema.optional(),
      message: z.string().max(limits.maxMessageLength).optional(),
      source: z.string().max(limits.maxSourceLength).optional(),
      value: z
        .number()
        .refine((v) => Number.isFinite(v) && Math.abs(v) <= MAX_EVENT_VALUE, VALUE_RULE)
        .optional(),
      attrs: z
        .record(
          z
            .string()
            .min(1)
            .max(limits.maxAttrKeyLength)
            .regex(ATTR_KEY_PATTERN, 'attribute names are letters, digits and _ . : -')
            .refine((key) => !RESERVED_ATTR_KEYS.has(key), 'is a reserved name'),
          z.union([z.string().max(limits.maxAttrValueLength), z.number().finite(), z.boolean()]),
        )
        .refine((attrs) => Object.keys(attrs).length <= limits.maxAttrs, {
          message: `at most ${limits.maxAttrs} attributes`,
        })
        .optional(),
      time: z.union([z.string().max(64), z.number().finite()]).optional(),
    })
    .openapi('EventInput')
}

const EVENT_KEYS = new Set(['type', 'severity', 'message', 'source', 'value', 'attrs', 'time'])

const isShortString = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length <= max
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const isEventValue = (v: unknown): v is number =>
  isFiniteNumber(v) && Math.abs(v) <= MAX_EVENT_VALUE

/**
 * The schema's rules as plain code, for the ingest hot path: returns the
 * event when `raw` is valid, and undefined when it is not, in which case the
 * schema is run to say why. It accepts exactly what the schema accepts (a
 * property test holds them to it); the schema stays the contract and the
 * OpenAPI description.
 */
export function createEventChecker(limits: EventLimits): (raw: unknown) => EventInput | undefined {
  return (raw) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined
    const e = raw as Record<string, unknown>
    for (const key in e) if (!EVENT_KEYS.has(key)) return undefined
    const { type, severity, message, source, value, attrs, time } = e
    if (
      typeof type !== 'string' ||
      type.length === 0 ||
      type.length > limits.maxTypeLength ||
      !TYPE_PATTERN.test(type)
    )
      return undefined
    if (severity !== undefined) {
      if (typeof severity !== 'string') return undefined
      if (!SEVERITY_NAMES.has(severity)) {
        const named = parseSeverity(severity)
        if (named === undefined) return undefined
        e.severity = named
      }
    }
    if (message !== undefined && !isShortString(message, limits.maxMessageLength)) return undefined
    if (source !== undefined && !isShortString(source, limits.maxSourceLength)) return undefined
    if (value !== undefined && !isEventValue(value)) return undefined
    if (time !== undefined && !(isShortString(time, 64) || isFiniteNumber(time))) return undefined
    if (attrs !== undefined) {
      if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs)) return undefined
      let count = 0
      for (const key in attrs) {
        if (!Object.hasOwn(attrs, key)) continue
        count++
        if (
          key.length === 0 ||
          key.length > limits.maxAttrKeyLength ||
          !ATTR_KEY_PATTERN.test(key) ||
          RESERVED_ATTR_KEYS.has(key)
        )
          return undefined
        const v = (attrs as Record<string, unknown>)[key]
        if (
          !(
            isShortString(v, limits.maxAttrValueLength) ||
            isFiniteNumber(v) ||
            typeof v === 'boolean'
          )
        )
          return undefined
      }
      if (count > limits.maxAttrs) return undefined
    }
    return e as unknown as EventInput
  }
}

export const EventSchema = z
  .object({
    id: z.string().openapi({ example: '01KB3Q7Z8Y0000000000000001' }),
    ts: z.number().int().openapi({ description: 'ms since the epoch, stamped by the member' }),
    member: z.string().openapi({ description: 'peer id of the owning member' }),
    memberName: z.string(),
    seq: z.number().int(),
    type: z.string(),
    severity: z.enum(SEVERITIES),
    message: z.string().optional(),
    source: z.string().optional(),
    value: z.number().optional(),
    attrs: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    time: z.union([z.string(), z.number()]).optional(),
  })
  .openapi('Event')
