package router

import (
	"fmt"
	"slices"
	"testing"
)

func TestShardSubscribeReplaceUnsubscribe(t *testing.T) {
	s := NewShard[string]()
	buf := []byte("a/+/c")
	if s.Subscribe(buf, "k1", SubOptions{QoS: 0}) {
		t.Fatalf("first Subscribe reported replaced")
	}
	copy(buf, "x/y/z") // the caller reuses its buffer: the Shard must have copied
	if got := s.Match([]byte("a/b/c"), nil); len(got) != 1 || got[0].Key != "k1" {
		t.Fatalf("Match after buffer reuse = %v", got)
	}
	if got := s.Match([]byte("x/y/z"), nil); len(got) != 0 {
		t.Fatalf("Match of the overwritten buffer = %v", got)
	}
	// identical filter: options replaced, not duplicated [MQTT-3.8.4-3]
	if !s.Subscribe([]byte("a/+/c"), "k1", SubOptions{QoS: 2, ID: 7}) {
		t.Fatalf("second Subscribe not reported as replaced")
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d; want 1", s.Len())
	}
	got := s.Match([]byte("a/b/c"), nil)
	if len(got) != 1 || got[0].Opts != (SubOptions{QoS: 2, ID: 7}) {
		t.Fatalf("Match after replace = %v", got)
	}
	// exact comparison on unsubscribe [MQTT-3.10.4-1]
	if s.Unsubscribe([]byte("a/b/c"), "k1") {
		t.Fatalf("Unsubscribe of a topic matching the filter removed it")
	}
	if s.Unsubscribe([]byte("a/+/c"), "k2") {
		t.Fatalf("Unsubscribe of another key removed it")
	}
	if s.Unsubscribe([]byte("a/+"), "k1") || s.Unsubscribe([]byte("a/+/c/d"), "k1") {
		t.Fatalf("Unsubscribe of a prefix or extension removed it")
	}
	if !s.Unsubscribe([]byte("a/+/c"), "k1") {
		t.Fatalf("Unsubscribe did not find the subscription")
	}
	if s.Unsubscribe([]byte("a/+/c"), "k1") {
		t.Fatalf("second Unsubscribe reported existed")
	}
	if s.Len() != 0 || !s.root.empty() {
		t.Fatalf("not pruned: Len %d root %+v", s.Len(), s.root)
	}
}

func TestShardPrune(t *testing.T) {
	s := NewShard[int]()
	s.Subscribe([]byte("a/b/c/d"), 1, SubOptions{})
	s.Subscribe([]byte("a/b"), 2, SubOptions{})
	s.Subscribe([]byte("a/+/#"), 3, SubOptions{})
	s.Unsubscribe([]byte("a/b/c/d"), 1)
	b := s.root.kids.get([]byte("a")).kids.get([]byte("b"))
	if b == nil || b.kids.len() != 0 || len(b.subs) != 1 {
		t.Fatalf("a/b after pruning a/b/c/d: %+v", b)
	}
	s.Unsubscribe([]byte("a/b"), 2)
	a := s.root.kids.get([]byte("a"))
	if a == nil || a.kids.len() != 0 || a.plus == nil {
		t.Fatalf("a after pruning a/b: %+v", a)
	}
	s.Unsubscribe([]byte("a/+/#"), 3)
	if !s.root.empty() {
		t.Fatalf("root not empty: %+v", s.root)
	}
}

