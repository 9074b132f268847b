package broker

import (
	"github.com/mcutie/mcutie/codec"
)

// Identity is who a connection authenticated as: what ACLs are evaluated
// against. It is kept on the session, so messages queued while the
// client is offline are checked against the identity it last had.
type Identity struct {
	ClientID    string
	Username    string
	HasUsername bool
}

// Access is what an Authorizer is asked about.
type Access uint8

const (
	AccessRead      Access = 1 // receive a message published on a topic name (checked at delivery)
	AccessWrite     Access = 2 // publish to a topic name (checked on PUBLISH and for the will at CONNECT)
	AccessSubscribe Access = 3 // subscribe to a topic filter ($share/… stripped)
)

// AuthRequest is one authentication decision: a CONNECT (Step 0) or one
// AUTH packet of v5 enhanced authentication (Step 1, 2, …). Every field is
// a copy: an authenticator may keep the request after returning.
type AuthRequest struct {
	ClientID    string
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	Remote      string // "host:port" of the peer
	Version     codec.Version

	// v5 enhanced authentication [MQTT-4.12.0-1]: Method is the CONNECT's
	// Authentication Method (empty: plain CONNECT), Data the
	// Authentication Data of this step.
	Method string
	Data   []byte
	Step   int
	State  any // AuthResult.State of the previous step

	// connect is the CONNECT (the loop's scratch at Step 0; the Connect
	// hooks' copy from then on).
	connect *codec.Connect
}

// AuthResult is an authenticator's verdict.
type AuthResult struct {
	// Code is Success, ContinueAuthentication (enhanced authentication
	// only: the broker sends AUTH 0x18 with Data and waits for the
	// client's next AUTH), or a CONNACK refusal: BadUserNameOrPassword
	// and NotAuthorized count as failed attempts towards bans;
	// BadAuthenticationMethod, ServerUnavailable, ServerBusy and Banned
	// do not.
	Code   codec.ReasonCode
	Reason string // v5 Reason String and the log line
	Data   []byte // Authentication Data for the AUTH 0x18 or the CONNACK
	State  any    // handed to the next step
	// Username, when set, replaces the CONNECT's user name as the
	// identity ACLs see (e.g. the user a SCRAM exchange proved).
	Username string
}

// Authenticator decides who may connect.
//
// Authenticate is called on the connection's event loop and must not
// block it. It calls done exactly once: before returning when the answer
// is cheap (the broker then goes on inline), or later from any goroutine
// (the verdict is posted back to the loop through its inbox). A verdict
// that has not come within Options.AuthTimeout refuses the connection
// (CONNACK 0x88 Server unavailable; 3.x 0x03); a later one is ignored.
type Authenticator interface {
	Authenticate(req *AuthRequest, done func(AuthResult))
}

// AuthenticatorFunc is a synchronous Authenticator: fn runs on the event
// loop, so it must be cheap (microseconds, no I/O).
type AuthenticatorFunc func(req *AuthRequest) AuthResult

// Authenticate calls fn and done inline.
func (fn AuthenticatorFunc) Authenticate(req *AuthRequest, done func(AuthResult)) {
	done(fn(req))
}

// Authorizer decides what an authenticated client may do with a topic.
//
// Allow is called on event loops, concurrently: it must be safe for
// concurrent use and must not block. The broker caches its answers per
// session and topic (Options.ACLCacheSize) and asks again only when
// Generation changes, so a reload is picked up by every session at its
// next check.
type Authorizer interface {
	Allow(id *Identity, topic []byte, acc Access) bool
	Generation() uint64
}
