package broker

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

// Server-side subscriptions (Broker.Subscribe). Each is an ordinary MQTT 5
// session whose connection is in the process: a subConn (a Conn with no
// socket) on the loop that owns its client id. The broker writes PUBLISH
// packets to it as to any connection; subConn.Writev decodes them into
// Delivered values and queues them for a goroutine of the subscription,
// which calls the handler. The handler's done feeds the PUBACK (PUBREC,
// then PUBCOMP once PUBREL comes) back into the Client on its loop
// (through the inbox). So QoS, the inflight window, the session queue,
// its bounds, expiry, flow control towards publishers and persistence
// are the broker's own, unchanged:
//
//   - The CONNECT's Receive Maximum is the subscription's Window: at most
//     Window QoS 1/2 messages are outstanding (handed to the handler, or
//     waiting for it, and not done; the handler is never handed more than
//     Window at once); beyond it they wait in the session
//     queue (Options.MaxQueued, MaxQueuedBytes), stored when the
//     subscription is Persistent.
//   - While Window messages are outstanding the connection reports a full
//     outbound buffer, so the broker drops QoS 0 messages for it and
//     counts them (slow_consumer), and queues QoS 1/2 ones. QoS 0 messages
//     already on their way are dropped by subConn once Window are
//     outstanding (ServerSubscription.Dropped).
//   - The handler runs on the subscription's goroutine, never on a loop:
//     a slow handler slows only its own subscription.
//
// Loop-only fields of subConn are touched on the owning loop; the queue
// and the acknowledgements to feed are behind mu.

// ServerClientIDPrefix starts the client ids of server-side subscriptions
// ("$mcutie/sub/" + name). A network client may not use such an id: its
// CONNECT is refused (0x85, 3.x 0x02).
const ServerClientIDPrefix = "$mcutie/"

// DefaultWindow is SubscribeOptions.Window's default.
const DefaultWindow = 64

// SubscribeOptions configure a server-side subscription.
type SubscribeOptions struct {
	// QoS is the maximum QoS granted: a message is delivered with the
	// lower of its own QoS and this.
	QoS byte
	// Window is how many messages may be outstanding (handed to the
	// handler and not done) at once; default DefaultWindow, at most
	// 65535.
	Window int
	// Persistent keeps the subscription's session, its filter and the QoS
	// 1/2 messages it has not processed across restarts (with a Store)
	// and while no handler is attached: Subscribe again with the same
	// Name to take them up. Unsubscribe ends it.
	Persistent bool
	// Name names the session (client id ServerClientIDPrefix+"sub/"+Name);
	// required with Persistent, random otherwise. A second Subscribe with
	// a live Name takes the session over: the first subscription ends.
	Name string
	// CheckACL has the Authorizer decide the subscription and every
	// delivery as the identity Username (anonymous when empty), as for a
	// client. By default the ACLs are bypassed (admin level).
	CheckACL bool
	Username string
	// Logger receives a line when the handler panics; default the
	// broker's.
	Logger *slog.Logger
}

// Delivered is a message a server-side subscription receives.
type Delivered struct {
	Publication
	// Dup: the message may have been handed out before (resent after a
	// restart of a Persistent subscription).
	Dup bool
}

// ServerSubscription is a live server-side subscription. Its methods are
// safe for concurrent use.
type ServerSubscription struct {
	b       *Broker
	id      string
	filter  string
	opts    SubscribeOptions
	handler func(m *Delivered, done func())
	conn    *subConn

	slots    chan struct{} // one per message handed to the handler and not done (Window)
	dropped  atomic.Uint64 // QoS 0 messages dropped beyond the window
	panics   atomic.Uint64
	stopOnce sync.Once
	stop     chan struct{} // closed when the connection ends
	done     chan struct{} // closed when the goroutine has returned
	errMu    sync.Mutex
	err      error
}

// ErrSubscriptionEnded is Err's value for a subscription that ended by
// Unsubscribe.
var ErrSubscriptionEnded = errors.New("broker: server-side subscription ended")

// subscribeWait bounds how long Subscribe waits for the loop's CONNACK
// and SUBACK (the SUBACK waits for the store).
const subscribeWait = 30 * time.Second

