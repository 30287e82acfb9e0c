// The Events view's filters as the URL holds them. Those the API offers go
// to every request (type with prefixes and "-" exclusions, attr.<name>
// equality, minimum severity, member, q); the others are applied to the
// page the API answered, and the view says so: "eq.severity" (exactly
// that severity), "ne.severity", "ne.member", "ne.attr.<name>".

export const SEVERITIES = ['debug', 'info', 'warn', 'error', 'critical']
const DURATION = /^(\d+)(ms|s|m|h|d|w)$/
const UNIT = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** A time as the API takes it (epoch ms, RFC 3339, or a duration back from now) in epoch ms. */
export function toMs(text, now = Date.now()) {
  if (text === null || text === undefined || text === '') return undefined
  if (/^\d{10,}$/.test(text)) return Number(text)
  const d = DURATION.exec(text)
  if (d) return now - Number(d[1]) * UNIT[d[2]]
  const parsed = Date.parse(text)
  return Number.isNaN(parsed) ? undefined : parsed
}

/** The view's period in epoch ms: `range` (a duration) or from/to. */
export function period(params, now = Date.now()) {
  const from = toMs(params.get('range') ?? params.get('from') ?? '15m', now) ?? now - 900_000
  const to = params.get('range') ? now : (toMs(params.get('to'), now) ?? now)
  return { from, to }
}

/** The filters the API applies, as query parameters. */
export function apiFilters(params) {
  const query = new URLSearchParams()
  for (const key of ['type', 'severity', 'member', 'q'])
    if (params.get(key)) query.set(key, params.get(key))
  for (const [key, value] of params) if (key.startsWith('attr.')) query.append(key, value)
  return query
}

const attrText = (v) => (v === undefined ? undefined : String(v))

/** The filters applied on the page only: `{ label, test(event) }`. */
export function pageFilters(params) {
  const out = []
  for (const [key, value] of params) {
    if (key === 'eq.severity')
      out.push({ key, value, label: `severity = ${value}`, test: (e) => e.severity === value })
    else if (key === 'ne.severity')
      out.push({ key, value, label: `severity ≠ ${value}`, test: (e) => e.severity !== value })
    else if (key === 'ne.member')
      out.push({ key, value, label: `member ≠ ${value}`, test: (e) => e.memberName !== value })
    else if (key.startsWith('ne.attr.')) {
      const name = key.slice('ne.attr.'.length)
      out.push({
        key,
        value,
        label: `${name} ≠ ${value}`,
        test: (e) => attrText(e.attrs?.[name]) !== value,
      })
    }
  }
  return out
}

/** Adds a filter for `field` (type, severity, member or attr.<name>) `=` or `≠` a value. */
export function addFilter(params, field, op, value) {
  const next = new URLSearchParams(params)
  next.delete('cursor')
  next.delete('event')
  if (field === 'type') {
    const types = (next.get('type') ?? '').split(',').filter((t) => t !== '')
    if (op === '=') next.set('type', value)
    else next.set('type', [...types.filter((t) => t !== `-${value}`), `-${value}`].join(','))
  } else if (field === 'severity') {
    if (op === '=') {
      // The API narrows to this severity and above; the page keeps exactly it.
      next.set('severity', value)
      next.set('eq.severity', value)
    } else {
      next.append('ne.severity', value)
    }
  } else if (field === 'member') {
    if (op === '=') {
      next.set('member', value)
      next.delete('ne.member')
    } else next.append('ne.member', value)
  } else if (field.startsWith('attr.')) {
    if (op === '=') next.set(field, value)
    else next.append(`ne.${field}`, value)
  }
  return next
}
