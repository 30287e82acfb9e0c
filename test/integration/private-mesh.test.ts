// A private mesh: only holders of the swarm key complete a connection, and
// with --allow-peer only listed peers, so an outsider can neither join,
// announce to, nor query the array.

import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKey } from '@libp2p/pnet'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import type { ResultPage } from '../../node/query/coordinator.ts'
import { removeTempDirs, stateOf, tempDir, testConfig, waitFor } from '../helpers.ts'
import { runCli } from '../process/harness.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

function swarmKey(): Uint8Array {
  const key = new Uint8Array(95)
  generateKey(key)
  return key
}

async function start(
  name: string,
  options: { swarmKey?: Uint8Array; join?: string[]; allowPeers?: string[] },
) {
  const config = {
    ...(await testConfig(name)),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    join: options.join ?? [],
    allowPeers: options.allowPeers ?? [],
    ...(options.swarmKey === undefined ? {} : { swarmKey: options.swarmKey }),
  }
  const member = await createMember(config)
  members.push(member)
  await member.start()
  return member
}

async function cannotConnect(from: Member, to: Member) {
  const target = multiaddr(to.p2pAddrs()[0] as string)
  try {
    const connection = await from.mesh.host.dial(target, { signal: AbortSignal.timeout(5000) })
    // A refused peer may see its dial resolve and then be cut off at once.
    await waitFor(() => connection.status !== 'open', { what: 'the refused connection closed' })
  } catch {
    // Refused outright: what we want.
  }
  expect(
    from.mesh.host.getConnections(to.mesh.host.peerId).filter((c) => c.status === 'open'),
  ).toHaveLength(0)
}

describe('chorus keygen', () => {
  it('writes a swarm key readable only by its owner and never overwrites one', async () => {
    const file = join(await tempDir(), 'swarm.key')
    const first = await runCli(['keygen', '--out', file])
    expect(first.code, first.stderr).toBe(0)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    const again = await runCli(['keygen', '--out', file])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/exists; not overwriting a swarm key/)
  })
})

describe('a private mesh', () => {
  it('keeps out a process without the key and one with another key: no connection, no announcement, no query', async () => {
    const key = swarmKey()
    const a = await start('pa', { swarmKey: key })
    const b = await start('pb', { swarmKey: key, join: [a.p2pAddrs()[0] as string] })
    await waitFor(() => stateOf(a, 'pb') === 'alive' && stateOf(b, 'pa') === 'alive', {
      what: 'pa and pb joined',
    })
    const stranger = await start('nokey', { join: [a.p2pAddrs()[0] as string] })
    const impostor = await start('otherkey', {
      swarmKey: swarmKey(),
      join: [a.p2pAddrs()[0] as string],
    })
    await cannotConnect(stranger, a)
    await cannotConnect(impostor, b)
    for (const outsider of [stranger, impostor]) {
      expect(stateOf(a, outsider.name)).toBeUndefined()
      expect(stateOf(b, outsider.name)).toBeUndefined()
      expect(stateOf(outsider, 'pa')).toBeUndefined()
      const page = (await (await outsider.app.request('/v1/events?from=0')).json()) as ResultPage
      expect(page.members.map((r) => r.name)).toEqual([outsider.name])
    }
    const inside = (await (await a.app.request('/v1/events?from=0')).json()) as ResultPage
    expect(inside.members.map((r) => r.name).sort()).toEqual(['pa', 'pb'])
  })

  it('with --allow-peer refuses a peer that holds the key but is not listed', async () => {
    const key = swarmKey()
    const a = await start('la', { swarmKey: key })
    const b = await start('lb', { swarmKey: key, join: [a.p2pAddrs()[0] as string] })
    await waitFor(() => stateOf(a, 'lb') === 'alive', { what: 'lb joined' })
    await a.stop()
    members.splice(members.indexOf(a), 1)
    // Restart la with an allow-list naming lb only.
    const listed = await start('la2', { swarmKey: key, allowPeers: [b.peerId] })
    const unlisted = await start('lc', { swarmKey: key })
    await cannotConnect(unlisted, listed)
    const friend = await b.mesh.host.dial(multiaddr(listed.p2pAddrs()[0] as string), {
      signal: AbortSignal.timeout(5000),
    })
    expect(friend.status).toBe('open')
    await b.mesh.membership.syncWith(listed.peerId)
    await waitFor(() => stateOf(listed, 'lb') === 'alive', { what: 'lb allowed in' })
    expect(stateOf(listed, 'lc')).toBeUndefined()
  })
})
