package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Cluster partition tests: three mcutie processes, each in a network
// namespace of its own (netns_test.go), node C's cluster link cut at the
// switch and restored; the test's clients reach every node over links
// that are never cut, so they see what each side does. The behaviour
// checked is the one docs/clustering.md ("Partitions") chooses.

// partNode is one mcutie process of a partition test.
type partNode struct {
	id   string
	proc *durProc
	mqtt string // host:port over the client link
	web  string // http://host:port of /metrics and /readyz
}

// partSplitBound and partHealBound bound the waits for a split to be
// noticed and for a healed cluster to carry messages again: generous
// multiples of what docs/clustering.md measured, so a slow machine waits
// longer instead of failing.
const (
	partSplitBound = 30 * time.Second
	partHealBound  = 30 * time.Second
)

// startPartCluster runs one mcutie per node of lab, every one seeded
// with all three cluster addresses, and waits until each is ready and
// knows the others.
func startPartCluster(t *testing.T, lab *netLab, extra ...string) []*partNode {
	t.Helper()
	bin := durBinary(t)
	var join []string
	for _, nd := range lab.nodes {
		join = append(join, "--cluster-join", nd.ClusterIP+":7222")
	}
	began := time.Now()
	var nodes []*partNode
	for i, nd := range lab.nodes {
		id := string(rune('a' + i))
		args := append([]string{"--node-id", id, "--data-dir", t.TempDir(), "--loops", "2", "--allow-anonymous",
			"--listen", "tcp://" + nd.ClientIP + ":1883", "--metrics-listen", nd.ClientIP + ":9100",
			"--cluster-listen", nd.ClusterIP + ":7222"}, join...)
		args = append(args, extra...)
		cmd := lab.command(i, bin, args...)
		// Off loopback the routes need a secret (docs/clustering.md).
		cmd.Env = append(os.Environ(), "MCUTIE_CLUSTER_SECRET=partition-test-secret")
		nodes = append(nodes, &partNode{id: id, proc: durSpawn(t, cmd, nd.ClientIP+":1883"),
			mqtt: nd.ClientIP + ":1883", web: "http://" + nd.ClientIP + ":9100"})
	}
	for _, n := range nodes {
		n.proc.waitStarted(t, 20*time.Second)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("--- node %s:\n%s", n.id, n.proc.log())
			}
		}
	})
	partWait(t, nodes, "every node ready and knowing three nodes", partHealBound, func() bool {
		for _, n := range nodes {
			if !n.ready() || n.metric(t, "mcutie_cluster_nodes") != 3 {
				return false
			}
		}
		return true
	})
	t.Logf("three processes started, joined and ready in %v", time.Since(began).Round(10*time.Millisecond))
	return nodes
}

// ready reports whether the node's /readyz answers 200.
func (n *partNode) ready() bool {
	code, _, err := netHTTP(n.web + "/readyz")
	return err == nil && code == 200
}

// metric reads one unlabelled metric from the node's /metrics (-1 when
// the endpoint does not answer).
func (n *partNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	v, ok := n.metricOK(t, name)
	if !ok {
		t.Fatalf("node %s: metric %s not written", n.id, name)
	}
	return v
}

// metricOK is metric, reporting whether the node writes it at all.
func (n *partNode) metricOK(t *testing.T, name string) (float64, bool) {
	t.Helper()
	code, body, err := netHTTP(n.web + "/metrics")
	if err != nil || code != 200 {
		return -1, true
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("node %s: metric %s: %q", n.id, name, line)
			}
			return f, true
		}
	}
	return 0, false
}

