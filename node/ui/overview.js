// Overview: the array as one server. Cards for the members alive, the
// array's health, events/s and errors/min over the last 15 minutes against
// the 15 before, and the share of this member's answers that were partial
// (chorus_query_answers_total has every member's, for Prometheus); then one
// row per member with its state, health and small charts (CPU, memory,
// data-dir disk use, event rate, error rate) from the rollups. Members and
// health are polled every 2 s, the charts every 10 s.

import {
  $,
  api,
  byName,
  cell,
  fmtBytes,
  fmtNumber,
  fmtPercent,
  go,
  seriesOf,
  showError,
  sparkline,
  uplotReady,
  view,
} from './core.js'

const POLL_MS = 2000
const CHART_MS = 10_000
const STEP_S = 30
const WINDOW_MS = 15 * 60_000
let timer
let lastCharts = 0
let painted = false
let generation = 0
/** Member name → { row, charts }. */
const rows = new Map()

const HEALTH_CLASS = { ok: 'state-alive', warning: 'state-suspect', critical: 'state-dead' }

const CHARTS = [
  { key: 'cpu', label: 'CPU busy', format: fmtPercent, range: [0, 1] },
  { key: 'memory', label: 'Memory used', format: (v) => (v == null ? '–' : fmtBytes(v)) },
  { key: 'disk', label: 'Data-dir disk used', format: fmtPercent, range: [0, 1] },
  { key: 'events', label: 'Events/s', format: (v) => fmtNumber(v, '/s') },
  { key: 'errors', label: 'Errors/min', format: (v) => fmtNumber(v, '/min') },
]

function card(id, figure, note, className = '') {
  const el = $(`#${id}`)
  const fig = el.querySelector('.figure')
  fig.textContent = figure
  fig.className = `figure ${className}`
  el.querySelector('.muted').textContent = note
}

function change(now, before) {
  if (before === 0)
    return now === 0 ? 'no change against the 15 min before' : 'none the 15 min before'
  const pct = ((now - before) / before) * 100
  return `${pct >= 0 ? '+' : '−'}${Math.abs(pct).toFixed(0)} % against the 15 min before`
}

/** Sums of counts in the last 15 min and the 15 before, over every series of an answer. */
function windows(answer, now) {
  let recent = 0
  let before = 0
  for (const s of answer.series)
    for (const b of s.buckets) {
      if (b.t >= now - WINDOW_MS) recent += b.count
      else if (b.t >= now - 2 * WINDOW_MS) before += b.count
    }
  return { recent, before }
}

function rowFor(m, self) {
  let entry = rows.get(m.name)
  if (entry) return entry
  const row = document.createElement('tr')
  row.dataset.member = m.name
  const name = document.createElement('td')
  const link = document.createElement('a')
  link.href = `#/member?name=${encodeURIComponent(m.name)}`
  link.textContent = m.member === self ? `${m.name} (this member)` : m.name
  name.append(link)
  row.append(name)
  cell(row, '')
  cell(row, '')
  // The charts come with the first rollups (after the members are shown).
  const charts = {}
  for (const _ of CHARTS) cell(row, '–')
  row.addEventListener('click', (e) => {
    if (e.target instanceof HTMLAnchorElement) return
    go('member', new URLSearchParams({ name: m.name }))
  })
  entry = { row, charts }
  rows.set(m.name, entry)
  return entry
}

async function renderMembers() {
  // Members first (the first paint), their health as soon as it comes.
  const healthAnswer = api('v1/health')
  healthAnswer.catch(() => {})
  const members = await api('v1/members')
  const tbody = $('#members tbody')
  const order = [...members.members].sort(byName)
  for (const name of rows.keys())
    if (!order.some((m) => m.name === name)) {
      for (const c of Object.values(rows.get(name).charts)) c.destroy()
      rows.get(name).row.remove()
      rows.delete(name)
    }
  for (const m of order) {
    const { row } = rowFor(m, members.self)
    const stateTd = row.children[1]
    stateTd.textContent = m.state
    stateTd.className = `state-${m.state}`
    tbody.append(row)
  }
  const alive = members.members.filter((m) => m.state === 'alive').length
  const down = members.members.filter((m) => m.state === 'dead' || m.state === 'suspect')
  card(
    'card-members',
    `${alive} / ${members.members.length}`,
    down.length ? `down: ${down.map((m) => `${m.name} (${m.state})`).join(', ')}` : 'all alive',
    down.length ? 'warning' : '',
  )
  if (!painted) {
    painted = true
    performance.mark('chorus:members')
  }
  const health = await healthAnswer
  const healthOf = new Map(health.members.map((h) => [h.member, h]))
  for (const m of order) {
    const healthTd = rows.get(m.name).row.children[2]
    const h = healthOf.get(m.member)
    healthTd.textContent = h
      ? h.state + (h.rules.length ? ` (${h.rules.join(', ')})` : '')
      : 'unknown'
    healthTd.className = HEALTH_CLASS[h?.state] ?? ''
  }
  card('card-health', health.array.state, firingText(health), health.array.state)
  const { total, partial } = health.answers
  card(
    'card-partial',
    total === 0 ? '–' : fmtPercent(partial / total),
    total === 0
      ? 'no pages, exports or rollups answered here yet'
      : `${partial} of ${total} pages, exports and rollups this member answered`,
    partial > 0 ? 'warning' : '',
  )
  return { down, health, members }
}

