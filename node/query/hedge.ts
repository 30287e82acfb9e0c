// Hedged slices: a member that has not begun its answer within the hedge
// delay (the 95th percentile of recent answers' times, never above half the
// deadline) is not waited for alone. A holder of its events is asked too,
// and whichever answers first serves the member's part of the page; the
// other is cancelled. A member frozen by a busy machine (or SIGSTOP) then
// costs a page the delay, not the deadline. A member that fails at once
// (unreachable) is answered for by the holder without waiting the delay.

import type { SliceAnswer, SliceRequest, SliceTrailer } from '../../protocol/index.ts'
import type { ChorusEvent } from '../event/event.ts'
import type { SliceTarget } from './coordinator.ts'
import type { Call } from './fan-out.ts'

/** Answer times kept for the percentile. */
const SAMPLES = 256
/** The delay before enough answers are known, ms. */
const FIRST_DELAY_MS = 100
/** The shortest delay, ms: below it a hedge would double the work of healthy members for little. */
const MIN_DELAY_MS = 20
/** Answers needed before the percentile is trusted. */
const MIN_SAMPLES = 20

export interface Hedging {
  /** How long to wait for a member before asking a holder too, ms. */
  delayMs(timeoutMs: number): number
  /** A member's answer began after `ms`. */
  answered(ms: number): void
}

export function createHedging(): Hedging {
  const times: number[] = []
  let next = 0
  let p95 = FIRST_DELAY_MS
  let stale = false
  return {
    delayMs(timeoutMs) {
      if (stale && times.length >= MIN_SAMPLES) {
        const sorted = [...times].sort((a, b) => a - b)
        p95 = sorted[Math.floor(sorted.length * 0.95)] as number
        stale = false
      }
      return Math.min(timeoutMs / 2, Math.max(MIN_DELAY_MS, p95))
    },
    answered(ms) {
      if (times.length < SAMPLES) times.push(ms)
      else times[next] = ms
      next = (next + 1) % SAMPLES
      stale = true
    },
  }
}

type Outcome = { ok: true; answer: SliceAnswer<ChorusEvent> } | { ok: false; err: unknown }

const settle = (p: Promise<SliceAnswer<ChorusEvent>>): Promise<Outcome> =>
  p.then(
    (answer) => ({ ok: true, answer }),
    (err: unknown) => ({ ok: false, err }),
  )

/** Closes an answer that lost the race, whenever it begins. */
function discard(p: Promise<SliceAnswer<ChorusEvent>>, stop: AbortController) {
  stop.abort(new Error('the other copy answered first'))
  p.then((a) => a.batches.return(undefined as unknown as SliceTrailer)).catch(() => {})
}

/**
 * Asks `call`'s member for its slice and, past the hedge delay (or at once
 * if it fails), its holder too (`target.hedge`). The member's answer is
 * taken whenever it begins first; the holder's is taken first only when
 * the holder holds every event of the member's it has heard of
 * (`behind` 0), else only if the member fails. When the holder's is taken,
 * the row names it (`servedBy`), its mark, and what it lacks (`missing`).
 * Rejects with the member's own failure when both fail.
 */
export async function hedgedSlice(
  call: Call<SliceTarget>,
  request: SliceRequest,
  hedging: Hedging,
  delayMs: number,
): Promise<SliceAnswer<ChorusEvent>> {
  const { target } = call
  const started = performance.now()
  const ownerStop = new AbortController()
  const owner = target.slice(request, { signal: AbortSignal.any([call.signal, ownerStop.signal]) })
  const ownerOutcome = settle(owner)
  void ownerOutcome.then((o) => {
    if (o.ok) hedging.answered(performance.now() - started)
  })
  const hedge = target.hedge
  if (hedge === undefined) return owner
  let timer: ReturnType<typeof setTimeout> | undefined
  const waited = await Promise.race([
    ownerOutcome,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), delayMs)
    }),
  ])
  clearTimeout(timer)
  if (waited?.ok === true) return waited.answer
  if (call.signal.aborted) return owner
  const holderStop = new AbortController()
  const holder = hedge(request, { signal: AbortSignal.any([call.signal, holderStop.signal]) })
  const holderOutcome = settle(holder)
  const winner = await new Promise<'owner' | 'holder' | undefined>((resolve) => {
    let ownerDone: Outcome | undefined = waited
    let holderDone: Outcome | undefined
    const decide = () => {
      if (ownerDone?.ok === true) return resolve('owner')
      if (holderDone?.ok === true && (holderDone.answer.behind === 0 || ownerDone !== undefined))
        return resolve('holder')
      if (ownerDone !== undefined && holderDone !== undefined) resolve(undefined)
    }
    if (ownerDone === undefined)
      void ownerOutcome.then((o) => {
        ownerDone = o
        decide()
      })
    void holderOutcome.then((o) => {
      holderDone = o
      decide()
    })
  })
  if (winner === 'owner') {
    discard(holder, holderStop)
    return owner
  }
  if (winner === undefined) {
    // Both failed: the member's own failure makes its row.
    const own = await ownerOutcome
    throw own.ok ? new Error('unreachable') : own.err
  }
  discard(owner, ownerStop)
  const answer = await holder
  call.row.servedBy = target.hedgeBy ?? 'a holder'
  call.row.heldSeq = answer.hwm
  const missing = answer.behind ?? Math.max(0, (target.seq ?? 0) - answer.hwm)
  if (missing > 0) call.row.missing = missing
  return answer
}
