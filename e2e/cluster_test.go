package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/cluster"
)

// clusterNode is one broker of an in-process cluster.
type clusterNode struct {
	*testBroker
	id   string
	node *cluster.Node
}

// startCluster runs n brokers joined through their embedded NATS servers
// on loopback, each seeded with the first, and waits until every node has
// heard from every other.
func startCluster(t testing.TB, n int, mods ...func(*cluster.Options)) []*clusterNode {
	t.Helper()
	nodes := []*clusterNode{addClusterNode(t, 0, "", mods...)}
	for i := 1; i < n; i++ {
		nodes = append(nodes, addClusterNode(t, i, nodes[0].node.ClusterAddr(), mods...))
	}
	waitKnown(t, nodes)
	waitOwnersReady(t, nodes)
	return nodes
}

// addClusterNode starts node i of a cluster, joining seed (empty: the
// first node). Every node's routes listen on a port the kernel picks.
// mods adjust the node's options.
func addClusterNode(t testing.TB, i int, seed string, mods ...func(*cluster.Options)) *clusterNode {
	t.Helper()
	id := fmt.Sprintf("n%d", i)
	var join []string
	if seed != "" {
		join = []string{seed}
	}
	o := cluster.Options{NodeID: id, Listen: "127.0.0.1:0", Join: join, Ownership: true,
		HeartbeatInterval: 200 * time.Millisecond, PeerTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mods {
		m(&o)
	}
	cn, err := cluster.New(o)
	if err != nil {
		t.Fatal(err)
	}
	tb := start(t, broker.Options{NodeID: id, Peers: cn})
	if err := cn.Start(tb.B); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cn.Stop) // runs before the broker's stop (cleanups run last first)
	return &clusterNode{testBroker: tb, id: id, node: cn}
}

