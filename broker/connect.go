package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/store"
)

// handleConnect processes the first packet of a connection; raw is the
// whole packet (header and body), copied when authentication has to wait.
// It runs again from that copy once an asynchronous or multi-step
// authentication has succeeded (c.authDone). Each step either goes on or
// ends the CONNECT with the FeedResult it returns.
func (c *Client) handleConnect(h codec.FixedHeader, body, raw []byte) FeedResult {
	p := &c.l.pkt.connect
	// 1. The packet itself.
	if !c.readConnect(h, body, p) {
		return FeedClose
	}
	// 2. The client identifier: assigned, refused, or claimed on the
	// loop that owns it (which may mean moving there).
	cid, assigned, res, stop := c.connectClientID(p)
	if stop {
		return res
	}
	// 3. Who the client is, and whether its will may be published.
	if res, stop := c.authorizeConnect(p, cid, raw); stop {
		return res
	}
	// 3b. In a cluster, the client id is claimed cluster-wide (which may
	// move its session here from another node: sessionmove.go).
	if res, stop := c.claimSession(p, assigned, raw); stop {
		return res
	}
	// 4. The connection's own settings.
	serverKeepAlive, ok := c.connectSettings(p)
	if !ok {
		return FeedClose
	}
	// 5. The session: resumed, taken over or new.
	s, present, ok := c.openSession(p)
	if !ok {
		return FeedClose
	}
	// 6. The will belongs to this connection (MQTT-3.1.2-8 and -10).
	if p.WillFlag {
		wp := codec.Publish{Topic: p.WillTopic, Payload: p.WillPayload, QoS: p.WillQoS, Retain: p.WillRetain}
		if p.Version == codec.V5 {
			wp.Props = p.WillProps
		}
		s.setWill(newMessage(&wp, s, c.l.now), p.WillProps.WillDelay)
		s.storeWill()
		s.replicateWill()
	}
	// 7. CONNACK, and the connection is the session's.
	c.sendConnack(p, s, present, assigned, cid, serverKeepAlive)
	c.connected(p, s, present)
	return FeedContinue
}

// readConnect decodes the CONNECT into p and applies what comes with the
// connection itself (a certificate's name); false: refused and closing.
func (c *Client) readConnect(h codec.FixedHeader, body []byte, p *codec.Connect) bool {
	if err := p.Decode(h, body); err != nil {
		c.refuseConnect(p.Version, err)
		return false
	}
	c.version = p.Version
	if ic, ok := c.conn.(IdentifiedConn); ok {
		// ok with an empty name: the certificate has no name.
		if name, ok := ic.Username(); ok {
			if name == "" {
				// A certificate without a name: never fall back to
				// the CONNECT's, which the client chose (issue 21).
				c.refuseAuth(p.Version, "", codec.NotAuthorized, "client certificate has no Common Name")
				return false
			}
			p.UsernameFlag, p.Username = true, []byte(name)
		}
	}
	if p.Version == codec.V5 && p.Props.Has(codec.PropRequestProblemInfo) {
		c.problemInfo = p.Props.RequestProblemInfo == 1
	}
	if c.l.b.closed.Load() {
		c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ServerUnavailable, Reason: "server shutting down"})
		return false
	}
	return true
}

