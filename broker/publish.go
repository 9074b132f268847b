package broker

import (
	"bytes"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
)

// handlePublish processes an inbound PUBLISH.
func (c *Client) handlePublish(p *codec.Publish) error {
	l := c.l
	s := c.s
	if c.version == codec.V5 {
		if len(p.Props.SubscriptionIDs) > 0 {
			// [MQTT-3.3.4-6] A client must not send a Subscription Identifier.
			return errProtocol("PUBLISH from a client carries a Subscription Identifier", "MQTT-3.3.4-6")
		}
		if p.Props.Has(codec.PropTopicAlias) {
			if err := c.resolveAlias(p); err != nil {
				return err
			}
		}
	}
	if len(p.Topic) > l.b.opts.MaxTopicLength || bytes.Count(p.Topic, []byte{'/'})+1 > l.b.opts.MaxTopicLevels {
		// --max-topic-length / --max-topic-levels.
		l.counters.dropped[dropTopicLimit]++
		if p.QoS > 0 && c.version == codec.V5 {
			c.queueAck(ackFor(p.QoS), p.PacketID, codec.TopicNameInvalid)
			return nil
		}
		return &codec.ReasonError{Code: codec.TopicNameInvalid, Reason: "topic longer or deeper than the server allows"}
	}
	if len(p.Props.User) > l.b.opts.MaxUserProperties {
		// --max-user-properties: each is forwarded to every subscriber
		// and kept in the store.
		l.counters.dropped[dropUserProperties]++
		if p.QoS > 0 {
			c.queueAck(ackFor(p.QoS), p.PacketID, codec.ImplementationSpecificError)
			return nil
		}
		return &codec.ReasonError{Code: codec.ImplementationSpecificError, Reason: "more user properties than the server allows"}
	}
	if isSys(p.Topic) || !s.allowed(p.Topic, AccessWrite) {
		// Not authorized: dropped and counted. v5 QoS 1/2 is told 0x87;
		// 3.x has no code for it, so, as Mosquitto does, the PUBLISH is
		// acknowledged normally and dropped. QoS 0 is dropped silently.
		l.counters.aclDeniedPublish++
		if p.QoS > 0 {
			code := codec.Success
			if c.version == codec.V5 {
				code = codec.NotAuthorized
			}
			c.queueAck(ackFor(p.QoS), p.PacketID, code)
		}
		return nil
	}
	l.counters.publishIn[p.QoS]++
	l.counters.payloadIn[p.QoS] += uint64(len(p.Payload))

	if p.QoS == 1 && c.version == codec.V5 {
		// Our Receive Maximum binds QoS 1 as well as QoS 2
		// (MQTT-3.3.4-7): a PUBLISH whose PUBACK waits (for the store,
		// or for a subscriber far behind) counts until it is sent, so a
		// client that does not wait for acknowledgements cannot make the
		// broker hold an unbounded number of messages for it.
		if int(c.inboundQoS1) >= int(l.b.opts.MaxInflight) {
			return &codec.ReasonError{Code: codec.ReceiveMaximumExceeded, Reason: "more unacknowledged QoS 1 PUBLISHes than Receive Maximum", SpecID: "MQTT-3.3.4-7"}
		}
		c.inboundQoS1++
	}
	if p.QoS == 2 {
		q := s.qos()
		for _, id := range q.inboundQoS2 {
			if id == p.PacketID {
				// [MQTT-4.3.3-10] A resent PUBLISH before PUBREL is acknowledged
				// again but not delivered again.
				c.queueAck(codec.PUBREC, p.PacketID, codec.Success)
				return nil
			}
		}
		if len(q.inboundQoS2) >= int(l.b.opts.MaxInflight) {
			// Our Receive Maximum was exceeded (MQTT-3.3.4-7 binds the client).
			return &codec.ReasonError{Code: codec.ReceiveMaximumExceeded, Reason: "more unacknowledged QoS 2 PUBLISHes than Receive Maximum", SpecID: "MQTT-3.3.4-7"}
		}
		q.inboundQoS2 = append(q.inboundQoS2, p.PacketID)
	}

	m := newMessage(p, s, l.now)
	var aw *ackWait
	if p.QoS > 0 {
		// The acknowledgement waits for every store operation the message
		// causes, on every loop it reaches (durability "commit"/"sync"),
		// and for online subscribers that are too far behind (flow control).
		aw = newAckWait(c, ackFor(p.QoS), p.PacketID)
		m.ack = aw
		if p.QoS == 2 && s.persistent() {
			aw.q2 = newQoS2Order(s)
			aw.hold() // until drainQoS2 has stored the inbound record
			q := s.qos()
			q.qos2Pending = append(q.qos2Pending, aw)
		}
	}
	n := l.publish(m, s)
	m.release()
	if aw != nil && aw.q2 != nil {
		if aw.q2.routing.Load() == 1 {
			// Routed on this loop only: the record goes in this pass's
			// Apply, with the outbound records (after earlier marks).
			aw.q2.ready = true
			s.drainQoS2()
		} else {
			// Other loops have it too: store the record after theirs.
			l.afterApply = append(l.afterApply, aw)
		}
	}

	code := codec.Success
	if n == 0 && c.version == codec.V5 {
		code = codec.NoMatchingSubscribers
	}
	if aw != nil {
		aw.code = code
		aw.releaseOn(l, nil)
		return nil
	}
	switch p.QoS {
	case 1:
		c.queueAck(codec.PUBACK, p.PacketID, code)
	case 2:
		c.queueAck(codec.PUBREC, p.PacketID, code)
	}
	return nil
}

