//go:build linux

package client

import (
	"fmt"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// connState is where a connection is in its life.
type connState uint8

const (
	stQueued      connState = iota // waiting for a dial slot
	stDialing                      // non-blocking connect() issued
	stConnecting                   // CONNECT written, waiting for CONNACK
	stSubscribing                  // SUBSCRIBE written, waiting for SUBACK
	stReady                        // publishing and/or receiving
	stClosed
)

var stateNames = [...]string{"queued", "dialing", "connecting", "subscribing", "ready", "closed"}

func (s connState) String() string { return stateNames[s] }

// Bounds of one connection's buffers.
const (
	maxInbound = 16 << 20 // largest packet (and carry buffer) accepted from the broker
	highWater  = 256 << 10
	floodBytes = 64 << 10 // bytes a rate-0 publisher encodes per loop iteration
	floodBatch = 1024     // messages a rate-0 publisher encodes per loop iteration (and at most floodBytes)
	pacedBatch = 1024     // messages a paced publisher may catch up on per wake-up
	maxPubID   = 1 << 20  // publisher ids above this are foreign
)

// conn is one MQTT connection. Loop-only: every field is touched by its
// loop's goroutine, and by Collect after the loop has stopped.
type conn struct {
	l     *loop
	spec  *Spec
	b     *batch // the Connect batch until the connection is ready or failed
	fd    int
	state connState

	out     []byte // encoded, not yet written
	in      []byte // carry: the start of a packet not yet complete
	dirty   bool
	pollOut bool // EPOLLOUT is registered

	dialAt, readyAt, subSentAt, lastNew, lastSent time.Duration
	keepAlive                                     time.Duration
	maxOut                                        int // broker's v5 Maximum Packet Size; 0: none

	pingsOut, pingsIn uint64

	tracks  []*track // by publisher id
	foreign uint64
	qos2in  []uint64 // inbound QoS 2 packet ids awaiting PUBREL (a 65536-bit set), allocated on first use

	pub *pubState
}

// pubState is a publisher's sending state.
type pubState struct {
	spec     *PubSpec
	topics   [][]byte
	payload  []byte
	pkt      codec.Publish
	window   int
	seq      uint64 // messages sent so far = the next sequence number
	sent     uint64
	inflight int
	nextID   uint16
	ids      []uint64 // packet ids in flight (65536-bit set)
	rec      []uint64 // QoS 2: PUBREC received, PUBCOMP pending
	interval float64  // ns between messages (rate mode)
	start    time.Duration
	next     time.Duration // scheduled time of message seq (rate mode)
	heapIdx  int           // index in the loop's heap; -1: not in it
	inFlood  bool
	done     bool
	finPing  uint64 // pingsOut after the PINGREQ that closes a Count run; 0: not sent
}

func newConn(l *loop, s *Spec, b *batch) *conn {
	c := &conn{l: l, spec: s, b: b, fd: -1, subSentAt: -1, keepAlive: time.Duration(l.e.o.KeepAlive) * time.Second}
	if p := s.Pub; p != nil {
		ps := &pubState{spec: p, window: p.Window, heapIdx: -1}
		if ps.window <= 0 {
			ps.window = 64
		}
		ps.window = min(ps.window, 65535)
		for _, t := range p.Topics {
			ps.topics = append(ps.topics, []byte(t))
		}
		ps.payload = make([]byte, p.Payload)
		for i := range ps.payload {
			ps.payload[i] = 'a' + byte(i%26)
		}
		ps.pkt = codec.Publish{QoS: p.QoS, Retain: p.Retain}
		if p.QoS > 0 {
			ps.ids = make([]uint64, 1024)
			if p.QoS == 2 {
				ps.rec = make([]uint64, 1024)
			}
		}
		if p.Rate > 0 {
			ps.interval = float64(time.Second) / p.Rate
		}
		c.pub = ps
	}
	return c
}

func bitGet(s []uint64, id uint16) bool { return s[id>>6]&(1<<(id&63)) != 0 }
func bitSet(s []uint64, id uint16)      { s[id>>6] |= 1 << (id & 63) }
func bitClr(s []uint64, id uint16)      { s[id>>6] &^= 1 << (id & 63) }

// trackFor returns the track of publisher id, or nil.
func (c *conn) trackFor(id uint32) *track {
	if int(id) < len(c.tracks) {
		return c.tracks[id]
	}
	return nil
}

// appendConnect encodes CONNECT.
func (c *conn) appendConnect() {
	v := c.l.e.o.Version
	p := codec.Connect{Version: v, CleanStart: true, KeepAlive: c.l.e.o.KeepAlive, ClientID: []byte(c.spec.ClientID)}
	if exp := c.l.e.o.SessionExpiry; exp > 0 {
		p.CleanStart = false
		if v == codec.V5 {
			p.Props.Set(codec.PropSessionExpiry)
			p.Props.SessionExpiry = exp
		}
	}
	c.out = p.Append(c.out)
}

// handle processes one inbound packet. It returns false once the
// connection is closed.
func (c *conn) handle(h codec.FixedHeader, body []byte, now time.Duration) bool {
	l := c.l
	v := l.e.o.Version
	switch h.Type {
	case codec.PUBLISH:
		if c.state != stReady && c.state != stSubscribing {
			return l.fail(c, ReasonProtocol, "PUBLISH before CONNACK")
		}
		p := &l.pubIn
		if err := p.Decode(h, body, v); err != nil {
			return l.fail(c, ReasonProtocol, "PUBLISH: "+err.Error())
		}
		switch p.QoS {
		case 0:
			c.deliver(p, now)
		case 1:
			c.appendAck(codec.PUBACK, p.PacketID, now)
			c.deliver(p, now)
		case 2:
			if c.qos2in == nil {
				c.qos2in = make([]uint64, 1024)
			}
			fresh := !bitGet(c.qos2in, p.PacketID)
			bitSet(c.qos2in, p.PacketID)
			c.appendAck(codec.PUBREC, p.PacketID, now)
			if fresh {
				c.deliver(p, now)
			}
		}
	case codec.PUBACK, codec.PUBREC, codec.PUBREL, codec.PUBCOMP:
		a := &l.ack
		if err := a.Decode(h, body, v); err != nil {
			return l.fail(c, ReasonProtocol, typeName(h.Type)+": "+err.Error())
		}
		c.onAck(a, now)
	case codec.CONNACK:
		return c.onConnack(h, body, now)
	case codec.SUBACK:
		if c.state != stSubscribing {
			return l.fail(c, ReasonProtocol, "unexpected SUBACK")
		}
		s := &l.suback
		if err := s.Decode(h, body, v); err != nil {
			return l.fail(c, ReasonProtocol, "SUBACK: "+err.Error())
		}
		for i, code := range s.Codes {
			if code.IsError() {
				return l.fail(c, ReasonSuback, fmt.Sprintf("filter %q refused: 0x%02x %s", c.spec.Filters[min(i, len(c.spec.Filters)-1)], byte(code), code))
			}
		}
		l.ready(c, now)
	case codec.PINGRESP:
		c.pingsIn++
		l.st.pingsRecv.Add(1)
		if p := c.pub; p != nil && p.finPing > 0 && c.pingsIn >= p.finPing && !p.done {
			p.done = true
			l.st.pubsDone.Add(1)
		}
	case codec.DISCONNECT:
		d := &l.disc
		detail := "DISCONNECT"
		if err := d.Decode(h, body, v); err == nil && v == codec.V5 {
			detail = fmt.Sprintf("DISCONNECT 0x%02x %s", byte(d.Code), d.Code)
			if len(d.Props.ReasonString) > 0 {
				detail += ": " + string(d.Props.ReasonString)
			}
		}
		return l.fail(c, ReasonServerDisconnect, detail)
	default:
		return l.fail(c, ReasonProtocol, "unexpected packet type "+typeName(h.Type))
	}
	return c.state != stClosed
}

// onConnack handles CONNACK: adopt the broker's limits, then subscribe or
// become ready.
func (c *conn) onConnack(h codec.FixedHeader, body []byte, now time.Duration) bool {
	l := c.l
	v := l.e.o.Version
	if c.state != stConnecting {
		return l.fail(c, ReasonProtocol, "unexpected CONNACK")
	}
	ca := &l.connack
	if err := ca.Decode(h, body, v); err != nil {
		return l.fail(c, ReasonProtocol, "CONNACK: "+err.Error())
	}
	if ca.Code != 0 {
		detail := fmt.Sprintf("CONNACK code 0x%02x", ca.Code)
		if v == codec.V5 {
			detail += " " + codec.ReasonCode(ca.Code).String()
		}
		return l.fail(c, ReasonConnack, detail)
	}
	us := (now - c.dialAt).Microseconds()
	_ = l.cack.RecordValue(max(us, 1)) // above an hour: not recorded
	if v == codec.V5 {
		if ca.Props.Has(codec.PropServerKeepAlive) {
			c.keepAlive = time.Duration(ca.Props.ServerKeepAlive) * time.Second
		}
		if ca.Props.Has(codec.PropMaximumPacketSize) {
			c.maxOut = int(ca.Props.MaximumPacketSize)
		}
		if p := c.pub; p != nil && ca.Props.Has(codec.PropReceiveMaximum) {
			p.window = min(p.window, int(ca.Props.ReceiveMaximum))
		}
	}
	if p := c.pub; p != nil && c.maxOut > 0 {
		longest := 0
		for _, t := range p.topics {
			longest = max(longest, len(t))
		}
		probe := codec.Publish{QoS: p.spec.QoS, Topic: make([]byte, longest), Payload: p.payload}
		if n := probe.Len(v); n > c.maxOut {
			return l.fail(c, ReasonLimit, fmt.Sprintf("a PUBLISH of %d bytes exceeds the broker's Maximum Packet Size %d: lower --payload", n, c.maxOut))
		}
	}
	if len(c.spec.Filters) == 0 {
		l.ready(c, now)
		return true
	}
	s := codec.Subscribe{PacketID: 1}
	for _, f := range c.spec.Filters {
		s.Subs = append(s.Subs, codec.Subscription{Filter: []byte(f), QoS: c.spec.SubQoS})
	}
	c.out = s.Append(c.out, v)
	c.subSentAt, c.lastSent = now, now
	c.state = stSubscribing
	l.markDirty(c)
	return true
}

// appendAck encodes a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (c *conn) appendAck(t codec.Type, id uint16, now time.Duration) {
	a := codec.Ack{Type: t, PacketID: id}
	c.out = a.Append(c.out, c.l.e.o.Version)
	c.lastSent = now
	c.l.markDirty(c)
}

