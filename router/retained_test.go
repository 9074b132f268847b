package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRetainedSetGetDelete(t *testing.T) {
	r := NewRetained[string]()
	buf := []byte("a/b/c")
	if _, replaced := r.Set(buf, "v1"); replaced {
		t.Fatalf("first Set reported replaced")
	}
	copy(buf, "x/y/z")
	if v, ok := r.Get([]byte("a/b/c")); !ok || v != "v1" {
		t.Fatalf("Get after buffer reuse = %q, %v", v, ok)
	}
	if old, replaced := r.Set([]byte("a/b/c"), "v2"); !replaced || old != "v1" {
		t.Fatalf("replacing Set = %q, %v; want v1, true", old, replaced)
	}
	r.Set([]byte("a"), "va")
	if r.Len() != 2 {
		t.Fatalf("Len = %d; want 2", r.Len())
	}
	for _, tp := range []string{"a/b", "a/b/c/d", "b", "a/", "x/y/z"} {
		if v, ok := r.Get([]byte(tp)); ok {
			t.Fatalf("Get(%q) = %q; want nothing", tp, v)
		}
	}
	if _, existed := r.Delete([]byte("a/b")); existed {
		t.Fatalf("Delete of an inner node without value reported existed")
	}
	if old, existed := r.Delete([]byte("a/b/c")); !existed || old != "v2" {
		t.Fatalf("Delete = %q, %v", old, existed)
	}
	if _, existed := r.Delete([]byte("a/b/c")); existed {
		t.Fatalf("second Delete reported existed")
	}
	a := r.root.kids.get([]byte("a"))
	if a == nil || a.kids.len() != 0 || !a.set {
		t.Fatalf("a/b not pruned below the valued node a: %+v", a)
	}
	r.Delete([]byte("a"))
	if r.Len() != 0 || r.root.kids.len() != 0 {
		t.Fatalf("not pruned: Len %d", r.Len())
	}
}

func TestRetainedMatchAndRange(t *testing.T) {
	r := NewRetained[string]()
	topics := []string{"sport", "sport/tennis", "sport/tennis/p1", "sport/golf", "/sport", "$SYS/uptime", "a//b", "a/b"}
	for _, tp := range topics {
		r.Set([]byte(tp), tp)
	}
	f := func(filter string, want ...string) {
		t.Helper()
		got := r.Match([]byte(filter), nil)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q; want %q", filter, got, want)
		}
	}
	f("sport/#", "sport", "sport/tennis", "sport/tennis/p1", "sport/golf")
	f("sport/+", "sport/tennis", "sport/golf")
	f("+", "sport")
	f("+/sport", "/sport")
	f("#", "sport", "sport/tennis", "sport/tennis/p1", "sport/golf", "/sport", "a//b", "a/b")
	f("$SYS/#", "$SYS/uptime")
	f("a/+/b", "a//b")
	f("a/+", "a/b")
	f("nothing/#")

	seen := make(map[string]string)
	r.Range(func(topic []byte, v string) bool {
		seen[string(topic)] = v
		return true
	})
	if len(seen) != len(topics) {
		t.Fatalf("Range saw %d topics; want %d: %v", len(seen), len(topics), seen)
	}
	for tp, v := range seen {
		if tp != v {
			t.Fatalf("Range: topic %q with value %q", tp, v)
		}
	}
	n := 0
	r.Range(func([]byte, string) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Range did not stop: %d calls", n)
	}
}

// TestRetained200k checks that "a/b/+" returns exactly the topics one level
// below a/b among 200k, and Range sees them all.
func TestRetained200k(t *testing.T) {
	r := NewRetained[int]()
	var all []string
	heads := []string{"a", "b", "$a", "A", ""}
	mids := []string{"b", "c", "bb", "B", ""}
	for i := range 200_000 {
		h, m := heads[i%len(heads)], mids[(i/len(heads))%len(mids)]
		tp := h + "/" + m + "/" + strconv.Itoa(i/25)
		if i%7 == 0 {
			tp += "/x" // deeper: not matched by a/b/+
		}
		all = append(all, tp)
	}
	all = append(all, "a/b", "a/b/", "a")
	for i, tp := range all {
		r.Set([]byte(tp), i)
	}
	check := func(filter string) {
		t.Helper()
		var want []int
		for i, tp := range all {
			if refMatch(filter, tp) {
				want = append(want, i)
			}
		}
		got := r.Match([]byte(filter), nil)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q): %d results, want %d", filter, len(got), len(want))
		}
	}
	check("a/b/+")
	check("a/+/7")
	check("+/b/+/x")
	check("$a/#")
	check("/+/+")
	if got := len(r.Match([]byte("a/b/+"), nil)); got == 0 {
		t.Fatalf("a/b/+ matched nothing")
	}
	if r.Len() != len(all) {
		t.Fatalf("Len = %d; want %d", r.Len(), len(all))
	}
	n := 0
	r.Range(func(topic []byte, v int) bool {
		if string(topic) != all[v] {
			t.Fatalf("Range: topic %q for value %d (%q)", topic, v, all[v])
		}
		n++
		return true
	})
	if n != len(all) {
		t.Fatalf("Range saw %d; want %d", n, len(all))
	}
	for _, tp := range all {
		if _, ok := r.Delete([]byte(tp)); !ok {
			t.Fatalf("Delete(%q) not found", tp)
		}
	}
	if r.Len() != 0 || r.root.kids.len() != 0 {
		t.Fatalf("not pruned after deleting all")
	}
}

func TestRetainedMatchNoAlloc(t *testing.T) {
	r := NewRetained[int]()
	for i := range 1000 {
		r.Set(fmt.Appendf(nil, "dev/%d/%d/temp", i/100, i%100), i)
	}
	dst := make([]int, 0, 2048)
	for _, filter := range []string{"dev/4/+/temp", "dev/#", "#", "dev/4/7/temp"} {
		allocs := testing.AllocsPerRun(50, func() { dst = r.Match([]byte(filter), dst[:0]) })
		if allocs != 0 {
			t.Fatalf("Retained.Match(%q) allocates %.1f times per call; want 0", filter, allocs)
		}
	}
}

// TestRetainedConcurrent runs Set/Delete against Match/Get/Range; run it
// with -race.
func TestRetainedConcurrent(t *testing.T) {
	r := NewRetained[int]()
	const writers, readers, rounds = 3, 2, 500
	var wg, rg sync.WaitGroup
	var stop atomic.Bool
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range rounds {
				tp := fmt.Appendf(nil, "w%d/%d/%d", w, rnd.IntN(10), rnd.IntN(30))
				if i%3 == 2 {
					r.Delete(tp)
				} else {
					r.Set(tp, w)
				}
			}
			for i := range 10 {
				for j := range 30 {
					r.Delete(fmt.Appendf(nil, "w%d/%d/%d", w, i, j))
				}
			}
		}()
	}
	for range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			var dst []int
			for i := 0; !stop.Load(); i++ {
				dst = r.Match([]byte("+/3/+"), dst[:0])
				dst = r.Match([]byte("#"), dst)
				for _, v := range dst {
					if v < 0 || v >= writers {
						t.Errorf("unexpected value %d", v)
					}
				}
				r.Get([]byte("w1/2/3"))
				if i%8 == 0 {
					r.Range(func([]byte, int) bool { return true })
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	rg.Wait()
	if r.Len() != 0 || r.root.kids.len() != 0 {
		t.Fatalf("not empty: Len %d", r.Len())
	}
}
