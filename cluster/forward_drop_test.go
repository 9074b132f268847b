package cluster

import (
	"testing"

	"github.com/mcutie/mcutie/broker"
)

// TestForwardFullQueue: with the send queue full, Forward drops the
// message, counts it, and returns minus the nodes it matched, so the
// broker counts a drop (cluster_queue_full) and not "no subscribers".
func TestForwardFullQueue(t *testing.T) {
	n, err := New(Options{NodeID: "a", Listen: "127.0.0.1:0", QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	n.routing.Store(true) // no sender runs: the queue stays full
	n.peersMu.Lock()
	n.peers["b"] = &peer{subject: subjectMsg("b"), known: true, filters: []string{"dev/#"}}
	n.peers["c"] = &peer{subject: subjectMsg("c"), known: true, filters: []string{"dev/+/t"}}
	n.rebuildLocked()
	n.peersMu.Unlock()
	m := &broker.PeerMessage{Topic: []byte("dev/1/t"), Payload: []byte("x")}
	if got := n.Forward(m); got != 2 {
		t.Fatalf("first message forwarded to %d nodes, want 2", got)
	}
	if got := n.Forward(m); got != -2 {
		t.Fatalf("with the queue full Forward returned %d, want -2", got)
	}
	if got := n.Forward(&broker.PeerMessage{Topic: []byte("other")}); got != 0 {
		t.Fatalf("a message no node wants: %d, want 0", got)
	}
	if d := n.dropped.Load(); d != 1 {
		t.Fatalf("dropped %d, want 1", d)
	}
}
