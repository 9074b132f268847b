package store

import "sync"

// commitQueue is the bounded MPSC queue in front of the committer (nats
// ipQueue style): a mutex and a slice, a wakeup only on the empty→non-empty
// edge, and the consumer takes many units at once. The bound is in ops.
type commitQueue struct {
	mu     sync.Mutex
	units  []*unit
	head   int // units[:head] are taken
	ops    int // weight of units[head:]
	cap    int
	closed bool
	signal chan struct{} // 1-buffered; a token means "the queue became non-empty"
}

func newCommitQueue(capOps int) *commitQueue {
	return &commitQueue{cap: capOps, signal: make(chan struct{}, 1)}
}

// push appends u. It fails with ErrQueueFull when u does not fit; a unit
// larger than the whole bound is let into an empty queue, so it cannot be
// refused forever, and a forced unit (the store's own, from Load) is never
// refused for room. Safe for concurrent use.
func (q *commitQueue) push(u *unit) error {
	w := u.weight()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if q.ops > 0 && q.ops+w > q.cap && !u.force {
		q.mu.Unlock()
		return ErrQueueFull
	}
	wasEmpty := q.head == len(q.units)
	q.units = append(q.units, u)
	q.ops += w
	q.mu.Unlock()
	if wasEmpty {
		select {
		case q.signal <- struct{}{}:
		default:
		}
	}
	return nil
}

// pop appends to dst whole units, oldest first, while their weight fits in
// room; it takes at least one unit when room > 0 and the queue is not empty.
// more reports that units are left. Committer only.
func (q *commitQueue) pop(dst []*unit, room int) (out []*unit, took int, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head < len(q.units) && room > 0 {
		u := q.units[q.head]
		w := u.weight()
		if took > 0 && w > room {
			break
		}
		dst = append(dst, u)
		q.units[q.head] = nil
		q.head++
		q.ops -= w
		took += len(u.ents)
		room -= w
	}
	switch {
	case q.head == len(q.units):
		q.units, q.head = q.units[:0], 0
	case q.head > 1024 && q.head > len(q.units)/2:
		n := copy(q.units, q.units[q.head:])
		clear(q.units[n:])
		q.units, q.head = q.units[:n], 0
	}
	return dst, took, q.head < len(q.units)
}

// len returns the ops waiting. Safe for concurrent use.
func (q *commitQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ops
}

// empty reports whether nothing waits. Committer only (after close).
func (q *commitQueue) empty() bool { return q.len() == 0 }

// close makes push fail with ErrClosed; units already queued stay.
func (q *commitQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
