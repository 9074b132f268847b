package auth

import (
	"testing"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

func TestClientIDOwnedBy(t *testing.T) {
	f := func(id, user string, want bool) {
		t.Helper()
		if got := ClientIDOwnedBy(id, user); got != want {
			t.Fatalf("ClientIDOwnedBy(%q, %q) = %v; want %v", id, user, got, want)
		}
	}
	f("sensor-17", "sensor-17", true)
	f("sensor-17:main", "sensor-17", true)
	f("sensor-17:a:b", "sensor-17", true)
	f("sensor-17", "sensor-1", false) // a plain prefix is not ownership
	f("sensor-1x:a", "sensor-1", false)
	f("bob", "alice", false)
	f("", "alice", false)
	f(":x", "", false)
	f("a:b", "a:b", false) // a user name with ':' owns nothing
}

// TestClientIDBinder: the id is checked before the credentials, and again
// against a user name the next Authenticator substitutes.
func TestClientIDBinder(t *testing.T) {
	call := func(a broker.Authenticator, req *broker.AuthRequest) broker.AuthResult {
		ch := make(chan broker.AuthResult, 1)
		a.Authenticate(req, func(r broker.AuthResult) { ch <- r })
		return <-ch
	}
	asked := 0
	rename := ""
	next := broker.AuthenticatorFunc(func(r *broker.AuthRequest) broker.AuthResult {
		asked++
		return broker.AuthResult{Code: codec.Success, Username: rename}
	})
	b := &ClientIDBinder{Next: next}
	req := func(id, user string, has bool) *broker.AuthRequest {
		return &broker.AuthRequest{ClientID: id, Username: user, HasUsername: has}
	}
	if r := call(b, req("alice", "bob", true)); r.Code != codec.ClientIdentifierNotValid || asked != 0 {
		t.Fatalf("foreign id: %#x, next asked %d times", byte(r.Code), asked)
	}
	if r := call(b, req("bob", "", false)); r.Code != codec.ClientIdentifierNotValid {
		t.Fatalf("no user name: %#x", byte(r.Code))
	}
	if r := call(b, req("bob:2", "bob", true)); r.Code != codec.Success || asked != 1 {
		t.Fatalf("own id: %#x", byte(r.Code))
	}
	rename = "carol"
	if r := call(b, req("bob:2", "bob", true)); r.Code != codec.ClientIdentifierNotValid {
		t.Fatalf("id of bob, verdict names carol: %#x", byte(r.Code))
	}
	nilNext := &ClientIDBinder{}
	if r := call(nilNext, req("bob", "bob", true)); r.Code != codec.Success {
		t.Fatalf("nil Next: %#x", byte(r.Code))
	}
	m := req("bob", "bob", true)
	m.Method = "SCRAM-SHA-1"
	if r := call(nilNext, m); r.Code != codec.BadAuthenticationMethod {
		t.Fatalf("method with nil Next: %#x", byte(r.Code))
	}
}
