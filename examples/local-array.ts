// A local array for trying chorus: 3 members on loopback as separate
// processes, each with its own data dir, fed a steady mix of events.
// Run: npm run demo [-- --members 3 --dir /tmp/chorus-demo --rate 20]
// Ctrl-C stops every member cleanly (SIGTERM) and exits.

import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '3' },
    dir: { type: 'string' },
    rate: { type: 'string', default: '20' },
    'base-port': { type: 'string', default: '7800' },
  },
})
const COUNT = Number(values.members)
const RATE = Number(values.rate) // events per second per member
const BASE_PORT = Number(values['base-port'])
const root = values.dir ?? (await mkdtemp(join(tmpdir(), 'chorus-demo-')))
const CLI = join(import.meta.dirname, '..', 'node', 'cli.ts')

interface Running {
  name: string
  child: ChildProcess
  url: string
  p2p: string
}

function start(index: number, joinAddr?: string): Promise<Running> {
  const name = `member-${String.fromCharCode(97 + index)}`
  const args = [
    CLI,
    'start',
    '--name',
    name,
    '--data-dir',
    join(root, name),
    '--http',
    `127.0.0.1:${BASE_PORT + 2 * index}`,
    '--listen',
    `/ip4/127.0.0.1/tcp/${BASE_PORT + 2 * index + 1}`,
  ]
  if (joinAddr !== undefined) args.push('--join', joinAddr)
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CHORUS_LOG_LEVEL: process.env.CHORUS_LOG_LEVEL ?? 'warn' },
  })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const match = /listening on (http:\/\/\S+) and (\S+)/.exec(out)
      if (match) resolve({ name, child, url: match[1] as string, p2p: match[2] as string })
    })
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before starting`)))
  })
}

const TYPES = [
  'http.request',
  'http.request',
  'http.request',
  'http.error',
  'db.query',
  'app.login',
  'queue.depth',
]
const SEVERITIES = ['debug', 'info', 'info', 'info', 'warn', 'error', 'critical']

function event(member: string, n: number) {
  const type = TYPES[n % TYPES.length] as string
  const severity =
    type === 'http.error' ? 'error' : (SEVERITIES[(n * 3) % SEVERITIES.length] as string)
  return {
    type,
    severity,
    message: `${type} #${n} on ${member}`,
    source: member,
    value: Math.round(Math.abs(Math.sin(n / 10)) * 100),
    attrs: { route: `/api/${n % 5}`, status: type === 'http.error' ? 500 : 200 },
  }
}

const members: Running[] = []
const first = await start(0)
members.push(first)
for (let i = 1; i < COUNT; i++) members.push(await start(i, first.p2p))

process.stdout.write(`chorus demo: ${COUNT} members, data under ${root}\n`)
for (const m of members) process.stdout.write(`  ${m.name}  ${m.url}  ${m.p2p}\n`)
process.stdout.write(
  `try: npm run chorus -- query --url ${first.url} --from 5m\n     npm run chorus -- members --url ${members.at(-1)?.url}\nCtrl-C stops the array.\n`,
)

let n = 0
const feed = setInterval(() => {
  for (const m of members) {
    const batch = Array.from({ length: Math.max(1, Math.round(RATE / 4)) }, () =>
      event(m.name, n++),
    )
    fetch(`${m.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(batch),
    }).catch(() => {})
  }
}, 250)

let stopping = false
async function stopAll() {
  if (stopping) return
  stopping = true
  clearInterval(feed)
  process.stdout.write('\nstopping the array...\n')
  await Promise.all(
    members.map(
      (m) =>
        new Promise<void>((resolve) => {
          if (m.child.exitCode !== null) return resolve()
          const timer = setTimeout(() => m.child.kill('SIGKILL'), 15_000)
          m.child.once('exit', () => {
            clearTimeout(timer)
            resolve()
          })
          m.child.kill('SIGTERM')
        }),
    ),
  )
  process.exit(0)
}
process.on('SIGINT', () => void stopAll())
process.on('SIGTERM', () => void stopAll())
