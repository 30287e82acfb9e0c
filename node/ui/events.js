// Events: from a spike to its cause. A histogram of the period (stacked by
// severity; drag to narrow), the fields of the page with their top values
// (= and ≠ add filters), a page of the array's result set newest first with
// Older and Newer (its cursors), live mode (new events on top, from the
// stream), and an event's details with a permalink and the events around
// it across members. Every filter lives in the URL.

import { $, api, cell, go, TokenRequired, timeElement, view } from './core.js'
import { renderFields } from './fields.js'
import { addFilter, apiFilters, pageFilters, period } from './filters.js'
import { drawHistogram } from './histogram.js'
import { openStream } from './sse.js'

const MAX_ROWS = 1000
let page
let params = new URLSearchParams()
let generation = 0
let stream
let liveTimer
let buffered = []
let shownIds = new Set()
let openId
let loadedHash = ''

const wrap = () => $('#results-wrap')

function filtersToParams(form) {
  const data = new FormData(form)
  const next = new URLSearchParams()
  const range = data.get('range')
  if (range === 'custom') {
    if (data.get('from')) next.set('from', data.get('from'))
    if (data.get('to')) next.set('to', data.get('to'))
  } else {
    next.set('range', range)
  }
  for (const key of ['type', 'severity', 'member', 'q'])
    if (data.get(key)) next.set(key, data.get(key))
  // Filters the form does not show stay as they are.
  for (const [key, value] of params) {
    // "= severity" holds while the form's minimum is that severity.
    if (key === 'eq.severity' && data.get('severity') !== value) continue
    if (/^(attr|eq|ne)\./.test(key) || key === 'live' || key === 'limit') next.append(key, value)
  }
  return next
}

function paramsToForm(form) {
  form.range.value = params.get('range') ?? (params.get('from') ? 'custom' : '15m')
  form.dataset.range = form.range.value
  for (const key of ['from', 'to', 'type', 'severity', 'member', 'q'])
    form[key].value = params.get(key) ?? ''
  // A range dragged on the histogram is epoch ms: shown as RFC 3339 (UTC).
  for (const key of ['from', 'to'])
    if (/^\d{10,}$/.test(form[key].value))
      form[key].value = new Date(Number(form[key].value)).toISOString()
}

function withoutView(p) {
  const next = new URLSearchParams(p)
  next.delete('event')
  return next
}

function row(e) {
  const tr = document.createElement('tr')
  tr.tabIndex = 0
  tr.dataset.id = e.id
  tr.dataset.ts = String(e.ts)
  tr.append(document.createElement('td'))
  tr.firstChild.append(timeElement(e.ts))
  cell(tr, e.memberName)
  cell(tr, e.type)
  cell(tr, e.severity, `sev sev-${e.severity}`)
  cell(tr, e.message ?? '')
  tr.setAttribute('aria-label', `${e.severity} ${e.type} from ${e.memberName}: open details`)
  return tr
}

function passes(e) {
  return pageFilters(params).every((f) => f.test(e))
}

function renderChips() {
  const box = $('#active-filters')
  box.replaceChildren()
  const chip = (label, key, value, pageOnly) => {
    const li = document.createElement('li')
    li.className = pageOnly ? 'chip page-only' : 'chip'
    li.textContent = label
    const b = document.createElement('button')
    b.type = 'button'
    b.textContent = '×'
    b.setAttribute('aria-label', `Remove filter ${label}`)
    b.addEventListener('click', () => {
      const next = withoutView(params)
      const kept = next.getAll(key).filter((v) => v !== value)
      next.delete(key)
      for (const v of kept) next.append(key, v)
      next.delete('cursor')
      go('events', next)
    })
    li.append(b)
    box.append(li)
  }
  for (const [key, value] of params)
    if (key.startsWith('attr.')) chip(`${key.slice(5)} = ${value}`, key, value, false)
  const local = pageFilters(params)
  for (const f of local) chip(f.label, f.key, f.value, true)
  $('#page-only').hidden = local.length === 0
  $('#page-only').textContent =
    local.length === 0
      ? ''
      : `Filtered on this page only (the API has no such filter): ${local.map((f) => f.label).join(', ')}. Older and Newer pages are filtered the same way, so a page may show fewer events than it holds.`
}

