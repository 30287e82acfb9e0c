// GET /v1/health: the array's health and each member's, with the rules that
// fired. Always 200: the answer is the health, whatever it is.

import { createRoute, z } from '@hono/zod-openapi'
import type { Approval } from '../approval.ts'
import type { HealthConfig } from '../health/config.ts'
import type { HealthReport } from '../health/report.ts'
import { type Rule, RulesSchema } from '../health/rules.ts'
import { createRoutes, errorResponse } from './errors.ts'

export interface HealthRoutesComponents {
  health: () => HealthReport
  healthConfig: {
    current(): HealthConfig
    put(rules: Rule[], approval?: Approval): Promise<HealthConfig>
  }
}

const ApprovalSchema = z
  .strictObject({
    body: z.string().max(256 * 1024),
    signature: z.string().max(256),
  })
  .openapi('Approval', {
    description:
      'the admin key\'s signature of `{ "setting": "health-rules", "version", "value": rules }` (chorus config set --admin-key FILE)',
  })

const Config = z
  .object({
    version: z.number().int(),
    updatedBy: z.string().nullable(),
    rules: z.array(z.record(z.string(), z.unknown())),
    approval: ApprovalSchema.optional(),
  })
  .openapi('HealthConfig')

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
    (c) => c.json(components.health(), 200),
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/config/health',
      summary: 'The health rules in force on every member (the defaults before any change)',
      responses: {
        200: { content: { 'application/json': { schema: Config } }, description: 'The rules' },
      },
    }),
    (c) => c.json(components.healthConfig.current() as z.infer<typeof Config>, 200),
  )

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/config/health',
      summary: 'Replace the health rules; the new version spreads to every member',
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.strictObject({ rules: RulesSchema, approval: ApprovalSchema.optional() }),
            },
          },
          required: true,
        },
      },
      responses: {
        200: {
          content: { 'application/json': { schema: Config } },
          description: 'The new version',
        },
        400: errorResponse('Invalid rules; nothing changed'),
        403: errorResponse('The array requires an admin approval of these rules, and this is none'),
        409: errorResponse('The approval is for another version: approve the next one again'),
      },
    }),
    async (c) => {
      const { rules, approval } = c.req.valid('json')
      const config = await components.healthConfig.put(rules as Rule[], approval)
      return c.json(config as z.infer<typeof Config>, 200)
    },
  )
  return app
}
