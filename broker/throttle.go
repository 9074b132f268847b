package broker

import (
	"sync/atomic"
	"time"
)

// Log throttles: a client provoking refusals in a loop must not turn them
// into a flood of log lines. The line that passes after some were held
// back says how many (the "suppressed" attribute).

// logThrottle lets one line through per interval (every; 0: a second) and
// counts the ones it held back. Loop-only (one per loop and purpose).
type logThrottle struct {
	every      time.Duration
	next       int64 // unix ns
	suppressed uint64
}

func (t *logThrottle) allow(now int64) (bool, uint64) {
	if now < t.next {
		t.suppressed++
		return false, 0
	}
	every := t.every
	if every == 0 {
		every = time.Second
	}
	n := t.suppressed
	t.next, t.suppressed = now+int64(every), 0
	return true, n
}

// sharedLogThrottle lets at most throttleLines log lines through per second and
// counts the rest; the next line that passes reports how many were
// suppressed. Safe for concurrent use.
type sharedLogThrottle struct {
	window     atomic.Int64 // start of the current one-second window, unix ns
	lines      atomic.Int32 // lines let through in the window
	suppressed atomic.Uint64
}

const throttleLines = 5

func (t *sharedLogThrottle) allow(now int64) (bool, uint64) {
	w := t.window.Load()
	if now-w >= int64(time.Second) && t.window.CompareAndSwap(w, now) {
		t.lines.Store(0)
	}
	if t.lines.Add(1) > throttleLines {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}
