package e2e

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/cluster"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// storedNode is a cluster node with a Badger store in dir, which can be
// stopped (cleanly, in process) and started again on the same store.
type storedNode struct {
	*clusterNode
	dir  string
	st   store.Store
	srv  *reactor.Server
	done bool
}

// startStoredNode starts node id on the Badger store in dir (restoring
// what it holds), joining seed (empty: none).
func startStoredNode(t testing.TB, id, dir, seed string) *storedNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var join []string
	if seed != "" {
		join = []string{seed}
	}
	cn, err := cluster.New(cluster.Options{NodeID: id, Listen: "127.0.0.1:0", Join: join,
		HeartbeatInterval: 200 * time.Millisecond, PeerTimeout: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBadger(store.BadgerOptions{Dir: dir, Durability: store.DurabilitySync, Logger: log})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b := broker.New(broker.Options{NodeID: id, Peers: cn, Loops: 2, Store: st, Logger: log})
	if _, err := b.Restore(); err != nil {
		st.Close()
		t.Fatalf("restore: %v", err)
	}
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}, Logger: log, TickInterval: 100 * time.Millisecond})
	if err := srv.Start(); err != nil {
		st.Close()
		t.Fatalf("start broker: %v", err)
	}
	if err := cn.Start(b); err != nil {
		t.Fatal(err)
	}
	sn := &storedNode{clusterNode: &clusterNode{testBroker: &testBroker{B: b, Addr: srv.Addrs()[0].String(), srv: srv}, id: id, node: cn},
		dir: dir, st: st, srv: srv}
	t.Cleanup(func() { sn.stop(t) })
	return sn
}

// stop leaves the cluster, stops the broker and closes the store.
// Stopping twice is harmless.
func (sn *storedNode) stop(t testing.TB) {
	t.Helper()
	if sn.done {
		return
	}
	sn.done = true
	sn.node.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sn.srv.Stop(ctx); err != nil {
		t.Errorf("stop broker: %v", err)
	}
	if err := sn.st.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
}

// waitNodeRetained waits until node n's retained message on topic has
// payload want ("" : none).
func waitNodeRetained(t *testing.T, n *clusterNode, topic, want string) {
	t.Helper()
	v5Wait(t, n.id+" retains "+topic+"="+want, func() bool {
		ri, ok := n.B.RetainedMessage(topic)
		if want == "" {
			return !ok
		}
		return ok && string(ri.Message.Payload) == want
	})
}

// retainedSeen subscribes a new v5 client on addr to filter and returns
// the retained messages it is sent (want of them, then nothing more).
func retainedSeen(t *testing.T, addr, client, filter string, want int) map[string]*paho.Publish {
	t.Helper()
	sub, _ := v5Connect(t, addr, &paho.Connect{ClientID: client, CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	got := map[string]*paho.Publish{}
	for range want {
		p := sub.recv(t)
		if !p.Retain {
			t.Fatalf("%s: %q sent without RETAIN on subscribe [MQTT-3.3.1-8]", client, p.Topic)
		}
		got[p.Topic] = p
	}
	sub.quiet(t)
	return got
}

func publishRetained(t *testing.T, c *v5Paho, topic, payload string, props *paho.PublishProperties) {
	t.Helper()
	c.publish(t, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload), Properties: props})
}

