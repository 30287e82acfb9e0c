// The array judges its own health from its members: a paused member turns it
// warning on the others and back; a member whose disk is nearly full is
// critical by its own rules, which makes the array critical.

import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { HealthReport } from '../../node/health/report.ts'
import { removeTempDirs, tempDir, waitFor } from '../helpers.ts'
import { type MemberProcess, runCli, startMember, stopAll } from './harness.ts'

let mounted: string | undefined
afterEach(async () => {
  await stopAll()
  if (mounted !== undefined) execFileSync('umount', ['-l', mounted])
  mounted = undefined
  await removeTempDirs()
})

async function health(m: MemberProcess): Promise<HealthReport> {
  return (await (await fetch(`${m.url}/v1/health`)).json()) as HealthReport
}

async function array(
  names: string[],
  extra: Record<string, { args?: string[]; collect?: boolean; dataDir?: string }> = {},
) {
  const out: MemberProcess[] = []
  for (const name of names) {
    const join = out.length === 0 ? [] : ['--join', (out[0] as MemberProcess).p2p]
    const options = extra[name] ?? {}
    out.push(
      await startMember({
        name,
        dataDir: options.dataDir ?? (await tempDir()),
        args: [...join, ...(options.args ?? [])],
        ...(options.collect === undefined ? {} : { collect: options.collect }),
      }),
    )
  }
  await waitFor(
    async () =>
      (await health(out[0] as MemberProcess)).members.filter((m) => m.membership === 'alive')
        .length === names.length,
    {
      timeoutMs: 20_000,
      what: 'every member alive',
    },
  )
  return out
}

describe('array health', () => {
  it('turns warning on the others while a member is paused, and ok again after SIGCONT', async () => {
    const [a, b, c] = (await array(['ha', 'hb', 'hc'])) as [
      MemberProcess,
      MemberProcess,
      MemberProcess,
    ]
    expect((await health(a)).array).toEqual({ state: 'ok', rules: [] })
    c.signal('SIGSTOP')
    for (const m of [a, b]) {
      await waitFor(async () => (await health(m)).array.state === 'warning', {
        timeoutMs: 20_000,
        what: `${m.name} sees warning`,
      })
      expect((await health(m)).array.rules).toContain('member-down')
    }
    c.signal('SIGCONT')
    for (const m of [a, b]) {
      await waitFor(async () => (await health(m)).array.state === 'ok', {
        timeoutMs: 40_000,
        what: `${m.name} sees ok again`,
      })
    }
    const printed = await runCli(['health', '--url', a.url])
    expect(printed.code, printed.stderr).toBe(0)
    expect(printed.stdout).toMatch(/^NAME\s+MEMBERSHIP\s+HEALTH\s+RULES$/m)
    expect(printed.stdout).toMatch(/^array\s+-\s+ok/m)
    expect(printed.stdout).toMatch(/^hc\s+alive\s+ok/m)
  })

  it('is critical when a member is critical: here one whose data dir filesystem is nearly full', async () => {
    const dir = await tempDir()
    mounted = join(dir, 'full')
    await mkdir(mounted)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mounted])
    await writeFile(join(mounted, 'ballast'), Buffer.alloc(15 * 1024 * 1024)) // leave under 10% free
    const [a, , full] = (await array(['ca', 'cb', 'cfull'], {
      cfull: { dataDir: mounted, collect: true, args: ['--collect-interval', '200ms'] },
    })) as [MemberProcess, MemberProcess, MemberProcess]
    await waitFor(
      async () => {
        const report = await health(a)
        return (
          report.array.state === 'critical' &&
          report.members.find((m) => m.name === 'cfull')?.state === 'critical'
        )
      },
      { timeoutMs: 30_000, what: 'the array critical' },
    )
    const report = await health(a)
    expect(report.array.rules).toContain('member-critical')
    expect(report.members.find((m) => m.name === 'cfull')?.rules).toEqual(['disk-low'])
    const own = await health(full)
    expect(own.members.find((m) => m.name === 'cfull')?.state).toBe('critical')
    // Its health.change event names the rule.
    const events = (await (
      await fetch(`${a.url}/v1/events?from=0&type=health.change&member=cfull`)
    ).json()) as {
      events: Array<{ severity: string; attrs: Record<string, unknown> }>
    }
    expect(events.events.at(-1)).toMatchObject({
      severity: 'critical',
      attrs: { to: 'critical', rules: 'disk-low' },
    })
  })
})
