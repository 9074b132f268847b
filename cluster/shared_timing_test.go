package cluster

import (
	"testing"

	"github.com/mcutie/mcutie/broker"
)

// BenchmarkForwardShared: the publishing node's cost per message of a
// forward: plain (a peer has a matching filter: match, encode, queue) and
// shared (peers and this node have members of a matching group: match
// both indexes, pick the node, encode the assignment, queue). The queue
// is drained in the loop (the sender's publish to NATS is not counted:
// it is the same for both). cpu-ns/msg is the process's CPU per message.
//
//	go test ./cluster -run '^$' -bench BenchmarkForwardShared -benchmem -count 5
func BenchmarkForwardShared(b *testing.B) {
	for _, bc := range []struct {
		name  string
		topic string
	}{
		{"plain", "t/x"},        // c's filter t/x; b's group h/u/# does not match
		{"shared", "t/y"},       // group g on b, c and here: one of them serves it
		{"plain+shared", "t/x"}, // both
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := sharedTestNode(b)
			if bc.name == "plain" {
				n.Interest("$share/g/t/#", -1)
				n.peersMu.Lock()
				n.peers["b"].groups = nil
				n.peers["c"].groups = nil
				n.rebuildLocked()
				n.peersMu.Unlock()
			}
			m := &broker.PeerMessage{Topic: []byte(bc.topic), Payload: make([]byte, 64), QoS: 1, Elsewhere: make([]byte, 0, 64)}
			b.ReportAllocs()
			b.SetBytes(int64(len(m.Payload)))
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				m.Elsewhere = m.Elsewhere[:0]
				if n.Forward(m) > 0 {
					n.bufPool.Put((<-n.queue).buf)
				}
			}
			// CPU, not wall time: on a loaded machine the wall time
			// counts the time other processes ran.
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/msg")
		})
	}
}
