// A bad rollup record must not break a member: values that would overflow a
// sum, and buckets that cannot be decoded, at open and in queries.

import { RocksLevel } from '@nxtedition/rocksdb'
import { Packr } from 'msgpackr'
import { afterEach, describe, expect, it } from 'vitest'
import { memberTag } from '../../node/event/id.ts'
import { minuteByType } from '../../node/query/array-view.ts'
import { createRollupHandler } from '../../node/query/rollups.ts'
import { openEventLog } from '../../node/store/event-log.ts'
import { rollupKey } from '../../node/store/keys.ts'
import * as rollup from '../../node/store/rollup.ts'
import { removeTempDirs, tempDir } from '../helpers.ts'

afterEach(removeTempDirs)

const TAG = memberTag('member-r')
const T0 = 1_800_000_000_000
/** The minute holding T0, one series per type. */
const MINUTE_BY_TYPE = minuteByType(T0 - (T0 % 60_000))

/** A bucket as a member before the value bound wrote it: two values of 1.79e308, sum Infinity. */
function overflowedBucket(): Uint8Array {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true })
  return packr.pack([
    2,
    2,
    Number.POSITIVE_INFINITY,
    1.79e308,
    1.79e308,
    1.79e308,
    '',
    0,
    [],
    [],
    [],
    [],
  ])
}

describe('rollup sums', () => {
  it('saturate at ±Number.MAX_VALUE instead of overflowing, so merged buckets still encode and decode', () => {
    const a = rollup.emptyBucket()
    rollup.addEvent(a, '1', 1.79e308)
    rollup.addEvent(a, '2', 1.79e308)
    expect(a.sum).toBe(Number.MAX_VALUE)
    const b = rollup.copyBucket(a)
    rollup.mergeBucket(b, a)
    const n = rollup.emptyBucket()
    rollup.addEvent(n, '3', -1.79e308)
    rollup.addEvent(n, '4', -1.79e308)
    rollup.mergeBucket(n, n)
    expect(n.sum).toBe(-Number.MAX_VALUE)
    const back = rollup.decodeBucket(rollup.encodeBucket(b))
    expect(back.sum).toBe(Number.MAX_VALUE)
    expect(back.count).toBe(4)
  })
})

describe('a store holding undecodable rollup buckets', () => {
  it('opens, answers rollups from the good buckets, counts the bad ones, and takes new events in the bad slot', async () => {
    const dir = await tempDir()
    const now = T0
    const log = await openEventLog({ dir, tag: TAG, clock: () => now })
    log.append([{ events: [{ type: 'app.good', value: 2 }] }])
    await log.close()
    // What an unbounded member wrote (sum Infinity), and plain damage, in the
    // open bucket of every resolution: the store reads these at start.
    const db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    const batch = db.batch()
    for (let r = 0; r < 3; r++) {
      const res = [10_000, 60_000, 3_600_000][r] as number
      batch.put(rollupKey(r, T0 - (T0 % res), 'app.bad', 2), Buffer.from(overflowedBucket()))
      batch.put(rollupKey(r, T0 - (T0 % res), 'app.damaged', 2), Buffer.from([0xc1, 0xff]))
    }
    await batch.write({ sync: true })
    await db.close()

    const reopened = await openEventLog({ dir, tag: TAG, clock: () => now })
    try {
      expect(reopened.corruptBuckets).toBe(6)
      const rollup = createRollupHandler({ log: reopened })
      const series = await rollup(MINUTE_BY_TYPE)
      const byType = Object.fromEntries(series.map((s) => [s.type, s.buckets[0]?.bucket.sum]))
      expect(byType).toEqual({ 'app.good': 2 })
      expect(reopened.corruptBuckets).toBe(8)
      // The next event of the damaged slot writes a fresh, decodable bucket.
      reopened.append([{ events: [{ type: 'app.bad', severity: 'warn', value: 5 }] }])
      const again = await rollup({ ...MINUTE_BY_TYPE, types: ['app.bad'] })
      expect(again[0]?.buckets[0]?.bucket.sum).toBe(5)
    } finally {
      await reopened.close()
    }
  })
})
