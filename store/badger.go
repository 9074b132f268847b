package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/skl"
	"github.com/dgraph-io/ristretto/v2/z"
)

// BadgerOptions configure OpenBadger. Zero values take the defaults.
type BadgerOptions struct {
	// Dir is the data directory; it is created if missing.
	Dir        string
	Durability Durability
	// MaxBatch is the most ops in one batch (--commit-max-batch), default 1024.
	MaxBatch int
	// MaxDelay is how long the first op of a batch may wait for more while a
	// previous batch is being written (--commit-max-delay), default 2ms. An
	// idle committer writes at once. Negative: never wait.
	MaxDelay time.Duration
	// QueueSize bounds the commit queue, in ops (default 65536). Apply
	// returns ErrQueueFull beyond it.
	QueueSize int
	// GCInterval is the value-log GC schedule, default 5m; negative: never.
	GCInterval time.Duration
	// GCAfterBytes also starts a value-log GC after this many key and value
	// bytes are written, default 256 MiB; negative: never.
	GCAfterBytes int64
	// MemTableSize is Badger's memtable size, default 16 MiB. Badger keeps
	// two; a transaction holds at most 15% of one (larger batches are split).
	MemTableSize int64
	// ValueLogFileSize is the size of one value-log file, default 64 MiB. It
	// also bounds the largest value the store accepts (ErrTooLarge).
	ValueLogFileSize int64
	// Logger receives Badger's warnings and errors and the store's own;
	// default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, gets the store's metrics (mcutie_store_*). A set
	// takes one store.
	Metrics *metrics.Set

	testHookTake func() // called by the committer before it takes ops off the queue
}

const (
	defaultMaxBatch     = 1024
	defaultMaxDelay     = 2 * time.Millisecond
	defaultQueueSize    = 65536
	defaultGCInterval   = 5 * time.Minute
	defaultGCAfterBytes = 256 << 20
	defaultMemTableSize = 16 << 20
	defaultVlogFileSize = 64 << 20
	gcDiscardRatio      = 0.5
	gcMaxRewrites       = 64 // per GC run, so Close never waits long
)

func (o *BadgerOptions) setDefaults() {
	setFrontDefaults(&o.MaxBatch, &o.MaxDelay, &o.QueueSize, &o.Logger)
	if o.GCInterval == 0 {
		o.GCInterval = defaultGCInterval
	}
	if o.GCAfterBytes == 0 {
		o.GCAfterBytes = defaultGCAfterBytes
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = defaultMemTableSize
	}
	if o.ValueLogFileSize <= 0 {
		o.ValueLogFileSize = defaultVlogFileSize
	}
}

// Badger is the embedded, default Store: Badger v4 in managed mode behind a
// group-commit queue. See the package documentation.
type Badger struct {
	commitFront // Apply, Stats; inflight counts Badger transactions
	db          *badger.DB
	opt         BadgerOptions
	c           *committer
	cmp         *compactions // stops Badger's compactors while idle (compact.go)

	gcKick chan struct{}
	gcStop chan struct{}
	gcDone chan struct{}
}

var _ Store = (*Badger)(nil)

// OpenBadger opens (or creates) the store in o.Dir.
func OpenBadger(o BadgerOptions) (*Badger, error) {
	o.setDefaults()
	if o.Dir == "" {
		return nil, errors.New("store: BadgerOptions.Dir is empty")
	}
	if o.Durability < DurabilityCommit || o.Durability > DurabilityNone {
		return nil, fmt.Errorf("store: invalid durability %d", int(o.Durability))
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, openError(o.Dir, err)
	}
	log := o.Logger.With("component", "store")
	bo := badger.DefaultOptions(o.Dir).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(16 << 20).
		WithNumCompactors(2).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithSyncWrites(o.Durability == DurabilitySync).
		WithLogger(badgerLogger{log})
	// Values up to the threshold live in the LSM tree (and its WAL), larger
	// ones in the value log; Badger wants it within a transaction's limit.
	bo.ValueThreshold = min(bo.ValueThreshold, 15*bo.MemTableSize/100/2)
	// Managed mode: the committer picks commit timestamps itself, so it can
	// submit a transaction while the previous one is being written (in
	// normal mode NewTransaction waits for every earlier commit to finish).
	db, err := badger.OpenManaged(bo)
	// Badger wraps errors without keeping the chain: match the text too.
	if err != nil && (errors.Is(err, z.NewFile) || strings.Contains(err.Error(), z.NewFile.Error())) {
		// A kill between creating a value-log file and writing its header
		// leaves it empty, and Badger's open then fails on it with
		// z.NewFile although that open has just initialised the file; a
		// second open succeeds (TestBadgerEmptyValueLogAfterKill). Found
		// by TestDurable_CrashDuringRecovery.
		log.Warn("store: an empty value-log file (the broker was killed while creating it) was initialised; opening again", "dir", o.Dir)
		db, err = badger.OpenManaged(bo)
	}
	if err != nil {
		return nil, openError(o.Dir, err)
	}
	maxBatchSize := 15 * bo.MemTableSize / 100 // Badger's txn limits (db.go checkAndSetOptions)
	b := &Badger{
		commitFront: newCommitFront(log, o.Durability, o.MaxBatch, o.MaxDelay, o.QueueSize,
			int(min(o.ValueLogFileSize, math.MaxInt32)), "move the data directory to a faster disk"),
		db:     db,
		cmp:    newCompactions(db),
		opt:    o,
		gcKick: make(chan struct{}, 1),
		gcStop: make(chan struct{}),
		gcDone: make(chan struct{}),
	}
	b.testHookTake = o.testHookTake
	b.m = newStoreMetrics(o.Metrics, &b.commitFront)
	ts := db.MaxVersion()
	db.SetDiscardTs(ts)
	b.c = &committer{
		b:        b,
		ts:       ts,
		doneCh:   make(chan txnDone, maxInflight+1),
		maxTxnSz: maxBatchSize * 9 / 10,
		maxTxnN:  maxBatchSize / int64(skl.MaxNodeSize) * 9 / 10,
		vthresh:  bo.ValueThreshold,
	}
	b.c.tb.reset()
	go b.c.run()
	go b.gcLoop()
	return b, nil
}