// onAck handles PUBACK/PUBREC/PUBCOMP for our publishes and PUBREL for
// inbound QoS 2.
func (c *conn) onAck(a *codec.Ack, now time.Duration) {
	l := c.l
	if a.Type == codec.PUBREL {
		if c.qos2in != nil {
			bitClr(c.qos2in, a.PacketID)
		}
		c.appendAck(codec.PUBCOMP, a.PacketID, now)
		return
	}
	p := c.pub
	if p == nil || p.ids == nil || !bitGet(p.ids, a.PacketID) {
		l.st.unexpected.Add(1)
		return
	}
	switch a.Type {
	case codec.PUBACK:
		if p.spec.QoS != 1 {
			l.st.unexpected.Add(1)
			return
		}
		if a.Code.IsError() {
			l.st.rejectedQ.Add(1)
		}
		c.release(a.PacketID)
	case codec.PUBREC:
		if p.spec.QoS != 2 {
			l.st.unexpected.Add(1)
			return
		}
		if a.Code.IsError() { // the flow ends here (§4.3.3)
			l.st.rejectedQ.Add(1)
			bitClr(p.rec, a.PacketID)
			c.release(a.PacketID)
			return
		}
		bitSet(p.rec, a.PacketID)
		c.appendAck(codec.PUBREL, a.PacketID, now)
	case codec.PUBCOMP:
		if p.spec.QoS != 2 || !bitGet(p.rec, a.PacketID) {
			l.st.unexpected.Add(1)
			return
		}
		bitClr(p.rec, a.PacketID)
		c.release(a.PacketID)
	}
}

