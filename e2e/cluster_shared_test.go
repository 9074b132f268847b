package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Shared subscriptions across the nodes of a cluster: each message goes
// to exactly one member of each matching group cluster-wide (MQTT 5
// §4.8.2; the 3.1.1 $share convention the same way).

// waitMembers waits until every node other than at has heard that at has
// members of shared subscription key ($share/{group}/{filter}).
func waitMembers(t *testing.T, nodes []*clusterNode, at *clusterNode, key string, members int) {
	t.Helper()
	v5Wait(t, fmt.Sprintf("%d members of %s on %s known everywhere", members, key, at.id), func() bool {
		for _, c := range nodes {
			if c != at && c.node.PeerMembers(at.id, key) != members {
				return false
			}
		}
		return true
	})
}

// sharedTally gathers what the members of one group received: who got
// each payload, and in what order each member got one publisher's.
type sharedTally struct {
	mu    sync.Mutex
	by    map[string][]string // payload -> members that got it
	dups  map[string]int      // payload -> copies marked DUP (a resend to the same member)
	order map[string][]string // member -> payloads in arrival order
	n     int
	more  chan struct{}
}

func newSharedTally() *sharedTally {
	return &sharedTally{by: map[string][]string{}, dups: map[string]int{}, order: map[string][]string{}, more: make(chan struct{}, 1)}
}

func (s *sharedTally) add(member, payload string, dup bool) {
	s.mu.Lock()
	if dup {
		s.dups[payload]++
	}
	s.by[payload] = append(s.by[payload], member)
	s.order[member] = append(s.order[member], payload)
	s.n++
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// drainV5 feeds what c receives into s under name until ctx ends.
func (s *sharedTally) drainV5(ctx context.Context, name string, c *v5Paho) {
	for {
		select {
		case p := <-c.msgs:
			s.add(name, string(p.Payload), p.Duplicate())
		case <-ctx.Done():
			return
		}
	}
}

// wait waits until n deliveries were counted.
func (s *sharedTally) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(3 * v5Timeout)
	for {
		s.mu.Lock()
		got := s.n
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-s.more:
		case <-deadline:
			s.mu.Lock()
			var missing []string
			for i := range n {
				for _, pre := range []string{"a", "b"} {
					if _, ok := s.by[fmt.Sprint(pre, i)]; !ok && len(s.by) > 0 {
						missing = append(missing, fmt.Sprint(pre, i))
					}
				}
			}
			s.mu.Unlock()
			t.Fatalf("%d deliveries within %v, want %d; not delivered (of a0.. b0..): %v", got, 3*v5Timeout, n, missing)
		}
	}
}

// checkOnce fails unless every payload in want was delivered to exactly
// one member (a copy marked DUP to the same member aside, when dupsOK),
// nothing else was delivered, and every member in members got some; it
// returns the deliveries per member.
func (s *sharedTally) checkOnce(t *testing.T, what string, want []string, members []string, dupsOK bool) map[string]int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	per := map[string]int{}
	for _, p := range want {
		got := s.by[p]
		switch {
		case len(got) == 0:
			t.Errorf("%s: %s delivered to no member", what, p)
		case len(got) > 1 && !(dupsOK && s.dups[p] == len(got)-1 && allSame(got)):
			t.Errorf("%s: %s delivered %d times, to %v", what, p, len(got), got)
		}
		if len(got) > 0 {
			per[got[0]]++
		}
	}
	if extra := len(s.by) - len(want); extra > 0 {
		t.Errorf("%s: %d payloads delivered that were not published", what, extra)
	}
	for _, m := range members {
		if per[m] == 0 {
			t.Errorf("%s: member %s got nothing (%v): not spread over the cluster", what, m, per)
		}
	}
	return per
}

func allSame(s []string) bool {
	for _, x := range s {
		if x != s[0] {
			return false
		}
	}
	return true
}

