package broker

import (
	"testing"
	"unsafe"
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
