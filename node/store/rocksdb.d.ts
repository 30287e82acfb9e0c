// The part of @nxtedition/rocksdb (an abstract-level store) that chorus uses.
// The package ships no type declarations; these follow its index.js,
// chained-batch.js and iterator.js at 12.2.

declare module '@nxtedition/rocksdb' {
  export interface RangeOptions {
    gt?: Uint8Array
    gte?: Uint8Array
    lt?: Uint8Array
    lte?: Uint8Array
    reverse?: boolean
    limit?: number
  }

  export interface IteratorOptions extends RangeOptions {
    keys?: boolean
    values?: boolean
    keyEncoding?: 'buffer'
    valueEncoding?: 'buffer'
    fillCache?: boolean
    highWaterMarkBytes?: number
  }

  export interface RocksIterator {
    nextv(size: number): Promise<Array<[Buffer, Buffer]>>
    close(): Promise<void>
  }

  export interface ChainedBatch {
    put(key: Uint8Array, value: Uint8Array): this
    del(key: Uint8Array): this
    readonly length: number
    /** Writes on the calling thread (fsync included when `sync`), resolves on the next tick. */
    write(options?: { sync?: boolean }): Promise<void>
    close(): Promise<void>
  }

  export interface OpenOptions {
    createIfMissing?: boolean
    errorIfExists?: boolean
    infoLogLevel?: 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'header' | null
    keyEncoding?: 'buffer'
    valueEncoding?: 'buffer'
    compression?: boolean
    /** Bytes of the block cache (HyperClockCache); 0: none. Default 8 MiB. */
    cacheSize?: number
    /** Index and filter blocks in the block cache rather than beside it. */
    cacheIndexAndFilterBlocks?: boolean
    /** Compaction style; memtableMemoryBudget applies only with one. */
    compaction?: 'level' | 'universal'
    /** Bytes of memtables, split in four write buffers (see binding.cc InitOptions). */
    memtableMemoryBudget?: number
    walTotalSizeLimit?: number
  }

  export class RocksLevel {
    constructor(location: string, options?: OpenOptions)
    readonly status: 'opening' | 'open' | 'closing' | 'closed'
    open(options?: OpenOptions): Promise<void>
    close(): Promise<void>
    get(key: Uint8Array, options?: { valueEncoding?: 'buffer' }): Promise<Buffer>
    getMany(
      keys: Uint8Array[],
      options?: { valueEncoding?: 'buffer' },
    ): Promise<Array<Buffer | undefined>>
    batch(): ChainedBatch
    clear(options: RangeOptions): Promise<void>
    iterator(options?: IteratorOptions): RocksIterator
    getProperty(property: string): string
  }
}
