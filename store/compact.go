package store

import (
	"sync"
	"sync/atomic"
	"time"
	_ "unsafe" // go:linkname, see compactions

	badger "github.com/dgraph-io/badger/v4"
)

// compactionIdle is how long the store goes without a write before Badger's
// compactors are stopped (compactions.pause).
const compactionIdle = 10 * time.Second

// compactions stops Badger's compactors while the store is idle and starts
// them again before the next write.
//
// Each of Badger's compactors wakes every 50 ms for as long as the database
// is open (badger levels.go, runCompactor), whether or not anything was
// written: with the two the store runs that is 40 wake-ups a second, most
// of an idle broker's CPU on a paravirtualised machine, where a wake-up
// costs tens of microseconds (docs/benchmarks.md, "Idle memory and idle
// CPU"). Badger has no option for it; it stops and restarts its compactors
// itself around Flatten and DropPrefix (DB.stopCompactions and
// DB.startCompactions), and this calls the same two through go:linkname.
// TestBadgerCompactionsPause checks that they exist and work with the
// Badger version in go.mod.
//
// The compactors are stopped only after compactionIdle without a write
// and when Badger reports no level worth compacting (DB.Levels: every
// score below 1), so nothing waits for them; every write path (the
// committer's batches, the value-log GC) calls resume first, so a memtable
// flushed after it finds them running.
//
// mu serialises pause and resume (Badger's own calls replace the closer
// they share); paused is read without it on the committer's path.
type compactions struct {
	db        *badger.DB
	mu        sync.Mutex
	paused    atomic.Bool
	lastWrite atomic.Int64  // unix ns of the last resume call
	kick      chan struct{} // resume → the GC goroutine: watch for idleness again
}

//go:linkname badgerStopCompactions github.com/dgraph-io/badger/v4.(*DB).stopCompactions
func badgerStopCompactions(db *badger.DB)

//go:linkname badgerStartCompactions github.com/dgraph-io/badger/v4.(*DB).startCompactions
func badgerStartCompactions(db *badger.DB)

func newCompactions(db *badger.DB) *compactions {
	c := &compactions{db: db, kick: make(chan struct{}, 1)}
	c.lastWrite.Store(time.Now().UnixNano())
	return c
}

// resume records a write and, if the compactors are stopped, starts them.
// Safe for concurrent use; called before every write.
func (c *compactions) resume() {
	c.lastWrite.Store(time.Now().UnixNano())
	if !c.paused.Load() {
		return
	}
	c.mu.Lock()
	if c.paused.Load() {
		badgerStartCompactions(c.db)
		c.paused.Store(false)
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// pause stops the compactors if the store has been idle for
// compactionIdle and no level needs compacting. It reports how long to
// wait before asking again (0: paused, ask after the next resume).
// Called by the GC goroutine only.
func (c *compactions) pause(now time.Time) time.Duration {
	if c.paused.Load() {
		return 0
	}
	if since := now.Sub(time.Unix(0, c.lastWrite.Load())); since < compactionIdle {
		return compactionIdle - since
	}
	for _, l := range c.db.Levels() {
		if l.Score >= 1 || l.Adjusted >= 1 {
			return compactionIdle // Badger has work: let it finish
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(time.Unix(0, c.lastWrite.Load())) < compactionIdle {
		return compactionIdle // written meanwhile
	}
	// Waits for a compaction in progress, and for each compactor's next
	// 50 ms tick.
	badgerStopCompactions(c.db)
	c.paused.Store(true)
	return 0
}
