package broker

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/router"
)

// Broker is the protocol core: sessions, QoS state machines, routing,
// retained messages and wills, spread over a fixed set of Loops. It does no
// I/O of its own: a transport (package reactor) binds each Loop to an event
// loop and feeds it bytes.
//
// Concurrency: New, Loop and Close are safe for concurrent use; Publish is
// safe for concurrent use. Everything else belongs to a Loop and is
// documented there.
type Broker struct {
	opts     Options
	loops    []*Loop
	shared   *router.Shared[*Session]
	retained *router.Retained[*Message]
	seed     maphash.Seed
	closed   atomic.Bool
	hooks    *hooks.Registry // Options.Hooks; nil: none (hooks.go)
	nodeID   string          // Options.NodeID, or made at New (embed.go)
	rsync    *retainedSync   // retained versions and tombstones; nil without Peers (retainedsync.go)
	// online counts sessions with a connection (Session.attach, detach,
	// takeOver): ConnectedClients without asking the loops.
	online atomic.Int64

	started     int64 // unix ns at New, for $SYS/broker/uptime
	storeErrors atomic.Uint64

	// qos2Mark numbers the QoS 2 publishes of persistent sessions, across
	// restarts (Restore resumes after the highest stored); see
	// Session.qos2Mark.
	qos2Mark atomic.Uint64
	bans     *bans

	// retainedCount and retainedBytes are what the retained index holds
	// (Options.MaxRetainedMessages, MaxRetainedBytes): retainedRoom.
	retainedCount, retainedBytes atomic.Int64
	auth                         authCounters

	// droppedOffLoop counts inbox_full drops seen off any loop (a store
	// goroutine posting an acknowledgement); loops count their own.
	droppedOffLoop atomic.Uint64

	admit admission // connection limits checked at accept (limits.go)

	p2p     p2pCounters     // point-to-point messages (p2p.go)
	delayed *delayedQueue   // $delayed messages (delayed.go)
	autoSub autoSubCounters // subscriptions made at CONNECT (autosub.go)

	// dir says which loop owns each client id (directory.go).
	dir *clientDir
	// moves: sessions moved between nodes of a cluster (sessionmove.go).
	moves moveState
	// wills: wills replicated in a cluster (willpeers.go).
	wills willState

	rateLimited bool // a publish rate limit is set: Feed charges every PUBLISH

	// readerLimit is the most bytes a connection may leave unread before
	// its next packets are refused (Client.Feed): deliveries stop at
	// MaxOutboundBytes, so only a client that sends without reading
	// what it is answered gets this far.
	readerLimit int
}

// authCounters count authentication outcomes (CONNECT path only).
type authCounters struct {
	ok, failed, timeouts, anonymousRefused, methodRefused, busyRefused atomic.Uint64
}

// New returns a broker with opts (defaults filled in). Its loops must be
// bound to executors (Loop.Bind) before clients are fed to them.
func New(opts Options) *Broker {
	opts.Defaults()
	if opts.Hooks.Has(hooks.Connect) {
		opts.Authenticator = &hookAuthenticator{next: opts.Authenticator, hooks: opts.Hooks}
	}
	b := &Broker{
		opts:     opts,
		hooks:    opts.Hooks,
		shared:   router.NewShared[*Session](),
		retained: router.NewRetained[*Message](),
		seed:     maphash.MakeSeed(),
	}
	b.bans = newBans(b)
	b.nodeID = opts.NodeID
	if b.nodeID == "" {
		b.nodeID = NewNodeID()
	}
	if opts.Peers != nil {
		b.rsync = newRetainedSync(&opts)
	}
	b.setupWills()
	b.dir = newClientDir(opts.Loops)
	b.delayed = newDelayedQueue(b)
	b.admit.seed = maphash.MakeSeed()
	b.rateLimited = opts.PublishRate > 0 || opts.PublishByteRate > 0
	b.readerLimit = 2*opts.MaxOutboundBytes + opts.MaxPacketSize
	b.started = b.readClock()
	b.loops = make([]*Loop, opts.Loops)
	for i := range b.loops {
		b.loops[i] = newLoop(b, i)
	}
	return b
}

// readClock is the broker's time in unix ns. Safe for concurrent use.
//
// A loop reads it once per callback (Loop.tick), not per packet. It is
// the system clock itself: time.Now costs tens of nanoseconds through the
// vDSO, while the coarse clock goroutine it replaces (refreshed every
// 2 ms while the broker was busy) woke a thread 500 times a second, each
// wake-up costing far more on the paravirtualised VMs we measure on
// (docs/benchmarks.md, "Paced load").
func (b *Broker) readClock() int64 { return b.opts.Now().UnixNano() }

// Options returns the effective options.
func (b *Broker) Options() Options { return b.opts }

// NumLoops is the number of loops.
func (b *Broker) NumLoops() int { return len(b.loops) }

// Loop returns loop i.
func (b *Broker) Loop(i int) *Loop { return b.loops[i] }

// homeLoop is the loop Restore puts a stored session on (its owner from then
// on, see clientDir): a fixed hash, so sessions spread over the loops.
func (b *Broker) homeLoop(clientID []byte) int {
	if len(b.loops) == 1 {
		return 0
	}
	return int(maphash.Bytes(b.seed, clientID) % uint64(len(b.loops)))
}

// topicLoop is the loop that routes a server-side publish to topic: one
// per topic, so what one caller publishes to a topic reaches every
// subscriber in the order it was published (MQTT 4.6: each topic is an
// ordered topic) while different topics spread over the loops.
func (b *Broker) topicLoop(topic []byte) int {
	if len(b.loops) == 1 {
		return 0
	}
	return int(maphash.Bytes(b.seed, topic) % uint64(len(b.loops)))
}

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker: closed")

// Publish routes an application message from the server side (no client
// session): subscribers receive it as if a client had published it, and a
// retained message is stored. Safe for concurrent use; it copies what it
// needs before returning. What one goroutine publishes to one topic is
// delivered in that order (topicLoop).
func (b *Broker) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := codec.ValidateTopicName([]byte(topic)); err != nil {
		return err
	}
	if qos > 2 {
		return errors.New("broker: QoS must be 0, 1 or 2")
	}
	p := codec.Publish{Topic: []byte(topic), Payload: payload, QoS: qos, Retain: retain}
	l := b.loops[b.topicLoop(p.Topic)]
	m := newMessage(&p, nil, b.readClock())
	if !l.post(inboxItem{kind: itemPublish, msg: m}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}

// ErrInboxFull is returned when a loop's inbox stays full.
var ErrInboxFull = errors.New("broker: loop inbox full")

// Shutdown disconnects every client: v5 clients get DISCONNECT 0x8B (server
// shutting down) first. It returns once every loop has run the request.
// The transport closes its listeners before calling it.
func (b *Broker) Shutdown() {
	if !b.closed.CompareAndSwap(false, true) {
		return
	}
	b.delayed.stop()
	var wg sync.WaitGroup
	for _, l := range b.loops {
		wg.Add(1)
		l := l
		if !l.bound() {
			wg.Done()
			continue
		}
		if err := l.exec(func() {
			defer wg.Done()
			l.shutdown()
		}); err != nil {
			wg.Done()
		}
	}
	wg.Wait()
	// In a cluster the wills these closes made due are published once
	// the cluster agrees (WillFire): give that a moment.
	b.waitWills(3 * time.Second)
}
