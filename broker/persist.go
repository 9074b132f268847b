package broker

import (
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
	var applying atomic.Bool
	applying.Store(true)
	done := func(err error) {
		if err != nil {
			l.b.storeErrors.Add(1)
			l.b.opts.Logger.Error("store operation failed", "err", err)
		}
		inline := applying.Load()
		for _, a := range acks {
			if a.release(err) {
				if inline {
					a.fireFrom(l)
				} else {
					a.fireFrom(nil)
				}
			}
		}
	}
	err := st.Apply(l.ops, done)
	applying.Store(false)
	if err != nil {
		l.b.storeErrors.Add(1)
		l.b.opts.Logger.Error("store refused operations", "err", err, "ops", len(l.ops))
		done(err)
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
	s.l.addOp(store.Op{Outbound: &store.Outbound{ClientID: s.id, Seq: om.seq, PacketID: om.pid, State: store.OutboundSent, Msg: storeMessage(om.m)}}, om.m.ack)
}

// storeReleased records that a QoS 2 message got its PUBREC.
func (s *Session) storeReleased(om *outMsg) {
	if !s.persistent() {
		return
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
