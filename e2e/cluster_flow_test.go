package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/cluster"
)

// addFlowNode is addClusterNode with broker options of its own (limits)
// and without session ownership (not under test here).
func addFlowNode(t testing.TB, i int, seed string, bo broker.Options) *clusterNode {
	t.Helper()
	id := fmt.Sprintf("n%d", i)
	var join []string
	if seed != "" {
		join = []string{seed}
	}
	cn, err := cluster.New(cluster.Options{NodeID: id, Listen: "127.0.0.1:0", Join: join,
		HeartbeatInterval: 200 * time.Millisecond, PeerTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	bo.NodeID, bo.Peers = id, cn
	tb := start(t, bo)
	if err := cn.Start(tb.B); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cn.Stop)
	return &clusterNode{testBroker: tb, id: id, node: cn}
}

// flowPublisher is a paho.golang v5 publisher whose PUBACKs may take as
// long as the test (held by back-pressure), not v5Timeout.
func flowPublisher(t *testing.T, addr, id string) *paho.Client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, v5Timeout)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: &lockedConn{Conn: nc}, PacketTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		nc.Close()
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { nc.Close() })
	return c
}

// TestClusterFloodSlowSubscriberLosesNothing: back-pressure across nodes.
// QoS 1 publishers on A flood (as fast as their acknowledgements allow:
// 40 paho.golang v5 publishers, 500 messages each) a persistent QoS 1
// subscriber on B that stops reading for a while, with a session queue
// far smaller than the flood (--max-queued-messages 1000 on B). B's
// session falls behind, B stops confirming, A holds its publishers'
// PUBACKs (they wait, as on one node); once the subscriber reads again,
// every acknowledged message reaches it exactly once and in order per
// publisher, as it reaches a fast 3.1.1 persistent subscriber
// (paho.mqtt.golang) on C. Before credit-based forwarding, B dropped
// what did not fit in the session's queue (queue_full) after A had
// acknowledged it.
func TestClusterFloodSlowSubscriberLosesNothing(t *testing.T) {
	const pubs, per = 40, 500
	a := addFlowNode(t, 0, "", broker.Options{MaxInflight: 100})
	b := addFlowNode(t, 1, a.node.ClusterAddr(), broker.Options{MaxQueued: 1000, MaxInflight: 20})
	c := addFlowNode(t, 2, a.node.ClusterAddr(), broker.Options{})
	nodes := []*clusterNode{a, b, c}
	waitKnown(t, nodes)

	slow, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "flow-slow", CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300), ReceiveMaximum: v5U16(20)}})
	slow.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "flow/#", QoS: 1}}})
	fast := newV3Sink()
	fc, _ := v3Paho(t, c.Addr, "flow-fast", false, fast, nil)
	v3Sub(t, fc, "flow/#", 1)
	waitInterest(t, nodes, b, "flow/#")
	waitInterest(t, nodes, c, "flow/#")

	// The slow subscriber reads nothing until the flood has been slowed:
	// paho blocks in its handler once its 1024-message channel is full and
	// stops reading the socket.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for g := range pubs {
		pub := flowPublisher(t, a.Addr, "flow-pub-"+strconv.Itoa(g))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				r, err := pub.Publish(ctx, &paho.Publish{Topic: "flow/" + strconv.Itoa(g), QoS: 1, Payload: []byte(strconv.Itoa(g) + ":" + strconv.Itoa(i))})
				if err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %v", g, i, err)
					return
				}
				if r.ReasonCode != 0 {
					errs <- fmt.Errorf("publisher %d message %d: PUBACK 0x%02x, want 0x00", g, i, r.ReasonCode)
					return
				}
			}
		}()
	}
	// The limit is reached: B defers the acknowledgement of what it routes
	// to the slow session (far behind) and A holds its publishers' PUBACKs.
	deadline := time.Now().Add(30 * time.Second)
	for metricValue(t, a.node, "mcutie_cluster_flow_held_total") == 0 || deferredAcks(t, b) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the flood was not slowed within 30 s: held on A %v, acks deferred on B %d",
				metricValue(t, a.node, "mcutie_cluster_flow_held_total"), deferredAcks(t, b))
		}
		time.Sleep(20 * time.Millisecond)
	}

	got := make(map[int][]int, pubs)
	for n := 0; n < pubs*per; n++ {
		select {
		case m := <-slow.msgs:
			g, i := flowParse(t, string(m.Payload))
			got[g] = append(got[g], i)
		case err := <-errs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("the slow subscriber received %d of %d messages", n, pubs*per)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	flowCheck(t, "slow v5 subscriber on B", got, pubs, per)
	fastGot := map[int][]int{}
	for _, m := range fast.waitN(t, pubs*per) {
		g, i := flowParse(t, m.Payload)
		fastGot[g] = append(fastGot[g], i)
	}
	flowCheck(t, "fast 3.1.1 subscriber on C", fastGot, pubs, per)
	st, err := b.B.StatsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped["queue_full"] != 0 {
		t.Errorf("B dropped %d messages at a full session queue", st.Dropped["queue_full"])
	}
	slow.quiet(t) // and nothing more
}

func deferredAcks(t *testing.T, n *clusterNode) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	st, err := n.B.StatsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.AcksDeferred
}

