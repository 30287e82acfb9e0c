// Routes of /v1/members: the membership table as this member sees it, with
// the holders of each member's events, and forgetting a dead or left member
// at once.

import { createRoute, z } from '@hono/zod-openapi'
import { ConflictError, NotFoundError } from '../errors.ts'
import type { Membership } from '../mesh/membership.ts'
import type { HolderRow } from '../replica/replicator.ts'
import { createRoutes, errorResponse } from './errors.ts'

export interface MemberRoutesComponents {
  membership: Membership
  selfPeerId: string
  /** The holders of a member's events, with their lag where this member knows it (node/replica/). */
  holders?: (origin: string) => HolderRow[]
  /** True while this member restores its events from their holders (its own row says `restoring`). */
  restoring?: () => boolean
}

const HolderSchema = z
  .object({
    member: z.string().openapi({ description: 'peer id' }),
    name: z.string(),
    lagEvents: z.number().int().optional().openapi({
      description:
        "events of the member's it does not hold yet; known on the member itself and on the holder",
    }),
    lagMs: z.number().int().optional().openapi({
      description: 'age of the oldest of them, ms; known on the member itself',
    }),
  })
  .openapi('Holder')

const MemberSchema = z
  .object({
    member: z.string().openapi({ description: 'peer id' }),
    name: z.string(),
    state: z.enum(['alive', 'suspect', 'dead', 'left', 'conflict', 'restoring']).openapi({
      description:
        'restoring: this member itself, pulling its events back after its data dir was replaced',
    }),
    lastSeen: z.number().int().openapi({ description: "ms since the epoch, this member's clock" }),
    addrs: z.array(z.string()),
    http: z.string(),
    seq: z.number().int().openapi({ description: 'newest seq it announced' }),
    offsetMs: z.number().int().openapi({ description: "its clock minus this member's, estimated" }),
    version: z.string(),
    health: z.string(),
    holders: z.array(HolderSchema).openapi({
      description: 'the members that hold copies of its events (replicas − 1 of them)',
    }),
  })
  .openapi('Member')

export function createMemberRoutes(components: MemberRoutesComponents) {
  const { membership } = components
  const app = createRoutes()

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/members',
      summary: 'The membership table as this member sees it, itself included',
      responses: {
        200: {
          content: {
            'application/json': {
              schema: z.object({ self: z.string(), members: z.array(MemberSchema) }),
            },
          },
          description: 'The table',
        },
      },
    }),
    (c) =>
      c.json(
        {
          self: components.selfPeerId,
          members: membership.table().map((m) => ({
            member: m.member,
            name: m.name,
            state: m.self && components.restoring?.() === true ? ('restoring' as const) : m.state,
            lastSeen: m.lastSeen,
            addrs: m.addrs,
            http: m.http,
            seq: m.seq,
            offsetMs: Math.round(m.offsetMs),
            version: m.version,
            health: m.health,
            holders: components.holders?.(m.member) ?? [],
          })),
        },
        200,
      ),
  )

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/members/{name}',
      summary: 'Forget a dead or left member now',
      request: { params: z.object({ name: z.string().min(1).max(128) }) },
      responses: {
        200: {
          content: { 'application/json': { schema: z.object({ forgotten: z.string() }) } },
          description: 'Forgotten',
        },
        404: errorResponse('No such member'),
        409: errorResponse('The member is not dead or left'),
      },
    }),
    (c) => {
      const { name } = c.req.valid('param')
      const result = membership.forget(name)
      if (result === 'not_found') throw new NotFoundError(`no member named ${name} is in the table`)
      if (result === 'not_dead') {
        throw new ConflictError(
          `member ${name} is not dead or left; only those can be forgotten`,
          'member_not_dead',
        )
      }
      return c.json({ forgotten: name }, 200)
    },
  )
  return app
}