// releaseAck drops this loop's hold on m's acknowledgement. Loop-only.
func (l *Loop) releaseAck(m *Message) {
	if m.ack != nil {
		m.ack.releaseOn(l, nil)
	}
}

func ackFor(qos byte) codec.Type {
	if qos == 2 {
		return codec.PUBREC
	}
	return codec.PUBACK
}

// resolveAlias applies an inbound Topic Alias [MQTT-3.3.2-12].
func (c *Client) resolveAlias(p *codec.Publish) error {
	a := p.Props.TopicAlias
	max := c.l.b.opts.TopicAliasMaximum
	if a == 0 || a > max {
		return &codec.ReasonError{Code: codec.TopicAliasInvalid, Reason: "topic alias out of range", SpecID: "MQTT-3.3.2-12"}
	}
	if c.aliases == nil {
		t := make([][]byte, max)
		c.aliases = &t
	}
	slot := &(*c.aliases)[a-1]
	if len(p.Topic) > 0 {
		*slot = append((*slot)[:0], p.Topic...)
		return nil
	}
	if len(*slot) == 0 {
		// §3.3.2.1: an empty topic with an unknown alias is a protocol error.
		return errProtocol("topic alias not set", "MQTT-3.3.2-7")
	}
	p.Topic = *slot
	return nil
}

func (l *Loop) setRetained(m *Message) {
	b := l.b
	if len(m.Payload) == 0 {
		// [MQTT-3.3.1-6/-7] An empty payload removes the retained message and is not stored.
		if old, ok := b.retained.Delete(m.Topic); ok {
			b.retainedGone(old)
			old.release()
		}
		l.storeRetained(m, m.ack)
		return
	}
	if !b.retainedRoom(m) {
		// --max-retained-messages / --max-retained-bytes: delivered as
		// published but not retained; a v5 publisher is told 0x97.
		l.counters.dropped[dropRetainedFull]++
		if m.ack != nil {
			m.ack.quotaExceeded.Store(true)
		}
		return
	}
	l.storeRetained(m, m.ack)
	// [MQTT-3.3.1-5] Replace the stored message.
	m.retain()
	if old, ok := b.retained.Set(m.Topic, m); ok {
		b.retainedGone(old)
		old.release()
	}
}

// retainedSize is what a retained message counts toward
// Options.MaxRetainedBytes.
func retainedSize(m *Message) int64 { return int64(len(m.Topic) + len(m.Payload)) }

// retainedRoom takes room for m in the retained bounds and reports whether
// there was some; retainedGone gives back a message's room. Loops race on
// the counters, so a bound can be passed by what the loops admit at the
// same instant (at most one message each). Safe for concurrent use.
func (b *Broker) retainedRoom(m *Message) bool {
	n := b.retainedCount.Add(1)
	sz := b.retainedBytes.Add(retainedSize(m))
	if n <= int64(b.opts.MaxRetainedMessages) && sz <= b.opts.MaxRetainedBytes {
		return true
	}
	if old, ok := b.retained.Get(m.Topic); ok && (sz-retainedSize(old) <= b.opts.MaxRetainedBytes || retainedSize(m) <= retainedSize(old)) {
		return true // replacing takes no new slot, and no more bytes than the bound allows
	}
	b.retainedCount.Add(-1)
	b.retainedBytes.Add(-retainedSize(m))
	return false
}

