package cluster

import (
	"encoding/binary"
	"time"
)

// Releasing a hold with acknowledgement (docs/clustering.md, "Hold for
// absent nodes" and "Partitions").
//
// Hearing a node again (its heartbeat reached this node) does not mean
// that this node's messages reach it: after a split heals, a route NATS
// has not closed yet may carry the heartbeats one way while the other
// way is still stalled, and NATS then closes it with whatever this node
// had written to it. Held messages sent on such a route were lost. So a
// hold is released in two steps, each answered by the node on this
// node's message subject:
//
//  1. Probe: this node sends kindHeldAsk with a fresh sequence and keeps
//     holding (messages that are not held, for its clean sessions, go
//     live again). It asks again every heartbeat until the node answers
//     with kindHeldAck: a round trip over the routes as they are now.
//  2. Release: the held messages go, each wrapped as kindHeld with its
//     sequence, then kindHeldAsk with the last one. This node keeps them
//     (unacked) until the node acknowledges that sequence; without an
//     answer within two heartbeats it sends them all again, and again,
//     until the node answers, is away again (they go first into the new
//     hold) or is forgotten (Hold passed). The receiving node delivers a
//     kindHeld message only if its sequence is above the last it
//     delivered from that node, so a message sent twice is delivered
//     once, and in order.
//
// Sequences are per sending node, increasing across its holds and runs
// (they start at the node's start time in ns). Nodes say they take part
// in announcements (HeldAcks); to a node that does not (an older build)
// a hold is released as before, at once and unacknowledged.
//
// Concurrency: the sender goroutine owns holdState's holds, unacked and
// seq; acknowledgements reach it as evAcked through holdEv. The
// receiving side (rxHeld) belongs to onMessage, which NATS calls on one
// goroutine.

// Control kinds on a node's message subject (after kindShared = 3).
const (
	kindHeld    = 4 // version | kind | seq (8) | len(node) (1) | node | a forwarded message
	kindHeldAsk = 5 // version | kind | seq (8) | len(node) (1) | node: answer with kindHeldAck
	kindHeldAck = 6 // version | kind | seq (8) | len(node) (1) | node: every kindHeld up to seq is delivered
)

// released is what was sent to a node that came back and is kept until
// it acknowledges last. Sender goroutine only.
type released struct {
	node   string
	msgs   [][]byte
	seqs   []uint64
	bytes  int
	last   uint64
	sentAt time.Time
}

// appendCtl appends a control header: version, kind, seq, this node.
func (n *Node) appendCtl(dst []byte, kind byte, seq uint64) []byte {
	dst = append(dst, wireVersion, kind)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = append(dst, byte(len(n.o.NodeID)))
	return append(dst, n.o.NodeID...)
}

// parseCtl parses a control header; rest is what follows it.
func parseCtl(b []byte) (kind byte, seq uint64, node string, rest []byte, ok bool) {
	if len(b) < 11 || b[0] != wireVersion || b[1] < kindHeld || b[1] > kindHeldAck {
		return 0, 0, "", nil, false
	}
	l := int(b[10])
	if l == 0 || len(b) < 11+l || b[1] != kindHeld && len(b) != 11+l {
		return 0, 0, "", nil, false
	}
	return b[1], binary.BigEndian.Uint64(b[2:10]), string(b[11 : 11+l]), b[11+l:], true
}

// newHoldFor starts a hold for node, with what it has not acknowledged
// yet first (it was away again before it did). Sender goroutine only.
func (n *Node) newHoldFor(node, subject, why string, durable []string) *hold {
	h := newHold(node, why, durable)
	if r := n.hold.unacked[subject]; r != nil {
		delete(n.hold.unacked, subject)
		h.msgs, h.seqs, h.bytes = r.msgs, r.seqs, r.bytes // still counted as held
	}
	return h
}

// probeHeld asks the node to answer (step 1), again with the same
// sequence when it was asked already; h stays the hold.
func (n *Node) probeHeld(subject string, h *hold) {
	if h.probe == 0 {
		n.hold.seq++
		h.probe = n.hold.seq
	}
	h.probeAt = time.Now()
	if err := n.nc.Publish(subject, n.appendCtl(nil, kindHeldAsk, h.probe)); err != nil {
		n.log.Warn("cluster: cannot ask a node that came back to answer", "peer", h.node, "err", err)
	}
}

