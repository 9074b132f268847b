package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mcutie/mcutie/codec"
)

// waitOwnersReady waits until every node can claim client ids (its
// session owners bucket answers with a quorum): before that, CONNECTs
// wait for it, then are refused.
func waitOwnersReady(t testing.TB, nodes []*clusterNode) {
	t.Helper()
	// JetStream elects its Raft leaders first: slower than v5Timeout
	// under -race on a busy machine.
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range nodes {
		for c.node.Ready() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("node %s not ready within 30 s: %v", c.id, c.node.Ready())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitOffline waits until node n holds client id's session offline with
// queued messages waiting (inflight + queued = n).
func waitOffline(t *testing.T, at *clusterNode, id string, n int) {
	t.Helper()
	v5Wait(t, id+" offline on "+at.id+" with "+strconv.Itoa(n)+" messages", func() bool {
		s, ok, err := at.B.Session(context.Background(), id)
		return err == nil && ok && !s.Connected && s.Inflight+s.Queued == n
	})
}

// TestClusterSessionMovesV5: a persistent v5 session on node A — two
// subscriptions with their options and a subscription identifier, one
// QoS 1 message sent and never acknowledged, three queued while offline —
// resumes on node C: the CONNACK says Session Present [MQTT-3.2.2-2]; the
// unacknowledged message comes first, again, with DUP=1 [MQTT-4.4.0-1],
// then the queued ones in order, each once [MQTT-4.6.0-5], with the
// subscription identifier [MQTT-3.3.4-3]; the subscriptions keep working
// for what B publishes after; and A no longer holds the session (moved,
// not copied).
func TestClusterSessionMovesV5(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	old, _ := v5RawConnect(t, a.Addr, "mover5", func(p *codec.Connect) {
		p.KeepAlive = 60
		p.Props.Set(codec.PropSessionExpiry)
		p.Props.SessionExpiry = 300
	})
	if codes := old.subscribe(7, codec.Subscription{Filter: []byte("mv5/#"), QoS: 1}); codes[0] != 1 {
		t.Fatalf("SUBACK %v", codes)
	}
	old.subscribe(0, codec.Subscription{Filter: []byte("nl5/x"), QoS: 1, NoLocal: true, RetainAsPublished: true})
	waitInterest(t, nodes, a, "mv5/#")
	pub, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "mover5-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "mv5/0", QoS: 1, Payload: []byte("m0")})
	first := old.expectPublish() // not acknowledged
	if string(first.Payload) != "m0" || first.Dup {
		t.Fatalf("first delivery %q dup %v", first.Payload, first.Dup)
	}
	old.c.Close()
	waitOffline(t, a, "mover5", 1)
	for i := 1; i <= 3; i++ {
		pub.publish(t, &paho.Publish{Topic: "mv5/" + strconv.Itoa(i), QoS: 1, Payload: []byte("m" + strconv.Itoa(i))})
	}
	waitOffline(t, a, "mover5", 4)

	cur, ack := v5Connect(t, c.Addr, &paho.Connect{ClientID: "mover5", CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)}})
	if !ack.SessionPresent {
		t.Fatal("CONNACK on C: Session Present 0, want 1 (the session moved from A) [MQTT-3.2.2-2]")
	}
	for i := range 4 {
		p := cur.recv(t)
		if string(p.Payload) != "m"+strconv.Itoa(i) || p.QoS != 1 {
			t.Fatalf("message %d: got %q QoS %d", i, p.Payload, p.QoS)
		}
		if dup := p.Duplicate(); dup != (i == 0) {
			t.Fatalf("message %d (%q): DUP %v; only the one sent on A is a resend [MQTT-4.4.0-1]", i, p.Payload, dup)
		}
		if p.Properties == nil || p.Properties.SubscriptionIdentifier == nil {
			t.Fatalf("message %d: no subscription identifier [MQTT-3.3.4-3]", i)
		}
		if id := p.Properties.SubscriptionIdentifier; *id != 7 {
			t.Fatalf("message %d: subscription identifier %d, want 7", i, *id)
		}
	}
	cur.quiet(t) // each once
	if _, ok, err := a.B.Session(context.Background(), "mover5"); err != nil || ok {
		t.Fatalf("A still holds the session (ok %v, err %v): it was copied, not moved", ok, err)
	}
	s, ok, err := c.B.Session(context.Background(), "mover5")
	if err != nil || !ok || s.Subscriptions != 2 {
		t.Fatalf("C's session: %+v ok %v err %v, want 2 subscriptions", s, ok, err)
	}
	if n := metricValue(t, a.node, "mcutie_cluster_sessions_moved_out_total"); n != 1 {
		t.Errorf("A moved out %v sessions, want 1", n)
	}
	if n := metricValue(t, c.node, "mcutie_cluster_sessions_moved_in_total"); n != 1 {
		t.Errorf("C moved in %v sessions, want 1", n)
	}
	// The subscriptions work on C for what B publishes now; A has no
	// interest left (nothing is forwarded there).
	waitInterest(t, nodes, c, "mv5/#")
	v5Wait(t, "the others forget A's interest", func() bool { return !b.node.PeerInterest(a.id, "mv5/#") })
	pub.publish(t, &paho.Publish{Topic: "mv5/after", QoS: 1, Payload: []byte("after")})
	if p := cur.recv(t); string(p.Payload) != "after" {
		t.Fatalf("after the move: got %q", p.Payload)
	}
	// No Local moved with its subscription [MQTT-3.8.3-3]: the client's
	// own message on nl5/x does not come back.
	cur.publish(t, &paho.Publish{Topic: "nl5/x", QoS: 1, Payload: []byte("own")})
	cur.quiet(t)
}

