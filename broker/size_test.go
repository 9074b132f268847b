package broker

import (
	"testing"
	"unsafe"
)

// TestIdleConnectionStructSizes guards the memory budget of an idle
// connection (README, "Memory per connection"): every connection has a
// Client and a Session, so a field added to either costs that much per
// connection once the struct crosses a Go allocation size class. State
// only some connections need belongs behind a pointer allocated on first
// use (Client.ob, Client.ret, Client.aliases, Session.q). The budgets are
// the current size classes; the authentication state (Client's ident and
// CONNECT-time auth fields, 176 bytes; Session's ident and ACL cache, 64)
// is the next candidate to move behind a pointer (Client 112, Session 128
// without it).
func TestIdleConnectionStructSizes(t *testing.T) {
	f := func(name string, got, budget uintptr) {
		t.Helper()
		if got > budget {
			t.Errorf("%s is %d bytes, over its %d-byte size class: move rarely used state behind a pointer", name, got, budget)
		}
	}
	f("Client", unsafe.Sizeof(Client{}), 288)
	f("Session", unsafe.Sizeof(Session{}), 192)
}
