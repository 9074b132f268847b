package broker

import (
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/mcutie/mcutie/codec"
)

// BenchmarkPublishRetained: one retained PUBLISH (QoS 0, 64 B) decoded,
// routed to one local subscriber and set in the retained index, over
// 1,000 topics in turn. "single" is a node without a cluster (what every
// single node runs: no version, no tombstone); "cluster" has Peers (a
// stub that forwards nowhere), so it pays the version stamp and the
// last-writer-wins compare-and-replace. The retained index keeps every
// message it replaces alive until the GC proves it unused (pinned), so a
// retained publish allocates its Message in both.
func BenchmarkPublishRetained(b *testing.B) {
	for _, mode := range []string{"single", "cluster"} {
		b.Run(mode, func(b *testing.B) {
			o := Options{Loops: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if mode == "cluster" {
				o.Peers = nowherePeers{}
			}
			br := New(o)
			for _, l := range br.loops {
				l.Bind(func(fn func()) error { fn(); return nil })
			}
			sub, _ := connectClient(b, br, "sub", codec.V5, false)
			subscribe(b, sub, codec.V5, "r/#", 0)
			pub, _ := connectClient(b, br, "pub", codec.V5, false)
			raws := make([][]byte, 1000)
			for i := range raws {
				p := codec.Publish{Topic: []byte("r/" + strconv.Itoa(i)), Payload: make([]byte, 64), Retain: true}
				raws[i] = p.Append(nil, codec.V5)
			}
			for _, raw := range raws { // every topic retained once: steady state replaces
				pub.Feed(raw)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(raws[0])))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Feed(raws[i%len(raws)])
			}
		})
	}
}

// nowherePeers is a cluster of one: Peers set, nothing forwarded.
type nowherePeers struct{}

func (nowherePeers) Forward(*PeerMessage) int        { return 0 }
func (nowherePeers) Interest(string, int)            {}
func (nowherePeers) Connected(string)                {}
func (nowherePeers) ClusterStats() (cs ClusterStats) { return cs }
