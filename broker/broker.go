package broker

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
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
	rr       atomic.Uint32 // round robin for server-side publishes
	closed   atomic.Bool

	// clock is a coarse wall clock (unix ns) refreshed every clockStep by
	// one goroutine while the broker is busy: reading the system clock
	// costs 60–100 ns on virtual machines, too much to do per packet at a
	// million packets a second, and nothing the broker times (keep-alive,
	// expiry, will delay) needs better than milliseconds. At light load
	// the goroutine's 500 wake-ups a second cost more than they save (at
	// 1,000 msg/s they doubled the broker's CPU per message), so it ticks
	// for clockLinger and parks; while it is parked readers read the
	// system clock themselves (readClock) and wake it once they read more
	// than clockWakeReads times within clockLinger.
	clock       atomic.Int64
	clockIdle   atomic.Bool
	clockReads  atomic.Int64 // reads while parked, in the current window
	clockWindow atomic.Int64 // unix ns: the window began
	clockWake   chan struct{}
	started     int64 // unix ns at New, for $SYS/broker/uptime
	storeErrors atomic.Uint64
	clockStop   chan struct{}

	// qos2Mark numbers the QoS 2 publishes of persistent sessions, across
	// restarts (Restore resumes after the highest stored); see
	// Session.qos2Mark.
	qos2Mark atomic.Uint64
	bans     *bans
	auth     authCounters

	// droppedOffLoop counts inbox_full drops seen off any loop (a store
	// goroutine posting an acknowledgement); loops count their own.
	droppedOffLoop atomic.Uint64

	admit admission // connection limits checked at accept (limits.go)

	// dir says which loop owns each client id (directory.go).
	dir *clientDir

	rateLimited bool // a publish rate limit is set: Feed charges every PUBLISH

	// readerLimit is the most bytes a connection may leave unread before
	// its next packets are refused (Client.Feed): deliveries stop at
	// MaxOutboundBytes, so only a client that sends without reading
	// what it is answered gets this far.
	readerLimit int
}

// authCounters count authentication outcomes (CONNECT path only).
type authCounters struct {
	ok, failed, timeouts, anonymousRefused, methodRefused atomic.Uint64
}

const (
	clockStep   = 2 * time.Millisecond
	clockLinger = 20 * time.Millisecond // ticks kept after the last wake
	// clockWakeReads within clockLinger (5,000 reads a second) wake the
	// ticking goroutine.
	clockWakeReads = 100
)

// New returns a broker with opts (defaults filled in). Its loops must be
// bound to executors (Loop.Bind) before clients are fed to them.
func New(opts Options) *Broker {
	opts.Defaults()
	b := &Broker{
		opts:      opts,
		shared:    router.NewShared[*Session](),
		retained:  router.NewRetained[*Message](),
		seed:      maphash.MakeSeed(),
		clockStop: make(chan struct{}),
		clockWake: make(chan struct{}, 1),
	}
	b.bans = newBans(b)
	b.dir = newClientDir(opts.Loops)
	b.admit.seed = maphash.MakeSeed()
	b.rateLimited = opts.PublishRate > 0 || opts.PublishByteRate > 0
	b.readerLimit = 2*opts.MaxOutboundBytes + opts.MaxPacketSize
	b.clock.Store(opts.Now().UnixNano())
	b.started = b.clock.Load()
	go b.runClock()
	b.loops = make([]*Loop, opts.Loops)
	for i := range b.loops {
		b.loops[i] = newLoop(b, i)
	}
	return b
}

func (b *Broker) runClock() {
	t := time.NewTicker(clockStep)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-t.C:
			b.clock.Store(b.opts.Now().UnixNano())
			if ticks++; ticks < int(clockLinger/clockStep) {
				continue
			}
			// Park until readers find themselves reading often.
			t.Stop()
			b.clockWindow.Store(b.opts.Now().UnixNano())
			b.clockReads.Store(0)
			b.clockIdle.Store(true)
			select {
			case <-b.clockWake:
			case <-b.clockStop:
				return
			}
			ticks = 0
			t.Reset(clockStep)
		case <-b.clockWake: // a reader found it idle just before it parked
		case <-b.clockStop:
			return
		}
	}
}

// readClock returns the coarse clock while its goroutine ticks; while it
// is parked, the system clock, and it wakes the goroutine when reads have
// become frequent. Safe for concurrent use.
func (b *Broker) readClock() int64 {
	if !b.clockIdle.Load() {
		return b.clock.Load()
	}
	now := b.opts.Now().UnixNano()
	if b.clockReads.Add(1) < clockWakeReads {
		return now
	}
	if now-b.clockWindow.Load() >= int64(clockLinger) {
		// Fewer than clockWakeReads in the window: stay direct.
		b.clockWindow.Store(now)
		b.clockReads.Store(0)
		return now
	}
	if b.clockIdle.CompareAndSwap(true, false) {
		b.clock.Store(now)
		select {
		case b.clockWake <- struct{}{}:
		default:
		}
	}
	return now
}

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

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker: closed")

// Publish routes an application message from the server side (no client
// session): subscribers receive it as if a client had published it, and a
// retained message is stored. Safe for concurrent use; it copies what it
// needs before returning.
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
	l := b.loops[int(b.rr.Add(1))%len(b.loops)]
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
	defer close(b.clockStop)
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
}
