package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
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
	outs     int         // out mappings

	// local is the in-process client of the current connection; it is
	// connected only while the remote is (localConn).
	localMu sync.Mutex
	local   *localConn

	ctx    context.Context // ends at Stop
	cancel context.CancelFunc
	done   chan struct{}

	up                                atomic.Bool
	sent, received                    atomic.Uint64
	reconnects, connectErrors, echoes atomic.Uint64
	droppedRefused, droppedLocal      atomic.Uint64
	inflight                          atomic.Int64 // handed to the remote, not yet acknowledged
	queued                            atomic.Int64 // the local session's queue + inflight, refreshed each second
	// unix ns of the last line logged, per kind: connect errors, local
	// refusals, remote refusals (each at most every 10 s).
	logThrottle [3]atomic.Int64
}

// localConn is one connection of the bridge's local session.
type localConn struct {
	client *broker.InProcClient
	// out carries the session's messages to the sender, in delivery
	// order. Its capacity is MaxInflight per out mapping: what the
	// session hands out before acks bound it, so the handler never
	// waits on it.
	out chan *outItem
}

// outItem is one local message on its way to the remote.
type outItem struct {
	topic string            // on the remote
	qos   byte              // the local delivery's QoS (the mapping's at most)
	msg   *broker.Delivered // shared with other mappings: read only
	ack   func()            // acknowledges it to the local broker
}

// Name is the bridge's name.
func (br *Bridge) Name() string { return br.cfg.Name }

// Status is a bridge's state and counters (Manager.Status).
type Status struct {
	Name           string
	Up             bool
	Sent, Received uint64 // messages to / from the remote
	Reconnects     uint64 // connections that ended and were made again
	ConnectErrors  uint64 // failed connection attempts
	Echoes         uint64 // 3.1.1: inbound copies of the bridge's own outbound messages, dropped
	DroppedRemote  uint64 // refused by the remote (v5 PUBACK >= 0x80)
	DroppedLocal   uint64 // refused by the local broker (ACL, validation)
	// Queued are the messages the local session holds for the remote
	// (its queue and inflight window, at most a second old); Inflight
	// those handed to the remote and not yet acknowledged.
	Queued, Inflight  int64
	Address, Protocol string
	LocalClientID     string
	RemoteClientID    string
}

// Status reports the bridge's state.
func (br *Bridge) Status() Status {
	return Status{
		Name: br.cfg.Name, Up: br.up.Load(), Sent: br.sent.Load(), Received: br.received.Load(),
		Reconnects: br.reconnects.Load(), ConnectErrors: br.connectErrors.Load(), Echoes: br.echoes.Load(),
		DroppedRemote: br.droppedRefused.Load(), DroppedLocal: br.droppedLocal.Load(),
		Queued: br.queued.Load(), Inflight: br.inflight.Load(), Address: br.cfg.Address, Protocol: br.cfg.Protocol,
		LocalClientID: broker.BridgeClientIDPrefix + br.cfg.Name, RemoteClientID: br.cfg.ClientID,
	}
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
	br := &Bridge{cfg: cfg, b: b, log: log.With("bridge", cfg.Name), tls: tc, password: pw, done: make(chan struct{})}
	ins := 0
	for _, t := range cfg.Topics {
		if t.out() {
			br.outs++
		}
		if t.in() {
			ins++
		}
	}
	br.dial = dialV5
	if cfg.Protocol == "3.1.1" {
		br.dial = dialV3
		if ins > 0 && br.outs > 0 {
			br.echo = newEchoFilter(echoWindow)
		}
	}
	br.ctx, br.cancel = context.WithCancel(context.Background())
	return br, nil
}

// start makes sure the local session and its subscriptions exist (so
// messages for the remote are queued from now on, while the remote is
// down too) and starts the bridge's goroutines.
func (br *Bridge) start(ctx context.Context) error {
	lc, err := br.connectLocal(ctx)
	if err != nil {
		return err
	}
	// Detached until the remote is up: an offline session queues (up to
	// --max-queued-messages/-bytes, then drops and counts) without
	// holding back the local publishers' acknowledgements, as an online
	// subscriber far behind would (flow control).
	br.detach(lc)
	br.publishState(false)
	go br.run()
	go br.watch()
	return nil
}

