package broker

import (
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
	"github.com/mcutie/mcutie/store"
)

// Store records. A session is persistent when its expiry interval is not
// 0; only persistent sessions and retained messages reach the store. This
// file turns the broker's state changes into store operations (addOp);
// commit.go submits them, ack.go holds the acknowledgements that wait for
// them, qos2.go orders QoS 2 across loops (DURABILITY.md).

func (s *Session) persistent() bool { return s.expiry != 0 && s.l.b.opts.Store != nil }

func storeMessage(m *Message) store.Message {
	sm := store.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, ExpireAt: m.ExpireAt, Created: m.Created}
	if m.Props != nil {
		sm.Props = m.Props.Append(nil)
	}
	return sm
}

func (s *Session) storeSession() {
	if !s.persistent() {
		s.storeDelete() // no longer persistent: forget what was stored
		return
	}
	s.stored = true
	rec := &store.Session{ClientID: s.id, Version: byte(s.version), ExpiryInterval: s.expiry, DisconnectedAt: max(s.discAt, 0), QoS2Mark: s.qos2Mark}
	if s.extras != nil {
		rec.Owner, rec.OwnerKind = s.extras.owner, s.extras.ownerKind
	}
	s.l.addOp(store.Op{Session: rec}, nil)
}

func (s *Session) storeDelete() {
	if s.l.b.opts.Store == nil || !s.stored {
		return
	}
	s.stored = false
	s.l.addOp(store.Op{Delete: true, Session: &store.Session{ClientID: s.id}}, nil)
}

func (s *Session) storeSub(filter string, o router.SubOptions, aw *ackWait) {
	if !s.persistent() {
		return
	}
	s.l.addOp(store.Op{Sub: &store.Subscription{ClientID: s.id, Filter: filter, QoS: o.QoS, NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished, RetainHandling: o.RetainHandling, ID: o.ID}}, aw)
}

func (s *Session) storeUnsub(filter string) {
	if !s.persistent() {
		return
	}
	s.l.addOp(store.Op{Delete: true, Sub: &store.Subscription{ClientID: s.id, Filter: filter}}, nil)
}

// storeOutbound records a QoS 1/2 message for s; the publisher's
// acknowledgement (m.ack) waits for it.
func (s *Session) storeOutbound(om *outMsg) {
	if !s.persistent() {
		return
	}
	// The record is the message as this session gets it: the delivered
	// QoS (min of published and granted [MQTT-3.8.4-8]), the retain flag
	// as delivered and the subscription identifiers [MQTT-3.3.4-3], these
	// in the property block.
	if om.qos == 2 {
		om.storedIn = s.l.applyN + 1 // a PUBLISH of it waits for this Apply
	}
	sm := storeMessage(om.m)
	sm.QoS, sm.Retain = om.qos, om.retain
	if om.nids > 0 {
		var props codec.Properties
		if om.m.Props != nil {
			props = *om.m.Props
		}
		props.SubscriptionIDs = om.ids[:om.nids]
		sm.Props = props.Append(nil)
	}
	// A message stored while queued stays "queued" in the store even once
	// sent (rewriting every record at send would cost a write per
	// message): after a restart, a queued record whose Message Expiry
	// passed is dropped [MQTT-3.3.2-5], any other is resent with DUP=1.
	state := byte(store.OutboundSent)
	if om.state == outQueued {
		state = store.OutboundQueued
	}
	ob := &store.Outbound{ClientID: s.id, Seq: om.seq, PacketID: om.pid, State: state, Msg: sm}
	if a := om.m.ack; a != nil && a.q2 != nil {
		ob.Origin, ob.OriginMark = a.q2.sess.id, a.q2.mark
		if om.qos == 2 && !a.q2.open.Load() {
			om.gate = a.q2
		}
	}
	s.l.addOp(store.Op{Outbound: ob}, om.m.ack)
}

// storeReleased records that a QoS 2 message got its PUBREC; the PUBREL
// waits for it (Client.holdUntil).
func (s *Session) storeReleased(om *outMsg) {
	if !s.persistent() {
		return
	}
	if s.c != nil {
		s.c.holdUntil = s.l.applyN + 1
	}
	s.l.addOp(store.Op{Outbound: &store.Outbound{ClientID: s.id, Seq: om.seq, PacketID: om.pid, State: store.OutboundReleased}}, nil)
}

func (s *Session) storeOutboundDone(om *outMsg, aw *ackWait) {
	if !s.persistent() {
		return
	}
	s.l.addOp(store.Op{Delete: true, Outbound: &store.Outbound{ClientID: s.id, Seq: om.seq}}, aw)
}

func (s *Session) storeInbound(pid uint16, del bool, aw *ackWait) {
	if !s.persistent() {
		return
	}
	s.l.addOp(store.Op{Delete: del, Inbound: &store.InboundQoS2{ClientID: s.id, PacketID: pid}}, aw)
}

func (s *Session) storeWill() {
	if !s.persistent() || s.will == nil {
		return
	}
	s.l.addOp(store.Op{Will: &store.Will{ClientID: s.id, Msg: storeMessage(s.will.m), PublishAt: s.will.at}}, nil)
}

func (s *Session) storeWillGone() {
	if !s.persistent() {
		return
	}
	s.l.addOp(store.Op{Delete: true, Will: &store.Will{ClientID: s.id}}, nil)
}

func (l *Loop) storeRetained(m *Message, aw *ackWait) {
	if l.b.opts.Store == nil || l.b.isSys(m.Topic) {
		return // $SYS describes this process: nothing to restore
	}
	if len(m.Payload) == 0 {
		l.addOp(store.Op{Delete: true, Retained: &store.Message{Topic: m.Topic}}, aw)
		return
	}
	sm := storeMessage(m)
	l.addOp(store.Op{Retained: &sm}, aw)
}

// messageFromStore rebuilds a Message from its stored form.
func messageFromStore(sm *store.Message) (*Message, error) {
	p := codec.Publish{Topic: sm.Topic, Payload: sm.Payload, QoS: sm.QoS, Retain: sm.Retain}
	if len(sm.Props) > 0 {
		if err := p.Props.DecodePublishProps(sm.Props); err != nil {
			return nil, err
		}
	}
	m := newMessage(&p, nil, sm.Created)
	m.ExpireAt = sm.ExpireAt
	return m, nil
}
