package e2e

import (
	"bytes"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/cluster"
	"github.com/mcutie/mcutie/hooks"
)

// publishCounter is a Publish hook that counts the messages it sees on
// topics under "clh/" and changes nothing.
type publishCounter struct{ n atomic.Int64 }

func (*publishCounter) Name() string           { return "publish-counter" }
func (*publishCounter) Provides() hooks.Events { return hooks.EventsOf(hooks.Publish) }
func (h *publishCounter) OnPublish(m *hooks.Message) (*hooks.Message, error) {
	if bytes.HasPrefix(m.Topic, []byte("clh/")) {
		h.n.Add(1)
	}
	return nil, nil
}

// TestClusterPeerMessagesSkipHooks: a message published on node A meets
// A's Publish hooks once and is delivered on node B without going
// through B's Publish hooks again (they ran where it was published).
func TestClusterPeerMessagesSkipHooks(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes []*clusterNode
	var counters []*publishCounter
	for i, id := range []string{"h0", "h1"} {
		var join []string
		if i > 0 {
			join = []string{nodes[0].node.ClusterAddr()}
		}
		cn, err := cluster.New(cluster.Options{NodeID: id, Listen: "127.0.0.1:0", Join: join,
			HeartbeatInterval: 200 * time.Millisecond, PeerTimeout: 5 * time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		pc := &publishCounter{}
		tb := start(t, broker.Options{NodeID: id, Peers: cn, Hooks: newRegistry(t, hooks.Options{}, pc)})
		if err := cn.Start(tb.B); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cn.Stop)
		nodes = append(nodes, &clusterNode{testBroker: tb, id: id, node: cn})
		counters = append(counters, pc)
	}
	waitKnown(t, nodes)
	a, b := nodes[0], nodes[1]
	sub, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "clh-sub", CleanStart: true, KeepAlive: 30})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "clh/#", QoS: 1}}})
	waitInterest(t, nodes, b, "clh/#")
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "clh-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "clh/x", QoS: 1, Payload: []byte("m")})
	if got := sub.recv(t); got.Topic != "clh/x" || string(got.Payload) != "m" {
		t.Fatalf("node B got %q %q", got.Topic, got.Payload)
	}
	if n := counters[0].n.Load(); n != 1 {
		t.Errorf("node A's Publish hook saw %d messages, want 1", n)
	}
	if n := counters[1].n.Load(); n != 0 {
		t.Errorf("node B's Publish hook saw %d messages forwarded from A, want 0", n)
	}
}