// connectClientID applies the client identifier rules: the id to use,
// whether the broker assigned it, or (stop) the result that ends the
// CONNECT here: refused, or moved to the loop that owns the id.
func (c *Client) connectClientID(p *codec.Connect) (cid []byte, assigned bool, res FeedResult, stop bool) {
	l, b := c.l, c.l.b
	cid = p.ClientID
	switch {
	case len(cid) == 0:
		switch {
		case p.Version == codec.V31:
			// MQTT 3.1 requires 1..23 characters.
			c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ClientIdentifierNotValid, Reason: "empty client identifier", SpecID: "MQTT-3.1.3-8"})
			return nil, false, FeedClose, true
		case p.Version == codec.V311 && !p.CleanStart:
			// [MQTT-3.1.3-8] An empty client id with Clean Session 0 is refused with 0x02.
			c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ClientIdentifierNotValid, Reason: "empty client identifier requires clean session", SpecID: "MQTT-3.1.3-8"})
			return nil, false, FeedClose, true
		}
		// [MQTT-3.1.3-6] Assign a unique id, claimed on this loop. The
		// same one is kept when the CONNECT runs again after
		// authentication.
		if c.flow().assignedID == nil {
			c.flow().assignedID = c.assignClientID()
		}
		return c.flow().assignedID, true, 0, false
	case len(cid) > b.opts.MaxClientIDLength:
		// [MQTT-3.1.3-5] allows refusing ids longer than 23 bytes; ours
		// is --max-client-id-length (at least 23).
		l.counters.clientIDTooLong++
		c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ClientIdentifierNotValid, Reason: "client identifier longer than the server allows (--max-client-id-length)", SpecID: "MQTT-3.1.3-5"})
		return nil, false, FeedClose, true
	case len(cid) >= len(ServerClientIDPrefix) && string(cid[:len(ServerClientIDPrefix)]) == ServerClientIDPrefix && !c.inProcess():
		// The ids of server-side subscriptions (serversub.go): a
		// client taking one over would receive what the server
		// subscribed to, past the ACLs.
		c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ClientIdentifierNotValid, Reason: "client identifier reserved for the server (" + ServerClientIDPrefix + "...)"})
		return nil, false, FeedClose, true
	case !c.claimed:
		// The id's state lives on the loop that owns it (clientDir):
		// this one when the id is free, so a new client stays where it
		// landed; else the connection moves to the owner.
		if owner := b.dir.claim(b.dir.key(cid), l.idx); owner != l.idx {
			c.MigrateTo = int32(owner)
			c.state = stateMigrating
			return nil, false, FeedMigrate, true
		}
		c.claimed = true
		c.id = string(cid)
	}
	return cid, false, 0, false
}

// authorizeConnect authenticates the client (once: not when the CONNECT
// runs again after an asynchronous verdict) and checks its will; stop
// says it ends the CONNECT here with res (refused, or waiting).
func (c *Client) authorizeConnect(p *codec.Connect, cid, raw []byte) (res FeedResult, stop bool) {
	l, b := c.l, c.l.b
	if !c.authDone {
		switch c.beginAuth(p, cid, raw) {
		case authRefused:
			return FeedClose, true
		case authWait:
			return FeedContinue, true // the connection reads nothing until the verdict
		}
	}
	if p.WillFlag && len(p.WillProps.User) > b.opts.MaxUserProperties {
		l.counters.dropped[dropUserProperties]++
		c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ImplementationSpecificError, Reason: "will with more user properties than the server allows"})
		return FeedClose, true
	}
	if p.WillFlag && (b.isSys(p.WillTopic) || b.opts.Authorizer != nil && !b.opts.Authorizer.Allow(new(c.identity(p)), p.WillTopic, AccessWrite)) {
		// The will is published on the client's behalf later: it needs
		// the same write access as a PUBLISH now, and no client may
		// publish to $SYS, with an ACL or without.
		l.counters.aclDeniedWill++
		c.refuseAuth(p.Version, string(p.Username), codec.NotAuthorized, "will topic not authorized: "+string(p.WillTopic))
		return FeedClose, true
	}
	return 0, false
}

// connectSettings applies the connection-scoped settings: the v5 flow
// control and size limits, outbound topic aliases and the keep-alive
// (serverKeepAlive: a v5 client is told another one); false: refused.
func (c *Client) connectSettings(p *codec.Connect) (serverKeepAlive, ok bool) {
	l, b := c.l, c.l.b
	c.sendQuota = int32(b.opts.MaxInflight)
	if p.Version == codec.V5 {
		if p.Props.Has(codec.PropReceiveMaximum) {
			c.sendQuota = int32(min(p.Props.ReceiveMaximum, b.opts.MaxInflight))
		}
		if p.Props.Has(codec.PropMaximumPacketSize) {
			c.maxOut = p.Props.MaximumPacketSize
		}
		if p.Props.TopicAliasMaximum > 0 {
			c.allowOutboundAliases(p.Props.TopicAliasMaximum)
		}
	}
	c.keepAlive = p.KeepAlive
	ka, inRange := b.keepAliveFor(p.KeepAlive)
	switch {
	case inRange:
	case p.Version == codec.V5:
		// [MQTT-3.2.2-21] The client must use the Server Keep Alive.
		c.keepAlive = ka
		serverKeepAlive = true
	case p.KeepAlive == 0:
		// A 3.x client asking for no keep-alive cannot be told the
		// maximum, but nothing it must do changes: it is accepted (as
		// Mosquitto 2 does) and reaped when silent for 1.5 ×
		// --max-keepalive, so an operator's bound still holds for
		// devices (and firmware) that cannot be changed.
		c.keepAlive = ka
	default:
		// 3.x has no way to tell the client: refuse, as Mosquitto does
		// for max_keepalive, with "identifier rejected" (the only return
		// code that refuses the client's parameters).
		l.counters.keepAliveRefused++
		c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.ClientIdentifierNotValid, Reason: "keep alive outside the server's range (--min-keepalive, --max-keepalive)"})
		return false, false
	}
	return serverKeepAlive, true
}