async function explore() {
  const gen = ++generation
  const query = new URLSearchParams()
  if (params.get('cursor') && !params.get('live')) {
    query.set('cursor', params.get('cursor'))
  } else {
    query.set('from', params.get('range') ?? params.get('from') ?? '15m')
    if (params.get('to') && !params.get('range')) query.set('to', params.get('to'))
    for (const [k, v] of apiFilters(params)) query.append(k, v)
    query.set('order', 'desc')
    query.set('limit', params.get('limit') ?? '50')
  }
  $('#events-error').hidden = true
  let answer
  try {
    answer = await api(`v1/events?${query}`)
  } catch (err) {
    if (gen !== generation || err instanceof TokenRequired) return
    $('#events-error').hidden = false
    $('#events-error').textContent =
      `Could not load events: ${err.message}. Check the filters (a type is dotted lower-case words, e.g. http.* or app.login; a time is RFC 3339, epoch ms or a duration like 15m) and search again.`
    $('#results tbody').replaceChildren()
    return
  }
  if (gen !== generation) return
  page = answer
  $('#results').dataset.loaded = loadedHash
  const shown = page.events.filter(passes)
  shownIds = new Set(shown.map((e) => e.id))
  $('#results tbody').replaceChildren(...shown.map(row))
  renderFields($('#fields'), shown, (field, op, value) =>
    go('events', addFilter(withoutView(params), field, op, value)),
  )
  const filtered =
    shown.length === page.events.length ? '' : ` (of ${page.events.length} on the page)`
  $('#summary').textContent =
    `${shown.length} events${filtered}, first id ${page.firstId ?? '-'} … last id ${page.lastId ?? '-'}`
  $('#empty').hidden = shown.length > 0
  $('#empty').textContent = page.events.length
    ? 'No event on this page passes the page-only filters: remove one, or go Older.'
    : 'No events for these filters in this period. Widen the range (e.g. Last 24 h), remove a filter, or turn on Live to wait for new ones.'
  setPartial(page)
  // Newest first: "Older" follows next, "Newer" follows prev.
  $('#older').disabled = page.next === null
  $('#newer').disabled = page.prev === null || Boolean(params.get('live'))
}

function setPartial(answer) {
  const missing = answer.members.filter((m) => m.status !== 'ok')
  $('#partial').hidden = !answer.partial
  $('#partial').textContent = answer.partial
    ? `Partial result: ${missing.map((m) => `${m.name} ${m.status.replace('_', ' ')}`).join(', ')}${missing.length ? '' : 'some events are not yet held by a live copy'}`
    : ''
}

async function histogram() {
  const gen = generation
  const { from, to } = period(params)
  try {
    await drawHistogram($('#histogram'), $('#histogram-caption'), params, from, to, (a, b) => {
      const next = withoutView(params)
      for (const k of ['range', 'cursor', 'live']) next.delete(k)
      next.set('from', String(a))
      next.set('to', String(b))
      go('events', next)
    })
  } catch (err) {
    if (gen === generation && !(err instanceof TokenRequired))
      $('#histogram-caption').textContent = `No histogram: ${err.message}.`
  }
}

// Live mode: new events on top; paused while the list is scrolled down or
// an event is open, with the count waiting.

function paused() {
  return wrap().scrollTop > 4 || !$('#details').hidden
}

function prepend(events) {
  const tbody = $('#results tbody')
  const fresh = events.filter((e) => !shownIds.has(e.id))
  for (const e of fresh) shownIds.add(e.id)
  // Stream order is ascending: the newest goes on top.
  tbody.prepend(...fresh.reverse().map(row))
  while (tbody.children.length > MAX_ROWS) tbody.lastChild.remove()
  if (fresh.length > 0) $('#empty').hidden = true
}

