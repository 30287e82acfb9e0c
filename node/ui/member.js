// A member's page (#/member?name=X&range=15m): its host charts over the
// range, its health rules with the value now against the threshold, its
// newest warnings and errors, and its membership facts.

import {
  $,
  api,
  cell,
  fmtBytes,
  fmtMs,
  fmtNumber,
  fmtPercent,
  go,
  showError,
  timeChart,
  timeElement,
  uplotReady,
  view,
} from './core.js'

const STEPS = { '15m': 30, '1h': 60, '24h': 600 }
const bytes = (v) => (v == null ? '–' : fmtBytes(v))
const charts = []
let generation = 0

/** How to show the value of an event type's samples. */
function formatOf(type) {
  if (type === 'host.cpu') return fmtPercent
  if (type === 'host.disk') return fmtPercent
  if (type === 'host.memory' || type === 'process.memory') return bytes
  if (type === 'process.event_loop_delay') return (v) => (v == null ? '–' : fmtMs(v * 1000))
  return (v) => fmtNumber(v)
}

function ruleWords(rule) {
  if (rule.kind === 'array') {
    const w = rule.when
    const k = w.atLeast ?? 1
    if ('aliveBelow' in w) return `fewer than ${w.aliveBelow} of the members alive`
    if ('membersIn' in w) return `at least ${k} member(s) ${w.membersIn.join(' or ')}`
    return `at least ${k} member(s) ${w.membersWithHealth} or worse`
  }
  const m = rule.metric
  const what =
    'clockOffsetMs' in m
      ? 'largest clock offset from the others'
      : 'clockJumpMs' in m
        ? 'clock jump not followed by the stamps'
        : `${m.measure} of ${m.type}${m.minSeverity ? ` (${m.minSeverity} or worse)` : ''} over ${rule.window ?? '1m'}`
  return what
}

export function ruleFormat(rule) {
  const m = rule.metric
  if ('clockOffsetMs' in m || 'clockJumpMs' in m) return fmtMs
  if (m.measure === 'count') return (v) => (v == null ? '–' : `${Math.round(v)} events`)
  if (m.measure === 'rate_per_minute') return (v) => fmtNumber(v, '/min')
  return formatOf(m.type)
}

export function ruleCondition(rule) {
  if (rule.kind === 'array') return ruleWords(rule)
  const f = ruleFormat(rule)
  return `${rule.op} ${f(rule.threshold)}${rule.for && rule.for !== '0s' ? ` for ${rule.for}` : ''}`
}

export { ruleWords }

/**
 * An array rule's measure now, as text, from the members table (as the
 * members judge it: members that left do not count).
 */
export function arrayValue(rule, members) {
  const present = members.filter((m) => m.state !== 'left')
  const w = rule.when
  if ('aliveBelow' in w)
    return `${present.filter((m) => m.state === 'alive').length} of ${present.length} alive`
  if ('membersIn' in w) {
    const n = present.filter((m) => w.membersIn.includes(m.state)).length
    return `${n} ${w.membersIn.join(' or ')}`
  }
  const worse = (h) => h === 'critical' || (w.membersWithHealth === 'warning' && h === 'warning')
  return `${present.filter((m) => worse(m.health)).length} ${w.membersWithHealth} or worse`
}

