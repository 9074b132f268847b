package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	badger "github.com/dgraph-io/badger/v4"
)

var badgerKeysOnly = badger.IteratorOptions{}

func TestBadgerRestart(t *testing.T) {
	for _, d := range durabilities {
		t.Run(d.String(), func(t *testing.T) {
			o := BadgerOptions{Dir: t.TempDir(), Durability: d}
			testRestart(t, openTestBadger(t, o), d, func() Store { return openTestBadger(t, o) })
		})
	}
}

func TestBadgerSyncCounts(t *testing.T) {
	b := openTestBadger(t, BadgerOptions{Durability: DurabilitySync})
	for i := range 5 {
		apply(t, b, fixture(fmt.Sprint(i))...)
	}
	st := b.Stats()
	if st.Syncs != 5 || st.Batches != 5 || st.Ops != 40 || st.Txns != 5 {
		t.Fatalf("stats %+v, want 5 syncs, batches and txns, 40 ops", st)
	}
}

func TestBadgerGroupCommit(t *testing.T) {
	for _, d := range durabilities {
		t.Run(d.String(), func(t *testing.T) {
			testGroupCommit(t, openTestBadger(t, BadgerOptions{Durability: d}))
		})
	}
}

func TestBadgerQueueFull(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var blocked atomic.Bool
	var once sync.Once
	set := metrics.NewSet()
	// The hook blocks the committer the next time it looks at the queue.
	b := openTestBadger(t, BadgerOptions{QueueSize: 8, Metrics: set, testHookTake: func() {
		if blocked.Load() {
			once.Do(func() { close(entered) })
			<-release
		}
	}})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { blocked.Store(false); close(release) }) }
	t.Cleanup(unblock) // runs before openTestBadger's Close
	blocked.Store(true)
	var wg sync.WaitGroup
	wg.Add(1)
	if err := b.Apply(fixture("first")[:1], func(error) { wg.Done() }); err != nil {
		t.Fatal(err)
	}
	<-entered // the committer is stuck before taking anything: "first" is queued
	var accepted int
	var err error
	for i := range 20 {
		wg.Add(1)
		err = b.Apply([]Op{{Sub: &Subscription{ClientID: "c", Filter: fmt.Sprint(i)}}}, func(error) { wg.Done() })
		if err != nil {
			wg.Done()
			break
		}
		accepted++
	}
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Apply on a full queue = %v, want ErrQueueFull", err)
	}
	if accepted > 8 {
		t.Fatalf("accepted %d ops into a queue of 8", accepted)
	}
	st := b.Stats()
	if st.Rejected != 1 || st.QueueCap != 8 || st.QueueLen != accepted+1 {
		t.Fatalf("stats %+v after one rejection with %d queued", st, accepted+1)
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), "mcutie_store_ops_rejected_total 1") {
		t.Fatalf("metrics do not count the rejection:\n%s", buf.String())
	}
	unblock()
	wg.Wait()
	if got := len(load(t, b).Subs); got != accepted {
		t.Fatalf("%d subscriptions stored, want %d", got, accepted)
	}
}

func TestBadgerLockedDir(t *testing.T) {
	dir := t.TempDir()
	openTestBadger(t, BadgerOptions{Dir: dir})
	_, err := OpenBadger(BadgerOptions{Dir: dir, Logger: quietLogger()})
	if err == nil {
		t.Fatal("second OpenBadger on the same dir succeeded")
	}
	if !strings.Contains(err.Error(), "lock") || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("error does not say the dir is locked by another process: %v", err)
	}
}

