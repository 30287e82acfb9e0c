// Typed errors shared by every part of a member. Code checks `name`, never
// message text; the HTTP layer maps names to status codes in one place
// (node/http/errors.ts) and the CLI prints `message` as one line.

/** One problem with one field of a request, as reported in `error.details`. */
export interface FieldProblem {
  /** Dotted path of the field, e.g. `events[3].attrs.region` or `limit`. */
  field: string
  /** The rule that was broken, in words. */
  message: string
}

export abstract class ChorusError extends Error {
  abstract override readonly name: string
  /** Stable machine-readable code for API answers, snake_case. */
  abstract readonly code: string
  readonly details: FieldProblem[]
  constructor(message: string, details: FieldProblem[] = [], options?: ErrorOptions) {
    super(message, options)
    this.details = details
  }
}

/** A request or an event failed validation; nothing was stored. */
export class InvalidInputError extends ChorusError {
  override readonly name = 'InvalidInputError'
  readonly code: string
  constructor(message: string, details: FieldProblem[] = [], code = 'invalid_input') {
    super(message, details)
    this.code = code
  }
}

/** A request exceeded a configured size or count limit; nothing was stored. */
export class LimitExceededError extends ChorusError {
  override readonly name = 'LimitExceededError'
  readonly code = 'limit_exceeded'
}

/** The body's media type is not one that ingest understands. */
export class UnsupportedMediaTypeError extends ChorusError {
  override readonly name = 'UnsupportedMediaTypeError'
  readonly code = 'unsupported_media_type'
}

/** No event with this id exists on its owner. */
export class NotFoundError extends ChorusError {
  override readonly name = 'NotFoundError'
  readonly code = 'not_found'
}

/** An Idempotency-Key was reused with a different body. */
export class ConflictError extends ChorusError {
  override readonly name = 'ConflictError'
  readonly code: string
  constructor(message: string, code = 'conflict') {
    super(message)
    this.code = code
  }
}

/** The disk is full: the write was refused and nothing of it was acknowledged. */
export class StorageFullError extends ChorusError {
  override readonly name = 'StorageFullError'
  readonly code = 'insufficient_storage'
}

/** The store cannot take writes (closing, or failed); nothing was acknowledged. */
export class StoreUnavailableError extends ChorusError {
  override readonly name = 'StoreUnavailableError'
  readonly code = 'store_unavailable'
}

/**
 * The requests in flight hold the whole of their share of the memory
 * budget: nothing was stored or asked; the client should retry after
 * `retryAfterS` seconds (503 with Retry-After).
 */
export class BusyError extends ChorusError {
  override readonly name = 'BusyError'
  readonly code = 'over_memory_budget'
  readonly retryAfterS: number
  constructor(message: string, retryAfterS = 1) {
    super(message, [{ field: 'request', message: 'over the memory budget; retry' }])
    this.retryAfterS = retryAfterS
  }
}

/**
 * The member is learning its newest `seq` from the holders of its events
 * (its data dir was replaced): it takes no event until it knows, so that
 * no `seq` is used twice; the client should retry after `retryAfterS`.
 */
export class RestoringError extends ChorusError {
  override readonly name = 'RestoringError'
  readonly code = 'restoring'
  readonly retryAfterS: number
  constructor(message: string, retryAfterS = 1) {
    super(message)
    this.retryAfterS = retryAfterS
  }
}

/** The owner of an event could not be asked. */
export class OwnerUnreachableError extends ChorusError {
  override readonly name = 'OwnerUnreachableError'
  readonly code = 'owner_unreachable'
}

/** Configuration is invalid; `details` lists every problem found at once. */
export class ConfigError extends ChorusError {
  override readonly name = 'ConfigError'
  readonly code = 'config_error'
}

/** A change of an array-wide setting without the admin approval this array requires, or with a bad one. */
export class ApprovalError extends ChorusError {
  override readonly name = 'ApprovalError'
  readonly code: string
  constructor(message: string, code: 'approval_required' | 'approval_invalid') {
    super(message)
    this.code = code
  }
}

/** The data dir is locked by another process, or has a format this build cannot read. */
export class DataDirError extends ChorusError {
  override readonly name = 'DataDirError'
  readonly code = 'data_dir_error'
}

export type KnownError =
  | InvalidInputError
  | LimitExceededError
  | UnsupportedMediaTypeError
  | NotFoundError
  | ConflictError
  | StorageFullError
  | StoreUnavailableError
  | OwnerUnreachableError
  | BusyError
  | RestoringError
  | ConfigError
  | ApprovalError
  | DataDirError

const KNOWN = new Set([
  'InvalidInputError',
  'LimitExceededError',
  'UnsupportedMediaTypeError',
  'NotFoundError',
  'ConflictError',
  'StorageFullError',
  'StoreUnavailableError',
  'OwnerUnreachableError',
  'BusyError',
  'RestoringError',
  'ConfigError',
  'ApprovalError',
  'DataDirError',
])

export function isKnownError(err: unknown): err is KnownError {
  return err instanceof Error && KNOWN.has(err.name)
}