// partWait polls cond every 50 ms until it holds and returns how long it
// took; past bound it fails with every node's log.
func partWait(t *testing.T, nodes []*partNode, what string, bound time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			var logs strings.Builder
			for _, n := range nodes {
				fmt.Fprintf(&logs, "--- node %s:\n%s\n", n.id, n.proc.log())
			}
			t.Fatalf("timed out after %v waiting for %s\n%s", bound, what, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// partProbe publishes QoS 1 probes on topic from pub until one reaches
// sub (whose other messages are left alone only if they are probes too:
// anything else fails the test) and returns how long that took.
func partProbe(t *testing.T, nodes []*partNode, pub, sub *v5Paho, topic string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		pub.publish(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("probe")})
		select {
		case p := <-sub.msgs:
			if p.Topic != topic {
				t.Fatalf("got %q %q while probing %s", p.Topic, p.Payload, topic)
			}
			return time.Since(start)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > bound {
			partWait(t, nodes, "a probe on "+topic+" to cross", 0, func() bool { return false })
		}
	}
}

// partRecv reads n messages under prefix from sub, skipping probes
// (topics ending in /probe), and fails unless their payloads are 0..n-1
// in order; then it fails on anything but a probe within v5Quiet.
func partRecv(t *testing.T, sub *v5Paho, prefix string, n int) {
	t.Helper()
	for next := 0; next < n; {
		p := sub.recv(t)
		switch {
		case strings.HasSuffix(p.Topic, "/probe"):
		case !strings.HasPrefix(p.Topic, prefix):
			t.Fatalf("got %q %q, want messages on %s*", p.Topic, p.Payload, prefix)
		case string(p.Payload) != strconv.Itoa(next):
			t.Fatalf("message %d on %s* arrived as %q: lost, duplicated or out of order", next, prefix, p.Payload)
		default:
			next++
		}
	}
	partQuiet(t, sub)
}

// partQuiet fails if sub gets anything but a probe within v5Quiet.
func partQuiet(t *testing.T, sub *v5Paho) {
	t.Helper()
	deadline := time.After(v5Quiet)
	for {
		select {
		case p := <-sub.msgs:
			if !strings.HasSuffix(p.Topic, "/probe") {
				t.Fatalf("unexpected PUBLISH %q %q", p.Topic, p.Payload)
			}
		case <-deadline:
			return
		}
	}
}

// partPublish publishes n QoS 1 messages, payloads 0..n-1, on
// prefix<i>; each is acknowledged by the publisher's node [MQTT-4.3.2-1].
func partPublish(t *testing.T, pub *v5Paho, prefix string, n int) {
	t.Helper()
	for i := range n {
		pub.publish(t, &paho.Publish{Topic: prefix + strconv.Itoa(i), QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
}

// TestClusterPartition: nodes A, B and C in network namespaces; C's
// cluster link is cut at the switch, then restored. What
// docs/clustering.md ("Partitions") promises, checked on each side:
//
// During the split:
//   - C notices it is cut off: /readyz fails (no route), and its
//     membership drops to itself; A and B forget C and stay ready.
//   - A and B keep serving each other: 100 QoS 1 messages from A reach B
//     exactly once, in order [MQTT-4.6.0-5].
//   - C's existing connections keep their local traffic: 50 QoS 1
//     messages from a publisher on C reach a subscriber on C exactly once,
//     in order.
//   - Nothing crosses: what A publishes for C's clean session and what C
//     publishes for A's is not sent at all (mcutie_cluster_sent_messages_total
//     unchanged on both), and the subscribers get nothing; what each
//     publishes for the other side's persistent session is held (10 each,
//     mcutie_cluster_held_messages_total).
//   - A new CONNECT (3.1.1 and 5) is accepted by A. Without session
//     ownership it is accepted by C too; with it (the nodes export
//     mcutie_cluster_owners_ready), C refuses it with 0x88 / 0x03.
//   - A client connected on C before the split connects on A too: A
//     accepts it and C's connection keeps working.
//
// After healing:
//   - every node knows three again and C is ready;
//   - interest is announced again: messages cross both ways (20 QoS 1
//     each way, exactly once, in order), and none of what was published
//     during the split arrives late; the held messages reach the
//     persistent sessions, all of them, once, in order;
//   - the client id connected on both sides: without session ownership
//     still connected on both (the gap the docs name), and connecting it
//     on B ends both (0x8E); with it, C ends its connection (0x8E) and
//     A's stays, until the id connects on B;
//   - what A retained during the split reaches a new subscriber on C.
func TestClusterPartition(t *testing.T) {
	testClusterPartition(t, false, "--cluster-sessions=false")
}

// TestClusterPartitionSessions is TestClusterPartition with session
// ownership (a clustered node's default): the minority refuses CONNECTs
// that must claim, healing ends the id connected on both sides on the
// node that no longer owns it, and what was held for the persistent
// sessions on each side still reaches them once and in order.
func TestClusterPartitionSessions(t *testing.T) {
	testClusterPartition(t, true, "--cluster-sessions")
}

func testClusterPartition(t *testing.T, quorum bool, extra ...string) {
	if testing.Short() {
		t.Skip("-short: a network split takes seconds to notice and heal")
	}
	lab := newNetLab(t, 3)
	nodes := startPartCluster(t, lab, extra...)
	a, b, c := nodes[0], nodes[1], nodes[2]
	// Session ownership with a quorum (docs/clustering.md) changes what
	// the minority accepts and what healing ends; its metrics say whether
	// the nodes run it.
	if _, on := c.metricOK(t, "mcutie_cluster_owners_ready"); on != quorum {
		t.Fatalf("session ownership with a quorum: %v, want %v (flags %q)", on, quorum, extra)
	}
	conn := func(n *partNode, id string) *v5Paho {
		cl, _ := v5Connect(t, n.mqtt, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		return cl
	}
	sub := func(cl *v5Paho, filter string) {
		cl.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	}
	pubA, pubC := conn(a, "p-pub-a"), conn(c, "p-pub-c")
	subB, subC, subA, subCLocal := conn(b, "p-sub-b"), conn(c, "p-sub-c"), conn(a, "p-sub-a"), conn(c, "p-sub-c-local")
	sub(subB, "ab/#")      // A -> B, across the majority
	sub(subC, "toC/#")     // A -> C, across the split
	sub(subA, "toA/#")     // C -> A, across the split
	sub(subCLocal, "cc/#") // C -> C, local to the minority
	// Persistent sessions on each side (session expiry 300 s): the other
	// side holds their QoS 1 messages while they are away
	// (docs/clustering.md, Partitions).
	durable := func(n *partNode, id, filter string) *v5Paho {
		cl, _ := v5Connect(t, n.mqtt, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)}})
		sub(cl, filter)
		return cl
	}
	durC, durA := durable(c, "p-dur-c", "durC/#"), durable(a, "p-dur-a", "durA/#")
	// A client connected on C before the split: C announced its claim.
	twinC := conn(c, "p-twin")
	partProbe(t, nodes, pubA, subB, "ab/probe", partHealBound)
	partProbe(t, nodes, pubA, subC, "toC/probe", partHealBound)
	partProbe(t, nodes, pubC, subA, "toA/probe", partHealBound)
	partProbe(t, nodes, pubA, durC, "durC/probe", partHealBound)
	partProbe(t, nodes, pubC, durA, "durA/probe", partHealBound)

	// ---- the split ----
	lab.cut(2)
	cutAt := time.Now()
	// Each side's view, timed from the cut: the first poll that sees it.
	seen := map[string]time.Duration{}
	views := []struct {
		what string
		now  func() bool
	}{
		{"C not ready", func() bool { return !c.ready() }},
		{"C knows only itself", func() bool { return c.metric(t, "mcutie_cluster_nodes") == 1 }},
		{"A forgot C", func() bool { return a.metric(t, "mcutie_cluster_nodes") == 2 }},
		{"B forgot C", func() bool { return b.metric(t, "mcutie_cluster_nodes") == 2 }},
	}
	// The majority's readiness, polled alongside: with session ownership
	// it may drop while its side of the owners bucket elects a leader.
	var majorityDown time.Duration // first poll that saw A or B not ready
	majority := func() bool {
		up := a.ready() && b.ready()
		if !up && majorityDown == 0 {
			majorityDown = time.Since(cutAt)
		}
		return up
	}
	partWait(t, nodes, "both sides to notice the split", partSplitBound, func() bool {
		majority()
		for _, v := range views {
			if _, ok := seen[v.what]; !ok && v.now() {
				seen[v.what] = time.Since(cutAt)
			}
		}
		return len(seen) == len(views)
	})
	for _, v := range views {
		t.Logf("split: %s %v after the cut", v.what, seen[v.what].Round(10*time.Millisecond))
	}
	// The majority is ready (with session ownership: once its side of
	// the owners bucket has a leader again, which may have been on C).
	partWait(t, nodes, "A and B ready during the split", partSplitBound, majority)
	if majorityDown == 0 {
		t.Logf("split: A and B stayed ready")
	} else {
		t.Logf("split: A or B not ready %v after the cut, both ready again %v after it",
			majorityDown.Round(10*time.Millisecond), time.Since(cutAt).Round(10*time.Millisecond))
	}

	partPublish(t, pubA, "ab/d/", 100)
	partRecv(t, subB, "ab/d/", 100)
	partPublish(t, pubC, "cc/d/", 50)
	partRecv(t, subCLocal, "cc/d/", 50)

	sentA, sentC := a.metric(t, "mcutie_cluster_sent_messages_total"), c.metric(t, "mcutie_cluster_sent_messages_total")
	recvA, recvC := a.metric(t, "mcutie_cluster_received_messages_total"), c.metric(t, "mcutie_cluster_received_messages_total")
	heldA, heldC := a.metric(t, "mcutie_cluster_held_messages_total"), c.metric(t, "mcutie_cluster_held_messages_total")
	partPublish(t, pubA, "toC/split/", 10)
	partPublish(t, pubC, "toA/split/", 10)
	partPublish(t, pubA, "durC/split/", 10)
	partPublish(t, pubC, "durA/split/", 10)
	partQuiet(t, subC)
	partQuiet(t, subA)
	partQuiet(t, durC)
	partQuiet(t, durA)
	// What is for the other side's persistent sessions is held, every
	// message of it; what is for its other sessions is not sent at all.
	if d := a.metric(t, "mcutie_cluster_held_messages_total") - heldA; d != 10 {
		t.Errorf("A held %v messages for C's persistent session, want 10", d)
	}
	if d := c.metric(t, "mcutie_cluster_held_messages_total") - heldC; d != 10 {
		t.Errorf("C held %v messages for A's persistent session, want 10", d)
	}
	releasedA, releasedC := a.metric(t, "mcutie_cluster_released_messages_total"), c.metric(t, "mcutie_cluster_released_messages_total")
	if d := a.metric(t, "mcutie_cluster_sent_messages_total") - sentA; d != 0 {
		t.Errorf("A sent %v messages during the split; C, forgotten, must get none", d)
	}
	if d := c.metric(t, "mcutie_cluster_sent_messages_total") - sentC; d != 0 {
		t.Errorf("C sent %v messages during the split; it has no peer left", d)
	}
	if d := a.metric(t, "mcutie_cluster_received_messages_total") - recvA; d != 0 {
		t.Errorf("A received %v forwarded messages during the split", d)
	}
	if d := c.metric(t, "mcutie_cluster_received_messages_total") - recvC; d != 0 {
		t.Errorf("C received %v forwarded messages during the split", d)
	}

	// A message retained on the majority during the split, for a topic C
	// has none for.
	pubA.publish(t, &paho.Publish{Topic: "ret/split", QoS: 1, Retain: true, Payload: []byte("kept")})

	// A new CONNECT on each side. The majority accepts it (3.1.1 and 5).
	conn(a, "p-new-a")
	partConnect3(t, a, "p-new-a3", 0)
	if quorum {
		// The minority cannot claim the id: refused with 0x88 Server
		// unavailable (3.1.1: 0x03) and the connection closed
		// [MQTT-3.2.2-7] [MQTT-3.2.2-5]; counted.
		refused := c.metric(t, "mcutie_cluster_claims_refused_total")
		_, ack, err := v5TryConnect(t, c.mqtt, &paho.Connect{ClientID: "p-new-c", CleanStart: true, KeepAlive: 30})
		if err == nil || ack == nil || ack.ReasonCode != 0x88 {
			t.Fatalf("a new v5 CONNECT on C during the split: CONNACK %+v (%v), want 0x88 Server unavailable", ack, err)
		}
		partConnect3(t, c, "p-new-c3", 3)
		if d := c.metric(t, "mcutie_cluster_claims_refused_total") - refused; d != 2 {
			t.Errorf("C counted %v refused claims, want 2", d)
		}
	} else {
		// Without session ownership a claim needs no quorum: accepted.
		conn(c, "p-new-c")
		partConnect3(t, c, "p-new-c3", 0)
	}
	// The client connected on C connects on A too: A accepts it, and C,
	// which cannot hear A's claim, keeps its connection, which still
	// works (its QoS 1 PUBLISH is acknowledged).
	twinA := conn(a, "p-twin")
	twinC.publish(t, &paho.Publish{Topic: "tw/c", QoS: 1, Payload: []byte("still here")})

	// ---- healing ----
	// C ends p-twin either when its watch of the owners bucket sees A's
	// claim, or, when the split was shorter than NATS's ping budget and
	// healed on the old route, when A's claim notice, written to that
	// route during the split, arrives: counted apart, one of the two
	// (both seen).
	endedC := func() float64 {
		return c.metric(t, "mcutie_cluster_sessions_dropped_not_owned_total") + c.metric(t, "mcutie_cluster_sessions_taken_over_total")
	}
	var droppedC float64
	if quorum {
		droppedC = endedC()
	}
	lab.heal(2)
	healAt := time.Now()
	partWait(t, nodes, "three nodes everywhere and C ready", partHealBound, func() bool {
		for _, n := range nodes {
			if n.metric(t, "mcutie_cluster_nodes") != 3 {
				return false
			}
		}
		return c.ready()
	})
	tMembers := time.Since(healAt)
	partProbe(t, nodes, pubA, subC, "toC/probe", partHealBound)
	partProbe(t, nodes, pubC, subA, "toA/probe", partHealBound)
	tFlow := time.Since(healAt)
	t.Logf("heal: three nodes and C ready %v after the link came back; messages cross both ways %v after it",
		tMembers.Round(10*time.Millisecond), tFlow.Round(10*time.Millisecond))

	if quorum {
		// The owners bucket is the single source of ownership once the
		// split heals: C, which no longer owns p-twin, ends its
		// connection with DISCONNECT 0x8E Session taken over
		// [MQTT-3.1.4-3], and A's stays: one owner.
		select {
		case d := <-twinC.disc:
			if d.ReasonCode != 0x8E {
				t.Errorf("p-twin on C got DISCONNECT 0x%02x after healing, want 0x8E", d.ReasonCode)
			}
		case <-time.After(partHealBound):
			t.Fatalf("p-twin on C, owned by A since the split, still connected %v after healing", partHealBound)
		}
		t.Logf("heal: p-twin on C disconnected (0x8E) %v after the link came back", time.Since(healAt).Round(10*time.Millisecond))
		twinA.publish(t, &paho.Publish{Topic: "tw/a", QoS: 1, Payload: []byte("healed")})
		select {
		case d := <-twinA.disc:
			t.Fatalf("p-twin on A, its owner, got DISCONNECT 0x%02x", d.ReasonCode)
		default:
		}
		// Counted once the session is ended, just after its DISCONNECT.
		partWait(t, nodes, "C to count p-twin's end", partHealBound, func() bool { return endedC()-droppedC >= 1 })
		if d := endedC() - droppedC; d != 1 {
			t.Errorf("C counted %v sessions dropped as not owned or taken over after healing, want 1 (p-twin)", d)
		}
		// A CONNECT of the id on B takes it over from A [MQTT-3.1.4-3].
		conn(b, "p-twin")
		if d := twinA.serverDisconnect(t); d.ReasonCode != 0x8E {
			t.Errorf("p-twin on A got DISCONNECT 0x%02x, want 0x8E Session taken over", d.ReasonCode)
		}
	} else {
		// Without session ownership both keep the id after healing: the
		// claims were announced once, during the split (docs/clustering.md,
		// Partitions). A CONNECT of the id on B after healing is
		// announced to both: each gets DISCONNECT 0x8E [MQTT-3.1.4-3].
		twinC.publish(t, &paho.Publish{Topic: "tw/c", QoS: 1, Payload: []byte("healed")})
		twinA.publish(t, &paho.Publish{Topic: "tw/a", QoS: 1, Payload: []byte("healed")})
		conn(b, "p-twin")
		for _, tw := range []struct {
			on string
			cl *v5Paho
		}{{"A", twinA}, {"C", twinC}} {
			if d := tw.cl.serverDisconnect(t); d.ReasonCode != 0x8E {
				t.Errorf("p-twin on %s got DISCONNECT 0x%02x, want 0x8E Session taken over", tw.on, d.ReasonCode)
			}
		}
	}
	// What was held is delivered once the other side is back: every
	// message, once, in order [MQTT-4.6.0-5], counted as released.
	partRecv(t, durC, "durC/split/", 10)
	partRecv(t, durA, "durA/split/", 10)
	t.Logf("heal: the held messages delivered both ways (and quiet for %v) %v after the link came back", v5Quiet, time.Since(healAt).Round(10*time.Millisecond))
	resentA, _ := a.metricOK(t, "mcutie_cluster_held_resent_messages_total")
	resentC, _ := c.metricOK(t, "mcutie_cluster_held_resent_messages_total")
	t.Logf("heal: held messages sent again for want of an acknowledgement: %v by A, %v by C", resentA, resentC)
	if d := a.metric(t, "mcutie_cluster_released_messages_total") - releasedA; d != 10 {
		t.Errorf("A released %v held messages to C, want 10", d)
	}
	if d := c.metric(t, "mcutie_cluster_released_messages_total") - releasedC; d != 10 {
		t.Errorf("C released %v held messages to A, want 10", d)
	}
	for _, n := range nodes {
		if h := n.metric(t, "mcutie_cluster_held_messages"); h != 0 {
			t.Errorf("node %s still holds %v messages after healing", n.id, h)
		}
	}
	partPublish(t, pubA, "toC/d/", 20)
	partRecv(t, subC, "toC/d/", 20) // and nothing of toC/split/
	partPublish(t, pubC, "toA/d/", 20)
	partRecv(t, subA, "toA/d/", 20)
	partPublish(t, pubA, "ab/after/", 20)
	partRecv(t, subB, "ab/after/", 20)

	// C gets what was retained on the majority during the split (the
	// nodes compare their retained sets when they hear each other again):
	// a subscriber on C is sent it [MQTT-3.3.1-6], once.
	var got []*paho.Publish
	partWait(t, nodes, "the message retained during the split on C", partHealBound, func() bool {
		got = partRetained(t, c, "ret/#")
		return len(got) > 0
	})
	t.Logf("heal: the message retained during the split on C %v after the link came back", time.Since(healAt).Round(10*time.Millisecond))
	if len(got) != 1 || got[0].Topic != "ret/split" || string(got[0].Payload) != "kept" || !got[0].Retain {
		t.Fatalf("a subscriber on C got %d retained messages (first %q %q retain %v), want ret/split \"kept\" once", len(got), got[0].Topic, got[0].Payload, got[0].Retain)
	}
}

// partConnect3 connects a paho 3.1.1 client (clean session) to n and
// checks the CONNACK's return code is want (0: accepted, then kept
// connected until the test ends).
func partConnect3(t *testing.T, n *partNode, id string, want byte) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + n.mqtt).SetClientID(id).SetCleanSession(true).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(v3Wait)
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(v3Wait) {
		t.Fatalf("3.1.1 CONNECT %q on node %s: no CONNACK within %v", id, n.id, v3Wait)
	}
	if got := tok.(*mqtt.ConnectToken).ReturnCode(); got != want {
		t.Fatalf("3.1.1 CONNECT %q on node %s: return code %d (%v), want %d", id, n.id, got, tok.Error(), want)
	}
	if want == 0 {
		t.Cleanup(func() { cl.Disconnect(0) })
	}
}

// partRetained subscribes a new client on n to filter and returns what it
// is sent within v5Quiet (the retained messages), then disconnects it.
func partRetained(t *testing.T, n *partNode, filter string) []*paho.Publish {
	t.Helper()
	cl, _ := v5Connect(t, n.mqtt, &paho.Connect{ClientID: "p-retained", CleanStart: true, KeepAlive: 30})
	defer func() { _ = cl.Disconnect(&paho.Disconnect{}) }()
	cl.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	var got []*paho.Publish
	deadline := time.After(v5Quiet)
	for {
		select {
		case p := <-cl.msgs:
			got = append(got, p)
		case <-deadline:
			return got
		}
	}
}
