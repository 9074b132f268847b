package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// Message is one application message, shared by every delivery of one
// PUBLISH (local subscribers, other loops, offline queues, the retained
// index). Its bytes are a single copy of what the publisher sent, made once
// when the message must outlive OnTraffic. It is immutable once routed and
// reference counted: every holder calls release exactly once.
type Message struct {
	refs    atomic.Int32
	buf     []byte // owns Topic, Payload and the byte-valued properties
	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	// Props holds the properties that are forwarded (MQTT-3.3.2-4/-15/-16/
	// -17/-18/-20): payload format, content type, response topic,
	// correlation data and user properties in order; nil when the publish
	// had none, which keeps a message without them (most, and every 3.x
	// one) small: a million retained messages are a million Messages.
	// Message expiry is kept as ExpireAt and recomputed per send
	// (MQTT-3.3.2-6).
	Props    *codec.Properties
	propsBuf *forwardedProps // kept across pool reuse: Props points into it when set
	ExpireAt int64           // unix nanoseconds, 0 = never
	Created  int64           // unix nanoseconds

	origin *Session // publisher, for No Local (MQTT-3.8.3-3); nil for server-side publishes
	// fromPeer: routed from another node of the cluster (RouteFromPeer),
	// so never forwarded again.
	fromPeer bool

	// pinned messages never return to the pool: a retained message may be
	// read by any loop from the retained index without holding a
	// reference, so its memory must stay valid until the GC proves
	// nobody points at it.
	pinned bool

	// ack is the publisher's acknowledgement, waiting for the store
	// operations this message causes on every loop (nil: none waits).
	ack *ackWait
}

// forwardedProps are a Message's forwarded properties, decoded (for the
// store) and encoded once (wire, Properties.AppendContent): every v5
// delivery writes wire as its own vector, as it does the payload, instead
// of encoding them again per subscriber (issue 21.12: ten thousand tiny
// user properties cost 14× an equal payload when they were).
type forwardedProps struct {
	p    codec.Properties
	wire []byte
}

// propsWire is the encoded forwarded properties; nil when there are none.
func (m *Message) propsWire() []byte {
	if m.Props == nil {
		return nil
	}
	return m.propsBuf.wire
}

const maxPooledMessageBuf = 64 << 10

var messagePool = sync.Pool{New: func() any { return new(Message) }}

// liveMessages counts Messages made by newMessage whose last reference is
// not yet released, while trackMessages is set. Only tests set it (before
// any broker runs): the wire fuzz target checks that every reference a
// connection's packets created is released once its sessions end. Reading
// one bool per message keeps the counter off the production hot path.
var (
	trackMessages bool
	liveMessages  atomic.Int64
)

// newMessage copies p into a pooled Message with one reference.
func newMessage(p *codec.Publish, origin *Session, now int64) *Message {
	m := messagePool.Get().(*Message)
	m.refs.Store(1)
	if trackMessages {
		liveMessages.Add(1)
	}
	n := len(p.Topic) + len(p.Payload) + len(p.Props.ContentType) + len(p.Props.ResponseTopic) + len(p.Props.CorrelationData)
	for _, u := range p.Props.User {
		n += len(u.Key) + len(u.Value)
	}
	if cap(m.buf) < n {
		m.buf = make([]byte, 0, n)
	}
	b := m.buf[:0]
	b, m.Topic = appendSub(b, p.Topic)
	b, m.Payload = appendSub(b, p.Payload)
	m.Props = nil
	m.ExpireAt = 0
	if pp := &p.Props; pp.Present != 0 || len(pp.User) > 0 {
		if pp.Has(codec.PropMessageExpiry) {
			m.ExpireAt = now + int64(pp.MessageExpiry)*int64(time.Second)
		}
		if len(pp.User) > 0 || pp.Has(codec.PropPayloadFormat) || pp.Has(codec.PropContentType) || pp.Has(codec.PropResponseTopic) || pp.Has(codec.PropCorrelationData) {
			fp := m.propsBuf
			if fp == nil {
				fp = new(forwardedProps)
				m.propsBuf = fp
			}
			mp := &fp.p
			user := mp.User[:0]
			*mp = codec.Properties{}
			if pp.Has(codec.PropPayloadFormat) {
				mp.Set(codec.PropPayloadFormat)
				mp.PayloadFormat = pp.PayloadFormat
			}
			if pp.Has(codec.PropContentType) {
				mp.Set(codec.PropContentType)
				b, mp.ContentType = appendSub(b, pp.ContentType)
			}
			if pp.Has(codec.PropResponseTopic) {
				mp.Set(codec.PropResponseTopic)
				b, mp.ResponseTopic = appendSub(b, pp.ResponseTopic)
			}
			if pp.Has(codec.PropCorrelationData) {
				mp.Set(codec.PropCorrelationData)
				b, mp.CorrelationData = appendSub(b, pp.CorrelationData)
			}
			for _, u := range pp.User {
				var k, v []byte
				b, k = appendSub(b, u.Key)
				b, v = appendSub(b, u.Value)
				user = append(user, codec.UserProperty{Key: k, Value: v})
			}
			mp.User = user
			m.Props = mp
			fp.wire = mp.AppendContent(fp.wire[:0])
		}
	}
	m.buf = b
	m.QoS = p.QoS
	m.Retain = p.Retain
	m.pinned = p.Retain
	m.Created = now
	m.origin = origin
	m.ack = nil
	m.fromPeer = false
	return m
}

func appendSub(b, src []byte) ([]byte, []byte) {
	start := len(b)
	b = append(b, src...)
	return b, b[start:len(b):len(b)]
}

func (m *Message) retain() { m.refs.Add(1) }

// release drops one reference; the last one returns the message to the pool.
func (m *Message) release() {
	n := m.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 && !m.pinned {
		panic("BUG: broker: Message released more often than retained")
	}
	if trackMessages && n == 0 {
		liveMessages.Add(-1)
	}
	m.origin = nil
	if m.pinned || cap(m.buf) > maxPooledMessageBuf {
		return // let big buffers go to the GC rather than pin them in the pool
	}
	messagePool.Put(m)
}

// expired reports whether the message's expiry interval has passed (MQTT-3.3.2-5).
func (m *Message) expired(now int64) bool { return m.ExpireAt != 0 && now >= m.ExpireAt }

// remainingExpiry is the Message Expiry Interval to forward: the received
// value minus the time the message waited (MQTT-3.3.2-6), at least 1 s.
func (m *Message) remainingExpiry(now int64) uint32 {
	d := (m.ExpireAt - now + int64(time.Second) - 1) / int64(time.Second)
	if d < 1 {
		d = 1
	}
	return uint32(d)
}
