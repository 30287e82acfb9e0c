// The ordering pieces of the k-way merge of members' slices, as pure code:
// a binary heap that keeps the members' current head events in scan order,
// so that taking the next event of the page costs O(log k) for k members.
// Ids compare as strings because their alphabet sorts in ASCII order, so
// string order is the array's order of events.

export interface Ordered {
  id: string
}

/** Whether `a` comes before `b` in scan order (ids ascending, or descending when `reverse`). */
export function scanOrder(reverse: boolean): (a: Ordered, b: Ordered) => boolean {
  return reverse ? (a, b) => a.id > b.id : (a, b) => a.id < b.id
}

export interface Heap<T> {
  readonly size: number
  push(item: T): void
  /** Removes and returns the first item, or undefined when empty. */
  pop(): T | undefined
}

/** A binary min-heap under `before`. */
export function createHeap<T>(before: (a: T, b: T) => boolean): Heap<T> {
  const items: T[] = []
  const swap = (i: number, j: number) => {
    const t = items[i] as T
    items[i] = items[j] as T
    items[j] = t
  }
  return {
    get size() {
      return items.length
    },
    push(item) {
      items.push(item)
      let i = items.length - 1
      while (i > 0) {
        const parent = (i - 1) >> 1
        if (!before(items[i] as T, items[parent] as T)) break
        swap(i, parent)
        i = parent
      }
    },
    pop() {
      if (items.length === 0) return undefined
      const top = items[0] as T
      const last = items.pop() as T
      if (items.length > 0) {
        items[0] = last
        let i = 0
        for (;;) {
          const l = 2 * i + 1
          const r = l + 1
          let best = i
          if (l < items.length && before(items[l] as T, items[best] as T)) best = l
          if (r < items.length && before(items[r] as T, items[best] as T)) best = r
          if (best === i) break
          swap(i, best)
          i = best
        }
      }
      return top
    },
  }
}
