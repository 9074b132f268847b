package cluster

// Benchmarks of the cluster's costs (docs/clustering.md, "Measured"):
// the forward path in process, and what interest costs as filters and
// nodes grow. They run with `go test -run '^$' -bench . ./cluster`, not
// in make test; the memory benchmark of a million filters runs only when
// asked for by name (-bench RemoteIndexMemory).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// benchNode is one broker of an in-process cluster for benchmarks.
type benchNode struct {
	b    *broker.Broker
	node *Node
}

// startBenchCluster runs n brokers (two loops each) joined through their
// embedded NATS servers on loopback and waits until each knows the others.
func startBenchCluster(tb testing.TB, n int) []*benchNode {
	tb.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out []*benchNode
	for i := range n {
		id := "bn" + strconv.Itoa(i)
		var join []string
		if i > 0 {
			join = []string{out[0].node.ClusterAddr()}
		}
		cn, err := New(Options{NodeID: id, Listen: "127.0.0.1:0", Join: join, HeartbeatInterval: 200 * time.Millisecond, Logger: quiet})
		if err != nil {
			tb.Fatal(err)
		}
		b := broker.New(broker.Options{NodeID: id, Peers: cn, Loops: 2, Store: store.NewMemory(), Logger: quiet})
		srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}, Logger: quiet})
		if err := srv.Start(); err != nil {
			tb.Fatal(err)
		}
		if err := cn.Start(b); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			cn.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Stop(ctx)
		})
		out = append(out, &benchNode{b: b, node: cn})
	}
	waitFor(tb, "every node knows the others", func() bool {
		for _, bn := range out {
			ps := bn.node.Peers()
			if len(ps) != n-1 {
				return false
			}
			for _, p := range ps {
				if !p.Known {
					return false
				}
			}
		}
		return true
	})
	return out
}

