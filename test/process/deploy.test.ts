// docs/deploy.md, followed as written: every `sh` block of the guide runs in
// bash, in order, with the three servers as three members on 127.0.0.11 to
// 127.0.0.13 and each place (the workstation, web-1, web-2, web-3) given a
// directory of its own standing for its root file system. The only changes
// made to the guide's text are those mappings: addresses 10.0.0.x become
// 127.0.0.x, absolute paths move under the place's directory, Prometheus'
// web port becomes a free one. What the `console` blocks do on real
// machines (copying the secrets to the servers) the test does itself.
// `chorus` on the PATH is a shim that runs this checkout's CLI on the
// pinned Node (the packed command is test/process/install.test.ts's).

import { type ChildProcess, spawn } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { freePort, removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { CLI, runCommand } from './harness.ts'

const GUIDE = join(import.meta.dirname, '..', '..', 'docs', 'deploy.md')
const SERVERS = [1, 2, 3].map((i) => ({ name: `web-${i}`, addr: `127.0.0.1${i}` }))
const ABSOLUTE = [
  '/etc/chorus',
  '/var/lib/chorus',
  '/etc/prometheus',
  '/var/lib/prometheus',
  '/var/backups',
]

const background: ChildProcess[] = []

afterAll(async () => {
  for (const child of background) {
    if (child.exitCode !== null || child.signalCode !== null) continue
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
    child.kill('SIGKILL')
  }
  await removeTempDirs()
})

interface Block {
  where: 'workstation' | 'server'
  script: string
}

/** The guide's `sh` blocks, in order, each with where its first line says it runs. */
function blocks(): Block[] {
  const out: Block[] = []
  for (const m of readFileSync(GUIDE, 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)) {
    const script = m[1] as string
    const first = script.split('\n')[0] ?? ''
    if (first.startsWith('# on each server')) out.push({ where: 'server', script })
    else if (first.startsWith('# on your workstation')) out.push({ where: 'workstation', script })
    else throw new Error(`an sh block of the guide does not say where it runs: ${first}`)
  }
  return out
}

/** GET over HTTPS trusting `ca`: the status, or undefined when it cannot connect. */
function httpsStatus(url: string, ca: string, token?: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        timeout: 2000,
      },
      (res) => {
        res.resume()
        resolve(res.statusCode)
      },
    )
    req.on('error', () => resolve(undefined))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

