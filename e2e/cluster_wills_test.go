package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mcutie/mcutie/codec"
)

// willNode is one mcutie process of TestClusterWills*: its data dir,
// ports and flags, so that it can be started again on the same store.
type willNode struct {
	*durProc
	bin     string // a copy of the binary of its own (restarted from it)
	dir     string
	port    int
	metrics string
	args    []string
}

// willAfter is --cluster-will-after in these tests: short, so that the
// tests are short; the liveness is written every second.
const willAfter = "3s"

// startWillCluster starts three processes with session ownership and
// will replication (--cluster-sessions, --cluster-will-after) and waits
// until each can claim client ids (a quorum).
func startWillCluster(t *testing.T, extra ...string) []*willNode {
	t.Helper()
	// Our own copy of the binary: the shared one under /tmp was seen
	// removed under a running test by other runs on the same machine.
	bin := filepath.Join(t.TempDir(), "mcutie")
	raw, err := os.ReadFile(durBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	var nodes []*willNode
	seed := ""
	for i := range 3 {
		// A port picked free may be taken by the time the process binds
		// it (the embedded NATS server's own port is the kernel's
		// pick): start again on other ports then.
		for attempt := 1; ; attempt++ {
			cport := freePort(t)
			args := append([]string{"--node-id", fmt.Sprintf("w%d", i), "--cluster-sessions", "--cluster-will-after", willAfter}, extra...)
			if seed != "" {
				args = append(args, "--cluster-join", seed)
			}
			mport := freePort(t)
			args = append(args, "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", cport), "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport))
			wn := &willNode{bin: bin, dir: t.TempDir(), port: freePort(t), metrics: fmt.Sprintf("127.0.0.1:%d", mport), args: args}
			wn.run(t)
			select {
			case <-wn.started:
			case <-wn.exited:
				if attempt < 3 {
					continue
				}
				t.Fatalf("node %d exited during start-up:\n%s", i, wn.log())
			case <-time.After(30 * time.Second):
				t.Fatalf("node %d not started within 30 s:\n%s", i, wn.log())
			}
			if seed == "" {
				seed = fmt.Sprintf("127.0.0.1:%d", cport)
			}
			nodes = append(nodes, wn)
			break
		}
	}
	for _, wn := range nodes {
		wn.waitMetric(t, "mcutie_cluster_owners_ready", func(v float64) bool { return v == 1 })
	}
	return nodes
}

// restart starts the node again on its data dir, ports and flags.
func (wn *willNode) restart(t *testing.T) {
	t.Helper()
	wn.run(t)
	wn.waitStarted(t, 30*time.Second)
}

// run starts the process (durRun's flags, from the node's binary).
func (wn *willNode) run(t *testing.T) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", wn.port)
	args := append([]string{"--store", "badger", "--data-dir", wn.dir, "--listen", "tcp://" + addr, "--loops", "2"}, wn.args...)
	wn.durProc = durSpawn(t, exec.Command(wn.bin, args...), addr)
}

