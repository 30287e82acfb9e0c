// The chorus dashboard: plain JavaScript, served by the member itself, every
// asset by relative URL. Views live in the URL hash (#/overview, #/events?…,
// #/rates?…), so a view can be shared and reloaded. With tokens configured,
// the API answers 401 and the page asks for a read token, kept for the
// session (sessionStorage).

const $ = (selector) => document.querySelector(selector)
const TOKEN_KEY = 'chorus.token'
const POLL_MS = 2000
let pollTimer

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY)
  const response = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} })
  if (response.status === 401 || response.status === 403) {
    showToken()
    throw new Error('token required')
  }
  const body = await response.json()
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`)
  return body
}

function showToken() {
  $('#token').hidden = false
  $('#token-input').focus()
}

$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('#token-input').value)
  $('#token').hidden = true
  route()
})

function cell(row, text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  row.append(td)
  return td
}

function fmtTime(ms) {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '')
}

function parseHash() {
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?')
  return { view: path.replace(/^\//, '') || 'overview', params: new URLSearchParams(query) }
}

function setHash(view, params) {
  const query = params.toString()
  history.replaceState(null, '', `#/${view}${query ? `?${query}` : ''}`)
}

// ---- overview ----

async function overview() {
  const [members, health, rates] = await Promise.all([
    api('v1/members'),
    api('v1/health'),
    api('v1/rollups?from=2m&step=10s&by=member').catch(() => ({ series: [] })),
  ])
  const badge = $('#array-health')
  badge.textContent = `array ${health.array.state}`
  badge.className = `badge ${health.array.state}`
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

// ---- events explorer ----

function filtersToParams(form) {
  const data = new FormData(form)
  const params = new URLSearchParams()
  const range = data.get('range')
  if (range === 'custom') {
    if (data.get('from')) params.set('from', data.get('from'))
    if (data.get('to')) params.set('to', data.get('to'))
  } else {
    params.set('range', range)
  }
  for (const key of ['type', 'severity', 'member', 'q'])
    if (data.get(key)) params.set(key, data.get(key))
  return params
}

function paramsToForm(form, params) {
  form.range.value = params.get('range') ?? (params.get('from') ? 'custom' : '15m')
  form.dataset.range = form.range.value
  for (const key of ['from', 'to', 'type', 'severity', 'member', 'q'])
    form[key].value = params.get(key) ?? ''
}

let page

async function explore(params) {
  const query = new URLSearchParams()
  if (params.get('cursor')) {
    query.set('cursor', params.get('cursor'))
  } else {
    query.set('from', params.get('range') ?? params.get('from') ?? '15m')
    if (params.get('to')) query.set('to', params.get('to'))
    for (const key of ['type', 'severity', 'member', 'q'])
      if (params.get(key)) query.set(key, params.get(key))
    query.set('order', 'desc')
    query.set('limit', params.get('limit') ?? '50')
  }
  page = await api(`v1/events?${query}`)
  const tbody = $('#results tbody')
  tbody.replaceChildren()
  for (const e of page.events) {
    const row = document.createElement('tr')
    row.tabIndex = 0
    row.dataset.id = e.id
    cell(row, fmtTime(e.ts))
    cell(row, e.memberName)
    cell(row, e.type)
    cell(row, e.severity)
    cell(row, e.message ?? '')
    row.addEventListener('click', () => details(e.id))
    row.addEventListener('keydown', (k) => {
      if (k.key === 'Enter') details(e.id)
    })
    tbody.append(row)
  }
  $('#summary').textContent =
    `${page.events.length} events, first id ${page.firstId ?? '-'} … last id ${page.lastId ?? '-'}`
  const missing = page.members.filter((m) => m.status !== 'ok')
  $('#partial').hidden = !page.partial
  $('#partial').textContent = page.partial
    ? `Partial result: ${missing.map((m) => `${m.name} ${m.status.replace('_', ' ')}`).join(', ')}`
    : ''
  // Newest first: "Older" follows next, "Newer" follows prev.
  $('#older').disabled = page.next === null
  $('#newer').disabled = page.prev === null
}

async function details(id) {
  const e = await api(`v1/events/${encodeURIComponent(id)}`)
  $('#details-id').textContent = id
  const dl = $('#details-fields')
  dl.replaceChildren()
  const add = (k, v) => {
    const dt = document.createElement('dt')
    dt.textContent = k
    const dd = document.createElement('dd')
    dd.textContent = typeof v === 'object' ? JSON.stringify(v) : String(v)
    dl.append(dt, dd)
  }
  for (const [k, v] of Object.entries(e))
    if (k !== 'attrs') add(k, k === 'ts' ? `${v} (${fmtTime(v)})` : v)
  for (const [k, v] of Object.entries(e.attrs ?? {})) add(`attrs.${k}`, v)
  $('#details').hidden = false
  $('#details-close').focus()
}

$('#details-close').addEventListener('click', () => {
  $('#details').hidden = true
})

$('#filters').addEventListener('change', (e) => {
  e.currentTarget.dataset.range = e.currentTarget.range.value
})
$('#filters').addEventListener('submit', (e) => {
  e.preventDefault()
  setHash('events', filtersToParams(e.currentTarget))
  route()
})

function follow(cursor) {
  const { params } = parseHash()
  params.set('cursor', cursor)
  setHash('events', params)
  route()
}
$('#older').addEventListener('click', () => page?.next && follow(page.next))
$('#newer').addEventListener('click', () => page?.prev && follow(page.prev))

// ---- rates ----

const charts = []

function draw(target, title, t, series) {
  const el = $(target)
  el.replaceChildren()
  if (t.length === 0) {
    el.textContent = `${title}: no data in this range`
    return
  }
  const width = Math.max(300, el.clientWidth || 800)
  const chart = new uPlot(
    {
      title,
      width,
      height: 260,
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: `hsl(${(i * 67) % 360} 60% 45%)`,
          fill: `hsl(${(i * 67) % 360} 60% 45% / 0.25)`,
        })),
      ],
      axes: [{}, {}],
    },
    [t.map((x) => x / 1000), ...series.map((s) => s.values)],
    el,
  )
  charts.push(chart)
}