// waitKnown waits until every node knows every other's interest.
func waitKnown(t testing.TB, nodes []*clusterNode) {
	t.Helper()
	v5Wait(t, "every node knows every other's interest", func() bool {
		for _, c := range nodes {
			ps := c.node.Peers()
			if len(ps) != len(nodes)-1 {
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
}

// waitInterest waits until every node other than at has heard that at's
// sessions subscribe to filter.
func waitInterest(t *testing.T, nodes []*clusterNode, at *clusterNode, filter string) {
	t.Helper()
	v5Wait(t, "interest in "+filter+" reaches every node", func() bool {
		for _, c := range nodes {
			if c != at && !c.node.PeerInterest(at.id, filter) {
				return false
			}
		}
		return true
	})
}

// TestClusterPublishAcrossNodes: a subscriber on node C receives what a
// publisher on node A publishes, at QoS min(published, subscribed)
// [MQTT-3.8.4-8] with the retain flag as published and the v5 properties
// intact [MQTT-3.3.2-17/-18/-20]; B, with no subscriber, receives nothing.
func TestClusterPublishAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	sub, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "cl-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "cl/+/x", QoS: 1}}})
	waitInterest(t, nodes, c, "cl/+/x")

	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "cl-pub", CleanStart: true, KeepAlive: 30})
	for qos := byte(0); qos <= 2; qos++ {
		pub.publish(t, &paho.Publish{Topic: "cl/" + strconv.Itoa(int(qos)) + "/x", QoS: qos, Payload: []byte{'p', '0' + qos},
			Properties: &paho.PublishProperties{ContentType: "text/plain", ResponseTopic: "r/1", CorrelationData: []byte{1, 2},
				User: paho.UserProperties{{Key: "k", Value: "v" + strconv.Itoa(int(qos))}}}})
		got := sub.recv(t)
		want := min(qos, 1)
		if got.Topic != "cl/"+strconv.Itoa(int(qos))+"/x" || got.QoS != want || got.Retain || !bytes.Equal(got.Payload, []byte{'p', '0' + qos}) {
			t.Fatalf("QoS %d: got %q QoS %d retain %v %q, want QoS %d", qos, got.Topic, got.QoS, got.Retain, got.Payload, want)
		}
		pp := got.Properties
		if pp == nil || pp.ContentType != "text/plain" || pp.ResponseTopic != "r/1" || !bytes.Equal(pp.CorrelationData, []byte{1, 2}) ||
			pp.User.Get("k") != "v"+strconv.Itoa(int(qos)) {
			t.Fatalf("QoS %d: properties not forwarded intact: %+v", qos, pp)
		}
	}
	sub.quiet(t) // once each: no echo back and forth between nodes
	if n := metricValue(t, b.node, "mcutie_cluster_received_messages_total"); n != 0 {
		t.Errorf("node B, with no subscriber, received %v forwarded messages", n)
	}
	if n := metricValue(t, a.node, "mcutie_cluster_sent_messages_total"); n != 3 {
		t.Errorf("node A sent %v messages to other nodes, want 3 (one per message, to C only)", n)
	}
}

// TestClusterOrder: one publisher's QoS 1 messages reach a subscriber on
// another node in order [MQTT-4.6.0-5], and a subscriber on the
// publisher's own node gets them once too.
func TestClusterOrder(t *testing.T) {
	nodes := startCluster(t, 2)
	a, c := nodes[0], nodes[1]
	remote, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "ord-remote", CleanStart: true, KeepAlive: 30})
	remote.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ord/#", QoS: 1}}})
	local, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "ord-local", CleanStart: true, KeepAlive: 30})
	local.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ord/#", QoS: 1}}})
	waitInterest(t, nodes, c, "ord/#")
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "ord-pub", CleanStart: true, KeepAlive: 30})
	const n = 200
	for i := range n {
		pub.publish(t, &paho.Publish{Topic: "ord/" + strconv.Itoa(i%7), QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	for _, s := range []*v5Paho{remote, local} {
		for i := range n {
			if got := string(s.recv(t).Payload); got != strconv.Itoa(i) {
				t.Fatalf("message %d arrived as %s: out of order", i, got)
			}
		}
		s.quiet(t)
	}
}

// TestClusterRetained: a message retained on node A is delivered to a
// subscriber that subscribes later on node C [MQTT-3.3.1-6], and an empty
// retained message on A clears it everywhere [MQTT-3.3.1-10].
func TestClusterRetained(t *testing.T) {
	nodes := startCluster(t, 3)
	a, c := nodes[0], nodes[2]
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "ret-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "ret/1", QoS: 1, Retain: true, Payload: []byte("kept")})
	v5Wait(t, "the retained message reaches C", func() bool {
		return metricValue(t, c.node, "mcutie_cluster_received_messages_total") >= 1
	})
	if err := c.B.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	sub, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "ret-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ret/#", QoS: 1}}})
	got := sub.recv(t)
	if got.Topic != "ret/1" || string(got.Payload) != "kept" || !got.Retain {
		t.Fatalf("got %q %q retain %v, want the retained ret/1", got.Topic, got.Payload, got.Retain)
	}
	waitInterest(t, nodes, c, "ret/#")
	pub.publish(t, &paho.Publish{Topic: "ret/1", QoS: 1, Retain: true}) // clears it
	if p := sub.recv(t); len(p.Payload) != 0 {
		t.Fatalf("the clearing message arrived as %q", p.Payload)
	}
	if err := c.B.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	late, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "ret-late", CleanStart: true, KeepAlive: 30})
	late.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ret/#", QoS: 1}}})
	late.quiet(t)
}

// TestClusterUnsubscribeStopsForwarding: once the last subscriber of a
// filter on C is gone, A stops sending C what matches it.
func TestClusterUnsubscribeStopsForwarding(t *testing.T) {
	nodes := startCluster(t, 2)
	a, c := nodes[0], nodes[1]
	sub, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "un-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "un/x", QoS: 0}}})
	waitInterest(t, nodes, c, "un/x")
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if _, err := sub.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"un/x"}}); err != nil {
		t.Fatal(err)
	}
	v5Wait(t, "A forgets C's interest", func() bool { return !a.node.PeerInterest(c.id, "un/x") })
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "un-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "un/x", QoS: 1, Payload: []byte("x")})
	if n := metricValue(t, a.node, "mcutie_cluster_sent_messages_total"); n != 0 {
		t.Errorf("A sent %v messages after C's last subscriber left", n)
	}
}

