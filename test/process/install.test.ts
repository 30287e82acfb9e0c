// The package as an operator installs it: `npm pack`, then `npm install -g`
// of the tarball into a temporary prefix with the system's Node (Debian's
// 20) first on PATH, so that Node runs npm and the `chorus` launcher
// (bin/chorus.js), which runs the CLI on the pinned Node 24.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, removeTempDirs, tempDir, waitFor } from '../helpers.ts'

const ROOT = join(import.meta.dirname, '..', '..')
/** The system's directories first: its node and npm, not node_modules/.bin's Node 24. */
const PATH = ['/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':')].join(':')
/** What the system's Node says it is (the launcher runs on it). */
const SYSTEM_NODE = execFileSync('node', ['--version'], { env: { PATH } }).toString().trim()

/**
 * The environment of an operator's shell: without what `npm test` or npx
 * put there for this run (npm_* settings, NODE), which npm and the
 * install scripts it runs would otherwise take as theirs.
 */
function operatorEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined && !/^(npm_|node$|node_options$|init_cwd$)/i.test(name))
      env[name] = value
  return { ...env, PATH, CHORUS_LOG_LEVEL: 'warn', ...extra }
}

/** Runs `command` to completion, killed past `timeoutMs`; its exit code and output. */
function run(
  command: string,
  args: string[],
  { cwd = ROOT, timeoutMs = 30_000 }: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd, env: operatorEnv(), timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
        resolve({ code, stdout, stderr })
      },
    )
  })
}

/** The pids of `pid`'s children (Linux), so that none outlives the test. */
async function childrenOf(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')
    return text.trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

let dir = ''
let chorus = ''
/** Processes this file started that may still run: killed in afterAll. */
const started = new Set<number>()

beforeAll(async () => {
  dir = await tempDir('chorus-install-')
  const packed = await run('npm', ['pack', '--pack-destination', dir], { timeoutMs: 120_000 })
  expect(packed.code, packed.stderr).toBe(0)
  const tarball = (await readdir(dir)).find((f) => /^chorus-.*\.tgz$/.test(f))
  expect(tarball, packed.stdout).toBeDefined()
  const prefix = join(dir, 'prefix')
  // The npm cache is warm after `npm ci`: the packages come from it, unless missing.
  const installed = await run(
    'npm',
    [
      'install',
      '-g',
      '--prefix',
      prefix,
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      join(dir, tarball as string),
    ],
    { cwd: dir, timeoutMs: 300_000 },
  )
  expect(installed.code, installed.stderr).toBe(0)
  chorus = join(prefix, 'bin', 'chorus')
}, 420_000)

afterAll(async () => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL')
  await removeTempDirs()
})

describe(`the packed tarball installed with npm install -g on the system's Node (${SYSTEM_NODE})`, () => {
  it('chorus --version and chorus version answer on the pinned Node 24', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      version: string
    }
    const short = await run(chorus, ['--version'])
    expect(short.code, short.stderr).toBe(0)
    expect(short.stdout.trim()).toBe(version)
    const long = await run(chorus, ['version'])
    expect(long.code, long.stderr).toBe(0)
    expect(long.stdout).toMatch(new RegExp(`^chorus ${version}\nnode 24\\.\\d+\\.\\d+\n`))
  })

  it('chorus config check exits 0 on a good file and 2 listing the problems of a bad one', async () => {
    const config = await tempDir()
    const good = join(config, 'good.yaml')
    await writeFile(good, `name: installed\ndata-dir: ${config}/data\nhttp: 127.0.0.1:7700\n`)
    const ok = await run(chorus, ['config', 'check', '--config', good])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(/^configuration ok: member installed, .*http 127\.0\.0\.1:7700/)
    const bad = join(config, 'bad.yaml')
    await writeFile(bad, 'retention: ages\nhttp: nowhere\n')
    const refused = await run(chorus, ['config', 'check', '--config', bad])
    expect(refused.code).toBe(2)
    for (const option of ['retention', 'http']) expect(refused.stderr).toContain(`${option}:`)
  })

  it('chorus start answers /readyz, and stops on SIGTERM', async () => {
    const port = await freePort()
    const child: ChildProcess = spawn(
      chorus,
      [
        'start',
        '--name',
        'installed',
        '--data-dir',
        await tempDir(),
        '--http',
        `127.0.0.1:${port}`,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--no-collect',
      ],
      { env: operatorEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const pid = child.pid as number
    started.add(pid)
    let output = ''
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString()
    })
    child.stderr?.on('data', (d: Buffer) => {
      output += d.toString()
    })
    const exited = new Promise<number | string>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
    )
    let ended = false
    void exited.then(() => {
      ended = true
    })
    await waitFor(
      async () => {
        if (ended) throw new Error(`chorus start exited:\n${output}`)
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200
      },
      { timeoutMs: 30_000, intervalMs: 100, what: '/readyz answering 200' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${output}`)
    })
    // On Node 20 the launcher runs the member as its child (Node 24 would become it).
    const members = await childrenOf(pid)
    for (const member of members) started.add(member)
    process.kill(pid, 'SIGTERM')
    const code = await Promise.race([
      exited,
      new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 20_000)),
    ])
    expect(code, output).toBe(0)
    expect(output).toMatch(/SIGTERM: stopping/)
    await waitFor(() => members.every((member) => !alive(member)), {
      timeoutMs: 5_000,
      what: 'the member process gone',
    })
  })
})
