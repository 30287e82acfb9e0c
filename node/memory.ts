// The member's memory budget (--memory-budget): how it is divided between
// the JS heap, RocksDB and the requests in flight, and the gate that keeps
// the requests within their share. The division is pure arithmetic here;
// cli.ts puts the heap's part in force (V8 flags, at start), the store
// opens RocksDB with its part, and the HTTP layer holds the requests' part
// through a MemoryGate.

const MiB = 1024 * 1024

/** Default budget: 128 MiB. */
export const DEFAULT_MEMORY_BUDGET = 128 * MiB
/**
 * Smallest budget a member starts with: below it the parts would not hold
 * a started member (its heap alone holds about 35 MiB of code and tables)
 * beside one full request.
 */
export const MIN_MEMORY_BUDGET = 96 * MiB

export interface MemoryPlan {
  /** The whole budget, bytes. */
  budget: number
  /** V8's old generation limit, MiB (--max-old-space-size). */
  heapOldMiB: number
  /** V8's semi-space size, MiB (--max-semi-space-size): the young generation is about three of them. */
  heapSemiMiB: number
  /** RocksDB's block cache, which also holds table readers' index and filter blocks, bytes. */
  blockCacheBytes: number
  /** RocksDB's memtables (the binding's memtableMemoryBudget), bytes. */
  memtableBytes: number
  /** Request bodies being parsed, events waiting for group commit and pages being rendered, bytes. */
  requestBytes: number
}

/**
 * Divides `budget` bytes. The shares: half to the heap's old generation (at
 * least 48 MiB), 1/16 to the block cache, 1/8 to memtables and 1/8 to
 * requests (counted inside the heap's share, where they live). The old
 * generation's limit is a ceiling, not what the heap takes: a started
 * member's code and tables hold about 35 MiB, requests at most their share
 * more, and V8 needs room above what is live or it collects without pause
 * (measured: an export through a 56 MiB limit ran at half the rate it ran
 * through 64). What no option sets is the runtime itself: Node's and
 * RocksDB's code, V8's young generation and native buffers.
 */
export function planMemory(budget: number): MemoryPlan {
  const mib = budget / MiB
  return {
    budget,
    heapOldMiB: Math.max(48, Math.floor(mib / 2)),
    // Short-lived request objects die young, if the young generation holds
    // a few requests' worth: at 4 MiB semi-spaces ingest ran 20% slower
    // than at 8 (objects promoted before they died); V8 shrinks it when idle.
    heapSemiMiB: mib >= 512 ? 16 : mib >= 128 ? 8 : 4,
    blockCacheBytes: Math.floor(budget / 16),
    memtableBytes: Math.floor(budget / 8),
    requestBytes: Math.floor(budget / 8),
  }
}

/** The V8 flags that put the heap's part of a plan in force. */
export function heapFlags(plan: MemoryPlan): string[] {
  return [`--max-old-space-size=${plan.heapOldMiB}`, `--max-semi-space-size=${plan.heapSemiMiB}`]
}

/**
 * How much heap a request body takes while it is parsed and its events wait
 * for group commit, per byte of body: the text, the parsed objects and the
 * encoded values live at once (measured about 1.9 for NDJSON of typical events).
 */
export const BODY_HEAP_FACTOR = 2
/** Heap a decoded event held by a page or an export takes, bytes (object, strings and attrs). */
export const EVENT_HEAP_BYTES = 1024

/** Parses a size such as 128MiB, 128M, 1GiB or 134217728 (bytes); units are binary. */
export function parseBytes(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(text.trim())
  if (match === null) return undefined
  const unit = (match[2] ?? 'b').toLowerCase()[0] as 'b' | 'k' | 'm' | 'g'
  const bytes = Number(match[1]) * { b: 1, k: 1024, m: MiB, g: 1024 * MiB }[unit]
  return Number.isFinite(bytes) ? Math.floor(bytes) : undefined
}

/** Formats bytes as the largest binary unit that keeps them whole-ish: 128MiB, 1.5GiB. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * MiB) return `${+(bytes / (1024 * MiB)).toFixed(2)}GiB`
  if (bytes >= MiB) return `${+(bytes / MiB).toFixed(2)}MiB`
  return `${bytes}B`
}

/** Bytes held by requests in flight, within a fixed share; see createMemoryGate. */
export interface MemoryGate {
  /** Bytes the share holds. */
  readonly limit: number
  /** Bytes held now. */
  readonly used: number
  /** Holds `bytes` if they fit now; false (and nothing held) if not. */
  tryTake(bytes: number): boolean
  /**
   * Holds `bytes` once they fit, waiting in order of arrival, or rejects
   * when `signal` aborts first. More than the whole share is clamped to it,
   * so a request that can never fit waits for the share to empty rather
   * than forever.
   */
  take(bytes: number, signal: AbortSignal): Promise<void>
  /** Gives back bytes taken. */
  give(bytes: number): void
}

/**
 * A byte semaphore: ingest takes its body's share with tryTake and is
 * answered 503 when it does not fit; queries wait with take. Waiters are
 * served in order, so a large query is not starved by small ones.
 */
export function createMemoryGate(limit: number): MemoryGate {
  let used = 0
  const waiters: Array<{ bytes: number; wake: () => void }> = []
  const clamp = (bytes: number) => Math.min(Math.max(0, bytes), limit)
  const wakeWaiters = () => {
    for (;;) {
      const first = waiters[0]
      if (first === undefined || used + first.bytes > limit) return
      waiters.shift()
      used += first.bytes
      first.wake()
    }
  }
  return {
    limit,
    get used() {
      return used
    },
    tryTake(bytes) {
      const n = clamp(bytes)
      if (waiters.length > 0 || used + n > limit) return false
      used += n
      return true
    },
    take(bytes, signal) {
      const n = clamp(bytes)
      if (waiters.length === 0 && used + n <= limit) {
        used += n
        return Promise.resolve()
      }
      return new Promise<void>((resolve, reject) => {
        if (signal.aborted) {
          reject(signal.reason)
          return
        }
        const waiter = {
          bytes: n,
          wake: () => {
            signal.removeEventListener('abort', onAbort)
            resolve()
          },
        }
        const onAbort = () => {
          const at = waiters.indexOf(waiter)
          if (at >= 0) waiters.splice(at, 1)
          wakeWaiters()
          reject(signal.reason)
        }
        signal.addEventListener('abort', onAbort, { once: true })
        waiters.push(waiter)
      })
    },
    give(bytes) {
      used = Math.max(0, used - clamp(bytes))
      wakeWaiters()
    },
  }
}
