// The slice request: what a coordinator asks one member for, and what the
// member says when its answer is complete. These are the messages of
// `/chorus/slice/1`; until the mesh exists the coordinator hands them to its
// own member by a direct call, through the same handler peers will use.

/** A bound on ids, exclusive unless `inclusive`. */
export interface IdBound {
  /** 16 id bytes. */
  id: Uint8Array
  inclusive: boolean
}

export interface SliceRequest {
  /** Lower end of the period over `ts`, ms since the epoch, inclusive. */
  fromMs: number
  /** Upper end of the period over `ts`, ms since the epoch, exclusive. */
  toMs: number
  /** Only events with ids past this bound (in id order), e.g. from `after=<id>`. */
  lower?: IdBound
  /** Only events with ids before this bound (in id order), e.g. from `before=<id>`. */
  upper?: IdBound
  /** Continue strictly past this id in scan direction (inclusive if said): a cursor's position. */
  position?: IdBound
  /** Scan from the newest end of the range down. */
  reverse: boolean
  /** Exact types, or prefixes written `http.*`; empty: every type. */
  types: readonly string[]
  /** Minimum severity rank (0 debug … 4 critical). */
  minSeverity: number
  /** Case-insensitive substring of `message`. */
  text?: string
  /** The member's high-water mark for this result set: events with a larger seq are not part of it. */
  hwm?: number
  /** Most events to answer with. */
  limit: number
  /**
   * Events the member may send before it waits for a grant of more (flow
   * control: the coordinator reads only what its merge needs). Default: limit.
   */
  window?: number
}

export interface SliceTrailer {
  /** The high-water mark that was applied (the member's newest seq when none was given). */
  hwm: number
  /** How many stored entries were examined. */
  scanned: number
  /** True when more matching events exist past the last one sent. */
  more: boolean
}

/** Largest `limit` of one slice request: the page limit. */
export const MAX_SLICE_LIMIT = 10_000

/**
 * A member's answer to a slice request: its high-water mark, known before
 * the first event, then batches of events in scan order, then the trailer.
 */
export interface SliceAnswer<E> {
  hwm: number
  /**
   * Batches in scan order, then the trailer. Calling `next('peek')` asks only
   * whether more events exist: a member waiting for a grant then answers with
   * an empty batch and `waiting()` turns true, instead of being granted more.
   */
  batches: AsyncGenerator<E[], SliceTrailer, 'peek' | undefined>
  /** True when the member has paused with more matching events in hand. */
  waiting?: () => boolean
}

/** A rollup request: one member's buckets of a period, folded into steps and groups. */
export interface RollupRequest {
  /** Start of the period, ms since the epoch, inclusive (a multiple of stepMs). */
  fromMs: number
  /** End of the period, exclusive (a multiple of stepMs). */
  toMs: number
  /** Index of the stored resolution to read (0: 10 s, 1: 1 min, 2: 1 h). */
  resolution: number
  /** Width of the answer's buckets, ms: a multiple of the resolution. */
  stepMs: number
  /** Exact types or `prefix.*`; empty: all. */
  types: readonly string[]
  minSeverity: number
  byType: boolean
  bySeverity: boolean
}

/** One series of a rollup answer: a group's buckets, each an encoded bucket (node/store/rollup.ts). */
export interface RollupSeries {
  type?: string
  severity?: number
  buckets: Array<{ t: number; bucket: Uint8Array }>
}

/**
 * Most cells of one rollup answer: series × steps × max(1, quantiles), and
 * most buckets one member's rollup answer may hold. About 12 MB of JSON at
 * most, built in well under a second: a day at 1 min steps for 69 series, or
 * an hour at 10 s steps with 10 quantiles for 27.
 */
export const MAX_ROLLUP_CELLS = 100_000
/**
 * Most sketch bins (in memory) a coordinator takes from one member's rollup
 * answer: 4 Mi bins, about 32 MB. A sketch's dense stores span its smallest
 * to largest bin, so a few bytes on the wire can cost kilobytes decoded.
 */
export const MAX_ROLLUP_ANSWER_BINS = 4 * 1024 * 1024