// Subscribe subscribes handler to filter from the server side. handler is
// called for each message, one at a time, on a goroutine of the
// subscription; it must call done once the message is processed (it may
// do so later, from any goroutine: up to opts.Window messages may be
// outstanding). For QoS 1/2 messages done is the acknowledgement: a
// message not done before a restart is delivered again to a Persistent
// subscription. A handler that panics is recovered, logged and its
// message counted as done. The subscription ends with Unsubscribe, with
// Shutdown (then Done is closed and a Persistent subscription's session
// keeps what it has not processed), or when a second Subscribe takes its
// Name over. Safe for concurrent use; must not be called on a loop.
func (b *Broker) Subscribe(filter string, opts SubscribeOptions, handler func(m *Delivered, done func())) (*ServerSubscription, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if handler == nil {
		return nil, errors.New("broker: Subscribe needs a handler")
	}
	if err := codec.ValidateTopicFilter([]byte(filter)); err != nil {
		return nil, err
	}
	if opts.QoS > 2 {
		return nil, errors.New("broker: QoS must be 0, 1 or 2")
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	opts.Window = min(opts.Window, 65535)
	if opts.Name == "" {
		if opts.Persistent {
			return nil, errors.New("broker: a persistent subscription needs a Name")
		}
		opts.Name = NewNodeID()
	}
	if opts.Logger == nil {
		opts.Logger = b.opts.Logger
	}
	sub := &ServerSubscription{
		b: b, id: ServerClientIDPrefix + "sub/" + opts.Name, filter: filter, opts: opts, handler: handler,
		stop: make(chan struct{}), done: make(chan struct{}), slots: make(chan struct{}, opts.Window),
	}
	sc := newSubConn(b, sub, sub.id, !opts.CheckACL, opts.Window)
	sub.conn = sc

	cp := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, CleanStart: !opts.Persistent, ClientID: []byte(sub.id)}
	cp.Props.Set(codec.PropReceiveMaximum)
	cp.Props.ReceiveMaximum = uint16(opts.Window)
	if opts.Persistent {
		cp.Props.Set(codec.PropSessionExpiry)
		cp.Props.SessionExpiry = store.ExpiryNever
	}
	if opts.CheckACL && opts.Username != "" {
		cp.UsernameFlag, cp.Username = true, []byte(opts.Username)
	}
	sp := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(filter), QoS: opts.QoS}}}
	connectRaw, subscribeRaw := cp.Append(nil), sp.Append(nil, codec.V5)

	l := b.loops[b.homeLoop(cp.ClientID)]
	sc.loop.Store(l)
	go sub.dispatch()
	sc.run(func() { sc.open(l, connectRaw, subscribeRaw, 0) })

	timeout := time.NewTimer(subscribeWait)
	defer timeout.Stop()
	fail := func(err error) (*ServerSubscription, error) {
		sub.Unsubscribe()
		return nil, err
	}
	select {
	case code := <-sc.connack:
		if code != 0 {
			return fail(&codec.ReasonError{Code: codec.ReasonCode(code), Reason: "server-side subscription refused at CONNECT"})
		}
	case <-sub.stop:
		return fail(ErrClosed)
	case <-timeout.C:
		return fail(errors.New("broker: server-side subscription: no CONNACK from its loop"))
	}
	select {
	case code := <-sc.suback:
		if code.IsError() {
			return fail(&codec.ReasonError{Code: code, Reason: "server-side subscription refused"})
		}
	case <-sub.stop:
		return fail(ErrClosed)
	case <-timeout.C:
		return fail(errors.New("broker: server-side subscription: no SUBACK from its loop"))
	}
	return sub, nil
}

// Unsubscribe ends the subscription: its filter and session are removed
// (with what a Persistent one had queued), no handler call starts after
// it returns, and Done is closed once a call in progress has returned.
// Calling it again does nothing.
func (s *ServerSubscription) Unsubscribe() {
	sc := s.conn
	s.end(ErrSubscriptionEnded)
	d := codec.Disconnect{Code: codec.NormalDisconnection}
	if s.opts.Persistent {
		d.Props.Set(codec.PropSessionExpiry) // 0: the session ends with the connection
	}
	raw := d.Append(nil, codec.V5)
	sc.run(func() {
		if c := sc.c; c != nil && c.state == stateConnected {
			sc.feed(raw)
		} else if c != nil {
			sc.Close()
		}
	})
}

// Unsubscribe is sub.Unsubscribe.
func (b *Broker) Unsubscribe(sub *ServerSubscription) { sub.Unsubscribe() }

