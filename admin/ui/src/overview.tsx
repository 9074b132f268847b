import { useRef, useState } from 'preact/hooks'
import { get, type Stats } from './api'
import { Chart } from './chart'
import { Card, ErrorBox, fmtBytes, fmtDuration, fmtNum, useInterval } from './util'

const WINDOW = 180 // samples kept: 3 minutes at one a second

// history holds the charts' columns; rates are computed here from the
// counters of two consecutive samples over the broker's own uptime, so
// they do not depend on other dashboards polling the same API.
interface History {
  t: number[]
  conns: number[]
  connected: number[]
  msgIn: (number | null)[]
  msgOut: (number | null)[]
  dropped: (number | null)[]
  commitMs: (number | null)[]
}

const empty = (): History => ({ t: [], conns: [], connected: [], msgIn: [], msgOut: [], dropped: [], commitMs: [] })

export function Overview() {
  const [st, setSt] = useState<Stats | null>(null)
  const [err, setErr] = useState('')
  const [hist, setHist] = useState<History>(empty)
  const prev = useRef<Stats | null>(null)

  useInterval(async () => {
    let s: Stats
    try {
      s = await get<Stats>('stats')
    } catch (e) {
      setErr(String((e as Error).message))
      return
    }
    setErr('')
    const p = prev.current
    prev.current = s
    const dt = p ? s.uptime_seconds - p.uptime_seconds : 0
    const rate = (cur: number, old: number | undefined) => (p && dt > 0 && old !== undefined && cur >= old ? (cur - old) / dt : null)
    let commit: number | null = null
    if (p && s.store_commits !== undefined && p.store_commits !== undefined) {
      const n = s.store_commits - p.store_commits
      commit = n > 0 ? ((s.store_commit_seconds! - p.store_commit_seconds!) / n) * 1000 : null // no commit: a gap, not 0 ms
    }
    if (p && dt <= 0 && s.uptime_seconds < p.uptime_seconds) setHist(empty()) // the broker restarted
    setHist((h) => {
      const push = <T,>(a: T[], v: T) => {
        const b = a.length >= WINDOW ? a.slice(a.length - WINDOW + 1) : a.slice()
        b.push(v)
        return b
      }
      return {
        t: push(h.t, Date.now() / 1000),
        conns: push(h.conns, s.connections),
        connected: push(h.connected, s.connected),
        msgIn: push(h.msgIn, rate(s.messages_received, p?.messages_received)),
        msgOut: push(h.msgOut, rate(s.messages_sent, p?.messages_sent)),
        dropped: push(h.dropped, rate(s.dropped, p?.dropped)),
        commitMs: push(h.commitMs, commit),
      }
    })
    setSt(s)
  }, 1000)

  const last = <T,>(a: T[]) => (a.length ? a[a.length - 1] : null)
  const hasCommit = st?.store_commits !== undefined
  return (
    <div>
      <ErrorBox err={err} />
      {st && (
        <div class="tiles" id="stat-tiles">
          <Tile label="Connections" value={fmtNum(st.connections)} sub={`${fmtNum(st.connected)} connected sessions`} />
          <Tile label="Sessions" value={fmtNum(st.sessions)} sub={`${fmtNum(st.sessions - st.connected)} offline`} />
          <Tile label="Messages in/s" value={fmtNum(last(hist.msgIn) ?? 0, 1)} sub={`${fmtNum(st.messages_received)} total`} />
          <Tile label="Messages out/s" value={fmtNum(last(hist.msgOut) ?? 0, 1)} sub={`${fmtNum(st.messages_sent)} total`} />
          <Tile label="Subscriptions" value={fmtNum(st.subscriptions)} sub={`${fmtNum(st.shared_subscriptions)} shared`} />
          <Tile label="Retained" value={fmtNum(st.retained)} sub={fmtBytes(st.retained_bytes)} />
          <Tile label="Inflight / queued" value={`${fmtNum(st.inflight)} / ${fmtNum(st.queued)}`} sub={fmtBytes(st.queued_bytes) + ' queued'} />
          <Tile label="Dropped" value={fmtNum(st.dropped)} sub={dropReasons(st)} />
        </div>
      )}
      <div class="charts" data-samples={hist.t.length}>
        <Chart title="Connections" data={[hist.t, hist.conns, hist.connected]}
          series={[{ label: 'connections', color: '#2f6fdf' }, { label: 'connected sessions', color: '#19a974' }]} />
        <Chart title="Messages per second" data={[hist.t, hist.msgIn, hist.msgOut]}
          series={[{ label: 'in', color: '#2f6fdf' }, { label: 'out', color: '#e8833a' }]} />
        <Chart title="Dropped per second" data={[hist.t, hist.dropped]} series={[{ label: 'dropped', color: '#d6453d' }]} />
        <Chart title={hasCommit ? 'Store commit latency (mean)' : 'Store commit latency (not reported by this broker)'}
          data={[hist.t, hist.commitMs]} unit=" ms" series={[{ label: 'commit', color: '#8a5cd6' }]} />
      </div>
      {st && (
        <Card title="Node">
          <dl class="kv">
            <dt>Node id</dt><dd>{st.node_id}</dd>
            <dt>Version</dt><dd>{st.version || '–'}</dd>
            <dt>Started</dt><dd>{new Date(st.start_time).toLocaleString('sv-SE')}</dd>
            <dt>Uptime</dt><dd>{fmtDuration(st.uptime_seconds)}</dd>
            <dt>Event loops</dt><dd>{st.loops}</dd>
            <dt>Traffic</dt><dd>{fmtBytes(st.bytes_received)} in, {fmtBytes(st.bytes_sent)} out</dd>
            <dt>Refused CONNECTs</dt><dd>{fmtNum(st.connects_refused)}</dd>
            <dt>Store backlog</dt><dd>{fmtNum(st.store_backlog_ops)} ops</dd>
          </dl>
        </Card>
      )}
    </div>
  )
}

// dropReasons lists what the dropped count is made of (messages lost to
// a bound); no_subscribers is not among them: nobody wanted those.
function dropReasons(st: Stats): string {
  const all = st.dropped_by_reason ?? {}
  const r = Object.entries(all).filter(([k, n]) => n > 0 && k !== 'no_subscribers')
  const lost = r.length ? r.map(([k, n]) => `${k} ${fmtNum(n)}`).join(', ') : 'none lost to a bound'
  return all.no_subscribers ? `${lost}; ${fmtNum(all.no_subscribers)} had no subscriber` : lost
}

function Tile({ label, value, sub }: { label: string; value: string; sub: string }) {
  return (
    <div class="tile">
      <div class="label">{label}</div>
      <div class="value">{value}</div>
      <div class="sub">{sub}</div>
    </div>
  )
}
