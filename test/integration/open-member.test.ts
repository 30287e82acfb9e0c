// A member without tokens on loopback is open only to this machine: a web
// page the operator visits must not write to it (a cross-site "simple"
// request) nor read it through a name of its own (DNS rebinding). And on any
// member, only JSON and NDJSON bodies are ingested.

import { afterEach, describe, expect, it } from 'vitest'
import { createMember, type Member } from '../../node/index.ts'
import { type ApiBody, removeTempDirs, testConfig } from '../helpers.ts'
import { rawRequest } from '../raw-http.ts'

const members: Member[] = []
afterEach(async () => {
  await Promise.all(members.splice(0).map((m) => m.stop()))
  await removeTempDirs()
})

async function openMember(name: string, overrides = {}): Promise<Member> {
  const member = await createMember(await testConfig(name, overrides))
  members.push(member)
  return member
}

async function post(member: Member, headers: Record<string, string>, body = '{"type":"x.y"}') {
  const response = await member.app.request('/v1/events', { method: 'POST', headers, body })
  return { status: response.status, body: (await response.json()) as ApiBody }
}

/** A POST over real HTTP with the headers given, Host and Origin included. */
async function raw(url: string, headers: Record<string, string>, body: string) {
  const answer = await rawRequest(url, { method: 'POST', headers, body })
  return { status: answer.status, body: JSON.parse(answer.body) as ApiBody }
}

const JSON_TYPE = { 'content-type': 'application/json' }

describe('a member without tokens on loopback', () => {
  it('refuses a Host that is not a loopback name (DNS rebinding) with 403 naming the rule, and stores nothing', async () => {
    const member = await openMember('rebind')
    for (const host of [
      'attacker.example',
      'attacker.example:7700',
      '192.0.2.1:7700',
      'localhost.attacker.example',
    ]) {
      const write = await post(member, { ...JSON_TYPE, host })
      expect(write.status, host).toBe(403)
      expect(write.body.error.code).toBe('host_not_allowed')
      expect(write.body.error.details.map((d) => d.field)).toEqual(['host'])
      expect(write.body.error.message).toMatch(/loopback/)
      const read = await member.app.request('/v1/events?from=0', { headers: { host } })
      expect(read.status, host).toBe(403)
    }
    expect(member.log.lastSeq).toBe(0)
    for (const host of [
      'localhost',
      'LOCALHOST:7700',
      '127.0.0.1:7700',
      '127.9.8.7',
      '[::1]:7700',
    ]) {
      expect((await post(member, { ...JSON_TYPE, host })).status, host).toBe(201)
    }
  })

  it('refuses a web page of another site (Origin) with 403, and takes its own pages and tools without Origin', async () => {
    const member = await openMember('origin')
    for (const origin of ['https://attacker.example', 'null', 'http://192.0.2.1:7700']) {
      const write = await post(member, { ...JSON_TYPE, origin })
      expect(write.status, origin).toBe(403)
      expect(write.body.error.code).toBe('origin_not_allowed')
      expect(write.body.error.details.map((d) => d.field)).toEqual(['origin'])
    }
    expect(member.log.lastSeq).toBe(0)
    for (const origin of ['http://127.0.0.1:7700', 'http://localhost:5173', 'https://[::1]:7700']) {
      expect((await post(member, { ...JSON_TYPE, origin })).status, origin).toBe(201)
    }
    expect((await post(member, JSON_TYPE)).status).toBe(201)
  })

  it('refuses over real HTTP the request a cross-site form or fetch would send, and answers the dashboard', async () => {
    const member = await openMember('wire')
    await member.start()
    const url = `${member.url}/v1/events`
    const simple = await raw(
      url,
      { 'content-type': 'text/plain', origin: 'https://attacker.example' },
      '{"type":"page.write"}',
    )
    expect(simple.status).toBe(403)
    const rebound = await raw(
      url,
      { ...JSON_TYPE, host: `attacker.example:${member.url.split(':').at(-1)}` },
      '{"type":"page.write"}',
    )
    expect(rebound.status).toBe(403)
    expect(rebound.body.error.code).toBe('host_not_allowed')
    expect(member.log.lastSeq).toBe(0)
    expect((await fetch(`${member.url}/`)).status).toBe(200)
    expect((await fetch(`${member.url}/v1/events?from=0`)).status).toBe(200)
  })

  it('with tokens, answers any Host and Origin that brings a valid token', async () => {
    const token = 'ingest-token-0123456789'
    const member = await openMember('guarded', { tokens: [{ scope: 'ingest', token }] })
    const write = await post(member, {
      ...JSON_TYPE,
      host: 'chorus.example:443',
      origin: 'https://dashboard.example',
      authorization: `Bearer ${token}`,
    })
    expect(write.status).toBe(201)
  })
})

describe('ingest content types', () => {
  it('refuses text/plain, forms, a missing type and other charsets with 415, storing nothing', async () => {
    const member = await openMember('types')
    const refused: Array<Record<string, string>> = [
      { 'content-type': 'text/plain' },
      { 'content-type': 'text/plain;charset=UTF-8' },
      { 'content-type': 'application/x-www-form-urlencoded' },
      { 'content-type': 'multipart/form-data; boundary=x' },
      { 'content-type': 'application/json; charset=iso-8859-1' },
      {},
    ]
    for (const headers of refused) {
      const answer = await post(member, headers)
      expect(answer.status, JSON.stringify(headers)).toBe(415)
      expect(answer.body.error.code).toBe('unsupported_media_type')
      expect(answer.body.error.details.map((d) => d.field)).toEqual(['content-type'])
      expect(answer.body.error.message).toMatch(/application\/json or application\/x-ndjson/)
    }
    expect(member.log.lastSeq).toBe(0)
  })

  it('takes application/json and application/x-ndjson, with or without a UTF-8 charset', async () => {
    const member = await openMember('typed')
    for (const type of [
      'application/json',
      'application/json; charset=utf-8',
      'Application/JSON;charset="UTF-8"',
      'application/x-ndjson',
      'application/x-ndjson; charset=UTF-8',
    ]) {
      expect((await post(member, { 'content-type': type })).status, type).toBe(201)
    }
    expect(member.log.lastSeq).toBe(5)
  })
})
