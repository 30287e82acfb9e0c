// What this build is: chorus's version, and the RocksDB binding's, for
// `chorus version`, the member's word and `chorus_build_info`. Kept apart
// from index.ts so that the CLI can say it without loading a member.

import { createRequire } from 'node:module'

export const VERSION = '0.1.0'

/** The version of the RocksDB binding (@nxtedition/rocksdb) this member stores with. */
export const ROCKSDB_BINDING_VERSION = (
  createRequire(import.meta.url)('@nxtedition/rocksdb/package.json') as { version: string }
).version
