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

func TestValidFilter(t *testing.T) {
	f := func(filter string, want bool) {
		t.Helper()
		if got := ValidFilter(filter); got != want {
			t.Fatalf("ValidFilter(%q) = %v; want %v", filter, got, want)
		}
	}
	f("a/b", true)
	f("#", true)
	f("a/#", true)
	f("+/+/x", true)
	f("", false)
	f("a#", false)
	f("a/#/b", false)
	f("a+/b", false)
	f("a/+b", false)
}