func (b *Broker) retainedGone(m *Message) {
	b.retainedCount.Add(-1)
	b.retainedBytes.Add(-retainedSize(m))
}

// publish routes m and, when it carries RETAIN, updates the retained index
// [MQTT-3.3.1-5..-8]. Loop-only.
func (l *Loop) publish(m *Message, origin *Session) int {
	n := l.route(m, origin)
	if m.Retain {
		l.setRetained(m)
	}
	return n
}

// route delivers m to every subscriber: this loop's shard, the shared
// groups, and every other loop that holds subscriptions. It returns the
// number of deliveries made or posted. Loop-only.
func (l *Loop) route(m *Message, origin *Session) int {
	n := l.routeLocal(m, origin)
	b := l.b
	if !b.shared.Empty() {
		l.matches = b.shared.Match(m.Topic, l.matches[:0], sessionAvailable)
		for i := range l.matches {
			e := &l.matches[i]
			n++
			if e.Key.l == l {
				// [MQTT-3.3.1-12/-13] as for a member on another loop (drain).
				l.deliverOne(e.Key, m, e.Opts.QoS, e.Opts.RetainAsPublished && m.Retain, e.Opts.ID)
				continue
			}
			m.retain()
			m.ack.holdRoute()
			if !e.Key.l.post(inboxItem{kind: itemDirect, msg: m, target: e.Key, opts: e.Opts}, m.QoS > 0 && e.Opts.QoS > 0) {
				m.ack.unholdRoute()
				l.releaseAck(m)
				m.release()
				l.counters.dropped[dropInboxFull]++
			}
		}
		clearEntries(l.matches)
	}
	for _, o := range b.loops {
		if o == l || o.subCount.Load() == 0 {
			continue
		}
		n++
		m.retain()
		m.ack.holdRoute()
		if !o.post(inboxItem{kind: itemRemote, msg: m}, m.QoS > 0) {
			m.ack.unholdRoute()
			l.releaseAck(m)
			m.release()
			l.counters.dropped[dropInboxFull]++
		}
	}
	if n == 0 && !m.Retain {
		// A retained message is kept, not dropped (MQTT-3.3.1-5).
		l.counters.dropped[dropNoSubscribers]++
	}
	return n
}

func sessionAvailable(s *Session) bool { return s.available.Load() }

func clearEntries(e []router.Entry[*Session]) {
	for i := range e {
		e[i].Key = nil
	}
}

// routeLocal delivers m to this loop's shard. Overlapping subscriptions of
// one session give one delivery with the highest granted QoS and every
// subscription identifier [MQTT-3.3.4-2/-3]. Loop-only.
func (l *Loop) routeLocal(m *Message, origin *Session) int {
	if l.subCount.Load() == 0 {
		return 0
	}
	l.matches = l.shard.Match(m.Topic, l.matches[:0])
	if len(l.matches) == 0 {
		return 0
	}
	l.matchSeq++
	seq := l.matchSeq
	targets := l.targets[:0]
	for i := range l.matches {
		e := &l.matches[i]
		s := e.Key
		if e.Opts.NoLocal && s == origin {
			continue // [MQTT-3.8.3-3]
		}
		if s.stamp != seq {
			s.stamp = seq
			s.agg = 0
			targets = append(targets, s)
		}
		s.agg = s.agg.with(e.Opts.QoS, e.Opts.RetainAsPublished)
		if n := s.agg.n(); e.Opts.ID != 0 && n < len(s.aggIDs) {
			s.aggIDs[n] = e.Opts.ID
			s.agg += aggOne
		}
	}
	clearEntries(l.matches)
	for i, s := range targets {
		l.deliverAgg(s, m)
		targets[i] = nil
	}
	l.targets = targets[:0]
	return len(targets)
}

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
		l.counters.dropped[dropExpired]++ // [MQTT-3.3.2-5]
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
			l.counters.dropped[dropSlowConsumer]++
			return
		}
		c.writePublish(tmpl, false, l.now)
		return
	}
	if s.x != nil && s.x.identKnown && l.b.opts.Authorizer != nil && !s.allowed(m.Topic, AccessRead) {
		// Read access is checked per delivered message (cached per
		// session and topic), as Mosquitto does; checked here too so a
		// refused message is not queued or stored.
		l.counters.aclDeniedRead++
		return
	}
	q := s.qos()
	size := len(m.Topic) + len(m.Payload)
	var drop *uint64
	switch o := &l.b.opts; {
	case q.queue.len()+q.inflight.len() >= o.MaxQueued:
		drop = &l.counters.dropped[dropQueueFull] // --max-queued-messages
	case q.bytes+size > o.MaxQueuedBytes:
		drop = &l.counters.dropped[dropQueueBytes] // --max-queued-bytes
	case l.queuedBytes+int64(size) > l.queuedBytesShare:
		drop = &l.counters.dropped[dropBrokerQueueBytes] // --max-queued-bytes-total
	}
	if drop != nil {
		*drop++
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
		c.l.counters.dropped[dropTooLarge]++
		if om.qos > 0 && c.s != nil {
			c.s.completeOutbound(om.pid)
		}
		return
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
}

