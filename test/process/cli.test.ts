// The chorus command as an operator runs it: start, emit, query, SIGTERM.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { VERSION } from '../../node/version.ts'
import { allEvents, removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { CLI, runCli, runCommand, startMember, stopAll } from './harness.ts'

afterEach(async () => {
  await stopAll()
  await removeTempDirs()
})

describe('chorus emit and query', () => {
  it('emit --durability replicated prints the id and fails when no copy can be confirmed; the event is stored', async () => {
    const member = await startMember({ name: 'cli-r', dataDir: await tempDir() })
    const env = { CHORUS_URL: member.url }
    const alone = await runCli(
      ['emit', '--type', 'deploy.lonely', '--durability', 'replicated', '--timeout', '300ms'],
      { env },
    )
    expect(alone.code).toBe(1)
    expect(alone.stderr).toMatch(/replication_timeout/)
    const id = alone.stdout.trim()
    expect(id).toHaveLength(26)
    const stored = await runCli(['query', '--json', '--type', 'deploy.lonely'], { env })
    expect((JSON.parse(stored.stdout) as ResultPage).events.map((e) => e.id)).toEqual([id])
    // A usage error: exit 2.
    const wrong = await runCli(['emit', '--type', 'x.y', '--durability', 'everywhere'], { env })
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toMatch(/--durability/)
  })

  it('log an event with attributes and print result sets as a table, as JSON, and by cursor', async () => {
    const member = await startMember({ name: 'cli-a', dataDir: await tempDir() })
    const env = { CHORUS_URL: member.url }
    const first = await runCli(
      [
        'emit',
        '--type',
        'deploy.finished',
        '--severity',
        'warn',
        '--message',
        'v2 rolled out',
        '--value',
        '12.5',
        '--attr',
        'region=eu',
        '--attr',
        'canary=true',
        '--attr',
        'pods=3',
      ],
      { env },
    )
    expect(first.code, first.stderr).toBe(0)
    const second = await runCli(['emit', '--type', 'deploy.started', '--url', member.url])
    expect(second.code).toBe(0)
    const [id1, id2] = [first.stdout.trim(), second.stdout.trim()]

    // Newest first, with a header, value and attributes, columns of fixed widths.
    const table = await runCli(['query', '--from', '1h'], { env })
    expect(table.code, table.stderr).toBe(0)
    const lines = table.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^TIME\s+MEMBER\s+TYPE\s+SEVERITY\s+VALUE\s+ATTRS\s+MESSAGE$/)
    expect(lines[1]).toMatch(/cli-a\s+deploy\.started\s+info$/)
    expect(lines[2]).toMatch(
      /cli-a\s+deploy\.finished\s+warn\s+12\.5\s+region=eu,canary=true,pods=3\s+v2 rolled out$/,
    )
    expect(lines[1]?.indexOf('deploy.')).toBe(lines[2]?.indexOf('deploy.'))
    expect(lines[3]).toBe(`2 events, first id ${id2}, last id ${id1}`)

    const json = await runCli(['query', '--json', '--type', 'deploy.finished', '--limit', '5'], {
      env,
    })
    const page = JSON.parse(json.stdout) as ResultPage
    expect(page.events).toHaveLength(1)
    // Attribute values are text unless --attr-json.
    expect(page.events[0]).toMatchObject({
      id: id1,
      type: 'deploy.finished',
      severity: 'warn',
      value: 12.5,
      attrs: { region: 'eu', canary: 'true', pods: '3' },
    })
    const typed = await runCli(
      [
        'emit',
        '--type',
        'deploy.typed',
        '--attr-json',
        '--attr',
        'pods=3',
        '--attr',
        'version="1.10"',
      ],
      { env },
    )
    expect(typed.code, typed.stderr).toBe(0)
    const ndjson = await runCli(['query', '--output', 'ndjson', '--type', 'deploy.typed'], { env })
    expect(
      ndjson.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).attrs),
    ).toEqual([{ pods: 3, version: '1.10' }])

    const paged = JSON.parse(
      (await runCli(['query', '--json', '--limit', '1', '--order', 'asc'], { env })).stdout,
    ) as ResultPage
    expect(paged.events.map((e) => e.id)).toEqual([id1])
    const rollup = await runCli(
      ['rollup', '--from', '1h', '--step', '1h', '--by', 'type', '--q', '0.5'],
      { env },
    )
    expect(rollup.code, rollup.stderr).toBe(0)
    const rollupLines = rollup.stdout.trim().split('\n')
    expect(rollupLines[0]).toMatch(/^TIME\s+SERIES\s+COUNT\s+SUM\s+MIN\s+MAX\s+AVG\s+QUANTILES$/)
    expect(rollupLines.find((l) => l.includes('type=deploy.finished'))).toMatch(
      /\s1\s+12\.5\s+12\.5\s+12\.5\s+12\.5\s+p50=12\.5/,
    )
    expect(rollupLines.at(-1)).toBe('step 1h')
    const rest = JSON.parse(
      (await runCli(['query', '--json', '--cursor', paged.next as string], { env })).stdout,
    ) as ResultPage
    expect(rest.events.map((e) => e.id)).toEqual([id2])
  })

  it('query --follow prints events as they arrive', async () => {
    const member = await startMember({ name: 'cli-f', dataDir: await tempDir() })
    const child = spawn(
      process.execPath,
      [
        join(import.meta.dirname, '..', '..', 'node', 'cli.ts'),
        'query',
        '--follow',
        '--url',
        member.url,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    try {
      for (const n of [1, 2, 3]) {
        const emitted = await runCli([
          'emit',
          '--url',
          member.url,
          '--type',
          'tail.test',
          '--message',
          `line ${n}`,
        ])
        expect(emitted.code).toBe(0)
        await waitFor(() => out.includes(`line ${n}`), {
          timeoutMs: 10_000,
          what: `line ${n} in the tail`,
        })
      }
      expect(out.match(/tail\.test/g)).toHaveLength(3)
      // Ctrl-C ends the tail quietly.
      const exited = once(child, 'exit')
      child.kill('SIGINT')
      expect((await exited)[0]).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('query leaves host samples out unless asked, and filters by attribute with --where', async () => {
    const member = await startMember({ name: 'cli-w', dataDir: await tempDir() })
    const emit = async (...args: string[]) =>
      expect((await runCli(['emit', '--url', member.url, ...args])).code).toBe(0)
    await emit('--type', 'host.fake', '--message', 'a host sample')
    await emit('--type', 'app.eu', '--message', 'in eu', '--attr', 'region=eu')
    await emit('--type', 'app.us', '--message', 'in us', '--attr', 'region=us')
    const types = async (...args: string[]) => {
      const got = await runCli(['query', '--output', 'ndjson', '--url', member.url, ...args])
      expect(got.code).toBe(0)
      return (
        got.stdout
          .trim()
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => (JSON.parse(l) as { type: string }).type)
          // The member's own host samples come and go with time: only this test's events count.
          .filter((t) => ['app.eu', 'app.us', 'host.fake'].includes(t))
      )
    }
    expect(await types()).toEqual(['app.us', 'app.eu'])
    expect(await types('--all')).toEqual(['app.us', 'app.eu', 'host.fake'])
    expect(await types('--type', 'host.*')).toEqual(['host.fake'])
    expect(await types('--where', 'region=eu')).toEqual(['app.eu'])
    // A --type of its own replaces the default exclusion of host samples.
    expect(await types('--type=-app.us')).toEqual(['app.eu', 'host.fake'])
    const bad = await runCli(['query', '--url', member.url, '--where', 'region'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--where must be name=value')
  })

  it('fail with one clear line naming the problem', async () => {
    const badFlag = await runCli(['start', '--http', 'nowhere', '--data-dir', await tempDir()])
    expect(badFlag.code).toBe(2)
    expect(badFlag.stderr).toMatch(/^chorus: invalid configuration: http: --http must be HOST:PORT/)
    const badEnv = await runCli(['start', '--data-dir', await tempDir()], {
      env: { CHORUS_RETENTION: 'ages' },
    })
    expect(badEnv.stderr).toMatch(/retention: CHORUS_RETENTION must be a duration/)
    const junk = join(await tempDir(), 'junk.pem')
    await writeFile(junk, 'not a certificate')
    const badTls = await runCli([
      'start',
      '--data-dir',
      await tempDir(),
      '--http',
      '127.0.0.1:0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--tls-cert',
      junk,
      '--tls-key',
      junk,
    ])
    expect(badTls.code).toBe(2)
    expect(badTls.stderr).toMatch(/^chorus: cannot listen for HTTP on 127\.0\.0\.1:0: /)
    const unreachable = await runCli(['query', '--url', 'http://127.0.0.1:1'])
    expect(unreachable.code).toBe(1)
    expect(unreachable.stderr).toMatch(/^chorus: cannot reach http:\/\/127\.0\.0\.1:1/)
    const member = await startMember({ name: 'cli-e', dataDir: await tempDir() })
    const badType = await runCli(['emit', '--url', member.url, '--type', 'Not Valid'])
    expect(badType.code).toBe(1)
    expect(badType.stderr.trim()).toMatch(/^chorus: 400: "events\[0\]\.type"/)
    expect(badType.stderr.trim().split('\n')).toHaveLength(1)
  })
})

describe('chorus keygen --admin and config set --admin-key', () => {
  it('make a key pair whose approval a member started with the public key requires for its rules', async () => {
    const dir = await tempDir()
    const keyFile = join(dir, 'admin.pem')
    const keygen = await runCli(['keygen', '--admin', '--out', keyFile])
    expect(keygen.code, keygen.stderr).toBe(0)
    const publicKey = keygen.stdout.trim()
    expect(publicKey).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/)
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
    const again = await runCli(['keygen', '--admin', '--out', keyFile])
    expect(again.stderr).toMatch(/exists; not overwriting an admin key/)

    const member = await startMember({
      name: 'cli-admin',
      dataDir: await tempDir(),
      args: ['--admin-public-key', publicKey],
    })
    const rules = join(dir, 'rules.json')
    await writeFile(rules, JSON.stringify({ rules: [] }))
    const unapproved = await runCli(['config', 'set', '--file', rules, '--url', member.url])
    expect(unapproved.code).toBe(1)
    expect(unapproved.stderr).toMatch(/^chorus: 403: .*admin approval/)
    const approved = await runCli([
      'config',
      'set',
      '--file',
      rules,
      '--admin-key',
      keyFile,
      '--url',
      member.url,
    ])
    expect(approved.code, approved.stderr).toBe(0)
    expect(approved.stdout).toMatch(/health rules version 1 in force/)
    const shown = await runCli(['config', 'get', '--url', member.url])
    expect(JSON.parse(shown.stdout)).toMatchObject({ version: 1, rules: [] })

    const badKey = await runCli(['start', '--data-dir', dir, '--admin-public-key', 'ed25519:x'])
    expect(badKey.code).toBe(2)
    expect(badKey.stderr).toMatch(/admin-public-key: .*chorus keygen --admin/)
  })
})

describe('SIGTERM', () => {
  it('finishes requests in flight, stops accepting, exits 0, and a restart finds everything', async () => {
    const dataDir = await tempDir()
    const member = await startMember({ name: 'graceful', dataDir })
    const body = Array.from({ length: 5000 }, (_, i) =>
      JSON.stringify({ type: 'term.test', attrs: { i } }),
    ).join('\n')
    let firstAnswered: () => void = () => {}
    const answered = new Promise<void>((resolve) => {
      firstAnswered = resolve
    })
    const requests = Array.from({ length: 6 }, () =>
      fetch(`${member.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body,
      })
        .then(async (r) => {
          const ids = r.status === 201 ? ((await r.json()) as { ids: string[] }).ids : []
          firstAnswered()
          return { status: r.status, ids, at: Date.now() }
        })
        .catch(() => ({ status: 0, ids: [] as string[], at: Date.now() })),
    )
    // Stop while the other requests are still being read and written.
    await answered
    const termAt = Date.now()
    member.signal('SIGTERM')
    const answers = await Promise.all(requests)
    expect(await member.exited).toBe(0)
    const acked = answers.flatMap((a) => a.ids)
    // Every request was sent before SIGTERM, so every one is answered, most after it.
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(201))
    expect(answers.filter((a) => a.at > termAt).length).toBeGreaterThan(0)
    await expect(fetch(`${member.url}/healthz`)).rejects.toThrow()

    const restarted = await startMember({ name: 'graceful', dataDir })
    const stored = (await allEvents(restarted.url)).map((e) => e.id)
    expect(stored).toEqual([...acked].sort())
  })
})

describe('chorus for scripts and operators', () => {
  it('says its version, makes tokens, checks a configuration, and exits 2 on usage errors', async () => {
    const version = await runCli(['--version'])
    expect([version.code, version.stdout]).toEqual([0, `${VERSION}\n`])
    const long = await runCli(['version'])
    expect(long.stdout).toMatch(
      new RegExp(`^chorus ${VERSION}\nnode \\d+\\.\\d+\\.\\d+\nrocksdb binding \\d+`),
    )
    const unknown = await runCli(['query', '--no-such-flag'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/unknown option '--no-such-flag'/)
    expect((await runCli(['no-such-command'])).code).toBe(2)

    const token = await runCli(['token', '--scope', 'ingest'])
    expect(token.code).toBe(0)
    const [value, line] = token.stdout.trim().split('\n') as [string, string]
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(line).toBe(`ingest ${value}`)
    const badScope = await runCli(['token', '--scope', 'everything'])
    expect(badScope.code).toBe(2)
    expect(badScope.stderr).toMatch(/--scope must be one of ingest, read, admin, metrics/)

    // The token line, as written, is a tokens file a member takes.
    const dir = await tempDir()
    const tokens = join(dir, 'tokens')
    await writeFile(tokens, `${line}\n`, { mode: 0o600 })
    // --append adds the line to a tokens file (only its owner reads it) and prints the token alone.
    const appended = join(dir, 'appended')
    for (const scope of ['read', 'admin']) {
      const made = await runCli(['token', '--scope', scope, '--append', appended])
      expect(made.code).toBe(0)
      expect(made.stdout).toMatch(/^[A-Za-z0-9_-]{43}\n$/)
    }
    const lines = (await readFile(appended, 'utf8')).trim().split('\n')
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['read', 'admin'])
    expect((await stat(appended)).mode & 0o777).toBe(0o600)
    // A CA file that cannot be read, or holds no certificate, is a usage error naming the option.
    const noCa = await runCli(['members', '--ca-cert', join(dir, 'missing.pem')])
    expect([noCa.code, noCa.stderr]).toEqual([2, expect.stringContaining('--ca-cert: cannot read')])
    const notPem = await runCli(['members', '--ca-cert', tokens])
    expect([notPem.code, notPem.stderr]).toEqual([
      2,
      expect.stringContaining('holds no PEM certificate'),
    ])
    const good = join(dir, 'good.yaml')
    await writeFile(
      good,
      `name: checked\ndata-dir: ${dir}\ntokens-file: ${tokens}\nhttp: 127.0.0.1:7700\n`,
    )
    const ok = await runCli(['config', 'check', '--config', good])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(
      /^configuration ok: member checked, data dir .*, http 127\.0\.0\.1:7700/,
    )
    const bad = join(dir, 'bad.yaml')
    await writeFile(bad, 'retention: ages\nhttp: nowhere\nreplicas: 9\n')
    const refused = await runCli(['config', 'check', '--config', bad])
    expect(refused.code).toBe(2)
    for (const option of ['retention', 'http', 'replicas'])
      expect(refused.stderr).toContain(`${option}:`)
  })

  it('health exits 0 when the array is ok and 2 when it is critical; query | head -1 exits 0', async () => {
    const member = await startMember({ name: 'cli-h', dataDir: await tempDir() })
    const env = { CHORUS_URL: member.url }
    expect((await runCli(['health'], { env })).code).toBe(0)
    // An array rule that fires at once with one member: critical.
    const put = await fetch(`${member.url}/v1/config/health`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        rules: [{ name: 'needs-two', kind: 'array', when: { aliveBelow: 2 }, state: 'critical' }],
      }),
    })
    expect(put.status).toBe(200)
    const critical = await runCli(['health'], { env })
    expect(critical.code).toBe(2)
    expect(critical.stdout).toMatch(/needs-two/)
    expect((await runCli(['health', '--json'], { env })).code).toBe(2)

    // Enough rows that the reader is gone long before they are written.
    const events = Array.from({ length: 3000 }, (_, i) => ({ type: 'pipe.test', message: `m${i}` }))
    const posted = await fetch(`${member.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    })
    expect(posted.status).toBe(201)
    const piped = await runCommand(
      'bash',
      [
        '-c',
        `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} query --from 0 --limit 5000 --type pipe.test | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`,
      ],
      { env: { CHORUS_URL: member.url } },
    )
    const [out, err] = [piped.stdout, piped.stderr]
    expect(out.trim(), err).toBe('0')
    expect(err).not.toMatch(/EPIPE|Error/)
  })
})

describe('the member log', () => {
  it('names levels and writes ISO times; with --access-log, one line per request', async () => {
    const member = await startMember({
      name: 'cli-log',
      dataDir: await tempDir(),
      args: ['--access-log'],
      env: { CHORUS_LOG_LEVEL: 'info' },
    })
    const answered = await fetch(`${member.url}/v1/events?from=0&q=secret-search`)
    expect(answered.status).toBe(200)
    await fetch(`${member.url}/v1/nowhere`)
    const lines = await waitFor(
      () => {
        const found = member
          .output()
          .split('\n')
          .filter((l) => l.includes('"chorus:access"'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
        return found.length >= 2 ? found : undefined
      },
      { what: 'two access log lines' },
    )
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'request',
      method: 'GET',
      path: '/v1/events',
      status: 200,
    })
    expect(lines[1]).toMatchObject({ path: '/v1/nowhere', status: 404 })
    expect(String(lines[0]?.time)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    // The query string (what was searched for) stays out of the log.
    expect(member.output()).not.toContain('secret-search')
  })
})
