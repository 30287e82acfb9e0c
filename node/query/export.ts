// A bulk export: the whole of a result set, streamed. It is one merge of
// every member's slice read to its end (the coordinator asks a member again
// past its last event whenever its answer stops at the protocol's limit),
// under the high-water marks of the members' first answers, so its events
// are those of paging the set with cursors, in the same order. What ends
// the export is the summary of the member rows. A member that fails is not
// asked again: its row keeps the failure, and the export is partial.

import type { ChorusEvent } from '../event/event.ts'
import type { Coordinator } from './coordinator.ts'
import type { EventQuery } from './cursor.ts'
import type { MemberRow } from './fan-out.ts'

/** The last line of an export. */
export interface ExportEnd {
  count: number
  lastId: string | null
  /** One row per member, with the events it gave and how long it was asked. */
  members: MemberRow[]
  partial: boolean
}

/**
 * Yields the events of `query` (its limit is ignored) in chunks, and
 * returns the summary. Returned early, it closes the merge, which cancels
 * every member's scan.
 */
export async function* exportEvents(
  coordinator: Coordinator,
  query: EventQuery,
  options: { timeoutMs: number; signal?: AbortSignal },
): AsyncGenerator<ChorusEvent[], ExportEnd, undefined> {
  const set = await coordinator.open(
    { query, timeoutMs: options.timeoutMs, whole: true },
    options.signal === undefined ? {} : { signal: options.signal },
  )
  let count = 0
  try {
    for await (const chunk of set.events) {
      count += chunk.length
      yield chunk
    }
  } finally {
    await set.close()
  }
  const { lastId, members, partial } = set.trailer()
  return { count, lastId, members, partial }
}
