package broker

import (
	"runtime"
	"sync/atomic"
)

// inbox is a bounded multi-producer single-consumer queue, lock-free
// (D. Vyukov's bounded queue with per-cell sequence numbers). It is how one
// event loop hands work to another without taking a lock on the publish
// path.
//
// Push is safe for concurrent use from any goroutine. Pop must only be
// called by the owning loop. The owner is signalled once per
// empty→non-empty edge through the schedule flag, so a flood of pushes costs
// one wake-up, not one per item.
type inbox[T any] struct {
	mask      uint64
	cells     []inboxCell[T]
	_         [56]byte // keep the producer and consumer cursors on their own cache lines
	enqueue   atomic.Uint64
	_         [56]byte
	dequeue   atomic.Uint64 // written by the consumer only
	scheduled atomic.Bool
	rejected  atomic.Uint64
}

type inboxCell[T any] struct {
	seq atomic.Uint64
	val T
}

func newInbox[T any](size int) *inbox[T] {
	n := uint64(1)
	for n < uint64(size) {
		n <<= 1
	}
	q := &inbox[T]{mask: n - 1, cells: make([]inboxCell[T], n)}
	for i := range q.cells {
		q.cells[i].seq.Store(uint64(i))
	}
	return q
}

// push appends v and reports false when the queue is full. Safe for
// concurrent use.
func (q *inbox[T]) push(v T) bool {
	pos := q.enqueue.Load()
	for {
		c := &q.cells[pos&q.mask]
		seq := c.seq.Load()
		switch {
		case seq == pos:
			if q.enqueue.CompareAndSwap(pos, pos+1) {
				c.val = v
				c.seq.Store(pos + 1)
				return true
			}
			pos = q.enqueue.Load()
		case seq < pos:
			q.rejected.Add(1)
			return false
		default:
			pos = q.enqueue.Load()
		}
	}
}

// pushWait is push with bounded back-pressure: when the queue is full it
// yields the processor and retries up to spins times before giving up.
func (q *inbox[T]) pushWait(v T, spins int) bool {
	for i := 0; ; i++ {
		if q.push(v) {
			return true
		}
		if i >= spins {
			return false
		}
		runtime.Gosched()
	}
}

// pop removes the oldest item. Owner only.
func (q *inbox[T]) pop() (T, bool) {
	var zero T
	pos := q.dequeue.Load()
	c := &q.cells[pos&q.mask]
	if c.seq.Load() != pos+1 {
		return zero, false
	}
	v := c.val
	c.val = zero
	c.seq.Store(pos + q.mask + 1)
	q.dequeue.Store(pos + 1)
	return v, true
}

// len is an estimate, for metrics.
func (q *inbox[T]) len() int {
	n := int64(q.enqueue.Load()) - int64(q.dequeue.Load())
	if n < 0 {
		return 0
	}
	return int(n)
}