// openSession finds the client id's session: resumed (present), taken
// over from another connection, or new; false: refused (another user's
// session, or no room for a new one).
func (c *Client) openSession(p *codec.Connect) (s *Session, present, ok bool) {
	l, b := c.l, c.l.b
	expiry := uint32(0)
	if p.Version == codec.V5 {
		if p.Props.Has(codec.PropSessionExpiry) {
			expiry = min(p.Props.SessionExpiry, b.opts.MaxSessionExpiry)
		}
	} else if !p.CleanStart {
		expiry = min(store.ExpiryNever, b.opts.MaxSessionExpiry)
	}

	id := c.id // string(cid), made once by the claim
	s = l.sessions[id]
	if s != nil && s.c == nil && s.expiry != store.ExpiryNever && l.now-s.discAt >= int64(s.expiry)*int64(time.Second) {
		// [MQTT-4.1.0-2] The session expired and the next Tick has not
		// discarded it yet: it must not be resumed.
		l.counters.sessionsExpired++
		s.sessionEnding(hooks.SessionExpired)
		s.end(true)
		s = nil
	}
	if s != nil && b.opts.Authenticator != nil && !s.ownedBy(c.identity(p)) {
		// A session belongs to the identity that created it: another
		// user naming its client id may neither take its connection over
		// nor resume or discard it (its queued messages, its will).
		l.counters.sessionOwnerRefused++
		c.refuseAuth(p.Version, string(p.Username), codec.NotAuthorized, "client id in use by another user's session")
		return nil, false, false
	}
	if s != nil && s.c != nil {
		s.takeOver(p.CleanStart)
	}
	if s != nil && p.CleanStart {
		s.sessionEnding(hooks.SessionTakenOut)
		s.end(false)
		s = nil
	}
	if s != nil {
		present = true
		s.cancelWill() // [MQTT-3.1.3-9] reconnected within the will delay
		l.unwait(s)
		c.claimed = false // the session holds the id's reference
		b.dir.release(b.dir.keyString(id), l.idx)
		if b.hooks.Has(hooks.SessionResumed) {
			b.hooks.SessionResumed(id)
		}
	} else {
		if len(l.sessions) >= l.sessionsShare {
			// --max-sessions: this loop holds its share of sessions
			// (connected and offline); no new one until some end.
			l.counters.sessionsRefused++
			c.refuseConnect(p.Version, &codec.ReasonError{Code: codec.QuotaExceeded, Reason: "too many sessions (--max-sessions)"})
			return nil, false, false
		}
		s = newSession(l, id)
		l.sessions[id] = s
		c.claimed = false // the connection's reference is the session's now
		if b.opts.Authenticator != nil {
			s.setOwner(c.identity(p))
		}
		if b.hooks.Has(hooks.SessionCreated) {
			b.hooks.SessionCreated(id)
		}
	}
	s.version = p.Version
	s.expiry = expiry
	s.syncDurable()
	if s.extras != nil || b.opts.Authorizer != nil || b.hooks != nil || b.opts.SysClientEvents || b.opts.KeepIdentity {
		s.setIdentity(c.identity(p))
	}
	s.storeSession()
	return s, present, true
}

