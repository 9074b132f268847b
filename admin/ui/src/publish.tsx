import { useEffect, useRef, useState } from 'preact/hooks'
import type { MqttClient } from 'mqtt'
import { call, get, type Listener } from './api'
import { Card, ErrorBox, fmtBytes } from './util'

// Publish: a message published by the broker itself (POST /publish), and
// next to it a live subscription over the broker's WebSocket listener.
export function PublishView() {
  return (
    <div class="split">
      <PublishForm />
      <LivePanel />
    </div>
  )
}

function PublishForm() {
  const [topic, setTopic] = useState('')
  const [payload, setPayload] = useState('')
  const [enc, setEnc] = useState('text')
  const [qos, setQos] = useState(0)
  const [retain, setRetain] = useState(false)
  const [ctype, setCtype] = useState('')
  const [err, setErr] = useState('')
  const [note, setNote] = useState('')
  const submit = async (e: Event) => {
    e.preventDefault()
    setErr('')
    setNote('')
    const body: Record<string, unknown> = { topic, payload, payload_encoding: enc, qos, retain }
    if (ctype) body.properties = { content_type: ctype }
    try {
      const r = await call<{ topic: string; payload_bytes: number }>('POST', 'publish', body)
      setNote(`published ${fmtBytes(r.payload_bytes)} to ${r.topic}`)
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  return (
    <Card title="Publish">
      <form id="publish-form" class="form" onSubmit={submit}>
        <label>Topic<input name="topic" required value={topic} onInput={(e) => setTopic((e.target as HTMLInputElement).value)} placeholder="sensors/room1/temperature" /></label>
        <label>Payload<textarea name="payload" rows={5} value={payload} onInput={(e) => setPayload((e.target as HTMLTextAreaElement).value)} /></label>
        <div class="row">
          <label>Encoding<select name="encoding" value={enc} onChange={(e) => setEnc((e.target as HTMLSelectElement).value)}>
            <option value="text">text</option><option value="base64">base64</option></select></label>
          <label>QoS<select name="qos" value={qos} onChange={(e) => setQos(Number((e.target as HTMLSelectElement).value))}>
            <option value="0">0</option><option value="1">1</option><option value="2">2</option></select></label>
          <label class="check"><input type="checkbox" name="retain" checked={retain} onChange={(e) => setRetain((e.target as HTMLInputElement).checked)} /> Retain</label>
        </div>
        <label>Content type (MQTT 5)<input name="content_type" value={ctype} onInput={(e) => setCtype((e.target as HTMLInputElement).value)} placeholder="application/json" /></label>
        <button type="submit" class="primary">Publish</button>
        <ErrorBox err={err} />
        {note && <div class="note" id="publish-note">{note}</div>}
      </form>
    </Card>
  )
}

interface Msg {
  n: number
  at: string
  topic: string
  payload: string
  qos: number
  retain: boolean
}

const MAX_MSGS = 200 // the panel keeps the latest only

// wsURL picks the broker's WebSocket listener: wss when the page is https
// (a browser refuses ws:// from an https page), the page's host when the
// listener is bound to every address.
export function wsURL(ls: Listener[]): string {
  const secure = location.protocol === 'https:'
  const l = ls.find((l) => l.kind === (secure ? 'wss' : 'ws')) ?? ls.find((l) => l.kind === 'ws' || l.kind === 'wss')
  if (!l) return ''
  let u: URL
  try {
    u = new URL(l.url || `${l.kind}://${l.address}/mqtt`)
  } catch {
    return ''
  }
  const port = (l.address.match(/:(\d+)$/) ?? [])[1] ?? u.port
  let host = u.hostname
  if (host === '' || host === '0.0.0.0' || host === '[::]' || host === '::') host = location.hostname
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  return `${u.protocol}//${h}:${port}${u.pathname === '/' ? '/mqtt' : u.pathname}`
}

function LivePanel() {
  const [url, setUrl] = useState('')
  const [none, setNone] = useState(false)
  const [filter, setFilter] = useState('#')
  const [user, setUser] = useState('')
  const [pass, setPass] = useState('')
  const [status, setStatus] = useState('disconnected')
  const [err, setErr] = useState('')
  const [msgs, setMsgs] = useState<Msg[]>([])
  const client = useRef<MqttClient | null>(null)
  const seq = useRef(0)

  useEffect(() => {
    get<{ listeners: Listener[] }>('listeners').then((r) => {
      const u = wsURL(r.listeners)
      setUrl(u)
      setNone(!u)
    }, (e) => setErr(e.message))
    return () => client.current?.end(true)
  }, [])

  const start = async (e: Event) => {
    e.preventDefault()
    setErr('')
    client.current?.end(true)
    setStatus('loading MQTT.js')
    // Loaded on first use: the rest of the dashboard does not wait for it.
    // The browser bundle's default export is the module object.
    type MQTT = typeof import('mqtt')
    const mod = (await import('mqtt')) as unknown as Partial<MQTT> & { default?: MQTT }
    const mqtt = (mod.connect ? mod : mod.default!) as MQTT
    setStatus('connecting to ' + url)
    const c = mqtt.connect(url, {
      protocolVersion: 5,
      clientId: 'mcutie-dashboard-' + Math.random().toString(16).slice(2, 10),
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      username: user || undefined,
      password: pass || undefined,
    })
    client.current = c
    c.on('connect', () => {
      setStatus('connected, subscribing')
      c.subscribe(filter, { qos: 0 }, (err, granted) => {
        if (err) return setErr('subscribe: ' + err.message)
        const code = granted?.[0]?.qos ?? 0
        if (code >= 0x80) return setErr(`subscribe refused: reason code 0x${code.toString(16)}`)
        setStatus(`subscribed to ${filter}`)
      })
    })
    c.on('message', (topic, payload, p) => {
      const m: Msg = { n: ++seq.current, at: new Date().toLocaleTimeString('sv-SE'), topic, payload: decode(payload), qos: p.qos, retain: p.retain }
      setMsgs((old) => [m, ...old.slice(0, MAX_MSGS - 1)])
    })
    c.on('error', (e) => setErr(e.message))
    c.on('close', () => setStatus((s) => (s.startsWith('subscribed') || s.startsWith('connect') ? 'disconnected' : s)))
  }
  const stop = () => {
    client.current?.end(true)
    client.current = null
    setStatus('disconnected')
  }

  return (
    <Card title="Live subscription" actions={<button type="button" onClick={() => setMsgs([])}>Clear</button>}>
      {none ? (
        <div class="muted" id="live-none">The broker has no WebSocket listener: start it with --listen ws://:8083 to watch messages here.</div>
      ) : (
        <form id="live-form" class="form" onSubmit={start}>
          <label>Filter<input name="filter" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} /></label>
          <div class="row">
            <label class="grow">User name (if the listener needs one)<input name="username" value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} autocomplete="off" /></label>
            <label class="grow">Password<input name="password" type="password" value={pass} onInput={(e) => setPass((e.target as HTMLInputElement).value)} autocomplete="off" /></label>
          </div>
          <div class="row">
            <button type="submit" class="primary" disabled={!url}>Subscribe</button>
            <button type="button" onClick={stop}>Stop</button>
            <span class="muted mono" id="live-status">{status}{url ? ` · ${url}` : ''}</span>
          </div>
        </form>
      )}
      <ErrorBox err={err} />
      <table class="grid" id="live-messages">
        <thead><tr><th>Time</th><th>Topic</th><th>Payload</th><th class="num">QoS</th></tr></thead>
        <tbody>
          {msgs.map((m) => (
            <tr key={m.n}><td class="mono">{m.at}</td><td class="mono">{m.topic}</td><td class="payload-cell">{m.payload}{m.retain && <span class="badge off">retained</span>}</td><td class="num">{m.qos}</td></tr>
          ))}
          {msgs.length === 0 && <tr><td colSpan={4} class="empty">no message yet</td></tr>}
        </tbody>
      </table>
    </Card>
  )
}

function decode(p: Uint8Array): string {
  const s = new TextDecoder('utf-8', { fatal: false }).decode(p.subarray(0, 4096))
  return p.length > 4096 ? s + ` … (${fmtBytes(p.length)})` : s
}
