// Fan-out: how a coordinator asks members anything. One question to a set of
// members, each under the same per-member deadline and the caller's signal,
// every answer or failure turned into a member row in one way, and every row
// that is not `ok` counted in one place; as Serf's QueryResponse serves every
// query. Event pages stream their members' answers through `startCall`;
// rollups, lookups by id and the array's metrics collect whole answers
// through `collect`. Nothing here knows the network: a target is whatever
// answers, this member itself by a direct call included.

export type MemberStatus = 'ok' | 'timed_out' | 'unreachable' | 'error' | 'dead' | 'unsupported'

/** One member's part in an answer, as the HTTP API shows it. */
export interface MemberRow {
  member: string
  name: string
  status: MemberStatus
  /** Events, or buckets, it contributed. */
  count: number
  /** How long it took to answer, or to fail, ms. */
  ms: number
  /** A short reason, for `error` and `unreachable`. */
  error?: string
  /** In a tree fan-out, the name of the sub-coordinator that asked it. */
  via?: string
  /** The member could not be asked (it is dead): the name of the holder of its events that answered for it. */
  servedBy?: string
  /** Served by a holder: the newest seq of the member's that the holder has. */
  heldSeq?: number
  /** Served by a holder: how many events the member announced that the holder does not have yet. */
  missing?: number
}

/** A member as the fan-out sees it: who it is and what its table says of it. */
export interface FanOutTarget {
  peerId: string
  name: string
  /**
   * `dead` members are not asked and get a `dead` row; a member in
   * `conflict` (its name is taken) is not asked either and gets an `error`
   * row.
   */
  state: 'alive' | 'suspect' | 'dead' | 'conflict' | 'left'
  /** Set when a holder of the member's events answers for it: the holder's name. */
  servedBy?: string
}

/** The error name a client gives a member that does not speak the protocol's version. */
const UNSUPPORTED_PROTOCOL_ERROR = 'UnsupportedProtocolError'
/** Error names that mean the member could not be reached, or its stream broke. */
const UNREACHABLE_ERRORS = new Set(['UnreachableError', 'DialError', 'ConnectionClosedError'])

/** The row of a member that is not asked, or undefined when it is asked. */
export function notAskedRow(target: FanOutTarget): MemberRow | undefined {
  if (target.state === 'dead')
    return { member: target.peerId, name: target.name, status: 'dead', count: 0, ms: 0 }
  if (target.state === 'conflict') {
    return {
      member: target.peerId,
      name: target.name,
      status: 'error',
      count: 0,
      ms: 0,
      error: `name conflict: another member is called ${target.name}`,
    }
  }
  return undefined
}

/** Whether a member was asked for: no filter, or its name or peer id among them. */
export function matchesMembers(target: FanOutTarget, filter: readonly string[]): boolean {
  return filter.length === 0 || filter.includes(target.name) || filter.includes(target.peerId)
}

/** One member being asked: its row, and the signal that bounds what it may take. */
export interface Call<T extends FanOutTarget = FanOutTarget> {
  readonly target: T
  readonly row: MemberRow
  /** Aborts at the member's deadline, on the caller's signal, or on `cancel`. */
  readonly signal: AbortSignal
  /** Waits for `work`, or rejects as soon as the call's signal aborts (a member that ignores its signal cannot hold the answer). */
  race<R>(work: Promise<R>): Promise<R>
  /** The member has answered in full: its time goes in the row. */
  done(): void
  /** The member failed: its row says how (`timed_out`, `unsupported`, `unreachable` or `error`). */
  fail(err: unknown): void
  /** The caller needs nothing more of this member (a full page): stops it, and its time goes in the row. */
  cancel(reason: string): void
}

/**
 * Starts asking one member, under `timeoutMs` and the caller's `signal`.
 * The deadline counts the time spent waiting for the member: from the
 * start until the first `race` settles, then only during each later race.
 * A page or an export whose client reads slowly holds the merge between
 * races, and that time is not the member's.
 */
