// K-way merge of the members' slices into one page, as pure functions. Each
// slice is already in scan order (ids ascending, or descending when
// `reverse`); ids compare as strings because their alphabet sorts in ASCII
// order, so string order is the array's order of events.

export interface Ordered {
  id: string
}

export interface MergeResult<T> {
  /** The first `limit` items of all slices, in scan order. */
  items: T[]
  /** True when some slice still had items past the page. */
  leftover: boolean
}

/** Merges sorted slices and stops at `limit`. O(n log k) with a binary heap of slice heads. */
export function mergeSlices<T extends Ordered>(
  slices: ReadonlyArray<readonly T[]>,
  reverse: boolean,
  limit: number,
): MergeResult<T> {
  // Heap of [slice index, position]; the root is the next item in scan order.
  const heap: Array<[number, number]> = []
  const before = (a: [number, number], b: [number, number]): boolean => {
    const x = (slices[a[0]] as readonly T[])[a[1]] as T
    const y = (slices[b[0]] as readonly T[])[b[1]] as T
    return reverse ? x.id > y.id : x.id < y.id
  }
  const swap = (i: number, j: number) => {
    const t = heap[i] as [number, number]
    heap[i] = heap[j] as [number, number]
    heap[j] = t
  }
  const up = (i: number) => {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i] as [number, number], heap[parent] as [number, number])) return
      swap(i, parent)
      i = parent
    }
  }
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let best = i
      if (l < heap.length && before(heap[l] as [number, number], heap[best] as [number, number]))
        best = l
      if (r < heap.length && before(heap[r] as [number, number], heap[best] as [number, number]))
        best = r
      if (best === i) return
      swap(i, best)
      i = best
    }
  }
  slices.forEach((slice, index) => {
    if (slice.length > 0) {
      heap.push([index, 0])
      up(heap.length - 1)
    }
  })
  const items: T[] = []
  while (heap.length > 0 && items.length < limit) {
    const top = heap[0] as [number, number]
    const slice = slices[top[0]] as readonly T[]
    items.push(slice[top[1]] as T)
    if (top[1] + 1 < slice.length) {
      heap[0] = [top[0], top[1] + 1]
    } else {
      const last = heap.pop() as [number, number]
      if (heap.length === 0) break
      heap[0] = last
    }
    down(0)
  }
  return { items, leftover: heap.length > 0 }
}
