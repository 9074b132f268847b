package router

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refMatch is the matching rules written the obvious way: the reference the
// trees are checked against.
func refMatch(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// TestMatchRules checks each rule against all three indexes and the
// reference.
func TestMatchRules(t *testing.T) {
	f := func(filter, topic string, want bool) {
		t.Helper()
		if got := refMatch(filter, topic); got != want {
			t.Fatalf("refMatch(%q, %q) = %v; want %v", filter, topic, got, want)
		}
		sh := NewShard[int]()
		sh.Subscribe([]byte(filter), 1, SubOptions{QoS: 1})
		if got := len(sh.Match([]byte(topic), nil)) == 1; got != want {
			t.Fatalf("Shard: filter %q topic %q: got %v; want %v", filter, topic, got, want)
		}
		sd := NewShared[int]()
		sd.Subscribe([]byte("g"), []byte(filter), 1, SubOptions{})
		if got := len(sd.Match([]byte(topic), nil, nil)) == 1; got != want {
			t.Fatalf("Shared: filter %q topic %q: got %v; want %v", filter, topic, got, want)
		}
		rt := NewRetained[string]()
		rt.Set([]byte(topic), topic)
		if got := len(rt.Match([]byte(filter), nil)) == 1; got != want {
			t.Fatalf("Retained: filter %q topic %q: got %v; want %v", filter, topic, got, want)
		}
	}
	// exact
	f("a/b", "a/b", true)
	f("a/b", "a/b/c", false)
	f("a/b", "a", false)
	f("a/b/c", "a/b", false)
	f("a", "a", true)
	f("a", "b", false)
	// case sensitivity, no normalization [MQTT-4.7.3-4]
	f("ACCOUNTS", "Accounts", false)
	f("Sport/+", "sport/x", false)
	f("café", "café", true)
	f("cafe", "café", false)
	// spaces are ordinary characters
	f("Accounts payable", "Accounts payable", true)
	f("Accounts payable/+", "Accounts payable/x y", true)
	f("a /b", "a/b", false)
	f(" ", " ", true)
	// '+' : one level, empty levels included
	f("sport/tennis/+", "sport/tennis/player1", true)
	f("sport/tennis/+", "sport/tennis/player1/ranking", false)
	f("sport/+", "sport", false)
	f("sport/+", "sport/", true)
	f("sport/+/player1", "sport/tennis/player1", true)
	f("a/+/b", "a//b", true)
	f("a//b", "a//b", true)
	f("a//b", "a/x/b", false)
	f("+", "a", true)
	f("+", "a/b", false)
	f("+", "/", false)
	f("+/+", "/", true)
	f("+/+", "/finance", true)
	f("/+", "/finance", true)
	f("+", "/finance", false)
	f("+/+/+", "a/b/c", true)
	f("+/+/+", "a/b", false)
	// '#': this level and all below
	f("#", "a", true)
	f("#", "a/b/c", true)
	f("#", "/", true)
	f("#", "/a", true)
	f("sport/#", "sport", true)
	f("sport/#", "sport/", true)
	f("sport/#", "sport/tennis/player1/ranking", true)
	f("sport/#", "sports", false)
	f("sport/#", "spor", false)
	f("sport/tennis/#", "sport/tennis", true)
	f("sport/tennis/#", "sport", false)
	f("+/#", "a", true)
	f("+/#", "a/b", true)
	f("/#", "/", true)
	f("/#", "a", false)
	f("a/+/#", "a", false)
	f("a/+/#", "a/b", true)
	// '/'-leading topics
	f("/finance", "/finance", true)
	f("/finance", "finance", false)
	f("finance", "/finance", false)
	// $ topics [MQTT-4.7.2-1]
	f("#", "$SYS/x", false)
	f("#", "$SYS", false)
	f("#", "$", false)
	f("+", "$SYS", false)
	f("+/monitor/Clients", "$SYS/monitor/Clients", false)
	f("+/#", "$SYS/a", false)
	f("$SYS/#", "$SYS/a", true)
	f("$SYS/#", "$SYS", true)
	f("$SYS/monitor/+", "$SYS/monitor/Clients", true)
	f("$SYS/+", "$SYS/a", true)
	f("$SYS", "$SYS", true)
	f("a/+", "a/$b", true)
	f("a/#", "a/$b", true)
	// wildcard characters inside a level are literal
	f("a+", "a+", true)
	f("a+", "ab", false)
}

// TestMatchRandom cross-checks all three indexes against refMatch on random
// filters and topics over a small alphabet, where overlaps are frequent.
func TestMatchRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	levels := []string{"a", "b", "", "$x", "A"}
	gen := func(wild bool) string {
		n := 1 + rnd.IntN(4)
		ls := make([]string, n)
		for i := range ls {
			ls[i] = levels[rnd.IntN(len(levels))]
			if wild {
				switch rnd.IntN(5) {
				case 0:
					ls[i] = "+"
				case 1:
					if i == n-1 {
						ls[i] = "#"
					}
				}
			}
		}
		return strings.Join(ls, "/")
	}
	var filters, topics []string
	for range 300 {
		filters = append(filters, gen(true))
	}
	for range 300 {
		topics = append(topics, gen(false))
	}
	filters = uniq(filters)
	topics = uniq(topics)

	sh := NewShard[int]()
	sd := NewShared[int]()
	for i, f := range filters {
		sh.Subscribe([]byte(f), i, SubOptions{})
		sd.Subscribe([]byte("g"), []byte(f), i, SubOptions{})
	}
	for _, tp := range topics {
		var want []int
		for i, f := range filters {
			if refMatch(f, tp) {
				want = append(want, i)
			}
		}
		if got := keys(sh.Match([]byte(tp), nil)); !slices.Equal(got, want) {
			t.Fatalf("Shard.Match(%q) = %v; want %v", tp, got, want)
		}
		if got := keys(sd.Match([]byte(tp), nil, nil)); !slices.Equal(got, want) {
			t.Fatalf("Shared.Match(%q) = %v; want %v", tp, got, want)
		}
	}

	rt := NewRetained[int]()
	for i, tp := range topics {
		rt.Set([]byte(tp), i)
	}
	for _, f := range filters {
		var want []int
		for i, tp := range topics {
			if refMatch(f, tp) {
				want = append(want, i)
			}
		}
		got := rt.Match([]byte(f), nil)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("Retained.Match(%q) = %v; want %v", f, got, want)
		}
	}
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func keys(es []Entry[int]) []int {
	var ks []int
	for _, e := range es {
		ks = append(ks, e.Key)
	}
	slices.Sort(ks)
	return ks
}