// Done is closed when the subscription has ended and its handler has
// returned.
func (s *ServerSubscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended (nil while it runs).
func (s *ServerSubscription) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// ClientID is the client id of the subscription's session.
func (s *ServerSubscription) ClientID() string { return s.id }

// Filter is the subscribed filter.
func (s *ServerSubscription) Filter() string { return s.filter }

// Dropped counts the QoS 0 messages dropped because Window messages were
// outstanding when they came (the broker counts those it did not even
// send as slow_consumer drops).
func (s *ServerSubscription) Dropped() uint64 { return s.dropped.Load() }

// Outstanding is the number of messages handed to the handler and not
// done: never more than Window.
func (s *ServerSubscription) Outstanding() int { return len(s.slots) }

// end stops the subscription's goroutine (after the call in progress).
func (s *ServerSubscription) end(err error) {
	s.stopOnce.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		close(s.stop)
	})
}

// dispatch calls the handler for each delivery, in order, until the
// subscription ends; deliveries not handed out then are dropped (QoS 1/2
// stay in the session: a Persistent subscription gets them again).
func (s *ServerSubscription) dispatch() {
	defer close(s.done)
	sc := s.conn
	var batch []subItem
	for {
		select {
		case <-sc.sig:
		case <-s.stop:
			return
		}
		for {
			sc.mu.Lock()
			batch, sc.queue = sc.queue, batch[:0]
			sc.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i := range batch {
				select {
				case <-s.stop:
					return
				default:
				}
				select {
				case s.slots <- struct{}{}: // a QoS 0 message may have come beside Window QoS 1/2 ones: it waits here
				case <-s.stop:
					return
				}
				s.call(batch[i])
				batch[i] = subItem{}
			}
		}
	}
}

// call runs the handler on one delivery.
func (s *ServerSubscription) call(it subItem) {
	var once atomic.Bool
	done := func() {
		if once.CompareAndSwap(false, true) {
			<-s.slots
			s.conn.done(it)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.opts.Logger.Error("server-side subscription handler panicked", slog.String("subscription", s.id),
				slog.String("topic", it.d.Topic), slog.Any("panic", r))
			done()
		}
	}()
	s.handler(it.d, done)
}

// subItem is one delivery and what acknowledges it.
type subItem struct {
	d   *Delivered
	qos byte
	pid uint16
}

// subAck is an acknowledgement to feed into the Client.
type subAck struct {
	typ codec.Type
	pid uint16
}

// connOwner is what a subConn serves: a server-side subscription, or an
// in-process client (inproc.go).
type connOwner interface {
	// end: the connection ended, or cannot run. Safe for concurrent use.
	end(err error)
	// control handles a packet the broker sent other than PUBLISH and
	// PUBREL. Loop-only.
	control(sc *subConn, h codec.FixedHeader, body []byte)
	// dropQoS0 counts a QoS 0 message dropped beyond the window.
	dropQoS0()
}

// subConn is the in-process connection of a server-side subscription or
// of an in-process client (a Conn with no socket).
type subConn struct {
	owner  connOwner
	id     string               // the client id (empty: the broker assigns one)
	admin  bool                 // the ACLs are bypassed
	loop   atomic.Pointer[Loop] // the loop that owns the client id
	window int32
	full   int // what OutboundBuffered reports while the window is full

	// Loop-only.
	c    *Client
	rbuf []byte          // written bytes not yet parsed (a partial packet)
	wbuf []byte          // acknowledgements being fed
	rec  map[uint16]bool // QoS 2 ids delivered and not yet released: true once PUBREC is fed

	outstanding atomic.Int32
	stalled     atomic.Bool // OutboundBuffered reported full: a done must pump the session
	closed      atomic.Bool

	mu        sync.Mutex
	queue     []subItem // decoded, waiting for the handler
	acks      []subAck  // waiting to be fed
	acksSpare []subAck
	ackPosted bool
	sig       chan struct{}

	connack chan byte
	suback  chan codec.ReasonCode
}

var _ Conn = (*subConn)(nil)

// newSubConn makes the connection of owner: client id id, the ACLs
// bypassed when admin, at most window QoS 1/2 messages outstanding.
func newSubConn(b *Broker, owner connOwner, id string, admin bool, window int) *subConn {
	return &subConn{
		owner: owner, id: id, admin: admin, window: int32(window), full: b.opts.MaxOutboundBytes + 1,
		sig: make(chan struct{}, 1), connack: make(chan byte, 1), suback: make(chan codec.ReasonCode, 1),
		rec: map[uint16]bool{},
	}
}

