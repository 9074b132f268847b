package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// commitFront is what Badger and Redis share in front of their writers:
// the bounded commit queue and Apply, the forced flush that Load uses, the
// committer's batching loop (runCommitter), the counters and health of
// committed batches, and the first half of Close. Each store embeds it,
// made by newCommitFront, and starts its committer on it.
type commitFront struct {
	q   *commitQueue
	m   *storeMetrics
	log *slog.Logger

	durability   Durability
	maxBatch     int           // most ops in one batch
	maxDelay     time.Duration // how long a batch's first op may wait for more
	maxVal       int           // bound of one encoded value (ErrTooLarge)
	fullMsg      string        // the queue-full warning, with the store's advice
	testHookTake func()        // called by the committer before it takes ops off the queue

	closeOnce     sync.Once
	closing       chan struct{} // closed by Close: drain and stop
	committerDone chan struct{}

	inflight    atomic.Int32 // being written (Stats.InFlight), set by the committer
	last, most  atomic.Int64
	commitNanos atomic.Uint64         // Stats.CommitSeconds, in nanoseconds
	lastErr     atomic.Pointer[error] // error of the last committed batch; nil after a good one
	closed      atomic.Bool
	logFull     throttle
	logErr      throttle
}

// setFrontDefaults gives the options of a store's front that are zero (or
// negative, but for maxDelay) their defaults: maxBatch 1024, maxDelay 2ms,
// queueSize 65536 ops, logger slog.Default().
func setFrontDefaults(maxBatch *int, maxDelay *time.Duration, queueSize *int, logger **slog.Logger) {
	if *maxBatch <= 0 {
		*maxBatch = defaultMaxBatch
	}
	if *maxDelay == 0 {
		*maxDelay = defaultMaxDelay
	}
	if *queueSize <= 0 {
		*queueSize = defaultQueueSize
	}
	if *logger == nil {
		*logger = slog.Default()
	}
}

// newCommitFront makes the front of a store with log, durability d, the
// batching limits, a queue of queueSize ops, values bounded by maxVal
// bytes, and fullAdvice ending the queue-full warning. The metrics (m)
// are the store's to set.
func newCommitFront(log *slog.Logger, d Durability, maxBatch int, maxDelay time.Duration, queueSize, maxVal int, fullAdvice string) commitFront {
	return commitFront{
		q:          newCommitQueue(queueSize),
		log:        log,
		durability: d,
		maxBatch:   maxBatch,
		maxDelay:   maxDelay,
		maxVal:     maxVal,
		fullMsg: "store: commit queue full, rejecting ops. Possible solutions: raise the commit queue size, use --durability=commit instead of sync, or " +
			fullAdvice,
		closing:       make(chan struct{}),
		committerDone: make(chan struct{}),
	}
}

// Apply queues ops for the committer; see Store.Apply. Safe for concurrent
// use; it never waits for a write (to Badger's disk or to Redis), only for
// the queue's mutex.
func (f *commitFront) Apply(ops []Op, done func(error)) error {
	u, err := encodeOps(ops, f.maxVal)
	if err != nil {
		return err
	}
	u.done = done
	if err := f.q.push(u); err != nil {
		if errors.Is(err, ErrQueueFull) {
			f.m.rejected.Add(len(ops))
			f.logFull.log(f.log, slog.LevelWarn, f.fullMsg, "queue_ops", f.q.cap, "durability", f.durability.String())
		}
		return err
	}
	return nil
}

// flushWait queues u (forced: done after the write) and waits for it.
func (f *commitFront) flushWait(u *unit) error {
	ch := make(chan error, 1)
	u.force = true
	u.done = func(err error) { ch <- err }
	if err := f.q.push(u); err != nil {
		return err
	}
	return <-ch
}

// deleteExpired writes the deletes of the expired records l met, and
// waits for them: the end of Load.
func (f *commitFront) deleteExpired(l *loader) error {
	if len(l.dels) == 0 {
		return nil
	}
	if err := f.flushWait(l.deleteUnit()); err != nil {
		return fmt.Errorf("store: cannot delete %d expired records: %w", len(l.dels), err)
	}
	return nil
}

// Stats returns the counters. Safe for concurrent use.
func (f *commitFront) Stats() Stats {
	m := f.m
	return Stats{
		QueueLen:      f.q.len(),
		QueueCap:      f.q.cap,
		Batches:       m.batches.Get(),
		Ops:           m.ops.Get(),
		Errors:        m.errors.Get(),
		Rejected:      m.rejected.Get(),
		LastBatchOps:  int(f.last.Load()),
		MaxBatchOps:   int(f.most.Load()),
		Txns:          m.txns.Get(),
		Syncs:         m.syncs.Get(),
		InFlight:      int(f.inflight.Load()),
		BytesWritten:  m.bytes.Get(),
		GCRuns:        m.gcRuns.Get(),
		CommitSeconds: float64(f.commitNanos.Load()) / 1e9,
	}
}

