// Health (#/health?range=24h): the rules in force (version and who set
// them), each member's state under every member rule, and the history of
// health changes (health.change events) over a range.

import { $, api, byName, cell, go, showError, timeElement, view } from './core.js'
import { ruleCondition, ruleWords } from './member.js'

const RANGES = ['1h', '24h', '7d']
let generation = 0

function drawRules(config) {
  $('#health-meta').textContent =
    config.version === 0
      ? 'The default rules are in force (version 0): nobody has set others.'
      : `Rules version ${config.version}, set by ${config.updatedBy ?? 'unknown'}.`
  const tbody = $('#health-rules tbody')
  tbody.replaceChildren()
  for (const rule of config.rules) {
    const row = document.createElement('tr')
    cell(row, rule.name)
    cell(row, rule.kind)
    cell(
      row,
      rule.kind === 'member' ? `${ruleWords(rule)} ${ruleCondition(rule)}` : ruleWords(rule),
    )
    cell(row, rule.state, rule.state === 'critical' ? 'state-dead' : 'state-suspect')
    tbody.append(row)
  }
}

function drawMatrix(config, health, members) {
  const memberRules = config.rules.filter((r) => r.kind === 'member')
  const head = $('#health-matrix thead tr')
  head.replaceChildren()
  for (const title of ['Member', 'Membership', 'Health', ...memberRules.map((r) => r.name)]) {
    const th = document.createElement('th')
    th.scope = 'col'
    th.textContent = title
    head.append(th)
  }
  const tbody = $('#health-matrix tbody')
  tbody.replaceChildren()
  const known = new Map(members.members.map((m) => [m.member, m]))
  for (const h of [...health.members].sort(byName)) {
    const row = document.createElement('tr')
    const th = document.createElement('th')
    th.scope = 'row'
    const link = document.createElement('a')
    link.href = `#/member?name=${encodeURIComponent(h.name)}`
    link.textContent = h.name
    th.append(link)
    row.append(th)
    cell(row, h.membership ?? known.get(h.member)?.state ?? 'unknown', `state-${h.membership}`)
    cell(
      row,
      h.state,
      h.state === 'ok' ? 'state-alive' : h.state === 'critical' ? 'state-dead' : 'state-suspect',
    )
    for (const r of memberRules) {
      const fires = h.rules.includes(r.name)
      cell(row, fires ? `firing (${r.state})` : 'ok', fires ? 'firing' : '')
    }
    tbody.append(row)
  }
  const arrayRow = document.createElement('tr')
  const th = document.createElement('th')
  th.scope = 'row'
  th.textContent = 'the array'
  arrayRow.append(th)
  cell(arrayRow, '')
  cell(
    arrayRow,
    health.array.state + (health.array.rules.length ? ` (${health.array.rules.join(', ')})` : ''),
    health.array.state === 'ok'
      ? 'state-alive'
      : health.array.state === 'critical'
        ? 'state-dead'
        : 'state-suspect',
  )
  for (const _ of memberRules) cell(arrayRow, '')
  tbody.append(arrayRow)
}

async function drawHistory(range) {
  const page = await api(`v1/events?type=health.change&order=desc&limit=200&from=${range}`)
  const tbody = $('#health-history tbody')
  tbody.replaceChildren()
  for (const e of page.events) {
    const row = document.createElement('tr')
    cell(row, '').append(timeElement(e.ts))
    cell(row, e.memberName)
    cell(
      row,
      e.severity,
      e.severity === 'info'
        ? 'state-alive'
        : e.severity === 'warn'
          ? 'state-suspect'
          : 'state-dead',
    )
    cell(row, e.message ?? '')
    tbody.append(row)
  }
  const empty = $('#health-history-empty')
  empty.hidden = page.events.length > 0
  empty.textContent = `No health changes in this range: every member kept its state. Choose a longer range to look further back.${page.partial ? ' The answer is partial: some members did not answer.' : ''}`
  if (page.events.length > 0 && page.partial) {
    empty.hidden = false
    empty.textContent =
      'The answer is partial: some members did not answer, so their changes may be missing.'
  }
}

async function load(params) {
  const gen = ++generation
  const range = RANGES.includes(params.get('range')) ? params.get('range') : '24h'
  $('#health-form').range.value = range
  const error = $('#health-error')
  try {
    const [config, health, members] = await Promise.all([
      api('v1/config/health'),
      api('v1/health'),
      api('v1/members'),
    ])
    if (gen !== generation) return
    drawRules(config)
    drawMatrix(config, health, members)
    await drawHistory(range)
    showError(error, null)
  } catch (err) {
    showError(error, err, 'the health of the array')
    throw err
  }
}

$('#health-form').addEventListener('change', (e) => {
  go('health', new URLSearchParams({ range: e.currentTarget.range.value }), true)
})

let timer

view('health', {
  async show(params) {
    clearInterval(timer)
    await load(params)
    // Refreshed while open; an error shows in the view's banner.
    timer = setInterval(() => load(params).catch(() => {}), 10_000)
  },
  leave() {
    clearInterval(timer)
    generation++
  },
})
