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