// health is Healthy's answer: ErrClosed after Close, *down when the store
// knows its backend unusable, the error of the last batch when it failed,
// and nil otherwise. Safe for concurrent use.
func (f *commitFront) health(down *error) error {
	if f.closed.Load() {
		return ErrClosed
	}
	if down != nil {
		return *down
	}
	if p := f.lastErr.Load(); p != nil {
		return fmt.Errorf("store: last commit failed: %w", *p)
	}
	return nil
}

// drain is the first half of Close: it stops taking ops and waits for the
// committer to write everything queued (calling its done callbacks) and
// stop.
func (f *commitFront) drain() {
	f.closed.Store(true)
	f.q.close()
	close(f.closing)
	<-f.committerDone
}

// batchWriter is a store's side of runCommitter: it writes the batches the
// loop gathers, and reports on a channel of D as each write ends. Its
// methods run on the committer goroutine.
type batchWriter[D any] interface {
	// room reports whether another batch may be handed over now.
	room() bool
	// idle reports whether nothing handed over is still being written.
	idle() bool
	// hand starts writing units, ops ops in all.
	hand(units []*unit, ops int)
	// written takes one report of a write that ended.
	written(D)
}

// runCommitter is the committer's loop: it gathers queued units into
// batches of at most maxBatch ops and hands them to w. A batch is handed
// over at once when w is idle (no added latency under light load),
// otherwise when it is full or its first op has waited maxDelay. With
// DurabilityNone it acknowledges units as it takes them (write behind).
// After Close it hands over everything queued and returns once w is idle;
// closing committerDone is the caller's.
func runCommitter[D any](f *commitFront, w batchWriter[D], written chan D) {
	var (
		cur      []*unit // the batch being gathered
		curOps   int
		curFirst time.Time
		more     bool // the queue holds units that did not fit in cur
		closing  = f.closing
		draining bool
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if room := f.maxBatch - curOps; room > 0 {
			if h := f.testHookTake; h != nil {
				h()
			}
			n0 := len(cur)
			var took int
			cur, took, more = f.q.pop(cur, room)
			if len(cur) > n0 {
				if n0 == 0 {
					curFirst = time.Now()
				}
				curOps += took
				if f.durability == DurabilityNone {
					// Write behind: ack as soon as the ops are ours.
					for _, u := range cur[n0:] {
						if u.done != nil && !u.force {
							u.done(nil)
						}
					}
				}
			}
		}
		full := curOps >= f.maxBatch || more
		if len(cur) > 0 && w.room() &&
			(w.idle() || full || draining || time.Since(curFirst) >= f.maxDelay) {
			w.hand(cur, curOps)
			cur, curOps, more = nil, 0, false
			continue
		}
		if draining && len(cur) == 0 && w.idle() && f.q.empty() {
			return
		}
		var tick <-chan time.Time
		if len(cur) > 0 && !full && w.room() {
			timer.Reset(time.Until(curFirst.Add(f.maxDelay)))
			tick = timer.C
		}
		var signal <-chan struct{}
		if !full {
			signal = f.q.signal
		}
		select {
		case <-signal:
		case d := <-written:
			w.written(d)
		case <-tick:
		case <-closing:
			draining, closing = true, nil
		}
		timer.Stop()
	}
}

// batchHead is what a batch of either store holds besides its writes.
type batchHead struct {
	units []*unit
	ops   int
	bytes int
	start time.Time
	err   error
}

// record counts a finished batch that made txns transactions (synced, with
// DurabilitySync, when it did not fail), and keeps its error for Healthy.
func (f *commitFront) record(bt *batchHead, txns int) {
	m := f.m
	m.batches.Inc()
	m.ops.Add(bt.ops)
	m.bytes.Add(bt.bytes)
	m.txns.Add(txns)
	took := time.Since(bt.start)
	f.commitNanos.Add(uint64(max(took, 0)))
	m.batchOps.Observe(float64(bt.ops))
	m.commitSeconds.Observe(took.Seconds())
	f.last.Store(int64(bt.ops))
	storeMax(&f.most, int64(bt.ops))
	if bt.err != nil {
		err := bt.err
		f.lastErr.Store(&err)
		m.errors.Inc()
		f.logErr.log(f.log, slog.LevelError, "store: commit failed", "ops", bt.ops, "units", len(bt.units), "durability", f.durability.String(), "err", bt.err)
		return
	}
	if bt.ops > 0 {
		f.lastErr.Store(nil)
	}
	if f.durability == DurabilitySync {
		m.syncs.Add(txns)
	}
}

// complete calls the done callbacks of bt's units with its error; with
// DurabilityNone only the forced ones (runCommitter acknowledged the
// others).
func (f *commitFront) complete(bt *batchHead) {
	for _, u := range bt.units {
		if u.done != nil && (u.force || f.durability != DurabilityNone) {
			u.done(bt.err)
		}
	}
}

// throttle lets a log line through at most once per throttleEvery.
type throttle struct{ last atomic.Int64 }

const throttleEvery = 5 * time.Second

func (t *throttle) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := t.last.Load()
	if now-last < int64(throttleEvery) || !t.last.CompareAndSwap(last, now) {
		return
	}
	l.Log(context.Background(), level, msg, args...)
}
