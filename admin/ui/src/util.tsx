import { useEffect, useRef, useState } from 'preact/hooks'
import type { ComponentChildren } from 'preact'

export function fmtNum(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '–'
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024
    i++
  }
  return (i ? n.toFixed(1) : String(n)) + ' ' + u[i]
}

export function fmtDuration(s: number): string {
  s = Math.max(0, Math.floor(s))
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60)
  if (d) return `${d}d ${h}h ${m}m`
  if (h) return `${h}h ${m}m`
  if (m) return `${m}m ${s % 60}s`
  return `${s}s`
}

export function fmtTime(iso: string | null): string {
  if (!iso) return '–'
  const d = new Date(iso)
  return d.toLocaleString('sv-SE').replace(' ', ' ') // YYYY-MM-DD hh:mm:ss, local time
}

export function since(iso: string | null): string {
  if (!iso) return ''
  return fmtDuration((Date.now() - new Date(iso).getTime()) / 1000) + ' ago'
}

// useInterval calls f now and every ms while the component is mounted; a
// call still running is not overlapped by the next.
export function useInterval(f: () => Promise<void> | void, ms: number, deps: unknown[] = []) {
  const fn = useRef(f)
  fn.current = f
  useEffect(() => {
    let stop = false
    let timer = 0
    const tick = async () => {
      try {
        await fn.current()
      } finally {
        if (!stop) timer = window.setTimeout(tick, ms)
      }
    }
    tick()
    return () => {
      stop = true
      clearTimeout(timer)
    }
  }, deps)
}

// useDebounced returns v once it has not changed for ms.
export function useDebounced<T>(v: T, ms: number): T {
  const [d, setD] = useState(v)
  useEffect(() => {
    const t = setTimeout(() => setD(v), ms)
    return () => clearTimeout(t)
  }, [v, ms])
  return d
}

export function ErrorBox({ err }: { err: string }) {
  if (!err) return null
  return <div class="error" role="alert">{err}</div>
}

export function Card({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card">
      <header><h2>{title}</h2>{actions && <div class="actions">{actions}</div>}</header>
      {children}
    </section>
  )
}

export function Pager({ page, limit, total, onPage }: { page: number; limit: number; total: number; onPage: (p: number) => void }) {
  const pages = Math.max(1, Math.ceil(total / limit))
  const from = total === 0 ? 0 : (page - 1) * limit + 1
  const to = Math.min(total, page * limit)
  return (
    <div class="pager">
      <span>{fmtNum(from)}–{fmtNum(to)} of {fmtNum(total)}</span>
      <button type="button" disabled={page <= 1} onClick={() => onPage(page - 1)}>‹ Prev</button>
      <span class="pageno">page {fmtNum(page)} / {fmtNum(pages)}</span>
      <button type="button" disabled={page >= pages} onClick={() => onPage(page + 1)}>Next ›</button>
    </div>
  )
}

// Confirm is a button that asks once more, inline (no window.confirm: it
// blocks the page and its live charts).
export function Confirm({ label, confirm, onConfirm, cls }: { label: string; confirm: string; onConfirm: () => void; cls?: string }) {
  const [armed, setArmed] = useState(false)
  useEffect(() => {
    if (!armed) return
    const t = setTimeout(() => setArmed(false), 4000)
    return () => clearTimeout(t)
  }, [armed])
  return (
    <button type="button" class={(cls ?? 'danger') + (armed ? ' armed' : '')}
      onClick={() => (armed ? (setArmed(false), onConfirm()) : setArmed(true))}>
      {armed ? confirm : label}
    </button>
  )
}
