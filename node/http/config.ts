// The array's settings: GET and PUT /v1/config/health (the health rules) and
// /v1/config/replicas (copies of every member's events). A PUT on any member
// makes the setting's next version, which spreads to every member (see
// node/settings.ts).

import { createRoute, z } from '@hono/zod-openapi'
import type { Approval } from '../approval.ts'
import type { HealthConfigStore } from '../health/config.ts'
import { type Rule, RulesSchema } from '../health/rules.ts'
import { MAX_REPLICAS, MIN_REPLICAS, type ReplicasSetting } from '../replica/setting.ts'
import { createRoutes, errorResponse } from './errors.ts'

export interface ConfigRoutesComponents {
  healthConfig: Pick<HealthConfigStore, 'current' | 'put'>
  replicasSetting: Pick<ReplicasSetting, 'current' | 'put'>
}

const ApprovalSchema = z
  .strictObject({
    body: z.string().max(256 * 1024),
    signature: z.string().max(256),
  })
  .openapi('Approval', {
    description:
      'the admin key\'s signature of `{ "setting", "version", "value" }` for exactly this version and value (chorus config … --admin-key FILE)',
  })

const Version = {
  version: z.number().int().openapi({ description: '0 before any change; each change adds 1' }),
  updatedBy: z
    .string()
    .nullable()
    .openapi({ description: 'peer id of the member where the change was made' }),
  approval: ApprovalSchema.optional(),
}

const HealthConfig = z
  .object({ ...Version, rules: z.array(z.record(z.string(), z.unknown())) })
  .openapi('HealthConfig')

const ReplicasConfig = z
  .object({
    ...Version,
    replicas: z.number().int().openapi({
      description: 'copies of every member’s events, its own included (1: no copies)',
    }),
  })
  .openapi('ReplicasConfig')

/**
 * GET and PUT of one setting at `path`: GET answers the version in force,
 * PUT takes `{ <field>: value, approval? }` and answers the new version.
 */
function serveSetting<T>(
  app: ReturnType<typeof createRoutes>,
  route: {
    path: string
    field: string
    what: string
    getSummary: string
    putSummary: string
    schema: z.ZodType
    value: z.ZodType<T>
    setting: { current(): unknown; put(value: T, approval?: Approval): Promise<unknown> }
  },
) {
  app.openapi(
    createRoute({
      method: 'get',
      path: route.path,
      summary: route.getSummary,
      responses: {
        200: {
          content: { 'application/json': { schema: route.schema } },
          description: `The ${route.what} in force`,
        },
      },
    }),
    (c) => c.json(route.setting.current() as never, 200),
  )
  app.openapi(
    createRoute({
      method: 'put',
      path: route.path,
      summary: route.putSummary,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.strictObject({
                [route.field]: route.value,
                approval: ApprovalSchema.optional(),
              }),
            },
          },
          required: true,
        },
      },
      responses: {
        200: {
          content: { 'application/json': { schema: route.schema } },
          description: 'The new version',
        },
        400: errorResponse(`Invalid ${route.what}; nothing changed`),
        403: errorResponse(
          `The array requires an admin approval of this ${route.what}, and this is none`,
        ),
        409: errorResponse('The approval is for another version: approve the next one again'),
      },
    }),
    async (c) => {
      // As validated above (the schema's defaults applied).
      const body = c.req.valid('json' as never) as Record<string, unknown>
      const approval = body.approval as Approval | undefined
      const version = await route.setting.put(body[route.field] as T, approval)
      return c.json(version as never, 200)
    },
  )
}

export function createConfigRoutes(components: ConfigRoutesComponents) {
  const app = createRoutes()
  serveSetting(app, {
    path: '/v1/config/health',
    field: 'rules',
    what: 'rule set',
    getSummary: 'The health rules in force on every member (the defaults before any change)',
    putSummary: 'Replace the health rules; the new version spreads to every member',
    schema: HealthConfig,
    value: RulesSchema as z.ZodType<Rule[]>,
    setting: components.healthConfig,
  })
  serveSetting(app, {
    path: '/v1/config/replicas',
    field: 'replicas',
    what: 'replica count',
    getSummary:
      'How many copies of every member’s events the array keeps (--replicas before any change)',
    putSummary:
      'Set the replica count; the new version spreads to every member, and holders are placed, fill or drop copies to match',
    schema: ReplicasConfig,
    value: z.number().int().min(MIN_REPLICAS).max(MAX_REPLICAS),
    setting: components.replicasSetting,
  })
  return app
}