// waitMetric waits (30 s at most: JetStream elections under -race on a
// loaded machine) until the node's metric satisfies ok.
func (wn *willNode) waitMetric(t *testing.T, name string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := scrapeMetric(wn.metrics, name)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s = %v after 30 s\n%s", name, wn.Addr, v, wn.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// willSubscribers connects a subscriber to wills/# on the second and
// the third node (client ids prefix-b, prefix-c) and returns once a
// message from each node reaches both.
func willSubscribers(t *testing.T, nodes []*willNode, prefix string) (subB, subC *v5Paho) {
	t.Helper()
	subB, _ = v5Connect(t, nodes[1].Addr, &paho.Connect{ClientID: prefix + "-b", CleanStart: true, KeepAlive: 30})
	subB.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wills/#", QoS: 1}}})
	subC, _ = v5Connect(t, nodes[2].Addr, &paho.Connect{ClientID: prefix + "-c", CleanStart: true, KeepAlive: 30})
	subC.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wills/#", QoS: 1}}})
	for _, n := range nodes {
		crossProbe(t, n.Addr, subB, subC)
	}
	return subB, subC
}

// crossProbe publishes probes from a client on from until every sub got
// one (the nodes know each other's interest), then drains them.
func crossProbe(t *testing.T, from string, subs ...*v5Paho) {
	t.Helper()
	pub, _ := v5Connect(t, from, &paho.Connect{ClientID: "probe-" + strconv.FormatInt(time.Now().UnixNano(), 36), CleanStart: true, KeepAlive: 30})
	deadline := time.Now().Add(20 * time.Second)
	got := make([]bool, len(subs))
	for left := len(subs); left > 0; {
		pub.publish(t, &paho.Publish{Topic: "wills/probe", QoS: 1, Payload: []byte("probe")})
		time.Sleep(200 * time.Millisecond)
		for i, s := range subs {
			select {
			case <-s.msgs:
				if !got[i] {
					got[i] = true
					left--
				}
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("probes did not reach every node within 20 s")
		}
	}
	_ = pub.Disconnect(&paho.Disconnect{})
	for _, s := range subs {
		for drained := false; !drained; {
			select {
			case p := <-s.msgs:
				if string(p.Topic) != "wills/probe" {
					t.Fatalf("unexpected %q before the test", p.Topic)
				}
			case <-time.After(v5Quiet):
				drained = true
			}
		}
	}
}

// willsSeen collects the wills a subscriber gets until want distinct
// topics arrived, counting each topic, and records when each arrived.
func willsSeen(t *testing.T, s *v5Paho, want int) (map[string]*paho.Publish, map[string]int, map[string]time.Time) {
	t.Helper()
	got, count, at := map[string]*paho.Publish{}, map[string]int{}, map[string]time.Time{}
	deadline := time.After(30 * time.Second)
	for len(got) < want {
		select {
		case p := <-s.msgs:
			if p.Topic == "wills/probe" {
				continue
			}
			count[p.Topic]++
			if got[p.Topic] == nil {
				got[p.Topic], at[p.Topic] = p, time.Now()
			}
		case <-deadline:
			t.Fatalf("got wills %v within 30 s, want %d distinct", count, want)
		}
	}
	return got, count, at
}

// TestClusterWillsOfKilledNode: clients with wills on node A — MQTT 5
// (paho.golang, v5 properties on the will), 3.1.1 (paho.mqtt.golang), and
// MQTT 5 with a Will Delay Interval — and one that disconnects normally
// first; A is killed with kill -9. The subscribers on B and C get each
// will exactly once, with its properties [MQTT-3.1.2-8], the delayed one
// not before its delay [MQTT-3.1.3-9], the normally disconnected
// client's never [MQTT-3.1.2-10]; one surviving node publishes each
// (counted). A then restarts on the same store, restores the persistent
// sessions with their wills, and publishes none of them again: their
// copies are gone from the cluster.
func TestClusterWillsOfKilledNode(t *testing.T) {
	nodes := startWillCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	subB, subC := willSubscribers(t, nodes, "ws")

	const delay = 6 // seconds
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "will-v5", CleanStart: true, KeepAlive: 30,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)},
		WillMessage:    &paho.WillMessage{Topic: "wills/v5", Payload: []byte("v5 gone"), QoS: 1},
		WillProperties: &paho.WillProperties{User: paho.UserProperties{{Key: "why", Value: "killed"}}}})
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "will-delay", CleanStart: true, KeepAlive: 30,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)},
		WillMessage:    &paho.WillMessage{Topic: "wills/delay", Payload: []byte("late"), QoS: 1},
		WillProperties: &paho.WillProperties{WillDelayInterval: v5U32(delay)}})
	v3Paho(t, a.Addr, "will-v3", false, nil, func(o *mqtt.ClientOptions) { o.SetWill("wills/v3", "v3 gone", 1, false) })
	bye, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "will-bye", CleanStart: true, KeepAlive: 30,
		WillMessage: &paho.WillMessage{Topic: "wills/bye", Payload: []byte("must not"), QoS: 1}})
	// Each will is in the cluster's bucket before A dies.
	a.waitMetric(t, "mcutie_cluster_wills_replicated_total", func(v float64) bool { return v >= 4 })
	if err := bye.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatal(err)
	}
	// The normal DISCONNECT withdrew its copy: three left.
	a.waitMetric(t, "mcutie_cluster_wills", func(v float64) bool { return v == 3 })

	killed := time.Now()
	a.kill(t)
	for _, s := range []*v5Paho{subB, subC} {
		got, count, at := willsSeen(t, s, 3)
		t.Logf("wills received: %v", count)
		for _, topic := range []string{"wills/v5", "wills/v3", "wills/delay"} {
			if got[topic] == nil || count[topic] != 1 {
				t.Fatalf("wills %v, want wills/v5, wills/v3 and wills/delay once each", count)
			}
		}
		p := got["wills/v5"]
		if string(p.Payload) != "v5 gone" || p.QoS != 1 || p.Properties == nil || p.Properties.User.Get("why") != "killed" {
			t.Errorf("the v5 will arrived as %q QoS %d %+v, want its payload, QoS and properties [MQTT-3.3.2-17/-20]", p.Payload, p.QoS, p.Properties)
		}
		// Its delay is counted from when A was last seen alive plus the
		// time between two of its liveness writes (1.5 s); a write's own
		// latency (well under 1 s) is the tolerance.
		if early := at["wills/delay"].Sub(killed); early < delay*time.Second-time.Second {
			t.Errorf("the delayed will arrived %v after the kill, before its %d s delay [MQTT-3.1.3-9]", early, delay)
		}
	}
	fired := 0.0
	for _, n := range []*willNode{b, c} {
		fired += n.waitMetric(t, "mcutie_cluster_wills_fired_for_lost_total", func(v float64) bool { return v >= 0 })
	}
	if fired != 3 {
		t.Errorf("B and C published %v wills for A, want 3 between them", fired)
	}

	// A comes back on its store: its three persistent sessions come back
	// with their wills, which the cluster says were published already.
	a.restart(t)
	a.waitMetric(t, "mcutie_cluster_wills_not_fired_total", func(v float64) bool { return v >= 3 })
	subB.quiet(t)
	subC.quiet(t)
	if v := scrapeMetric(a.metrics, "mcutie_cluster_wills_fired_total"); v != 0 {
		t.Errorf("A published %v wills after it restarted, want 0", v)
	}
	t.Logf("wills of the killed node: %d s delay honoured; A restarted, published none again", delay)
}

