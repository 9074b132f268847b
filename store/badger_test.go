package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	for _, d := range []Durability{DurabilityCommit, DurabilitySync, DurabilityNone} {
		t.Run(d.String(), func(t *testing.T) {
			dir := t.TempDir()
			b := openTestBadger(t, BadgerOptions{Dir: dir, Durability: d})
			var wg sync.WaitGroup
			for i := range 50 {
				wg.Add(1)
				if err := b.Apply(fixture(fmt.Sprintf("c%02d", i)), func(err error) {
					if err != nil {
						t.Errorf("done: %v", err)
					}
					wg.Done()
				}); err != nil {
					t.Fatal(err)
				}
			}
			r := msg("r", "big")
			r.Payload = bytes.Repeat([]byte("x"), 2<<20) // over the value threshold: goes to the value log
			if err := b.Apply([]Op{{Retained: &r}}, nil); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = openTestBadger(t, BadgerOptions{Dir: dir, Durability: d})
			got := load(t, b)
			if len(got.Sessions) != 50 || len(got.Subs) != 100 || len(got.Out) != 150 || len(got.In) != 50 || len(got.Wills) != 50 {
				t.Fatalf("after restart: %d sessions, %d subs, %d outbound, %d inbound, %d wills",
					len(got.Sessions), len(got.Subs), len(got.Out), len(got.In), len(got.Wills))
			}
			if len(got.Retained) != 1 || !bytes.Equal(got.Retained[0].Payload, r.Payload) {
				t.Fatalf("big retained message lost")
			}
			f := fixture("c07")
			equal(t, "c07 outbound", got.Out[7*3:7*3+3], []Outbound{*f[4].Outbound, *f[3].Outbound, *f[5].Outbound})
			st := b.Stats()
			if d == DurabilitySync && st.Syncs != 0 {
				t.Fatalf("fresh store counts %d syncs", st.Syncs)
			}
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

// 64 goroutines apply without waiting; every done runs once, in order per
// goroutine, and the committer groups them.
func TestBadgerGroupCommit(t *testing.T) {
	for _, d := range []Durability{DurabilityCommit, DurabilitySync, DurabilityNone} {
		t.Run(d.String(), func(t *testing.T) {
			b := openTestBadger(t, BadgerOptions{Durability: d})
			const producers, each = 64, 100
			var wg sync.WaitGroup
			var calls atomic.Int64
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var next atomic.Int64 // the seq whose done must come next
					var pending sync.WaitGroup
					cid := fmt.Sprintf("p%d", p)
					for i := range each {
						pending.Add(1)
						op := Op{Outbound: &Outbound{ClientID: cid, Seq: uint64(i), Msg: msg("t", "payload")}}
						err := b.Apply([]Op{op}, func(err error) {
							defer pending.Done()
							calls.Add(1)
							if err != nil {
								t.Errorf("done: %v", err)
							}
							if got := next.Add(1) - 1; got != int64(i) {
								t.Errorf("%s: done for seq %d called as the %dth", cid, i, got)
							}
						})
						if err != nil {
							t.Errorf("Apply: %v", err)
							pending.Done()
						}
					}
					pending.Wait()
				}()
			}
			wg.Wait()
			if n := calls.Load(); n != producers*each {
				t.Fatalf("%d done calls, want %d", n, producers*each)
			}
			// None acks before the write: wait for the committer to finish.
			if err := b.flushWait(&unit{}); err != nil {
				t.Fatal(err)
			}
			st := b.Stats()
			t.Logf("%s: %d ops in %d batches (max %d), %d txns, %d syncs", d, st.Ops, st.Batches, st.MaxBatchOps, st.Txns, st.Syncs)
			if st.Ops != producers*each {
				t.Fatalf("Stats.Ops %d, want %d", st.Ops, producers*each)
			}
			if st.Batches >= st.Ops {
				t.Fatalf("no grouping: %d batches for %d ops", st.Batches, st.Ops)
			}
			if got := len(load(t, b).Out); got != producers*each {
				t.Fatalf("%d outbound stored, want %d", got, producers*each)
			}
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

func TestCorruptValueFailsLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		apply(t, s, fixture("c")...)
		key, val := []byte("sbad\x00"), []byte{formatV1, 5, 0, 0}
		switch s := s.(type) {
		case *Memory:
			s.putRaw(key, val)
		case interface{ flushWait(*unit) error }: // Badger, Redis
			if err := s.flushWait(&unit{ents: []entry{{key: key, val: val}}}); err != nil {
				t.Fatal(err)
			}
		}
		err := s.Load(Visitor{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"sbad\x00"`) {
			t.Fatalf("Load with a corrupt value = %v, want ErrCorrupt naming the key", err)
		}
	})
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
	apply(t, b, fixture("c")...)
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := buf.String()
	for _, name := range []string{
		"mcutie_store_commit_batch_ops_bucket", "mcutie_store_commit_seconds_bucket", "mcutie_store_queue_len 0",
		"mcutie_store_ops_rejected_total 0", "mcutie_store_errors_total 0", "mcutie_store_syncs_total 1",
	} {
		if !strings.Contains(out, name) {
			t.Fatalf("metrics lack %q:\n%s", name, out)
		}
	}
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
	b := openTestBadger(t, BadgerOptions{Dir: dir, MaxDelay: time.Hour})
	var calls atomic.Int64
	for i := range 1000 {
		if err := b.Apply([]Op{{Sub: &Subscription{ClientID: "c", Filter: fmt.Sprint(i)}}}, func(error) { calls.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1000 {
		t.Fatalf("%d done calls after Close, want 1000", calls.Load())
	}
	b = openTestBadger(t, BadgerOptions{Dir: dir})
	if got := len(load(t, b).Subs); got != 1000 {
		t.Fatalf("%d subscriptions after reopen, want 1000", got)
	}
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
