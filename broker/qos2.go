package broker

import (
	"slices"
	"sync/atomic"
)

// QoS 2 exactly-once across loops and restarts: the protocol is written
// down in DURABILITY.md; this file is its code. In short: a QoS 2 PUBLISH
// of a persistent session gets a broker-wide mark; its inbound record
// (the packet id, [MQTT-4.3.3-10]) is stored only after every loop the
// message went to has submitted its outbound records, in mark order per
// publisher (drainQoS2); and no subscriber is sent the message before that
// record is durable (the gate, outMsg.gate).

// qos2Order is the cross-loop ordering state of one QoS 2 PUBLISH of a
// persistent session (ackWait.q2).
type qos2Order struct {
	sess *Session // the publisher's

	// routing counts the loops (the publisher's included) that have the
	// message and have not yet submitted their operations for it: the
	// inbound record waits for 0.
	routing atomic.Int32

	// mark is the publish's broker-wide number (Session.qos2Mark); ready
	// says every loop has submitted its operations. Owned by sess's loop.
	mark  uint64
	ready bool

	// open says the inbound record is durable (or will never be written),
	// so subscribers may be sent the message: the gate.
	open atomic.Bool
}

// newQoS2Order starts the ordering of a QoS 2 PUBLISH of persistent
// session s, routed on s's loop so far. Loop-only.
func newQoS2Order(s *Session) *qos2Order {
	o := &qos2Order{sess: s, mark: s.l.b.qos2Mark.Add(1)}
	o.routing.Store(1)
	return o
}

// holdRoute holds a (may be nil) for a message posted to another loop.
func (a *ackWait) holdRoute() {
	if a == nil {
		return
	}
	a.hold()
	if a.q2 != nil {
		a.q2.routing.Add(1)
	}
}

// unholdRoute undoes holdRoute's routing count when the post failed (the
// caller releases the hold).
func (a *ackWait) unholdRoute() {
	if a != nil && a.q2 != nil {
		a.q2.routing.Add(-1)
	}
}

// afterRoute notes that m was routed here: if its inbound record waits for
// this loop's operations, the end of the pass tells it. Loop-only.
func (l *Loop) afterRoute(m *Message) {
	if a := m.ack; a != nil && a.q2 != nil {
		l.afterApply = append(l.afterApply, a)
	}
}

// routedQoS2 runs after this pass's Apply: the loop has submitted its
// operations for the messages in afterApply. The last loop to do so for a
// message has its inbound record stored, on the publisher's loop.
// Loop-only.
func (l *Loop) routedQoS2() {
	for i, a := range l.afterApply {
		l.afterApply[i] = nil
		if a.q2.routing.Add(-1) != 0 {
			continue
		}
		if sl := a.q2.sess.l; sl == l {
			a.storeInboundDeferred()
		} else if !sl.post(inboxItem{kind: itemFunc, fn: a.storeInboundDeferred}, true) {
			l.counters.dropped[dropInboxFull]++ // counted by the loop running this
		}
	}
	l.afterApply = l.afterApply[:0]
}

// storeInboundDeferred stores the inbound record of a QoS 2 PUBLISH once
// every loop the message went to has submitted its operations. It runs on
// the publisher's loop. Loop-only.
func (a *ackWait) storeInboundDeferred() {
	a.q2.ready = true
	a.q2.sess.drainQoS2()
}

// drainQoS2 stores the inbound records of the marked publishes at the
// head of qos2Pending whose loops have all submitted, in mark order, with
// the session's new qos2Mark, and drops the hold each took in
// handlePublish. Loop-only.
func (s *Session) drainQoS2() {
	q := s.qosState
	if q == nil {
		return
	}
	n := 0
	for n < len(q.qos2Pending) && q.qos2Pending[n].q2.ready {
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
		if a.q2.mark > s.qos2Mark {
			s.qos2Mark = a.q2.mark
		}
		if live && slices.Contains(q.inboundQoS2, a.pid) { // no PUBREL yet
			s.storeInbound(a.pid, false, a)
			s.l.pass.gates = append(s.l.pass.gates, a.q2)
		} else {
			a.q2.open.Store(true)
			s.l.b.wakeHolding(s.l)
		}
	}
	if live {
		s.storeSession() // the new qos2Mark, in the same Apply as the records
	}
	for _, a := range done {
		a.releaseOn(s.l, nil)
	}
}
