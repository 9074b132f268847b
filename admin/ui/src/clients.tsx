import { useState } from 'preact/hooks'
import { call, get, qs, seg, type Client, type ClientDetail, type Page } from './api'
import { Card, Confirm, ErrorBox, Pager, fmtNum, fmtTime, since, useDebounced, useInterval } from './util'

const LIMIT = 50

// Clients: one page of sessions at a time (the API never lists "all"),
// refreshed every 2 s while shown.
export function Clients() {
  const [match, setMatch] = useState('')
  const [state, setState] = useState('')
  const [page, setPage] = useState(1)
  const [data, setData] = useState<Page<Client> | null>(null)
  const [err, setErr] = useState('')
  const [note, setNote] = useState('')
  const m = useDebounced(match, 250)

  const load = async () => {
    try {
      setData(await get<Page<Client>>('clients' + qs({ page, limit: LIMIT, match: m, state })))
      setErr('')
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  useInterval(load, 2000, [page, m, state])

  const kick = async (id: string, discard: boolean) => {
    try {
      await call('DELETE', 'clients/' + seg(id) + qs({ session: discard ? 'true' : undefined }))
      setNote(discard ? `${id}: disconnected, session discarded` : `${id}: disconnected`)
      await load()
    } catch (e) {
      setErr((e as Error).message)
    }
  }

  return (
    <Card title="Clients" actions={
      <>
        <input type="search" id="client-search" placeholder="client id, user name or address" value={match}
          onInput={(e) => { setMatch((e.target as HTMLInputElement).value); setPage(1) }} />
        <select id="client-state" value={state} onChange={(e) => { setState((e.target as HTMLSelectElement).value); setPage(1) }}>
          <option value="">all sessions</option>
          <option value="connected">connected</option>
          <option value="offline">offline</option>
        </select>
      </>
    }>
      <ErrorBox err={err} />
      {note && <div class="note">{note}</div>}
      <table class="grid" id="clients-table">
        <thead>
          <tr><th>Client id</th><th>State</th><th>Protocol</th><th>Address</th><th>User</th><th class="num">Keep-alive</th>
            <th class="num">Subs</th><th class="num">Inflight</th><th class="num">Queued</th><th>Since</th><th></th></tr>
        </thead>
        <tbody>
          {data?.items.map((c) => (
            <tr key={c.client_id} data-client={c.client_id}>
              <td><a href={'#/clients/' + seg(c.client_id)}>{c.client_id}</a></td>
              <td><span class={'badge ' + (c.connected ? 'on' : 'off')}>{c.connected ? 'connected' : 'offline'}</span></td>
              <td>{c.protocol}</td>
              <td class="mono">{c.address}</td>
              <td>{c.username}</td>
              <td class="num">{c.keep_alive}s</td>
              <td class="num">{fmtNum(c.subscription_count)}</td>
              <td class="num">{fmtNum(c.inflight)}</td>
              <td class="num">{fmtNum(c.queued)}</td>
              <td title={fmtTime(c.connected ? c.connected_at : c.disconnected_at)}>{since(c.connected ? c.connected_at : c.disconnected_at)}</td>
              <td class="row-actions">
                {c.connected
                  ? <Confirm label="Kick" confirm="Kick: sure?" onConfirm={() => kick(c.client_id, false)} />
                  : <Confirm label="Discard" confirm="Discard: sure?" onConfirm={() => kick(c.client_id, true)} />}
              </td>
            </tr>
          ))}
          {data && data.items.length === 0 && <tr><td colSpan={11} class="empty">no session{m ? ` matches “${m}”` : ''}</td></tr>}
        </tbody>
      </table>
      {data && <Pager page={page} limit={LIMIT} total={data.total} onPage={setPage} />}
    </Card>
  )
}

// ClientView: one session, refreshed every 2 s.
export function ClientView({ id }: { id: string }) {
  const [c, setC] = useState<ClientDetail | null>(null)
  const [err, setErr] = useState('')
  const [note, setNote] = useState('')
  useInterval(async () => {
    try {
      setC(await get<ClientDetail>('clients/' + seg(id)))
      setErr('')
    } catch (e) {
      setErr((e as Error).message)
    }
  }, 2000, [id])
  const kick = async (discard: boolean) => {
    try {
      await call('DELETE', 'clients/' + seg(id) + qs({ session: discard ? 'true' : undefined }))
      setNote(discard ? 'disconnected, session discarded' : 'disconnected')
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  return (
    <Card title={'Client ' + id} actions={
      <>
        <a class="button" href="#/clients">‹ All clients</a>
        {c?.connected && <Confirm label="Kick" confirm="Kick: sure?" onConfirm={() => kick(false)} />}
        {c && <Confirm label="Kick and discard session" confirm="Discard: sure?" onConfirm={() => kick(true)} />}
      </>
    }>
      <ErrorBox err={err} />
      {note && <div class="note">{note}</div>}
      {c && (
        <>
          <dl class="kv" id="client-detail">
            <dt>State</dt><dd><span class={'badge ' + (c.connected ? 'on' : 'off')}>{c.connected ? 'connected' : 'offline'}</span></dd>
            <dt>Protocol</dt><dd>{c.protocol}</dd>
            <dt>Address</dt><dd class="mono">{c.address || '–'}</dd>
            <dt>User name</dt><dd>{c.username || '–'}</dd>
            <dt>Keep-alive</dt><dd>{c.keep_alive} s</dd>
            <dt>Session expiry</dt><dd>{c.expiry_interval === 4294967295 ? 'never' : c.expiry_interval + ' s'}</dd>
            <dt>Inflight</dt><dd>{fmtNum(c.inflight)}</dd>
            <dt>Queued</dt><dd>{fmtNum(c.queued)}</dd>
            <dt>Connected since</dt><dd>{fmtTime(c.connected_at)} {c.connected && <span class="muted">({since(c.connected_at)})</span>}</dd>
            {!c.connected && <><dt>Disconnected at</dt><dd>{fmtTime(c.disconnected_at)}</dd></>}
            <dt>Event loop</dt><dd>{c.loop}</dd>
          </dl>
          <h3>Subscriptions ({c.subscriptions.length})</h3>
          <table class="grid" id="client-subs">
            <thead><tr><th>Filter</th><th class="num">QoS</th><th>No local</th><th>Retain as published</th><th class="num">Retain handling</th><th class="num">Id</th></tr></thead>
            <tbody>
              {c.subscriptions.map((s) => (
                <tr key={s.filter}>
                  <td class="mono">{s.filter}</td><td class="num">{s.qos}</td><td>{s.no_local ? 'yes' : 'no'}</td>
                  <td>{s.retain_as_published ? 'yes' : 'no'}</td><td class="num">{s.retain_handling}</td><td class="num">{s.identifier || ''}</td>
                </tr>
              ))}
              {c.subscriptions.length === 0 && <tr><td colSpan={6} class="empty">no subscription</td></tr>}
            </tbody>
          </table>
        </>
      )}
    </Card>
  )
}