describe('docs/deploy.md', () => {
  it('takes three servers from nothing to a private array with TLS, tokens, Prometheus over HTTPS and a backup', async () => {
    const root = await tempDir('chorus-deploy-')
    const shim = join(root, 'bin')
    mkdirSync(shim)
    writeFileSync(join(shim, 'chorus'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
    chmodSync(join(shim, 'chorus'), 0o755)
    const prometheusPort = await freePort()
    const placeDir = (place: string) => join(root, place)
    const localise = (text: string, place: string) => {
      let out = text.replaceAll('10.0.0.', '127.0.0.')
      for (const path of ABSOLUTE) out = out.replaceAll(path, `${placeDir(place)}${path}`)
      return out.replaceAll('127.0.0.1:9090', `127.0.0.1:${prometheusPort}`)
    }
    const env = (extra: Record<string, string>) => ({
      PATH: `${shim}:${process.env.PATH ?? ''}`,
      CHORUS_LOG_LEVEL: 'warn',
      ...extra,
    })
    const run = async (script: string, place: string, extra: Record<string, string> = {}) => {
      mkdirSync(placeDir(place), { recursive: true })
      const got = await runCommand(
        'bash',
        ['-euo', 'pipefail', '-c', `cd "${placeDir(place)}"\n${script}`],
        {
          env: env(extra),
          timeoutMs: 60_000,
        },
      )
      expect(got.code, `${place}: ${script}\n${got.stdout}\n${got.stderr}`).toBe(0)
      return got
    }
    /** A block that starts a long-running process: in the background, ended after the test. */
    const start = (script: string, place: string, extra: Record<string, string> = {}) => {
      const child = spawn(
        'bash',
        ['-euo', 'pipefail', '-c', `exec ${script.split('\n').slice(1).join('\n').trim()}`],
        {
          env: { ...process.env, ...env(extra) },
          cwd: placeDir(place),
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      )
      let stderr = ''
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString()
      })
      background.push(child)
      return () => stderr
    }

    const ws = 'workstation'
    const caOf = () => readFileSync(join(placeDir(ws), 'etc/chorus/ca.pem'), 'utf8')
    const tokenOf = (scope: string) =>
      readFileSync(join(placeDir(ws), `etc/chorus/${scope}.token`), 'utf8').trim()
    let copied = false
    const outputs: string[] = []
    for (const block of blocks()) {
      if (block.where === 'workstation') {
        const script = localise(block.script, ws)
        if (/^prometheus /m.test(script)) {
          // Everything before the server itself runs as a script; then Prometheus in the background.
          const at = script.search(/^prometheus /m)
          await run(script.slice(0, at), ws)
          const stderr = start(`#\n${script.slice(at)}`, ws)
          await waitFor(
            async () => {
              const r = await fetch(`http://127.0.0.1:${prometheusPort}/api/v1/targets`).catch(
                () => undefined,
              )
              if (r === undefined || !r.ok) return false
              const body = (await r.json()) as {
                data: { activeTargets: Array<{ health: string; scrapePool: string }> }
              }
              const up = body.data.activeTargets.filter((t) => t.health === 'up')
              return up.length === 4 ? up : false
            },
            {
              timeoutMs: 60_000,
              intervalMs: 500,
              what: `4 targets up in Prometheus ${stderr().slice(-400)}`,
            },
          )
          continue
        }
        outputs.push((await run(script, ws)).stdout)
        continue
      }
      // A server block: the secrets go to every server before the first one (the console block's scp).
      if (!copied) {
        copied = true
        for (const { name } of SERVERS) {
          const etc = join(placeDir(name), 'etc/chorus')
          mkdirSync(etc, { recursive: true })
          for (const file of ['swarm.key', 'tokens', `${name}.pem`, `${name}.key`])
            copyFileSync(join(placeDir(ws), 'etc/chorus', file), join(etc, file))
        }
      }
      for (const server of SERVERS) {
        const script = localise(block.script, server.name)
        const who = { NAME: server.name, ADDR: server.addr }
        if (/^chorus start /m.test(script)) {
          const stderr = start(script, server.name, who)
          await waitFor(
            async () => (await httpsStatus(`https://${server.addr}:7700/readyz`, caOf())) === 200,
            {
              timeoutMs: 30_000,
              what: `${server.name} ready ${stderr().slice(-400)}`,
            },
          )
        } else {
          await run(script, server.name, who)
        }
      }
      if (/^chorus start /m.test(block.script)) {
        // What an operator waits for before checking: every member in every table.
        await waitFor(
          async () => {
            const got = await runCommand(process.execPath, [
              CLI,
              'members',
              '--json',
              '--url',
              'https://127.0.0.11:7700',
              '--token',
              tokenOf('admin'),
              '--ca-cert',
              join(placeDir(ws), 'etc/chorus/ca.pem'),
            ])
            if (got.code !== 0) return false
            const table = JSON.parse(got.stdout) as { members: Array<{ state: string }> }
            return table.members.filter((m) => m.state === 'alive').length === 3
          },
          { timeoutMs: 30_000, intervalMs: 500, what: 'three members alive' },
        )
      }
    }
    // The check block's output: three members, the event back from another member.
    const all = outputs.join('\n')
    for (const { name } of SERVERS) expect(all).toContain(name)
    expect(all).toContain('hello from the guide')
    // Tokens hold: no token, no answer; the read token cannot scrape.
    expect(await httpsStatus('https://127.0.0.12:7700/v1/events', caOf())).toBe(401)
    expect(await httpsStatus('https://127.0.0.12:7700/metrics', caOf(), tokenOf('read'))).toBe(403)
    // The backup was written (test/process/backup.test.ts starts a member from one).
    expect(readdirSync(join(placeDir(ws), 'var/backups/chorus/web-1')).length).toBeGreaterThan(0)
  }, 300_000)
})
