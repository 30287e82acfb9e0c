// POST /v1/backup: a consistent copy of this member's store and identity
// key, streamed (node/store/backup.ts has the format and why it is a stream
// rather than RocksDB's checkpoint). Admin scope: the copy holds every event
// and the member's private key.
//
// Why the member streams and the client writes: `chorus backup` runs where
// the operator is, often not on the member's server, and a member that
// wrote to a path its client names would be a member that writes anywhere
// its user can (a systemd unit rightly forbids most of them). So the member
// only reads, through one iterator (an implicit snapshot), and the CLI
// writes DIR on its own disk, to be started from with `--data-dir DIR` there
// or copied where the member runs.
//
// One backup at a time per member (409 backup_running): each pins the files
// and memtables its snapshot reads until it ends. Its frames in flight are
// held from the requests' share of the memory budget, as pages' are.

import { createRoute } from '@hono/zod-openapi'
import { BusyError, ConflictError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { MemoryGate } from '../memory.ts'
import { BACKUP_MEDIA_TYPE, type BackupSource, backupStream } from '../store/backup.ts'
import { SNAPSHOT_BATCH_BYTES } from '../store/event-log.ts'
import { createRoutes, errorResponse } from './errors.ts'

export interface BackupRoutesComponents {
  /**
   * Takes a snapshot of the store now and returns it with the files a
   * backup carries; undefined where the member takes no backups (an app
   * built for a test of other routes).
   */
  backup?: () => Promise<BackupSource>
  /** The requests' share of the memory budget. Default: no limit. */
  requestMemory?: MemoryGate
  logger: Logger
}

/** Held from the requests' share while a backup streams: two batches in flight and their frames. */
export const BACKUP_MEMORY_BYTES = 4 * SNAPSHOT_BATCH_BYTES

export function createBackupRoutes(components: BackupRoutesComponents) {
  const app = createRoutes()
  const { backup, requestMemory, logger } = components
  if (backup === undefined) return app
  let running = false
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/backup',
      summary:
        "A consistent copy of this member's store and identity key, as of the request, streamed (admin)",
      description:
        'The body is the chorus backup stream (version 1): records of one RocksDB snapshot in key order, the identity key, and an end frame with counts and a SHA-256. `chorus backup --out DIR` writes it as a data dir.',
      responses: {
        200: {
          content: { [BACKUP_MEDIA_TYPE]: { schema: { type: 'string', format: 'binary' } } },
          description: 'The backup stream',
        },
        409: errorResponse('A backup of this member is already under way'),
        503: errorResponse('Over the memory budget, or the store is closed'),
      },
    }),
    async (c) => {
      if (running)
        throw new ConflictError(
          'a backup of this member is already under way; wait for it to end',
          'backup_running',
        )
      if (requestMemory !== undefined && !requestMemory.tryTake(BACKUP_MEMORY_BYTES))
        throw new BusyError(
          "this member's requests in flight hold their whole share of its memory budget; retry in 1s",
          1,
        )
      running = true
      let source: BackupSource
      try {
        source = await backup()
      } catch (err) {
        running = false
        requestMemory?.give(BACKUP_MEMORY_BYTES)
        throw err
      }
      const started = performance.now()
      logger.info({ lastSeq: source.header.lastSeq }, 'backup started')
      const body = backupStream(source, {
        finish(outcome, end) {
          running = false
          requestMemory?.give(BACKUP_MEMORY_BYTES)
          const ms = Math.round(performance.now() - started)
          if (outcome === 'done') logger.info({ ...end, ms }, 'backup sent')
          else logger.warn({ outcome, ms }, 'backup ended before it was complete')
        },
      })
      return c.body(body, 200, {
        'content-type': BACKUP_MEDIA_TYPE,
        'cache-control': 'no-store',
      }) as never
    },
  )
  return app
}