// queueAck queues PUBACK/PUBREC/PUBREL/PUBCOMP.
func (c *Client) queueAck(t codec.Type, pid uint16, code codec.ReasonCode) {
	a := codec.Ack{Type: t, PacketID: pid, Code: code}
	c.queueControl(a.Append(c.controlBuf(), c.version))
}

// handleAck processes PUBACK, PUBREC, PUBREL and PUBCOMP.
func (c *Client) handleAck(a *codec.Ack) error {
	s := c.s
	switch a.Type {
	case codec.PUBREL:
		q := s.qos()
		for i, id := range q.inboundQoS2 {
			if id == a.PacketID {
				last := len(q.inboundQoS2) - 1
				q.inboundQoS2[i] = q.inboundQoS2[last]
				q.inboundQoS2 = q.inboundQoS2[:last]
				// [MQTT-4.3.3-11] PUBREL → PUBCOMP, once the id is
				// forgotten durably: otherwise a restart would take the
				// next message with this id for a duplicate.
				if s.persistent() {
					aw := newAckWait(c, codec.PUBCOMP, a.PacketID)
					s.storeInbound(a.PacketID, true, aw)
					aw.releaseOn(c.l, nil)
					return nil
				}
				c.queueAck(codec.PUBCOMP, a.PacketID, codec.Success)
				return nil
			}
		}
		c.queueAck(codec.PUBCOMP, a.PacketID, codec.PacketIdentifierNotFound)
		return nil
	case codec.PUBACK:
		s.ackOutbound(a.PacketID, 1, false)
	case codec.PUBREC:
		i := s.findInflight(a.PacketID, 2)
		if i < 0 {
			if c.version == codec.V5 {
				c.queueAck(codec.PUBREL, a.PacketID, codec.PacketIdentifierNotFound)
			} else {
				c.queueAck(codec.PUBREL, a.PacketID, codec.Success)
			}
			return nil
		}
		if a.Code.IsError() {
			// [MQTT-4.3.3-9] / [MQTT-4.8.2-6]: a failed PUBREC ends the flow.
			s.ackOutbound(a.PacketID, 2, true)
			return nil
		}
		q := s.q // not nil: findInflight found it
		om := q.inflight.at(i)
		if om.state != outPubrec {
			if om.state == outHeld {
				q.held--
			}
			om.state = outPubrec
			s.storeReleased(om)
			s.dropMsg(om) // the message itself is no longer needed
		}
		c.queueAck(codec.PUBREL, a.PacketID, codec.Success)
	case codec.PUBCOMP:
		s.ackOutbound(a.PacketID, 2, true)
	}
	return nil
}

func (s *Session) findInflight(pid uint16, qos byte) int {
	q := s.q
	if q == nil {
		return -1
	}
	for i := 0; i < q.inflight.len(); i++ {
		if om := q.inflight.at(i); om.pid == pid && om.qos == qos {
			return i
		}
	}
	return -1
}

// ackOutbound completes an outbound flow and refills the window.
func (s *Session) ackOutbound(pid uint16, qos byte, _ bool) {
	i := s.findInflight(pid, qos)
	if i < 0 {
		return
	}
	q := s.q
	om := q.inflight.remove(i)
	if om.state == outHeld {
		q.held--
	}
	s.storeOutboundDone(om, nil)
	s.dropMsg(om)
	s.freePID(pid)
	s.pump()
}

// completeOutbound forgets an inflight message that was dropped as too large.
func (s *Session) completeOutbound(pid uint16) {
	q := s.q
	if q == nil {
		return
	}
	for i := 0; i < q.inflight.len(); i++ {
		if om := q.inflight.at(i); om.pid == pid {
			q.inflight.remove(i)
			s.storeOutboundDone(om, nil)
			s.dropMsg(om)
			s.freePID(pid)
			return
		}
	}
}
