package auth

import (
	"strings"
	"testing"

	"github.com/mcutie/mcutie/broker"
)

func TestMatchesCovers(t *testing.T) {
	m := func(filter, topic string, want bool) {
		t.Helper()
		if got := Matches(filter, []byte(topic)); got != want {
			t.Fatalf("Matches(%q, %q) = %v; want %v", filter, topic, got, want)
		}
	}
	m("a/b", "a/b", true)
	m("a/b", "a/c", false)
	m("a/+", "a/b", true)
	m("a/+", "a/b/c", false)
	m("a/#", "a", true) // '#' also matches the parent level
	m("a/#", "a/b/c", true)
	m("#", "$SYS/x", false) // [MQTT-4.7.2-1]
	m("+/x", "$SYS/x", false)
	m("$SYS/#", "$SYS/x", true)
	m("a/+/c", "a//c", true)
	m("a", "a/b", false)
	c := func(rule, sub string, want bool) {
		t.Helper()
		if got := Covers(rule, []byte(sub)); got != want {
			t.Fatalf("Covers(%q, %q) = %v; want %v", rule, sub, got, want)
		}
	}
	c("a/#", "a/+/c", true)
	c("a/#", "a/#", true)
	c("a/#", "a", true)
	c("a/+", "a/b", true)
	c("a/+", "a/+", true)
	c("a/+", "a/#", false)
	c("a/b", "a/+", false)
	c("a/b", "a/b", true)
	c("#", "$SYS/#", false)
	c("+/b", "+/b", true)
	c("a/+/c", "a/+/#", false)
}

const testACL = `
# anonymous clients
topic read public/#
topic deny public/secret

user alice
topic readwrite alice/#
topic write shared/in
topic shared/both

user bob
topic read alice/status
topic deny alice/status/private

pattern write devices/%c/up
pattern read devices/%c/down/#
pattern readwrite users/%u/#
`

func TestACL(t *testing.T) {
	a, err := ParseACL(strings.NewReader(testACL))
	if err != nil {
		t.Fatal(err)
	}
	anon := &broker.Identity{ClientID: "anon1"}
	alice := &broker.Identity{ClientID: "a1", Username: "alice", HasUsername: true}
	bob := &broker.Identity{ClientID: "b1", Username: "bob", HasUsername: true}
	eve := &broker.Identity{ClientID: "dev/x", Username: "eve/x", HasUsername: true}
	const R, W, S = broker.AccessRead, broker.AccessWrite, broker.AccessSubscribe
	f := func(id *broker.Identity, topic string, acc broker.Access, want bool) {
		t.Helper()
		if got := a.Allow(id, []byte(topic), acc); got != want {
			t.Fatalf("Allow(%s/%s, %q, %d) = %v; want %v", id.Username, id.ClientID, topic, acc, got, want)
		}
	}
	// Anonymous section: the lines before any user.
	f(anon, "public/news", R, true)
	f(anon, "public/news", W, false)
	f(anon, "public/secret", R, false) // deny wins over an earlier read
	f(anon, "public/#", S, true)
	f(anon, "alice/x", R, false)
	// alice
	f(alice, "alice/x/y", R, true)
	f(alice, "alice/x/y", W, true)
	f(alice, "shared/in", W, true)
	f(alice, "shared/in", R, false)
	f(alice, "shared/both", R, true)  // no access word: readwrite
	f(alice, "public/news", R, false) // the anonymous section is not alice's
	f(alice, "alice/#", S, true)
	f(alice, "#", S, false) // a wider filter than granted
	// bob: read one topic, deny below it.
	f(bob, "alice/status", R, true)
	f(bob, "alice/status", W, false)
	f(bob, "alice/status/private", R, false)
	// Patterns: %c and %u for everyone, anonymous included for %c.
	f(anon, "devices/anon1/up", W, true)
	f(anon, "devices/anon1/up", R, false)
	f(anon, "devices/other/up", W, false)
	f(anon, "devices/anon1/down/cmd", R, true)
	f(anon, "devices/anon1/down/#", S, true)
	f(alice, "users/alice/inbox", W, true)
	f(bob, "users/alice/inbox", W, false)
	f(anon, "users//inbox", W, false) // %u without a user name never matches
	// A client id or user name with '/' cannot reach another's subtree.
	f(eve, "devices/dev/x/up", W, false)
	f(eve, "users/eve/x/inbox", W, false)
}

