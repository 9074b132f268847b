package broker

import (
	"hash/maphash"
	"sync"
)

// dirShards spreads the directory's lock: it is taken on CONNECT and on
// session end only, never on the publish path.
const dirShards = 64

// clientDir records which loop owns each client id: the loop that holds its
// session, subscriptions, queues and will, or is authenticating a
// connection for it. Takeover, resume and expiry of an id happen on its
// owner alone, so they never cross loops.
//
// An id is owned by the loop its first CONNECT arrives on, so a new client
// stays where the listener put it; only a connection for an id another loop
// owns (a resume or a takeover that landed elsewhere) is moved there. A
// fixed hash of the id would move (n-1)/n of all connections, and a move
// costs a socket duplicate, a registration through gnet's worker pool and
// about 1 KiB of garbage: with 2 loops that was a fifth of the memory a
// connection storm left behind (docs/benchmarks.md, "Memory per idle connection").
//
// Entries are keyed by a 64-bit hash of the id: two ids that collide share
// one owner, which only means that one of them may be moved. Each holder
// (a session, or a connection between its CONNECT and its session) takes a
// reference; the last release removes the entry.
//
// With one loop there is nothing to decide: the directory keeps nothing
// (single), which saves an entry per client id.
//
// Concurrency: safe for concurrent use (a mutex per shard); a loop claims
// and releases for itself.
type clientDir struct {
	seed   maphash.Seed
	single bool
	shards [dirShards]dirShard
}

type dirShard struct {
	mu sync.Mutex
	m  map[uint64]dirEntry
	_  [40]byte // keep each shard's lock on its own cache line
}

type dirEntry struct {
	loop int32
	refs int32
}

func newClientDir(loops int) *clientDir {
	d := &clientDir{seed: maphash.MakeSeed(), single: loops <= 1}
	if d.single {
		return d
	}
	for i := range d.shards {
		d.shards[i].m = make(map[uint64]dirEntry)
	}
	return d
}

// key is the directory key of a client id.
func (d *clientDir) key(id []byte) uint64 { return maphash.Bytes(d.seed, id) }

func (d *clientDir) keyString(id string) uint64 { return maphash.String(d.seed, id) }

// claim takes a reference on k for loop and reports the owner: loop when
// the id was free or already loop's (the reference is taken), another loop
// otherwise (nothing is taken).
func (d *clientDir) claim(k uint64, loop int) int {
	if d.single {
		return loop
	}
	sh := &d.shards[k%dirShards]
	sh.mu.Lock()
	e, ok := sh.m[k]
	switch {
	case !ok:
		sh.m[k] = dirEntry{loop: int32(loop), refs: 1}
	case int(e.loop) == loop:
		e.refs++
		sh.m[k] = e
	}
	sh.mu.Unlock()
	if ok {
		return int(e.loop)
	}
	return loop
}

// owner returns the loop that owns k, if any. With one loop there is no
// record: the caller knows the answer (loop 0).
func (d *clientDir) owner(k uint64) (int, bool) {
	if d.single {
		return 0, true
	}
	sh := &d.shards[k%dirShards]
	sh.mu.Lock()
	e, ok := sh.m[k]
	sh.mu.Unlock()
	return int(e.loop), ok
}

// release drops one of loop's references on k.
func (d *clientDir) release(k uint64, loop int) {
	if d.single {
		return
	}
	sh := &d.shards[k%dirShards]
	sh.mu.Lock()
	if e, ok := sh.m[k]; ok && int(e.loop) == loop {
		if e.refs--; e.refs <= 0 {
			delete(sh.m, k)
		} else {
			sh.m[k] = e
		}
	}
	sh.mu.Unlock()
}

// len is the number of ids with an owner (a metric); -1 when single.
func (d *clientDir) len() int {
	if d.single {
		return -1
	}
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// pendingRelease is a session's directory reference kept until the store
// has finished the loop's operations up to Apply n: the session's delete
// must not be overtaken by the operations of a new session for the same id
// on another loop, which go through the store in a different order.
type pendingRelease struct {
	key uint64
	n   uint64
}

// releaseSession drops the directory reference of a session that ended:
// at once when the loop has no store operation unfinished, else once those
// are (releasePending). Loop-only.
func (l *Loop) releaseSession(id string) {
	if l.b.dir.single {
		return
	}
	k := l.b.dir.keyString(id)
	if l.b.opts.Store == nil || (len(l.pass.ops) == 0 && len(l.backlog.ops) == 0 && l.durableN.Load() >= l.applyN) {
		l.b.dir.release(k, l.idx)
		return
	}
	l.dirPending = append(l.dirPending, pendingRelease{key: k, n: l.applyN + 1})
}

// releasePending drops the references whose store operations are done.
// Loop-only (from Tick).
func (l *Loop) releasePending() {
	if len(l.dirPending) == 0 {
		return
	}
	d := l.durableN.Load()
	kept := l.dirPending[:0]
	for _, p := range l.dirPending {
		if p.n <= d {
			l.b.dir.release(p.key, l.idx)
		} else {
			kept = append(kept, p)
		}
	}
	clear(l.dirPending[len(kept):])
	l.dirPending = kept
}