// openError turns Badger's open failures into errors that say what to do.
// Badger formats most of its errors with %+v, so they are told apart by text.
func openError(dir string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(msg, "Cannot acquire directory lock"):
		return fmt.Errorf("store: cannot open %s: its lock is held by another process (or another store in this process) using the directory; stop it or choose another data directory: %w", dir, err)
	case errors.Is(err, fs.ErrPermission) || strings.Contains(msg, "permission denied"):
		return fmt.Errorf("store: cannot open %s: permission denied; make the directory readable and writable by this user or choose another data directory: %w", dir, err)
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "no space left"):
		return fmt.Errorf("store: cannot open %s: no space left on the device: %w", dir, err)
	case looksCorrupt(msg):
		return fmt.Errorf("store: cannot open %s: the directory does not hold a readable store (damaged, or written by an incompatible version); move it aside to start empty, or restore a backup: %w", dir, err)
	}
	return fmt.Errorf("store: cannot open %s: %w", dir, err)
}

func looksCorrupt(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"manifest", "magic", "checksum", "corrupt", "truncat", "replay", "keyregistry", "unexpected eof"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// DoneInline is false: done runs on the committer goroutine.
func (b *Badger) DoneInline() bool { return false }

// Load streams the stored state; see Store.Load. It first waits for every
// earlier Apply to be written, and must not be called from a done callback.
func (b *Badger) Load(v Visitor) error {
	if err := b.flushWait(&unit{}); err != nil {
		return err
	}
	l := newLoader(v, time.Now().UnixNano())
	txn := b.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	for _, p := range loadOrder {
		prefix := []byte{p}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			key := item.KeyCopy(nil)
			val, err := item.ValueCopy(nil)
			if err == nil {
				err = l.visit(key, val)
			}
			if err != nil {
				it.Close()
				return err
			}
		}
		it.Close()
	}
	return b.deleteExpired(l)
}

// Healthy returns ErrClosed after Close, the error of the last batch when
// it failed, and nil otherwise. Safe for concurrent use.
func (b *Badger) Healthy() error {
	if b.db.IsClosed() {
		return ErrClosed
	}
	return b.health(nil)
}

// Close stops taking ops, writes everything queued (calling its done
// callbacks), stops the value-log GC and closes Badger. Later calls return
// ErrClosed.
func (b *Badger) Close() error {
	err := ErrClosed
	b.closeOnce.Do(func() {
		b.drain()
		close(b.gcStop)
		<-b.gcDone
		err = b.db.Close()
		if err != nil {
			err = fmt.Errorf("store: close %s: %w", b.opt.Dir, err)
		}
	})
	return err
}

// gcLoop runs the value-log GC (every GCInterval, and when the committer
// kicks it after GCAfterBytes) and stops Badger's compactors once the
// store is idle (compactions.pause).
func (b *Badger) gcLoop() {
	defer close(b.gcDone)
	var tick <-chan time.Time
	if b.opt.GCInterval > 0 {
		t := time.NewTicker(b.opt.GCInterval)
		defer t.Stop()
		tick = t.C
	}
	idle := time.NewTimer(compactionIdle)
	defer idle.Stop()
	var idleC <-chan time.Time = idle.C // nil while the compactors are stopped
	for {
		select {
		case <-b.gcStop:
			return
		case <-tick:
			b.runGC()
		case <-b.gcKick:
			b.runGC()
		case <-b.cmp.kick:
			if idleC == nil {
				idle.Reset(compactionIdle)
				idleC = idle.C
			}
		case now := <-idleC:
			if d := b.cmp.pause(now); d > 0 {
				idle.Reset(d)
			} else {
				idleC = nil
			}
		}
	}
}

// runGC rewrites value-log files until Badger finds none worth it.
func (b *Badger) runGC() {
	for range gcMaxRewrites {
		select {
		case <-b.gcStop:
			return
		default:
		}
		err := b.db.RunValueLogGC(gcDiscardRatio)
		if err == nil {
			b.cmp.resume() // the GC wrote: its tables need compacting
			b.m.gcRuns.Inc()
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			b.log.Warn("store: value-log GC failed", "err", err)
		}
		return
	}
}

// badgerLogger adapts slog to badger.Logger, keeping warnings and errors.
type badgerLogger struct{ l *slog.Logger }

func (a badgerLogger) Errorf(f string, args ...any) {
	a.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (a badgerLogger) Warningf(f string, args ...any) {
	a.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
