import { useState } from 'preact/hooks'
import { call, get, qs, type Ban, type Page } from './api'
import { Card, Confirm, ErrorBox, Pager, fmtDuration, fmtTime, useInterval } from './util'

const LIMIT = 50

export function Bans() {
  const [page, setPage] = useState(1)
  const [data, setData] = useState<Page<Ban> | null>(null)
  const [err, setErr] = useState('')
  const [kind, setKind] = useState<'address' | 'client_id'>('client_id')
  const [value, setValue] = useState('')
  const [dur, setDur] = useState('1h')
  const load = async () => {
    try {
      setData(await get<Page<Ban>>('bans' + qs({ page, limit: LIMIT })))
      setErr('')
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  useInterval(load, 5000, [page])
  const add = async (e: Event) => {
    e.preventDefault()
    try {
      await call('POST', 'bans', { kind, value, duration: dur })
      setValue('')
      await load()
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  const remove = async (b: Ban) => {
    try {
      await call('DELETE', 'bans' + qs({ kind: b.kind, value: b.value }))
      await load()
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  return (
    <Card title="Bans">
      <form id="ban-form" class="form row" onSubmit={add}>
        <label>Kind<select name="kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as Ban['kind'])}>
          <option value="client_id">client id</option><option value="address">IP address</option></select></label>
        <label class="grow">Value<input name="value" required value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          placeholder={kind === 'address' ? '192.0.2.7' : 'device-42'} /></label>
        <label>Duration<input name="duration" required value={dur} size={6} onInput={(e) => setDur((e.target as HTMLInputElement).value)} placeholder="10m, 24h" /></label>
        <button type="submit" class="primary">Ban</button>
      </form>
      <ErrorBox err={err} />
      <table class="grid" id="bans-table">
        <thead><tr><th>Kind</th><th>Value</th><th>Until</th><th>Remaining</th><th>Set by</th><th></th></tr></thead>
        <tbody>
          {data?.items.map((b) => (
            <tr key={b.kind + ' ' + b.value} data-ban={b.value}>
              <td>{b.kind === 'address' ? 'IP address' : 'client id'}</td><td class="mono">{b.value}</td>
              <td>{fmtTime(b.until)}</td><td>{fmtDuration(b.remaining_seconds)}</td><td>{b.admin ? 'operator' : 'authentication failures'}</td>
              <td class="row-actions"><Confirm label="Remove" confirm="Remove: sure?" onConfirm={() => remove(b)} /></td>
            </tr>
          ))}
          {data && data.items.length === 0 && <tr><td colSpan={6} class="empty">no ban in force</td></tr>}
        </tbody>
      </table>
      {data && data.total > LIMIT && <Pager page={page} limit={LIMIT} total={data.total} onPage={setPage} />}
    </Card>
  )
}
