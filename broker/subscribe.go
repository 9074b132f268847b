package broker

import (
	"bytes"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
)

// handleSubscribe processes SUBSCRIBE: each filter is added (or replaced,
// MQTT-3.8.4-3), the SUBACK is sent, then retained messages per Retain
// Handling (MQTT-3.3.1-9/-10/-11).
func (c *Client) handleSubscribe(p *codec.Subscribe) error {
	l := c.l
	s := c.s
	var subID uint32
	if len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
	}
	ack := &l.pkt.suback
	ack.PacketID = p.PacketID
	ack.Codes = ack.Codes[:0]
	ack.Props = codec.Properties{}
	retained := l.retBuf[:0]
	type sendRetained struct {
		from, to int
		qos      byte
		id       uint32
	}
	var sends [8]sendRetained
	nsends := 0
	var extra []sendRetained
	var aw *ackWait
	if s.persistent() {
		aw = newAckWait(c, codec.SUBACK, p.PacketID)
	}
	for i := range p.Subs {
		sub := &p.Subs[i]
		code := codec.ReasonCode(sub.QoS) // granted QoS: we support 0..2
		group, filter, shared, err := codec.SplitShared(sub.Filter)
		switch {
		case err != nil || codec.ValidateTopicFilter(sub.Filter) != nil:
			// Misplaced wildcards or a bad $share framing [MQTT-4.7.1-1/-2,
			// 3.1.1 MQTT-4.7.1-2/-3]: refused in the SUBACK (0x8F; 3.x 0x80).
			code = codec.TopicFilterInvalid
		case len(sub.Filter) > l.b.opts.MaxTopicLength || bytes.Count(filter, []byte{'/'})+1 > l.b.opts.MaxTopicLevels:
			// --max-topic-length / --max-topic-levels.
			code = codec.TopicFilterInvalid
			l.counters.subsRefusedTopic++
		case shared && sub.NoLocal:
			// [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
			return errProtocol("No Local set on a shared subscription", "MQTT-3.8.3-4")
		case !s.allowSubscribe(filter):
			// Refused for this filter only: v5 0x87, 3.x 0x80.
			l.counters.aclDeniedSubscribe++
			code = codec.NotAuthorized
		case len(s.subscriptions()) >= l.b.opts.MaxSubscriptions:
			// --max-subscriptions: a new filter beyond the quota is
			// refused (v5 0x97); replacing an existing one is not.
			if _, ok := s.subscriptions()[string(sub.Filter)]; !ok {
				code = codec.QuotaExceeded
				l.counters.subsRefusedQuota++
			}
		}
		if code.IsError() {
			if c.version != codec.V5 {
				code = codec.ReasonCode(codec.SubackFailureV3)
			}
			ack.Codes = append(ack.Codes, code)
			continue
		}
		o := router.SubOptions{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, ID: subID}
		key := string(sub.Filter)
		x := s.aux()
		_, existed := x.subs[key]
		if x.subs == nil {
			x.subs = make(map[string]router.SubOptions)
		}
		x.subs[key] = o
		if shared {
			l.b.shared.Subscribe(group, filter, s, o)
		} else if !l.shard.Subscribe(sub.Filter, s, o) {
			l.subCount.Add(1)
		}
		ack.Codes = append(ack.Codes, code)
		s.storeSub(key, o, aw)
		// Retained messages go only to non-shared subscriptions (§3.3.1.3).
		if shared || o.RetainHandling == 2 || (o.RetainHandling == 1 && existed) {
			continue
		}
		from := len(retained)
		retained = l.b.retained.Match(filter, retained)
		sr := sendRetained{from: from, to: len(retained), qos: o.QoS, id: subID}
		if nsends < len(sends) {
			sends[nsends] = sr
			nsends++
		} else {
			extra = append(extra, sr)
		}
	}
	if aw != nil {
		// The SUBACK waits for the subscriptions to be stored; retained
		// messages follow it, so they wait too.
		aw.raw = ack.Append(nil, c.version)
		all := append(append([]sendRetained(nil), sends[:nsends]...), extra...)
		msgs := append([]*Message(nil), retained...)
		aw.after = func() {
			for _, sr := range all {
				c.queueRetained(msgs[sr.from:sr.to], sr.qos, sr.id)
			}
		}
		for i := range retained {
			retained[i] = nil
		}
		l.retBuf = retained[:0]
		if aw.release(nil) {
			aw.write()
		}
		return nil
	}
	c.queueControl(ack.Append(c.controlBuf(), c.version))
	send := func(sr sendRetained) {
		c.queueRetained(retained[sr.from:sr.to], sr.qos, sr.id)
	}
	for _, sr := range sends[:nsends] {
		send(sr)
	}
	for _, sr := range extra {
		send(sr)
	}
	for i := range retained {
		retained[i] = nil
	}
	l.retBuf = retained[:0]
	return nil
}

// handleUnsubscribe removes exact filters [MQTT-3.10.4-1] and always answers
// with UNSUBACK [MQTT-3.10.4-4/-5].
func (c *Client) handleUnsubscribe(p *codec.Unsubscribe) error {
	l := c.l
	s := c.s
	ack := &l.pkt.unsuback
	ack.PacketID = p.PacketID
	ack.Codes = ack.Codes[:0]
	ack.Props = codec.Properties{}
	for _, f := range p.Filters {
		o, ok := s.subscriptions()[string(f)]
		if !ok {
			ack.Codes = append(ack.Codes, codec.NoSubscriptionExisted)
			continue
		}
		delete(s.x.subs, string(f))
		s.removeSub(string(f), o)
		s.storeUnsub(string(f))
		ack.Codes = append(ack.Codes, codec.Success)
	}
	c.queueControl(ack.Append(c.controlBuf(), c.version))
	return nil
}

// handleDisconnect processes a client's DISCONNECT.
func (c *Client) handleDisconnect(d *codec.Disconnect) error {
	s := c.s
	if c.version == codec.V5 && d.Props.Has(codec.PropSessionExpiry) {
		if s.expiry == 0 && d.Props.SessionExpiry != 0 {
			// §3.14.2.2.2: 0 at CONNECT cannot become non-zero.
			return errProtocol("Session Expiry Interval set in DISCONNECT after 0 in CONNECT", "MQTT-3.14.2-1")
		}
		s.expiry = min(d.Props.SessionExpiry, c.l.b.opts.MaxSessionExpiry)
	}
	// [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; 0x04 keeps it.
	c.cleanDisconnect = d.Code != codec.DisconnectWithWill
	c.willOnClose = d.Code == codec.DisconnectWithWill
	c.close()
	return nil
}