// release ends the flow of an outbound packet id.
func (c *conn) release(id uint16) {
	p, l := c.pub, c.l
	bitClr(p.ids, id)
	p.inflight--
	l.st.inflight.Add(-1)
	l.st.acked.Add(1)
	c.checkFinished()
	l.kick(c)
}

// checkFinished starts the end of a Count run: once every message is sent
// and acknowledged, a PINGREQ; its PINGRESP proves the broker has processed
// everything before it (packets on a connection are handled in order).
func (c *conn) checkFinished() {
	p := c.pub
	if p.spec.Count == 0 || p.seq < p.spec.Count || p.inflight > 0 || p.finPing > 0 || c.state != stReady {
		return
	}
	c.out = codec.AppendPingreq(c.out)
	c.pingsOut++
	c.l.st.pingsSent.Add(1)
	p.finPing = c.pingsOut
	c.l.markDirty(c)
}

// canSend reports whether the publisher may encode another message now.
func (c *conn) canSend() bool {
	p := c.pub
	return c.state == stReady && c.l.publishing && !p.done &&
		(p.spec.Count == 0 || p.seq < p.spec.Count) &&
		(p.spec.QoS == 0 || p.inflight < p.window) &&
		len(c.out) < highWater
}

// publishOne encodes the next message with send time ts.
func (c *conn) publishOne(now, ts time.Duration) {
	p, l := c.pub, c.l
	p.pkt.Topic = p.topics[p.seq%uint64(len(p.topics))]
	if p.spec.QoS > 0 {
		id := p.nextID
		for {
			id++
			if id != 0 && !bitGet(p.ids, id) {
				break
			}
		}
		p.nextID = id
		bitSet(p.ids, id)
		p.pkt.PacketID = id
		p.inflight++
		l.st.inflight.Add(1)
	}
	if len(p.payload) >= HeaderLen {
		putHeader(p.payload, int64(ts), p.spec.ID, uint32(p.seq))
	}
	p.pkt.Payload = p.payload
	c.out = p.pkt.Append(c.out, l.e.o.Version)
	p.seq++
	p.sent++
	l.st.sent.Add(1)
	c.lastSent = now
	l.markDirty(c)
	if p.spec.Count > 0 && p.seq == p.spec.Count {
		c.checkFinished()
	}
}

// deliver accounts for one message delivered to this subscriber.
func (c *conn) deliver(p *codec.Publish, now time.Duration) {
	l := c.l
	l.st.recv.Add(1)
	if !c.spec.Track {
		return
	}
	ts, pub, seq, ok := readHeader(p.Payload)
	if !ok || pub >= maxPubID || seq > maxTrackedSeq {
		c.foreign++
		return
	}
	if int(pub) >= len(c.tracks) {
		c.tracks = append(c.tracks, make([]*track, int(pub)+1-len(c.tracks))...)
	}
	tr := c.tracks[pub]
	if tr == nil {
		tr = &track{}
		c.tracks[pub] = tr
	}
	if tr.add(seq) {
		c.lastNew = now
	}
	lat := now - time.Duration(ts)
	if c.spec.LatencyFromSubscribe {
		lat = now - c.subSentAt
	}
	_ = l.lat.RecordValue(max(lat.Microseconds(), 1)) // above an hour: not recorded
}

var typeNames = [...]string{"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

// typeName names a packet type for error details.
func typeName(t codec.Type) string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", t)
}
