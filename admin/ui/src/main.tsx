import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { APIError, call, setToken, token, whenUnauthorized, type Stats } from './api'
import { Bans } from './bans'
import { ClientView, Clients } from './clients'
import { Overview } from './overview'
import { PublishView } from './publish'
import { Topics } from './topics'
import './style.css'

// Routes live in the URL's fragment (#/clients/<id>), so the binary
// serves one index.html and a reload keeps the view.
function useRoute(): string {
  const [r, setR] = useState(location.hash.slice(1) || '/')
  useEffect(() => {
    const f = () => setR(location.hash.slice(1) || '/')
    addEventListener('hashchange', f)
    return () => removeEventListener('hashchange', f)
  }, [])
  return r
}

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/clients', 'Clients'],
  ['/topics', 'Topics'],
  ['/publish', 'Publish & subscribe'],
  ['/bans', 'Bans'],
]

type Auth = 'checking' | 'in' | 'out'

function App() {
  const [auth, setAuth] = useState<Auth>('checking')
  const [err, setErr] = useState('')
  const [node, setNode] = useState('')
  const route = useRoute()

  // A stored token, or none at all (a loopback listener without one): the
  // API says whether it is enough.
  useEffect(() => {
    whenUnauthorized(() => {
      setToken('')
      setAuth('out')
    })
    call<Stats>('GET', 'stats').then(
      (s) => { setNode(s.node_id); setAuth('in') },
      (e: APIError) => { setAuth('out'); if (e.status !== 401) setErr(e.message) },
    )
  }, [])

  if (auth === 'checking') return <div class="center muted">Connecting to the broker…</div>
  if (auth === 'out') return <Login err={err} onIn={(s) => { setNode(s.node_id); setErr(''); setAuth('in') }} />

  const [, first, ...rest] = route.split('/')
  let view
  switch (first) {
    case '': view = <Overview />; break
    case 'clients': view = rest.length ? <ClientView id={decodeURIComponent(rest.join('/'))} /> : <Clients />; break
    case 'topics': view = <Topics />; break
    case 'publish': view = <PublishView />; break
    case 'bans': view = <Bans />; break
    default: view = <div class="card">No such view: <a href="#/">overview</a></div>
  }
  return (
    <div class="layout">
      <nav>
        <div class="brand">mcutie<span class="node" title="node id">{node}</span></div>
        {NAV.map(([href, label]) => (
          <a href={'#' + href} id={'nav-' + (href.slice(1) || 'overview')}
            class={(href === '/' ? first === '' : '/' + first === href) ? 'active' : ''}>{label}</a>
        ))}
        {token() && <button type="button" class="logout" onClick={() => { setToken(''); setAuth('out') }}>Log out</button>}
      </nav>
      <main id="view">{view}</main>
    </div>
  )
}

function Login({ err, onIn }: { err: string; onIn: (s: Stats) => void }) {
  const [tok, setTok] = useState('')
  const [msg, setMsg] = useState(err)
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    try {
      const s = await call<Stats>('GET', 'stats', undefined, tok.trim())
      setToken(tok.trim())
      onIn(s)
    } catch (e) {
      setMsg((e as APIError).status === 401 ? 'That token is not accepted: it is the value of --admin-token (or of its file or MCUTIE_ADMIN_TOKEN).' : (e as Error).message)
    } finally {
      setBusy(false)
    }
  }
  return (
    <div class="center">
      <form id="login-form" class="card login" onSubmit={submit}>
        <h1>mcutie</h1>
        <p class="muted">This admin listener needs the bearer token the broker was started with (--admin-token). It is kept for this tab only.</p>
        <label>Admin token<input type="password" name="token" autocomplete="current-password" autofocus value={tok}
          onInput={(e) => setTok((e.target as HTMLInputElement).value)} /></label>
        <button type="submit" class="primary" disabled={busy || !tok}>Log in</button>
        {msg && <div class="error" role="alert">{msg}</div>}
      </form>
    </div>
  )
}

render(<App />, document.getElementById('app')!)
