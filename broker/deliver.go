package broker

import (
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// Delivery to one session: the QoS it gets (min of published and granted),
// its queue and inflight window with their bounds, and the PUBLISH header
// encoded for its connection (writePublish).

func (l *Loop) deliverAgg(s *Session, m *Message) {
	om := outMsg{m: m, qos: min(m.QoS, s.agg.qos()), retain: s.agg.rap() && m.Retain, nids: uint8(s.agg.n()), ids: s.aggIDs}
	l.deliver(s, &om)
}

// deliverOne delivers m to s for one subscription.
func (l *Loop) deliverOne(s *Session, m *Message, granted byte, retain bool, id uint32) {
	om := outMsg{m: m, qos: min(m.QoS, granted), retain: retain}
	if id != 0 {
		om.ids[0], om.nids = id, 1
	}
	l.deliver(s, &om)
}

// deliver sends or queues one message for s; the delivered QoS is
// min(published, granted) [MQTT-3.8.4-8]. Loop-only.
func (l *Loop) deliver(s *Session, tmpl *outMsg) {
	m := tmpl.m
	if m.expired(l.now) {
		l.dropDelivery(dropExpired, s, m) // [MQTT-3.3.2-5]
		return
	}
	c := s.c
	if c != nil && c.state != stateConnected {
		// Closing: the socket is going away (found by FuzzWire: a will
		// published on a tick was written to a connection closed for
		// its keep-alive). Deliver as to an offline session: QoS 1/2
		// waits in the queue for the next connection.
		c = nil
	}
	if tmpl.qos == 0 {
		if c == nil {
			return // QoS 0 is not queued for offline sessions
		}
		if c.outboundFull() {
			l.dropDelivery(dropSlowConsumer, s, m)
			return
		}
		c.writePublish(tmpl, false, l.now)
		return
	}
	if s.extras != nil && s.extras.identKnown && l.b.opts.Authorizer != nil && !s.allowed(m.Topic, AccessRead) {
		// Read access is checked per delivered message (cached per
		// session and topic), as Mosquitto does; checked here too so a
		// refused message is not queued or stored.
		l.counters.aclDeniedRead++
		return
	}
	q := s.qos()
	size := len(m.Topic) + len(m.Payload)
	drop := numDropReasons
	switch o := &l.b.opts; {
	case q.queue.len()+q.inflight.len() >= o.MaxQueued:
		drop = dropQueueFull // --max-queued-messages
	case q.bytes+size > o.MaxQueuedBytes:
		drop = dropQueueBytes // --max-queued-bytes
	case l.queuedBytes+int64(size) > l.queuedBytesShare:
		drop = dropBrokerQueueBytes // --max-queued-bytes-total
	}
	if drop != numDropReasons {
		l.dropDelivery(drop, s, m)
		if m.ack != nil {
			m.ack.quotaExceeded.Store(true) // v5: PUBACK/PUBREC 0x97
		}
		return
	}
	om := new(outMsg)
	*om = *tmpl
	s.chargeQueued(om, size)
	om.seq = q.nextSeq
	q.nextSeq++
	m.retain()
	if c != nil && q.queue.len() == 0 && q.held == 0 && q.inflight.len() < int(c.sendQuota) && !c.outboundFull() && s.takePID(om) {
		om.state = outSent
		s.storeOutbound(om)
		q.inflight.pushBack(om)
		c.writePublish(om, false, l.now)
		return
	}
	om.state = outQueued
	s.storeOutbound(om)
	q.queue.pushBack(om)
	l.counters.queued++
	if c != nil && m.ack != nil && q.queue.len() >= l.b.opts.MaxQueued/2 {
		// Flow control: an online subscriber this far behind holds the
		// publisher's acknowledgement until it catches up, so publishers
		// that wait for acks (every QoS 1/2 client has a window) slow down
		// instead of filling the queue until messages must be dropped.
		m.ack.hold()
		q.deferred = append(q.deferred, m.ack)
		l.counters.acksDeferred++
	}
	if c != nil && q.queue.len() >= l.b.opts.MaxQueued/2 {
		s.available.Store(false) // shared groups skip a member this far behind
	}
}

// writePublish encodes the header of om for this connection and queues it
// with the shared payload as a second vector.
func (c *Client) writePublish(om *outMsg, dup bool, now int64) {
	if c.l.hooked.Has(hooks.Forward) && !om.forwarded {
		ok, made := c.forward(om)
		if !ok {
			return // dropped as if sent
		}
		if made != nil {
			defer made.release() // a QoS 0 copy: the output holds its own reference
		}
	}
	m := om.m
	p := codec.Publish{Topic: m.Topic, QoS: om.qos, Retain: om.retain, Dup: dup, PacketID: om.pid, Payload: m.Payload}
	var shared []byte // the message's forwarded properties, encoded once
	if c.version == codec.V5 {
		shared = m.propsWire()
		if m.ExpireAt != 0 {
			p.Props.Set(codec.PropMessageExpiry)
			p.Props.MessageExpiry = m.remainingExpiry(now) // [MQTT-3.3.2-6]
		}
		if om.nids > 0 {
			var ids [4]uint32
			copy(ids[:], om.ids[:om.nids])
			p.Props.SubscriptionIDs = ids[:om.nids]
		}
	}
	var alias uint16
	var aliasKnown bool
	if ta := c.aliases; ta != nil && ta.outMax > 0 { // outbound aliases are on for this connection
		alias, aliasKnown = ta.outboundAlias(m.Topic)
	}
	if alias != 0 {
		p.Props.Set(codec.PropTopicAlias)
		p.Props.TopicAlias = alias
		if aliasKnown {
			p.Topic = nil // [MQTT-3.3.2-7]: the client has the topic under the alias
		}
	}
	if c.l.b.opts.Authorizer != nil && c.s != nil && !c.s.allowed(m.Topic, AccessRead) {
		// The last gate: covers QoS 0, messages queued before an ACL
		// reload and sessions restored from the store. Dropped as if sent.
		c.l.counters.aclDeniedRead++
		if om.qos > 0 {
			c.s.completeOutbound(om.pid)
		}
		return
	}
	limit := codec.MaxPacketSize
	if c.maxOut > 0 && int(c.maxOut) < limit {
		limit = int(c.maxOut)
	}
	if p.LenExtra(c.version, len(shared)) > limit {
		// [MQTT-3.1.2-24/-25] Never exceed the client's Maximum Packet
		// Size, nor what the protocol can express: a 3.1.1 PUBLISH near
		// the largest remaining length grows past it with a v5 header
		// (properties, subscription identifiers). Drop the message and
		// behave as if it had been sent.
		c.l.dropDelivery(dropTooLarge, c.s, m)
		if om.qos > 0 && c.s != nil {
			c.s.completeOutbound(om.pid)
		}
		return
	}
	if alias != 0 {
		// Recorded only now: a message dropped above never told the
		// client the alias.
		c.aliases.useAlias(alias, aliasKnown, m.Topic)
		if aliasKnown {
			c.l.counters.aliasHits++
			c.l.counters.aliasBytesSaved += uint64(len(m.Topic) - 3)
		} else {
			c.l.counters.aliasAssigned++
		}
	}
	if om.storedIn > c.holdUntil {
		c.holdUntil = om.storedIn
	}
	ob := c.out()
	if g := om.gate; g != nil {
		if g.open.Load() {
			om.gate = nil
		} else {
			ob.gates = append(ob.gates, g)
		}
	}
	start := len(ob.wbuf)
	ob.wbuf = codec.AppendPublishHeaderExtra(ob.wbuf, &p, c.version, len(shared))
	ob.iov = append(ob.iov, ob.wbuf[start:len(ob.wbuf):len(ob.wbuf)])
	if len(shared) > 0 {
		ob.iov = append(ob.iov, shared)
	}
	if len(m.Payload) > 0 {
		ob.iov = append(ob.iov, m.Payload)
	}
	m.retain()
	ob.rel = append(ob.rel, m)
	ob.pending += len(ob.wbuf) - start + len(shared) + len(m.Payload)
	c.l.counters.publishOut[om.qos]++
	c.l.counters.payloadOut[om.qos] += uint64(len(m.Payload))
	c.l.counters.packetsOut[codec.PUBLISH]++
	c.markDirty()
	if c.l.hooked.Has(hooks.Delivered) {
		c.l.b.hooks.Delivered(c.hookClientNoAddr(), c.l.hookMessage(m.Topic, m.Payload, om.qos, om.retain, m.Props, originOf(m), nil), om.qos)
	}
}
