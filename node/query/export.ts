// A bulk export: the whole of a result set, streamed. It is the set's pages
// read one after another through the coordinator (so its events are those
// of paging the set with cursors, in the same order, under the same
// high-water marks), each page handed on as it is merged; what ends the
// export is one summary of every page's member rows. A member that fails a
// page is not asked again for the rest of the export: its row keeps the
// failure, and the export is partial.

import type { ChorusEvent } from '../event/event.ts'
import type { Coordinator, QueryInput } from './coordinator.ts'
import type { EventQuery } from './cursor.ts'
import { decodeCursor } from './cursor.ts'
import type { MemberRow } from './fan-out.ts'

/** Events per page of an export: the largest page. */
export const EXPORT_PAGE_EVENTS = 10_000

/** The last line of an export. */
export interface ExportEnd {
  count: number
  lastId: string | null
  /** One row per member, its count summed over the pages and its first failure kept. */
  members: MemberRow[]
  partial: boolean
}

/**
 * Yields the events of `query` (its limit is ignored) in chunks, page after
 * page, and returns the summary. Returned early, it closes the page being
 * read, which cancels every member's scan.
 */
export async function* exportEvents(
  coordinator: Coordinator,
  query: EventQuery,
  options: { timeoutMs: number; signal?: AbortSignal },
): AsyncGenerator<ChorusEvent[], ExportEnd, undefined> {
  const rows = new Map<string, MemberRow>()
  const skip = new Map<string, MemberRow>()
  let count = 0
  let lastId: string | null = null
  let input: QueryInput = {
    query: { ...query, limit: EXPORT_PAGE_EVENTS },
    timeoutMs: options.timeoutMs,
  }
  const pageOptions = options.signal === undefined ? {} : { signal: options.signal }
  for (;;) {
    const page = await coordinator.open({ ...input, skip }, pageOptions)
    try {
      for await (const chunk of page.events) {
        if (chunk.length === 0) continue
        count += chunk.length
        lastId = (chunk[chunk.length - 1] as ChorusEvent).id
        yield chunk
      }
    } finally {
      await page.close()
    }
    const trailer = page.trailer()
    for (const row of trailer.members) {
      const seen = rows.get(row.member)
      if (seen === undefined) {
        rows.set(row.member, { ...row })
      } else {
        seen.count += row.count
        seen.ms += row.ms
        if (seen.status === 'ok' && row.status !== 'ok') {
          seen.status = row.status
          if (row.error !== undefined) seen.error = row.error
        }
      }
      if (row.status !== 'ok' && !skip.has(row.member)) {
        // Left out of the pages that follow: the row above already says why.
        skip.set(row.member, { ...row, count: 0, ms: 0 })
      }
    }
    if (trailer.next === null) break
    input = { query: input.query, cursor: decodeCursor(trailer.next), timeoutMs: options.timeoutMs }
  }
  const members = [...rows.values()]
  return { count, lastId, members, partial: members.some((r) => r.status !== 'ok') }
}
