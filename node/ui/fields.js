// The Events view's side panel: type, severity, member and every attribute
// name seen on the page, each with its top values on the page and their
// counts; "=" and "≠" buttons call `onFilter(field, op, value)`.

const TOP = 5

function valuesOf(events, get) {
  const counts = new Map()
  for (const e of events) {
    const v = get(e)
    if (v === undefined || v === null) continue
    const text = String(v)
    counts.set(text, (counts.get(text) ?? 0) + 1)
  }
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
}

function button(text, label, onClick) {
  const b = document.createElement('button')
  b.type = 'button'
  b.textContent = text
  b.setAttribute('aria-label', label)
  b.title = label
  b.addEventListener('click', onClick)
  return b
}

/** Renders the panel into `el` for the events of the page. */
export function renderFields(el, events, onFilter) {
  el.replaceChildren()
  const h = document.createElement('h2')
  h.textContent = 'Fields on this page'
  el.append(h)
  if (events.length === 0) {
    const p = document.createElement('p')
    p.className = 'muted'
    p.textContent = 'No events on this page.'
    el.append(p)
    return
  }
  const attrNames = [...new Set(events.flatMap((e) => Object.keys(e.attrs ?? {})))].sort()
  const fields = [
    ['type', (e) => e.type],
    ['severity', (e) => e.severity],
    ['member', (e) => e.memberName],
    ...attrNames.map((n) => [`attr.${n}`, (e) => e.attrs?.[n]]),
  ]
  for (const [field, get] of fields) {
    const values = valuesOf(events, get)
    const section = document.createElement('section')
    section.className = 'field'
    section.dataset.field = field
    const title = document.createElement('h3')
    title.textContent = field.startsWith('attr.') ? field.slice(5) : field
    const small = document.createElement('span')
    small.className = 'muted'
    small.textContent = ` ${values.length} value${values.length === 1 ? '' : 's'}`
    title.append(small)
    const list = document.createElement('ul')
    for (const [value, count] of values.slice(0, TOP)) {
      const li = document.createElement('li')
      li.dataset.value = value
      const name = document.createElement('span')
      name.className = 'value'
      name.textContent = value
      name.title = value
      const n = document.createElement('span')
      n.className = 'count'
      n.textContent = `${count} (${Math.round((count / events.length) * 100)} %)`
      li.append(
        name,
        n,
        button('=', `Only ${title.firstChild.textContent} = ${value}`, () =>
          onFilter(field, '=', value),
        ),
        button('≠', `Exclude ${title.firstChild.textContent} = ${value}`, () =>
          onFilter(field, '≠', value),
        ),
      )
      list.append(li)
    }
    section.append(title, list)
    el.append(section)
  }
}
