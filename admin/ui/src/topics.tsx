import { useEffect, useMemo, useState } from 'preact/hooks'
import { call, get, qs, topicPath, type Page, type Retained, type RetainedDetail } from './api'
import { Card, Confirm, ErrorBox, fmtBytes, fmtNum, fmtTime, useDebounced } from './util'

const LIMIT = 500

interface Node {
  name: string
  path: string
  children: Map<string, Node>
  msg?: Retained
  count: number // retained messages at or under this node
}

function buildTree(items: Retained[]): Node {
  const root: Node = { name: '', path: '', children: new Map(), count: 0 }
  for (const r of items) {
    let n = root
    n.count++
    const levels = r.topic.split('/')
    levels.forEach((lv, i) => {
      let c = n.children.get(lv)
      if (!c) {
        c = { name: lv, path: levels.slice(0, i + 1).join('/'), children: new Map(), count: 0 }
        n.children.set(lv, c)
      }
      c.count++
      n = c
    })
    n.msg = r
  }
  return root
}

// Topics: the retained messages as a tree of topic levels, loaded a page
// of 500 topics at a time (the next cursor for more).
export function Topics() {
  const [match, setMatch] = useState('')
  const m = useDebounced(match, 300)
  const [items, setItems] = useState<Retained[]>([])
  const [total, setTotal] = useState(0)
  const [next, setNext] = useState('')
  const [err, setErr] = useState('')
  const [sel, setSel] = useState<string | null>(null)
  const [reload, setReload] = useState(0)

  const load = async (after: string) => {
    try {
      const p = await get<Page<Retained>>('retained' + qs({ match: m, limit: LIMIT, after }))
      setItems((old) => (after ? old.concat(p.items) : p.items))
      setTotal(after ? total : p.total)
      setNext(p.next)
      setErr('')
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  useEffect(() => {
    load('')
  }, [m, reload])

  const tree = useMemo(() => buildTree(items), [items])
  return (
    <div class="split">
      <Card title="Retained topics" actions={
        <>
          <input type="search" id="topic-search" placeholder="topic contains" value={match} onInput={(e) => setMatch((e.target as HTMLInputElement).value)} />
          <button type="button" onClick={() => setReload((r) => r + 1)}>Refresh</button>
        </>
      }>
        <ErrorBox err={err} />
        <div class="muted">{fmtNum(items.length)} of {fmtNum(total)} retained topics loaded</div>
        <ul class="tree" id="topic-tree">
          {[...tree.children.values()].sort(byName).map((n) => <TreeNode key={n.path} n={n} sel={sel} onSel={setSel} depth={0} />)}
        </ul>
        {next && <button type="button" onClick={() => load(next)}>Load {LIMIT} more</button>}
      </Card>
      <RetainedPane topic={sel} onDeleted={() => { setSel(null); setReload((r) => r + 1) }} />
    </div>
  )
}

const byName = (a: Node, b: Node) => a.name.localeCompare(b.name)

function TreeNode({ n, sel, onSel, depth }: { n: Node; sel: string | null; onSel: (t: string) => void; depth: number }) {
  const [open, setOpen] = useState(depth < 2 && !n.path.startsWith('$')) // $SYS folded: the broker's own topics
  const kids = [...n.children.values()].sort(byName)
  return (
    <li>
      <div class={'node' + (n.msg && sel === n.path ? ' selected' : '')}>
        {kids.length > 0 ? <button type="button" class="twisty" onClick={() => setOpen(!open)}>{open ? '▾' : '▸'}</button> : <span class="twisty" />}
        {n.msg
          ? <a href="javascript:void 0" data-topic={n.path} onClick={() => onSel(n.path)}>{n.name || '(empty)'}</a>
          : <span onClick={() => setOpen(!open)}>{n.name || '(empty)'}</span>}
        {n.msg && <span class="muted"> {fmtBytes(n.msg.size)}, QoS {n.msg.qos}</span>}
        {kids.length > 0 && <span class="count">{n.count}</span>}
      </div>
      {open && kids.length > 0 && (
        <ul>{kids.map((k) => <TreeNode key={k.path} n={k} sel={sel} onSel={onSel} depth={depth + 1} />)}</ul>
      )}
    </li>
  )
}

function RetainedPane({ topic, onDeleted }: { topic: string | null; onDeleted: () => void }) {
  const [d, setD] = useState<RetainedDetail | null>(null)
  const [err, setErr] = useState('')
  useEffect(() => {
    setD(null)
    setErr('')
    if (topic === null) return
    get<RetainedDetail>('retained/' + topicPath(topic)).then(setD, (e) => setErr(e.message))
  }, [topic])
  const del = async () => {
    try {
      await call('DELETE', 'retained/' + topicPath(topic!))
      onDeleted()
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  return (
    <Card title="Retained message" actions={d && <Confirm label="Delete" confirm="Delete: sure?" onConfirm={del} />}>
      <ErrorBox err={err} />
      {topic === null && <div class="muted">Pick a topic in the tree.</div>}
      {d && (
        <div id="retained-detail">
          <dl class="kv">
            <dt>Topic</dt><dd class="mono">{d.topic}</dd>
            <dt>Size</dt><dd>{fmtBytes(d.size)}</dd>
            <dt>QoS</dt><dd>{d.qos}</dd>
            <dt>Stored</dt><dd>{fmtTime(d.created)}</dd>
            {d.expire_at && <><dt>Expires</dt><dd>{fmtTime(d.expire_at)}</dd></>}
            {d.properties.content_type && <><dt>Content type</dt><dd>{d.properties.content_type}</dd></>}
            {d.properties.response_topic && <><dt>Response topic</dt><dd class="mono">{d.properties.response_topic}</dd></>}
            {d.properties.user_properties.map((u) => <><dt>{u.key}</dt><dd>{u.value}</dd></>)}
          </dl>
          <h3>Payload ({d.payload_encoding})</h3>
          <pre class="payload">{d.payload}</pre>
        </div>
      )}
    </Card>
  )
}
