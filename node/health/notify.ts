// Health out: rules that fire and clear, sent where operators already look.
//
// - Alertmanager (API v2, POST /api/v2/alerts): each firing rule is an alert
//   with labels alertname, rule, severity (the state the rule makes), array,
//   and member for member rules; re-sent while it fires, with an endsAt a
//   few resends ahead (so an alert whose sender dies resolves by itself),
//   and sent once more with endsAt now when it clears.
// - Webhooks: every transition (firing, resolved) as one JSON message,
//   signed with HMAC-SHA256 when a secret is given.
//
// Who sends what, with no master: a member sends its own member rules. An
// array rule fires on every member that sees the array the same way, so
// each array alert is sent by one member only: the live member that scores
// highest for the alert by rendezvous hashing (the same on every member
// from the same table). When that member dies the table changes, and the
// next member in the order takes the alert on; Alertmanager keeps it active
// meanwhile (its endsAt is still ahead).
//
// Sending never holds anything up: each target has its own bounded queue
// (the oldest message dropped and counted when it is full), drained one
// request at a time with a timeout, retried with back-off on failures and
// 429/5xx answers, and given up after a few attempts (counted); an alert
// still firing whose send was given up is sent again at the next look.

import { createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../log.ts'
import { holderScore } from '../replica/placement.ts'

/** A rule firing now, as this member sees it. */
export interface FiringRule {
  rule: string
  kind: 'member' | 'array'
  /** What it makes the member or the array: warning or critical. */
  state: string
  /** The measured value, for member rules. */
  value?: number
  /** What the rule says, for the annotations. */
  description: string
}

export interface NotifierComponents {
  alertmanagers: readonly string[]
  /** Authorization header for the Alertmanagers. */
  alertmanagerAuthorization?: string
  webhooks: readonly string[]
  webhookSecret?: string
  arrayName: string
  memberName: string
  selfPeerId: string
  /** The rules firing now: this member's own, and the array's as it sees them. */
  firing(): FiringRule[]
  /** Peer ids of the members alive now, this one included. */
  aliveMembers(): string[]
  /** How often an alert still firing is sent again, ms. Default 60 s. */
  resendMs?: number
  /** One request's deadline, ms. Default 5 s. */
  timeoutMs?: number
  /** Messages waiting per target at most. Default 256. */
  queueSize?: number
  clock?: () => number
  logger: Logger
}

export type NotificationOutcome = 'sent' | 'failed' | 'dropped'

export interface Notifier {
  /** Looks at the rules again now (after an evaluation, or a change of membership). */
  update(): void
  /** Messages by target kind, alert scope and outcome, since start. */
  counts(): Array<{
    kind: 'alertmanager' | 'webhook'
    scope: 'member' | 'array'
    outcome: NotificationOutcome
    count: number
  }>
  start(): void
  stop(): Promise<void>
}

interface Active {
  rule: FiringRule
  labels: Record<string, string>
  startsAt: number
  sentAt: number
}

interface Message {
  body: string
  scope: 'member' | 'array'
  /** Called when the message is given up after its retries (or dropped from a full queue). */
  failed?: () => void
}

const ATTEMPTS = 5
const FIRST_RETRY_MS = 500
const MAX_RETRY_MS = 30_000

export function createNotifier(components: NotifierComponents): Notifier {
  const { logger } = components
  const clock = components.clock ?? Date.now
  const resendMs = components.resendMs ?? 60_000
  const timeoutMs = components.timeoutMs ?? 5000
  const queueSize = components.queueSize ?? 256
  const active = new Map<string, Active>()
  const stopping = new AbortController()
  const tally = new Map<string, number>()
  const count = (
    kind: 'alertmanager' | 'webhook',
    scope: 'member' | 'array',
    outcome: NotificationOutcome,
  ) => {
    const key = `${kind}\n${scope}\n${outcome}`
    tally.set(key, (tally.get(key) ?? 0) + 1)
  }

  /** One target: a bounded queue drained by one loop. */
  function target(
    kind: 'alertmanager' | 'webhook',
    url: string,
    headers: (body: string) => Record<string, string>,
  ) {
    const queue: Message[] = []
    let draining: Promise<void> | undefined
    const send = async (message: Message) => {
      let delay = FIRST_RETRY_MS
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        if (stopping.signal.aborted) return
        let retry = true
        try {
          const response = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...headers(message.body) },
            body: message.body,
            signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(timeoutMs)]),
          })
          await response.arrayBuffer().catch(() => {})
          if (response.ok) {
            count(kind, message.scope, 'sent')
            return
          }
          // A refusal of the message itself will not change on a retry.
          retry = response.status === 429 || response.status >= 500
          logger.debug({ kind, status: response.status }, 'a notification was refused')
        } catch (err) {
          logger.debug({ kind, err: (err as Error).message }, 'a notification could not be sent')
        }
        if (!retry || attempt === ATTEMPTS || stopping.signal.aborted) break
        // Cut short when the member stops, which waits for the queues.
        await sleep(delay, undefined, { signal: stopping.signal, ref: false }).catch(() => {})
        delay = Math.min(MAX_RETRY_MS, delay * 2)
      }
      count(kind, message.scope, 'failed')
      message.failed?.()
      logger.warn({ kind }, 'a notification was given up after its retries')
    }
    const drain = async () => {
      for (let message = queue.shift(); message !== undefined; message = queue.shift())
        await send(message)
      draining = undefined
    }
    return {
      push(message: Message) {
        if (queue.length >= queueSize) {
          const dropped = queue.shift() as Message
          count(kind, dropped.scope, 'dropped')
          dropped.failed?.()
        }
        queue.push(message)
        draining ??= drain()
      },
      idle: () => draining ?? Promise.resolve(),
    }
  }

  const alertmanagers = components.alertmanagers.map((base) =>
    target(
      'alertmanager',
      `${base.replace(/\/+$/, '')}/api/v2/alerts`,
      (): Record<string, string> => {
        const authorization = components.alertmanagerAuthorization
        return authorization === undefined ? {} : { authorization }
      },
    ),
  )
  const webhooks = components.webhooks.map((url) =>
    target('webhook', url, (body): Record<string, string> => {
      const secret = components.webhookSecret
      if (secret === undefined) return {}
      const signature = createHmac('sha256', secret).update(body).digest('hex')
      return { 'chorus-signature': `sha256=${signature}` }
    }),
  )

  const labelsOf = (rule: FiringRule): Record<string, string> => ({
    alertname: rule.kind === 'member' ? 'ChorusHealthRule' : 'ChorusArrayHealthRule',
    rule: rule.rule,
    severity: rule.state,
    array: components.arrayName,
    ...(rule.kind === 'member' ? { member: components.memberName } : {}),
  })
  const keyOf = (rule: FiringRule) => `${rule.kind}\n${rule.rule}`

  /** Whether this member sends this alert: its own rules always, an array rule when it scores highest. */
  function mine(rule: FiringRule): boolean {
    if (rule.kind === 'member') return true
    const key = `${components.arrayName}\n${rule.rule}`
    let best: string | undefined
    let bestScore = -1
    for (const member of components.aliveMembers()) {
      const score = holderScore(key, member)
      if (score > bestScore || (score === bestScore && member < (best ?? ''))) {
        best = member
        bestScore = score
      }
    }
    return best === components.selfPeerId
  }

  function toAlertmanager(a: Active, endsAt: number) {
    if (alertmanagers.length === 0) return
    const body = JSON.stringify([
      {
        labels: a.labels,
        annotations: {
          summary:
            a.rule.kind === 'member'
              ? `rule ${a.rule.rule} makes ${components.memberName} ${a.rule.state}`
              : `rule ${a.rule.rule} makes the array ${a.rule.state}`,
          description: a.rule.description,
          ...(a.rule.value === undefined ? {} : { value: String(a.rule.value) }),
        },
        startsAt: new Date(a.startsAt).toISOString(),
        endsAt: new Date(endsAt).toISOString(),
      },
    ])
    const scope = a.rule.kind
    // An alert still active whose send failed goes again at the next look,
    // not a whole resend interval later: Alertmanager may not have it at all
    // (a new alert, or one this member has just taken over from another).
    const failed = () => {
      if (active.get(keyOf(a.rule)) === a) a.sentAt = Number.NEGATIVE_INFINITY
    }
    for (const am of alertmanagers) am.push({ body, scope, failed })
  }

  function toWebhooks(a: Active, status: 'firing' | 'resolved', at: number) {
    if (webhooks.length === 0) return
    const body = JSON.stringify({
      version: 1,
      status,
      array: components.arrayName,
      member: components.memberName,
      labels: a.labels,
      rule: a.rule.rule,
      state: a.rule.state,
      description: a.rule.description,
      ...(a.rule.value === undefined ? {} : { value: a.rule.value }),
      startsAt: new Date(a.startsAt).toISOString(),
      ...(status === 'resolved' ? { endsAt: new Date(at).toISOString() } : {}),
      at: new Date(at).toISOString(),
    })
    for (const hook of webhooks) hook.push({ body, scope: a.rule.kind })
  }

  function update() {
    if (stopping.signal.aborted) return
    if (alertmanagers.length === 0 && webhooks.length === 0) return
    const now = clock()
    const firing = components.firing()
    const seen = new Set<string>()
    for (const rule of firing) {
      const key = keyOf(rule)
      seen.add(key)
      if (!mine(rule)) {
        // Another member sends it now: let go without resolving it.
        active.delete(key)
        continue
      }
      const known = active.get(key)
      if (known === undefined) {
        const a: Active = { rule, labels: labelsOf(rule), startsAt: now, sentAt: now }
        active.set(key, a)
        toAlertmanager(a, now + 4 * resendMs)
        toWebhooks(a, 'firing', now)
        continue
      }
      known.rule = rule
      if (now - known.sentAt >= resendMs) {
        known.sentAt = now
        toAlertmanager(known, now + 4 * resendMs)
      }
    }
    for (const [key, a] of active) {
      if (seen.has(key)) continue
      active.delete(key)
      toAlertmanager(a, now)
      toWebhooks(a, 'resolved', now)
    }
  }

  let timer: NodeJS.Timeout | undefined
  return {
    update,
    counts() {
      return [...tally].map(([key, n]) => {
        const [kind, scope, outcome] = key.split('\n') as [
          'alertmanager' | 'webhook',
          'member' | 'array',
          NotificationOutcome,
        ]
        return { kind, scope, outcome, count: n }
      })
    },
    start() {
      if (alertmanagers.length === 0 && webhooks.length === 0) return
      timer = setInterval(update, Math.max(1000, Math.floor(resendMs / 4)))
      timer.unref()
    },
    async stop() {
      clearInterval(timer)
      stopping.abort()
      await Promise.all([...alertmanagers, ...webhooks].map((t) => t.idle()))
    },
  }
}