// TestClusterRetainedRestartConverges: node B is stopped (its store
// kept) while A changes one retained message and clears another; when B
// comes back and rejoins, a new subscriber on B gets the new value with
// its v5 properties [MQTT-3.3.2-17/-18/-20] and nothing for the cleared
// topic [MQTT-3.3.1-6/-10], though B's store still held both.
func TestClusterRetainedRestartConverges(t *testing.T) {
	dirB := t.TempDir()
	a := startStoredNode(t, "ra", t.TempDir(), "")
	b := startStoredNode(t, "rb", dirB, a.node.ClusterAddr())
	waitKnown(t, []*clusterNode{a.clusterNode, b.clusterNode})
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "rr-pub", CleanStart: true, KeepAlive: 30})
	publishRetained(t, pub, "rr/keep", "k1", nil)
	publishRetained(t, pub, "rr/change", "old", &paho.PublishProperties{ContentType: "text/old"})
	publishRetained(t, pub, "rr/clear", "doomed", nil)
	waitNodeRetained(t, b.clusterNode, "rr/clear", "doomed")
	waitNodeRetained(t, b.clusterNode, "rr/change", "old")

	b.stop(t)
	publishRetained(t, pub, "rr/change", "new", &paho.PublishProperties{ContentType: "text/new", ResponseTopic: "rr/reply",
		CorrelationData: []byte{7}, User: paho.UserProperties{{Key: "k", Value: "v"}}})
	publishRetained(t, pub, "rr/clear", "", nil)
	waitNodeRetained(t, a.clusterNode, "rr/clear", "")

	b = startStoredNode(t, "rb", dirB, a.node.ClusterAddr())
	waitNodeRetained(t, b.clusterNode, "rr/change", "new")
	waitNodeRetained(t, b.clusterNode, "rr/clear", "")
	if n := metricValue(t, b.node, "mcutie_cluster_retained_tombstones"); n != 1 {
		t.Errorf("B remembers %v clears, want 1 (rr/clear)", n)
	}

	got := retainedSeen(t, b.Addr, "rr-sub-b", "rr/#", 2)
	if string(got["rr/keep"].Payload) != "k1" || got["rr/change"] == nil || string(got["rr/change"].Payload) != "new" {
		t.Fatalf("B's subscriber got %v", got)
	}
	pp := got["rr/change"].Properties
	if pp == nil || pp.ContentType != "text/new" || pp.ResponseTopic != "rr/reply" || len(pp.CorrelationData) != 1 || pp.User.Get("k") != "v" {
		t.Fatalf("rr/change's properties on B: %+v", pp)
	}
	// And A kept its own: B's older copies did not replace them.
	got = retainedSeen(t, a.Addr, "rr-sub-a", "rr/#", 2)
	if string(got["rr/change"].Payload) != "new" || got["rr/clear"] != nil {
		t.Fatalf("A's subscriber got %v", got)
	}
}

// TestClusterRetainedNewerWhileApart: a value made on B while A was down
// wins on A when A comes back with an older one in its store, and it
// also wins when it is the returning node that holds it: the newer
// version wins in both directions of the exchange.
func TestClusterRetainedNewerWhileApart(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startStoredNode(t, "na", dirA, "")
	b := startStoredNode(t, "nb", dirB, a.node.ClusterAddr())
	waitKnown(t, []*clusterNode{a.clusterNode, b.clusterNode})
	pa, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "na-pub", CleanStart: true, KeepAlive: 30})
	publishRetained(t, pa, "na/x", "a1", nil)
	publishRetained(t, pa, "na/y", "a1", nil)
	waitNodeRetained(t, b.clusterNode, "na/x", "a1")
	waitNodeRetained(t, b.clusterNode, "na/y", "a1")

	// A down: B changes na/x. A comes back (joining B) with a1 stored.
	a.stop(t)
	pb, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "nb-pub", CleanStart: true, KeepAlive: 30})
	publishRetained(t, pb, "na/x", "b2", nil)
	a = startStoredNode(t, "na", dirA, b.node.ClusterAddr())
	waitNodeRetained(t, a.clusterNode, "na/x", "b2")

	// Now B down: A changes na/y; then A down too, and B comes back
	// first, alone, with the older na/y; A joins it afterwards, holding
	// the newer one: B takes A's.
	b.stop(t)
	pa, _ = v5Connect(t, a.Addr, &paho.Connect{ClientID: "na-pub2", CleanStart: true, KeepAlive: 30})
	publishRetained(t, pa, "na/y", "a3", nil)
	waitNodeRetained(t, a.clusterNode, "na/y", "a3")
	a.stop(t)
	b = startStoredNode(t, "nb", dirB, "")
	waitNodeRetained(t, b.clusterNode, "na/y", "a1") // what B's store had
	a = startStoredNode(t, "na", dirA, b.node.ClusterAddr())
	waitNodeRetained(t, b.clusterNode, "na/y", "a3")
	for _, n := range []*storedNode{a, b} {
		got := retainedSeen(t, n.Addr, "na-sub-"+n.id, "na/#", 2)
		if string(got["na/x"].Payload) != "b2" || string(got["na/y"].Payload) != "a3" {
			t.Fatalf("%s's subscriber got %v", n.id, got)
		}
	}
}

