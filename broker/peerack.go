package broker

import (
	"time"

	"github.com/mcutie/mcutie/codec"
)

// Flow control across the nodes of a cluster (docs/clustering.md,
// "Back-pressure across nodes"). On one node a QoS 1/2 publisher's
// acknowledgement waits for online subscribers far behind (Loop.deliver
// defers it). Across nodes the same wait is split in two halves that the
// cluster joins:
//
//   - on the publishing node, Peers.Forward may hold the publisher's
//     acknowledgement (PeerMessage.Ack) until the receiving node says it
//     routed the message;
//   - on the receiving node, RouteFromPeerConfirmed gives the message an
//     acknowledgement of its own, held exactly as a local publisher's is
//     (deliveries on other loops, the store, subscribers far behind), whose
//     release calls PeerRouted instead of writing a PUBACK.

// PeerAck is the acknowledgement of a QoS 1/2 PUBLISH on its way to the
// other nodes (PeerMessage.Ack): Hold keeps the PUBACK/PUBREC from being
// written until a matching Release. The zero PeerAck (a message no
// client waits for) does nothing. Hold must be called within Forward;
// Release is safe for concurrent use, on any goroutine.
type PeerAck struct{ a *ackWait }

// Valid reports whether a publisher waits for this acknowledgement.
func (p PeerAck) Valid() bool { return p.a != nil }

// Hold adds one thing the acknowledgement waits for. Within Forward only
// (the publishing loop still holds it there).
func (p PeerAck) Hold() {
	if p.a != nil {
		p.a.hold()
	}
}

// Release drops a Hold; the last one writes the acknowledgement (posted
// to the publisher's loop). Safe for concurrent use.
func (p PeerAck) Release() {
	if p.a != nil && p.a.release(nil) {
		p.a.fireOffLoop()
	}
}

// PeerRouted is told, with the sequence number given to
// RouteFromPeerConfirmed, once a message from a peer has been routed
// here and every session it was delivered to has room for it: its
// deliveries posted to other loops are done, what they store is stored,
// and no online subscriber it reached is far behind any more (the same
// moment a local publisher's PUBACK would be written). It is called on a
// loop or a store goroutine, once per message; it must not block.
type PeerRouted interface {
	PeerRouted(seq uint64)
}

// RouteFromPeerConfirmed is RouteFromPeer for a QoS 1/2 message whose
// node waits for it to be routed: done.PeerRouted(seq) is called once it
// is (PeerRouted). When it returns an error done is not called.
func (b *Broker) RouteFromPeerConfirmed(key []byte, p *codec.Publish, expireAt time.Time, done PeerRouted, seq uint64) error {
	l, m, err := b.peerMessage(key, p, expireAt)
	if err != nil {
		return err
	}
	m.ack = newPeerAckWait(done, seq)
	if !l.post(inboxItem{kind: itemPublish, msg: m}, true) {
		m.release()
		return ErrInboxFull
	}
	return nil
}

// RouteFromPeerSharedConfirmed is RouteFromPeerShared with
// RouteFromPeerConfirmed's confirmation.
func (b *Broker) RouteFromPeerSharedConfirmed(key []byte, p *codec.Publish, expireAt time.Time, groups []byte, groupsOnly bool, done PeerRouted, seq uint64) error {
	return b.routeFromPeerAck(key, p, expireAt, append([]byte(nil), groups...), groupsOnly, newPeerAckWait(done, seq))
}

// newPeerAckWait is the acknowledgement of a message from a peer: no
// connection, PeerRouted instead of a PUBACK (ackWait.fireOn).
func newPeerAckWait(done PeerRouted, seq uint64) *ackWait {
	a := &ackWait{peer: done, seq: seq}
	a.hold() // held by the pass that routes it
	return a
}