func waitFor(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within 20 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkDeliver is one message published on node A (Broker.Publish,
// QoS 0, 64-byte payload) and delivered to a server-side subscriber, on A
// (local) or on B (cross: match, encode, queue, send over the NATS route,
// receive, decode, route on B), or to one on B and one on C
// (cross-to-2-nodes: what each further destination node adds). ns/op is the pipeline's cost per message
// with both nodes in this process, at most 1024 messages in flight;
// cpu-ns/msg is the process's CPU per message (both brokers, both NATS
// servers, the subscriber), which a loaded machine inflates less than
// ns/op. Cross minus local is what crossing adds.
func BenchmarkDeliver(b *testing.B) {
	for _, c := range []struct {
		name  string
		nodes int
		subs  []int // the nodes with a subscriber
	}{{"local", 2, []int{0}}, {"cross", 2, []int{1}}, {"cross-to-2-nodes", 3, []int{1, 2}}} {
		b.Run(c.name, func(b *testing.B) {
			nodes := startBenchCluster(b, c.nodes)
			pubNode := nodes[0]
			// slots bounds the messages in flight: the publisher takes one
			// per message, the first subscriber gives it back (no spinning,
			// so the process's CPU is the pipeline's); the others are
			// waited for at the end.
			const inFlight = 1024
			slots := make(chan struct{}, inFlight)
			got := make([]atomic.Int64, len(c.subs))
			var subs []*broker.ServerSubscription
			for k, at := range c.subs {
				sub, err := nodes[at].b.Subscribe("bench/deliver/#", broker.SubscribeOptions{QoS: 0, Window: 65535}, func(_ *broker.Delivered, done func()) {
					got[k].Add(1)
					done()
					if k == 0 {
						<-slots
					}
				})
				if err != nil {
					b.Fatal(err)
				}
				defer sub.Unsubscribe()
				subs = append(subs, sub)
				if at != 0 {
					id := "bn" + strconv.Itoa(at)
					waitFor(b, "A knows "+id+"'s interest", func() bool { return pubNode.node.PeerInterest(id, "bench/deliver/#") })
				}
			}
			payload := make([]byte, 64)
			publish := func(n int64) {
				start := make([]int64, len(got))
				for k := range got {
					start[k] = got[k].Load()
				}
				timeout := time.NewTimer(30 * time.Second)
				defer timeout.Stop()
				for sent := int64(0); sent < n; {
					select {
					case slots <- struct{}{}:
					case <-timeout.C:
						b.Fatalf("%d of %d delivered in 30 s (dropped: %d at the subscriber, %d by the cluster)", got[0].Load()-start[0], sent, subs[0].Dropped(), pubNode.node.dropped.Load())
					}
					for pubNode.b.Publish("bench/deliver/x", payload, 0, false) != nil {
						time.Sleep(10 * time.Microsecond) // inbox full
					}
					sent++
				}
				for range inFlight { // every slot back: all delivered to the first
					select {
					case slots <- struct{}{}:
					case <-timeout.C:
						b.Fatalf("%d of %d delivered in 30 s", got[0].Load()-start[0], n)
					}
				}
				for range inFlight {
					<-slots
				}
				for k := range got {
					for got[k].Load()-start[k] < n {
						select {
						case <-timeout.C:
							b.Fatalf("subscriber %d: %d of %d delivered in 30 s", k, got[k].Load()-start[k], n)
						case <-time.After(time.Millisecond):
						}
					}
				}
			}
			publish(10_000) // warm pools, routes and the subscribers
			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			publish(int64(b.N))
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/msg")
		})
	}
}

// BenchmarkForwardEncodeQueue is the publishing node's part of a
// forwarded message on the publishing loop: match the peers' interest,
// encode, queue (and take it off the queue, as the sender does).
func BenchmarkForwardEncodeQueue(b *testing.B) {
	n, err := New(Options{NodeID: "a", Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	n.routing.Store(true)
	n.peersMu.Lock()
	n.peers["b"] = &peer{subject: subjectMsg("b"), known: true, filters: []string{"dev/+/telemetry"}}
	n.rebuildLocked()
	n.peersMu.Unlock()
	m := &broker.PeerMessage{Topic: []byte("dev/42/telemetry"), Payload: make([]byte, 64), QoS: 1}
	b.ReportAllocs()
	for b.Loop() {
		n.Forward(m)
		it := <-n.queue
		n.bufPool.Put(it.buf)
	}
}

// deviceFilters returns k filters of the shape devices subscribe with
// (one command topic each), node's own.
func deviceFilters(node string, k int) []string {
	fs := make([]string, k)
	for i := range fs {
		fs[i] = "site/" + node + "/dev/" + strconv.Itoa(i) + "/cmd"
	}
	return fs
}

// BenchmarkRemoteIndexRebuild is what one interest change costs a node
// today: the whole remote index is rebuilt from every peer's full set
// (rebuildLocked), so its cost grows with the filters of all peers.
func BenchmarkRemoteIndexRebuild(b *testing.B) {
	for _, c := range []struct{ peers, perPeer int }{{2, 500}, {2, 50_000}, {9, 1000}, {49, 1000}} {
		b.Run(fmt.Sprintf("peers=%d/filters=%d", c.peers, c.peers*c.perPeer), func(b *testing.B) {
			n, err := New(Options{NodeID: "a", Listen: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			for i := range c.peers {
				id := "p" + strconv.Itoa(i)
				n.peers[id] = &peer{subject: subjectMsg(id), known: true, filters: deviceFilters(id, c.perPeer)}
			}
			b.ReportAllocs()
			for b.Loop() {
				n.peersMu.Lock()
				n.rebuildLocked()
				n.peersMu.Unlock()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(c.peers*c.perPeer), "ns/filter")
		})
	}
}

// BenchmarkInterestAnnouncement is a full announcement of k filters: its
// size on the wire (B/filter) and the time to encode it on the announcing
// node and decode it on each receiving node.
func BenchmarkInterestAnnouncement(b *testing.B) {
	for _, k := range []int{1000, 100_000} {
		a := announcement{Node: "node-7", Version: 12345, Full: true, Filters: deviceFilters("node-7", k)}
		raw, err := json.Marshal(a)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("encode/filters=%d", k), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(a); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw)), "wire-B")
			b.ReportMetric(float64(len(raw))/float64(k), "wire-B/filter")
		})
		b.Run(fmt.Sprintf("decode/filters=%d", k), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var d announcement
				if err := json.Unmarshal(raw, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	hb, _ := json.Marshal(announcement{Node: "node-7", Version: 12345})
	b.Run("heartbeat", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(announcement{Node: "node-7", Version: 12345}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(hb)), "wire-B")
	})
}

// BenchmarkRemoteIndexMemory is the heap a node holds for its peers'
// interest: one million filters in all, spread over 2, 10 or 49 peers
// (their announced sets, kept per peer, and the remote index built from
// them), after a GC; each peer's filters are its own (the worst case for
// the index), or, with same-filters, 10 peers announce the same 100,000. One pass per b.N; heap-B/filter is what matters.
// Run it by name: go test -run '^$' -bench RemoteIndexMemory ./cluster
func BenchmarkRemoteIndexMemory(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Memory") {
		b.Skip("a million filters: run by name (-bench RemoteIndexMemory)")
	}
	const total = 1_000_000
	b.Run("announcement/filters=1M", func(b *testing.B) {
		a := announcement{Node: "node-7", Version: 12345, Full: true, Filters: deviceFilters("node-7", total)}
		var size int
		for b.Loop() {
			raw, err := json.Marshal(a)
			if err != nil {
				b.Fatal(err)
			}
			size = len(raw)
		}
		b.ReportMetric(float64(size), "wire-B")
	})
	for _, c := range []struct {
		peers int
		same  bool // every peer announces the same filters (1M entries, 1M/peers distinct filters)
	}{{2, false}, {10, false}, {49, false}, {10, true}} {
		peers := c.peers
		name := fmt.Sprintf("filters=1M/peers=%d", peers)
		if c.same {
			name += "/same-filters"
		}
		b.Run(name, func(b *testing.B) {
			var perFilter, index float64
			for b.Loop() {
				before := heapInUse()
				n, err := New(Options{NodeID: "a", Listen: "127.0.0.1:0"})
				if err != nil {
					b.Fatal(err)
				}
				for i := range peers {
					id := "p" + strconv.Itoa(i)
					fs := deviceFilters(id, total/peers)
					if c.same {
						fs = deviceFilters("p0", total/peers)
					}
					n.peers[id] = &peer{subject: subjectMsg(id), known: true, filters: fs}
				}
				sets := heapInUse()
				n.peersMu.Lock()
				n.rebuildLocked()
				n.peersMu.Unlock()
				after := heapInUse()
				perFilter = float64(after-before) / total
				index = float64(after-sets) / total
				runtime.KeepAlive(n)
			}
			b.ReportMetric(perFilter, "heap-B/filter")
			b.ReportMetric(index, "index-B/filter")
		})
	}
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
