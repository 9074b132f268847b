package broker

import (
	"time"

	"sync/atomic"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/router"
)

// Loop is the broker's half of one event loop: its router shard, the
// sessions homed on it, its connections and its inbox. Every method whose
// doc says "Loop-only" must be called on the event loop it is bound to; the
// reactor guarantees this by calling them from gnet callbacks and from
// functions run through the executor given to Bind.
type Loop struct {
	b   *Broker
	idx int

	execFn atomic.Pointer[func(func()) error]

	// quiet is set by Quiesce when Tick has nothing to do until quietWake
	// (unix ns; 0: never), and cleared by the next callback on the loop
	// (tick), which then calls onActive: the transport's ticker skips a
	// quiet loop, so an idle broker does not wake every loop twice a
	// second. Written on the loop, read by the ticker.
	quiet     atomic.Bool
	quietWake atomic.Int64
	onActive  func() // set by OnActive before the loop runs
	// tickNext is when the earliest timer the last Tick saw is due (unix
	// ns; math.MaxInt64: none); tickBusy, that it did something or saw
	// work that needs every tick. For Quiesce.
	tickNext int64
	tickBusy bool

	shard    *router.Shard[*Session]
	subCount atomic.Int64 // non-shared subscriptions in shard: other loops post to us only when > 0
	inbox    *inbox[inboxItem]

	sessions map[string]*Session
	peerMsg  PeerMessage // reused by forwardToPeers
	// retainedVer is the version of the retained message this loop is
	// publishing, in a cluster (retainedsync.go): set before it is routed,
	// read by forwardToPeers and setRetained, cleared after.
	retainedVer RetainedVersion
	cl          clusterShared // shared subscriptions in a cluster (peershared.go)
	clients     []*Client     // live connections, for keep-alive and connect-timeout sweeps
	waiting     []*Session    // offline sessions with an expiry or a pending will

	now int64 // unix ns, refreshed at each callback

	// queuedBytes is the topic and payload bytes the loop's sessions hold
	// in QoS 1/2 queues and inflight windows; a message that would take it
	// past queuedBytesShare (this loop's share of
	// Options.MaxQueuedBytesTotal) is not queued.
	queuedBytes, queuedBytesShare int64

	// sessionsShare is this loop's share of Options.MaxSessions.
	sessionsShare int

	// Scratch, reused for every packet so decoding allocates nothing.
	pkt struct {
		connect  codec.Connect
		publish  codec.Publish
		ack      codec.Ack
		sub      codec.Subscribe
		unsub    codec.Unsubscribe
		disc     codec.Disconnect
		auth     codec.Auth
		suback   codec.Suback
		unsuback codec.Unsuback
	}
	matches  []router.Entry[*Session]
	targets  []*Session
	matchSeq uint64
	dirty    []*Client // connections with bytes waiting for flush

	freeOut           []*outBuf // output buffers not in use (Client.output)
	outTaken, outPeak int       // in use now, and the most at once since the last Tick
	retBuf            []*Message

	// pass are the store operations of this pass, submitted by commitOps
	// (commit.go); passSpare is its second buffer. backlog: operations
	// the store's full commit queue refused, retried first; shedLog
	// rate-limits the log line of shed.
	pass, passSpare passOps
	backlog         passOps
	shedLog         logThrottle

	// Connections whose owed retained messages wait for room (retained.go).
	retStalled    []*Client
	retTimer      *time.Timer
	retTimerArmed bool

	applyN   uint64        // Apply calls made by commitOps
	durableN atomic.Uint64 // the last of them whose done has run
	// failedFrom is the first Apply that failed since the loop last
	// dealt with a failure (resolveFailed; 0: none pending). Until it
	// has, durableN stays below it, and later commits record how far
	// they got in durableLater: output that waited for the failed state
	// must not go out as if it were stored.
	failedFrom, durableLater atomic.Uint64
	// dirPending are directory references of ended sessions waiting
	// for the store (directory.go).
	dirPending []pendingRelease
	holding    atomic.Bool // held is not empty: a done must wake the loop
	held       []*Client   // connections whose output waits for a commit (Client.holdUntil)

	heldSpare    []*Client // flushHeld's second buffer for held
	flushingHeld bool      // flushHeld is running (a write closed a connection and flushed again)

	// Batching (batch.go): while batching, a Feed's output waits for
	// the end of the transport's batch of callbacks (flushSoon), posted
	// with postFlush (the transport's, BindFlush) or else as batchFlush
	// through the executor; batchPosted: that flush is pending.
	// batchFeeds counts the Feeds since batchAt (unix ns), the start of
	// the current measuring span or cycle; batchStart is the first Feed
	// of the current batch.
	batching    bool
	batchPosted bool
	postFlush   func() error
	batchFlush  func()
	batchFeeds  int64
	batchAt     int64
	batchStart  int64
	// pauseOffUntil (unix ns): no coalescing pause before it (a pause
	// overslept); sleep is time.Sleep (tests replace it).
	pauseOffUntil int64
	sleep         func(time.Duration)

	afterApply []*ackWait // QoS 2 messages routed in this pass whose inbound record waits (qos2.go)

	authLog logThrottle // CONNECT refusals and ACL denials: one log line a second

	hook hookScratch // arguments handed to hooks (hooks.go)
	// hooked are the events some hook provides, copied from the
	// registry so the publish path tests a field of its own loop.
	hooked hooks.Events

	counters loopCounters
	snap     counterSnapshot

	sys   *sysState   // $SYS publisher (loop 0 only; nil elsewhere)
	logs  logThrottle // lines about connections the broker closes (Client.logClose): one a second
	rates []pubRates  // publish rate buckets of l.clients, same index (only with a publish rate limit)
}

