// GET /v1/rollups: time buckets for the whole array, from any member.

import { createRoute, z } from '@hono/zod-openapi'
import { InvalidInputError } from '../errors.ts'
import { SeverityInputSchema, severityRank } from '../event/event.ts'
import { filterProblems } from '../query/cursor.ts'
import {
  MAX_ROLLUP_QUANTILES,
  MAX_ROLLUP_STEPS,
  queryRollups,
  type RollupTarget,
  resolutionFor,
} from '../query/rollups.ts'
import type { MemberRecorder } from '../stats.ts'
import { formatDuration, parseDuration, parseTime } from '../time.ts'
import { createRoutes, errorResponse, listParam } from './errors.ts'
import { queryTimeout } from './events.ts'
import { readFilters, withAttrParams } from './filters.ts'
import { objectJson } from './stream.ts'

export interface RollupRoutesComponents {
  rollupTargets: () => RollupTarget[]
  queryTimeoutMs: number
  clock: () => number
  recorder: MemberRecorder
}

/** Steps tried, in order, when none is given: the first that gives at most DEFAULT_STEPS buckets. */
const AUTO_STEPS_MS = [10_000, 60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000]
const DEFAULT_STEPS = 360
const DEFAULT_PERIOD_MS = 3_600_000

const Query = withAttrParams({
  from: z.string().optional().openapi({
    description: 'RFC 3339, epoch ms or a duration back from now. Default: 1h before `to`.',
  }),
  to: z.string().optional().openapi({
    description: 'Default now; widened to the next step edge, so the current bucket is included.',
  }),
  step: z.string().optional().openapi({
    description: 'A duration that is a multiple of 10s, 1m or 1h. Default: at most 360 buckets.',
  }),
  type: listParam.openapi({
    description: 'Exact types or prefixes like http.*, a leading - excludes (-host.*); at most 64',
  }),
  severity: SeverityInputSchema.optional(),
  member: listParam.openapi({ description: 'Member names or peer ids' }),
  by: listParam.openapi({ description: 'Comma list of type, severity, member' }),
  q: listParam.openapi({
    description:
      'Comma list of at most 10 quantiles, each from 0 to 1, e.g. 0.5,0.99. The answer holds at most 100,000 cells (series × steps × quantiles).',
  }),
  timeout: z.string().optional(),
})

const Bucket = z.object({
  t: z.number().int(),
  count: z.number().int(),
  sum: z.number(),
  min: z.number().nullable(),
  max: z.number().nullable(),
  last: z.number().nullable(),
  avg: z
    .number()
    .nullable()
    .openapi({ description: 'sum / number of events that carried a value' }),
  quantiles: z.record(z.string(), z.number().nullable()).optional(),
})

const Answer = z
  .object({
    step: z.string(),
    series: z.array(
      z.object({
        key: z.object({
          type: z.string().optional(),
          severity: z.string().optional(),
          member: z.string().optional(),
        }),
        buckets: z.array(Bucket),
      }),
    ),
    members: z.array(
      z.object({
        member: z.string(),
        name: z.string(),
        status: z.string(),
        count: z.number().int(),
        ms: z.number().int(),
        error: z.string().optional(),
      }),
    ),
    partial: z.boolean(),
  })
  .openapi('Rollups')

function bad(field: string, rule: string, got: string): InvalidInputError {
  return new InvalidInputError(`"${field}" ${rule}, got ${JSON.stringify(got)}`, [
    { field, message: rule },
  ])
}

export function createRollupRoutes(components: RollupRoutesComponents) {
  const app = createRoutes()
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/rollups',
      summary: 'Time buckets of events for the whole array',
      request: { query: Query },
      responses: {
        200: {
          content: { 'application/json': { schema: Answer } },
          description: 'Series of buckets',
        },
        400: errorResponse('Invalid parameter'),
      },
    }),
    async (c) => {
      const p = c.req.valid('query')
      const now = components.clock()
      const time = (field: 'from' | 'to', text: string) => {
        const ms = parseTime(text, now)
        if (ms === undefined)
          throw bad(
            field,
            'must be RFC 3339, epoch milliseconds, or a duration back from now such as 1h',
            text,
          )
        return ms
      }
      let toMs = p.to === undefined ? now : time('to', p.to)
      let fromMs = p.from === undefined ? toMs - DEFAULT_PERIOD_MS : time('from', p.from)
      if (fromMs > toMs) throw bad('from', 'must not be after "to"', p.from ?? '')
      let stepMs: number
      if (p.step === undefined) {
        stepMs =
          AUTO_STEPS_MS.find((s) => (toMs - fromMs) / s <= DEFAULT_STEPS) ??
          (AUTO_STEPS_MS.at(-1) as number)
      } else {
        const parsed = parseDuration(p.step)
        if (parsed === undefined || parsed <= 0 || resolutionFor(parsed) === undefined) {
          throw bad('step', 'must be a duration that is a multiple of 10s, 1m or 1h', p.step)
        }
        stepMs = parsed
      }
      const resolution = resolutionFor(stepMs) as number
      // Widen to step edges; the current, partial bucket is included.
      fromMs -= fromMs % stepMs
      toMs = toMs - (toMs % stepMs) + stepMs
      if ((toMs - fromMs) / stepMs > MAX_ROLLUP_STEPS) {
        throw bad(
          'step',
          `gives more than ${MAX_ROLLUP_STEPS} buckets for this period`,
          p.step ?? formatDuration(stepMs),
        )
      }
      const filters = filterProblems(p.type, p.member)
      const first = filters[0]
      if (first !== undefined)
        throw new InvalidInputError(`"${first.field}": ${first.message}`, filters)
      const { types, notTypes, attrs } = readFilters(p.type, p)
      for (const dim of p.by) {
        if (!['type', 'severity', 'member'].includes(dim))
          throw bad('by', 'must be a comma list of type, severity and member', dim)
      }
      if (p.q.length > MAX_ROLLUP_QUANTILES)
        throw new InvalidInputError(
          `"q": at most ${MAX_ROLLUP_QUANTILES} quantiles, got ${p.q.length}`,
          [{ field: 'q', message: `at most ${MAX_ROLLUP_QUANTILES} quantiles` }],
        )
      const quantiles = p.q.map((text) => {
        const q = Number(text)
        if (!/^(0(\.\d+)?|1(\.0+)?)$/.test(text) || q < 0 || q > 1)
          throw bad('q', 'must be a comma list of quantiles between 0 and 1', text)
        return q
      })
      const timeoutMs = queryTimeout(p.timeout, components.queryTimeoutMs)
      const started = performance.now()
      const answer = await queryRollups(
        components.rollupTargets(),
        {
          request: {
            fromMs,
            toMs,
            resolution,
            stepMs,
            types,
            minSeverity: p.severity === undefined ? 0 : severityRank(p.severity),
            byType: p.by.includes('type'),
            bySeverity: p.by.includes('severity'),
            ...(notTypes.length > 0 ? { notTypes } : {}),
            ...(attrs.length > 0 ? { attrs } : {}),
          },
          members: p.member,
          byMember: p.by.includes('member'),
          quantiles,
          timeoutMs,
        },
        formatDuration(stepMs),
        { signal: c.req.raw.signal, recorder: components.recorder },
      )
      components.recorder.query(
        'coordinator',
        'rollups',
        (performance.now() - started) / 1000,
        answer.partial,
      )
      // Written series by series: a rollup may hold 100,000 cells.
      return c.body(objectJson(answer, 'series'), 200, {
        'content-type': 'application/json',
      }) as never
    },
  )
  return app
}
