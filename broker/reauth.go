package broker

import (
	"log/slog"

	"github.com/mcutie/mcutie/codec"
)

// Re-authentication (MQTT 5 §4.12.1): a client that connected with an
// Authentication Method may send AUTH 0x19 at any time after CONNACK; the
// exchange goes through the same Authenticator (Step 0 again, then 1, 2…
// for each AUTH 0x18) while the connection keeps working. Success is
// answered with AUTH 0x00; a refusal or Options.AuthTimeout ends the
// connection with DISCONNECT 0x87 [MQTT-4.12.1-2].

// handleReauth processes an AUTH from a connected client. Loop-only.
func (c *Client) handleReauth(a *codec.Auth) error {
	l := c.l
	if c.authMethod() == "" {
		// [MQTT-4.12.0-7] No Authentication Method in CONNECT: no AUTH.
		return errProtocol("AUTH from a client that connected without an Authentication Method", "MQTT-4.12.0-7")
	}
	if string(a.Props.AuthMethod) != c.flow().authMethod {
		// [MQTT-4.12.1-1] Re-authentication uses the CONNECT's method.
		return errProtocol("AUTH with a different Authentication Method", "MQTT-4.12.1-1")
	}
	af := c.flow()
	req := &AuthRequest{ClientID: c.id, Username: af.user, HasUsername: af.hasUser,
		Remote: c.conn.RemoteAddr(), Version: c.version, Method: c.flow().authMethod,
		Data: append([]byte(nil), a.Props.AuthData...)}
	switch {
	case !c.reauthing && a.Code == codec.ReAuthenticate:
		c.reauthing = true
		c.flow().authDeadline = l.now + int64(l.b.opts.AuthTimeout)
	case c.reauthing && a.Code == codec.ContinueAuthentication && c.flow().call == nil:
		req.Step = c.flow().authReq.Step + 1
		req.State = c.flow().authState
	default:
		// §4.12.1: 0x19 starts a re-authentication; within one the
		// client answers the server's AUTH 0x18 with 0x18.
		return errProtocol("AUTH reason code out of sequence for re-authentication", "")
	}
	c.flow().authReq = req
	call := &authCall{c: c, reauth: true}
	c.flow().call = call
	l.b.opts.Authenticator.Authenticate(req, call.done)
	if call.phase.CompareAndSwap(phaseCalling, phaseAsync) {
		return nil // the verdict comes through the inbox: resumeReauth
	}
	c.flow().call = nil
	c.applyReauth(call.res)
	return nil
}

// resumeReauth applies an asynchronous re-authentication verdict.
// Loop-only.
func (c *Client) resumeReauth(a *authCall) {
	if c.auth == nil || c.auth.call != a || c.state != stateConnected || !c.reauthing {
		return
	}
	c.l.tick()
	c.flow().call = nil
	c.applyReauth(a.res)
	c.l.flush()
}

// applyReauth answers AUTH 0x00 (done), AUTH 0x18 (go on) or DISCONNECT
// 0x87 (refused). Loop-only.
func (c *Client) applyReauth(r AuthResult) {
	l := c.l
	b := l.b
	send := func(code codec.ReasonCode) {
		a := codec.Auth{Code: code}
		a.Props.Set(codec.PropAuthMethod)
		a.Props.AuthMethod = []byte(c.flow().authMethod)
		if len(r.Data) > 0 {
			a.Props.Set(codec.PropAuthData)
			a.Props.AuthData = r.Data
		}
		c.queueControl(a.Append(c.controlBuf()))
	}
	switch r.Code {
	case codec.Success:
		b.auth.ok.Add(1)
		c.reauthing, c.flow().authReq, c.flow().authState = false, nil, nil
		if af := c.flow(); r.Username != "" && (r.Username != af.user || !af.hasUser) {
			af.user, af.hasUser = r.Username, true
			if c.s != nil {
				c.s.setIdentity(Identity{ClientID: c.id, Username: af.user, HasUsername: true}) // ACL verdicts of the old identity are dropped
			}
		}
		send(codec.Success)
		return
	case codec.ContinueAuthentication:
		c.flow().authState = r.State
		send(codec.ContinueAuthentication)
		return
	}
	reason := r.Reason
	if reason == "" {
		reason = "re-authentication failed"
	}
	if r.Code == codec.BadUserNameOrPassword || r.Code == codec.NotAuthorized {
		b.auth.failed.Add(1)
		b.bans.fail(hostOf(c.conn.RemoteAddr()), c.id, l.now)
	}
	if ok, suppressed := l.authLog.allow(l.now); ok {
		b.opts.Logger.Info("re-authentication refused", slog.String("client", c.id), slog.String("user", c.flow().user),
			slog.String("remote", c.conn.RemoteAddr()), slog.String("reason", reason), slog.Uint64("suppressed", suppressed))
	}
	c.reauthing, c.flow().authReq, c.flow().authState = false, nil, nil
	// DISCONNECT has no 0x86 or 0x8C: every refusal is 0x87.
	c.disconnect(codec.NotAuthorized, reason)
}

// reauthExpired ends a connection whose re-authentication took longer
// than Options.AuthTimeout. Loop-only.
func (c *Client) reauthExpired() {
	c.l.b.auth.timeouts.Add(1)
	c.flow().call = nil
	c.reauthing, c.flow().authReq, c.flow().authState = false, nil, nil
	c.disconnect(codec.NotAuthorized, "re-authentication timed out")
}