// checkOrder fails unless each member got each publisher's messages (a
// prefix and a counter, "a17") in increasing order [MQTT-4.6.0-5]: what
// one node forwards to another travels one queue and is routed on one
// loop there.
func (s *sharedTally) checkOrder(t *testing.T, what string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for m, ps := range s.order {
		last := map[byte]int{}
		for _, p := range ps {
			var i int
			if _, err := fmt.Sscanf(p[1:], "%d", &i); err != nil {
				t.Fatalf("%s: payload %q", what, p)
			}
			if l, ok := last[p[0]]; ok && i <= l {
				t.Errorf("%s: member %s got %s after %c%d", what, m, p, p[0], l)
			}
			last[p[0]] = i
		}
	}
}

// TestClusterSharedAcrossNodes: group g has v5 members on A, B and C and a
// 3.1.1 member on B, group h (same filter) members on B and C; plain
// subscribers sit on A and C. Publishers on A and B send N QoS 1 messages
// each: every message reaches exactly one member of g and one of h
// [MQTT-4.8.2-2: one copy per shared subscription], every member gets
// some, each member gets one publisher's messages in order, and each plain
// subscriber gets every message once, in order [MQTT-4.6.0-5].
func TestClusterSharedAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, h := newSharedTally(), newSharedTally()
	v5Member := func(tally *sharedTally, at *clusterNode, id, filter string) {
		m, _ := v5Connect(t, at.Addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		m.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		go tally.drainV5(ctx, id, m)
	}
	v5Member(g, a, "g-a", "$share/g/sh/#")
	v5Member(g, b, "g-b", "$share/g/sh/#")
	v5Member(g, c, "g-c", "$share/g/sh/#")
	v3m, _ := v3Paho(t, b.Addr, "g-b311", true, nil, func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { g.add("g-b311", string(m.Payload()), m.Duplicate()) })
	})
	v3Sub(t, v3m, "$share/g/sh/#", 1)
	v5Member(h, b, "h-b", "$share/h/sh/#")
	v5Member(h, c, "h-c", "$share/h/sh/#")
	plains := map[string]*sharedTally{}
	for _, at := range []*clusterNode{a, c} {
		id := "plain-" + at.id
		plains[id] = newSharedTally()
		v5Member(plains[id], at, id, "sh/#")
	}
	waitMembers(t, nodes, a, "$share/g/sh/#", 1)
	waitMembers(t, nodes, b, "$share/g/sh/#", 2)
	waitMembers(t, nodes, c, "$share/g/sh/#", 1)
	waitMembers(t, nodes, b, "$share/h/sh/#", 1)
	waitMembers(t, nodes, c, "$share/h/sh/#", 1)
	waitInterest(t, nodes, a, "sh/#")
	waitInterest(t, nodes, c, "sh/#")

	const n = 150
	var want []string
	var wg sync.WaitGroup
	for _, at := range []*clusterNode{a, b} {
		prefix := "a"
		if at == b {
			prefix = "b"
		}
		for i := range n {
			want = append(want, fmt.Sprintf("%s%d", prefix, i))
		}
		pub, _ := v5Connect(t, at.Addr, &paho.Connect{ClientID: "pub-" + at.id, CleanStart: true, KeepAlive: 30})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				pctx, pcancel := context.WithTimeout(context.Background(), v5Timeout)
				_, err := pub.Publish(pctx, &paho.Publish{Topic: fmt.Sprintf("sh/%d", i%3), QoS: 1, Payload: []byte(fmt.Sprintf("%s%d", prefix, i))})
				pcancel()
				if err != nil {
					t.Errorf("publish %s%d: %v", prefix, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	g.wait(t, 2*n)
	h.wait(t, 2*n)
	for _, p := range plains {
		p.wait(t, 2*n)
	}
	time.Sleep(v5Quiet) // nothing more may come
	perG := g.checkOnce(t, "group g", want, []string{"g-a", "g-b", "g-c", "g-b311"}, false)
	perH := h.checkOnce(t, "group h", want, []string{"h-b", "h-c"}, false)
	g.checkOrder(t, "group g")
	h.checkOrder(t, "group h")
	for id, p := range plains {
		p.checkOnce(t, id, want, []string{id}, false)
		p.checkOrder(t, id)
	}
	assigned := metricValue(t, a.node, "mcutie_cluster_shared_assigned_total") + metricValue(t, b.node, "mcutie_cluster_shared_assigned_total")
	if assigned == 0 {
		t.Errorf("no group delivery was assigned to another node")
	}
	t.Logf("group g: %v; group h: %v; assigned to other nodes: %v", perG, perH, assigned)
}

// TestClusterSharedOnlyChosenNodeGets: a node whose only matching
// subscriptions are members of a group is sent a message only when it was
// picked for that group, so group members on B and C cost one forward per
// message between them, not two; a node whose only subscription is a
// member of a group that does not match gets nothing.
func TestClusterSharedOnlyChosenNodeGets(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	mb, _ := v5Connect(t, b.Addr, &paho.Connect{ClientID: "o-b", CleanStart: true, KeepAlive: 30})
	mb.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/only/+", QoS: 1}}})
	mc, _ := v5Connect(t, c.Addr, &paho.Connect{ClientID: "o-c", CleanStart: true, KeepAlive: 30})
	mc.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/only/+", QoS: 1}}})
	waitMembers(t, nodes, b, "$share/g/only/+", 1)
	waitMembers(t, nodes, c, "$share/g/only/+", 1)
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "o-pub", CleanStart: true, KeepAlive: 30})
	const n = 20
	for i := range n {
		pub.publish(t, &paho.Publish{Topic: "only/x", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	got := map[string]int{}
	for range n {
		select {
		case p := <-mb.msgs:
			got["b"+string(p.Payload)]++
		case p := <-mc.msgs:
			got["c"+string(p.Payload)]++
		case <-time.After(v5Timeout):
			t.Fatalf("received %v of %d", got, n)
		}
	}
	mb.quiet(t)
	mc.quiet(t)
	rb := metricValue(t, b.node, "mcutie_cluster_received_messages_total")
	rc := metricValue(t, c.node, "mcutie_cluster_received_messages_total")
	if rb+rc != n || rb == 0 || rc == 0 {
		t.Errorf("B received %v and C %v forwarded messages, want %d in all, some each: each message once, to the node picked", rb, rc, n)
	}
	if s := metricValue(t, a.node, "mcutie_cluster_sent_messages_total"); s != n {
		t.Errorf("A sent %v, want %d", s, n)
	}
	// A topic only another group's filter matches: B and C get nothing.
	pub.publish(t, &paho.Publish{Topic: "other/x", QoS: 1, Payload: []byte("no")})
	mb.quiet(t)
	if r := metricValue(t, b.node, "mcutie_cluster_received_messages_total") + metricValue(t, c.node, "mcutie_cluster_received_messages_total"); r != n {
		t.Errorf("B and C received %v forwarded messages after one no one there matches, want %d", r, n)
	}
	if r := metricValue(t, b.node, "mcutie_cluster_shared_rerouted_total") + metricValue(t, c.node, "mcutie_cluster_shared_rerouted_total"); r != 0 {
		t.Errorf("%v messages sent on with every member online", r)
	}
}

// TestClusterSharedMemberLeaves: members of g on A, B and C; a QoS 1
// stream from A. Mid-stream C's member unsubscribes (its in-flight
// messages are still completed [MQTT-3.10.4-3]) and later B's member, whose
// session is kept, disconnects and comes back at the end [MQTT-4.4.0-1].
// No message is lost: those assigned to C after its member left, before A
// heard of it, and those assigned to B while its only member is offline
// are sent on to a node with a member online (counted). A copy twice is
// only a resend marked DUP to the same member.
func TestClusterSharedMemberLeaves(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := newSharedTally()
	connect := func(at *clusterNode, id string, clean bool) *v5Paho {
		m, _ := v5Connect(t, at.Addr, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(300)}})
		return m
	}
	ma, mb, mc := connect(a, "l-a", true), connect(b, "l-b", true), connect(c, "l-c", true)
	for _, m := range []*v5Paho{ma, mb, mc} {
		m.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/leave/#", QoS: 1}}})
	}
	go g.drainV5(ctx, "l-a", ma)
	go g.drainV5(ctx, "l-b", mb)
	go g.drainV5(ctx, "l-c", mc)
	for _, at := range nodes {
		waitMembers(t, nodes, at, "$share/g/leave/#", 1)
	}
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "l-pub", CleanStart: true, KeepAlive: 30})
	const n = 300
	var want []string
	for i := range n {
		switch i {
		case n / 3:
			uctx, ucancel := context.WithTimeout(ctx, v5Timeout)
			if _, err := mc.Unsubscribe(uctx, &paho.Unsubscribe{Topics: []string{"$share/g/leave/#"}}); err != nil {
				t.Fatal(err)
			}
			ucancel()
		case 2 * n / 3:
			_ = mb.Disconnect(&paho.Disconnect{ReasonCode: 0})
			v5Wait(t, "B's member offline", func() bool {
				s, ok, err := b.B.Session(ctx, "l-b")
				return err == nil && ok && !s.Connected
			})
		}
		p := fmt.Sprintf("a%d", i)
		want = append(want, p)
		pub.publish(t, &paho.Publish{Topic: "leave/x", QoS: 1, Payload: []byte(p)})
	}
	v5Wait(t, "A has heard that C has no member", func() bool { return a.node.PeerMembers(c.id, "$share/g/leave/#") == 0 })
	if r := metricValue(t, b.node, "mcutie_cluster_shared_rerouted_total"); r == 0 {
		t.Errorf("B sent nothing on while its only member was offline (A does not know members' connections)")
	}
	// B's member comes back: what it had not acknowledged is resent.
	back := connect(b, "l-b", false)
	go g.drainV5(ctx, "l-b", back)
	g.wait(t, n)
	time.Sleep(v5Quiet)
	per := g.checkOnce(t, "group g", want, []string{"l-a", "l-b", "l-c"}, true)
	t.Logf("deliveries per member: %v; sent on by B: %v, by C: %v", per,
		metricValue(t, b.node, "mcutie_cluster_shared_rerouted_total"), metricValue(t, c.node, "mcutie_cluster_shared_rerouted_total"))
}

