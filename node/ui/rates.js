// Rates: events per step over a range, stacked by type or severity, and the
// p99 of one type's value, from the array's rollups (uPlot).

import { $, api, go, uplotReady, view } from './core.js'

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
  const [answer] = await Promise.all([
    api(`v1/rollups?from=${form.range.value}&by=${by}`),
    uplotReady(),
  ])
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
  go('rates', new URLSearchParams([...data.entries()].filter(([, v]) => v !== '')), true)
})

view('rates', { show: rates, leave() {} })
