package broker

import (
	"bytes"
	"hash/maphash"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/router"
)

// handleSubscribe processes SUBSCRIBE in two passes: every filter is
// checked first (a protocol error anywhere refuses the packet before any
// filter of it was applied), then the accepted ones are added (or
// replaced, MQTT-3.8.4-3), the SUBACK is sent, then retained messages per
// Retain Handling (MQTT-3.3.1-9/-10/-11).
func (c *Client) handleSubscribe(p *codec.Subscribe) error { return c.subscribe(p, false) }

// subscribe is handleSubscribe; silent leaves out the SUBACK (the
// subscriptions the broker makes for a client at CONNECT, autosub.go).
func (c *Client) subscribe(p *codec.Subscribe, silent bool) error {
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

	// Pass 1: a verdict per filter, nothing changed yet.
	// The session's quotas as the filters accepted so far leave them.
	q := filterQuota{wildcardLevels: s.extra().wildcardLevels, bytes: s.extra().filterBytes}
	for i := range p.Subs {
		code, err := c.checkFilter(&p.Subs[i], &q)
		if err != nil {
			return err
		}
		if code.IsError() && c.version != codec.V5 {
			code = codec.ReasonCode(codec.SubackFailureV3)
		}
		ack.Codes = append(ack.Codes, code)
	}

	// Pass 2: apply the accepted filters.
	retained := l.retBuf[:0]
	type sendRetained struct {
		from, to int
		qos      byte
		id       uint32
		filter   uint64
	}
	var sends [8]sendRetained
	nsends := 0
	var extra []sendRetained
	var aw *ackWait
	if s.persistent() {
		aw = newAckWait(c, codec.SUBACK, p.PacketID)
	}
	for i := range p.Subs {
		if ack.Codes[i].IsError() {
			continue
		}
		sub := &p.Subs[i]
		o := router.SubOptions{QoS: sub.QoS, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, ID: subID}
		key := string(sub.Filter)
		existed := s.addSub(key, o)
		s.storeSub(key, o, aw)
		if l.b.hooks.Has(hooks.Subscribed) {
			l.b.hooks.Subscribed(c.hookClient(), sub.Filter, o.QoS)
		}
		// Retained messages go only to non-shared subscriptions (§3.3.1.3).
		_, filter, shared, _ := codec.SplitShared(sub.Filter)
		if shared || o.RetainHandling == 2 || (o.RetainHandling == 1 && existed) {
			continue
		}
		from := len(retained)
		retained = l.b.retained.Match(filter, retained)
		sr := sendRetained{from: from, to: len(retained), qos: o.QoS, id: subID, filter: maphash.Bytes(l.b.seed, sub.Filter)}
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
		if !silent {
			aw.raw = ack.Append(nil, c.version)
		}
		all := append(append([]sendRetained(nil), sends[:nsends]...), extra...)
		msgs := append([]*Message(nil), retained...)
		aw.after = func() {
			for _, sr := range all {
				c.queueRetained(msgs[sr.from:sr.to], sr.qos, sr.id, sr.filter)
			}
		}
		for i := range retained {
			retained[i] = nil
		}
		l.retBuf = retained[:0]
		aw.releaseOn(l, nil)
		return nil
	}
	if !silent {
		c.queueControl(ack.Append(c.controlBuf(), c.version))
	}
	send := func(sr sendRetained) {
		c.queueRetained(retained[sr.from:sr.to], sr.qos, sr.id, sr.filter)
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

// filterQuota is what a session's filters use of its quotas, counting the
// new filters a SUBSCRIBE has had accepted so far.
type filterQuota struct {
	added          int // new filters (Options.MaxSubscriptions)
	wildcardLevels int // Options.MaxWildcardLevels
	bytes          int // Options.MaxSubscriptionBytes
}

// checkFilter is the verdict on one filter of a SUBSCRIBE: the granted
// QoS, a refusal code for this filter only, or a protocol error for the
// whole packet. q is the session's use of its quotas with the filters
// accepted before this one; checkFilter adds this one when it accepts it.
func (c *Client) checkFilter(sub *codec.Subscription, q *filterQuota) (codec.ReasonCode, error) {
	l, s, o := c.l, c.s, &c.l.b.opts
	if l.b.hooks.Has(hooks.Subscribe) {
		// Subscribe hooks first: what they leave (a lower QoS, another
		// filter) is then checked like any filter.
		if err := c.hookSubscribe(sub); err != nil {
			l.counters.subsRefused[subRefusedHook]++
			if c.version == codec.V5 && c.problemInfo {
				// The SUBACK's Reason String says why (one per packet).
				ack := &l.pkt.suback
				ack.Props.Set(codec.PropReasonString)
				ack.Props.ReasonString = append(ack.Props.ReasonString[:0], err.Error()...)
			}
			return codec.NotAuthorized, nil
		}
	}
	_, filter, shared, err := codec.SplitShared(sub.Filter)
	if err != nil || codec.ValidateTopicFilter(sub.Filter) != nil {
		// Misplaced wildcards or a bad $share framing [MQTT-4.7.1-1/-2,
		// 3.1.1 MQTT-4.7.1-2/-3]: refused in the SUBACK (0x8F; 3.x 0x80).
		return codec.TopicFilterInvalid, nil
	}
	levels := bytes.Count(filter, []byte{'/'}) + 1
	if len(sub.Filter) > o.MaxTopicLength || levels > o.MaxTopicLevels {
		// --max-topic-length / --max-topic-levels.
		l.counters.subsRefused[subRefusedTopicLimit]++
		return codec.TopicFilterInvalid, nil
	}
	if shared && sub.NoLocal {
		// [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
		return 0, errProtocol("No Local set on a shared subscription", "MQTT-3.8.3-4")
	}
	if !s.allowSubscribe(filter) {
		// Refused for this filter only: v5 0x87, 3.x 0x80.
		l.counters.aclDeniedSubscribe++
		return codec.NotAuthorized, nil
	}
	_, existed := s.subscriptions()[string(sub.Filter)]
	if existed {
		// Replacing a subscription [MQTT-3.8.4-3] takes no more quota.
		return codec.ReasonCode(sub.QoS), nil
	}
	wild := 0
	if bytes.IndexByte(filter, '+') >= 0 {
		wild = levels
	}
	switch {
	case len(s.subscriptions())+q.added >= o.MaxSubscriptions:
		// --max-subscriptions: a new filter beyond the quota is refused
		// (v5 0x97).
		l.counters.subsRefused[subRefusedQuota]++
		return codec.QuotaExceeded, nil
	case q.wildcardLevels+wild > o.MaxWildcardLevels:
		// --max-wildcard-levels: every level of a filter with a '+' can
		// add a branch to the walk of each PUBLISH's topic through the
		// router, so their sum per session bounds the matching work one
		// session can put on its loop per message.
		l.counters.subsRefused[subRefusedWildcardLevels]++
		return codec.QuotaExceeded, nil
	case q.bytes+len(sub.Filter) > o.MaxSubscriptionBytes:
		// --max-subscription-bytes: what one session's filters may hold.
		l.counters.subsRefused[subRefusedBytes]++
		return codec.QuotaExceeded, nil
	}
	q.added++
	q.wildcardLevels += wild
	q.bytes += len(sub.Filter)
	return codec.ReasonCode(sub.QoS), nil // granted QoS: we support 0..2
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
		s.dropSub(string(f), o)
		s.storeUnsub(string(f))
		if c.l.b.hooks.Has(hooks.Unsubscribed) {
			c.l.b.hooks.Unsubscribed(c.hookClient(), f)
		}
		ack.Codes = append(ack.Codes, codec.Success)
	}
	c.queueControl(ack.Append(c.controlBuf(), c.version))
	return nil
}