// TestClusterRetainedClearNotResurrected: a copy older than a clear does
// not bring the cleared message back. Node C was down holding a retained
// message that A cleared meanwhile; when C rejoins, its copy is offered
// to A and B and refused (their tombstone is newer), and C drops its own
// on A's tombstone. The race of a join with a clear comes to the same
// thing: whichever of the copy and the clear arrives first, the clear's
// version is the newer.
func TestClusterRetainedClearNotResurrected(t *testing.T) {
	dirC := t.TempDir()
	a := startStoredNode(t, "za", t.TempDir(), "")
	b := startStoredNode(t, "zb", t.TempDir(), a.node.ClusterAddr())
	c := startStoredNode(t, "zc", dirC, a.node.ClusterAddr())
	waitKnown(t, []*clusterNode{a.clusterNode, b.clusterNode, c.clusterNode})
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "z-pub", CleanStart: true, KeepAlive: 30})
	publishRetained(t, pub, "z/gone", "zombie", nil)
	publishRetained(t, pub, "z/stays", "s", nil)
	for _, n := range []*storedNode{b, c} {
		waitNodeRetained(t, n.clusterNode, "z/gone", "zombie")
		waitNodeRetained(t, n.clusterNode, "z/stays", "s")
	}
	c.stop(t)
	publishRetained(t, pub, "z/gone", "", nil)
	waitNodeRetained(t, b.clusterNode, "z/gone", "")

	c = startStoredNode(t, "zc", dirC, a.node.ClusterAddr())
	waitNodeRetained(t, c.clusterNode, "z/gone", "")
	v5Wait(t, "A and B compared C's digest", func() bool {
		return metricValue(t, a.node, "mcutie_cluster_retained_digests_received_total") >= 1 &&
			metricValue(t, b.node, "mcutie_cluster_retained_digests_received_total") >= 1
	})
	for _, n := range []*storedNode{a, b} {
		if p := metricValue(t, n.node, "mcutie_cluster_retained_pulled_total"); p != 0 {
			t.Errorf("%s asked C for %v retained messages, want 0 (C's are older or the same)", n.id, p)
		}
	}
	for _, n := range []*storedNode{a, b, c} {
		got := retainedSeen(t, n.Addr, "z-sub-"+n.id, "z/#", 1)
		if got["z/stays"] == nil {
			t.Fatalf("%s's subscriber got %v", n.id, got)
		}
	}
}

// BenchmarkClusterRetainedRejoin10k: the anti-entropy of 10,000 retained
// messages (32-byte payloads) when a node joins having none of them: from
// the joining node's start until it holds every one (a digest from the
// other node, requests, 10,000 copies). ns/op is one whole join; run with
// -benchtime=3x.
func BenchmarkClusterRetainedRejoin10k(b *testing.B) {
	const n = 10000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := startStoredNode(b, "ba", b.TempDir(), "")
		for j := range n {
			if err := a.B.Publish("bench/"+strconv.Itoa(j), make([]byte, 32), 0, true); err != nil {
				b.Fatal(err)
			}
		}
		for a.B.Stats().Retained < n {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
		c := startStoredNode(b, "bb", b.TempDir(), a.node.ClusterAddr())
		deadline := time.Now().Add(time.Minute)
		for c.B.Stats().Retained < n+1 { // and its own $SYS/broker/cluster/nodes
			if time.Now().After(deadline) {
				b.Fatalf("the joining node holds %d of %d retained messages after a minute", c.B.Stats().Retained, n)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		c.stop(b)
		a.stop(b)
	}
}
