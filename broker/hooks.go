package broker

import (
	"errors"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// Where the broker calls hooks (package hooks). Every call is behind
// Registry.Has, so an event nobody listens to costs a branch. The values
// handed to a hook (Client, Message) are the loop's scratch (Loop.hook),
// so calling one allocates nothing but what the hook does.

// hookScratch is a loop's reusable hook arguments. Loop-only.
type hookScratch struct {
	client hooks.Client
	msg    hooks.Message
	sub    hooks.Subscription
}

// hookClient describes c to hooks, in the loop's scratch. Loop-only.
func (c *Client) hookClient() *hooks.Client {
	hc := c.hookClientNoAddr()
	hc.Remote = c.conn.RemoteAddr()
	if lc, ok := c.conn.(ListenerConn); ok {
		hc.Listener = lc.Listener()
	}
	return hc
}

// hookClientNoAddr is hookClient without the remote address, which a
// transport may have to format (an allocation): for the per-message
// events. Loop-only.
func (c *Client) hookClientNoAddr() *hooks.Client {
	hc := &c.l.hook.client
	*hc = hooks.Client{ID: c.id, Version: c.version}
	switch {
	case c.s != nil && c.s.extras != nil && c.s.extras.identKnown:
		hc.Username, hc.HasUsername = c.s.extras.ident.Username, c.s.extras.ident.HasUsername
	case c.auth != nil && c.auth.userSet:
		hc.Username, hc.HasUsername = c.auth.user, c.auth.hasUser
	}
	return hc
}

// hookMessage describes a message to hooks, in the loop's scratch.
// Loop-only.
func (l *Loop) hookMessage(topic, payload []byte, qos byte, retain bool, props *codec.Properties, origin hooks.OriginKind, c *hooks.Client) *hooks.Message {
	hm := &l.hook.msg
	*hm = hooks.Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain, Props: props, Origin: origin, Client: c}
	return hm
}

// interceptPublish runs the Publish hooks on a client's PUBLISH p: false
// drops it (err says why); otherwise p may have been changed to what the
// hooks returned. The QoS and retain flag the message is routed with are
// returned apart: the publisher's own acknowledgement follows the packet
// it sent. Loop-only.
func (c *Client) interceptPublish(p *codec.Publish) (qos byte, retain bool, err error) {
	l := c.l
	var props *codec.Properties
	if c.version == codec.V5 {
		props = &p.Props
	}
	hm := l.hookMessage(p.Topic, p.Payload, p.QoS, p.Retain, props, hooks.FromClient, c.hookClientNoAddr())
	out, err := l.b.hooks.Publish(hm)
	if err != nil {
		return 0, false, err
	}
	if out == nil {
		return p.QoS, p.Retain, nil
	}
	if err := checkHookMessage(out); err != nil {
		return 0, false, err
	}
	p.Topic, p.Payload = out.Topic, out.Payload
	if out.Props != nil && out.Props != props {
		p.Props = *out.Props
	}
	return out.QoS, out.Retain, nil
}

// interceptMessage runs the Publish hooks on a message the broker itself
// publishes (Broker.Publish, a will): the message to route (m, or a new
// one the hooks made, m then released), or nil: dropped. Loop-only.
func (l *Loop) interceptMessage(m *Message, origin hooks.OriginKind, c *hooks.Client) *Message {
	hm := l.hookMessage(m.Topic, m.Payload, m.QoS, m.Retain, m.Props, origin, c)
	out, err := l.b.hooks.Publish(hm)
	if err == nil && out != nil {
		err = checkHookMessage(out)
	}
	if err != nil {
		l.counters.dropped[dropHook]++
		m.release()
		return nil
	}
	if out == nil {
		return m
	}
	p := codec.Publish{Topic: out.Topic, Payload: out.Payload, QoS: out.QoS, Retain: out.Retain}
	if out.Props != nil {
		p.Props = *out.Props
	}
	n := newMessage(&p, m.origin, m.Created)
	n.ExpireAt = m.ExpireAt
	m.release()
	return n
}

// errHookMessage refuses what a hook made that cannot be routed.
var errHookMessage = errors.New("broker: a publish hook returned a message with an invalid topic or QoS")

func checkHookMessage(m *hooks.Message) error {
	if m.QoS > 2 || codec.ValidateTopicName(m.Topic) != nil {
		return errHookMessage
	}
	return nil
}

// hookSubscribe runs the Subscribe hooks on one filter of a SUBSCRIBE,
// which they may change (a lower QoS, another filter). Loop-only.
func (c *Client) hookSubscribe(sub *codec.Subscription) error {
	hs := &c.l.hook.sub
	*hs = hooks.Subscription{Filter: sub.Filter, QoS: sub.QoS}
	if err := c.l.b.hooks.Subscribe(c.hookClient(), hs); err != nil {
		return err
	}
	sub.Filter = hs.Filter
	sub.QoS = min(hs.QoS, sub.QoS) // a hook may lower the QoS, never raise it
	return nil
}