type itemKind uint8

const (
	itemPublish itemKind = iota // route from this loop as if published here (server-side publish, will, a peer's message: fromPeer)
	itemRemote                  // a message published on another loop: match this shard only
	itemDirect                  // deliver to one session (shared subscription member)
	itemFunc                    // run fn
)

type inboxItem struct {
	kind   itemKind
	msg    *Message
	target *Session
	opts   router.SubOptions
	fn     func()
}

func newLoop(b *Broker, idx int) *Loop {
	l := &Loop{
		b:        b,
		idx:      idx,
		shard:    router.NewShard[*Session](),
		inbox:    newInbox[inboxItem](b.opts.InboxSize),
		sessions: make(map[string]*Session),
	}
	l.shedLog.every = 10 * time.Second
	l.batchFlush = l.flushBatch // bound once: posting it makes no closure of ours
	l.sleep = time.Sleep
	l.hooked = b.hooks.Provided()
	l.queuedBytesShare = b.opts.MaxQueuedBytesTotal / int64(b.opts.Loops)
	l.sessionsShare = max(b.opts.MaxSessions/b.opts.Loops, 1)
	if idx == 0 && b.opts.SysInterval > 0 {
		l.sys = newSysState()
	}
	return l
}

// Index is the loop's position in the broker.
func (l *Loop) Index() int { return l.idx }

// Bind sets the function that runs work on this loop's event loop. Safe
// for concurrent use; called once by the transport at start-up.
func (l *Loop) Bind(exec func(func()) error) { l.execFn.Store(&exec) }

func (l *Loop) bound() bool { return l.execFn.Load() != nil }

func (l *Loop) exec(fn func()) error {
	p := l.execFn.Load()
	if p == nil {
		return errNotBound
	}
	return (*p)(fn)
}

// post hands an item to this loop from any goroutine. With wait set it
// applies bounded back-pressure when the inbox is full (used for QoS ≥ 1,
// which must not be dropped lightly); otherwise a full inbox rejects.
func (l *Loop) post(it inboxItem, wait bool) bool {
	var ok bool
	if wait {
		ok = l.inbox.pushWait(it, 10000)
	} else {
		ok = l.inbox.push(it)
	}
	if !ok {
		return false
	}
	if l.inbox.scheduled.CompareAndSwap(false, true) {
		if err := l.exec(l.drain); err != nil {
			l.inbox.scheduled.Store(false)
		}
	}
	return true
}

