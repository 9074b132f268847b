package store

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// Tests of the stores behind the commit queue (commitFront): Badger and
// Redis run each of them, from badger_test.go and redis_test.go.

var durabilities = []Durability{DurabilityCommit, DurabilitySync, DurabilityNone}

// queuedStore is Badger or Redis.
type queuedStore interface {
	Store
	flushWait(*unit) error
}

// testRestart applies 50 clients' records and a 2 MiB retained message to
// s, closes it, and checks that the store reopen returns holds them all.
func testRestart(t *testing.T, s Store, d Durability, reopen func() Store) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		if err := s.Apply(fixture(fmt.Sprintf("c%02d", i)), func(err error) {
			if err != nil {
				t.Errorf("done: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	big := msg("r", "big")
	big.Payload = bytes.Repeat([]byte("x"), 2<<20) // Badger: over the value threshold, goes to the value log
	if err := s.Apply([]Op{{Retained: &big}}, nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	got := load(t, s)
	if len(got.Sessions) != 50 || len(got.Subs) != 100 || len(got.Out) != 150 || len(got.In) != 50 || len(got.Wills) != 50 {
		t.Fatalf("after restart: %d sessions, %d subs, %d outbound, %d inbound, %d wills",
			len(got.Sessions), len(got.Subs), len(got.Out), len(got.In), len(got.Wills))
	}
	if len(got.Retained) != 1 || !bytes.Equal(got.Retained[0].Payload, big.Payload) {
		t.Fatalf("big retained message lost")
	}
	f := fixture("c07")
	equal(t, "c07 outbound", got.Out[7*3:7*3+3], []Outbound{*f[4].Outbound, *f[3].Outbound, *f[5].Outbound})
	if st := s.Stats(); d == DurabilitySync && st.Syncs != 0 {
		t.Fatalf("fresh store counts %d syncs", st.Syncs)
	}
}

// testGroupCommit: 64 goroutines apply to s without waiting; every done
// runs once, in order per goroutine, and the committer groups them.
func testGroupCommit(t *testing.T, s queuedStore) {
	t.Helper()
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
				err := s.Apply([]Op{op}, func(err error) {
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
	if err := s.flushWait(&unit{}); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	t.Logf("%d ops in %d batches (max %d), %d txns, %d syncs", st.Ops, st.Batches, st.MaxBatchOps, st.Txns, st.Syncs)
	if st.Ops != producers*each {
		t.Fatalf("Stats.Ops %d, want %d", st.Ops, producers*each)
	}
	if st.Batches >= st.Ops {
		t.Fatalf("no grouping: %d batches for %d ops", st.Batches, st.Ops)
	}
	// Every batch wrote to the backend: the commit time adds up.
	if st.CommitSeconds <= 0 {
		t.Fatalf("Stats.CommitSeconds %v after %d batches", st.CommitSeconds, st.Batches)
	}
	if got := len(load(t, s).Out); got != producers*each {
		t.Fatalf("%d outbound stored, want %d", got, producers*each)
	}
}

// testCloseFlushes: Close of s, opened with a MaxDelay of an hour, writes
// the 1000 units queued and calls their done; reopen finds them.
func testCloseFlushes(t *testing.T, s Store, reopen func() Store) {
	t.Helper()
	var calls atomic.Int64
	for i := range 1000 {
		if err := s.Apply([]Op{{Sub: &Subscription{ClientID: "c", Filter: fmt.Sprint(i)}}}, func(error) { calls.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1000 {
		t.Fatalf("%d done calls after Close, want 1000", calls.Load())
	}
	if got := len(load(t, reopen()).Subs); got != 1000 {
		t.Fatalf("%d subscriptions after reopen, want 1000", got)
	}
}

// testMetrics applies one unit to s, whose metrics are on set, and checks
// that set exposes the common metrics and want.
func testMetrics(t *testing.T, s Store, set *metrics.Set, want ...string) {
	t.Helper()
	apply(t, s, fixture("c")...)
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := buf.String()
	for _, name := range append([]string{
		"mcutie_store_commit_batch_ops_bucket", "mcutie_store_commit_seconds_bucket", "mcutie_store_queue_length 0",
		"mcutie_store_ops_rejected_total 0", "mcutie_store_errors_total 0",
	}, want...) {
		if !strings.Contains(out, name) {
			t.Fatalf("metrics lack %q:\n%s", name, out)
		}
	}
}
