package topic

import "testing"

func TestMatch(t *testing.T) {
	f := func(filter, topic string, want bool) {
		t.Helper()
		if got := Match(filter, []byte(topic)); got != want {
			t.Fatalf("Match(%q, %q) = %v; want %v", filter, topic, got, want)
		}
	}
	f("a/b", "a/b", true)
	f("a/b", "a/c", false)
	f("a/+", "a/b", true)
	f("a/+", "a/b/c", false)
	f("a/#", "a", true)
	f("a/#", "a/b/c", true)
	f("#", "a/b", true)
	f("#", "$SYS/x", false)
	f("+/x", "$SYS/x", false)
	f("$SYS/#", "$SYS/x", true)
	f("a/+/c", "a//c", true)
	f("a", "a/b", false)
}
