package auth

import (
	"strings"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// ClientIDBinder binds client identifiers to user names: a CONNECT is
// refused with 0x85 Client Identifier not valid (3.x 0x02) unless its
// client identifier belongs to its user name (ClientIDOwnedBy); the rest
// goes to Next. With it, an ACL pattern on %c ("devices/%c/#") grants a
// user only its own clients' topics: no one can take another user's
// client id to reach them.
//
// The broker asks an Authenticator only about CONNECTs that carry a user
// name (or an authentication method): anonymous access must be off
// (broker.Options.DenyAnonymous) for the binding to cover every client.
// Safe for concurrent use.
type ClientIDBinder struct {
	// Next checks the credentials once the client id is accepted; nil
	// accepts them (as the broker does without an Authenticator) but
	// refuses an authentication method.
	Next broker.Authenticator
}

// ClientIDOwnedBy reports whether client id belongs to user: the part of
// id before its first ':' is the user name ("sensor-17", "sensor-17:a").
// Password-file user names cannot hold ':', so every id has at most one
// owner; a plain prefix would give user "sensor-1" the id "sensor-17".
// An empty user name owns nothing.
func ClientIDOwnedBy(id, user string) bool {
	owner, _, _ := strings.Cut(id, ":")
	return user != "" && owner == user
}

// Authenticate implements broker.Authenticator.
func (b *ClientIDBinder) Authenticate(req *broker.AuthRequest, done func(broker.AuthResult)) {
	if !req.HasUsername || !ClientIDOwnedBy(req.ClientID, req.Username) {
		done(refuseClientID)
		return
	}
	if b.Next == nil {
		if req.Method != "" {
			done(broker.AuthResult{Code: codec.BadAuthenticationMethod, Reason: "authentication method not supported"})
			return
		}
		done(broker.AuthResult{Code: codec.Success})
		return
	}
	// An Authenticator may name another user in its verdict; the id must
	// belong to that one.
	b.Next.Authenticate(req, func(r broker.AuthResult) {
		if r.Code == codec.Success && r.Username != "" && !ClientIDOwnedBy(req.ClientID, r.Username) {
			r = refuseClientID
		}
		done(r)
	})
}

var refuseClientID = broker.AuthResult{Code: codec.ClientIdentifierNotValid, Reason: "client identifier does not belong to the user name (--client-id-prefix-user: want <user> or <user>:<suffix>)"}

var _ broker.Authenticator = (*ClientIDBinder)(nil)