func TestBadgerCorruptDir(t *testing.T) {
	dir := t.TempDir()
	b := openTestBadger(t, BadgerOptions{Dir: dir})
	apply(t, b, fixture("c")...)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("this is not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenBadger(BadgerOptions{Dir: dir, Logger: quietLogger()})
	if err == nil {
		t.Fatal("OpenBadger on a corrupt dir succeeded")
	}
	if !strings.Contains(err.Error(), "does not hold a readable store") {
		t.Fatalf("error does not say the dir is damaged: %v", err)
	}
	t.Log(err)
}

func TestBadgerUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	_, err := OpenBadger(BadgerOptions{Dir: filepath.Join(dir, "data"), Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("OpenBadger on an unwritable dir = %v, want permission denied", err)
	}
}

// A unit larger than Badger's transaction limit is split, not refused.
func TestBadgerLargeUnitSplits(t *testing.T) {
	b := openTestBadger(t, BadgerOptions{MemTableSize: 1 << 20, MaxBatch: 100000})
	var ops []Op
	for i := range 400 {
		m := msg("t", strings.Repeat("x", 2000))
		ops = append(ops, Op{Outbound: &Outbound{ClientID: "c", Seq: uint64(i), Msg: m}})
	}
	apply(t, b, ops...)
	// Many small units in one batch are split at unit boundaries.
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Add(1)
		m := msg("t", strings.Repeat("y", 2000))
		if err := b.Apply([]Op{{Outbound: &Outbound{ClientID: "d", Seq: uint64(i), Msg: m}}}, func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if got := len(load(t, b).Out); got != 800 {
		t.Fatalf("%d outbound stored, want 800", got)
	}
	if st := b.Stats(); st.Txns <= st.Batches {
		t.Fatalf("no transaction was split: %+v", st)
	}
	// A session delete that cascades over more than one transaction.
	apply(t, b, Op{Delete: true, Session: &Session{ClientID: "c"}}, Op{Delete: true, Session: &Session{ClientID: "d"}})
	if got := len(load(t, b).Out); got != 0 {
		t.Fatalf("%d outbound survive the session deletes", got)
	}
}

func TestBadgerValueTooLarge(t *testing.T) {
	b := openTestBadger(t, BadgerOptions{ValueLogFileSize: 1 << 20})
	m := msg("t", strings.Repeat("x", 2<<20))
	if err := b.Apply([]Op{{Retained: &m}}, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Apply of a 2 MiB value with 1 MiB vlog files = %v, want ErrTooLarge", err)
	}
}

func TestBadgerMetrics(t *testing.T) {
	set := metrics.NewSet()
	b := openTestBadger(t, BadgerOptions{Durability: DurabilitySync, Metrics: set})
	testMetrics(t, b, set, "mcutie_store_syncs_total 1")
}

// A failed commit reaches done and the error counter.
func TestBadgerCommitError(t *testing.T) {
	b := openTestBadger(t, BadgerOptions{})
	// A key Badger refuses (its reserved prefix) makes the transaction fail.
	err := b.flushWait(&unit{ents: []entry{{key: []byte("!badger!x"), val: []byte{1}}}})
	if err == nil {
		t.Fatal("commit of a reserved key succeeded")
	}
	if st := b.Stats(); st.Errors != 1 {
		t.Fatalf("Stats.Errors = %d, want 1", st.Errors)
	}
	if err := b.Healthy(); err == nil || !strings.Contains(err.Error(), "last commit failed") {
		t.Fatalf("Healthy after a failed commit = %v, want the commit's error", err)
	}
	apply(t, b, fixture("c")...) // the store goes on
	if err := b.Healthy(); err != nil {
		t.Fatalf("Healthy after a good commit = %v, want nil", err)
	}
}

func TestBadgerCloseFlushes(t *testing.T) {
	dir := t.TempDir()
	testCloseFlushes(t, openTestBadger(t, BadgerOptions{Dir: dir, MaxDelay: time.Hour}),
		func() Store { return openTestBadger(t, BadgerOptions{Dir: dir}) })
}

// A value-log file left empty by a kill right after its creation (before
// Badger wrote its header) does not make the store unopenable, and what
// was stored before is intact.
func TestBadgerEmptyValueLogAfterKill(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, b, Op{Retained: &Message{Topic: []byte("kept"), Payload: []byte("v")}})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000009.vlog"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBadger(BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatalf("open after an empty value-log file appeared: %v", err)
	}
	defer b.Close()
	var got []string
	if err := b.Load(Visitor{Retained: func(m Message) { got = append(got, string(m.Topic)+"="+string(m.Payload)) }}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "kept=v" {
		t.Fatalf("retained after reopen: %q", got)
	}
}

// Badger's compactors are stopped once the store has been idle and started
// again by the next write (compact.go): the Badger methods the store binds
// by name exist in the Badger version in go.mod and do what their names
// say, and the store works and closes either way.
func TestBadgerCompactionsPause(t *testing.T) {
	b := openTestBadger(t, BadgerOptions{})
	apply(t, b, fixture("a")...)
	// Counted relative to now: another store's compactors (a test's
	// Badger still closing) must not make this fail.
	running := compactorGoroutines()
	if running < 2 {
		t.Fatalf("%d Badger compactors running after a write, want at least this store's 2", running)
	}
	if d := b.cmp.pause(time.Now()); d <= 0 {
		t.Fatalf("pause right after a write = %v, want a wait", d)
	}
	b.cmp.lastWrite.Store(time.Now().Add(-2 * compactionIdle).UnixNano()) // an idle spell
	if d := b.cmp.pause(time.Now()); d != 0 || !b.cmp.paused.Load() {
		t.Fatalf("pause after an idle spell = %v, paused %v; want 0, true", d, b.cmp.paused.Load())
	}
	if n := compactorGoroutines(); n != running-2 {
		t.Fatalf("%d Badger compactors running while paused, want %d", n, running-2)
	}
	apply(t, b, fixture("b")...)
	if b.cmp.paused.Load() {
		t.Fatal("a write left the compactors stopped")
	}
	if n := compactorGoroutines(); n != running {
		t.Fatalf("%d Badger compactors running after the write that resumed them, want %d", n, running)
	}
	if d := load(t, b); len(d.Sessions) != 2 {
		t.Fatalf("%d sessions stored, want 2", len(d.Sessions))
	}
	b.cmp.lastWrite.Store(time.Now().Add(-2 * compactionIdle).UnixNano())
	if d := b.cmp.pause(time.Now()); d != 0 {
		t.Fatalf("second pause = %v, want 0", d)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close with the compactors stopped: %v", err)
	}
}

// compactorGoroutines counts Badger's compactor goroutines in the process.
func compactorGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "levelsController).runCompactor(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
