package broker

import (
	"sync/atomic"
	"time"
)

// coarseClock is the broker's wall clock (unix ns).
//
// Reading the system clock costs 60–100 ns on virtual machines, too much to
// do per packet at a million packets a second, and nothing the broker times
// (keep-alive, expiry, will delay) needs better than milliseconds. So while
// the broker is busy one goroutine refreshes a shared value every clockStep.
// At light load that goroutine's 500 wake-ups a second cost more than they
// save (at 1,000 msg/s they doubled the broker's CPU per message), so it
// ticks for clockLinger after it was last woken and parks; while it is
// parked readers read the system clock themselves and wake it once they
// read more than clockWakeReads times within clockLinger.
//
// A clock built by newDirectClock (Options.Now set by a test or an
// embedder) has no goroutine: every read calls now, so time moved by a fake
// is seen at once by every reader.
//
// read is safe for concurrent use; run and stop are called once each.
type coarseClock struct {
	now    func() time.Time
	direct bool

	value  atomic.Int64
	idle   atomic.Bool
	reads  atomic.Int64 // reads while parked, in the current window
	window atomic.Int64 // unix ns: the window began
	wake   chan struct{}
	done   chan struct{}
}

const (
	clockStep   = 2 * time.Millisecond
	clockLinger = 20 * time.Millisecond // ticks kept after the last wake
	// clockWakeReads within clockLinger (5,000 reads a second) wake the
	// ticking goroutine.
	clockWakeReads = 100
)

// newClock returns a clock reading now; direct clocks call now on every
// read, the others start their ticking goroutine (stopped by stop).
func newClock(now func() time.Time, direct bool) *coarseClock {
	c := &coarseClock{now: now, direct: direct, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.value.Store(now().UnixNano())
	if !direct {
		go c.run()
	}
	return c
}

func (c *coarseClock) stop() { close(c.done) }

func (c *coarseClock) run() {
	t := time.NewTicker(clockStep)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-t.C:
			c.value.Store(c.now().UnixNano())
			if ticks++; ticks < int(clockLinger/clockStep) {
				continue
			}
			// Park until readers find themselves reading often.
			t.Stop()
			c.window.Store(c.now().UnixNano())
			c.reads.Store(0)
			c.idle.Store(true)
			select {
			case <-c.wake:
			case <-c.done:
				return
			}
			ticks = 0
			t.Reset(clockStep)
		case <-c.wake: // a reader found it idle just before it parked
		case <-c.done:
			return
		}
	}
}

// read returns the coarse clock while its goroutine ticks; while it is
// parked, the system clock, and it wakes the goroutine when reads have
// become frequent.
func (c *coarseClock) read() int64 {
	if c.direct {
		return c.now().UnixNano()
	}
	if !c.idle.Load() {
		return c.value.Load()
	}
	now := c.now().UnixNano()
	if c.reads.Add(1) < clockWakeReads {
		return now
	}
	if now-c.window.Load() >= int64(clockLinger) {
		// Fewer than clockWakeReads in the window: stay direct.
		c.window.Store(now)
		c.reads.Store(0)
		return now
	}
	if c.idle.CompareAndSwap(true, false) {
		c.value.Store(now)
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return now
}
