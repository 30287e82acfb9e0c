// What every view of the dashboard shares: the API client (a read token
// kept for the session when the member asks for one), the view's state in
// the URL hash (#/view?params, so back, forward and shared links work),
// and small DOM and formatting helpers. Views are modules that register
// themselves with `view(name, { show, leave })`; app.js routes between them.

export const $ = (selector, root = document) => root.querySelector(selector)
export const TOKEN_KEY = 'chorus.token'

/** The token the member wants, if one was given this session. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY)
}

/** Headers of an API request: the token, when there is one. */
export function authHeaders() {
  const t = token()
  return t ? { authorization: `Bearer ${t}` } : {}
}

export class TokenRequired extends Error {
  constructor() {
    super('token required')
    this.name = 'TokenRequired'
  }
}

/** GET (or another method) of an API path relative to the page; the JSON body, or an Error with the API's message. */
export async function api(path, init = {}) {
  const response = await fetch(path, { ...init, headers: { ...authHeaders(), ...init.headers } })
  if (response.status === 401 || response.status === 403) {
    showToken(response.status)
    throw new TokenRequired()
  }
  const body = await response.json()
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`)
  return body
}

export function showToken(status) {
  $('#token').hidden = false
  $('#token-why').textContent =
    status === 403
      ? 'The token given may not read this member: give a token with the read (or admin) scope.'
      : 'This member asks for a token: give one with the read scope.'
  $('#token-input').focus()
}

export function cell(row, text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  row.append(td)
  return td
}

/** A time in the browser's zone, with the UTC time as its title. */
export function timeElement(ms) {
  const el = document.createElement('time')
  const d = new Date(ms)
  el.dateTime = d.toISOString()
  el.textContent = fmtTime(ms)
  el.title = `${d.toISOString().replace('T', ' ').replace('Z', ' UTC')}`
  return el
}

/** A time in the browser's zone, to the millisecond. */
export function fmtTime(ms) {
  const d = new Date(ms)
  const pad = (n, w = 2) => String(n).padStart(w, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

/** Bytes with a binary unit. */
export function fmtBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/**
 * Orders rows by their `name`, by code unit: localeCompare would be the
 * first call to start the browser's collator, some 20 ms of the first paint.
 */
export function byName(a, b) {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}

/** The view and its parameters from the URL hash. */
export function parseHash() {
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?')
  return { view: path.replace(/^\//, '') || 'overview', params: new URLSearchParams(query) }
}

/** Moves to a view with parameters: a new history entry (back returns), unless `replace`. */
export function go(view, params = new URLSearchParams(), replace = false) {
  const query = params.toString()
  const hash = `#/${view}${query ? `?${query}` : ''}`
  if (replace) history.replaceState(null, '', hash)
  else history.pushState(null, '', hash)
  window.dispatchEvent(new Event('chorus:route'))
}

const views = new Map()

/** Registers a view: `show(params)` renders it (and may start polling), `leave()` stops what it started. */
export function view(name, handlers) {
  views.set(name, handlers)
}

export function viewOf(name) {
  return views.get(name)
}

/** A CSS variable of the page (colours follow the light or dark scheme). */
export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim()
}

/** A ratio 0..1 as a percentage. */
export function fmtPercent(r) {
  return r === null || r === undefined || Number.isNaN(r) ? '–' : `${(r * 100).toFixed(1)} %`
}

/** A number with at most 3 significant digits past the point, and a unit. */
export function fmtNumber(n, unit = '') {
  if (n === null || n === undefined || Number.isNaN(n)) return '–'
  const text = Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)
  return unit ? `${text} ${unit}` : text
}

/** Milliseconds as text: ms, s, min. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–'
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`
  if (Math.abs(ms) < 120_000) return `${(ms / 1000).toFixed(1)} s`
  return `${(ms / 60_000).toFixed(1)} min`
}

/** Shows an error of a view in its banner, saying what to do; hides it on null. */
export function showError(el, err, what) {
  if (err === null) {
    el.hidden = true
    el.textContent = ''
    return
  }
  if (err instanceof TokenRequired) return
  el.hidden = false
  el.textContent = `Could not load ${what}: ${err?.message ?? err}. Check that this member is running and reachable, then reload the page.`
}

