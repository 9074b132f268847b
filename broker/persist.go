package broker

import (
	"slices"
	"sync/atomic"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/router"
	"github.com/mcutie/mcutie/store"
)

// Persistence. A session is persistent when its expiry interval is not 0;
// only persistent sessions and retained messages reach the store. Each loop
// gathers the store operations of one pass (one Feed, one inbox drain, one
// tick) and submits them as one Apply at the end of the pass, so the
// commit queue sees few, large units. An acknowledgement that depends on
// durable state (PUBACK/PUBREC of a publish, PUBCOMP, SUBACK) is an ackWait:
// it is written only once every operation it depends on, on every loop the
// message went to, has completed.

// ackWait is an acknowledgement waiting for store operations.
type ackWait struct {
	pending       atomic.Int32
	failed        atomic.Bool
	quotaExceeded atomic.Bool // a subscriber's queue was full: the message missed it
	c             *Client
	typ           codec.Type // PUBACK, PUBREC, PUBCOMP or SUBACK
	pid           uint16
	code          codec.ReasonCode
	raw           []byte // encoded SUBACK
	after         func() // runs after the acknowledgement is written (retained messages of a SUBSCRIBE)

	// A QoS 2 PUBLISH of a persistent session is remembered by its packet
	// id (the inbound record, [MQTT-4.3.3-10]); a resent PUBLISH with that
	// id is then not routed again. So the record must not be durable
	// before the message's outbound records on every loop it went to:
	// after a crash in between, the resent PUBLISH would be taken for a
	// duplicate and the message lost. The store commits Apply calls in the
	// order they are made, so the record is submitted only after every
	// such loop has submitted its operations: inSess is the publisher's
	// session and routing counts the loops (the publisher's included) yet
	// to submit.
	inSess  *Session
	routing atomic.Int32
}

func newAckWait(c *Client, typ codec.Type, pid uint16) *ackWait {
	a := &ackWait{c: c, typ: typ, pid: pid}
	a.pending.Store(1) // held by the pass that creates it
	return a
}

func (a *ackWait) hold() { a.pending.Add(1) }

// release drops one hold and reports whether it was the last.
func (a *ackWait) release(err error) bool {
	if err != nil {
		a.failed.Store(true)
	}
	return a.pending.Add(-1) == 0
}

// fireFrom writes the acknowledgement; on is the loop the caller runs on,
// or nil when it runs on no loop (a store goroutine).
func (a *ackWait) fireFrom(on *Loop) {
	l := a.c.l
	if on == l {
		a.write()
		return
	}
	if !l.post(inboxItem{kind: itemFunc, fn: a.write}, true) {
		l.counters.droppedInboxFull++
	}
}

// write sends the acknowledgement if its connection is still there. Loop-only.
func (a *ackWait) write() {
	c := a.c
	if c.state != stateConnected {
		return
	}
	if a.failed.Load() {
		// The state this acknowledgement vouches for is not stored:
		// refuse rather than acknowledge (v5 0x80; 3.x has no code).
		c.l.counters.storeRefused++
		if c.version != codec.V5 {
			c.close()
			return
		}
		if a.typ == codec.SUBACK {
			c.disconnect(codec.UnspecifiedError, "subscription not stored")
			return
		}
		c.queueAck(a.typ, a.pid, codec.UnspecifiedError)
		return
	}
	if a.typ == codec.SUBACK {
		c.queueControl(append(c.controlBuf(), a.raw...))
		if a.after != nil {
			a.after()
		}
		return
	}
	code := a.code
	if a.quotaExceeded.Load() && c.version == codec.V5 {
		code = codec.QuotaExceeded
	}
	c.queueAck(a.typ, a.pid, code)
}

// holdRoute holds a (may be nil) for a message posted to another loop.
func (a *ackWait) holdRoute() {
	if a == nil {
		return
	}
	a.hold()
	if a.inSess != nil {
		a.routing.Add(1)
	}
}

// unholdRoute undoes holdRoute's routing count when the post failed (the
// caller releases the hold).
func (a *ackWait) unholdRoute() {
	if a != nil && a.inSess != nil {
		a.routing.Add(-1)
	}
}

// storeInboundDeferred stores the inbound record of a QoS 2 PUBLISH once
// every loop the message went to has submitted its operations (see
// ackWait.inSess). It runs on the session's loop and drops the hold the
// deferral took. Loop-only.
func (a *ackWait) storeInboundDeferred() {
	s := a.inSess
	if s.l.sessions[s.id] == s && slices.Contains(s.inboundQoS2, a.pid) { // not ended, no PUBREL yet
		s.storeInbound(a.pid, false, a)
	}
	if a.release(nil) {
		a.fireFrom(s.l)
	}
}

