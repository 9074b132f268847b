package bridge

import (
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	f := func(yaml, want string) {
		t.Helper()
		_, err := Parse([]byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q): error %v, want one containing %q", yaml, err, want)
		}
	}
	one := func(extra, topic string) string {
		return "bridges:\n  - name: b\n    address: tcp://127.0.0.1:1883\n" + extra + "    topics:\n      - " + topic + "\n"
	}
	f("bridges:\n  - name: b\n    adress: tcp://x:1\n", "line 3: field adress not found")
	f(one("", `{pattern: "a/#", qos: 2}`), "QoS 2 is not supported")
	f(one("", `{pattern: "a/#", direction: sideways}`), `direction "sideways"`)
	f(one("", `{pattern: "a/#", local_prefix: "x/+/"}`), "no wildcards in a prefix")
	f(one("", `{pattern: "", local_prefix: "x"}`), "give both")
	f(one("", `{pattern: "a/#/b"}`), `filter "a/#/b"`)
	f(one("    protocol: \"3.1\"\n", `{pattern: "a"}`), `protocol "3.1"`)
	f(one("    password_file: /nonexistent\n", `{pattern: "a"}`), "a password needs a username")
	f(one("    tls: {ca_file: /x}\n", `{pattern: "a"}`), "tls settings need a tls:// address")
	f(one("    reconnect: {min: 2s, max: 1s}\n", `{pattern: "a"}`), "reconnect")
	f(one("    max_inflight: 70000\n", `{pattern: "a"}`), "max_inflight 70000")
	f("bridges:\n  - name: b\n    address: ws://x:1\n    topics: [{pattern: a}]\n", `scheme "ws"`)
	f("bridges:\n  - name: b c\n    address: tcp://x:1\n    topics: [{pattern: a}]\n", "only letters")
	f("bridges:\n  - name: b\n    address: tcp://x:1\n", "at least one mapping")
	f("bridges:\n  - {name: b, address: tcp://x:1, topics: [{pattern: a}]}\n  - {name: b, address: tcp://y:1, topics: [{pattern: a}]}\n", `name "b" used twice`)
}

func TestParseDefaults(t *testing.T) {
	cs, err := Parse([]byte("bridges:\n  - {name: b, address: tls://example.com, protocol: 5, topics: [{pattern: a/#}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	if c.Protocol != "5" || c.ClientID != "mcutie-bridge-b" || c.KeepAlive != DefaultKeepAlive || c.MaxInflight != DefaultMaxInflight ||
		c.Reconnect.Min != time.Second || c.Reconnect.Max != time.Minute || c.Topics[0].Direction != "out" || c.Topics[0].QoS != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	if _, hp, _ := c.remote(); hp != "example.com:8883" {
		t.Fatalf("tls:// default port: %s", hp)
	}
}

// TestMapping: Mosquitto's table (mosquitto.conf(5), "topic").
func TestMapping(t *testing.T) {
	f := func(pattern, lp, rp, local, remote string) {
		t.Helper()
		tp := Topic{Pattern: pattern, Direction: "both", LocalPrefix: lp, RemotePrefix: rp}
		if err := tp.check(); err != nil {
			t.Fatal(err)
		}
		if got := tp.toRemote(local); got != remote {
			t.Fatalf("%q %q %q: local %q -> remote %q, want %q", pattern, lp, rp, local, got, remote)
		}
		if got := tp.toLocal(remote); got != local {
			t.Fatalf("%q %q %q: remote %q -> local %q, want %q", pattern, lp, rp, remote, got, local)
		}
	}
	f("pattern", "L/", "R/", "L/pattern", "R/pattern")
	f("pattern", "L/", "", "L/pattern", "pattern")
	f("pattern", "", "R/", "pattern", "R/pattern")
	f("pattern", "", "", "pattern", "pattern")
	f("", "local", "remote", "local", "remote")
	f("s/#", "site/", "edge1/", "site/s/a/b", "edge1/s/a/b")
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	f := func(n int, lo, hi time.Duration) {
		t.Helper()
		for range 200 {
			if d := backoff(b, n); d < lo || d > hi {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", n, d, lo, hi)
			}
		}
	}
	f(0, 50*time.Millisecond, 100*time.Millisecond)
	f(2, 200*time.Millisecond, 400*time.Millisecond)
	f(4, 500*time.Millisecond, time.Second) // capped at Max
	f(100, 500*time.Millisecond, time.Second)
}

func TestEchoFilter(t *testing.T) {
	e := newEchoFilter(3)
	e.sent("a", []byte("1"))
	e.sent("a", []byte("1"))
	first, second, third := e.echoed("a", []byte("1")), e.echoed("a", []byte("1")), e.echoed("a", []byte("1"))
	if !first || !second || third {
		t.Fatal("two sent, two echoes dropped, the third is a new message")
	}
	if e.echoed("a", []byte("2")) || e.echoed("b", []byte("1")) {
		t.Fatal("another payload or topic is no echo")
	}
	for i := range 4 {
		e.sent("x", []byte{byte(i)})
	}
	if e.echoed("x", []byte{0}) {
		t.Fatal("the oldest of 4 in a window of 3 is forgotten")
	}
	if !e.echoed("x", []byte{3}) {
		t.Fatal("the newest is remembered")
	}
}