// takeOver ends the connection that holds s for a new one
// [MQTT-3.1.4-3]: v5 is told 0x8E. The old connection closed abnormally:
// its will goes out unless a delay gives the new connection the chance to
// cancel it (a clean start does not).
func (s *Session) takeOver(cleanStart bool) {
	old := s.c
	s.c = nil
	s.l.b.online.Add(-1)
	old.s = nil
	s.l.counters.takeovers++
	old.willOnClose = false
	if old.version == codec.V5 {
		old.disconnect(codec.SessionTakenOver, "session taken over")
	} else {
		old.close()
	}
	if s.will != nil && (s.will.delay == 0 || cleanStart) {
		s.publishWill()
	}
}

// sendConnack queues the successful CONNACK with what a v5 client is told
// about the server and its session.
func (c *Client) sendConnack(p *codec.Connect, s *Session, present, assigned bool, cid []byte, serverKeepAlive bool) {
	b := c.l.b
	ack := codec.Connack{SessionPresent: present, Code: 0}
	if p.Version == codec.V5 {
		pr := &ack.Props
		pr.Set(codec.PropReceiveMaximum)
		pr.ReceiveMaximum = b.opts.MaxInflight
		pr.Set(codec.PropMaximumPacketSize)
		pr.MaximumPacketSize = uint32(b.opts.MaxPacketSize)
		pr.Set(codec.PropTopicAliasMaximum)
		pr.TopicAliasMaximum = b.opts.TopicAliasMaximum
		if p.Props.Has(codec.PropSessionExpiry) && s.expiry != p.Props.SessionExpiry {
			pr.Set(codec.PropSessionExpiry)
			pr.SessionExpiry = s.expiry
		}
		if assigned {
			// [MQTT-3.2.2-16] Return the Assigned Client Identifier.
			pr.Set(codec.PropAssignedClientID)
			pr.AssignedClientID = cid
		}
		if c.authMethod() != "" {
			// Enhanced authentication ends with the method (and any
			// final data) in the CONNACK [MQTT-4.12.0-1].
			pr.Set(codec.PropAuthMethod)
			pr.AuthMethod = []byte(c.flow().authMethod)
			if len(c.flow().authData) > 0 {
				pr.Set(codec.PropAuthData)
				pr.AuthData = c.flow().authData
			}
		}
		if serverKeepAlive {
			pr.Set(codec.PropServerKeepAlive)
			pr.ServerKeepAlive = c.keepAlive
		}
		if ri := b.opts.ResponseInformation; ri != "" && p.Props.RequestResponseInfo == 1 {
			// [MQTT-3.1.2-28/-29] Response Information only when asked
			// for: the basis of the client's response topics, its id
			// in place of %c (so an ACL pattern can give each client
			// its own).
			pr.Set(codec.PropResponseInfo)
			pr.ResponseInfo = []byte(strings.ReplaceAll(ri, "%c", s.id))
		}
	}
	c.queueControl(ack.Append(c.controlBuf(), p.Version))
}

// connected makes c the connection of s once its CONNACK is queued.
func (c *Client) connected(p *codec.Connect, s *Session, present bool) {
	l, b := c.l, c.l.b
	if af := c.auth; af != nil {
		if af.authMethod == "" {
			c.auth = nil // no re-authentication possible (MQTT-4.12.0-7): forget it all
		} else {
			af.connectRaw, af.authData, af.authState, af.assignedID = nil, nil, nil, nil
		}
	}
	c.state = stateConnected
	c.lastSeen = l.now // keep-alive counts from here, not from the connection's opening
	l.counters.connects++
	s.attach(c)
	if b.hooks.Has(hooks.Connected) {
		b.hooks.Connected(c.hookClient(), present)
	}
	if b.opts.Peers != nil {
		b.opts.Peers.Connected(s.id)
	}
	if len(b.opts.AutoSubscribe) > 0 {
		c.autoSubscribe(p)
	}
	if b.opts.SysClientEvents {
		c.sysClientEvent("connected", func(j []byte) []byte {
			j = append(j, `,"proto_ver":`...)
			j = strconv.AppendInt(j, int64(c.version), 10)
			j = append(j, `,"keepalive":`...)
			j = strconv.AppendInt(j, int64(c.keepAlive), 10)
			j = append(j, `,"clean_start":`...)
			j = strconv.AppendBool(j, p.CleanStart)
			j = append(j, `,"connected_at":`...)
			return strconv.AppendInt(j, l.now/int64(time.Millisecond), 10)
		})
	}
	if lg := b.opts.Logger; lg.Enabled(context.Background(), slog.LevelDebug) {
		lg.Debug("client connected", slog.String("client", s.id), slog.String("remote", c.conn.RemoteAddr()),
			slog.String("username", string(p.Username)), slog.Int("version", int(p.Version)))
	}
}