// control handles a server-side subscription's CONNACK and SUBACK.
// Loop-only.
func (s *ServerSubscription) control(sc *subConn, h codec.FixedHeader, body []byte) {
	switch h.Type {
	case codec.CONNACK:
		var ack codec.Connack
		if ack.Decode(h, body, codec.V5) == nil {
			select {
			case sc.connack <- ack.Code:
			default:
			}
		}
	case codec.SUBACK:
		var ack codec.Suback
		if ack.Decode(h, body, codec.V5) == nil && len(ack.Codes) > 0 {
			select {
			case sc.suback <- ack.Codes[0]:
			default:
			}
		}
	}
}

func (s *ServerSubscription) dropQoS0() { s.dropped.Add(1) }

// inProcess reports whether c is a server-side subscription's.
func (c *Client) inProcess() bool {
	_, ok := c.conn.(*subConn)
	return ok
}

// run runs fn on the owning loop, through its inbox (or its executor when
// the inbox stays full). Safe for concurrent use.
func (sc *subConn) run(fn func()) {
	l := sc.loop.Load()
	if !l.post(inboxItem{kind: itemFunc, fn: fn}, true) {
		if err := l.exec(fn); err != nil {
			sc.owner.end(ErrClosed)
		}
	}
}

// open registers the connection on l and feeds it the CONNECT, then the
// SUBSCRIBE (if any). A client id owned by another loop (a network client had it)
// moves it there, as the transport would. Loop-only (l).
func (sc *subConn) open(l *Loop, connectRaw, subscribeRaw []byte, moves int) {
	if sc.closed.Load() {
		return
	}
	if s := l.sessions[sc.id]; s != nil && sc.admin {
		s.extra().admin = true // before the resumed session's messages are sent
	}
	c := l.NewClient(sc)
	sc.c = c
	c.authDone = true // the server does not authenticate itself
	_, res := c.Feed(connectRaw)
	switch {
	case res == FeedMigrate && moves < len(l.b.loops):
		to := l.b.loops[c.MigrateTo]
		sc.c = nil
		c.Closed()
		sc.loop.Store(to)
		sc.run(func() { sc.open(to, connectRaw, subscribeRaw, moves+1) })
		return
	case res != FeedContinue || c.state != stateConnected:
		select {
		case sc.connack <- byte(codec.ServerUnavailable):
		default: // the CONNACK said why
		}
		sc.Close()
		return
	}
	c.keepAlive = 0 // nothing to detect: the connection cannot go silent
	if sc.admin {
		c.s.extra().admin = true
	}
	if subscribeRaw != nil {
		sc.feed(subscribeRaw)
	}
}

// feed hands raw to the Client. Loop-only.
func (sc *subConn) feed(raw []byte) {
	c := sc.c
	if c == nil || sc.closed.Load() {
		return
	}
	if _, res := c.Feed(raw); res == FeedClose {
		sc.Close()
	}
}

// Writev decodes what the broker writes. Loop-only.
func (sc *subConn) Writev(bufs [][]byte) (int, error) {
	n := 0
	for _, b := range bufs {
		sc.rbuf = append(sc.rbuf, b...)
		n += len(b)
	}
	off := 0
	for off < len(sc.rbuf) {
		h, err := codec.Frame(sc.rbuf[off:], codec.MaxPacketSize)
		if err != nil {
			break // a partial packet (never, in practice: writes are whole packets)
		}
		sc.packet(h, sc.rbuf[off+h.HeaderLen:off+h.Len()])
		off += h.Len()
	}
	sc.rbuf = append(sc.rbuf[:0], sc.rbuf[off:]...)
	return n, nil
}

// packet handles one packet the broker sent. Loop-only.
func (sc *subConn) packet(h codec.FixedHeader, body []byte) {
	switch h.Type {
	case codec.PUBLISH:
		var p codec.Publish
		if p.Decode(h, body, codec.V5) == nil {
			sc.deliver(&p)
		}
	case codec.PUBREL:
		var a codec.Ack
		if a.Decode(h, body, codec.V5) == nil {
			delete(sc.rec, a.PacketID)
			sc.ack(subAck{typ: codec.PUBCOMP, pid: a.PacketID})
		}
	default:
		sc.owner.control(sc, h, body)
	}
}

