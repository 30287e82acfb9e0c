// Overview: every member of the array, its state, health, event rate, newest
// event and clock offset, polled every 2 s while the view is open.

import { $, api, cell, fmtTime, view } from './core.js'

const POLL_MS = 2000
let timer

async function render() {
  const [members, health, rates] = await Promise.all([
    api('v1/members'),
    api('v1/health'),
    api('v1/rollups?from=2m&step=10s&by=member').catch(() => ({ series: [] })),
  ])
  const healthOf = new Map(health.members.map((m) => [m.member, m]))
  const perSecond = new Map()
  const newest = new Map()
  for (const s of rates.series) {
    // The last complete 10 s bucket gives the rate; the newest bucket with events, the newest time.
    const full = s.buckets.at(-2)
    perSecond.set(s.key.member, full ? full.count / 10 : 0)
    const last = [...s.buckets].reverse().find((b) => b.count > 0)
    if (last) newest.set(s.key.member, last.t)
  }
  const tbody = $('#members tbody')
  tbody.replaceChildren()
  for (const m of members.members) {
    const row = document.createElement('tr')
    row.dataset.member = m.name
    cell(row, m.member === members.self ? `${m.name} (this member)` : m.name)
    cell(row, m.state, `state-${m.state}`)
    const h = healthOf.get(m.member)
    cell(
      row,
      h ? h.state + (h.rules.length ? ` (${h.rules.join(', ')})` : '') : 'unknown',
      h?.state,
    )
    cell(row, (perSecond.get(m.name) ?? 0).toFixed(1))
    cell(row, newest.has(m.name) ? fmtTime(newest.get(m.name)) : '-')
    cell(row, `${m.offsetMs} ms`)
    tbody.append(row)
  }
  $('#overview-rules').textContent = health.array.rules.length
    ? `Array rules that fired: ${health.array.rules.join(', ')}`
    : ''
}

view('overview', {
  async show() {
    await render()
    timer = setInterval(() => render().catch(() => {}), POLL_MS)
  },
  leave() {
    clearInterval(timer)
  },
})
