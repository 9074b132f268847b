package broker

import (
	"sync/atomic"

	"github.com/mcutie/mcutie/codec"
)

// Acknowledgements that wait. A PUBACK or PUBREC of a QoS 1/2 PUBLISH, a
// PUBCOMP and a SUBACK vouch for state: they are written only once every
// store operation they depend on has completed, on every loop the message
// reached, and (flow control) once subscribers far behind have caught up.
// Where each is decided, waits and is written:
//
//   - decided: handlePublish (publish.go), handleAck for PUBREL → PUBCOMP
//     (publish.go), handleSubscribe (subscribe.go);
//   - waits: an ackWait's latch counts the holds (store operations in
//     commit.go's pipeline, deliveries posted to other loops, deferred
//     flow control in Loop.deliver);
//   - written: ackWait.write, on the connection's loop, by whoever drops
//     the last hold (ackWait.fireOn on a loop, ackWait.fireOffLoop from
//     a store goroutine).
//
// The QoS 2 exactly-once ordering some of them also carry is qos2.go's
// (and DURABILITY.md's).

// latch counts what an acknowledgement still waits for, and whether any of
// it failed. Safe for concurrent use.
type latch struct {
	pending atomic.Int32
	failed  atomic.Bool
}

// hold adds one thing to wait for.
func (w *latch) hold() { w.pending.Add(1) }

// release drops one hold (err: that thing failed) and reports whether it
// was the last.
func (w *latch) release(err error) bool {
	if err != nil {
		w.failed.Store(true)
	}
	return w.pending.Add(-1) == 0
}

// ackWait is an acknowledgement waiting on its latch. It is created with
// one hold, dropped by the pass that creates it once it has added the
// others.
type ackWait struct {
	latch
	quotaExceeded atomic.Bool // a subscriber's queue was full: the message missed it
	c             *Client
	typ           codec.Type // PUBACK, PUBREC, PUBCOMP or SUBACK
	pid           uint16
	code          codec.ReasonCode
	raw           []byte // encoded SUBACK
	after         func() // runs after the acknowledgement is written (retained messages of a SUBSCRIBE)

	// q2 orders a QoS 2 PUBLISH of a persistent session across loops
	// (qos2.go); nil for every other acknowledgement.
	q2 *qos2Order

	// peer, for a message from another node that waits for it to be
	// routed (peerack.go): told seq instead of writing to c (nil).
	peer PeerRouted
	seq  uint64
}

func newAckWait(c *Client, typ codec.Type, pid uint16) *ackWait {
	a := &ackWait{c: c, typ: typ, pid: pid}
	a.hold() // held by the pass that creates it
	return a
}

// releaseOn drops one hold, on loop on, and writes the acknowledgement if
// it was the last. Loop-only.
func (a *ackWait) releaseOn(on *Loop, err error) {
	if a.release(err) {
		a.fireOn(on)
	}
}

// fireOn writes the acknowledgement from loop on: at once when on is the
// connection's loop, else posted there. Loop-only.
func (a *ackWait) fireOn(on *Loop) {
	if a.peer != nil {
		a.peer.PeerRouted(a.seq)
		return
	}
	l := a.c.l
	if on == l {
		a.write()
		return
	}
	if !l.post(inboxItem{kind: itemFunc, fn: a.write}, true) {
		on.counters.dropped[dropInboxFull]++ // counted by the loop running this
	}
}

// fireOffLoop writes the acknowledgement from a goroutine that is no
// loop's (a store's committer): it is posted to the connection's loop.
// Safe for concurrent use.
func (a *ackWait) fireOffLoop() {
	if a.peer != nil {
		a.peer.PeerRouted(a.seq)
		return
	}
	l := a.c.l
	if !l.post(inboxItem{kind: itemFunc, fn: a.write}, true) {
		l.b.droppedOffLoop.Add(1)
	}
}

// write sends the acknowledgement if its connection is still there.
// Loop-only.
func (a *ackWait) write() {
	c := a.c
	if a.typ == codec.PUBACK && c.version == codec.V5 {
		c.inboundQoS1-- // counted in handlePublish
	}
	if a.typ == codec.PUBREC && (a.failed.Load() || a.quotaExceeded.Load() && c.version == codec.V5) {
		// The PUBREC refuses the message (or the connection is closed
		// for it): the exchange ends here, written or not (the
		// connection may be gone already).
		s := c.s
		if a.q2 != nil {
			s = a.q2.sess
		}
		if s != nil {
			s.forgetInbound(a.pid)
		}
	}
	if c.state != stateConnected {
		return
	}
	if a.failed.Load() {
		// The state this acknowledgement vouches for is not stored:
		// refuse rather than acknowledge (v5 0x80; 3.x has no code).
		c.l.counters.storeRefused++
		if c.version != codec.V5 || a.typ == codec.SUBACK || a.typ == codec.PUBCOMP {
			// 3.x has no code for it; a v5 SUBACK cannot refuse a
			// subscription after the fact, and a PUBCOMP carries only
			// 0x00 or 0x92 [MQTT-3.7.2-1].
			c.closeFor(closeStoreRefused, 0, "state not stored")
			return
		}
		c.queueAck(a.typ, a.pid, codec.UnspecifiedError)
		return
	}
	if a.typ == codec.SUBACK {
		if a.raw != nil { // nil: subscriptions made for the client, no SUBACK (autosub.go)
			c.queueControl(append(c.controlBuf(), a.raw...))
		}
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
