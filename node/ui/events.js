// Events: a page of the array's result set for the filters in the URL,
// newest first, with Older and Newer (the page's cursors), the members that
// did not answer, and an event's fields on a click.

import { $, api, cell, fmtTime, go, view } from './core.js'

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
  go('events', filtersToParams(e.currentTarget), true)
})

function follow(cursor) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '')
  params.set('cursor', cursor)
  go('events', params, true)
}
$('#older').addEventListener('click', () => page?.next && follow(page.next))
$('#newer').addEventListener('click', () => page?.prev && follow(page.prev))

view('events', {
  async show(params) {
    paramsToForm($('#filters'), params)
    await explore(params)
  },
  leave() {},
})