// submitted runs after this pass's Apply: the loop has submitted its
// operations for the messages in afterApply. The last loop to do so for
// a message has its inbound record stored. Loop-only.
func (l *Loop) submitted() {
	for i, a := range l.afterApply {
		l.afterApply[i] = nil
		if a.routing.Add(-1) != 0 {
			continue
		}
		if sl := a.inSess.l; sl == l {
			a.storeInboundDeferred()
		} else if !sl.post(inboxItem{kind: itemFunc, fn: a.storeInboundDeferred}, true) {
			sl.counters.droppedInboxFull++
		}
	}
	l.afterApply = l.afterApply[:0]
	l.commitOps()
}

// addOp queues a store operation for the end of this pass; aw (may be nil)
// waits for it. Loop-only.
func (l *Loop) addOp(op store.Op, aw *ackWait) {
	l.ops = append(l.ops, op)
	if aw != nil {
		aw.hold()
		l.opAcks = append(l.opAcks, aw)
	}
}

// commitOps submits the pass's operations as one unit. Loop-only.
func (l *Loop) commitOps() {
	if len(l.ops) == 0 {
		return
	}
	st := l.b.opts.Store
	var acks []*ackWait
	if len(l.opAcks) > 0 {
		acks = append([]*ackWait(nil), l.opAcks...)
	}
	l.applyN++
	n := l.applyN
	// finish runs once the ops are done; on is the loop it runs on, nil
	// for a store goroutine.
	finish := func(err error, on *Loop) {
		if err != nil {
			l.b.storeErrors.Add(1)
			l.b.opts.Logger.Error("store operation failed", "err", err)
		}
		for _, a := range acks {
			if a.release(err) {
				a.fireFrom(on)
			}
		}
		// Output held for this commit may go now (on error too: holding
		// it would not store it).
		for {
			d := l.durableN.Load()
			if d >= n || l.durableN.CompareAndSwap(d, n) {
				break
			}
		}
		if on == nil && l.holding.Load() {
			l.post(inboxItem{kind: itemFunc, fn: func() {}}, true) // the drain's flush writes them
		}
	}
	// done may run before Apply returns: synchronously (Memory), or on the
	// committer goroutine while Apply is still returning (Badger with
	// DurabilityNone takes the ops at once). Either way it must not touch
	// the loop's connections from there: it leaves the work to this
	// goroutine, which is on the loop.
	var phase atomic.Int32 // 0: Apply running; 1: Apply returned; 2: done ran first
	var earlyErr error
	done := func(err error) {
		earlyErr = err // read by this goroutine only if the swap below wins
		if phase.CompareAndSwap(0, 2) {
			return
		}
		finish(err, nil)
	}
	if err := st.Apply(l.ops, done); err != nil {
		l.b.opts.Logger.Error("store refused operations", "err", err, "ops", len(l.ops))
		phase.Store(1) // done will not be called
		finish(err, l)
	} else if !phase.CompareAndSwap(0, 1) {
		finish(earlyErr, l)
	}
	for i := range l.ops {
		l.ops[i] = store.Op{}
	}
	l.ops = l.ops[:0]
	for i := range l.opAcks {
		l.opAcks[i] = nil
	}
	l.opAcks = l.opAcks[:0]
}

func (s *Session) persistent() bool { return s.expiry != 0 && s.l.b.opts.Store != nil }

func storeMessage(m *Message) store.Message {
	sm := store.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, ExpireAt: m.ExpireAt, Created: m.Created}
	if m.Props.Present != 0 || len(m.Props.User) > 0 {
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
	s.l.addOp(store.Op{Session: &store.Session{ClientID: s.id, Version: byte(s.version), ExpiryInterval: s.expiry, DisconnectedAt: s.discAt}}, nil)
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
		props := om.m.Props
		props.SubscriptionIDs = om.ids[:om.nids]
		sm.Props = props.Append(nil)
	}
	s.l.addOp(store.Op{Outbound: &store.Outbound{ClientID: s.id, Seq: om.seq, PacketID: om.pid, State: store.OutboundSent, Msg: sm}}, om.m.ack)
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
	s.l.addOp(store.Op{Will: &store.Will{ClientID: s.id, Msg: storeMessage(s.will), PublishAt: s.willAt}}, nil)
}

func (s *Session) storeWillGone() {
	if !s.persistent() {
		return
	}
	s.l.addOp(store.Op{Delete: true, Will: &store.Will{ClientID: s.id}}, nil)
}

func (l *Loop) storeRetained(m *Message, aw *ackWait) {
	if l.b.opts.Store == nil {
		return
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