function flush() {
  if (buffered.length === 0 || paused()) return
  prepend(buffered.splice(0))
  showBuffered()
}

function showBuffered() {
  const b = $('#live-new')
  b.hidden = buffered.length === 0
  b.textContent = `${buffered.length} new event${buffered.length === 1 ? '' : 's'}: show`
}

function startLive() {
  const query = apiFilters(params)
  // The histogram's period moves with now.
  liveTimer = setInterval(histogram, 10_000)
  stream = openStream(`v1/events/stream?${query}`, {
    onStatus: (s) => {
      $('#live-status').textContent = s === 'live' ? 'Live: new events appear on top' : `Live ${s}`
      $('#live-status').dataset.state = s === 'live' ? 'live' : 'down'
    },
    onMessage: (m) => {
      let body
      try {
        body = JSON.parse(m.data)
      } catch {
        return
      }
      if (m.event === 'members') setPartial(body)
      else if (m.event === 'message' && passes(body)) {
        if (paused()) {
          buffered.push(body)
          showBuffered()
        } else prepend([body])
      }
    },
  })
}

function stopLive() {
  stream?.close()
  stream = undefined
  clearInterval(liveTimer)
  buffered = []
  showBuffered()
  $('#live-status').textContent = ''
}

// Details: fields and attributes, a permalink, the events around it.

function permalink(id) {
  const p = new URLSearchParams(params)
  for (const k of ['cursor', 'live']) p.delete(k)
  p.set('event', id)
  return `${location.origin}${location.pathname}#/events?${p}`
}

function setEventInUrl(id) {
  const p = new URLSearchParams(location.hash.split('?')[1] ?? '')
  if (id) p.set('event', id)
  else p.delete('event')
  history.replaceState(null, '', `#/events${p.size ? `?${p}` : ''}`)
}

async function details(id) {
  openId = id
  $('#details').hidden = false
  $('#details-id').textContent = id
  $('#around').replaceChildren()
  $('#around-button').disabled = false
  $('#permalink').value = permalink(id)
  $('#copy-status').textContent = ''
  setEventInUrl(id)
  const dl = $('#details-fields')
  // Open at once, and busy until the event, fetched from its owner, is in.
  dl.replaceChildren()
  dl.setAttribute('aria-busy', 'true')
  let e
  try {
    e = await api(`v1/events/${encodeURIComponent(id)}`)
  } catch (err) {
    if (err instanceof TokenRequired) return
    dl.removeAttribute('aria-busy')
    dl.textContent = `Could not load this event: ${err.message}. It may be past retention, or its member unreachable; try again later.`
    $('#details-close').focus()
    return
  }
  if (openId !== id) return
  dl.removeAttribute('aria-busy')
  const add = (k, v) => {
    const dt = document.createElement('dt')
    dt.textContent = k
    const dd = document.createElement('dd')
    if (k === 'ts') {
      dd.append(timeElement(v), ` (${v} ms since the epoch)`)
    } else dd.textContent = typeof v === 'object' ? JSON.stringify(v) : String(v)
    dl.append(dt, dd)
  }
  for (const [k, v] of Object.entries(e)) if (k !== 'attrs') add(k, v)
  for (const [k, v] of Object.entries(e.attrs ?? {})) add(`attrs.${k}`, v)
  $('#details-close').focus()
}

function closeDetails() {
  if ($('#details').hidden) return
  $('#details').hidden = true
  setEventInUrl(undefined)
  const back = openId && [...$('#results tbody').children].find((r) => r.dataset.id === openId)
  openId = undefined
  back?.focus()
  flush()
}

