package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
)

// Bridge is one running bridge. Its methods are safe for concurrent use.
type Bridge struct {
	cfg      Config
	b        *broker.Broker
	log      *slog.Logger
	tls      *tls.Config // nil for tcp://
	password string
	dial     dialFunc
	echo     *echoFilter // 3.1.1 remotes only (no No Local there)

	local *broker.InProcClient
	// out carries the local session's messages to the sender, in order.
	// Its capacity is MaxInflight times the out mappings: what the
	// local session hands out before acks bound it, so the handler
	// never waits on it.
	out chan *outItem

	mu sync.Mutex
	// pending are the messages taken by the sender and not yet
	// acknowledged by the remote, in the order they came: sent again,
	// in that order, on the next connection.
	pending []*outItem

	ctx    context.Context // ends at Stop
	cancel context.CancelFunc
	done   chan struct{}

	up                                atomic.Bool
	sent, received                    atomic.Uint64
	reconnects, connectErrors, echoes atomic.Uint64
	droppedRefused, droppedLocal      atomic.Uint64
	queued                            atomic.Int64 // the local session's queue + inflight, refreshed each second
	logThrottle                       atomic.Int64 // unix ns of the last connect error logged
}

// outItem is one local message on its way to the remote.
type outItem struct {
	topic string            // on the remote
	qos   byte              // the local delivery's QoS (the mapping's at most)
	msg   *broker.Delivered // shared with other mappings: read only
	ack   func()            // acknowledges it to the local broker
	acked bool              // Bridge.mu
}

// Name is the bridge's name.
func (br *Bridge) Name() string { return br.cfg.Name }

// Status is a bridge's state and counters (Manager.Status).
type Status struct {
	Name                string
	Up                  bool
	Sent, Received      uint64 // messages to / from the remote
	Reconnects          uint64 // connections that ended and were made again
	ConnectErrors       uint64 // failed connection attempts
	Echoes              uint64 // 3.1.1: inbound copies of the bridge's own outbound messages, dropped
	DroppedRemote       uint64 // refused by the remote (v5 PUBACK >= 0x80)
	DroppedLocal        uint64 // refused by the local broker (ACL, validation)
	Queued              int64  // held in the local session for the remote
	Pending             int    // handed to the remote and not yet acknowledged
	Address, Protocol   string
	LocalClientID       string
	RemoteClientID      string
	OutFilters, InFilters []string
}

// Status reports the bridge's state.
func (br *Bridge) Status() Status {
	br.mu.Lock()
	pending := len(br.pending)
	br.mu.Unlock()
	st := Status{
		Name: br.cfg.Name, Up: br.up.Load(), Sent: br.sent.Load(), Received: br.received.Load(),
		Reconnects: br.reconnects.Load(), ConnectErrors: br.connectErrors.Load(), Echoes: br.echoes.Load(),
		DroppedRemote: br.droppedRefused.Load(), DroppedLocal: br.droppedLocal.Load(),
		Queued: br.queued.Load(), Pending: pending, Address: br.cfg.Address, Protocol: br.cfg.Protocol,
		LocalClientID: broker.BridgeClientIDPrefix + br.cfg.Name, RemoteClientID: br.cfg.ClientID,
	}
	for _, t := range br.cfg.Topics {
		if t.out() {
			st.OutFilters = append(st.OutFilters, t.localFilter())
		}
		if t.in() {
			st.InFilters = append(st.InFilters, t.remoteFilter())
		}
	}
	return st
}

// newBridge checks what a bridge needs before it starts (TLS files, the
// password) and makes it.
func newBridge(b *broker.Broker, cfg Config, log *slog.Logger) (*Bridge, error) {
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	pw, err := cfg.password()
	if err != nil {
		return nil, err
	}
	outs := 0
	for _, t := range cfg.Topics {
		if t.out() {
			outs++
		}
	}
	br := &Bridge{cfg: cfg, b: b, log: log.With("bridge", cfg.Name), password: pw,
		out: make(chan *outItem, cfg.MaxInflight*max(outs, 1)), done: make(chan struct{})}
	br.tls = tc
	br.dial = dialV5
	if cfg.Protocol == "3.1.1" {
		br.dial = dialV3
		for _, t := range cfg.Topics {
			if t.in() && t.out() || t.in() && outs > 0 {
				br.echo = newEchoFilter(echoWindow)
				break
			}
		}
	}
	br.ctx, br.cancel = context.WithCancel(context.Background())
	return br, nil
}