func flowParse(t *testing.T, p string) (int, int) {
	t.Helper()
	gs, is, ok := strings.Cut(p, ":")
	g, err1 := strconv.Atoi(gs)
	i, err2 := strconv.Atoi(is)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("unexpected payload %q", p)
	}
	return g, i
}

// flowCheck asserts every publisher's messages arrived once each, in
// order: lost, duplicated and out-of-order counts all 0.
func flowCheck(t *testing.T, who string, got map[int][]int, pubs, per int) {
	t.Helper()
	lost, dup, disorder := 0, 0, 0
	for g := range pubs {
		seen := make([]bool, per)
		last := -1
		for _, i := range got[g] {
			if i < 0 || i >= per {
				t.Fatalf("%s: publisher %d message %d out of range", who, g, i)
			}
			if seen[i] {
				dup++
				continue
			}
			seen[i] = true
			if i < last {
				disorder++
			}
			last = i
		}
		for _, s := range seen {
			if !s {
				lost++
			}
		}
	}
	if lost != 0 || dup != 0 || disorder != 0 {
		t.Fatalf("%s: lost %d, duplicated %d, out of order %d (of %d acknowledged)", who, lost, dup, disorder, pubs*per)
	}
}

// TestClusterFlowNodeGoneReleasesPublishers: publishers on A whose
// PUBACKs wait for B (its subscriber stopped reading, B stopped
// confirming) are not blocked forever when B's cluster node stops: once A
// sees B away (its route gone, or silent for the peer timeout) it gives up
// on B's confirmations, the held PUBACKs are written, and the rest of the
// flood is acknowledged too (held for B's persistent session by the hold).
func TestClusterFlowNodeGoneReleasesPublishers(t *testing.T) {
	const pubs, per = 10, 400
	a := addFlowNode(t, 0, "", broker.Options{MaxInflight: 50})
	b := addFlowNode(t, 1, a.node.ClusterAddr(), broker.Options{MaxQueued: 400, MaxInflight: 10})
	c := addFlowNode(t, 2, a.node.ClusterAddr(), broker.Options{})
	nodes := []*clusterNode{a, b, c}
	waitKnown(t, nodes)
	slow, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "gone-slow", CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300), ReceiveMaximum: v5U16(10)}})
	slow.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "gone/#", QoS: 1}}})
	t.Cleanup(func() {
		// Before its Disconnect (cleanups run last first): paho waits in
		// its handler for room in msgs, which this test never reads.
		go func() {
			for {
				select {
				case <-slow.msgs:
				case <-time.After(10 * time.Second):
					return
				}
			}
		}()
	})
	waitInterest(t, nodes, b, "gone/#")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var acked atomic.Int64
	errs := make(chan error, pubs)
	for g := range pubs {
		pub := flowPublisher(t, a.Addr, "gone-pub-"+strconv.Itoa(g))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := pub.Publish(ctx, &paho.Publish{Topic: "gone/" + strconv.Itoa(g), QoS: 1, Payload: []byte("m")}); err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %v", g, i, err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	// Held: B's session is far behind and confirms nothing more.
	deadline := time.Now().Add(30 * time.Second)
	for metricValue(t, a.node, "mcutie_cluster_flow_held_total") == 0 || deferredAcks(t, b) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the publishers were not held within 30 s (acknowledged %d)", acked.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.node.Stop() // B leaves the cluster without a word (its NATS server stops)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errs:
		t.Fatalf("%v (given up %v, unconfirmed %v, held %v, absent %v)", err, metricValue(t, a.node, "mcutie_cluster_flow_given_up_total"),
			metricValue(t, a.node, "mcutie_cluster_flow_unconfirmed_messages"), metricValue(t, a.node, "mcutie_cluster_flow_held_total"),
			metricValue(t, a.node, "mcutie_cluster_absent_nodes"))
	case <-ctx.Done():
		t.Fatalf("publishers still blocked 60 s after B stopped: %d of %d acknowledged", acked.Load(), pubs*per)
	}
	if acked.Load() != pubs*per {
		t.Fatalf("acknowledged %d of %d", acked.Load(), pubs*per)
	}
	if metricValue(t, a.node, "mcutie_cluster_flow_given_up_total") == 0 {
		t.Fatal("A gave up on no confirmation of B's")
	}
}
