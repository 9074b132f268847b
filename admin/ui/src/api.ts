// The admin API client: every call goes to /api/v1 on the origin that
// served the page, with the bearer token kept in sessionStorage (gone when
// the tab closes). A 401 sends the user back to the login view.

const TOKEN_KEY = 'mcutie.token'

export function token(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? ''
}

export function setToken(t: string) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t)
  else sessionStorage.removeItem(TOKEN_KEY)
}

export class APIError extends Error {
  constructor(public status: number, message: string) {
    super(message)
  }
}

let onUnauthorized: () => void = () => {}
export function whenUnauthorized(f: () => void) {
  onUnauthorized = f
}

// call sends one request and returns its JSON body, or throws an APIError
// carrying the API's own message ({"error": ...}).
export async function call<T>(method: string, path: string, body?: unknown, tok = token()): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (tok) headers.Authorization = 'Bearer ' + tok
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  let res: Response
  try {
    res = await fetch('api/v1/' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' })
  } catch (e) {
    throw new APIError(0, 'the broker does not answer: ' + String(e))
  }
  let j: any = null
  try {
    j = await res.json()
  } catch {
    // not JSON: the message below says so
  }
  if (!res.ok) {
    if (res.status === 401 && tok === token()) onUnauthorized()
    throw new APIError(res.status, j?.error ?? `${method} ${path}: HTTP ${res.status}`)
  }
  return j as T
}

export const get = <T>(path: string) => call<T>('GET', path)

export function qs(params: Record<string, string | number | undefined>): string {
  const u = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v))
  const s = u.toString()
  return s ? '?' + s : ''
}

// Path segments (client ids, topics) are escaped one level at a time, so a
// "/" inside a topic stays a level separator and "#" or "?" stay data.
export const seg = (s: string) => encodeURIComponent(s)
export const topicPath = (t: string) => t.split('/').map(encodeURIComponent).join('/')

// ---- response shapes (admin/openapi.yaml) ----

export interface Page<T> {
  items: T[]
  total: number
  page: number
  limit: number
  next: string
}

export interface Stats {
  node_id: string
  version: string
  start_time: string
  uptime_seconds: number
  connections: number
  connected: number
  sessions: number
  subscriptions: number
  shared_subscriptions: number
  retained: number
  retained_bytes: number
  inflight: number
  queued: number
  queued_bytes: number
  messages_received: number
  messages_sent: number
  bytes_received: number
  bytes_sent: number
  dropped: number
  dropped_by_reason: Record<string, number> | null
  connects_refused: number
  store_backlog_ops: number
  loops: number
  // The store's commits since start and the seconds they took in all
  // (absent without a store): the dashboard charts the mean per interval.
  store_commits?: number
  store_commit_seconds?: number
}

export interface Client {
  client_id: string
  connected: boolean
  protocol: string
  address: string
  username: string
  keep_alive: number
  expiry_interval: number
  subscription_count: number
  inflight: number
  queued: number
  connected_at: string | null
  disconnected_at: string | null
  loop: number
}

export interface Subscription {
  client_id: string
  filter: string
  qos: number
  no_local: boolean
  retain_as_published: boolean
  retain_handling: number
  identifier: number
  shared: boolean
}

export interface ClientDetail extends Client {
  subscriptions: Subscription[]
}

export interface Retained {
  topic: string
  size: number
  qos: number
  created: string
  expire_at: string | null
}

export interface RetainedDetail extends Retained {
  payload: string
  payload_encoding: 'text' | 'base64'
  properties: {
    payload_format: number
    content_type: string
    response_topic: string
    correlation_data: string
    user_properties: { key: string; value: string }[]
    message_expiry: number
  }
}

export interface Ban {
  kind: 'address' | 'client_id'
  value: string
  until: string
  remaining_seconds: number
  admin: boolean
}

export interface Listener {
  kind: string
  address: string
  url: string
  proxy: boolean
}
