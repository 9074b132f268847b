package router

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

func TestSharedSubscribeReplaceUnsubscribe(t *testing.T) {
	s := NewShared[string]()
	if !s.Empty() || s.Len() != 0 {
		t.Fatalf("new Shared not empty")
	}
	g, f := []byte("g1"), []byte("a/+")
	if s.Subscribe(g, f, "k1", SubOptions{QoS: 1}) {
		t.Fatalf("first Subscribe reported replaced")
	}
	copy(g, "zz")
	copy(f, "x/y")
	if !s.Subscribe([]byte("g1"), []byte("a/+"), "k1", SubOptions{QoS: 2}) {
		t.Fatalf("identical Subscribe not reported replaced")
	}
	if s.Empty() || s.Len() != 1 {
		t.Fatalf("Len = %d; want 1", s.Len())
	}
	got := s.Match([]byte("a/b"), nil, nil)
	if len(got) != 1 || got[0].Key != "k1" || got[0].Opts.QoS != 2 {
		t.Fatalf("Match = %v", got)
	}
	if s.Unsubscribe([]byte("g2"), []byte("a/+"), "k1") || s.Unsubscribe([]byte("g1"), []byte("a/b"), "k1") ||
		s.Unsubscribe([]byte("g1"), []byte("a/+"), "k2") || s.Unsubscribe([]byte("g1"), []byte("a"), "k1") {
		t.Fatalf("Unsubscribe removed a subscription that does not exist")
	}
	if !s.Unsubscribe([]byte("g1"), []byte("a/+"), "k1") {
		t.Fatalf("Unsubscribe did not find the subscription")
	}
	if !s.Empty() || s.Len() != 0 || s.root.Load() != nil {
		t.Fatalf("not empty after Unsubscribe")
	}
}

func TestSharedOnePerGroupAndFilter(t *testing.T) {
	s := NewShared[string]()
	sub := func(g, f, k string) { s.Subscribe([]byte(g), []byte(f), k, SubOptions{}) }
	sub("g1", "a/b", "x")
	sub("g1", "a/b", "y")
	sub("g1", "a/+", "x") // same group, other filter: a separate shared subscription
	sub("g2", "a/b", "z")
	sub("g2", "#", "z")
	sub("g3", "c", "w")
	got := s.Match([]byte("a/b"), nil, nil)
	if len(got) != 4 {
		t.Fatalf("Match = %v; want one member each for g1 a/b, g1 a/+, g2 a/b, g2 #", got)
	}
	if s.Len() != 6 {
		t.Fatalf("Len = %d; want 6", s.Len())
	}
}

func TestSharedRoundRobin(t *testing.T) {
	s := NewShared[int]()
	for k := range 3 {
		s.Subscribe([]byte("g"), []byte("jobs/+"), k, SubOptions{})
	}
	count := make(map[int]int)
	var dst []Entry[int]
	for range 3000 {
		dst = s.Match([]byte("jobs/1"), dst[:0], nil)
		if len(dst) != 1 {
			t.Fatalf("Match = %v", dst)
		}
		count[dst[0].Key]++
	}
	for k := range 3 {
		if count[k] != 1000 {
			t.Fatalf("distribution %v; want 1000 each", count)
		}
	}
	// the counter survives a change of membership
	s.Subscribe([]byte("g"), []byte("jobs/+"), 3, SubOptions{})
	clear(count)
	for range 4000 {
		dst = s.Match([]byte("jobs/1"), dst[:0], nil)
		count[dst[0].Key]++
	}
	for k := range 4 {
		if count[k] != 1000 {
			t.Fatalf("distribution over 4 %v; want 1000 each", count)
		}
	}
}

