package router

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The tests in this file apply random operations to an index and to a plain
// map, and check after each step that both agree, then that removing
// everything leaves no node behind.

var modelLevels = []string{"a", "b", "", "$s", "ab"}

func randName(rnd *rand.Rand, wild bool) string {
	n := 1 + rnd.IntN(3)
	ls := make([]string, n)
	for i := range ls {
		ls[i] = modelLevels[rnd.IntN(len(modelLevels))]
		if wild && rnd.IntN(4) == 0 {
			ls[i] = "+"
		}
		if wild && i == n-1 && rnd.IntN(5) == 0 {
			ls[i] = "#"
		}
	}
	return strings.Join(ls, "/")
}

func TestShardModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	type sub struct {
		filter string
		key    int
	}
	s := NewShard[int]()
	model := make(map[sub]SubOptions)
	for step := range 3000 {
		sb := sub{randName(rnd, true), rnd.IntN(5)}
		if rnd.IntN(3) == 0 {
			_, want := model[sb]
			if got := s.Unsubscribe([]byte(sb.filter), sb.key); got != want {
				t.Fatalf("step %d: Unsubscribe(%q, %d) = %v; want %v", step, sb.filter, sb.key, got, want)
			}
			delete(model, sb)
		} else {
			o := SubOptions{ID: uint32(step + 1)}
			_, want := model[sb]
			if got := s.Subscribe([]byte(sb.filter), sb.key, o); got != want {
				t.Fatalf("step %d: Subscribe(%q, %d) = %v; want %v", step, sb.filter, sb.key, got, want)
			}
			model[sb] = o
		}
		if s.Len() != len(model) {
			t.Fatalf("step %d: Len = %d; want %d", step, s.Len(), len(model))
		}
		topic := randName(rnd, false)
		var want, got []uint32
		for sb, o := range model {
			if refMatch(sb.filter, topic) {
				want = append(want, o.ID)
			}
		}
		for _, e := range s.Match([]byte(topic), nil) {
			got = append(got, e.Opts.ID)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: Match(%q) ids %v; want %v", step, topic, got, want)
		}
	}
	for sb := range model {
		if !s.Unsubscribe([]byte(sb.filter), sb.key) {
			t.Fatalf("final Unsubscribe(%q, %d) not found", sb.filter, sb.key)
		}
	}
	if s.Len() != 0 || !s.root.empty() {
		t.Fatalf("nodes left after removing everything")
	}
}

func TestSharedModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	type sub struct {
		group, filter string
		key           int
	}
	s := NewShared[int]()
	model := make(map[sub]bool)
	for step := range 2000 {
		sb := sub{[]string{"g1", "g2"}[rnd.IntN(2)], randName(rnd, true), rnd.IntN(4)}
		if rnd.IntN(3) == 0 {
			if got := s.Unsubscribe([]byte(sb.group), []byte(sb.filter), sb.key); got != model[sb] {
				t.Fatalf("step %d: Unsubscribe(%v) = %v; want %v", step, sb, got, model[sb])
			}
			delete(model, sb)
		} else {
			if got := s.Subscribe([]byte(sb.group), []byte(sb.filter), sb.key, SubOptions{}); got != model[sb] {
				t.Fatalf("step %d: Subscribe(%v) = %v; want %v", step, sb, got, model[sb])
			}
			model[sb] = true
		}
		if s.Len() != len(model) || s.Empty() != (len(model) == 0) {
			t.Fatalf("step %d: Len = %d, Empty = %v; model has %d", step, s.Len(), s.Empty(), len(model))
		}
		// one entry per matching (group, filter), and the key is a member
		topic := randName(rnd, false)
		members := make(map[[2]string][]int)
		for sb := range model {
			if refMatch(sb.filter, topic) {
				gf := [2]string{sb.group, sb.filter}
				members[gf] = append(members[gf], sb.key)
			}
		}
		got := s.Match([]byte(topic), nil, nil)
		if len(got) != len(members) {
			t.Fatalf("step %d: Match(%q) = %d entries; want %d", step, topic, len(got), len(members))
		}
		for _, e := range got {
			found := false
			for _, ks := range members {
				found = found || slices.Contains(ks, e.Key)
			}
			if !found {
				t.Fatalf("step %d: Match(%q) returned non-member %d", step, topic, e.Key)
			}
		}
	}
	for sb := range model {
		s.Unsubscribe([]byte(sb.group), []byte(sb.filter), sb.key)
	}
	if !s.Empty() || s.root.Load() != nil {
		t.Fatalf("nodes left after removing everything")
	}
}

func TestRetainedModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	r := NewRetained[int]()
	model := make(map[string]int)
	for step := range 3000 {
		topic := randName(rnd, false)
		if rnd.IntN(3) == 0 {
			wantOld, want := model[topic]
			if old, got := r.Delete([]byte(topic)); got != want || old != wantOld {
				t.Fatalf("step %d: Delete(%q) = %d, %v; want %d, %v", step, topic, old, got, wantOld, want)
			}
			delete(model, topic)
		} else {
			wantOld, want := model[topic]
			if old, got := r.Set([]byte(topic), step); got != want || old != wantOld {
				t.Fatalf("step %d: Set(%q) = %d, %v; want %d, %v", step, topic, old, got, wantOld, want)
			}
			model[topic] = step
		}
		if r.Len() != len(model) {
			t.Fatalf("step %d: Len = %d; want %d", step, r.Len(), len(model))
		}
		probe := randName(rnd, false)
		wantV, wantOK := model[probe]
		if v, ok := r.Get([]byte(probe)); ok != wantOK || v != wantV {
			t.Fatalf("step %d: Get(%q) = %d, %v; want %d, %v", step, probe, v, ok, wantV, wantOK)
		}
		filter := randName(rnd, true)
		var want []int
		for tp, v := range model {
			if refMatch(filter, tp) {
				want = append(want, v)
			}
		}
		got := r.Match([]byte(filter), nil)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: Match(%q) = %v; want %v", step, filter, got, want)
		}
	}
	seen := make(map[string]int)
	r.Range(func(topic []byte, v int) bool { seen[string(topic)] = v; return true })
	if len(seen) != len(model) {
		t.Fatalf("Range saw %d; want %d", len(seen), len(model))
	}
	for tp, v := range model {
		if seen[tp] != v {
			t.Fatalf("Range: %q = %d; want %d", tp, seen[tp], v)
		}
		r.Delete([]byte(tp))
	}
	if r.Len() != 0 || r.root.kids != nil {
		t.Fatalf("nodes left after removing everything")
	}
}

// FuzzMatch checks the three indexes against refMatch on one valid filter
// and topic.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"sport/#", "sport"}, {"+/+", "/"}, {"#", "$SYS/a"}, {"a/+/b", "a//b"}, {"$SYS/#", "$SYS"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if !validFilter(filter) || topic == "" || strings.ContainsAny(topic, "+#\x00") {
			return
		}
		want := refMatch(filter, topic)
		sh := NewShard[int]()
		sh.Subscribe([]byte(filter), 1, SubOptions{})
		if got := len(sh.Match([]byte(topic), nil)) == 1; got != want {
			t.Fatalf("Shard: %q %q = %v; want %v", filter, topic, got, want)
		}
		sd := NewShared[int]()
		sd.Subscribe([]byte("g"), []byte(filter), 1, SubOptions{})
		if got := len(sd.Match([]byte(topic), nil, nil)) == 1; got != want {
			t.Fatalf("Shared: %q %q = %v; want %v", filter, topic, got, want)
		}
		rt := NewRetained[int]()
		rt.Set([]byte(topic), 1)
		if got := len(rt.Match([]byte(filter), nil)) == 1; got != want {
			t.Fatalf("Retained: %q %q = %v; want %v", filter, topic, got, want)
		}
	})
}

// validFilter is the check codec does before the router sees a filter.
func validFilter(f string) bool {
	if f == "" || strings.ContainsRune(f, 0) {
		return false
	}
	ls := strings.Split(f, "/")
	for i, l := range ls {
		if strings.ContainsAny(l, "+#") && l != "+" && l != "#" {
			return false
		}
		if l == "#" && i != len(ls)-1 {
			return false
		}
	}
	return true
}