func TestACLParseErrors(t *testing.T) {
	f := func(src, want string) {
		t.Helper()
		_, err := ParseACL(strings.NewReader(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("ParseACL(%q) error %v; want %q", src, err, want)
		}
	}
	f("topic read a/#/b\n", "line 1")
	f("\nuser\n", "line 2")
	f("topic read\n", "line 1")
	f("allow a\n", "unknown statement")
	f("pattern read a/%c#\n", "line 1")
}

// TestACLPatternSinglePass: %u and %c are substituted in one pass. User
// "%c" connecting as client "bob" must get the literal "users/%c/…" (which
// it may not use either: '%' in a value denies), never "users/bob/…".
func TestACLPatternSinglePass(t *testing.T) {
	a, err := ParseACL(strings.NewReader("pattern readwrite users/%u/#\npattern readwrite devices/%c/#\n"))
	if err != nil {
		t.Fatal(err)
	}
	const R, W, S = broker.AccessRead, broker.AccessWrite, broker.AccessSubscribe
	f := func(id *broker.Identity, topic string, acc broker.Access, want bool) {
		t.Helper()
		if got := a.Allow(id, []byte(topic), acc); got != want {
			t.Fatalf("Allow(user %q client %q, %q, %d) = %v; want %v", id.Username, id.ClientID, topic, acc, got, want)
		}
	}
	mallory := &broker.Identity{ClientID: "bob", Username: "%c", HasUsername: true}
	f(mallory, "users/bob/inbox", R, false)
	f(mallory, "users/bob/inbox", W, false)
	f(mallory, "users/bob/#", S, false)
	f(mallory, "users/%c/inbox", W, false)
	// The same the other way round: client id "%u".
	m2 := &broker.Identity{ClientID: "%u", Username: "bob", HasUsername: true}
	f(m2, "devices/bob/x", W, false)
	f(m2, "users/bob/x", W, true) // bob's own %u pattern still works
	// Wildcards in a value never widen a pattern.
	f(&broker.Identity{ClientID: "+", Username: "#", HasUsername: true}, "devices/anyone/x", W, false)
	f(&broker.Identity{ClientID: "c1", Username: "#", HasUsername: true}, "users/anyone/x", R, false)
	// Ordinary values are substituted, twice in one filter too.
	b, err := ParseACL(strings.NewReader("pattern readwrite %u/%c/%u\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := &broker.Identity{ClientID: "c%", Username: "u", HasUsername: true}
	if b.Allow(id, []byte("u/c%/u"), W) {
		t.Fatal("a client id holding '%' matched a pattern")
	}
	id.ClientID = "c"
	if !b.Allow(id, []byte("u/c/u"), W) || b.Allow(id, []byte("u/c/x"), W) {
		t.Fatalf("pattern %s not expanded to u/c/u", "%u/%c/%u")
	}
}

// TestACLDenyPatternFailsClosed: a deny pattern that cannot be applied to a
// client (its id or user name would change the pattern's meaning) refuses
// that client everything, rather than being skipped.
func TestACLDenyPatternFailsClosed(t *testing.T) {
	a, err := ParseACL(strings.NewReader("user alice\ntopic readwrite devices/#\npattern deny devices/%c/config\n"))
	if err != nil {
		t.Fatal(err)
	}
	ok := &broker.Identity{ClientID: "d1", Username: "alice", HasUsername: true}
	if a.Allow(ok, []byte("devices/d1/config"), broker.AccessWrite) || !a.Allow(ok, []byte("devices/d2/config"), broker.AccessWrite) {
		t.Fatal("deny pattern not applied to a plain client id")
	}
	bad := &broker.Identity{ClientID: "d1/x", Username: "alice", HasUsername: true}
	if a.Allow(bad, []byte("devices/d1/x/config"), broker.AccessWrite) {
		t.Fatal("a deny pattern was skipped for client id d1/x")
	}
	// A %u deny pattern does not concern anonymous clients.
	b, err := ParseACL(strings.NewReader("topic read public/#\npattern deny users/%u/#\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Allow(&broker.Identity{ClientID: "a"}, []byte("public/x"), broker.AccessRead) {
		t.Fatal("a %u deny pattern refused an anonymous client")
	}
}
