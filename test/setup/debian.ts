// Run by `npm test` first (the pretest script): the Debian packages the
// tests use, installed when missing. As root it installs them with apt-get;
// otherwise it stops at once with the one command to run.
//
//   prometheus               promtool, and a real Prometheus scraping an array
//   prometheus-alertmanager  a real Alertmanager receiving health alerts
//   openssl                  a test certificate
//   chromium                 the dashboard's browser tests

import { spawnSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

const NEEDED: ReadonlyArray<{ pkg: string; command: string }> = [
  { pkg: 'prometheus', command: 'promtool' },
  { pkg: 'prometheus-alertmanager', command: 'prometheus-alertmanager' },
  { pkg: 'openssl', command: 'openssl' },
  { pkg: 'chromium', command: 'chromium' },
]

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, command), constants.X_OK)
      return true
    } catch {}
  }
  return false
}

const missing = NEEDED.filter((n) => !onPath(n.command)).map((n) => n.pkg)
if (missing.length === 0) process.exit(0)

const command = `apt-get install -y --no-install-recommends ${missing.join(' ')}`
if (process.getuid?.() !== 0) {
  process.stderr.write(
    `the tests need Debian packages that are missing: ${missing.join(', ')}\nrun once, as root:\n  ${command}\n`,
  )
  process.exit(1)
}
process.stdout.write(`installing the Debian packages the tests use: ${missing.join(', ')}\n`)
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
for (const args of [
  ['update', '-qq'],
  ['install', '-y', '-qq', '--no-install-recommends', ...missing],
]) {
  const run = spawnSync('apt-get', args, { stdio: 'inherit', env })
  if (run.status !== 0) {
    process.stderr.write(`apt-get ${args.join(' ')} failed; run: ${command}\n`)
    process.exit(1)
  }
}