func TestClusterOptionsRefused(t *testing.T) {
	for _, o := range []cluster.Options{
		{NodeID: "a.b", Listen: "127.0.0.1:1"},
		{NodeID: "n", Listen: "0.0.0.0:7000"}, // no secret on a non-loopback listener
		{NodeID: "n", Listen: "127.0.0.1"},    // no port
		{NodeID: "n", Listen: "127.0.0.1:1", Join: []string{"x"}},
	} {
		if _, err := cluster.New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// metricValue reads one unlabelled metric from n's metrics.
func metricValue(t testing.TB, n *cluster.Node, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	n.WriteMetrics(&buf)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not written", name)
	return 0
}

// TestClusterBinaries: three mcutie processes joined with --cluster-listen
// and --cluster-join; mosquitto_sub on the third receives what
// mosquitto_pub sends to the first at QoS 0, 1 and 2, once each and in
// order; the metrics count three nodes.
func TestClusterBinaries(t *testing.T) {
	mosqBin(t, "mosquitto_sub")
	mosqBin(t, "mosquitto_pub")
	var procs []*durProc
	seed := freePort(t)
	for i := range 3 {
		cport := seed
		extra := []string{"--store", "memory", "--node-id", fmt.Sprintf("bin%d", i)}
		if i > 0 {
			cport = freePort(t)
			extra = append(extra, "--cluster-join", fmt.Sprintf("127.0.0.1:%d", seed))
		}
		extra = append(extra, "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", cport))
		procs = append(procs, durStartProc(t, t.TempDir(), freePort(t), extra...))
	}
	a, c := &testBroker{Addr: procs[0].Addr}, &testBroker{Addr: procs[2].Addr}
	// The subscriber's interest reaches A within a heartbeat or two: probe
	// until a message crosses, then check what matters.
	sub := startMosqSub(t, c, "-q", "2", "-t", "bin/#", "-V", "mqttv311")
	deadline := time.Now().Add(20 * time.Second)
	for {
		mosqPub(t, a, "", "-q", "1", "-t", "bin/probe", "-m", "probe")
		sub.mu.Lock()
		n := len(sub.msgs)
		sub.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing crossed from node 0 to node 2 in 20 s:\n%s\n%s", procs[0].log(), procs[2].log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // probes still in flight
	sub.mu.Lock()
	probes := len(sub.msgs)
	sub.mu.Unlock()
	for q := 0; q <= 2; q++ {
		mosqPub(t, a, "", "-q", strconv.Itoa(q), "-t", "bin/"+strconv.Itoa(q), "-m", "m"+strconv.Itoa(q))
	}
	v5Wait(t, "three messages at node 2", func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(sub.msgs) >= probes+3
	})
	time.Sleep(v5Quiet)
	sub.mu.Lock()
	got := append([]string(nil), sub.msgs[probes:]...)
	sub.mu.Unlock()
	want := []string{"0|0|bin/0|m0", "1|0|bin/1|m1", "2|0|bin/2|m2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("node 2 got %q, want %q", got, want)
	}
}

// TestClusterTakeover: a client id connected on node A that connects
// again on node C is taken over cluster-wide: A's connection gets
// DISCONNECT 0x8E Session taken over [MQTT-3.1.4-3] and A's session
// (persistent, with a subscription) is gone, so A no longer queues for it
// nor forwards its interest; C's connection stays.
func TestClusterTakeover(t *testing.T) {
	nodes := startCluster(t, 3)
	a, c := nodes[0], nodes[2]
	old, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "roamer", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)}})
	old.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "roam/old", QoS: 1}}})
	waitInterest(t, nodes, a, "roam/old")

	cur, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "roamer", CleanStart: true, KeepAlive: 30})
	if d := old.serverDisconnect(t); d.ReasonCode != 0x8E {
		t.Fatalf("the old connection got DISCONNECT 0x%02x, want 0x8E Session taken over", d.ReasonCode)
	}
	v5Wait(t, "node A drops the session", func() bool {
		_, ok, err := a.B.Session(context.Background(), "roamer")
		return err == nil && !ok
	})
	v5Wait(t, "the other nodes forget A's interest", func() bool { return !c.node.PeerInterest(a.id, "roam/old") })
	if n := metricValue(t, a.node, "mcutie_cluster_sessions_taken_over_total"); n != 1 {
		t.Errorf("A counted %v takeovers, want 1", n)
	}
	// The new connection is untouched and works.
	cur.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "roam/new", QoS: 1}}})
	waitInterest(t, nodes, c, "roam/new")
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "roam-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "roam/new", QoS: 1, Payload: []byte("here")})
	if got := cur.recv(t); string(got.Payload) != "here" {
		t.Fatalf("got %q", got.Payload)
	}
	select {
	case d := <-cur.disc:
		t.Fatalf("the new connection was disconnected too: 0x%02x", d.ReasonCode)
	default:
	}
}