func TestSharedAccept(t *testing.T) {
	s := NewShared[int]()
	for k := range 3 {
		s.Subscribe([]byte("g"), []byte("t"), k, SubOptions{})
	}
	// member 1 refuses: 0 and 2 share the load evenly
	count := make(map[int]int)
	not1 := func(k int) bool { return k != 1 }
	for range 3000 {
		got := s.Match([]byte("t"), nil, not1)
		count[got[0].Key]++
	}
	if count[1] != 0 || count[0] < 1400 || count[2] < 1400 {
		t.Fatalf("distribution with 1 refusing: %v", count)
	}
	// everyone refuses: still one member, in turn
	clear(count)
	none := func(int) bool { return false }
	for range 300 {
		got := s.Match([]byte("t"), nil, none)
		if len(got) != 1 {
			t.Fatalf("Match with all refusing = %v; want one member anyway", got)
		}
		count[got[0].Key]++
	}
	if count[0] != 100 || count[1] != 100 || count[2] != 100 {
		t.Fatalf("distribution with all refusing: %v", count)
	}
	// only 2 accepts
	only2 := func(k int) bool { return k == 2 }
	for range 10 {
		if got := s.Match([]byte("t"), nil, only2); got[0].Key != 2 {
			t.Fatalf("Match with only 2 accepting = %v", got)
		}
	}
}

func TestSharedMatchNoAlloc(t *testing.T) {
	s := NewShared[*int]()
	keys := make([]int, 100)
	for i := range keys {
		k := &keys[i]
		s.Subscribe(fmt.Appendf(nil, "g%d", i%10), fmt.Appendf(nil, "dev/%d/temp", i%30), k, SubOptions{})
		s.Subscribe([]byte("all"), []byte("dev/+/temp"), k, SubOptions{})
		s.Subscribe([]byte("all"), []byte("#"), k, SubOptions{})
	}
	dst := make([]Entry[*int], 0, 64)
	accept := func(k *int) bool { return *k%2 == 0 }
	for _, topic := range [][]byte{[]byte("dev/7/temp"), []byte("dev/99/temp"), []byte("$SYS/x")} {
		for _, acc := range []func(*int) bool{nil, accept} {
			allocs := testing.AllocsPerRun(100, func() {
				dst = s.Match(topic, dst[:0], acc)
			})
			if allocs != 0 {
				t.Fatalf("Shared.Match(%q) allocates %.1f times per call; want 0", topic, allocs)
			}
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = s.Empty() }); allocs != 0 {
		t.Fatalf("Empty allocates")
	}
}

// TestSharedConcurrent runs writers and lock-free readers together; run it
// with -race. Each writer owns its keys, so it can check its own view.
func TestSharedConcurrent(t *testing.T) {
	s := NewShared[int]()
	filters := []string{"a/b", "a/+", "a/#", "#", "+/b", "c"}
	const writers, readers, rounds = 4, 4, 300
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			mine := make(map[[2]string]bool)
			for i := range rounds {
				g := fmt.Sprintf("g%d", rnd.IntN(3))
				f := filters[rnd.IntN(len(filters))]
				key := [2]string{g, f}
				if mine[key] {
					if !s.Unsubscribe([]byte(g), []byte(f), w) {
						t.Errorf("writer %d: Unsubscribe(%s, %s) not found", w, g, f)
						return
					}
					delete(mine, key)
				} else {
					if s.Subscribe([]byte(g), []byte(f), w, SubOptions{ID: uint32(i + 1)}) {
						t.Errorf("writer %d: Subscribe(%s, %s) reported replaced", w, g, f)
						return
					}
					mine[key] = true
				}
			}
			for key := range mine {
				s.Unsubscribe([]byte(key[0]), []byte(key[1]), w)
			}
		}()
	}
	var rg sync.WaitGroup
	for range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			var dst []Entry[int]
			for !stop.Load() {
				for _, tp := range []string{"a/b", "a/c", "x/b", "c", "$SYS/b"} {
					dst = s.Match([]byte(tp), dst[:0], func(k int) bool { return k%2 == 0 })
					for _, e := range dst {
						if e.Key < 0 || e.Key >= writers {
							t.Errorf("Match(%q) returned unknown key %d", tp, e.Key)
						}
					}
					if len(dst) > 3*len(filters) {
						t.Errorf("Match(%q) returned %d entries", tp, len(dst))
					}
				}
				_ = s.Len()
				_ = s.Empty()
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	rg.Wait()
	if !s.Empty() || s.root.Load() != nil {
		t.Fatalf("not empty after all writers unsubscribed: Len %d", s.Len())
	}
}