let uplotLoad

/**
 * uPlot (a classic script that sets window.uPlot), loaded once when a view
 * first draws a chart: index.html only preloads it, so that running it
 * does not hold up the first paint. A view awaits this before its charts.
 */
export function uplotReady() {
  uplotLoad ??= new Promise((resolve, reject) => {
    const script = document.createElement('script')
    script.src = 'ui/vendor/uplot.js'
    script.onload = () => resolve()
    script.onerror = () => reject(new Error('the chart library (ui/vendor/uplot.js) did not load'))
    document.head.append(script)
  })
  return uplotLoad
}

/** uPlot's points shown only when a series has few values (a line needs two). */
const fewPoints = (u, i) => u.data[i].filter((v) => v !== null && v !== undefined).length < 8

/**
 * A small line chart without axes (uPlot, once uplotReady() has resolved),
 * with its latest value as text beside it; `update(times, values)` redraws
 * it. `range` fixes the y scale.
 */
export function sparkline(container, { label, format, range, width = 90, height = 30 }) {
  const wrap = document.createElement('span')
  wrap.className = 'spark'
  const plot = document.createElement('span')
  plot.setAttribute('role', 'img')
  const value = document.createElement('span')
  value.className = 'value'
  wrap.append(plot, value)
  container.append(wrap)
  const stroke = cssVar('--chart')
  const chart = new uPlot(
    {
      width,
      height,
      legend: { show: false },
      cursor: { show: false },
      select: { show: false },
      padding: [3, 0, 3, 0],
      scales: {
        x: { time: true },
        y: range
          ? { range }
          : { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
      },
      axes: [{ show: false }, { show: false }],
      series: [
        {},
        {
          stroke,
          fill: cssVar('--chart-fill'),
          width: 1.5,
          spanGaps: true,
          points: { size: 3, show: fewPoints },
        },
      ],
    },
    [[], []],
    plot,
  )
  return {
    update(times, values) {
      chart.setData([times.map((t) => t / 1000), values])
      const last = [...values].reverse().find((v) => v !== null && v !== undefined)
      value.textContent = format(last)
      plot.setAttribute('aria-label', `${label}: latest ${format(last)}`)
    },
    destroy() {
      chart.destroy()
    },
  }
}

/** A line chart with time and value axes in the page's colours (uPlot, once uplotReady() has resolved). */
export function timeChart(container, { title, series, format, range, height = 180 }) {
  const fg = cssVar('--fg')
  const grid = cssVar('--grid')
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } }
  const el = document.createElement('div')
  el.className = 'chart'
  el.setAttribute('role', 'img')
  el.setAttribute('aria-label', title)
  container.append(el)
  const width = Math.max(280, Math.min(container.clientWidth || 460, 460))
  const chart = new uPlot(
    {
      title,
      width,
      height,
      scales: {
        y: range
          ? { range }
          : { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
      },
      axes: [axis, { ...axis, size: 84, values: (_u, splits) => splits.map((v) => format(v)) }],
      series: [
        {},
        ...series.map((label, i) => ({
          label,
          stroke: i === 0 ? cssVar('--chart') : `hsl(${(i * 67) % 360} 60% 50%)`,
          width: 1.5,
          spanGaps: true,
          points: { show: fewPoints, size: 3 },
          value: (_u, v) => format(v),
        })),
      ],
    },
    [[], ...series.map(() => [])],
    el,
  )
  return {
    update(times, ...values) {
      chart.setData([times.map((t) => t / 1000), ...values])
    },
    destroy() {
      chart.destroy()
    },
  }
}

/** A rollups answer's series for one key value (e.g. a member's name), or undefined. */
export function seriesOf(answer, key, value) {
  return answer?.series.find((s) => s.key[key] === value)
}
