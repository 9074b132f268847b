package broker

import (
	"log/slog"
	"sync/atomic"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// authStep is where an authentication stands after a step: go on with the
// CONNECT, wait for a verdict or the client's next AUTH (the CONNECT was
// copied into authFlow.connectRaw and consumed), or refused (closed).
type authStep uint8

const (
	authProceed authStep = iota
	authWait
	authRefused
)

// authCall is one outstanding Authenticate call. Its done may run on the
// loop before Authenticate returns (inline) or on any goroutine later
// (async): phase settles which, with one compare-and-swap each side.
type authCall struct {
	c      *Client
	reauth bool // a re-authentication of a connected client (reauth.go)
	fired  atomic.Bool
	phase  atomic.Uint32
	res    AuthResult
}

const (
	phaseCalling  uint32 = iota // Authenticate has not returned
	phaseInline                 // done ran before it returned
	phaseAsync                  // it returned without a verdict
	phaseAnswered               // the async verdict was posted to the loop
)

func (a *authCall) done(r AuthResult) {
	if !a.fired.CompareAndSwap(false, true) {
		return // done called twice: the first verdict stands
	}
	a.res = r
	if a.phase.CompareAndSwap(phaseCalling, phaseInline) {
		return
	}
	if a.phase.CompareAndSwap(phaseAsync, phaseAnswered) {
		c := a.c
		// Back to the connection's loop; if the inbox stays full the
		// verdict is lost and the auth timeout refuses the connection.
		fn := func() { c.resumeAuth(a) }
		if a.reauth {
			fn = func() { c.resumeReauth(a) }
		}
		c.l.post(inboxItem{kind: itemFunc, fn: fn}, true)
	}
}

// beginAuth runs the authentication of a CONNECT on the client's home
// loop: bans, anonymous policy, then the Authenticator. Loop-only.
func (c *Client) beginAuth(p *codec.Connect, cid, raw []byte) authStep {
	l := c.l
	b := l.b
	id := c.id // set by the claim (connect.go)
	user := string(p.Username)
	ip := hostOf(c.conn.RemoteAddr())
	if b.bans.ipBanned(ip, l.now) {
		// Banned after this connection was accepted.
		b.bans.refusedIP.Add(1)
		c.refuseAuth(p.Version, user, codec.Banned, "source address banned after failed authentications")
		return authRefused
	}
	if b.bans.adminIDBanned(id, l.now) {
		b.bans.refusedID.Add(1)
		c.refuseAuth(p.Version, user, codec.Banned, "client id banned by an administrator")
		return authRefused
	}
	method := p.Version == codec.V5 && p.Props.Has(codec.PropAuthMethod)
	authn := b.opts.Authenticator
	if method && authn == nil {
		b.auth.methodRefused.Add(1)
		c.refuseAuth(p.Version, user, codec.BadAuthenticationMethod, "authentication method not supported")
		return authRefused
	}
	if !method && !p.UsernameFlag {
		if b.opts.DenyAnonymous {
			b.auth.anonymousRefused.Add(1)
			b.bans.fail(ip, "", l.now) // no credentials: nothing to pin on the id
			c.refuseAuth(p.Version, user, codec.NotAuthorized, "anonymous access is off: a user name is required")
			return authRefused
		}
		if !b.hooks.Has(hooks.Connect) { // Connect hooks see anonymous CONNECTs too
			c.authDone = true
			return authProceed
		}
	}
	if authn == nil {
		c.authDone = true
		return authProceed
	}
	req := &AuthRequest{
		ClientID: id, Username: user, HasUsername: p.UsernameFlag,
		Password: append([]byte(nil), p.Password...), HasPassword: p.PasswordFlag,
		Remote: c.conn.RemoteAddr(), Version: p.Version, connect: p,
	}
	if method {
		req.Method = string(p.Props.AuthMethod)
		req.Data = append([]byte(nil), p.Props.AuthData...)
		c.flow().authMethod = req.Method
	}
	if !b.bans.beginPending(ip) {
		// --max-pending-auth-per-ip: the address has that many checks in
		// progress; a device retries, a burst of guesses is cut short.
		b.auth.busyRefused.Add(1)
		c.refuseAuth(p.Version, user, codec.ServerBusy, "too many authentications in progress from this address")
		return authRefused
	}
	af := c.flow()
	af.pendingIP = ip
	af.user, af.hasUser, af.userSet = user, p.UsernameFlag, true
	c.flow().authReq = req
	c.flow().authDeadline = l.now + int64(b.opts.AuthTimeout)
	r := c.callAuth(req)
	if r == authWait && c.flow().connectRaw == nil {
		c.flow().connectRaw = append([]byte(nil), raw...)
	}
	return r
}

// endPendingAuth ends the count beginAuth started for c's address, once.
// Loop-only.
func (c *Client) endPendingAuth() {
	if af := c.auth; af != nil && af.pendingIP != "" {
		c.l.b.bans.endPending(af.pendingIP)
		af.pendingIP = ""
	}
}

// callAuth asks the Authenticator and applies an inline verdict at once;
// otherwise the connection waits (stateAuthPending) for resumeAuth.
// Loop-only.
func (c *Client) callAuth(req *AuthRequest) authStep {
	a := &authCall{c: c}
	c.flow().call = a
	prev := c.state
	c.state = stateAuthPending
	c.l.b.opts.Authenticator.Authenticate(req, a.done)
	if a.phase.CompareAndSwap(phaseCalling, phaseAsync) {
		return authWait
	}
	c.flow().call = nil
	c.state = prev
	return c.applyVerdict(a.res)
}

// applyVerdict acts on a verdict: go on (authProceed), send AUTH 0x18 and
// wait for the client's next step (authWait), or refuse (authRefused).
// Loop-only.
func (c *Client) applyVerdict(r AuthResult) authStep {
	l := c.l
	b := l.b
	req := c.flow().authReq
	if r.Code != codec.ContinueAuthentication || c.flow().authMethod == "" {
		c.endPendingAuth()
	}
	if r.Code == codec.Success && b.bans.ipBanned(hostOf(req.Remote), l.now) {
		// The address was banned while this verdict was on its way
		// (the failures of the same burst): refused as at accept.
		b.bans.refusedIP.Add(1)
		c.flow().authReq = nil
		c.refuseAuth(c.version, c.flow().user, codec.Banned, "source address banned after failed authentications")
		return authRefused
	}
	switch {
	case r.Code == codec.Success:
		b.auth.ok.Add(1)
		c.authDone = true
		if r.Username != "" {
			c.flow().user, c.flow().hasUser = r.Username, true
		}
		c.flow().authData = r.Data
		c.flow().authReq = nil
		return authProceed
	case r.Code == codec.ContinueAuthentication && c.flow().authMethod != "":
		// [MQTT-4.12.0-2] The server answers with AUTH 0x18 and the same
		// Authentication Method.
		c.flow().authState = r.State
		a := codec.Auth{Code: codec.ContinueAuthentication}
		a.Props.Set(codec.PropAuthMethod)
		a.Props.AuthMethod = []byte(c.flow().authMethod)
		if len(r.Data) > 0 {
			a.Props.Set(codec.PropAuthData)
			a.Props.AuthData = r.Data
		}
		c.queueControl(a.Append(c.controlBuf()))
		c.state = stateAuthContinue
		return authWait
	}
	code := r.Code
	if !code.IsError() {
		code = codec.NotAuthorized // a verdict that is neither success nor a refusal
	}
	reason := r.Reason
	if reason == "" {
		reason = "authentication failed"
	}
	if code == codec.BadUserNameOrPassword || code == codec.NotAuthorized {
		b.auth.failed.Add(1)
		if b.bans.anyID(l.now) && b.bans.banned(b.bans.ids, req.ClientID, l.now) {
			b.bans.refusedID.Add(1)
			code, reason = codec.Banned, "client id banned after failed authentications"
		}
		b.bans.fail(hostOf(req.Remote), req.ClientID, l.now)
	}
	c.flow().authReq = nil
	c.refuseAuth(c.version, c.flow().user, code, reason)
	return authRefused
}

// resumeAuth applies an asynchronous verdict, on the loop. A verdict for a
// connection that closed or timed out meanwhile is dropped. Loop-only.
func (c *Client) resumeAuth(a *authCall) {
	if c.auth == nil || c.auth.call != a || c.state != stateAuthPending {
		return
	}
	c.tickClient()
	c.flow().call = nil
	c.state = stateAwaitConnect
	if c.applyVerdict(a.res) == authProceed {
		c.finishConnect()
	}
	c.l.flush()
	// Bytes the client sent after its CONNECT (or AUTH) wait in the
	// transport's buffer: have them fed now rather than at the next read.
	if c.state == stateConnected || c.state == stateAuthContinue {
		_ = c.conn.Wake()
	}
}

// finishConnect runs the copied CONNECT again, authenticated. Loop-only.
func (c *Client) finishConnect() FeedResult {
	raw := c.flow().connectRaw
	h, err := codec.Frame(raw, 0)
	if err != nil {
		panic("BUG: broker: stored CONNECT does not frame: " + err.Error())
	}
	c.state = stateAwaitConnect
	return c.handleConnect(h, raw[h.HeaderLen:h.Len()], raw)
}

// handleAuthStep processes a packet while v5 enhanced authentication is
// in progress: only AUTH and DISCONNECT may come [MQTT-3.1.2-30].
// Loop-only.
func (c *Client) handleAuthStep(h codec.FixedHeader, body []byte) FeedResult {
	l := c.l
	switch h.Type {
	case codec.AUTH:
		a := &l.pkt.auth
		if err := a.Decode(h, body, c.version); err != nil {
			c.protocolViolation(err)
			return FeedClose
		}
		if a.Code != codec.ContinueAuthentication {
			// [MQTT-4.12.0-3] The client's answer carries 0x18.
			c.protocolViolation(errProtocol("AUTH before CONNACK with a reason code other than Continue authentication", "MQTT-4.12.0-3"))
			return FeedClose
		}
		if string(a.Props.AuthMethod) != c.flow().authMethod {
			// [MQTT-4.12.0-5] The method must stay the CONNECT's.
			c.protocolViolation(errProtocol("AUTH with a different Authentication Method", "MQTT-4.12.0-5"))
			return FeedClose
		}
		req := *c.flow().authReq
		req.Step++
		req.Data = append([]byte(nil), a.Props.AuthData...)
		req.State = c.flow().authState
		req.Password = nil
		c.flow().authReq = &req
		switch c.callAuth(&req) {
		case authProceed:
			return c.finishConnect()
		case authRefused:
			return FeedClose
		}
		return FeedContinue
	case codec.DISCONNECT:
		c.close()
		return FeedClose
	}
	c.protocolViolation(errProtocol("packet other than AUTH or DISCONNECT during enhanced authentication", "MQTT-3.1.2-30"))
	return FeedClose
}

// tickClient refreshes the loop clock for work that does not come through
// Feed or Tick.
func (c *Client) tickClient() { c.l.tick() }

// authExpired refuses a connection whose authentication took longer than
// Options.AuthTimeout. Loop-only.
func (c *Client) authExpired() {
	l := c.l
	l.b.auth.timeouts.Add(1)
	c.flow().call = nil
	user := ""
	if c.flow().authReq != nil {
		user = c.flow().authReq.Username
	}
	if ok, suppressed := l.authLog.allow(l.now); ok {
		l.b.opts.Logger.Warn("authentication timed out", slog.String("client", c.id), slog.String("user", user),
			slog.String("remote", c.conn.RemoteAddr()), slog.Duration("timeout", l.b.opts.AuthTimeout), slog.Uint64("suppressed", suppressed))
	}
	c.flow().authReq = nil
	c.state = stateAwaitConnect
	c.refuseAuth(c.version, user, codec.ServerUnavailable, "authentication timed out")
}
