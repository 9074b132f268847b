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
)

// startHoldCluster is startCluster with a hold of hold and holdMessages
// per absent node.
func startHoldCluster(t *testing.T, n int, hold time.Duration, holdMessages int) []*clusterNode {
	t.Helper()
	var nodes []*clusterNode
	for i := range n {
		var join []string
		if i > 0 {
			join = []string{nodes[0].node.ClusterAddr()}
		}
		id := "hold" + strconv.Itoa(i)
		cn, err := cluster.New(cluster.Options{NodeID: id, Listen: "127.0.0.1:0", Join: join, Hold: hold, HoldMessages: holdMessages,
			HeartbeatInterval: 200 * time.Millisecond, PeerTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		tb := start(t, broker.Options{NodeID: id, Peers: cn})
		if err := cn.Start(tb.B); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cn.Stop)
		nodes = append(nodes, &clusterNode{testBroker: tb, id: id, node: cn})
	}
	waitKnown(t, nodes)
	waitOwnersReady(t, nodes)
	return nodes
}

// holdSetup gives node b an offline persistent session on h/# (v5,
// session expiry 300 s) and a connected clean one on c/#, and waits
// until a knows both filters.
func holdSetup(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	b := nodes[1]
	dur, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "hold-dur", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)}})
	dur.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "h/#", QoS: 1}}})
	_ = dur.Disconnect(&paho.Disconnect{})
	clean, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "hold-clean", CleanStart: true, KeepAlive: 30})
	clean.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "c/#", QoS: 1}}})
	waitInterest(t, nodes, b, "h/#")
	waitInterest(t, nodes, b, "c/#")
}

// TestClusterHoldForLeavingNode: node B says it is leaving (what SIGTERM
// does) and node A answers once it holds for B; A then holds QoS 1
// messages for B's persistent session (h/#) up to --cluster-hold-queue
// and drops the rest, counted; QoS 0 messages and messages only B's
// clean session wanted (it ends with its connection [MQTT-3.1.2-23])
// are not held; nothing goes to B meanwhile.
func TestClusterHoldForLeavingNode(t *testing.T) {
	nodes := startHoldCluster(t, 2, time.Minute, 5)
	a, b := nodes[0], nodes[1]
	holdSetup(t, nodes)
	sentBefore := metricValue(t, a.node, "mcutie_cluster_sent_messages_total")

	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if err := b.node.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v (A did not answer)", err)
	}
	if ps := a.node.Peers(); len(ps) != 0 {
		t.Fatalf("A answered B's leave but still lists %v among the nodes it hears from", ps)
	}
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "hold-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "h/q0", QoS: 0, Payload: []byte("q0")})
	pub.publish(t, &paho.Publish{Topic: "c/x", QoS: 1, Payload: []byte("clean")})
	for i := range 8 {
		pub.publish(t, &paho.Publish{Topic: "h/" + strconv.Itoa(i), QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	// The sender handles A's messages in order: once the eighth h/ is
	// counted, the ones before it were handled too.
	v5Wait(t, "A handles the eight messages for B's persistent session", func() bool {
		return metricValue(t, a.node, "mcutie_cluster_held_messages_total")+metricValue(t, a.node, "mcutie_cluster_hold_dropped_messages_total") == 8
	})
	for name, want := range map[string]float64{
		"mcutie_cluster_held_messages_total":         5, // --cluster-hold-queue
		"mcutie_cluster_held_messages":               5,
		"mcutie_cluster_hold_dropped_messages_total": 3,
		"mcutie_cluster_absent_nodes":                1,
		"mcutie_cluster_released_messages_total":     0,
		"mcutie_cluster_sent_messages_total":         sentBefore, // nothing went to B
	} {
		if got := metricValue(t, a.node, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metricValue(t, a.node, "mcutie_cluster_held_bytes"); got <= 0 {
		t.Errorf("mcutie_cluster_held_bytes = %v with 5 messages held", got)
	}
}

// TestClusterHoldExpires: a node away longer than --cluster-hold is
// forgotten and what was held for it dropped, counted.
func TestClusterHoldExpires(t *testing.T) {
	nodes := startHoldCluster(t, 2, 2*time.Second, 100)
	a, b := nodes[0], nodes[1]
	holdSetup(t, nodes)
	// Connected first: with B gone, two nodes have no quorum for the
	// session owners and A takes no CONNECT (docs/clustering.md).
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "hold-pub", CleanStart: true, KeepAlive: 30})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if err := b.node.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	b.node.Stop()
	for i := range 3 {
		pub.publish(t, &paho.Publish{Topic: "h/" + strconv.Itoa(i), QoS: 1, Payload: []byte("x")})
	}
	v5Wait(t, "A holds three messages for B", func() bool { return metricValue(t, a.node, "mcutie_cluster_held_messages") == 3 })
	v5Wait(t, "A forgets B", func() bool {
		return len(a.node.Peers()) == 0 && metricValue(t, a.node, "mcutie_cluster_absent_nodes") == 0
	})
	if got := metricValue(t, a.node, "mcutie_cluster_hold_dropped_messages_total"); got != 3 {
		t.Errorf("%v dropped when B was forgotten, want the 3 held", got)
	}
	for _, name := range []string{"mcutie_cluster_held_messages", "mcutie_cluster_held_bytes"} {
		if got := metricValue(t, a.node, name); got != 0 {
			t.Errorf("%s = %v once B is forgotten", name, got)
		}
	}
}
