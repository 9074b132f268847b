package broker

import (
	"io"
	"log/slog"
	"testing"
	"unsafe"

	"github.com/mcutie/mcutie/codec"
)

// TestIdleConnectionStructSizes guards the memory budget of an idle
// connection (docs/benchmarks.md, "Memory per idle connection"): every connection has a
// Client and a Session, so a field added to either costs that much per
// connection once the struct crosses a Go allocation size class. State
// only some connections need belongs behind a pointer allocated on first
// use (Client.output, Client.owedRetained, Client.aliases, Client.auth, Session.qosState,
// Session.extras). The reactor embeds the Client in its per-connection state
// (reactor.TestConnStateSize).
func TestIdleConnectionStructSizes(t *testing.T) {
	f := func(name string, got, budget uintptr) {
		t.Helper()
		if got > budget {
			t.Errorf("%s is %d bytes, over its %d-byte size class: move rarely used state behind a pointer", name, got, budget)
		}
	}
	f("Client", unsafe.Sizeof(Client{}), 128)
	f("Session", unsafe.Sizeof(Session{}), 112)
}

// An idle connection without a user name allocates no Session.extras for
// its identity, even where hooks or the management API keep identities
// (Options.KeepIdentity): the user name is all they read, and it is
// empty. One with a user name keeps it.
func TestIdentityKeptOnlyWithUsername(t *testing.T) {
	b := New(Options{Loops: 1, KeepIdentity: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, l := range b.loops {
		l.Bind(func(fn func()) error { fn(); return nil })
	}
	anon, _ := connectClient(t, b, "anon", codec.V311, false)
	if anon.s == nil || anon.s.extras != nil {
		t.Fatalf("anonymous connection: session %v, extras %v; want a session without extras", anon.s, anon.s.extras)
	}
	c := b.loops[0].NewClient(&fakeConn{})
	p := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true, ClientID: []byte("named"), KeepAlive: 60,
		UsernameFlag: true, Username: []byte("bob")}
	raw := p.Append(nil)
	if n, res := c.Feed(raw); n != len(raw) || res != FeedContinue {
		t.Fatalf("connect: consumed %d of %d, result %d", n, len(raw), res)
	}
	if got := c.s.username(); got != "bob" {
		t.Fatalf("user name kept %q, want bob", got)
	}
}