/** A member rule's measure now, from the member's rollups (as the member computes it, near enough). */
export async function valueNow(rule, member, self, all) {
  const m = rule.metric
  if ('clockOffsetMs' in m) {
    // This member's offsets from the others, as the member answering sees them.
    if (member.member !== self?.member) return Math.abs(member.offsetMs)
    const others = all.filter((x) => x.member !== self.member && x.state === 'alive')
    return others.length ? Math.max(...others.map((x) => Math.abs(x.offsetMs))) : null
  }
  if ('clockJumpMs' in m) return null
  const params = new URLSearchParams({
    from: rule.window ?? '1m',
    step: '10s',
    member: member.name,
  })
  if (m.type !== '*') params.set('type', m.type)
  if (m.minSeverity) params.set('severity', m.minSeverity)
  const answer = await api(`v1/rollups?${params}`)
  const buckets = answer.series.flatMap((s) => s.buckets).filter((b) => b.count > 0)
  const count = buckets.reduce((n, b) => n + b.count, 0)
  const windowMin =
    (Number.parseInt(rule.window ?? '1m', 10) || 1) *
    (rule.window?.endsWith('h') ? 60 : rule.window?.endsWith('s') ? 1 / 60 : 1)
  const valued = buckets.filter((b) => b.avg != null)
  switch (m.measure) {
    case 'count':
      return count
    case 'rate_per_minute':
      return count / windowMin
    case 'avg': {
      const n = valued.reduce((x, b) => x + b.count, 0)
      return n ? valued.reduce((x, b) => x + (b.sum ?? 0), 0) / n : null
    }
    case 'max':
      return valued.length ? Math.max(...valued.map((b) => b.max)) : null
    case 'min':
      return valued.length ? Math.min(...valued.map((b) => b.min)) : null
    case 'last':
      return valued.length ? valued.at(-1).last : null
  }
  return null
}

async function drawCharts(name, range) {
  const step = STEPS[range] ?? 30
  const base = `from=${range}&step=${step}s&member=${encodeURIComponent(name)}`
  const specs = [
    { title: 'CPU busy', type: 'host.cpu', format: fmtPercent, range: [0, 1] },
    { title: 'Load (1 min)', type: 'host.load', format: (v) => fmtNumber(v) },
    { title: 'Memory used', type: 'host.memory', format: bytes },
    {
      title: 'Data-dir disk used',
      type: 'host.disk',
      format: fmtPercent,
      range: [0, 1],
      map: (v) => (v == null ? null : 1 - v),
    },
    { title: 'Process memory (RSS)', type: 'process.memory', format: bytes },
  ]
  const [answers] = await Promise.all([
    Promise.all([
      ...specs.map((s) => api(`v1/rollups?${base}&type=${s.type}`)),
      api(`v1/rollups?${base}`),
      api(`v1/rollups?${base}&severity=error`),
    ]),
    uplotReady(),
  ])
  for (const c of charts.splice(0)) c.destroy()
  const box = $('#member-charts')
  box.replaceChildren()
  const times = (a) => a.series[0]?.buckets.map((b) => b.t) ?? []
  specs.forEach((s, i) => {
    const a = answers[i]
    const buckets = a.series[0]?.buckets ?? []
    const chart = timeChart(box, {
      title: s.title,
      series: [s.title],
      format: s.format,
      range: s.range,
    })
    const map = s.map ?? ((v) => v)
    chart.update(
      times(a),
      buckets.map((b) => (b.count > 0 ? map(b.avg ?? null) : null)),
    )
    charts.push(chart)
  })
  const [events, errors] = answers.slice(specs.length)
  const rate = timeChart(box, {
    title: 'Events/s',
    series: ['Events/s'],
    format: (v) => fmtNumber(v, '/s'),
  })
  rate.update(
    times(events),
    (events.series[0]?.buckets ?? []).map((b) => b.count / step),
  )
  const err = timeChart(box, {
    title: 'Errors/min',
    series: ['Errors/min'],
    format: (v) => fmtNumber(v, '/min'),
  })
  const et = times(errors).length ? times(errors) : times(events)
  err.update(et, errors.series[0]?.buckets.map((b) => b.count / (step / 60)) ?? et.map(() => 0))
  charts.push(rate, err)
  if (answers.every((a) => a.series.length === 0)) {
    const p = document.createElement('p')
    p.className = 'muted'
    p.textContent = `No host samples from ${name} in this range: it may run with --no-collect, or have been down. Choose a longer range.`
    box.prepend(p)
  }
}