// TestClusterNodeKilled: under a QoS 1 stream from a publisher on node A
// to a subscriber on node C, node B is killed with kill -9. Its client
// connects again to A and carries on; C's subscriber, whose node and
// publisher's node lived, loses nothing and gets every message once, in
// order [MQTT-4.6.0-5].
func TestClusterNodeKilled(t *testing.T) {
	var procs []*durProc
	seed := freePort(t)
	for i := range 3 {
		cport := seed
		extra := []string{"--node-id", fmt.Sprintf("kill%d", i)}
		if i > 0 {
			cport = freePort(t)
			extra = append(extra, "--cluster-join", fmt.Sprintf("127.0.0.1:%d", seed))
		}
		extra = append(extra, "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", cport))
		procs = append(procs, durStartProc(t, t.TempDir(), freePort(t), extra...))
	}
	a, b, c := procs[0], procs[1], procs[2]
	sub, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "k-sub", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)}})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "kill/#", QoS: 1}}})
	onB, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "k-roam", CleanStart: true, KeepAlive: 30})
	onB.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "kill/#", QoS: 1}}})
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "k-pub", CleanStart: true, KeepAlive: 30})
	// Until C's interest reached A, messages stop at A: probe first.
	deadline := time.Now().Add(20 * time.Second)
	for probing := true; probing; {
		pub.publish(t, &paho.Publish{Topic: "kill/probe", QoS: 1, Payload: []byte("probe")})
		select {
		case <-sub.msgs:
			probing = false
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("nothing crossed from A to C within 20 s")
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	for len(sub.msgs) > 0 {
		<-sub.msgs // probes still in flight
	}

	const n = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if i == n/2 {
				b.kill(t) // kill -9, mid-stream
			}
			ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
			_, err := pub.Publish(ctx, &paho.Publish{Topic: "kill/" + strconv.Itoa(i%5), QoS: 1, Payload: []byte(strconv.Itoa(i))})
			cancel()
			if err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// B's client connects again, to A, and carries on.
	select {
	case <-onB.errs:
	case <-onB.disc:
	case <-time.After(3 * v5Timeout):
		t.Fatal("the client on the killed node did not notice")
	}
	// With session ownership (the default) the owners bucket may have
	// had its leader on B: until its Raft group elects another (seconds),
	// A refuses the claim with 0x88 Server unavailable, and the client
	// tries again, as a client told 0x88 does.
	var again *v5Paho
	refusals, since := 0, time.Now()
	for retry := time.Now().Add(30 * time.Second); again == nil; {
		cl, ack, err := v5TryConnect(t, a.Addr, &paho.Connect{ClientID: "k-roam", CleanStart: true, KeepAlive: 30})
		switch {
		case err == nil:
			again = cl
		case ack != nil && ack.ReasonCode == 0x88 && time.Now().Before(retry):
			refusals++
			time.Sleep(200 * time.Millisecond)
		default:
			t.Fatalf("k-roam on A: CONNACK %+v: %v", ack, err)
		}
	}
	t.Logf("k-roam connected on A after %d refusals (0x88), %v after its first try", refusals, time.Since(since).Round(10*time.Millisecond))
	again.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "kill/#", QoS: 1}}})
	<-done
	next, dups := 0, 0
	for next < n {
		p := sub.recv(t)
		v, err := strconv.Atoi(string(p.Payload))
		switch {
		case err != nil:
			t.Fatalf("payload %q", p.Payload)
		case v < next:
			dups++
		case v > next:
			t.Fatalf("C's subscriber got message %d after %d: lost or out of order", v, next-1)
		default:
			next++
		}
	}
	sub.quiet(t)
	if dups != 0 {
		t.Errorf("C's subscriber got %d duplicates; its node and the publisher's lived", dups)
	}
	pub.publish(t, &paho.Publish{Topic: "kill/after", QoS: 1, Payload: []byte("after")})
	for got := ""; got != "after"; {
		got = string(again.recv(t).Payload) // stream messages first, maybe
	}
	t.Logf("killed node B mid-stream: C received %d of %d in order, %d duplicates", next, n, dups)
}