// deliver queues one PUBLISH for the handler. Loop-only.
func (sc *subConn) deliver(p *codec.Publish) {
	if p.QoS == 0 && sc.outstanding.Load() >= sc.window {
		sc.owner.dropQoS0()
		return
	}
	if p.QoS == 2 {
		if acked, seen := sc.rec[p.PacketID]; seen {
			// Sent again before its PUBREL [MQTT-4.3.3-10 from the
			// receiver's side]: not handed out twice.
			if acked {
				sc.ack(subAck{typ: codec.PUBREC, pid: p.PacketID})
			}
			return
		}
		sc.rec[p.PacketID] = false
	}
	d := &Delivered{Dup: p.Dup}
	d.Topic, d.Payload, d.QoS, d.Retain = string(p.Topic), append([]byte(nil), p.Payload...), p.QoS, p.Retain
	pp := &p.Props
	if pp.Has(codec.PropMessageExpiry) {
		d.MessageExpiry = time.Duration(pp.MessageExpiry) * time.Second
	}
	if pp.Has(codec.PropPayloadFormat) {
		d.PayloadFormat = pp.PayloadFormat
	}
	d.ContentType, d.ResponseTopic = string(pp.ContentType), string(pp.ResponseTopic)
	if pp.Has(codec.PropCorrelationData) {
		d.CorrelationData = append([]byte{}, pp.CorrelationData...)
	}
	for _, u := range pp.User {
		d.UserProperties = append(d.UserProperties, UserProperty{Key: string(u.Key), Value: string(u.Value)})
	}
	sc.outstanding.Add(1)
	sc.mu.Lock()
	sc.queue = append(sc.queue, subItem{d: d, qos: p.QoS, pid: p.PacketID})
	sc.mu.Unlock()
	select {
	case sc.sig <- struct{}{}:
	default:
	}
}

// done is a delivery's done. Safe for concurrent use.
func (sc *subConn) done(it subItem) {
	sc.outstanding.Add(-1)
	switch it.qos {
	case 0:
		if sc.stalled.Swap(false) {
			// Queued QoS 1/2 messages wait for room: the session is
			// pumped (the loop's tick would, a second later).
			sc.run(func() {
				if c := sc.c; c != nil && c.s != nil && c.state == stateConnected {
					c.s.pump()
					c.l.flush()
				}
			})
		}
	case 1:
		sc.ack(subAck{typ: codec.PUBACK, pid: it.pid})
	case 2:
		sc.ack(subAck{typ: codec.PUBREC, pid: it.pid})
	}
}

// ack queues an acknowledgement to feed; the first one of a batch posts
// the feeding to the loop. Safe for concurrent use.
func (sc *subConn) ack(a subAck) {
	if sc.closed.Load() {
		return
	}
	sc.mu.Lock()
	sc.acks = append(sc.acks, a)
	post := !sc.ackPosted
	sc.ackPosted = true
	sc.mu.Unlock()
	if post {
		sc.run(sc.feedAcks)
	}
}

// feedAcks feeds the queued acknowledgements in one Feed. Loop-only.
func (sc *subConn) feedAcks() {
	sc.mu.Lock()
	acks := sc.acks
	sc.acks = sc.acksSpare[:0]
	sc.ackPosted = false
	sc.mu.Unlock()
	b := sc.wbuf[:0]
	for _, a := range acks {
		if a.typ == codec.PUBREC {
			if _, ok := sc.rec[a.pid]; ok {
				sc.rec[a.pid] = true
			}
		}
		ack := codec.Ack{Type: a.typ, PacketID: a.pid}
		b = ack.Append(b, codec.V5)
	}
	sc.acksSpare = acks[:0]
	sc.wbuf = b
	if len(b) > 0 {
		sc.feed(b)
	}
}

// OutboundBuffered reports a full buffer while Window messages are
// outstanding: the broker then queues QoS 1/2 and drops QoS 0.
func (sc *subConn) OutboundBuffered() int {
	if sc.outstanding.Load() >= sc.window {
		sc.stalled.Store(true)
		return sc.full
	}
	return 0
}

// Close ends the connection: the subscription's goroutine stops and the
// Client is told on its loop. Safe from anywhere.
func (sc *subConn) Close() error {
	if sc.closed.Swap(true) {
		return nil
	}
	sc.owner.end(ErrClosed)
	sc.run(func() {
		if c := sc.c; c != nil {
			sc.c = nil
			c.Closed()
		}
	})
	return nil
}

// RemoteAddr names the connection in logs and hooks.
func (sc *subConn) RemoteAddr() string { return "server" }

// Wake has nothing to do: the server's CONNECT never waits for a verdict.
func (sc *subConn) Wake() error { return nil }
