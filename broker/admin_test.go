package broker

import (
	"math/rand/v2"
	"slices"
	"testing"
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
