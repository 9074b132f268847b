package broker

import "testing"

func TestSplitDelayed(t *testing.T) {
	f := func(topic string, secs uint64, rest string, ok bool) {
		t.Helper()
		s, r, k := splitDelayed([]byte(topic))
		if k != ok || ok && (s != secs || string(r) != rest) {
			t.Fatalf("%q: %d %q %v, want %d %q %v", topic, s, r, k, secs, rest, ok)
		}
	}
	f("$delayed/10/a/b", 10, "a/b", true)
	f("$delayed/0/a", 0, "a", true)
	f("$delayed/4294967295/x", 4294967295, "x", true)
	f("$delayed/99999999999/x", 0, "", false) // 11 digits: past any --max-delay
	f("$delayed/1e3/x", 0, "", false)
	f("$delayed/-1/x", 0, "", false)
	f("$delayed//x", 0, "", false)
	f("$delayed/5", 0, "", false)
	f("$delayed/5/", 0, "", false)
	f("$delayed/5/$SYS/x", 0, "", false)
}

func TestSplitP2P(t *testing.T) {
	f := func(topic, cid, rest string, ok bool) {
		t.Helper()
		c, r, k := splitP2P([]byte(topic))
		if k != ok || ok && (string(c) != cid || string(r) != rest) {
			t.Fatalf("%q: %q %q %v", topic, c, r, k)
		}
	}
	f("$p2p/bob/a/b", "bob", "a/b", true)
	f("$p2p/bob/a", "bob", "a", true)
	f("$p2p/bob", "", "", false)
	f("$p2p/bob/", "", "", false)
	f("$p2p//a", "", "", false)
	f("$p2pbob/a", "", "", false)
}