// TestNoPanic feeds inputs a caller should have rejected.
func TestNoPanic(t *testing.T) {
	inputs := []string{"", "/", "//", "#", "+", "a/#/b", "#/a", "a/#/#", "++", "a\x00b", "$", "$share/g/a", strings.Repeat("/", 1000)}
	sh := NewShard[int]()
	sd := NewShared[int]()
	rt := NewRetained[int]()
	for i, in := range inputs {
		sh.Subscribe([]byte(in), i, SubOptions{})
		sd.Subscribe([]byte(in), []byte(in), i, SubOptions{})
		rt.Set([]byte(in), i)
	}
	for _, in := range inputs {
		sh.Match([]byte(in), nil)
		sd.Match([]byte(in), nil, nil)
		rt.Match([]byte(in), nil)
		rt.Get([]byte(in))
	}
	sh.Subscribe(nil, 1, SubOptions{})
	sh.Match(nil, nil)
	sd.Match(nil, nil, nil)
	rt.Match(nil, nil)
	for i, in := range inputs {
		sh.Unsubscribe([]byte(in), i)
		sd.Unsubscribe([]byte(in), []byte(in), i)
		rt.Delete([]byte(in))
	}
	sh.Unsubscribe(nil, 1)
	if sh.Len() != 0 || sd.Len() != 0 || rt.Len() != 0 {
		t.Fatalf("not empty: shard %d shared %d retained %d", sh.Len(), sd.Len(), rt.Len())
	}
	if !sh.root.empty() || sd.root.Load() != nil || rt.root.kids.len() != 0 {
		t.Fatalf("nodes left after removing everything")
	}
}

// TestKidsSwitch grows a node past the slice limit into a map and back.
func TestKidsSwitch(t *testing.T) {
	var k kids[int]
	vals := make([]int, 40)
	for i := range vals {
		vals[i] = i
	}
	label := func(i int) string { return string(rune('A' + i)) }
	for i := len(vals) - 1; i >= 0; i-- {
		k.add(label(i), &vals[i])
		if (k.m != nil) != (k.len() > kidsListMax) {
			t.Fatalf("len %d: map in use = %v", k.len(), k.m != nil)
		}
	}
	for i := range vals {
		if p := k.get([]byte(label(i))); p == nil || *p != i {
			t.Fatalf("get(%q) = %v", label(i), p)
		}
	}
	for i := range 35 {
		k.del([]byte(label(i)))
	}
	if k.m != nil || k.len() != 5 || !slices.IsSortedFunc(k.list, func(a, b kid[int]) int { return strings.Compare(a.label, b.label) }) {
		t.Fatalf("after deletes: map %v len %d list %v", k.m != nil, k.len(), k.list)
	}
	for i := 35; i < 40; i++ {
		if p := k.get([]byte(label(i))); p == nil || *p != i {
			t.Fatalf("get(%q) after deletes = %v", label(i), p)
		}
	}
	if k.get([]byte(label(0))) != nil {
		t.Fatalf("deleted child still found")
	}
}
