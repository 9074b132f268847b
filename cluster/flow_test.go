package cluster

import (
	"testing"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// flowNode is a node (not started) with peers b and c, b granting credit.
func flowNode(t testing.TB, credit int64) *Node {
	t.Helper()
	n, err := New(Options{NodeID: "a", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	n.routing.Store(true)
	n.peersMu.Lock()
	n.peers["b"] = &peer{subject: subjectMsg("b"), known: true, filters: []string{"dev/#"}, flow: newFlowOut(false)}
	n.peers["b"].flow.credit.Store(credit)
	n.peers["c"] = &peer{subject: subjectMsg("c"), known: true, filters: []string{"dev/#"}, flow: newFlowOut(false)}
	n.rebuildLocked()
	n.peersMu.Unlock()
	return n
}

// TestForwardCountsAgainstCredit: a QoS 1 message to a node that grants
// credit goes as version 4 and is counted for that node only; QoS 0 and
// retained messages are not counted; beyond the credit a message no
// publisher waits for is sent uncounted (what is tracked stays bounded by
// the publishers' windows); a message that cannot be queued gives its
// count back.
func TestForwardCountsAgainstCredit(t *testing.T) {
	n := flowNode(t, 2)
	ix := n.remote.Load()
	fb := n.peers["b"].flow
	m := &broker.PeerMessage{Topic: []byte("dev/1"), Payload: []byte("x"), QoS: 1}
	if got := n.Forward(m); got != 2 {
		t.Fatalf("forwarded to %d nodes, want 2", got)
	}
	it := <-n.queue
	ib := -1
	for i, id := range ix.ids {
		if id == "b" {
			ib = i
		}
	}
	if it.counted != 1<<ib || it.heldBy != 0 || (*it.buf)[0] != wireVersionFlow || fb.inflight.Load() != 1 {
		t.Fatalf("counted %b held %b version %d inflight %d; want b counted, nothing held, version 4, 1", it.counted, it.heldBy, (*it.buf)[0], fb.inflight.Load())
	}
	var p codec.Publish
	h, err := decodeAny(*it.buf, &p)
	if err != nil || h.kind != kindLive || h.seq != 0 || string(p.Topic) != "dev/1" || string(h.source) != "a" {
		t.Fatalf("decoded %+v %q err %v", h, p.Topic, err)
	}
	for _, qm := range []*broker.PeerMessage{{Topic: []byte("dev/1"), QoS: 0}, {Topic: []byte("dev/1"), QoS: 1, Retain: true, Payload: []byte("r")}} {
		n.Forward(qm)
		if it := <-n.queue; it.counted != 0 || (*it.buf)[0] != wireVersion {
			t.Fatalf("QoS %d retain %v: counted %b version %d, want none and 3", qm.QoS, qm.Retain, it.counted, (*it.buf)[0])
		}
	}
	n.Forward(m) // the second within the credit
	<-n.queue
	n.Forward(m) // beyond it, and no acknowledgement to hold
	if it := <-n.queue; it.counted != 0 || fb.inflight.Load() != 2 {
		t.Fatalf("beyond the credit without an acknowledgement: counted %b, inflight %d; want none, 2", it.counted, fb.inflight.Load())
	}
	// Confirmed: the count goes back.
	fb.sent(1, broker.PeerAck{}, false)
	fb.sent(2, broker.PeerAck{}, false)
	fb.confirm(1)
	if fb.inflight.Load() != 1 {
		t.Fatalf("after confirming 1 of 2: inflight %d", fb.inflight.Load())
	}
	if k := fb.fail(true); k != 1 || fb.inflight.Load() != 0 {
		t.Fatalf("fail gave up %d, inflight %d; want 1, 0", k, fb.inflight.Load())
	}
	fb.inflight.Store(0)
	for range cap(n.queue) {
		n.queue <- outItem{}
	}
	if got := n.Forward(m); got != -2 || fb.inflight.Load() != 0 {
		t.Fatalf("queue full: Forward %d inflight %d; want -2, 0", got, fb.inflight.Load())
	}
}

// TestFlowInConfirmsInOrder: the confirmation moves past messages routed
// in a row only: one routed late holds back those after it.
func TestFlowInConfirmsInOrder(t *testing.T) {
	n := flowNode(t, 0)
	fi := n.flowInFor([]byte("b"), 7)
	for s := uint64(1); s <= 4; s++ {
		fi.add(s)
	}
	fi.PeerRouted(2)
	fi.PeerRouted(3)
	if fi.confirmed != 0 {
		t.Fatalf("confirmed %d with 1 not routed yet", fi.confirmed)
	}
	fi.PeerRouted(1)
	if fi.confirmed != 3 {
		t.Fatalf("confirmed %d, want 3", fi.confirmed)
	}
	fi.PeerRouted(9) // unknown: ignored
	fi.PeerRouted(4)
	if fi.confirmed != 4 {
		t.Fatalf("confirmed %d, want 4", fi.confirmed)
	}
	if fi2 := n.flowInFor([]byte("b"), 8); fi2 == fi || !fi.dead {
		t.Fatal("a new stream of the node must replace the old one")
	}
}

// TestVersion3ForNodesWithoutCredit: what a node granting no credit (an
// older version) gets decodes as version 3 with the same message.
func TestVersion3ForNodesWithoutCredit(t *testing.T) {
	n := flowNode(t, 0)
	m := &broker.PeerMessage{Topic: []byte("dev/1"), Payload: []byte("x"), QoS: 1}
	v4 := n.appendPublish(n.appendHead(nil, kindLive, m, true), m)
	v3 := n.appendPublish(n.appendHead(nil, kindLive, m, false), m)
	stripped := append([]byte{wireVersion, v4[1]}, v4[2+flowFields:]...)
	if string(stripped) != string(v3) {
		t.Fatalf("version 4 without its flow fields differs from version 3:\n%x\n%x", stripped, v3)
	}
}

// BenchmarkForwardCredit is BenchmarkForwardEncodeQueue for a QoS 1
// message to a node that grants credit: counted, encoded as version 4,
// then (as the sender and the confirmation do) recorded and confirmed.
func BenchmarkForwardCredit(b *testing.B) {
	n := flowNode(b, 1<<30)
	delete(n.peers, "c")
	n.peersMu.Lock()
	n.rebuildLocked()
	n.peersMu.Unlock()
	f := n.peers["b"].flow
	m := &broker.PeerMessage{Topic: []byte("dev/42/telemetry"), Payload: make([]byte, 64), QoS: 1}
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		n.Forward(m)
		it := <-n.queue
		seq++
		f.sent(seq, it.ack, false)
		f.confirm(seq)
		n.bufPool.Put(it.buf)
	}
}