// TestClusterSharedNodeGone: members of g on A, B and C, a QoS 1 stream
// from A. C's cluster node stops (its routes close, as when its process
// is killed) between two halves of the stream; A still counts C's member
// until C's heartbeats are missed, but a message it assigns to C is given
// to A or B as soon as C is unreachable. No message is lost or doubled,
// and none of the second half reaches C.
func TestClusterSharedNodeGone(t *testing.T) {
	nodes := startCluster(t, 3)
	a, c := nodes[0], nodes[2]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := newSharedTally()
	for _, at := range nodes {
		m, _ := v5Connect(t, at.Addr, &paho.Connect{ClientID: "gone-" + at.id, CleanStart: true, KeepAlive: 30})
		m.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/gone/#", QoS: 1}}})
		go g.drainV5(ctx, "gone-"+at.id, m)
	}
	for _, at := range nodes {
		waitMembers(t, nodes, at, "$share/g/gone/#", 1)
	}
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "gone-pub", CleanStart: true, KeepAlive: 30})
	const n = 200
	var first, second []string
	for i := range n / 2 {
		first = append(first, fmt.Sprintf("a%d", i))
		pub.publish(t, &paho.Publish{Topic: "gone/x", QoS: 1, Payload: []byte(first[i])})
	}
	g.wait(t, n/2)
	c.node.Stop()
	v5Wait(t, "C unreachable from A", func() bool { return !a.node.PeerReachable(c.id) })
	stillKnown := len(a.node.Peers()) == 2
	for i := n / 2; i < n; i++ {
		p := fmt.Sprintf("a%d", i)
		second = append(second, p)
		pub.publish(t, &paho.Publish{Topic: "gone/x", QoS: 1, Payload: []byte(p)})
	}
	g.wait(t, n)
	time.Sleep(v5Quiet)
	g.checkOnce(t, "group g", append(first, second...), []string{"gone-n0", "gone-n1", "gone-n2"}, false)
	g.mu.Lock()
	for _, p := range second {
		if who := g.by[p]; len(who) > 0 && who[0] == "gone-"+c.id {
			t.Errorf("%s reached C's member after C left the cluster", p)
		}
	}
	g.mu.Unlock()
	t.Logf("A gave %v messages assigned to C to another node; C known when the second half began: %v",
		metricValue(t, a.node, "mcutie_cluster_shared_rerouted_total"), stillKnown)
}
