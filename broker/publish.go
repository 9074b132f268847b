package broker

import (
	"bytes"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
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
	if l.hooked.Has(hooks.PublishTopic) {
		// Topic rewrite (e.g. hooks/rewrite's topic rules): before the
		// ACL, $delayed and $p2p see the topic.
		if t := l.b.hooks.PublishTopic(c.hookClientNoAddr(), p.Topic); t != nil {
			if codec.ValidateTopicName(t) != nil || len(t) > l.b.opts.MaxTopicLength {
				l.counters.dropped[dropHook]++
				if p.QoS > 0 {
					code := codec.Success
					if c.version == codec.V5 {
						code = codec.TopicNameInvalid
					}
					c.queueAck(ackFor(p.QoS), p.PacketID, code)
				}
				return nil
			}
			p.Topic = t
		}
	}
	var p2pTo []byte // the recipient of a $p2p/ PUBLISH (p2p.go)
	delay := time.Duration(-1)
	if len(p.Topic) > 0 && p.Topic[0] == '$' && l.b.opts.DelayedPublish && bytes.HasPrefix(p.Topic, []byte(delayedPrefix)) {
		// Only topics starting with '$' pay more than the first byte's test.
		secs, rest, ok := splitDelayed(p.Topic)
		switch {
		case !ok:
			c.refuseDelayed(p, delayedInvalid, codec.TopicNameInvalid)
			return nil
		case secs > uint64(l.b.opts.MaxDelay/time.Second):
			c.refuseDelayed(p, delayedTooLong, codec.ImplementationSpecificError)
			return nil
		}
		// The ACL, the hooks and the limits below see the target topic.
		delay, p.Topic = time.Duration(secs)*time.Second, rest
	} else if len(p.Topic) > 0 && p.Topic[0] == '$' && l.b.opts.P2P && bytes.HasPrefix(p.Topic, []byte(p2pPrefix)) {
		cid, rest, ok := splitP2P(p.Topic)
		if !ok {
			l.b.p2p[p2pInvalid].Add(1)
			if p.QoS > 0 && c.version == codec.V5 {
				c.queueAck(ackFor(p.QoS), p.PacketID, codec.TopicNameInvalid)
				return nil
			}
			if p.QoS > 0 {
				c.queueAck(ackFor(p.QoS), p.PacketID, codec.Success) // 3.x has no code: dropped, as an ACL refusal
			}
			return nil
		}
		if !s.allowed(p.Topic, AccessWrite) {
			l.b.p2p[p2pDenied].Add(1)
		} else {
			p2pTo, p.Topic = cid, rest
		}
	}
	if l.b.isSys(p.Topic) || !s.allowed(p.Topic, AccessWrite) && p2pTo == nil {
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
	routeQoS, routeRetain := p.QoS, p.Retain
	if l.hooked.Has(hooks.Publish) {
		var err error
		if routeQoS, routeRetain, err = c.interceptPublish(p); err != nil {
			// Dropped by a hook: as an ACL refusal, v5 QoS 1/2 is told
			// 0x87 with the reason; 3.x is acknowledged normally.
			l.counters.dropped[dropHook]++
			if p.QoS > 0 {
				code := codec.Success
				if c.version == codec.V5 {
					code = codec.NotAuthorized
				}
				c.queueAck(ackFor(p.QoS), p.PacketID, code)
			}
			return nil
		}
	}

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

	if delay >= 0 {
		c.publishDelayed(p, delay, routeQoS, routeRetain)
		return nil
	}
	m := newMessage(p, s, l.now)
	m.QoS, m.Retain, m.pinned = routeQoS, routeRetain, routeRetain
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
	var n int
	if p2pTo != nil {
		m.Retain, m.pinned = false, false // a message for one session is never retained
		n = l.sendP2P(m, p2pTo)
	} else {
		n = l.publish(m, s)
	}
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

// publish routes m and, when it carries RETAIN, updates the retained index
// [MQTT-3.3.1-5..-8]. Loop-only.
func (l *Loop) publish(m *Message, origin *Session) int {
	if m.Retain && l.b.rsync != nil {
		l.stampRetained(m) // before it is forwarded with its version
	}
	n := l.route(m, origin)
	if m.Retain {
		l.setRetained(m)
		l.retainedVer = RetainedVersion{}
	}
	return n
}

// route delivers m to every subscriber: this loop's shard, the shared
// groups, and every other loop that holds subscriptions. It returns the
// number of deliveries made or posted. Loop-only.
func (l *Loop) route(m *Message, origin *Session) int {
	n := l.routeLocal(m, origin)
	b := l.b
	missed := false // nodes matched, but the message could not go to them
	if b.opts.Peers != nil {
		// First: Forward says which shared groups other nodes serve.
		if f := l.forwardToPeers(m); f >= 0 {
			n += f
		} else {
			missed = true
			l.counters.dropped[dropClusterQueueFull]++
			if m.ack != nil {
				m.ack.quotaExceeded.Store(true) // v5: PUBACK/PUBREC 0x97
			}
		}
		if !b.shared.Empty() || len(l.cl.listed) > 0 {
			n += l.routeSharedCluster(m)
		}
	} else if !b.shared.Empty() {
		l.matches = b.shared.Match(m.Topic, l.matches[:0], sessionAvailable)
		for i := range l.matches {
			n++
			l.deliverShared(l.matches[i], m)
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
	if n == 0 && !m.Retain && !missed {
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
