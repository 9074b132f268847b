package broker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
)

// What a bridge (package bridge) needs of an in-process client beyond
// Connect's: a reserved client id no network client can take over
// (ConnectBridge), acknowledgements the handler gives later, from any
// goroutine (SubscribeAck: a message is PUBACKed to the broker only once
// the remote broker has PUBACKed it, so the broker's own session queue
// holds what the remote has not taken, across outages and restarts), and
// a look at the session (SessionInfo: its filters, what it holds).

// BridgeClientIDPrefix starts the client ids of ConnectBridge's sessions
// ("$mcutie/bridge/" + name): reserved like ServerClientIDPrefix's.
const BridgeClientIDPrefix = ServerClientIDPrefix + "bridge/"

// ConnectBridge is Connect for the bridge called name: the client id is
// BridgeClientIDPrefix+name (opts.ClientID is ignored), which network
// clients may not use, so none can take the session over.
func (b *Broker) ConnectBridge(ctx context.Context, name string, opts ConnectOptions) (*InProcClient, error) {
	if name == "" {
		return nil, errors.New("broker: a bridge needs a name")
	}
	opts.ClientID = BridgeClientIDPrefix + name
	return b.connect(ctx, opts)
}

// SubscribeAck is SubscribeWith whose handler acknowledges each message
// itself: it must call ack once the message is processed, at once or
// later from any goroutine (a second call does nothing). A QoS 1/2
// message is PUBACKed (PUBRECed) to the broker at the ack; until then it
// takes one of ConnectOptions.ReceiveMaximum's slots, and beyond them the
// broker keeps new messages in the session queue (Options.MaxQueued,
// MaxQueuedBytes; stored for a persistent session). The handler itself
// runs on the client's goroutine, one message at a time and in order, so
// it must return quickly (hand the message on, ack later). A message not
// acked when the connection ends is sent again to the session's next
// connection, with Dup set. A handler that panics is recovered, logged,
// and its message acked.
func (ic *InProcClient) SubscribeAck(ctx context.Context, s ClientSubscription, handler func(m *Delivered, ack func())) error {
	if handler == nil {
		return errors.New("broker: SubscribeAck needs a handler")
	}
	return ic.subscribe(ctx, s, inprocHandler{afn: handler})
}

// callAck runs the SubscribeAck handlers matching it; the message is
// done once each has acked. Called on the client's goroutine.
func (ic *InProcClient) callAck(afns []func(*Delivered, func()), it subItem) {
	var left atomic.Int32
	left.Store(int32(len(afns)))
	for _, fn := range afns {
		var once sync.Once
		ack := func() {
			once.Do(func() {
				if left.Add(-1) == 0 {
					ic.conn.done(it)
				}
			})
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					ic.opts.Logger.Error("in-process client handler panicked", slog.String("client", ic.id),
						slog.String("topic", it.d.Topic), slog.Any("panic", r))
					ack()
				}
			}()
			fn(it.d, ack)
		}()
	}
}

// DropUnmatched makes the client acknowledge and drop (counting them in
// Dropped) the QoS 1/2 messages no handler matches, instead of holding
// them for a later Subscribe: those held now and those to come. A bridge
// calls it once its handlers are in place, so that messages a resumed
// session had queued for a filter it no longer has do not hold window
// slots for ever. Safe for concurrent use.
func (ic *InProcClient) DropUnmatched() {
	ic.dropUnmatched.Store(true)
	ic.poke()
}

// SessionInfo is what an in-process client's session holds (SessionInfo).
type SessionInfo struct {
	// Filters are the session's subscriptions, as subscribed.
	Filters []string
	// Inflight are the QoS 1/2 messages sent to the client and not yet
	// acknowledged; Queued those waiting behind them (the session queue).
	Inflight, Queued int
}

// SessionInfo asks the session's loop what the session holds now. Safe
// for concurrent use; it must not be called on a loop.
func (ic *InProcClient) SessionInfo(ctx context.Context) (SessionInfo, error) {
	si, _, err := ic.b.SessionInfo(ctx, ic.id)
	return si, err
}

// SessionInfo reports what the session of clientID holds now, connected
// or not (found false: there is none). It asks every loop (through its
// inbox) and waits for them, or until ctx is done. Safe for concurrent
// use; it must not be called on a loop.
func (b *Broker) SessionInfo(ctx context.Context, clientID string) (si SessionInfo, found bool, err error) {
	type answer struct {
		si SessionInfo
		ok bool
	}
	res := make(chan answer, len(b.loops))
	asked := 0
	for _, l := range b.loops {
		if !l.bound() {
			continue
		}
		l := l
		fn := func() {
			s := l.sessions[clientID]
			if s == nil {
				res <- answer{}
				return
			}
			a := answer{ok: true}
			a.si.Inflight, a.si.Queued = s.inflightLen(), s.queuedLen()
			if s.extras != nil {
				for f := range s.extras.subs {
					a.si.Filters = append(a.si.Filters, f)
				}
			}
			res <- a
		}
		if !l.post(inboxItem{kind: itemFunc, fn: fn}, true) {
			if err := l.exec(fn); err != nil {
				continue
			}
		}
		asked++
	}
	for ; asked > 0; asked-- {
		select {
		case a := <-res:
			if a.ok {
				si, found = a.si, true
			}
		case <-ctx.Done():
			return si, found, ctx.Err()
		}
	}
	return si, found, nil
}
