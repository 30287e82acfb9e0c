// GET /v1/health: the array's health and each member's, with the rules that
// fired. Always 200: the answer is the health, whatever it is.

import { createRoute, z } from '@hono/zod-openapi'
import type { HealthReport } from '../health/report.ts'
import type { RecentAnswers } from '../stats.ts'
import { createRoutes } from './errors.ts'

export interface HealthRoutesComponents {
  health: () => HealthReport
  /** Answers this member coordinated lately, and how many were partial. */
  answers: () => RecentAnswers
}

const State = z.enum(['ok', 'warning', 'critical', 'unknown'])

const Report = z
  .object({
    array: z.object({ state: State, rules: z.array(z.string()) }),
    members: z.array(
      z.object({
        member: z.string(),
        name: z.string(),
        membership: z.string(),
        state: State,
        rules: z.array(z.string()),
      }),
    ),
    answers: z
      .object({
        windowSeconds: z.number().int(),
        total: z.number().int(),
        partial: z.number().int(),
      })
      .openapi({
        description:
          "Pages, exports and rollups this member answered in full as coordinator over the last windowSeconds, and how many of them were partial (some member's part missing).",
      }),
  })
  .openapi('Health')

export function createHealthRoutes(components: HealthRoutesComponents) {
  const app = createRoutes()
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/health',
      summary: 'The health of the array and of each member, with the rules that fired',
      responses: {
        200: { content: { 'application/json': { schema: Report } }, description: 'Health' },
      },
    }),
    (c) => c.json({ ...components.health(), answers: components.answers() }, 200),
  )

  return app
}