async function renderCharts(now) {
  const charting = uplotReady()
  const q = (query) => api(`v1/rollups?${query}`)
  const host = (type) => q(`from=15m&step=${STEP_S}s&type=${type}&by=member`)
  const [events, errors, cpu, memory, disk] = await Promise.all([
    q(`from=30m&step=${STEP_S}s&by=member`),
    q(`from=30m&step=${STEP_S}s&by=member&severity=error`),
    host('host.cpu'),
    host('host.memory'),
    host('host.disk'),
  ])
  await charting
  const ev = windows(events, now)
  card('card-events', fmtNumber(ev.recent / (WINDOW_MS / 1000), '/s'), change(ev.recent, ev.before))
  const er = windows(errors, now)
  card(
    'card-errors',
    fmtNumber(er.recent / (WINDOW_MS / 60_000), '/min'),
    change(er.recent, er.before),
    er.recent > 0 ? 'warning' : '',
  )
  const recent = (s) => (s ? s.buckets.filter((b) => b.t >= now - WINDOW_MS) : [])
  for (const [name, { row, charts }] of rows) {
    CHARTS.forEach((c, i) => {
      if (charts[c.key]) return
      const td = row.children[3 + i]
      td.textContent = ''
      charts[c.key] = sparkline(td, {
        label: `${c.label} of ${name}`,
        format: c.format,
        range: c.range,
      })
    })
    const draw = (chart, answer, value) => {
      const buckets = recent(seriesOf(answer, 'member', name))
      chart.update(
        buckets.map((b) => b.t),
        buckets.map(value),
      )
    }
    const valued = (b) => (b.count > 0 ? (b.avg ?? null) : null)
    draw(charts.cpu, cpu, valued)
    draw(charts.memory, memory, valued)
    draw(charts.disk, disk, (b) => (b.count > 0 && b.avg != null ? 1 - b.avg : null))
    draw(charts.events, events, (b) => b.count / STEP_S)
    draw(charts.errors, errors, (b) => b.count / (STEP_S / 60))
  }
  return [events, errors, cpu, memory, disk].flatMap((a) =>
    a.partial ? a.members.filter((m) => m.status !== 'ok' || m.missing).map((m) => m.name) : [],
  )
}

/**
 * What each firing rule measures now, as text by `rule@member` (array
 * rules by `rule@`): `3 events (> 2 events)`. Member rules are measured
 * from the member's rollups as its page does (member.js, loaded only when
 * a rule fires); array rules from the members table.
 */
async function firingValues(health, members) {
  const values = new Map()
  const firing = health.members.flatMap((h) => h.rules.map((rule) => ({ rule, h })))
  if (firing.length === 0 && health.array.rules.length === 0) return values
  const [{ arrayValue, ruleCondition, ruleFormat, valueNow }, config] = await Promise.all([
    import('./member.js'),
    api('v1/config/health'),
  ])
  const rules = new Map(config.rules.map((r) => [r.name, r]))
  const self = members.members.find((m) => m.member === members.self)
  await Promise.all(
    firing.map(async ({ rule, h }) => {
      const r = rules.get(rule)
      const m = members.members.find((x) => x.member === h.member)
      if (r?.kind !== 'member' || m === undefined) return
      const value = await valueNow(r, m, self, members.members).catch(() => null)
      values.set(`${rule}@${h.member}`, `${ruleFormat(r)(value)} (${ruleCondition(r)})`)
    }),
  )
  for (const rule of health.array.rules) {
    const r = rules.get(rule)
    if (r?.kind === 'array') values.set(`${rule}@`, arrayValue(r, members.members))
  }
  return values
}

/** The health card's note: every rule that fires, where, and its value when known. */
function firingText(health) {
  const texts = [
    ...health.array.rules.map((rule) => {
      const value = ruleValues.get(`${rule}@`)
      return value ? `${rule}: ${value}` : rule
    }),
    ...health.members.flatMap((h) =>
      h.rules.map((rule) => {
        const value = ruleValues.get(`${rule}@${h.member}`)
        return `${rule} on ${h.name}${value ? `: ${value}` : ''}`
      }),
    ),
  ]
  return texts.length ? `rules that fire: ${texts.join('; ')}` : 'no rule fires'
}

let partialRows = []
/** Firing rules' values by `rule@member`, measured with the charts (every 10 s). */
let ruleValues = new Map()
let busy = false

async function render() {
  if (busy) return
  busy = true
  try {
    await renderOnce()
  } finally {
    busy = false
  }
}

async function renderOnce() {
  const gen = generation
  const { down, health, members } = await renderMembers()
  if (gen !== generation) return
  const now = Date.now()
  if (now - lastCharts >= CHART_MS) {
    lastCharts = now
    const [partial, values] = await Promise.all([
      renderCharts(now),
      firingValues(health, members).catch(() => new Map()),
    ])
    partialRows = partial
    ruleValues = values
    $('#card-health .muted').textContent = firingText(health)
  }
  const reasons = [
    ...down.map((m) => `${m.name} is ${m.state}`),
    ...[...new Set(partialRows)]
      .filter((n) => !down.some((m) => m.name === n))
      .map((n) => `${n} did not answer`),
  ]
  const banner = $('#overview-partial')
  banner.hidden = reasons.length === 0
  banner.textContent = reasons.length
    ? `Answers are partial: ${reasons.join(', ')}. Events and host samples it has not shared are missing from the totals and charts until it is back.`
    : ''
  showError($('#overview-error'), null)
}

view('overview', {
  async show() {
    generation++
    lastCharts = 0
    try {
      await render()
    } catch (err) {
      showError($('#overview-error'), err, 'the members')
      throw err
    }
    timer = setInterval(
      () => render().catch((err) => showError($('#overview-error'), err, 'the members')),
      POLL_MS,
    )
  },
  leave() {
    generation++
    clearInterval(timer)
  },
})