export function startCall<T extends FanOutTarget>(
  target: T,
  timeoutMs: number,
  parent?: AbortSignal,
  /**
   * `total`: `timeoutMs` bounds the sum of the waits (a page). `each`: it
   * bounds every wait alone (an export, which waits on a member thousands
   * of times and may take minutes in all).
   */
  waits: 'total' | 'each' = 'total',
): Call<T> {
  const started = performance.now()
  const deadline = new AbortController()
  let left = timeoutMs
  let since = started
  let timer: ReturnType<typeof setTimeout> | undefined
  let racing = 0
  const arm = () => {
    if (timer !== undefined || deadline.signal.aborted) return
    since = performance.now()
    timer = setTimeout(
      () =>
        deadline.abort(
          new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
        ),
      Math.max(0, left),
    )
    timer.unref()
  }
  const disarm = () => {
    if (timer === undefined) return
    clearTimeout(timer)
    timer = undefined
    if (waits === 'total') left -= performance.now() - since
  }
  arm()
  const cancel = new AbortController()
  const signals = [deadline.signal, cancel.signal]
  if (parent !== undefined) signals.push(parent)
  const signal = AbortSignal.any(signals)
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true })
  const row: MemberRow = { member: target.peerId, name: target.name, status: 'ok', count: 0, ms: 0 }
  if (target.servedBy !== undefined) row.servedBy = target.servedBy
  const elapsed = () => {
    row.ms = Math.round(performance.now() - started)
  }
  const settled = () => {
    racing--
    if (racing === 0) disarm()
  }
  // A call that is over aborts its signal: whatever still listens lets go
  // (a composite signal with listeners is held until it aborts), and the
  // member's stream, if still open, is closed.
  const end = (reason: string) => {
    if (!cancel.signal.aborted) cancel.abort(new Error(reason))
  }
  return {
    target,
    row,
    signal,
    race<R>(work: Promise<R>) {
      // A rejection after the race is lost must not go unhandled.
      work.catch(() => {})
      racing++
      arm()
      // Rejects a turn of the event loop after the signal aborts, so that
      // what the member had already sent by its deadline (an answer read
      // from a buffer resolves within microtasks) still counts as answered
      // in time; past the deadline already, what it had sent still gets its
      // turn. (Only an answer: a failure it had sent comes out of the client
      // as the deadline's reason, and the row says `timed_out`.) The
      // listener goes when the work settles: a call that lives for a whole
      // export races thousands of batches and must not keep one of them.
      return new Promise<R>((resolve, reject) => {
        const later = () => setImmediate(() => reject(signal.reason))
        if (signal.aborted) later()
        else signal.addEventListener('abort', later, { once: true })
        work.then(
          (value) => {
            signal.removeEventListener('abort', later)
            resolve(value)
          },
          (err: unknown) => {
            signal.removeEventListener('abort', later)
            reject(err)
          },
        )
      }).finally(settled)
    },
    done() {
      elapsed()
      disarm()
      end('answered')
    },
    fail(err) {
      elapsed()
      disarm()
      end('failed')
      if (deadline.signal.aborted) {
        row.status = 'timed_out'
        return
      }
      const name = err instanceof Error ? err.name : ''
      row.status =
        name === UNSUPPORTED_PROTOCOL_ERROR
          ? 'unsupported'
          : UNREACHABLE_ERRORS.has(name)
            ? 'unreachable'
            : 'error'
      row.error = err instanceof Error ? err.message : String(err)
    },
    cancel(reason) {
      elapsed()
      disarm()
      end(reason)
    },
  }
}

export interface CollectOptions {
  /** Per-member deadline, ms. */
  timeoutMs: number
  /** The caller's signal: the client went away, or the whole question was given up. */
  signal?: AbortSignal
}

/** What `collect` returns for one member: its row, and its answer or its failure. */
export interface Collected<T extends FanOutTarget, R> {
  target: T
  row: MemberRow
  answer?: R
  /** What the member failed with (the deadline's reason when it timed out). */
  failure?: unknown
}

/**
 * Asks every target at once with `ask` (members that are not asked get their
 * rows), and resolves when each has answered, failed or passed its
 * deadline. `count` gives the row's count from an answer; `take` sees each
 * answer as it arrives, so an answer can be merged and let go before the
 * others come in.
 */
export async function collect<T extends FanOutTarget, R>(
  targets: readonly T[],
  options: CollectOptions,
  ask: (target: T, signal: AbortSignal) => Promise<R>,
  { count, take }: { count?: (answer: R) => number; take?: (target: T, answer: R) => void } = {},
): Promise<Array<Collected<T, R>>> {
  return Promise.all(
    targets.map(async (target): Promise<Collected<T, R>> => {
      const row = notAskedRow(target)
      if (row !== undefined) return { target, row }
      const call = startCall(target, options.timeoutMs, options.signal)
      try {
        const answer = await call.race(ask(target, call.signal))
        call.done()
        if (count !== undefined) call.row.count = count(answer)
        take?.(target, answer)
        return { target, row: call.row, answer }
      } catch (err) {
        call.fail(err)
        return { target, row: call.row, failure: err }
      }
    }),
  )
}

/** Where the rows that are not `ok` are counted (the member's recorder). */
export interface RowRecorder {
  memberFailure(status: Exclude<MemberStatus, 'ok'>): void
}

/**
 * Counts the rows that are not `ok` (the coordinator's member failures), and
 * says whether the answer is partial: any such row, or a holder's that
 * answered for a member with less than it announced.
 */
export function recordRows(rows: readonly MemberRow[], recorder?: RowRecorder): boolean {
  let partial = false
  for (const row of rows) {
    // A holder that answered with less than the member announced leaves a gap.
    if (row.status === 'ok' && (row.missing ?? 0) === 0) continue
    partial = true
    if (row.status === 'ok') continue
    recorder?.memberFailure(row.status)
  }
  return partial
}
