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

export function viewNames() {
  return [...views.keys()]
}