// TestClusterSessionMovesV311: the same with MQTT 3.1.1 (Clean Session
// 0): a paho 3.1.1 client that reconnects on C gets Session Present
// [MQTT-3.2.2-2], the message A sent without an acknowledgement again
// with DUP=1 [MQTT-4.4.0-1], then what was queued, in order, once.
func TestClusterSessionMovesV311(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	old, _ := v3Raw(t, a.Addr, codec.V311, "mover3", false, nil)
	old.v3Subscribe(1, "mv3/#", 1)
	waitInterest(t, nodes, a, "mv3/#")
	pub, _ := v3Paho(t, b.Addr, "mover3-pub", true, nil, nil)
	v3Pub(t, pub, "mv3/0", 1, false, "m0")
	if p := old.v3ExpectPublish(); string(p.Payload) != "m0" {
		t.Fatalf("first delivery %q", p.Payload)
	}
	old.c.Close()
	waitOffline(t, a, "mover3", 1)
	for i := 1; i <= 3; i++ {
		v3Pub(t, pub, "mv3/"+strconv.Itoa(i), 1, false, "m"+strconv.Itoa(i))
	}
	waitOffline(t, a, "mover3", 4)

	sink := newV3Sink()
	cur, present := v3Paho(t, c.Addr, "mover3", false, sink, func(o *mqtt.ClientOptions) { o.SetResumeSubs(true) })
	if !present {
		t.Fatal("CONNACK on C: Session Present 0, want 1 [MQTT-3.2.2-2]")
	}
	got := sink.waitN(t, 4)
	for i, m := range got {
		if m.Payload != "m"+strconv.Itoa(i) || m.QoS != 1 || m.Dup != (i == 0) {
			t.Fatalf("message %d: %+v (want m%d, QoS 1, DUP only on the resend)", i, m, i)
		}
	}
	if _, ok, err := a.B.Session(context.Background(), "mover3"); err != nil || ok {
		t.Fatalf("A still holds the session (ok %v, err %v)", ok, err)
	}
	waitInterest(t, nodes, c, "mv3/#")
	v3Pub(t, pub, "mv3/after", 1, false, "after")
	if got := sink.waitPayload(t, "after"); len(got) != 5 {
		t.Fatalf("received %+v: duplicates", got)
	}
	_ = cur
}

// TestClusterRefusedWithoutQuorum: with two of three nodes gone, the
// survivor cannot claim a client id (the owners bucket has no quorum):
// a CONNECT is refused with 0x88 Server unavailable on v5 and return code
// 0x03 on 3.1.1 [MQTT-3.2.2-6], counted, and the node is not ready.
func TestClusterRefusedWithoutQuorum(t *testing.T) {
	nodes := startCluster(t, 3)
	a := nodes[0]
	if _, ack := v5RawConnect(t, a.Addr, "q-before", nil); ack.Code != 0 {
		t.Fatalf("CONNACK 0x%02x before the loss", ack.Code)
	}
	nodes[1].node.Stop()
	nodes[2].node.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := v5Dial(t, a.Addr)
		ack := r.connect(&codec.Connect{ClientID: []byte("q-after"), CleanStart: true, KeepAlive: 30})
		r.c.Close()
		if ack.Code == byte(codec.ServerUnavailable) {
			break
		}
		if ack.Code != 0 {
			t.Fatalf("CONNACK 0x%02x, want 0x88 Server unavailable", ack.Code)
		}
		if time.Now().After(deadline) {
			t.Fatal("CONNECTs still accepted 30 s after two of three nodes stopped")
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := dialRaw(t, a.Addr, codec.V311)
	if ack := r.connect(&codec.Connect{ClientID: []byte("q-after-3"), CleanStart: true, KeepAlive: 30}); ack.Code != codec.ConnRefusedServerUnavailable {
		t.Fatalf("3.1.1 CONNACK return code 0x%02x, want 0x03 Server unavailable", ack.Code)
	}
	if a.node.Ready() == nil {
		t.Error("the node reports ready without a quorum for its session owners")
	}
	if n := metricValue(t, a.node, "mcutie_cluster_claims_refused_total"); n < 2 {
		t.Errorf("mcutie_cluster_claims_refused_total = %v, want at least 2", n)
	}
	if n := metricValue(t, a.node, "mcutie_cluster_owners_ready"); n != 0 {
		t.Errorf("mcutie_cluster_owners_ready = %v, want 0", n)
	}
}