// TestClusterWillsLiveNode: with wills replicated, a node that lives
// publishes its clients' wills as a single node does, once cluster-wide:
// an MQTT 5 and a 3.1.1 connection that drop without DISCONNECT have
// their wills delivered once to the subscribers on B and C
// [MQTT-3.1.2-8]; a v5 session with a Will Delay Interval that resumes
// within the delay has none published [MQTT-3.1.3-9]; a normal DISCONNECT
// publishes none [MQTT-3.1.2-10]; every copy left the cluster's bucket and
// no other node published anything.
func TestClusterWillsLiveNode(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	subB, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "wl-b", CleanStart: true, KeepAlive: 30})
	subB.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wl/#", QoS: 1}}})
	subC, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "wl-c", CleanStart: true, KeepAlive: 30})
	subC.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wl/#", QoS: 1}}})
	waitInterest(t, nodes, b, "wl/#")
	waitInterest(t, nodes, c, "wl/#")
	copies := func(want float64) {
		t.Helper()
		v5Wait(t, fmt.Sprintf("%v will copies of A in the bucket", want), func() bool {
			return metricValue(t, a.node, "mcutie_cluster_wills") == want
		})
	}
	will := func(topic string, delay uint32) func(*codec.Connect) {
		return func(p *codec.Connect) {
			p.KeepAlive = 30
			p.WillFlag, p.WillQoS, p.WillTopic, p.WillPayload = true, 1, []byte(topic), []byte(topic+" gone")
			if delay > 0 {
				p.WillProps.Set(codec.PropWillDelay)
				p.WillProps.WillDelay = delay
				p.Props.Set(codec.PropSessionExpiry)
				p.Props.SessionExpiry = 300
			}
		}
	}
	expect := func(topic string) {
		t.Helper()
		for _, s := range []*v5Paho{subB, subC} {
			if p := s.recv(t); p.Topic != topic {
				t.Fatalf("got %q, want the will %q", p.Topic, topic)
			}
		}
	}

	abrupt5, _ := v5RawConnect(t, a.Addr, "wl-abrupt5", will("wl/abrupt5", 0))
	abrupt3, _ := v3Raw(t, a.Addr, codec.V311, "wl-abrupt3", true, will("wl/abrupt3", 0))
	copies(2)
	abrupt5.c.Close()
	expect("wl/abrupt5")
	abrupt3.c.Close()
	expect("wl/abrupt3")
	copies(0)

	delayed, _ := v5RawConnect(t, a.Addr, "wl-delay", will("wl/delay", 30))
	copies(1)
	delayed.c.Close()
	// Resumed within the delay (waiting for the copy to be updated as
	// pending first is not possible from outside: resume at once).
	back, ack := v5RawConnect(t, a.Addr, "wl-delay", func(p *codec.Connect) { p.CleanStart = false; p.KeepAlive = 30 })
	if !ack.SessionPresent {
		t.Fatal("the delayed-will session did not resume")
	}
	copies(0)
	back.disconnect(codec.NormalDisconnection)

	polite, _ := v3Paho(t, a.Addr, "wl-polite", true, nil, func(o *mqtt.ClientOptions) { o.SetWill("wl/polite", "must not", 1, false) })
	copies(1)
	polite.Disconnect(100)
	copies(0)

	subB.quiet(t)
	subC.quiet(t)
	if v := metricValue(t, a.node, "mcutie_cluster_wills_fired_total"); v != 2 {
		t.Errorf("A published %v wills, want 2", v)
	}
	for _, n := range []*clusterNode{b, c} {
		if v := metricValue(t, n.node, "mcutie_cluster_wills_fired_total"); v != 0 {
			t.Errorf("%s published %v wills of A's clients, want 0", n.id, v)
		}
	}
}