// start connects the local side and starts the bridge's goroutines.
func (br *Bridge) start(ctx context.Context) error {
	local, err := br.b.ConnectBridge(ctx, br.cfg.Name, broker.ConnectOptions{
		// The local session is the durable outbound queue: it keeps
		// what the remote has not acknowledged across outages and
		// broker restarts, bounded by --max-queued-messages/-bytes.
		CleanStart: false, SessionExpiry: -1, BypassACL: true,
		ReceiveMaximum: br.cfg.MaxInflight, Logger: br.log,
	})
	if err != nil {
		return fmt.Errorf("connecting the local session: %w", err)
	}
	br.local = local
	want := map[string]bool{}
	for i := range br.cfg.Topics {
		if t := &br.cfg.Topics[i]; t.out() {
			want[t.localFilter()] = true
		}
	}
	if local.SessionPresent() {
		// Mappings removed from the file since the session was made
		// would keep queueing messages no handler takes.
		si, err := local.SessionInfo(ctx)
		if err != nil {
			local.Disconnect()
			return fmt.Errorf("reading the local session: %w", err)
		}
		for _, f := range si.Filters {
			if !want[f] {
				if err := local.Unsubscribe(ctx, f); err != nil {
					local.Disconnect()
					return fmt.Errorf("removing the old mapping %q: %w", f, err)
				}
				br.log.Info("bridge: removed a mapping no longer configured", "filter", f)
			}
		}
	}
	for i := range br.cfg.Topics {
		t := &br.cfg.Topics[i]
		if !t.out() {
			continue
		}
		// No Local: what the bridge's in side publishes locally is not
		// sent back out [MQTT-3.8.3-3]. Retain As Published keeps the
		// retain flag; Retain Handling 1: the retained messages once,
		// when the mapping is new, not at every restart.
		s := broker.ClientSubscription{Filter: t.localFilter(), QoS: t.QoS, NoLocal: true, RetainAsPublished: true, RetainHandling: 1}
		if err := local.SubscribeAck(ctx, s, func(m *broker.Delivered, ack func()) { br.outbound(t, m, ack) }); err != nil {
			local.Disconnect()
			return fmt.Errorf("subscribing locally to %q: %w", s.Filter, err)
		}
	}
	br.publishState(false)
	go br.run()
	go br.watch()
	return nil
}

// outbound takes a local message for the remote. It runs on the local
// client's goroutine, in delivery order.
func (br *Bridge) outbound(t *Topic, m *broker.Delivered, ack func()) {
	it := &outItem{topic: t.toRemote(m.Topic), qos: min(m.QoS, t.QoS), msg: m, ack: ack}
	select {
	case br.out <- it:
	case <-br.ctx.Done():
		// Stopping: not acked, the local session keeps it.
	}
}

// inbound publishes a remote message locally, then acknowledges it to
// the remote: a QoS 1 message is PUBACKed only once the local broker has
// it.
func (br *Bridge) inbound(topic string, pub broker.Publication, ack func()) {
	t := inbound(br.cfg.Topics, topic)
	if t == nil {
		ack() // a subscription of an older configuration, kept by a persistent remote session
		return
	}
	if br.echo != nil && br.echo.echoed(topic, pub.Payload) {
		br.echoes.Add(1)
		ack()
		return
	}
	pub.Topic, pub.QoS = t.toLocal(topic), min(pub.QoS, t.QoS)
	err := br.local.Publish(br.ctx, pub)
	switch {
	case err == nil, errors.Is(err, broker.ErrQuotaExceeded):
		// Routed (a full subscriber queue missed it: the broker counts that).
		br.received.Add(1)
		ack()
	case br.ctx.Err() != nil, errors.Is(err, broker.ErrClosed), errors.Is(err, broker.ErrDisconnected), errors.Is(err, broker.ErrNotStored):
		// Not acknowledged: the remote sends it again.
	default:
		br.droppedLocal.Add(1)
		br.log.Warn("bridge: the local broker refused a message from the remote; dropped", "topic", pub.Topic, "err", err)
		ack()
	}
}

// run connects to the remote, serves the connection, and reconnects with
// backoff until Stop.
func (br *Bridge) run() {
	defer close(br.done)
	attempt := 0
	for br.ctx.Err() == nil {
		r, err := br.dial(br.ctx, br)
		if err != nil {
			if br.ctx.Err() != nil {
				return
			}
			br.connectErrors.Add(1)
			br.logConnectError(err)
			if !br.sleep(backoff(br.cfg.Reconnect, attempt)) {
				return
			}
			attempt++
			continue
		}
		began := time.Now()
		br.log.Info("bridge: connected", "address", br.cfg.Address, "protocol", br.cfg.Protocol)
		br.up.Store(true)
		br.publishState(true)
		br.serve(r)
		br.up.Store(false)
		br.publishState(false)
		if br.ctx.Err() != nil {
			return
		}
		br.reconnects.Add(1)
		br.log.Warn("bridge: connection lost; reconnecting", "address", br.cfg.Address)
		if time.Since(began) >= br.cfg.Reconnect.Max {
			attempt = 0
		}
		if !br.sleep(backoff(br.cfg.Reconnect, attempt)) {
			return
		}
		attempt++
	}
}

