package broker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

// In-process clients (Broker.Connect): an MQTT 5 session whose connection
// is in the process, on the same subConn as a server-side subscription
// (serversub.go). The client's packets are encoded and fed to the Client
// on the loop that owns its client id (through the inbox); what the
// broker writes is decoded by subConn: PUBLISH and PUBREL as for a
// subscription (deliveries queued for the client's goroutine, PUBACK /
// PUBREC / PUBCOMP fed back), the rest (CONNACK, the acknowledgements of
// the client's own PUBLISH, SUBSCRIBE and UNSUBSCRIBE, DISCONNECT) by
// InProcClient.control. Everything else — the ACLs, No Local, retained
// messages on subscribe, the session queue, persistence, expiry, the Will,
// hooks and statistics — is the broker's own, as for a network client.

// ConnectOptions configure an in-process client (Broker.Connect).
type ConnectOptions struct {
	// ClientID is the session's client id; empty: the broker assigns one
	// (InProcClient.ClientID). Ids starting with ServerClientIDPrefix
	// are refused. An id in use by another connection (network or in
	// process) takes its session over, as a CONNECT would.
	ClientID string
	// Username is the identity the Authorizer is asked about (anonymous
	// when empty). The Authenticator is not asked: the process vouches
	// for its own clients.
	Username string
	// BypassACL skips the Authorizer (admin level, as a server-side
	// subscription without CheckACL).
	BypassACL  bool
	CleanStart bool
	// SessionExpiry keeps the session this long after Disconnect (whole
	// seconds, rounded up); 0: it ends with the connection; negative:
	// never. Options.MaxSessionExpiry caps it as for any client.
	SessionExpiry time.Duration
	// ReceiveMaximum is how many QoS 1/2 messages may be handed to the
	// handlers and not yet returned (default DefaultWindow, at most
	// 65535); beyond it they wait in the session queue, and QoS 0 ones
	// are dropped.
	ReceiveMaximum int
	// Will is published when the connection ends without Disconnect
	// (Abort, Shutdown), after WillDelay.
	Will      *Publication
	WillDelay time.Duration
	// Handler receives the messages no Subscribe handler matches: those
	// of a resumed session's subscriptions before Subscribe is called
	// again. When nil they wait, unacknowledged (QoS 1/2, taking room in
	// ReceiveMaximum), for a Subscribe that matches them; QoS 0 ones are
	// dropped.
	Handler func(m *Delivered)
	// Logger receives a line when a handler panics; default the broker's.
	Logger *slog.Logger
}

// ClientSubscription is one filter of InProcClient.SubscribeWith, with the
// MQTT 5 subscription options.
type ClientSubscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	// RetainHandling: 0 retained messages are sent at subscribe, 1 only
	// for a new subscription, 2 never.
	RetainHandling byte
}

// ErrDisconnected is InProcClient.Err's value after Disconnect or Abort.
var ErrDisconnected = errors.New("broker: in-process client disconnected")

// InProcClient is an in-process MQTT 5 client (Broker.Connect). Its
// methods are safe for concurrent use; Publish, Subscribe, Unsubscribe
// and Disconnect wait for the broker, so they must not be called on a
// loop (from a hook). They may be called from a message handler, except
// that a QoS 1/2 Publish from a handler must not wait for a message
// only that handler's return would let through.
type InProcClient struct {
	b    *Broker
	opts ConnectOptions
	conn *subConn

	// Set from the CONNACK (before connack is sent on).
	id             string
	sessionPresent bool
	maxQoS         byte
	sendSlots      chan struct{} // the server's Receive Maximum: QoS 1/2 publishes inflight

	mu       sync.Mutex
	nextPID  uint16
	waits    map[uint16]*inprocWait
	handlers []inprocHandler

	dropped       atomic.Uint64
	dropUnmatched atomic.Bool // DropUnmatched: acknowledge and drop what no handler takes
	stopOnce      sync.Once
	stop          chan struct{} // closed when the connection ends
	done          chan struct{} // closed when the goroutine has returned
	errMu         sync.Mutex
	err           error
}

