package bridge

import (
	"hash/maphash"
	"sync"
)

// echoFilter drops what a 3.1.1 remote sends back of the bridge's own
// messages. MQTT 3.1.1 has no No Local: a topic both sent out and
// subscribed to comes back to the bridge. Each message sent to a remote
// topic an in mapping covers is remembered (a hash of topic and payload,
// the last echoWindow of them); an inbound message matching one is the
// echo and is dropped once. The price: an identical message published on
// the remote by someone else while its twin is remembered is dropped
// too. MQTT 5 remotes use No Local instead and need none of this.
type echoFilter struct {
	mu     sync.Mutex
	seed   maphash.Seed
	counts map[uint64]int
	ring   []uint64 // the hashes remembered, oldest at next once full
	next   int
	full   bool
}

// echoWindow is how many sent messages a 3.1.1 bridge remembers.
const echoWindow = 4096

func newEchoFilter(n int) *echoFilter {
	return &echoFilter{seed: maphash.MakeSeed(), counts: make(map[uint64]int, n), ring: make([]uint64, n)}
}

func (e *echoFilter) hash(topic string, payload []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(e.seed)
	h.WriteString(topic)
	h.WriteByte(0)
	h.Write(payload)
	return h.Sum64()
}

// sent remembers a message sent to the remote.
func (e *echoFilter) sent(topic string, payload []byte) {
	k := e.hash(topic, payload)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.full {
		if old := e.ring[e.next]; e.counts[old] > 1 {
			e.counts[old]--
		} else {
			delete(e.counts, old)
		}
	}
	e.ring[e.next] = k
	e.counts[k]++
	e.next++
	if e.next == len(e.ring) {
		e.next, e.full = 0, true
	}
}

// echoed reports (and forgets) a remembered message coming back.
func (e *echoFilter) echoed(topic string, payload []byte) bool {
	k := e.hash(topic, payload)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts[k] == 0 {
		return false
	}
	if e.counts[k]--; e.counts[k] == 0 {
		delete(e.counts, k)
	}
	return true
}