async function rates(params) {
  const form = $('#rates-form')
  form.range.value = params.get('range') ?? '1h'
  form.by.value = params.get('by') ?? 'type'
  form.p99type.value = params.get('p99type') ?? ''
  for (const c of charts.splice(0)) c.destroy()
  const by = form.by.value
  const answer = await api(`v1/rollups?from=${form.range.value}&by=${by}`)
  const t = answer.series[0]?.buckets.map((b) => b.t) ?? []
  // Stacked: each series drawn as the running sum of those before it.
  let running = t.map(() => 0)
  const stacked = answer.series.map((s) => {
    running = s.buckets.map((b, i) => running[i] + b.count)
    return { label: s.key[by], values: running }
  })
  draw('#rate-chart', `Events per ${answer.step} by ${by} (stacked)`, t, stacked.reverse())
  if (form.p99type.value) {
    const p99 = await api(
      `v1/rollups?from=${form.range.value}&type=${encodeURIComponent(form.p99type.value)}&q=0.99`,
    )
    const s = p99.series[0]
    draw(
      '#p99-chart',
      `p99 of value, ${form.p99type.value}, whole array`,
      s?.buckets.map((b) => b.t) ?? [],
      s ? [{ label: 'p99', values: s.buckets.map((b) => b.quantiles?.['0.99'] ?? null) }] : [],
    )
  } else {
    $('#p99-chart').replaceChildren()
  }
}

$('#rates-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const data = new FormData(e.currentTarget)
  setHash('rates', new URLSearchParams([...data.entries()].filter(([, v]) => v !== '')))
  route()
})

// ---- routing ----

async function route() {
  clearInterval(pollTimer)
  const { view, params } = parseHash()
  for (const id of ['overview', 'events', 'rates']) {
    $(`#${id}`).hidden = id !== view
    $(`#nav-${id}`).toggleAttribute('aria-current', id === view)
    if (id === view) $(`#nav-${id}`).setAttribute('aria-current', 'page')
  }
  try {
    if (view === 'overview') {
      await overview()
      pollTimer = setInterval(() => overview().catch(() => {}), POLL_MS)
    } else if (view === 'events') {
      paramsToForm($('#filters'), params)
      await explore(params)
    } else if (view === 'rates') {
      await rates(params)
    }
    api('v1/health').then(
      (h) => {
        $('#array-health').textContent = `array ${h.array.state}`
        $('#array-health').className = `badge ${h.array.state}`
      },
      () => {},
    )
  } catch (err) {
    if (err.message !== 'token required') console.error(err)
  }
}

window.addEventListener('hashchange', route)
route()
