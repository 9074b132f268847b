package e2e

import (
	"bytes"
	"context"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
)

// fullPeers is a cluster whose send queue is always full for topics
// under "full/" (Forward: -1, one node missed) and that has no interest
// in anything else.
type fullPeers struct{}

func (fullPeers) Forward(m *broker.PeerMessage) int {
	if bytes.HasPrefix(m.Topic, []byte("full/")) {
		return -1
	}
	return 0
}
func (fullPeers) Interest(string, int)              { /* no interest to announce */ }
func (fullPeers) Connected(string)                  { /* no takeover elsewhere */ }
func (fullPeers) ClusterStats() broker.ClusterStats { return broker.ClusterStats{} }

// TestClusterQueueFullIsQuotaExceeded: a message that other nodes wanted
// but the cluster could not queue for them is a drop of its own
// (cluster_queue_full) and a v5 QoS 1 publisher is told 0x97 Quota
// exceeded, as for a full session queue; a message nobody wants is still
// 0x10 No matching subscribers [MQTT-3.4.2.1] and counted no_subscribers.
func TestClusterQueueFullIsQuotaExceeded(t *testing.T) {
	tb := start(t, broker.Options{Peers: fullPeers{}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "cqf-pub", CleanStart: true, KeepAlive: 30})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	if r, _ := pub.Publish(ctx, &paho.Publish{Topic: "full/x", QoS: 1, Payload: []byte("m")}); r == nil || r.ReasonCode != 0x97 {
		t.Fatalf("PUBACK for a message the cluster could not queue: %+v, want 0x97", r)
	}
	if r, _ := pub.Publish(ctx, &paho.Publish{Topic: "none/x", QoS: 1, Payload: []byte("m")}); r == nil || r.ReasonCode != 0x10 {
		t.Fatalf("PUBACK for a message nobody wants: %+v, want 0x10", r)
	}
	st, err := tb.B.StatsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped["cluster_queue_full"] != 1 || st.Dropped["no_subscribers"] != 1 {
		t.Fatalf("dropped %v, want cluster_queue_full 1 and no_subscribers 1", st.Dropped)
	}
}
