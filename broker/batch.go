package broker

import "time"

// Batching and coalescing: fewer wake-ups and writes per message when
// many connections each send a little.
//
// With paced load from many devices every message arrives alone on its
// own connection. Flushing at the end of every Feed then costs one write
// per subscriber per message, and the loop sleeps in epoll and is woken
// for nearly every message; on the virtual machines we measure on, those
// wake-ups and writes were almost all of the broker's CPU
// (docs/benchmarks.md, "Paced load").
//
// So once a loop's connections send at least coalesceMinPerWindow
// messages per Options.CoalesceWindow, the loop batches: what the Feeds of
// one batch of callbacks produce (deliveries, PUBACKs, store operations)
// is flushed once when the batch ends, one write per connection, and
// after the flush the loop pauses for the window so that the next batch
// holds every message that arrived meanwhile. Below that rate, or with no
// window, each Feed flushes at once and the loop never pauses: a slow
// trickle is not delayed.

// coalesceMinPerWindow is how many Feeds per window make batching worth
// it: at fewer, waking once per message is as cheap and costs no latency.
const coalesceMinPerWindow = 2

// deferFlushMax is the most bytes a Feed may consume and still leave its
// output to the end of the batch: more is a burst or a flood, whose output
// is flushed at once so that a batch of them does not pile up megabytes
// of vectors before the first write.
const deferFlushMax = 16 << 10

// BindFlush sets how the transport makes the loop call FlushBatch once its
// current batch of callbacks is done, without allocating: post is called
// on the loop (from a Feed) at most once per batch and reports whether the
// call will happen. Without it the loop posts FlushBatch through its
// executor (Bind), which may allocate. Call it before the loop is fed.
func (l *Loop) BindFlush(post func() error) { l.postFlush = post }

// FlushBatch writes what the connections fed in the batch that just ended
// produced, and may pause the loop (coalesce). The transport calls it
// when asked through BindFlush's post. Loop-only.
func (l *Loop) FlushBatch() {
	if !l.batchPosted {
		return // flushed already (a burst's Feed, a close)
	}
	l.flushBatch()
}

func (l *Loop) flushBatch() {
	l.batchPosted = false
	l.tick()
	l.counters.batchFlushes++
	l.flush()
	l.coalesce()
}

// feedDone flushes what a Feed that consumed n bytes produced: at the end
// of the batch while the loop is batching, else at once. Loop-only.
func (l *Loop) feedDone(n int) {
	if !l.batching || n >= deferFlushMax {
		l.flush()
		l.noteFeed()
		return
	}
	if l.batchFeeds == 0 {
		l.batchStart = l.now
	}
	l.batchFeeds++
	if l.batchPosted {
		return
	}
	if len(l.dirty) == 0 && len(l.pass.ops) == 0 && len(l.backlog.ops) == 0 && len(l.afterApply) == 0 {
		return // nothing written or stored (a subscriber's PUBACK): no flush needed
	}
	l.batchPosted = true
	var err error
	if l.postFlush != nil {
		err = l.postFlush()
	} else {
		err = l.exec(l.batchFlush)
	}
	if err != nil {
		l.flushBatch()
	}
}

// noteFeed counts a Feed flushed at once and starts batching when, over
// a span of at least one window, the loop's connections sent at least
// coalesceMinPerWindow messages per window. Loop-only.
func (l *Loop) noteFeed() {
	w := int64(l.b.opts.CoalesceWindow)
	if w <= 0 {
		return
	}
	l.batchFeeds++
	span := l.now - l.batchAt
	if span < w {
		return
	}
	if l.batchFeeds*w >= coalesceMinPerWindow*span {
		l.batching = true
	}
	l.batchFeeds, l.batchAt = 0, l.now
}

// coalesce ends a batch: it stops batching when the last cycle (flush to
// flush, pause included) had fewer than coalesceMinPerWindow Feeds per
// window, and otherwise pauses the loop for Options.CoalesceWindow, so
// that it wakes once per window for many messages (one read each, one
// write per connection for all of them) instead of once per message.
// Loop-only.
//
// A loop does not pause after a batch that took more than half the window
// to handle: it is busy, messages already wait for it, and a pause would
// only cut its throughput (a flood). The pause is a time.Sleep on the
// loop's goroutine, not a blocking system call: the runtime's idle
// thread waits in its own netpoll and no other thread is woken to take
// the loop's processor (nanosleep(2) from the loop measured worse for
// that reason). Go's timers then sleep at least about a millisecond
// whatever the window, when nothing else runs. Meanwhile new bytes wait
// in the sockets and work from other loops in the inbox, so a message
// waits at most one pause longer. A pause that ends late turns pauses off
// for a while (oversleep).
func (l *Loop) coalesce() {
	n, cycle, busy := l.batchFeeds, l.now-l.batchAt, l.now-l.batchStart
	l.batchFeeds, l.batchAt = 0, l.now
	w := int64(l.b.opts.CoalesceWindow)
	if w <= 0 || n*w < coalesceMinPerWindow*cycle {
		l.batching = false
		return
	}
	if busy > w/2 || l.now < l.pauseOffUntil {
		return
	}
	l.counters.coalescePauses++
	l.sleep(time.Duration(w)) // batchAt stays before it: the next cycle's rate counts the pause
	if slept := l.b.readClock() - l.now; slept > w+int64(oversleep) {
		// The loop got its processor back late: the machine's CPUs are
		// contended, and each pause would give them up to whoever waits.
		// Keep batching, without pauses for a while.
		l.pauseOffUntil = l.now + slept + int64(pauseOffFor)
		l.batchAt = l.now + slept // the next cycle's rate without the late pause
	}
}

// A pause that ends more than oversleep after its window turns pauses
// off for pauseOffFor: on a host whose CPUs are contended, a loop that
// pauses queues for its processor again after every pause, and its
// connections fall behind.
const (
	oversleep   = 2 * time.Millisecond
	pauseOffFor = 100 * time.Millisecond
)