// connectLocal connects the bridge's local session (persistent, client
// id $mcutie/bridge/NAME): resumed, its unacknowledged messages come
// again first, in order, then the queued ones.
func (br *Bridge) connectLocal(ctx context.Context) (*localConn, error) {
	lc := &localConn{out: make(chan *outItem, br.cfg.MaxInflight*max(br.outs, 1))}
	client, err := br.b.ConnectBridge(ctx, br.cfg.Name, broker.ConnectOptions{
		// The local session is the durable outbound queue: it keeps
		// what the remote has not acknowledged across outages and
		// broker restarts.
		CleanStart: false, SessionExpiry: -1, BypassACL: true,
		ReceiveMaximum: br.cfg.MaxInflight, Logger: br.log,
	})
	if err != nil {
		return nil, fmt.Errorf("connecting the local session: %w", err)
	}
	lc.client = client
	fail := func(err error) (*localConn, error) {
		client.Disconnect()
		return nil, err
	}
	want := map[string]bool{}
	for i := range br.cfg.Topics {
		if t := &br.cfg.Topics[i]; t.out() {
			want[t.localFilter()] = true
		}
	}
	if client.SessionPresent() {
		// Mappings removed from the file since the session was made
		// would keep queueing messages no handler takes.
		si, err := client.SessionInfo(ctx)
		if err != nil {
			return fail(fmt.Errorf("reading the local session: %w", err))
		}
		for _, f := range si.Filters {
			if !want[f] {
				if err := client.Unsubscribe(ctx, f); err != nil {
					return fail(fmt.Errorf("removing the old mapping %q: %w", f, err))
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
		// No Local: what the bridge's in side publishes locally (as this
		// session) is not sent back out [MQTT-3.8.3-3]. Retain As
		// Published keeps the retain flag; Retain Handling 1: the
		// retained messages once, when the mapping is new, not at every
		// reconnect.
		s := broker.ClientSubscription{Filter: t.localFilter(), QoS: t.QoS, NoLocal: true, RetainAsPublished: true, RetainHandling: 1}
		if err := client.SubscribeAck(ctx, s, func(m *broker.Delivered, ack func()) { br.outbound(lc, t, m, ack) }); err != nil {
			return fail(fmt.Errorf("subscribing locally to %q: %w", s.Filter, err))
		}
	}
	// Every mapping has its handler now: what a resumed session had
	// queued for a filter no longer configured is dropped, not held.
	client.DropUnmatched()
	br.localMu.Lock()
	br.local = lc
	br.localMu.Unlock()
	return lc, nil
}

// outbound takes a local message for the remote. It runs on the local
// client's goroutine, in delivery order.
func (br *Bridge) outbound(lc *localConn, t *Topic, m *broker.Delivered, ack func()) {
	it := &outItem{topic: t.toRemote(m.Topic), qos: min(m.QoS, t.QoS), msg: m, ack: ack}
	select {
	case lc.out <- it:
	case <-lc.client.Done():
		// Detached: not acked, the session sends it again.
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
	br.localMu.Lock()
	lc := br.local
	br.localMu.Unlock()
	if lc == nil {
		return // not acked: the remote sends it again
	}
	pub.Topic, pub.QoS = t.toLocal(topic), min(pub.QoS, t.QoS)
	err := lc.client.Publish(br.ctx, pub)
	switch {
	case err == nil, errors.Is(err, broker.ErrQuotaExceeded):
		// Routed (a full subscriber queue missed it: the broker counts that).
		br.received.Add(1)
		ack()
	case br.ctx.Err() != nil, errors.Is(err, broker.ErrClosed), errors.Is(err, broker.ErrDisconnected), errors.Is(err, broker.ErrNotStored):
		// Not acknowledged: the remote sends it again.
	default:
		br.droppedLocal.Add(1)
		if br.logAllowed(logLocalRefused) {
			br.log.Warn("bridge: the local broker refused a message from the remote; dropped (counted in mcutie_bridge_messages_dropped_total{reason=\"local_refused\"})",
				"topic", pub.Topic, "err", err, "dropped", br.droppedLocal.Load())
		}
		ack()
	}
}

// run connects to the remote (then the local session), serves the
// connection, and reconnects with backoff until Stop.
func (br *Bridge) run() {
	defer close(br.done)
	attempt := 0
	for br.ctx.Err() == nil {
		// The local session first: a persistent remote session sends
		// what it kept for the bridge as soon as it has connected.
		var r remote
		lc, err := br.connectLocal(br.ctx)
		if err == nil {
			if r, err = br.dial(br.ctx, br); err != nil {
				br.detach(lc)
			}
		}
		if err != nil {
			if br.ctx.Err() != nil || br.b.Closed() {
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
		br.serve(r, lc)
		br.up.Store(false)
		br.publishState(false)
		if br.ctx.Err() != nil || br.b.Closed() {
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

// serve sends the local session's messages to the remote, in order,
// until either connection ends or Stop; then it detaches the local
// session, which keeps what the remote has not acknowledged.
func (br *Bridge) serve(r remote, lc *localConn) {
	acks := make(chan sentItem, cap(lc.out)+1)
	collected := make(chan struct{})
	go br.collect(r, acks, collected)
	defer func() {
		br.detach(lc)
		r.close()
		<-collected
		br.inflight.Store(0)
	}()
	for {
		select {
		case it := <-lc.out:
			if !br.send(r, it, acks) {
				return
			}
		case <-r.done():
			return
		case <-lc.client.Done():
			if !br.b.Closed() {
				br.log.Warn("bridge: the local session ended", "err", lc.client.Err())
			}
			return
		case <-br.ctx.Done():
			return
		}
	}
}

// detach disconnects the local session: it keeps what the remote has not
// acknowledged, for the next connection.
func (br *Bridge) detach(lc *localConn) {
	br.localMu.Lock()
	if br.local == lc {
		br.local = nil
	}
	br.localMu.Unlock()
	lc.client.Disconnect()
}

// sentItem is a QoS 1 message written and waiting for its PUBACK.
type sentItem struct {
	it   *outItem
	wait ackWait
}

// send writes one message; false: the connection has ended (the local
// session sends the message again on its next connection).
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
	br.inflight.Add(1)
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
			br.inflight.Add(-1)
			br.complete(s.it, res)
		case <-r.done():
			return
		}
	}
}

// complete ends a message's trip: acknowledged locally.
func (br *Bridge) complete(it *outItem, res ackResult) {
	if res == ackRefused {
		br.droppedRefused.Add(1)
		if br.logAllowed(logRemoteRefused) {
			br.log.Warn("bridge: the remote refused a message (PUBACK >= 0x80: its ACL or quota?); dropped (counted in mcutie_bridge_messages_dropped_total{reason=\"remote_refused\"})",
				"topic", it.topic, "dropped", br.droppedRefused.Load())
		}
	} else {
		br.sent.Add(1)
	}
	it.ack()
}

// watch refreshes the queued gauge each second.
func (br *Bridge) watch() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	id := broker.BridgeClientIDPrefix + br.cfg.Name
	for {
		ctx, cancel := context.WithTimeout(br.ctx, time.Second)
		si, _, err := br.b.SessionInfo(ctx, id)
		cancel()
		if err == nil {
			br.queued.Store(int64(si.Queued + si.Inflight))
		}
		select {
		case <-t.C:
		case <-br.ctx.Done():
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

// Kinds of throttled log lines.
const (
	logConnect = iota
	logLocalRefused
	logRemoteRefused
)

// logAllowed reports whether a line of this kind may be logged now: at
// most one every 10 s, so a remote that refuses everything does not
// flood the log (the counters count every one).
func (br *Bridge) logAllowed(kind int) bool {
	now := time.Now().UnixNano()
	last := br.logThrottle[kind].Load()
	return now-last >= int64(10*time.Second) && br.logThrottle[kind].CompareAndSwap(last, now)
}

// logConnectError logs a failed attempt (throttled).
func (br *Bridge) logConnectError(err error) {
	if br.logAllowed(logConnect) {
		br.log.Warn("bridge: cannot connect to the remote; retrying with backoff", "address", br.cfg.Address,
			"err", err, "attempts_failed", br.connectErrors.Load())
	}
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
}
