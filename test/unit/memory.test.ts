// The memory budget's arithmetic and its gate: sizes as operators write
// them, the division, and the byte semaphore that holds requests in flight
// to their share (in order, clamped, and let go on abort).

import { describe, expect, it } from 'vitest'
import {
  createMemoryGate,
  formatBytes,
  heapFlags,
  parseBytes,
  planMemory,
} from '../../node/memory.ts'
import { createGroupHandler } from '../../node/query/coordinator.ts'

const MiB = 1024 * 1024

describe('sizes and the division', () => {
  it('reads binary sizes and refuses anything else', () => {
    expect(parseBytes('128MiB')).toBe(128 * MiB)
    expect(parseBytes('128M')).toBe(128 * MiB)
    expect(parseBytes('128mb')).toBe(128 * MiB)
    expect(parseBytes('1.5GiB')).toBe(1.5 * 1024 * MiB)
    expect(parseBytes('4096')).toBe(4096)
    expect(parseBytes('64KiB')).toBe(64 * 1024)
    for (const bad of ['', 'lots', '-1MiB', '12 parsecs', '1e9', 'MiB'])
      expect(parseBytes(bad)).toBe(undefined)
    expect(formatBytes(128 * MiB)).toBe('128MiB')
    expect(formatBytes(1536 * MiB)).toBe('1.5GiB')
  })

  it('gives each part its share and the heap flags that hold it', () => {
    const plan = planMemory(128 * MiB)
    expect(plan.blockCacheBytes + plan.memtableBytes + plan.requestBytes).toBe(40 * MiB)
    expect(heapFlags(plan)).toEqual(['--max-old-space-size=64', '--max-semi-space-size=8'])
    expect(heapFlags(planMemory(96 * MiB))).toEqual([
      '--max-old-space-size=48',
      '--max-semi-space-size=4',
    ])
  })
})

describe('the memory gate', () => {
  it('holds at most its limit, serves waiters in order, and lets go of an aborted one', async () => {
    const gate = createMemoryGate(100)
    expect(gate.tryTake(60)).toBe(true)
    expect(gate.tryTake(50)).toBe(false)
    const order: string[] = []
    const big = gate.take(80, AbortSignal.timeout(5000)).then(() => order.push('big'))
    const aborted = new AbortController()
    const gone = gate.take(10, aborted.signal)
    const small = gate.take(10, AbortSignal.timeout(5000)).then(() => order.push('small'))
    // A waiter ahead blocks tryTake too: a large query is not starved by small ones.
    expect(gate.tryTake(10)).toBe(false)
    aborted.abort(new Error('client gone'))
    await expect(gone).rejects.toThrow('client gone')
    gate.give(60)
    await Promise.all([big, small])
    expect(order).toEqual(['big', 'small'])
    expect(gate.used).toBe(90)
    // More than the whole share is clamped to it: it waits for the share to empty.
    const whole = gate.take(10_000, AbortSignal.timeout(5000))
    gate.give(90)
    await whole
    expect(gate.used).toBe(100)
  })

  it('has a sub-coordinator wait for room for its whole merged answer, and give up after its wait', async () => {
    const gate = createMemoryGate(64 * 1024)
    expect(gate.tryTake(64 * 1024)).toBe(true)
    const handler = createGroupHandler(() => [], gate, 50)
    const request = {
      slice: {
        fromMs: 0,
        toMs: 1,
        reverse: false,
        types: [],
        minSeverity: 0,
        limit: 10,
        window: 10,
      },
      members: [],
      deadlineMs: 100,
    }
    await expect(handler(request, { signal: new AbortController().signal })).rejects.toThrow()
    gate.give(64 * 1024)
    const answer = await handler(request, { signal: new AbortController().signal })
    expect(answer.events).toEqual([])
    expect(gate.used).toBe(0)
  })
})