// keepAliveFor checks a requested keep-alive against --min-keepalive and
// --max-keepalive; when it is outside, it returns the value the server
// wants instead (v5 Server Keep Alive) and false. 0 (no keep-alive) is
// outside a maximum, not below a minimum.
func (b *Broker) keepAliveFor(ka uint16) (uint16, bool) {
	mx, mn := b.opts.MaxKeepAlive, b.opts.MinKeepAlive
	switch {
	case mx > 0 && (ka == 0 || ka > mx):
		return mx, false
	case mn > 0 && ka != 0 && ka < mn:
		return mn, false
	}
	return ka, true
}

// refuseConnect answers a refused CONNECT with a CONNACK where the protocol
// has a code for the failure, and closes (MQTT-3.2.2-6/-7, MQTT-3.1.4-1).
func (c *Client) refuseConnect(v codec.Version, err error) {
	re := codec.AsReasonError(err)
	reason, spec := err.Error(), ""
	if re != nil {
		reason, spec = re.Reason, re.SpecID
	}
	c.logClose("CONNECT refused", slog.String("rule", spec), slog.String("reason", reason))
	c.refuse(v, re)
}

// refuseAuth refuses a CONNECT for an authentication or authorization
// reason: one log line that names the client, user and peer.
func (c *Client) refuseAuth(v codec.Version, user string, code codec.ReasonCode, reason string) {
	if ok, suppressed := c.l.authLog.allow(c.l.now); ok {
		c.l.b.opts.Logger.Info("CONNECT refused", slog.String("client", c.id), slog.String("user", user),
			slog.String("remote", c.conn.RemoteAddr()), slog.String("code", fmt.Sprintf("0x%02x", byte(code))),
			slog.String("reason", reason), slog.Uint64("suppressed", suppressed))
	}
	c.refuse(v, &codec.ReasonError{Code: code, Reason: reason})
}

// refuse sends the refusing CONNACK where the version has a code for re
// and closes.
func (c *Client) refuse(v codec.Version, re *codec.ReasonError) {
	c.l.counters.connectsRefused++
	if re == nil {
		c.l.counters.refusedCode[codec.UnspecifiedError]++
		c.close()
		return
	}
	c.l.counters.refusedCode[re.Code]++
	switch v {
	case codec.V5:
		ack := codec.Connack{Code: byte(re.Code)}
		if c.problemInfo && re.Reason != "" {
			ack.Props.Set(codec.PropReasonString)
			ack.Props.ReasonString = []byte(re.Reason)
		}
		c.queueControl(ack.Append(c.controlBuf(), codec.V5))
	case codec.V31, codec.V311:
		if code, ok := re.ConnackV3(); ok {
			ack := codec.Connack{Code: code}
			c.queueControl(ack.Append(c.controlBuf(), v))
		}
	default:
		if re.Code == codec.UnsupportedProtocolVersion {
			// [MQTT-3.1.2-2] An unknown level gets 0x01 in the 3.1.1 form.
			ack := codec.Connack{Code: codec.ConnRefusedProtocolVersion}
			c.queueControl(ack.Append(c.controlBuf(), codec.V311))
		}
	}
	c.close()
}

// assignClientID returns a fresh random id claimed on c's loop.
func (c *Client) assignClientID() []byte {
	var raw [12]byte
	d := c.l.b.dir
	for {
		_, _ = rand.Read(raw[:])
		id := "auto-" + hex.EncodeToString(raw[:])
		k := d.keyString(id)
		if d.claim(k, c.l.idx) == c.l.idx {
			if _, busy := c.l.sessions[id]; !busy { // 96 random bits: never, in practice
				c.claimed = true
				c.id = id
				return []byte(id)
			}
			d.release(k, c.l.idx)
		}
	}
}