// release sends what h holds (step 2) and keeps it until the node
// acknowledges it; acks false: the node does not, sent as before.
func (n *Node) release(subject string, h *hold, acks bool) {
	hs := &n.hold
	delete(hs.holds, subject)
	hs.absent.Add(-1)
	r := &released{node: h.node, msgs: h.msgs[h.head:], seqs: h.seqs[h.head:], bytes: h.bytes}
	if !acks {
		sent := 0
		for _, b := range r.msgs {
			if err := n.nc.Publish(subject, b); err != nil {
				n.dropped.Add(1)
			} else {
				n.sent.Add(1)
				sent++
			}
		}
		hs.releasedTotal.Add(uint64(sent))
		hs.heldMsgs.Add(-int64(len(r.msgs)))
		hs.heldBytes.Add(-int64(r.bytes))
		n.log.Info("cluster: held messages sent to a node that came back", "peer", h.node, "messages", sent, "dropped_while_away", h.dropped)
		return
	}
	if len(r.msgs) == 0 {
		return // the probe's answer was the round trip; nothing to keep
	}
	r.last = r.seqs[len(r.seqs)-1]
	hs.unacked[subject] = r
	n.sendReleased(subject, r)
	n.log.Info("cluster: held messages sent to a node that came back (kept until it acknowledges them)", "peer", h.node,
		"messages", len(r.msgs), "dropped_while_away", h.dropped)
}

// sendReleased sends r's messages wrapped with their sequences, then
// asks for the acknowledgement of the last.
func (n *Node) sendReleased(subject string, r *released) {
	var buf []byte
	for i, b := range r.msgs {
		buf = append(n.appendCtl(buf[:0], kindHeld, r.seqs[i]), b...)
		if err := n.nc.Publish(subject, buf); err != nil {
			n.dropped.Add(1)
		} else {
			n.sent.Add(1)
		}
	}
	_ = n.nc.Publish(subject, n.appendCtl(buf[:0], kindHeldAsk, r.last))
	r.sentAt = time.Now()
}

// onHeldAck runs an acknowledgement on the sender goroutine: the answer
// to a probe releases the hold, the one to a release ends it.
func (n *Node) onHeldAck(ev holdEvent) {
	hs := &n.hold
	if h := hs.holds[ev.subject]; h != nil && h.probe != 0 && ev.seq == h.probe {
		n.release(ev.subject, h, true)
		n.retainedBack(h.node) // what changed in the retained set meanwhile, by the same proven route
		return
	}
	if r := hs.unacked[ev.subject]; r != nil && ev.seq >= r.last {
		hs.releasedTotal.Add(uint64(len(r.msgs)))
		n.dropReleased(ev.subject, r)
	}
}

// dropReleased forgets r (acknowledged, or its node forgotten).
func (n *Node) dropReleased(subject string, r *released) {
	hs := &n.hold
	delete(hs.unacked, subject)
	hs.heldMsgs.Add(-int64(len(r.msgs)))
	hs.heldBytes.Add(-int64(r.bytes))
}

// holdTick runs every heartbeat on the sender goroutine: it asks again
// the nodes that did not answer a probe, and sends again what a node did
// not acknowledge within two heartbeats.
func (n *Node) holdTick() {
	hs := &n.hold
	wait := 2 * n.o.HeartbeatInterval
	for subject, h := range hs.holds {
		if h.probe != 0 && time.Since(h.probeAt) >= n.o.HeartbeatInterval {
			n.probeHeld(subject, h)
		}
	}
	for subject, r := range hs.unacked {
		if time.Since(r.sentAt) >= wait {
			hs.resent.Add(uint64(len(r.msgs)))
			n.log.Info("cluster: held messages not acknowledged; sending them again", "peer", r.node, "messages", len(r.msgs))
			n.sendReleased(subject, r)
		}
	}
}

// onHeldControl handles the control kinds on this node's message
// subject (onMessage's goroutine): it delivers a kindHeld message not
// delivered yet, answers a kindHeldAsk, and hands a kindHeldAck to the
// sender. Reports whether b was one of them; inner is a kindHeld
// message to route as a forwarded one.
func (n *Node) onHeldControl(b []byte) (inner []byte, handled bool) {
	if len(b) < 2 || b[0] != wireVersion || b[1] < kindHeld || b[1] > kindHeldAck {
		return nil, false
	}
	kind, seq, node, rest, ok := parseCtl(b)
	if !ok {
		n.badIn.Add(1)
		return nil, true
	}
	switch kind {
	case kindHeld:
		if seq <= n.rxHeld[node] {
			return nil, true // sent again: delivered already
		}
		n.rxHeld[node] = seq
		return rest, true
	case kindHeldAsk:
		// Every kindHeld before it on this path was routed: answer.
		if err := n.nc.Publish(subjectMsg(node), n.appendCtl(nil, kindHeldAck, seq)); err != nil {
			n.log.Warn("cluster: cannot acknowledge held messages", "peer", node, "err", err)
		}
	case kindHeldAck:
		n.sendHoldEvents([]holdEvent{{kind: evAcked, node: node, subject: subjectMsg(node), seq: seq}})
	}
	return nil, true
}