// serve sends the pending messages again, in order, then the new ones,
// until the connection ends or Stop.
func (br *Bridge) serve(r remote) {
	acks := make(chan sentItem, cap(br.out)+1)
	collected := make(chan struct{})
	go br.collect(r, acks, collected)
	defer func() {
		r.close()
		<-collected
	}()
	br.mu.Lock()
	resend := slices.Clone(br.pending)
	br.mu.Unlock()
	for _, it := range resend {
		br.mu.Lock()
		acked := it.acked
		br.mu.Unlock()
		if !acked && !br.send(r, it, acks) {
			return
		}
	}
	for {
		select {
		case it := <-br.out:
			br.mu.Lock()
			br.pending = append(br.pending, it)
			br.mu.Unlock()
			if !br.send(r, it, acks) {
				return
			}
		case <-r.done():
			return
		case <-br.ctx.Done():
			return
		}
	}
}

// sentItem is a QoS 1 message written and waiting for its PUBACK.
type sentItem struct {
	it   *outItem
	wait ackWait
}

// send writes one message; false: the connection has ended (the message
// stays pending).
func (br *Bridge) send(r remote, it *outItem, acks chan<- sentItem) bool {
	if br.echo != nil && inbound(br.cfg.Topics, it.topic) != nil {
		br.echo.sent(it.topic, it.msg.Payload)
	}
	wait, err := r.publish(it)
	if err != nil {
		return false
	}
	if wait == nil { // QoS 0: done once written
		br.complete(it, ackOK)
		return true
	}
	select {
	case acks <- sentItem{it, wait}:
		return true
	case <-r.done():
		return false
	}
}

// collect waits for the PUBACKs, in sending order, and acknowledges each
// message to the local broker once the remote has it.
func (br *Bridge) collect(r remote, acks <-chan sentItem, collected chan<- struct{}) {
	defer close(collected)
	for {
		select {
		case s := <-acks:
			res := s.wait(r.done())
			if res == ackLost {
				return
			}
			br.complete(s.it, res)
		case <-r.done():
			return
		}
	}
}

// complete ends a message's trip: off the pending list, acknowledged
// locally.
func (br *Bridge) complete(it *outItem, res ackResult) {
	br.mu.Lock()
	it.acked = true
	n := 0
	for n < len(br.pending) && br.pending[n].acked {
		br.pending[n] = nil
		n++
	}
	br.pending = br.pending[n:]
	br.mu.Unlock()
	if res == ackRefused {
		br.droppedRefused.Add(1)
		br.log.Warn("bridge: the remote refused a message; dropped", "topic", it.topic)
	} else {
		br.sent.Add(1)
	}
	it.ack()
}

// watch refreshes the queued gauge each second.
func (br *Bridge) watch() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(br.ctx, time.Second)
		si, err := br.local.SessionInfo(ctx)
		cancel()
		if err == nil {
			br.queued.Store(int64(si.Queued + si.Inflight))
		}
		select {
		case <-t.C:
		case <-br.ctx.Done():
			return
		case <-br.local.Done():
			return
		}
	}
}

// publishState publishes the bridge's state, retained, on
// <sys>/broker/bridges/NAME/state and Mosquitto's
// <sys>/broker/connection/NAME/state: "1" connected, "0" not.
func (br *Bridge) publishState(up bool) {
	payload := []byte("0")
	if up {
		payload = []byte("1")
	}
	sys := br.b.Options().SysPrefix
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, topic := range []string{sys + "/broker/bridges/" + br.cfg.Name + "/state", sys + "/broker/connection/" + br.cfg.Name + "/state"} {
		if err := br.b.PublishMessage(ctx, broker.Publication{Topic: topic, Payload: payload, Retain: true}); err != nil && !errors.Is(err, broker.ErrClosed) {
			br.log.Debug("bridge: $SYS state not published", "topic", topic, "err", err)
		}
	}
}

// logConnectError logs a failed attempt, at most every 10 s.
func (br *Bridge) logConnectError(err error) {
	now := time.Now().UnixNano()
	if last := br.logThrottle.Load(); now-last < int64(10*time.Second) || !br.logThrottle.CompareAndSwap(last, now) {
		return
	}
	br.log.Warn("bridge: cannot connect to the remote; retrying with backoff", "address", br.cfg.Address,
		"err", err, "attempts_failed", br.connectErrors.Load())
}

// sleep waits d or until Stop; false: stopped.
func (br *Bridge) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-br.ctx.Done():
		return false
	}
}

// stop ends the bridge: the remote connection is closed, the local
// session detached (it keeps what the remote has not acknowledged).
func (br *Bridge) stop() {
	br.cancel()
	<-br.done
	if br.local != nil {
		br.local.Disconnect()
	}
}
