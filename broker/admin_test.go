package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// TestSmallestKeepsTheKSmallest: the bounded heap behind the management
// API's pages against sorting everything.
func TestSmallestKeepsTheKSmallest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	f := func(n, k int) {
		t.Helper()
		all := make([]int, n)
		h := smallest[int]{k: k, less: func(a, b int) bool { return a < b }}
		for i := range all {
			all[i] = r.IntN(n/2 + 1) // duplicates too
			h.offer(all[i])
		}
		slices.Sort(all)
		want := all[:min(k, n)]
		if got := h.sorted(); !slices.Equal(got, want) {
			t.Fatalf("n %d k %d: got %v, want %v", n, k, got, want)
		}
	}
	f(0, 5)
	f(3, 5)
	f(5, 5)
	f(1000, 1)
	f(1000, 7)
	f(10000, 500)
	f(100, 0)
}

func TestAddressLike(t *testing.T) {
	for m, want := range map[string]bool{"127.0.0.1:": true, "[::1]:1883": true, ":4242": true, "fe80::1%": true, "bench-1": false, "sensor": false, "": true} {
		if addressLike(m) != want {
			t.Errorf("addressLike(%q) = %v", m, !want)
		}
	}
}

// TestSessionsWalkInChunks: a listing over more sessions than one chunk
// takes several passes of the loop and still lists every session once,
// in order, by cursor.
func TestSessionsWalkInChunks(t *testing.T) {
	b := newTestBroker(t, 1)
	const n = 2*walkChunk + 100
	for i := 0; i < n; i++ {
		c, _ := connectClient(t, b, fmt.Sprintf("w-%05d", (i*7919)%n), codec.V311, false)
		subscribe(t, c, codec.V311, fmt.Sprintf("w/%d", i), 0)
	}
	chunks := 0
	walkObserved = func(time.Duration) { chunks++ }
	defer func() { walkObserved = nil }()
	var ids []string
	after := ""
	for {
		pg, err := b.Sessions(context.Background(), Query{After: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range pg.Items {
			ids = append(ids, s.ClientID)
		}
		if pg.Next == "" {
			break
		}
		after = pg.Next
	}
	if len(ids) != n || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != n {
		t.Fatalf("%d ids (want %d), sorted %v", len(ids), n, slices.IsSorted(ids))
	}
	if pages := (n + 499) / 500; chunks < 3*pages {
		t.Fatalf("%d chunks for %d pages over %d sessions: the walk did not yield", chunks, pages, n)
	}
	sp, err := b.Subscriptions(context.Background(), Query{Limit: 10, Offset: n - 10})
	if err != nil || len(sp.Items) != 10 || sp.Total != n {
		t.Fatalf("subscriptions: %+v %v", sp, err)
	}
}