func TestShardManyKeysOneFilter(t *testing.T) {
	s := NewShard[int]()
	const n = 1000 // past subsIndexMax: exercises the key index
	for i := range n {
		s.Subscribe([]byte("broadcast"), i, SubOptions{QoS: 1})
	}
	for i := range n {
		if !s.Subscribe([]byte("broadcast"), i, SubOptions{QoS: 2}) {
			t.Fatalf("re-subscribe of %d not a replace", i)
		}
	}
	if s.Len() != n {
		t.Fatalf("Len = %d; want %d", s.Len(), n)
	}
	got := s.Match([]byte("broadcast"), nil)
	if len(got) != n {
		t.Fatalf("Match returned %d entries; want %d", len(got), n)
	}
	for _, e := range got {
		if e.Opts.QoS != 2 {
			t.Fatalf("entry %v kept old options", e)
		}
	}
	// remove the even keys, in an order that moves entries around
	for i := n - 2; i >= 0; i -= 2 {
		if !s.Unsubscribe([]byte("broadcast"), i) {
			t.Fatalf("Unsubscribe(%d) not found", i)
		}
	}
	ks := keys(s.Match([]byte("broadcast"), nil))
	if len(ks) != n/2 {
		t.Fatalf("after removing evens: %d entries", len(ks))
	}
	for j, k := range ks {
		if k != 2*j+1 {
			t.Fatalf("after removing evens: keys %v", ks)
		}
	}
	for i := 1; i < n; i += 2 {
		if !s.Unsubscribe([]byte("broadcast"), i) {
			t.Fatalf("Unsubscribe(%d) not found", i)
		}
	}
	if s.Len() != 0 || !s.root.empty() {
		t.Fatalf("not empty after removing all")
	}
}

func TestShardOverlapOneEntryPerFilter(t *testing.T) {
	s := NewShard[string]()
	for i, f := range []string{"a/b", "a/+", "a/#", "#", "+/b", "a/b/#"} {
		s.Subscribe([]byte(f), "k", SubOptions{ID: uint32(i + 1)})
	}
	s.Subscribe([]byte("a/b"), "other", SubOptions{ID: 100})
	s.Subscribe([]byte("a/c"), "k", SubOptions{ID: 200})
	got := s.Match([]byte("a/b"), nil)
	var ids []uint32
	for _, e := range got {
		if e.Key == "k" {
			ids = append(ids, e.Opts.ID)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint32{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("ids for k = %v; want one per overlapping filter", ids)
	}
	if len(got) != 7 {
		t.Fatalf("Match = %v; want 7 entries", got)
	}
}

func TestShardManyFilters(t *testing.T) {
	s := NewShard[int]()
	const n = 5000
	for i := range n {
		s.Subscribe(fmt.Appendf(nil, "dev/%d/temp", i), i, SubOptions{})
	}
	for i := range n {
		got := s.Match(fmt.Appendf(nil, "dev/%d/temp", i), nil)
		if len(got) != 1 || got[0].Key != i {
			t.Fatalf("Match(dev/%d/temp) = %v", i, got)
		}
	}
	for i := range n {
		if !s.Unsubscribe(fmt.Appendf(nil, "dev/%d/temp", i), i) {
			t.Fatalf("Unsubscribe %d", i)
		}
	}
	if !s.root.empty() {
		t.Fatalf("not pruned")
	}
}

func TestShardMatchNoAlloc(t *testing.T) {
	s := NewShard[*int]()
	keys := make([]int, 200)
	for i := range keys {
		k := &keys[i]
		s.Subscribe(fmt.Appendf(nil, "dev/%d/temp", i), k, SubOptions{})
		s.Subscribe(fmt.Appendf(nil, "dev/+/%d", i), k, SubOptions{})
		s.Subscribe([]byte("dev/#"), k, SubOptions{})
		s.Subscribe([]byte("#"), k, SubOptions{})
	}
	long := []byte("dev/" + string(make([]byte, 100)) + "/temp") // a level longer than the runtime's 32-byte conversion buffer
	s.Subscribe(long, &keys[0], SubOptions{})
	dst := make([]Entry[*int], 0, 1024)
	for _, topic := range [][]byte{[]byte("dev/42/temp"), []byte("dev/42/7"), long, []byte("$SYS/x"), []byte("nothing/here")} {
		allocs := testing.AllocsPerRun(100, func() {
			dst = s.Match(topic, dst[:0])
		})
		if allocs != 0 {
			t.Fatalf("Shard.Match(%q) allocates %.1f times per call; want 0", topic, allocs)
		}
	}
}
