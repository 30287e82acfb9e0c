// npm test installs the Debian packages the tests use when they are missing
// (test/setup/debian.ts, the pretest script): here with a stand-in apt-get
// on a PATH of stand-ins, so nothing is installed for real.

import { spawnSync } from 'node:child_process'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir } from '../helpers.ts'

const SCRIPT = join(import.meta.dirname, '..', 'setup', 'debian.ts')
afterEach(removeTempDirs)

async function stub(dir: string, name: string, body = 'exit 0') {
  const file = join(dir, name)
  await writeFile(file, `#!/bin/sh\n${body}\n`)
  await chmod(file, 0o755)
}

describe('the tests setup', () => {
  it('does nothing when every package is there, and installs the missing ones with apt-get', async () => {
    const bin = await tempDir()
    const log = join(bin, 'apt-get.log')
    await stub(bin, 'apt-get', `echo "$@" >> ${log}`)
    for (const command of ['promtool', 'openssl', 'chromium']) await stub(bin, command)
    const run = () =>
      spawnSync(process.execPath, [SCRIPT], { env: { PATH: bin }, encoding: 'utf8' })
    const missing = run()
    expect(missing.status, missing.stderr).toBe(0)
    expect(missing.stdout).toContain('prometheus-alertmanager')
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual([
      'update -qq',
      'install -y -qq --no-install-recommends prometheus-alertmanager',
    ])
    await stub(bin, 'prometheus-alertmanager')
    const present = run()
    expect([present.status, present.stdout]).toEqual([0, ''])
  })
})