// inprocHandler is one Subscribe's handler.
type inprocHandler struct {
	filter string // as subscribed
	match  string // the filter matched against topics (no $share/group/)
	fn     func(m *Delivered)
	afn    func(m *Delivered, ack func()) // instead of fn: SubscribeAck's
}

// inprocWait waits for the acknowledgement of a packet the client sent.
type inprocWait struct {
	ch   chan []codec.ReasonCode // one reply
	slot bool                    // a QoS 1/2 PUBLISH: frees a sendSlots slot
}

// Connect connects an in-process client: an MQTT 5 session whose
// connection is in the process. It returns once the CONNACK has come
// (its refusal is a *codec.ReasonError), ctx's error, or ErrClosed.
func (b *Broker) Connect(ctx context.Context, opts ConnectOptions) (*InProcClient, error) {
	if strings.HasPrefix(opts.ClientID, ServerClientIDPrefix) {
		return nil, errors.New("broker: client ids starting with " + ServerClientIDPrefix + " are the server's")
	}
	return b.connect(ctx, opts)
}

// connect is Connect for any client id (ConnectBridge's reserved ones too).
func (b *Broker) connect(ctx context.Context, opts ConnectOptions) (*InProcClient, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if opts.ReceiveMaximum <= 0 {
		opts.ReceiveMaximum = DefaultWindow
	}
	opts.ReceiveMaximum = min(opts.ReceiveMaximum, 65535)
	if opts.Logger == nil {
		opts.Logger = b.opts.Logger
	}
	cp := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, CleanStart: opts.CleanStart, ClientID: []byte(opts.ClientID)}
	cp.Props.Set(codec.PropReceiveMaximum)
	cp.Props.ReceiveMaximum = uint16(opts.ReceiveMaximum)
	switch {
	case opts.SessionExpiry < 0:
		cp.Props.Set(codec.PropSessionExpiry)
		cp.Props.SessionExpiry = store.ExpiryNever
	case opts.SessionExpiry > 0:
		cp.Props.Set(codec.PropSessionExpiry)
		cp.Props.SessionExpiry = uint32(min((opts.SessionExpiry+time.Second-1)/time.Second, store.ExpiryNever-1))
	}
	if opts.Username != "" {
		cp.UsernameFlag, cp.Username = true, []byte(opts.Username)
	}
	if w := opts.Will; w != nil {
		p, err := b.codecPublish(w)
		if err != nil {
			return nil, err
		}
		cp.WillFlag, cp.WillQoS, cp.WillRetain, cp.WillTopic, cp.WillPayload = true, p.QoS, p.Retain, p.Topic, p.Payload
		cp.WillProps = p.Props
		if opts.WillDelay > 0 {
			cp.WillProps.Set(codec.PropWillDelay)
			cp.WillProps.WillDelay = uint32(min((opts.WillDelay+time.Second-1)/time.Second, store.ExpiryNever))
		}
	}
	connectRaw := cp.Append(nil)

	ic := &InProcClient{
		b: b, opts: opts, id: opts.ClientID, waits: map[uint16]*inprocWait{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	sc := newSubConn(b, ic, opts.ClientID, opts.BypassACL, opts.ReceiveMaximum)
	ic.conn = sc
	l := b.loops[b.homeLoop(cp.ClientID)]
	sc.loop.Store(l)
	go ic.dispatch()
	sc.run(func() { sc.open(l, connectRaw, nil, 0) })

	fail := func(err error) (*InProcClient, error) {
		ic.hangUp()
		return nil, err
	}
	select {
	case code := <-sc.connack:
		if code != 0 {
			return fail(&codec.ReasonError{Code: codec.ReasonCode(code), Reason: "in-process client refused at CONNECT"})
		}
	case <-ic.stop:
		return fail(ic.Err())
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return ic, nil
}

// ClientID is the session's client id (the one the broker assigned when
// ConnectOptions.ClientID was empty).
func (ic *InProcClient) ClientID() string { return ic.id }

// SessionPresent is the CONNACK's Session Present: a session was resumed.
func (ic *InProcClient) SessionPresent() bool { return ic.sessionPresent }

// Done is closed when the connection has ended and no handler runs.
func (ic *InProcClient) Done() <-chan struct{} { return ic.done }

// Err says why the connection ended (nil while it runs): ErrDisconnected,
// ErrClosed, or the broker's DISCONNECT as a *codec.ReasonError (a
// session taken over: 0x8E).
func (ic *InProcClient) Err() error {
	ic.errMu.Lock()
	defer ic.errMu.Unlock()
	return ic.err
}

// Dropped counts the QoS 0 messages dropped: ReceiveMaximum messages were
// being handled when they came, or no handler matched them.
func (ic *InProcClient) Dropped() uint64 { return ic.dropped.Load() }

// Publish publishes pm as this client: ACLs, No Local and the Publish
// hooks (origin client) apply as for a network client's PUBLISH. A QoS 1
// message returns at its PUBACK, a QoS 2 one at its PUBCOMP (the PUBREL
// is sent in between); a QoS 0 one once the loop has routed it. Errors
// are the acknowledgement's: ErrQuotaExceeded (0x97), ErrNotStored
// (0x80), another refusal as a *codec.ReasonError (0x87 not authorized);
// then ctx's error (the message may still be delivered), ErrClosed or
// Err() once the connection has ended, and validation errors. At most
// the server's Receive Maximum QoS 1/2 messages are inflight: more wait.
func (ic *InProcClient) Publish(ctx context.Context, pm Publication) error {
	if err := ic.ended(); err != nil {
		return err
	}
	p, err := ic.b.codecPublish(&pm)
	if err != nil {
		return err
	}
	if p.QoS > ic.maxQoS {
		return errors.New("broker: QoS above the server's Maximum QoS")
	}
	sc := ic.conn
	if p.QoS == 0 {
		raw := p.Append(nil, codec.V5)
		routed := make(chan struct{})
		sc.run(func() {
			sc.feed(raw)
			close(routed)
		})
		select {
		case <-routed:
			return nil
		case <-ic.stop:
			return ic.ended()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case ic.sendSlots <- struct{}{}:
	case <-ic.stop:
		return ic.ended()
	case <-ctx.Done():
		return ctx.Err()
	}
	w := &inprocWait{ch: make(chan []codec.ReasonCode, 1), slot: true}
	p.PacketID = ic.register(w)
	raw := p.Append(nil, codec.V5)
	sc.run(func() { sc.feed(raw) })
	select {
	case codes := <-w.ch:
		switch code := codes[0]; {
		case !code.IsError():
			return nil
		case code == codec.QuotaExceeded:
			return ErrQuotaExceeded
		case code == codec.UnspecifiedError:
			return ErrNotStored
		default:
			return &codec.ReasonError{Code: code, Reason: "publish refused"}
		}
	case <-ic.stop:
		return ic.ended()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe subscribes the session to filter with the maximum QoS qos;
// handler receives the matching messages. It is SubscribeWith without
// options.
func (ic *InProcClient) Subscribe(ctx context.Context, filter string, qos byte, handler func(m *Delivered)) error {
	return ic.SubscribeWith(ctx, ClientSubscription{Filter: filter, QoS: qos}, handler)
}

// SubscribeWith subscribes the session to s.Filter and returns at the
// SUBACK (a refusal is a *codec.ReasonError; 0x87: the Authorizer denied
// it). handler is called with each message whose topic the filter
// matches (retained ones included, which may come before SubscribeWith
// returns), one at a time, on the client's goroutine, never on a loop;
// when it returns the message is acknowledged (PUBACK, PUBREC). A message
// matching several filters goes to each of their handlers (m is shared:
// do not modify it). Subscribing a filter again replaces its handler and
// options. A handler that panics is recovered and logged.
func (ic *InProcClient) SubscribeWith(ctx context.Context, s ClientSubscription, handler func(m *Delivered)) error {
	if handler == nil {
		return errors.New("broker: Subscribe needs a handler")
	}
	return ic.subscribe(ctx, s, inprocHandler{fn: handler})
}

// subscribe is SubscribeWith with h's handler (fn or afn).
func (ic *InProcClient) subscribe(ctx context.Context, s ClientSubscription, h inprocHandler) error {
	if err := codec.ValidateTopicFilter([]byte(s.Filter)); err != nil {
		return err
	}
	if s.QoS > 2 || s.RetainHandling > 2 {
		return errors.New("broker: QoS and RetainHandling must be 0, 1 or 2")
	}
	match := s.Filter
	if _, f, shared, _ := codec.SplitShared([]byte(s.Filter)); shared {
		match = string(f)
	}
	if err := ic.ended(); err != nil {
		return err
	}
	// The handler is there before the retained messages can come; an
	// earlier one for the filter stays until the SUBACK (refused: kept).
	h.filter, h.match = s.Filter, match
	ic.mu.Lock()
	var prev *inprocHandler
	for i := range ic.handlers {
		if ic.handlers[i].filter == s.Filter {
			old := ic.handlers[i]
			prev = &old
			ic.handlers[i] = h
		}
	}
	if prev == nil {
		ic.handlers = append(ic.handlers, h)
	}
	ic.mu.Unlock()
	restore := func() {
		ic.mu.Lock()
		defer ic.mu.Unlock()
		for i := range ic.handlers {
			if ic.handlers[i].filter == s.Filter {
				if prev != nil {
					ic.handlers[i] = *prev
				} else {
					ic.handlers = append(ic.handlers[:i], ic.handlers[i+1:]...)
				}
				return
			}
		}
	}
	w := &inprocWait{ch: make(chan []codec.ReasonCode, 1)}
	sp := codec.Subscribe{PacketID: ic.register(w), Subs: []codec.Subscription{{
		Filter: []byte(s.Filter), QoS: s.QoS, NoLocal: s.NoLocal, RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling,
	}}}
	codes, err := ic.request(ctx, w, sp.Append(nil, codec.V5))
	if err != nil {
		return err // the SUBACK may still come: the handler stays
	}
	if len(codes) == 0 || codes[0].IsError() {
		restore()
		code := codec.UnspecifiedError
		if len(codes) > 0 {
			code = codes[0]
		}
		return &codec.ReasonError{Code: code, Reason: "subscription refused"}
	}
	ic.poke() // held messages may match it now
	return nil
}

// Unsubscribe unsubscribes the session from filter and removes its
// handler; it returns at the UNSUBACK (a filter the session did not have
// is no error).
func (ic *InProcClient) Unsubscribe(ctx context.Context, filter string) error {
	if err := codec.ValidateTopicFilter([]byte(filter)); err != nil {
		return err
	}
	if err := ic.ended(); err != nil {
		return err
	}
	w := &inprocWait{ch: make(chan []codec.ReasonCode, 1)}
	up := codec.Unsubscribe{PacketID: ic.register(w), Filters: [][]byte{[]byte(filter)}}
	codes, err := ic.request(ctx, w, up.Append(nil, codec.V5))
	if err != nil {
		return err
	}
	if len(codes) > 0 && codes[0].IsError() {
		return &codec.ReasonError{Code: codes[0], Reason: "unsubscribe refused"}
	}
	ic.mu.Lock()
	for i := range ic.handlers {
		if ic.handlers[i].filter == filter {
			ic.handlers = append(ic.handlers[:i], ic.handlers[i+1:]...)
			break
		}
	}
	ic.mu.Unlock()
	return nil
}

// Disconnect ends the connection with a DISCONNECT (0x00: the Will is
// not published): the session stays for SessionExpiry, with its
// subscriptions and the QoS 1/2 messages not yet acknowledged, for a
// later Connect with the same ClientID and CleanStart false. It returns
// once the broker has detached the session; no handler call starts after
// it (Done is closed once one in progress has returned). Calling it again
// does nothing.
func (ic *InProcClient) Disconnect() {
	d := codec.Disconnect{Code: codec.NormalDisconnection}
	ic.close(d.Append(nil, codec.V5))
}

// Abort ends the connection without a DISCONNECT, as a network failure
// would: the Will is published (after WillDelay), the session stays for
// SessionExpiry. It returns as Disconnect does.
func (ic *InProcClient) Abort() { ic.close(nil) }

// close ends the connection, feeding raw first when it is not nil, and
// waits for the session to be detached.
func (ic *InProcClient) close(raw []byte) {
	sc := ic.conn
	ic.end(ErrDisconnected)
	gone := make(chan struct{})
	sc.run(func() {
		if c := sc.c; c != nil && c.state == stateConnected && raw != nil {
			sc.feed(raw)
		}
		sc.Close()
		sc.run(func() { close(gone) }) // after the Client's Closed
	})
	timeout := time.NewTimer(subscribeWait)
	defer timeout.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-gone:
			return
		case <-timeout.C:
			return
		case <-tick.C:
			if ic.b.closed.Load() { // the loops may be gone
				return
			}
		}
	}
}

// hangUp ends the connection of a failed Connect without its Will.
func (ic *InProcClient) hangUp() {
	d := codec.Disconnect{Code: codec.NormalDisconnection}
	ic.close(d.Append(nil, codec.V5))
}

// ended is the error of a client whose connection has ended, else nil.
func (ic *InProcClient) ended() error {
	select {
	case <-ic.stop:
		if err := ic.Err(); err != nil {
			return err
		}
		return ErrClosed
	default:
	}
	if ic.b.closed.Load() {
		return ErrClosed
	}
	return nil
}

// register gives w a free packet id.
func (ic *InProcClient) register(w *inprocWait) uint16 {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	for {
		ic.nextPID++
		if ic.nextPID == 0 {
			ic.nextPID = 1
		}
		if ic.waits[ic.nextPID] == nil {
			ic.waits[ic.nextPID] = w
			return ic.nextPID
		}
	}
}

// request feeds raw and waits for w's reply.
func (ic *InProcClient) request(ctx context.Context, w *inprocWait, raw []byte) ([]codec.ReasonCode, error) {
	sc := ic.conn
	sc.run(func() { sc.feed(raw) })
	select {
	case codes := <-w.ch:
		return codes, nil
	case <-ic.stop:
		return nil, ic.ended()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// resolve hands the reply to packet id pid's waiter. Loop-only.
func (ic *InProcClient) resolve(pid uint16, codes []codec.ReasonCode) {
	ic.mu.Lock()
	w := ic.waits[pid]
	delete(ic.waits, pid)
	ic.mu.Unlock()
	if w == nil {
		return
	}
	if w.slot {
		<-ic.sendSlots
	}
	w.ch <- codes
}

// control handles the packets subConn leaves to the client. Loop-only.
func (ic *InProcClient) control(sc *subConn, h codec.FixedHeader, body []byte) {
	switch h.Type {
	case codec.CONNACK:
		var ack codec.Connack
		if ack.Decode(h, body, codec.V5) != nil {
			return
		}
		rm, mq := uint16(65535), byte(2)
		if ack.Props.Has(codec.PropReceiveMaximum) {
			rm = max(ack.Props.ReceiveMaximum, 1)
		}
		if ack.Props.Has(codec.PropMaximumQoS) {
			mq = ack.Props.MaximumQoS
		}
		if ack.Props.Has(codec.PropAssignedClientID) {
			ic.id = string(ack.Props.AssignedClientID)
		}
		ic.sessionPresent, ic.maxQoS, ic.sendSlots = ack.SessionPresent, mq, make(chan struct{}, rm)
		select {
		case sc.connack <- ack.Code:
		default:
		}
	case codec.PUBACK, codec.PUBREC, codec.PUBCOMP:
		var a codec.Ack
		if a.Decode(h, body, codec.V5) != nil {
			return
		}
		if h.Type == codec.PUBREC && !a.Code.IsError() {
			sc.ack(subAck{typ: codec.PUBREL, pid: a.PacketID}) // then PUBCOMP
			return
		}
		ic.resolve(a.PacketID, []codec.ReasonCode{a.Code})
	case codec.SUBACK:
		var a codec.Suback
		if a.Decode(h, body, codec.V5) == nil {
			ic.resolve(a.PacketID, a.Codes)
		}
	case codec.UNSUBACK:
		var a codec.Unsuback
		if a.Decode(h, body, codec.V5) == nil {
			ic.resolve(a.PacketID, a.Codes)
		}
	case codec.DISCONNECT:
		var d codec.Disconnect
		if d.Decode(h, body, codec.V5) == nil {
			ic.end(&codec.ReasonError{Code: d.Code, Reason: "disconnected by the server: " + string(d.Props.ReasonString)})
		}
	}
}

func (ic *InProcClient) dropQoS0() { ic.dropped.Add(1) }

// end records why the connection ended and stops the goroutine (after
// the handler call in progress).
func (ic *InProcClient) end(err error) {
	ic.stopOnce.Do(func() {
		ic.errMu.Lock()
		ic.err = err
		ic.errMu.Unlock()
		close(ic.stop)
	})
}

// poke wakes the goroutine.
func (ic *InProcClient) poke() {
	select {
	case ic.conn.sig <- struct{}{}:
	default:
	}
}

// dispatch hands each delivery to the handlers that match it, in order;
// QoS 1/2 ones no handler matches are held for a later Subscribe.
func (ic *InProcClient) dispatch() {
	defer close(ic.done)
	sc := ic.conn
	var batch, held, todo []subItem
	for {
		select {
		case <-sc.sig:
		case <-ic.stop:
			return
		}
		todo, held = append(todo[:0], held...), held[:0]
		for first := true; ; first = false {
			sc.mu.Lock()
			batch, sc.queue = sc.queue, batch[:0]
			sc.mu.Unlock()
			if len(batch) == 0 && !first {
				break
			}
			todo = append(todo, batch...)
			clear(batch)
			for i, it := range todo {
				select {
				case <-ic.stop:
					return
				default:
				}
				if !ic.handle(it) {
					if it.qos == 0 || ic.dropUnmatched.Load() { // DropUnmatched (inproc_ack.go)
						ic.dropped.Add(1)
						sc.done(it)
					} else {
						held = append(held, it)
					}
				}
				todo[i] = subItem{}
			}
			todo = todo[:0]
		}
	}
}

// handle calls the handlers matching it and acknowledges it; false: none
// matches.
func (ic *InProcClient) handle(it subItem) bool {
	var fns []func(*Delivered)
	var afns []func(*Delivered, func()) // SubscribeAck's (inproc_ack.go)
	ic.mu.Lock()
	for i := range ic.handlers {
		if h := &ic.handlers[i]; codec.MatchTopic(h.match, []byte(it.d.Topic)) {
			if h.afn != nil {
				afns = append(afns, h.afn)
			} else {
				fns = append(fns, h.fn)
			}
		}
	}
	ic.mu.Unlock()
	if len(fns) == 0 && len(afns) == 0 && ic.opts.Handler != nil {
		fns = append(fns, ic.opts.Handler)
	}
	if len(fns) == 0 && len(afns) == 0 {
		return false
	}
	for _, fn := range fns {
		ic.call(fn, it.d)
	}
	if len(afns) > 0 {
		ic.callAck(afns, it)
		return true
	}
	ic.conn.done(it)
	return true
}

// call runs one handler, recovering a panic.
func (ic *InProcClient) call(fn func(*Delivered), d *Delivered) {
	defer func() {
		if r := recover(); r != nil {
			ic.opts.Logger.Error("in-process client handler panicked", slog.String("client", ic.id),
				slog.String("topic", d.Topic), slog.Any("panic", r))
		}
	}()
	fn(d)
}