// TestClusterRetainedForLateNode: a node that joins after messages were
// retained gets them from the cluster (one copy per topic, kept because
// it had none) and gives them to its subscribers [MQTT-3.3.1-6]; copies
// are not delivered as new messages to subscribers it already has.
func TestClusterRetainedForLateNode(t *testing.T) {
	a := addClusterNode(t, 0, "")
	seed := a.node.ClusterAddr()
	b := addClusterNode(t, 1, seed)
	waitKnown(t, []*clusterNode{a, b})
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "late-pub", CleanStart: true, KeepAlive: 30})
	for i := range 3 {
		pub.publish(t, &paho.Publish{Topic: "late/" + strconv.Itoa(i), QoS: 1, Retain: true, Payload: []byte("v" + strconv.Itoa(i)),
			Properties: &paho.PublishProperties{ContentType: "text/plain"}})
	}
	v5Wait(t, "B has the retained messages", func() bool {
		return metricValue(t, b.node, "mcutie_cluster_received_messages_total") >= 3
	})

	c := addClusterNode(t, 2, seed)
	waitKnown(t, []*clusterNode{a, b, c})
	v5Wait(t, "C gets copies of what was retained", func() bool {
		return metricValue(t, c.node, "mcutie_cluster_retained_copies_received_total") >= 3
	})
	if n := metricValue(t, c.node, "mcutie_cluster_retained_copies_received_total"); n != 3 {
		t.Errorf("C got %v copies, want 3 (one node sends them)", n)
	}
	if err := c.B.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	sub, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "late-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "late/#", QoS: 1}}})
	got := map[string]string{}
	for range 3 {
		p := sub.recv(t)
		if !p.Retain || p.Properties == nil || p.Properties.ContentType != "text/plain" {
			t.Fatalf("%q: retain %v properties %+v", p.Topic, p.Retain, p.Properties)
		}
		got[p.Topic] = string(p.Payload)
	}
	for i := range 3 {
		if got["late/"+strconv.Itoa(i)] != "v"+strconv.Itoa(i) {
			t.Fatalf("C's subscriber got %v", got)
		}
	}
	sub.quiet(t)
}

// TestClusterMembershipInSys: each node keeps <sys-prefix>/broker/cluster/nodes
// (retained) up to date with the nodes it hears from, and Stats().Cluster
// lists them for embedders.
func TestClusterMembershipInSys(t *testing.T) {
	nodes := startCluster(t, 3)
	sub, _ := v5Connect(t, nodes[2].Addr, &paho.Connect{ClientID: "sys-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$SYS/broker/cluster/nodes"}}})
	cs := nodes[0].B.Stats().Cluster
	if cs == nil || len(cs.Nodes) != 3 || !cs.Nodes[0].Self || cs.Nodes[0].ID != "n0" || cs.Nodes[2].ID != "n2" || cs.Routes == 0 {
		t.Fatalf("Stats().Cluster = %+v, want n0 (self), n1, n2 and routes up", cs)
	}
	want := `{"self":"n2","nodes":["n0","n1","n2"]}`
	deadline := time.After(v5Timeout)
	for {
		select {
		case p := <-sub.msgs:
			if string(p.Payload) == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %s on $SYS/broker/cluster/nodes within %v", want, v5Timeout)
		}
	}
}
