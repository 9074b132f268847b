package client

import (
	"testing"
)

func TestMatch(t *testing.T) {
	f := func(filter, topic string, want bool) {
		t.Helper()
		if got := Match(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v; want %v", filter, topic, got, want)
		}
	}
	f("a/b", "a/b", true)
	f("a/b", "a/c", false)
	f("a/+", "a/b", true)
	f("a/+", "a/b/c", false)
	f("a/+/c", "a/b/c", true)
	f("+/+", "a/b", true)
	f("+", "a/b", false)
	f("a/#", "a", true)
	f("a/#", "a/b/c", true)
	f("#", "a/b/c", true)
	f("#", "$SYS/x", false)
	f("+/x", "$SYS/x", false)
	f("$SYS/#", "$SYS/x", true)
	f("a/b/#", "a", false)
	f("a//b", "a//b", true)
	f("a/+/b", "a//b", true)
	f("a", "a/b", false)
}

func TestFilterOf(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := FilterOf(in); got != want {
			t.Fatalf("FilterOf(%q) = %q; want %q", in, got, want)
		}
	}
	f("$share/g/a/b", "a/b")
	f("$share/g/#", "#")
	f("a/b", "a/b")
	f("$share/g", "$share/g")
}

func TestTrack(t *testing.T) {
	var tr track
	for _, s := range []uint32{0, 1, 2, 5, 3, 3, 4, 1000, 6} {
		tr.add(s)
	}
	if tr.unique != 8 || tr.dups != 1 || tr.ooo != 3 || tr.next != 1001 {
		t.Fatalf("track: unique %d dups %d ooo %d next %d; want 8 1 3 1001", tr.unique, tr.dups, tr.ooo, tr.next)
	}
	var a, b track
	a.add(1)
	a.add(2)
	b.add(2)
	b.add(130)
	if n := popcount(b.orInto(a.orInto(nil))); n != 3 {
		t.Fatalf("union of {1,2} and {2,130}: %d bits, want 3", n)
	}
}

func TestExpected(t *testing.T) {
	f := func(topics []string, sent uint64, filters []string, want uint64) {
		t.Helper()
		if got := expected(topics, sent, filters); got != want {
			t.Fatalf("expected(%v, %d, %v) = %d; want %d", topics, sent, filters, got, want)
		}
	}
	topics := []string{"w/0/0", "w/0/1", "w/1/0", "w/1/1"}
	f(topics, 10, []string{"w/#"}, 10)
	f(topics, 10, []string{"w/0/+"}, 6) // seqs 0,1,4,5,8,9
	f(topics, 10, []string{"w/+/1"}, 5)
	f(topics, 9, []string{"w/1/1"}, 2)
	f(topics, 10, []string{"$share/g/w/1/+"}, 4)
	f(topics, 10, []string{"x/#"}, 0)
	f(nil, 10, []string{"#"}, 0)
}

func TestHeader(t *testing.T) {
	p := make([]byte, HeaderLen+4)
	putHeader(p, 123456789, 7, 42)
	ts, pub, seq, ok := readHeader(p)
	if !ok || ts != 123456789 || pub != 7 || seq != 42 {
		t.Fatalf("readHeader = %d %d %d %v", ts, pub, seq, ok)
	}
	if _, _, _, ok := readHeader(p[:HeaderLen-1]); ok {
		t.Fatal("a short payload has no header")
	}
}
