// The chorus dashboard: plain JavaScript modules, served by the member
// itself, every asset by relative URL (no build step, nothing from another
// origin). Each view is a module (overview.js, events.js, rates.js,
// member.js, health.js) that registers itself in core.js when loaded; this
// one loads and routes between them by the URL hash and keeps the array's
// health badge. With tokens configured, the API answers 401 and the page
// asks for a read token, kept for the session.

import { $, api, parseHash, TOKEN_KEY, TokenRequired, viewOf } from './core.js'

// Each view's module, loaded the first time it is shown: the Overview's
// first paint waits for its own module only, not the events view's four.
const VIEWS = {
  overview: './overview.js',
  events: './events.js',
  rates: './rates.js',
  member: './member.js',
  health: './health.js',
}

$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('#token-input').value)
  $('#token').hidden = true
  route()
})

let current

async function route() {
  const { view, params } = parseHash()
  viewOf(current)?.leave()
  current = Object.hasOwn(VIEWS, view) ? view : 'overview'
  const shown = current
  for (const id of Object.keys(VIEWS)) {
    const section = $(`#${id}`)
    if (section) section.hidden = id !== current
    const link = $(`#nav-${id}`)
    if (link === null) continue
    if (id === current) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  try {
    await import(VIEWS[shown])
    // Moved on while the module loaded: the later route shows its own view.
    if (current !== shown) return
    await viewOf(shown).show(params)
    const h = await api('v1/health')
    $('#array-health').textContent = `array ${h.array.state}`
    $('#array-health').className = `badge ${h.array.state}`
  } catch (err) {
    if (!(err instanceof TokenRequired)) console.error(err)
  }
}

window.addEventListener('hashchange', route)
window.addEventListener('chorus:route', route)
route()