// TestClusterWillsGracefulLeave: a node that leaves gracefully (SIGTERM,
// a rolling restart) is not lost: while it is down for longer than
// --cluster-will-after the others publish none of its wills (no node
// counted lost); the pending will of a session whose connection its
// shutdown ended (Will Delay Interval 8 s, session expiry 300 s) is
// published by that node itself when it is back and the delay has
// passed [MQTT-3.1.3-9], once.
func TestClusterWillsGracefulLeave(t *testing.T) {
	nodes := startWillCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	subB, subC := willSubscribers(t, nodes, "wg")
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "will-leave", CleanStart: true, KeepAlive: 30,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)},
		WillMessage:    &paho.WillMessage{Topic: "wills/leave", Payload: []byte("left"), QoS: 1},
		WillProperties: &paho.WillProperties{WillDelayInterval: v5U32(8)}})
	a.waitMetric(t, "mcutie_cluster_wills", func(v float64) bool { return v == 1 })

	stopped := time.Now()
	a.term(t)
	// Down for longer than --cluster-will-after: a lost node would be
	// counted by now.
	time.Sleep(5 * time.Second)
	for _, n := range []*willNode{b, c} {
		if v := scrapeMetric(n.metrics, "mcutie_cluster_lost_nodes"); v != 0 {
			t.Errorf("%s counts %v lost nodes while A left gracefully", n.Addr, v)
		}
	}
	select {
	case p := <-subB.msgs:
		t.Fatalf("%q published while its node was away after a graceful leave", p.Topic)
	default:
	}

	a.restart(t)
	for _, s := range []*v5Paho{subB, subC} {
		_, count, at := willsSeen(t, s, 1)
		if count["wills/leave"] != 1 {
			t.Fatalf("wills %v, want wills/leave once", count)
		}
		if early := at["wills/leave"].Sub(stopped); early < 8*time.Second {
			t.Errorf("the will arrived %v after its connection ended, before its 8 s delay [MQTT-3.1.3-9]", early)
		}
	}
	a.waitMetric(t, "mcutie_cluster_wills_fired_total", func(v float64) bool { return v == 1 })
	subB.quiet(t)
	subC.quiet(t)
	for _, n := range []*willNode{b, c} {
		if v := scrapeMetric(n.metrics, "mcutie_cluster_wills_fired_total"); v != 0 {
			t.Errorf("%s published %v wills of A's, want 0", n.Addr, v)
		}
	}
}

// TestClusterWillsLeftForGood: a node that left gracefully (SIGTERM) and
// stays away longer than --cluster-hold (4 s here) is not coming back
// soon: the others publish its pending delayed will once, not before its
// delay [MQTT-3.1.3-9]; the node, restarted later, does not publish it
// again.
func TestClusterWillsLeftForGood(t *testing.T) {
	nodes := startWillCluster(t, "--cluster-hold", "4s")
	a, b, c := nodes[0], nodes[1], nodes[2]
	subB, subC := willSubscribers(t, nodes, "wf")
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "will-gone", CleanStart: true, KeepAlive: 30,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)},
		WillMessage:    &paho.WillMessage{Topic: "wills/gone", Payload: []byte("for good"), QoS: 1},
		WillProperties: &paho.WillProperties{WillDelayInterval: v5U32(8)}})
	a.waitMetric(t, "mcutie_cluster_wills", func(v float64) bool { return v == 1 })

	stopped := time.Now()
	a.term(t)
	for _, s := range []*v5Paho{subB, subC} {
		_, count, at := willsSeen(t, s, 1)
		if count["wills/gone"] != 1 {
			t.Fatalf("wills %v, want wills/gone once", count)
		}
		if early := at["wills/gone"].Sub(stopped); early < 8*time.Second {
			t.Errorf("the will arrived %v after its node left, before its 8 s delay [MQTT-3.1.3-9]", early)
		}
	}
	fired := 0.0
	for _, n := range []*willNode{b, c} {
		fired += scrapeMetric(n.metrics, "mcutie_cluster_wills_fired_for_lost_total")
	}
	if fired != 1 {
		t.Errorf("B and C published %v wills of A's, want 1", fired)
	}

	// A comes back: its restored session's will has no copy any more.
	a.restart(t)
	a.waitMetric(t, "mcutie_cluster_wills_not_fired_total", func(v float64) bool { return v >= 1 })
	subB.quiet(t)
	subC.quiet(t)
	if v := scrapeMetric(a.metrics, "mcutie_cluster_wills_fired_total"); v != 0 {
		t.Errorf("A published %v wills after its restart, want 0", v)
	}
}
