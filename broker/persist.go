package broker

import (
	"errors"
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

	// mark, ready and gateOpen implement Session.qos2Mark: mark is the
	// publish's broker-wide number, ready says every loop has submitted
	// its operations (owned by inSess's loop), gateOpen that the inbound
	// record is durable (or will never be written), so subscribers may
	// be sent the message.
	mark     uint64
	ready    bool
	gateOpen atomic.Bool
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
		// Counted by the loop running this; l's counters belong to l.
		if on != nil {
			on.counters.droppedInboxFull++
		} else {
			l.b.droppedOffLoop.Add(1)
		}
	}
}

// write sends the acknowledgement if its connection is still there. Loop-only.
func (a *ackWait) write() {
	c := a.c
	if a.typ == codec.PUBACK && c.version == codec.V5 {
		c.inboundQoS1-- // counted in handlePublish
	}
	if c.state != stateConnected {
		return
	}
	if a.failed.Load() {
		// The state this acknowledgement vouches for is not stored:
		// refuse rather than acknowledge (v5 0x80; 3.x has no code).
		c.l.counters.storeRefused++
		if c.version != codec.V5 {
			c.logClose("closing connection: acknowledgement refused, its state was not stored")
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
// ackWait.inSess). It runs on the session's loop. Loop-only.
func (a *ackWait) storeInboundDeferred() {
	a.ready = true
	a.inSess.drainQoS2()
}

// drainQoS2 stores the inbound records of the marked publishes at the
// head of qos2Pending whose loops have all submitted, in mark order, with
// the session's new qos2Mark, and drops the hold each took in
// handlePublish. Loop-only.
func (s *Session) drainQoS2() {
	q := s.q
	if q == nil {
		return
	}
	n := 0
	for n < len(q.qos2Pending) && q.qos2Pending[n].ready {
		n++
	}
	if n == 0 {
		return
	}
	done := q.qos2Pending[:n:n]
	q.qos2Pending = q.qos2Pending[n:]
	if len(q.qos2Pending) == 0 {
		q.qos2Pending = nil
	}
	live := s.l.sessions[s.id] == s && s.persistent() // not ended meanwhile
	for _, a := range done {
		if a.mark > s.qos2Mark {
			s.qos2Mark = a.mark
		}
		if live && slices.Contains(q.inboundQoS2, a.pid) { // no PUBREL yet
			s.storeInbound(a.pid, false, a)
			s.l.gateOps = append(s.l.gateOps, a)
		} else {
			a.gateOpen.Store(true)
			s.l.b.wakeHolding(s.l)
		}
	}
	if live {
		s.storeSession() // the new qos2Mark, in the same Apply as the records
	}
	for _, a := range done {
		if a.release(nil) {
			a.fireFrom(s.l)
		}
	}
}

// wakeHolding wakes every loop, other than on, whose output waits for a
// commit or a gate, so it looks again. Safe for concurrent use.
func (b *Broker) wakeHolding(on *Loop) {
	for _, l := range b.loops {
		if l != on && l.holding.Load() {
			l.post(inboxItem{kind: itemFunc, fn: func() {}}, true) // the drain's flush writes them
		}
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
			l.counters.droppedInboxFull++ // counted by the loop running this
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
	}
	l.opAck = append(l.opAck, aw)
}

// opBacklog holds a loop's operations that the store refused because its
// commit queue was full (store.ErrQueueFull). They are submitted again,
// before anything newer and as one unit with it, at the end of every pass
// and every tick, so the order of a loop's operations never changes and
// acknowledgements simply wait: publishers whose PUBACK/PUBREC waits stop
// at their send quota, which is the back-pressure. Loop-only.
type opBacklog struct {
	ops   []store.Op
	ack   []*ackWait // parallel to ops
	gates []*ackWait
}

// shed drops, from the operations of the latest pass (the backlog from
// index from on), once the backlog had reached Options.CommitBacklog and
// the store still refused it, what can be refused: operations an
// acknowledgement waits for (that acknowledgement then reports the
// failure: v5 0x80, 3.x close) and QoS 0 retained updates (the retained
// index in memory is right; a restart would bring back the older stored
// value). Other operations (deletes, session and state records) stay: they
// keep the stored state consistent and come only from acknowledgements
// and connections already counted. Loop-only.
func (l *Loop) shed(from int) {
	bl := &l.backlog
	kept := from
	for i := from; i < len(bl.ops); i++ {
		op, a := bl.ops[i], bl.ack[i]
		switch {
		case a != nil:
			if op.Inbound != nil && a.mark != 0 {
				a.gateOpen.Store(true) // the record will not be written: do not hold its message
				l.b.wakeHolding(l)
			}
			if a.release(store.ErrQueueFull) {
				a.fireFrom(l)
			}
		case op.Retained != nil:
		default:
			bl.ops[kept], bl.ack[kept] = op, nil
			kept++
			continue
		}
		l.counters.storeShed++
	}
	clear(bl.ops[kept:])
	clear(bl.ack[kept:])
	bl.ops, bl.ack = bl.ops[:kept], bl.ack[:kept]
	if l.shedLog.allow(l.now) {
		l.b.opts.Logger.Error("store commit queue full and loop backlog at its bound: refusing new durable operations", "loop", l.idx, "backlog_ops", len(bl.ops), "bound", l.b.opts.CommitBacklog)
	}
}

// commitOps submits the pass's operations, behind any backlog, as one
// unit. Loop-only.
func (l *Loop) commitOps() {
	bl := &l.backlog
	if len(bl.ops) > 0 {
		from := len(bl.ops)
		over := from >= l.b.opts.CommitBacklog
		bl.ops = append(bl.ops, l.ops...)
		bl.ack = append(bl.ack, l.opAck...)
		bl.gates = append(bl.gates, l.gateOps...)
		l.clearPass()
		if l.submit(bl.ops, bl.ack, bl.gates) {
			bl.reset()
		} else if over {
			l.shed(from)
		}
		return
	}
	if len(l.ops) == 0 {
		return
	}
	if !l.submit(l.ops, l.opAck, l.gateOps) {
		// Keep everything, in order, for the next pass or tick.
		bl.ops = append(bl.ops, l.ops...)
		bl.ack = append(bl.ack, l.opAck...)
		bl.gates = append(bl.gates, l.gateOps...)
	}
	l.clearPass()
}

func (bl *opBacklog) reset() {
	clear(bl.ops)
	clear(bl.ack)
	clear(bl.gates)
	bl.ops, bl.ack, bl.gates = bl.ops[:0], bl.ack[:0], bl.gates[:0]
	if cap(bl.ops) > 4096 {
		*bl = opBacklog{} // give a burst's memory back
	}
}

// submit hands ops to the store as one Apply; opAck (parallel) and gates
// are the acknowledgements and gates that wait for them. It reports false,
// having changed nothing, when the store's commit queue is full. The
// caller may reuse the slices at once. Loop-only.
func (l *Loop) submit(ops []store.Op, opAck, gateOps []*ackWait) bool {
	var acks, gates []*ackWait
	for _, a := range opAck {
		if a != nil {
			acks = append(acks, a)
		}
	}
	if len(gateOps) > 0 {
		gates = append([]*ackWait(nil), gateOps...)
	}
	n := l.applyN + 1
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
		// Inbound records are durable (or failed: holding would not
		// store them): their messages may be sent.
		for _, a := range gates {
			a.gateOpen.Store(true)
		}
		if len(gates) > 0 {
			l.b.wakeHolding(on)
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
	err := l.b.opts.Store.Apply(ops, done)
	if errors.Is(err, store.ErrQueueFull) {
		l.counters.storeBacklogged++
		return false
	}
	// Every Apply made counts, so Client.holdUntil (applyN+1 when
	// recorded) names the unit that carries its operation, a later one
	// when the operation waited in the backlog.
	l.applyN = n
	switch {
	case err != nil:
		l.b.opts.Logger.Error("store refused operations", "err", err, "ops", len(ops))
		phase.Store(1) // done will not be called
		finish(err, l)
	case !phase.CompareAndSwap(0, 1):
		finish(earlyErr, l)
	}
	return true
}

// clearPass empties the pass's operation lists. Loop-only.
func (l *Loop) clearPass() {
	clear(l.ops)
	clear(l.opAck)
	clear(l.gateOps)
	l.ops, l.opAck, l.gateOps = l.ops[:0], l.opAck[:0], l.gateOps[:0]
}

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
	rec := &store.Session{ClientID: s.id, Version: byte(s.version), ExpiryInterval: s.expiry, DisconnectedAt: s.discAt, QoS2Mark: s.qos2Mark}
	if s.x != nil {
		rec.Owner, rec.OwnerKind = s.x.owner, s.x.ownerKind
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
	if a := om.m.ack; a != nil && a.mark != 0 {
		ob.Origin, ob.OriginMark = a.inSess.id, a.mark
		if om.qos == 2 && !a.gateOpen.Load() {
			om.gate = a
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
	if !s.persistent() || s.w == nil {
		return
	}
	s.l.addOp(store.Op{Will: &store.Will{ClientID: s.id, Msg: storeMessage(s.w.m), PublishAt: s.w.at}}, nil)
}

func (s *Session) storeWillGone() {
	if !s.persistent() {
		return
	}
	s.l.addOp(store.Op{Delete: true, Will: &store.Will{ClientID: s.id}}, nil)
}

func (l *Loop) storeRetained(m *Message, aw *ackWait) {
	if l.b.opts.Store == nil || isSys(m.Topic) {
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
