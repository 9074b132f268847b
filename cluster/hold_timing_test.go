package cluster

import (
	"testing"

	"github.com/mcutie/mcutie/broker"
)

// BenchmarkHoldCheck is what the hold for absent nodes (hold.go) adds on
// the sender goroutine, per message and receiving node (the loops'
// Forward is unchanged):
//
//   - none-absent: no node is away: one atomic load and one lookup of
//     the node's subject in the NATS server's subscription cache (is its
//     route still there?);
//   - absent-nomatch: the node is away and the message matches none of
//     its persistent sessions' filters: decode and match, not held;
//   - send: for scale, the in-process NATS publish that follows the
//     check for a live node.
//
// Run: go test -run '^$' -bench HoldCheck ./cluster
func BenchmarkHoldCheck(b *testing.B) {
	nodes := startBenchCluster(b, 2)
	n := nodes[0].node
	subj := subjectMsg("bn1")
	if !n.reachable(subj) {
		b.Fatal("bn1's subject has no interest on bn0")
	}
	buf := n.encode(nil, kindLive, &broker.PeerMessage{Topic: []byte("bench/t"), Payload: make([]byte, 64), QoS: 1})
	it := outItem{buf: &buf}
	b.Run("none-absent", func(b *testing.B) {
		b.ReportAllocs()
		held := 0
		ix := &remoteIndex{subjects: []string{subj}}
		for b.Loop() {
			if n.hold.absent.Load() != 0 || !n.recentlyReachable(ix, 0) {
				held++
			}
		}
		if held != 0 {
			b.Fatal("held with no node away")
		}
	})
	b.Run("absent-nomatch", func(b *testing.B) {
		// The benchmark goroutine stands in for the sender, which has
		// nothing to send meanwhile (no message is published).
		const other = "mcutie.msg.bench-away"
		n.hold.holds[other] = newHold("bench-away", "test", []string{"elsewhere/#"})
		defer delete(n.hold.holds, other)
		b.ReportAllocs()
		for b.Loop() {
			if !n.held(&it, other) {
				b.Fatal("not held for an absent node")
			}
		}
		if n.hold.heldMsgs.Load() != 0 {
			b.Fatal("held a message no durable filter matches")
		}
	})
	b.Run("send", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := n.nc.Publish(subj, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