// sessionEnding tells the SessionTerminated hooks s ends, and why.
// Loop-only.
func (s *Session) sessionEnding(why hooks.SessionEnd) {
	if s.l.b.hooks.Has(hooks.SessionTerminated) {
		s.l.b.hooks.SessionTerminated(s.id, why)
	}
}

// hookAuthenticator runs the Connect hooks (on the registry's pool) after
// the configured Authenticator has accepted a CONNECT, or on their own
// for anonymous CONNECTs and when there is no Authenticator: they go
// through the broker's asynchronous verdict path, with its timeout.
type hookAuthenticator struct {
	next  Authenticator
	hooks *hooks.Registry
}

func (h *hookAuthenticator) Authenticate(req *AuthRequest, done func(AuthResult)) {
	if req.Step == 0 {
		// The CONNECT is the loop's scratch: copied now, for the hooks
		// that run later (and for every step of an enhanced exchange).
		req.connect = hooks.CloneConnect(req.connect)
	}
	if h.next == nil || (!req.HasUsername && req.Method == "") {
		h.connect(req, AuthResult{Code: codec.Success}, done)
		return
	}
	h.next.Authenticate(req, func(r AuthResult) {
		if r.Code != codec.Success {
			done(r)
			return
		}
		h.connect(req, r, done)
	})
}

// connect asks the Connect hooks about an authenticated CONNECT and calls
// done with ok (the authenticator's verdict) or the hooks' refusal.
func (h *hookAuthenticator) connect(req *AuthRequest, ok AuthResult, done func(AuthResult)) {
	c := &hooks.Client{ID: req.ClientID, Username: req.Username, HasUsername: req.HasUsername, Remote: req.Remote, Version: req.Version}
	if ok.Username != "" {
		c.Username, c.HasUsername = ok.Username, true
	}
	h.hooks.Connect(c, req.connect, func(err error) {
		if err == nil {
			done(ok)
			return
		}
		r := AuthResult{Code: codec.NotAuthorized, Reason: err.Error()}
		if re := codec.AsReasonError(err); re != nil {
			r.Code, r.Reason = re.Code, re.Reason
		}
		done(r)
	})
}

// originOf says where m comes from, for hooks.
func originOf(m *Message) hooks.OriginKind {
	if m.origin != nil {
		return hooks.FromClient
	}
	return hooks.FromServer
}

// hookTo describes the session s delivers to: its connection's client,
// or only its id when it has none. Loop-only.
func (s *Session) hookTo() *hooks.Client {
	if s.c != nil {
		return s.c.hookClientNoAddr()
	}
	hc := &s.l.hook.client
	*hc = hooks.Client{ID: s.id}
	return hc
}

// dropDelivery counts a delivery to s dropped for r, and tells the
// Dropped hooks. Loop-only.
func (l *Loop) dropDelivery(r dropReason, s *Session, m *Message) {
	l.counters.dropped[r]++
	if l.hooked.Has(hooks.Dropped) && s != nil {
		l.b.hooks.Dropped(s.hookTo(), l.hookMessage(m.Topic, m.Payload, m.QoS, m.Retain, m.Props, originOf(m), nil), dropLabels[r])
	}
}

// forward runs the Forward hooks on one delivery to c: false drops it (as
// if sent); otherwise om.m may now be this subscriber's own copy. For QoS
// 0 the copy (made) is the caller's to release once written; for QoS 1/2
// the session's queue holds it, for resends too. Loop-only.
func (c *Client) forward(om *outMsg) (ok bool, made *Message) {
	l := c.l
	m := om.m
	hm := l.hookMessage(m.Topic, m.Payload, om.qos, om.retain, m.Props, originOf(m), nil)
	out, err := l.b.hooks.Forward(c.hookClientNoAddr(), hm)
	if err == nil && out != nil {
		err = checkHookMessage(out)
	}
	if err != nil {
		l.dropDelivery(dropHook, c.s, m)
		if om.qos > 0 && c.s != nil {
			c.s.completeOutbound(om.pid)
		}
		return false, nil
	}
	if out == nil {
		om.forwarded = om.qos > 0
		return true, nil
	}
	p := codec.Publish{Topic: out.Topic, Payload: out.Payload, QoS: m.QoS, Retain: m.Retain}
	if out.Props != nil {
		p.Props = *out.Props
	}
	n := newMessage(&p, m.origin, m.Created)
	n.ExpireAt = m.ExpireAt
	om.m = n
	if om.qos > 0 {
		om.forwarded = true
		m.release() // the queue's reference moves to the copy
		return true, nil
	}
	return true, n
}