// drain runs the inbox. Loop-only.
func (l *Loop) drain() {
	l.inbox.scheduled.Store(false)
	l.tick()
	for {
		it, ok := l.inbox.pop()
		if !ok {
			break
		}
		l.counters.inboxItems++
		switch it.kind {
		case itemPublish:
			m := it.msg
			if !m.fromPeer && l.b.hooks.Has(hooks.Publish) { // a peer's message met the hooks on its node
				if m = l.interceptMessage(m, hooks.FromServer, nil); m == nil {
					continue
				}
			}
			aw := m.ack // a peer's message whose node waits (peerack.go)
			l.publish(m, m.origin)
			m.release()
			if aw != nil {
				aw.releaseOn(l, nil) // the routing pass's hold
			}
		case itemRemote:
			l.routeLocal(it.msg, it.msg.origin)
			l.afterRoute(it.msg)
			l.releaseAck(it.msg)
			it.msg.release()
		case itemDirect:
			if it.target.l == l {
				l.deliverOne(it.target, it.msg, it.opts.QoS, it.opts.RetainAsPublished && it.msg.Retain, it.opts.ID)
			}
			l.afterRoute(it.msg)
			l.releaseAck(it.msg)
			it.msg.release()
		case itemFunc:
			it.fn()
		}
	}
	l.flush()
}

// tick refreshes the loop's clock and ends a quiet spell: every callback
// that does work on the loop calls it first. Loop-only.
func (l *Loop) tick() {
	l.now = l.b.readClock()
	if l.quiet.Load() {
		l.quiet.Store(false)
		if l.onActive != nil {
			l.onActive()
		}
	}
}

// flush submits the pass's store operations, then writes every
// connection's pending bytes with one writev each; a connection whose
// output waits for a commit (Client.holdUntil) is written once that
// commit is done. Loop-only.
func (l *Loop) flush() {
	l.commitOps()
	if len(l.afterApply) > 0 {
		l.routedQoS2()
		l.commitOps()
	}
	// Pop one connection at a time until none is left: a write can close
	// its connection at once (gnet calls OnClose from inside Writev on a
	// reset peer), and Client.Closed flushes again (its will, its
	// takeovers), so this runs nested; each level takes what is left, and
	// connections made dirty meanwhile are not dropped.
	for n := len(l.dirty); n > 0; n = len(l.dirty) {
		c := l.dirty[n-1]
		l.dirty[n-1] = nil
		l.dirty = l.dirty[:n-1]
		if c.mustWait(l.durableN.Load()) {
			l.held = append(l.held, c) // stays marked dirty
			continue
		}
		c.flush()
	}
	if len(l.held) > 0 && !l.flushingHeld {
		l.flushHeld()
	}
}

// flushHeld writes the held connections whose commit is done. Loop-only.
func (l *Loop) flushHeld() {
	// Set holding before reading durableN; commitOps's done stores
	// durableN before reading holding, so one of the two sees the other.
	l.holding.Store(true)
	d := l.durableN.Load()
	// Walk a swapped-out list: a write may close its connection and
	// flush again (see flush), which may hold more connections; those go
	// to the fresh l.held, and the nested flush does not re-enter here.
	l.flushingHeld = true
	held := l.held
	l.held = l.heldSpare[:0]
	for i, c := range held {
		held[i] = nil
		if c.state == stateConnected && c.mustWait(d) {
			l.held = append(l.held, c)
			continue
		}
		c.flush()
	}
	l.heldSpare = held[:0]
	l.flushingHeld = false
	if len(l.held) == 0 {
		l.holding.Store(false)
	}
}

func (l *Loop) addClient(c *Client) {
	c.idx = int32(len(l.clients))
	l.clients = append(l.clients, c)
	if o := &l.b.opts; l.b.rateLimited {
		// The publish rate buckets sit beside l.clients, at the same
		// index: a Client stays in its size class (size_test.go).
		var r pubRates
		r.msgs.fill(l.now, float64(o.PublishBurst))
		r.bytes.fill(l.now, float64(o.PublishByteBurst))
		l.rates = append(l.rates, r)
	}
}

func (l *Loop) removeClient(c *Client) {
	i := int(c.idx)
	if i < 0 || i >= len(l.clients) || l.clients[i] != c {
		return
	}
	last := len(l.clients) - 1
	l.clients[i] = l.clients[last]
	l.clients[i].idx = int32(i)
	l.clients[last] = nil
	l.clients = l.clients[:last]
	if l.b.rateLimited {
		l.rates[i] = l.rates[last]
		l.rates = l.rates[:last]
	}
	c.idx = -1
}

// shutdown disconnects every client of this loop. Loop-only.
func (l *Loop) shutdown() {
	l.tick()
	for _, c := range append([]*Client(nil), l.clients...) {
		c.disconnect(codec.ServerShuttingDown, "server shutting down")
	}
	l.flush()
}