async function drawRules(member, self, all, health, config) {
  const tbody = $('#member-rules tbody')
  const firing = new Set(health.members.find((h) => h.member === member.member)?.rules ?? [])
  const memberRules = config.rules.filter((r) => r.kind === 'member')
  const values = await Promise.all(
    memberRules.map((r) => valueNow(r, member, self, all).catch(() => null)),
  )
  tbody.replaceChildren()
  memberRules.forEach((rule, i) => {
    const row = document.createElement('tr')
    cell(row, rule.name)
    cell(row, ruleWords(rule))
    cell(row, ruleFormat(rule)(values[i]), 'num')
    cell(row, `${ruleCondition(rule)} → ${rule.state}`)
    const fires = firing.has(rule.name)
    cell(row, fires ? `firing (${rule.state})` : 'no', fires ? 'firing' : '')
    tbody.append(row)
  })
}

async function drawEvents(name, range) {
  const page = await api(
    `v1/events?member=${encodeURIComponent(name)}&severity=warn&order=desc&limit=20&from=${range}`,
  )
  const tbody = $('#member-events tbody')
  tbody.replaceChildren()
  for (const e of page.events) {
    const row = document.createElement('tr')
    cell(row, '').append(timeElement(e.ts))
    cell(row, e.type)
    cell(row, e.severity, e.severity === 'warn' ? 'state-suspect' : 'state-dead')
    cell(row, e.message ?? '')
    tbody.append(row)
  }
  const empty = $('#member-events-empty')
  empty.hidden = page.events.length > 0
  empty.textContent = `No warnings or errors from ${name} in this range. Choose a longer range to look further back.`
}

function drawFacts(m, health) {
  const dl = $('#member-facts')
  dl.replaceChildren()
  const h = health.members.find((x) => x.member === m.member)
  const facts = [
    ['Name', m.name],
    ['Peer id', m.member],
    ['State', m.state],
    ['Health', h ? h.state + (h.rules.length ? ` (${h.rules.join(', ')})` : '') : m.health],
    ['Last seen', m.lastSeen ? timeElement(m.lastSeen) : '–'],
    ['HTTP', m.http ?? '–'],
    ['Addresses', (m.addrs ?? []).join('\n') || '–'],
    ['Seq (as this member knows it)', String(m.seq ?? '–')],
    ['Clock offset', fmtMs(m.offsetMs)],
    ['Version', m.version ?? '–'],
    [
      'Holders of its events',
      (m.holders ?? [])
        .map(
          (x) =>
            `${x.name}${x.lagEvents != null ? `: ${x.lagEvents} events behind` : ''}${x.lagMs != null ? `, ${fmtMs(x.lagMs)}` : ''}`,
        )
        .join('\n') || 'none',
    ],
  ]
  for (const [k, v] of facts) {
    const dt = document.createElement('dt')
    dt.textContent = k
    const dd = document.createElement('dd')
    dd.style.whiteSpace = 'pre-line'
    dd.style.margin = '0'
    if (typeof v === 'string') dd.textContent = v
    else dd.append(v)
    dl.append(dt, dd)
  }
}

async function load(params) {
  const gen = ++generation
  const name = params.get('name') ?? ''
  const range = STEPS[params.get('range')] ? params.get('range') : '15m'
  $('#member-form').range.value = range
  $('#member-name').textContent = name
  const error = $('#member-error')
  try {
    const [members, health, config] = await Promise.all([
      api('v1/members'),
      api('v1/health'),
      api('v1/config/health'),
    ])
    if (gen !== generation) return
    const m = members.members.find((x) => x.name === name || x.member === name)
    if (!m) {
      error.hidden = false
      error.textContent = `No member named "${name}" in the array. Open the Overview and choose one of its members.`
      return
    }
    showError(error, null)
    drawFacts(m, health)
    const self = members.members.find((x) => x.member === members.self)
    await Promise.all([
      drawCharts(m.name, range),
      drawRules(m, self, members.members, health, config),
      drawEvents(m.name, range),
    ])
  } catch (err) {
    showError(error, err, `member ${name}`)
    throw err
  }
}

$('#member-form').addEventListener('change', (e) => {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '')
  params.set('range', e.currentTarget.range.value)
  go('member', params, true)
})

let timer

view('member', {
  async show(params) {
    clearInterval(timer)
    await load(params)
    // Refreshed while open; an error shows in the view's banner.
    timer = setInterval(() => load(params).catch(() => {}), 15_000)
  },
  leave() {
    clearInterval(timer)
    generation++
  },
})
