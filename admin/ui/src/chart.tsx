import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

export interface Series {
  label: string
  color: string
}

// Chart is one uPlot time series chart; data is [times (s), ...series],
// replaced on every render (uPlot's setData is cheap: no re-layout).
export function Chart({ title, series, data, unit }: { title: string; series: Series[]; data: (number | null)[][]; unit?: string }) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  useEffect(() => {
    const el = box.current!
    const opts: uPlot.Options = {
      width: Math.max(260, el.clientWidth),
      height: 170,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), Math.max(max * 1.1, 1)] } },
      axes: [
        { stroke: '#7a8699', grid: { stroke: '#e6e9ef' }, ticks: { stroke: '#e6e9ef' } },
        { stroke: '#7a8699', grid: { stroke: '#e6e9ef' }, ticks: { stroke: '#e6e9ef' }, size: 66,
          values: (_u, vals) => vals.map((v) => (v == null ? '' : fmtAxis(v) + (unit ?? ''))) },
      ],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.color + '22', points: { show: false } }))],
    }
    plot.current = new uPlot(opts, data as uPlot.AlignedData, el)
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(260, el.clientWidth), height: 170 }))
    ro.observe(el)
    return () => {
      ro.disconnect()
      plot.current?.destroy()
      plot.current = null
    }
  }, [])
  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData)
  }, [data])
  return (
    <div class="chart">
      <h3>{title}</h3>
      <div ref={box} />
    </div>
  )
}

function fmtAxis(v: number): string {
  const a = Math.abs(v)
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M'
  if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k'
  if (a > 0 && a < 1) return v.toFixed(2)
  return String(Math.round(v * 10) / 10)
}
