package broker

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// Server-side publishing with every MQTT 5 property and a result:
// PublishMessage. The result is the acknowledgement machinery a client's
// PUBLISH gets (ack.go): an ackWait held by every store operation the
// message causes on every loop, by the posts to other loops and by
// subscribers far behind (flow control), released into a Client that is
// no connection (ackClient) whose "PUBACK" carries the reason code a v5
// publisher would have got.

// Publication is an application message published from the server side
// (PublishMessage) and, as Delivered, a message a server-side
// subscription receives.
type Publication struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// MessageExpiry: the message is dropped for subscribers that have not
	// received it once it has waited this long (v5 Message Expiry
	// Interval, whole seconds, rounded up). 0: never.
	MessageExpiry time.Duration
	// PayloadFormat 1 says the payload is UTF-8 text (v5 Payload Format
	// Indicator); 0 (unspecified bytes) is not sent.
	PayloadFormat   byte
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty
}

// UserProperty is one MQTT 5 user property; names may repeat.
type UserProperty struct{ Key, Value string }

// Errors of PublishMessage.
var (
	// ErrNotStored: the store failed to keep what the message caused
	// (a v5 publisher is told 0x80).
	ErrNotStored = errors.New("broker: the message was routed but the store failed to keep it")
	// ErrQuotaExceeded: at least one subscriber's queue (or the retained
	// index) was full and missed the message (a v5 publisher is told 0x97).
	ErrQuotaExceeded = errors.New("broker: a subscriber's queue was full: the message missed it")
	// ErrDropped: a Publish hook dropped the message.
	ErrDropped = errors.New("broker: a publish hook dropped the message")
)

// codecPublish checks pm and returns it as a PUBLISH (aliasing pm).
func (b *Broker) codecPublish(pm *Publication) (codec.Publish, error) {
	p := codec.Publish{Topic: []byte(pm.Topic), Payload: pm.Payload, QoS: pm.QoS, Retain: pm.Retain}
	if err := codec.ValidateTopicName(p.Topic); err != nil {
		return p, err
	}
	if pm.QoS > 2 {
		return p, errors.New("broker: QoS must be 0, 1 or 2")
	}
	if len(pm.UserProperties) > b.opts.MaxUserProperties {
		return p, errors.New("broker: more user properties than Options.MaxUserProperties")
	}
	pp := &p.Props
	if pm.MessageExpiry > 0 {
		pp.Set(codec.PropMessageExpiry)
		pp.MessageExpiry = uint32(min((pm.MessageExpiry+time.Second-1)/time.Second, 0xFFFFFFFF))
	}
	switch pm.PayloadFormat {
	case 0:
	case 1:
		if !utf8.Valid(pm.Payload) {
			return p, errors.New("broker: PayloadFormat 1 with a payload that is not UTF-8") // MQTT-3.3.2-4
		}
		pp.Set(codec.PropPayloadFormat)
		pp.PayloadFormat = 1
	default:
		return p, errors.New("broker: PayloadFormat must be 0 or 1")
	}
	if pm.ContentType != "" {
		pp.Set(codec.PropContentType)
		pp.ContentType = []byte(pm.ContentType)
	}
	if pm.ResponseTopic != "" {
		if err := codec.ValidateTopicName([]byte(pm.ResponseTopic)); err != nil {
			return p, errors.New("broker: ResponseTopic is not a topic name") // MQTT-3.3.2-14
		}
		pp.Set(codec.PropResponseTopic)
		pp.ResponseTopic = []byte(pm.ResponseTopic)
	}
	if pm.CorrelationData != nil {
		pp.Set(codec.PropCorrelationData)
		pp.CorrelationData = pm.CorrelationData
	}
	for _, u := range pm.UserProperties {
		pp.User = append(pp.User, codec.UserProperty{Key: []byte(u.Key), Value: []byte(u.Value)})
	}
	return p, nil
}

// PublishMessage routes pm from the server side, as Publish does, and
// returns once it is routed on every loop and everything it caused is
// stored (QoS 1/2 messages queued for persistent sessions, a retained
// message): when a client publishing it would have got its PUBACK. Like
// that PUBACK it also waits for subscribers far behind (flow control). It
// returns ErrNotStored, ErrQuotaExceeded or ErrDropped when a v5
// publisher would have been told so, ctx's error when ctx ends first (the
// message may still be routed), ErrClosed after Shutdown and
// ErrInboxFull when the chosen loop's inbox stays full. Publish hooks see
// it with origin hooks.FromServer. Safe for concurrent use; pm is copied
// before it returns. It must not be called on a loop (from a hook or a
// subscription handler that runs there): it waits for the loops.
func (b *Broker) PublishMessage(ctx context.Context, pm Publication) error {
	if b.closed.Load() {
		return ErrClosed
	}
	p, err := b.codecPublish(&pm)
	if err != nil {
		return err
	}
	l := b.loops[b.topicLoop(p.Topic)]
	m := newMessage(&p, nil, b.readClock())
	res := make(chan error, 1)
	if !l.post(inboxItem{kind: itemFunc, fn: func() { l.publishServer(m, res) }}, true) {
		m.release()
		return ErrInboxFull
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishServer routes a PublishMessage and reports its outcome on res.
// Loop-only.
func (l *Loop) publishServer(m *Message, res chan<- error) {
	if l.b.hooks.Has(hooks.Publish) {
		if m = l.interceptMessage(m, hooks.FromServer, nil); m == nil {
			res <- ErrDropped
			return
		}
	}
	ac := &Client{l: l, conn: &ackConn{l: l, res: res}, state: stateConnected, version: codec.V5, idx: -1}
	aw := newAckWait(ac, codec.PUBACK, 1)
	m.ack = aw
	n := l.publish(m, nil)
	m.release()
	aw.code = codec.Success
	if n == 0 {
		aw.code = codec.NoMatchingSubscribers
	}
	aw.releaseOn(l, nil)
}

// ackConn receives the acknowledgement of a PublishMessage: the PUBACK
// that ackWait.write queues for its Client. Its methods run on that loop.
type ackConn struct {
	l    *Loop
	res  chan<- error
	sent bool
}

var _ Conn = (*ackConn)(nil)

func (a *ackConn) Writev(bufs [][]byte) (int, error) {
	var raw []byte
	for _, b := range bufs {
		raw = append(raw, b...)
	}
	h, err := codec.Frame(raw, codec.MaxPacketSize)
	if err != nil || a.sent {
		return 0, errAckConn
	}
	var ack codec.Ack
	if ack.Decode(h, raw[h.HeaderLen:h.HeaderLen+h.Remaining], codec.V5) != nil {
		return 0, errAckConn
	}
	a.sent = true
	a.l.counters.packetsOut[codec.PUBACK]-- // counted by queueControl, but not sent to anyone
	switch ack.Code {
	case codec.Success, codec.NoMatchingSubscribers:
		a.res <- nil
	case codec.QuotaExceeded:
		a.res <- ErrQuotaExceeded
	default:
		a.res <- ErrNotStored
	}
	// Not on the wire: not counted as sent (Client.flush counts the
	// bytes only when Writev reports no error).
	return 0, errAckConn
}

var errAckConn = errors.New("broker: acknowledgement of a server-side publish")

func (a *ackConn) OutboundBuffered() int { return 0 }
func (a *ackConn) Close() error          { return nil }
func (a *ackConn) RemoteAddr() string    { return "server" }
func (a *ackConn) Wake() error           { return nil }