async function around() {
  const id = openId
  const box = $('#around')
  box.textContent = 'Loading the events around this one…'
  $('#around-button').disabled = true
  try {
    const [before, after, self] = await Promise.all([
      api(`v1/events?before=${encodeURIComponent(id)}&limit=10&order=desc`),
      api(`v1/events?after=${encodeURIComponent(id)}&limit=10&order=asc`),
      api(`v1/events/${encodeURIComponent(id)}`),
    ])
    if (openId !== id) return
    const table = document.createElement('table')
    table.id = 'around-table'
    const caption = document.createElement('caption')
    const members = new Set([...before.events, ...after.events].map((e) => e.memberName))
    caption.textContent = `${before.events.length} before and ${after.events.length} after, across ${members.size} member${members.size === 1 ? '' : 's'}, in the array's order`
    const head = document.createElement('thead')
    head.innerHTML =
      '<tr><th>Time</th><th>Member</th><th>Type</th><th>Severity</th><th>Message</th></tr>'
    const body = document.createElement('tbody')
    const rows = [...before.events.reverse(), self, ...after.events].map((e) => {
      const tr = row(e)
      if (e.id === id) {
        tr.className = 'this-event'
        tr.setAttribute('aria-current', 'true')
        tr.dataset.side = 'self'
      } else tr.dataset.side = e.id < id ? 'before' : 'after'
      tr.addEventListener('click', () => e.id !== id && details(e.id))
      return tr
    })
    body.append(...rows)
    table.append(caption, head, body)
    box.replaceChildren(table)
    if (before.partial || after.partial) {
      const p = document.createElement('p')
      p.className = 'banner'
      p.textContent = 'Some members did not answer: events of theirs may be missing here.'
      box.append(p)
    }
  } catch (err) {
    if (!(err instanceof TokenRequired))
      box.textContent = `Could not load the events around this one: ${err.message}. Try again.`
    $('#around-button').disabled = false
  }
}

// Wiring.

function openFrom(target) {
  const tr = target.closest('#results tbody tr')
  if (tr) details(tr.dataset.id)
}
$('#results').addEventListener('click', (e) => openFrom(e.target))
$('#results').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') openFrom(e.target)
})
$('#around').addEventListener('keydown', (e) => {
  const tr = e.target.closest('tr[data-id]')
  if (e.key === 'Enter' && tr && tr.dataset.id !== openId) details(tr.dataset.id)
})
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !$('#events').hidden) closeDetails()
})
$('#details-close').addEventListener('click', closeDetails)
$('#around-button').addEventListener('click', around)
$('#copy-link').addEventListener('click', async () => {
  const link = $('#permalink').value
  try {
    await navigator.clipboard.writeText(link)
    $('#copy-status').textContent = 'Link copied.'
  } catch {
    $('#permalink').select()
    $('#copy-status').textContent = 'Select the link and copy it (Ctrl+C).'
  }
})
wrap().addEventListener('scroll', flush)
$('#live-new').addEventListener('click', () => {
  closeDetails()
  wrap().scrollTop = 0
  flush()
})

$('#filters').addEventListener('change', (e) => {
  e.currentTarget.dataset.range = e.currentTarget.range.value
})
$('#filters').addEventListener('submit', (e) => {
  e.preventDefault()
  go('events', filtersToParams(e.currentTarget), true)
})
$('#live').addEventListener('click', () => {
  const next = withoutView(params)
  if (next.get('live')) next.delete('live')
  else {
    next.set('live', '1')
    next.delete('cursor')
    if (!next.get('range')) {
      next.delete('from')
      next.delete('to')
      next.set('range', '15m')
    }
  }
  go('events', next, true)
})

function follow(cursor) {
  const next = withoutView(params)
  next.delete('live')
  next.set('cursor', cursor)
  go('events', next, true)
}
$('#older').addEventListener('click', () => page?.next && follow(page.next))
$('#newer').addEventListener('click', () => page?.prev && follow(page.prev))

view('events', {
  async show(p) {
    params = p
    loadedHash = location.hash
    paramsToForm($('#filters'))
    const live = Boolean(params.get('live'))
    $('#live').setAttribute('aria-pressed', String(live))
    $('#live').textContent = live ? 'Live: on' : 'Live: off'
    renderChips()
    const selected = params.get('event')
    if (selected) details(selected)
    else {
      $('#details').hidden = true
      openId = undefined
    }
    if (live) startLive()
    histogram()
    await explore()
  },
  leave() {
    generation++
    stopLive()
  },
})
