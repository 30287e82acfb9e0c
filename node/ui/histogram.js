// The Events view's histogram: counts per bucket for the view's filters and
// period, stacked by severity, from GET /v1/rollups (uPlot). Dragging over
// it calls `onSelect(fromMs, toMs)`; hovering a bar writes its counts under
// the chart (#histogram-hover).

import { api, uplotReady } from './core.js'
import { apiFilters, SEVERITIES } from './filters.js'

// Steps the rollups take (multiples of 10 s), in seconds.
const STEPS = [10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
export const COLORS = {
  debug: '#8c959f',
  info: '#0969da',
  warn: '#bf8700',
  error: '#cf222e',
  critical: '#6e2594',
}

/** A step giving about 60 to 120 buckets (no finer than 10 s). */
export function stepFor(fromMs, toMs) {
  const seconds = Math.max(1, (toMs - fromMs) / 1000)
  return STEPS.find((s) => seconds / s <= 120) ?? STEPS.at(-1)
}

/** A bar's time and counts as text: "10:05:00–10:05:30: 12 events (error 2, info 10)". */
function barText(tSec, stepSec, counts) {
  const clock = (sec) => new Date(sec * 1000).toLocaleTimeString()
  const total = counts.reduce((n, [, c]) => n + c, 0)
  const parts = counts.filter(([, c]) => c > 0).map(([sev, c]) => `${sev} ${c.toLocaleString()}`)
  return `${clock(tSec)}–${clock(tSec + stepSec)}: ${total.toLocaleString()} events${parts.length ? ` (${parts.join(', ')})` : ''}`
}

function fmtStep(s) {
  if (s % 3600 === 0) return `${s / 3600} h`
  if (s % 60 === 0) return `${s / 60} min`
  return `${s} s`
}

let chart

export function destroyHistogram() {
  chart?.destroy()
  chart = undefined
}

/** Draws the histogram into `el` for `params` over [fromMs, toMs]; resolves to the rollups' answer. */
export async function drawHistogram(el, caption, params, fromMs, toMs, onSelect) {
  const step = stepFor(fromMs, toMs)
  const query = apiFilters(params)
  query.delete('q') // rollups take q as quantiles, not text
  query.set('from', String(fromMs))
  query.set('to', String(toMs))
  query.set('step', `${step}s`)
  query.set('by', 'severity')
  const [answer] = await Promise.all([api(`v1/rollups?${query}`), uplotReady()])
  destroyHistogram()
  el.replaceChildren()
  const hover = document.getElementById('histogram-hover')
  if (hover) hover.textContent = ''
  const bySeverity = new Map(answer.series.map((s) => [s.key.severity, s.buckets]))
  const first = answer.series[0]?.buckets ?? []
  const t = first.map((b) => b.t / 1000)
  const present = SEVERITIES.filter((s) => bySeverity.has(s))
  const total = answer.series.reduce((n, s) => n + s.buckets.reduce((m, b) => m + b.count, 0), 0)
  const hasText = params.get('q') ? ' (text filter not applied to the histogram)' : ''
  caption.textContent =
    total === 0
      ? `No events in this period for these filters: widen the range or remove a filter.${hasText}`
      : `${total.toLocaleString()} events, ${fmtStep(step)} per bar, by severity. Drag across the chart to narrow the range.${hasText}`
  el.setAttribute('aria-label', caption.textContent)
  if (t.length === 0) return answer
  const legend = document.createElement('span')
  legend.className = 'legend'
  for (const sev of present) {
    const item = document.createElement('span')
    const swatch = document.createElement('span')
    swatch.className = 'swatch'
    swatch.style.background = COLORS[sev]
    item.append(swatch, sev)
    legend.append(item)
  }
  caption.append(' ', legend)
  // Stacked: each severity drawn as the running sum of those below it, the
  // highest drawn first so the lower ones paint over it.
  let running = t.map(() => 0)
  const stacked = present.map((sev) => {
    const buckets = bySeverity.get(sev)
    running = running.map((r, i) => r + (buckets[i]?.count ?? 0))
    return { sev, values: running }
  })
  stacked.reverse()
  const bars = uPlot.paths.bars({ size: [0.9, 40], align: 1 })
  const width = Math.max(300, el.clientWidth || 800)
  chart = new uPlot(
    {
      width,
      height: 140,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      scales: { x: { time: true, range: () => [t[0], t.at(-1) + step] } },
      series: [
        {},
        ...stacked.map((s) => ({
          label: s.sev,
          stroke: COLORS[s.sev],
          fill: COLORS[s.sev],
          width: 0,
          paths: bars,
          points: { show: false },
        })),
      ],
      axes: [
        {},
        {
          label: 'events',
          labelSize: 16,
          size: 40,
          values: (_u, ticks) => ticks.map((v) => (Number.isInteger(v) ? v : '')),
        },
      ],
      hooks: {
        setCursor: [
          (u) => {
            const i = u.cursor.idx
            if (!hover) return
            hover.textContent =
              i == null
                ? ''
                : barText(
                    t[i],
                    step,
                    present.map((sev) => [sev, bySeverity.get(sev)[i]?.count ?? 0]),
                  )
          },
        ],
        setSelect: [
          (u) => {
            if (u.select.width < 3) return
            const a = u.posToVal(u.select.left, 'x') * 1000
            const b = u.posToVal(u.select.left + u.select.width, 'x') * 1000
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false)
            onSelect(Math.floor(a), Math.ceil(b))
          },
        ],
      },
    },
    [t, ...stacked.map((s) => s.values)],
    el,
  )
  return answer
}
