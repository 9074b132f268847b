package cluster

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// TestSchedule: each node gets turns in proportion to its members,
// interleaved (equal weights never repeat a node back to back), and a
// schedule never grows past maxSchedule however many members there are.
func TestSchedule(t *testing.T) {
	f := func(weights []int, wantLen int, want map[uint8]int) {
		t.Helper()
		nodes := make([]uint8, len(weights))
		for i := range nodes {
			nodes[i] = uint8(i)
		}
		s := schedule(nodes, append([]int(nil), weights...))
		if len(s) != wantLen {
			t.Fatalf("schedule(%v) has %d turns, want %d: %v", weights, len(s), wantLen, s)
		}
		got := map[uint8]int{}
		for _, n := range s {
			got[n]++
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("schedule(%v) turns %v, want %v", weights, got, want)
		}
	}
	f([]int{1}, 1, map[uint8]int{0: 1})
	f([]int{3, 1, 2}, 6, map[uint8]int{0: 3, 1: 1, 2: 2})
	f([]int{1000, 1}, 256, map[uint8]int{0: 255, 1: 1})
	f([]int{200, 200, 200}, 255, map[uint8]int{0: 85, 1: 85, 2: 85})
	s := schedule([]uint8{0, 1, 2}, []int{2, 2, 2})
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			t.Fatalf("equal weights, %v: node %d twice in a row", s, s[i])
		}
	}
}

// TestSharedPick: a slot never names this node once its last member is
// gone (before the index is rebuilt), and pickOther never names it.
func TestSharedPick(t *testing.T) {
	lg := &localGroup{}
	lg.members.Store(1)
	s := &sharedSlot{sched: []uint8{0, selfNode, 1}, turn: new(atomic.Uint64), local: lg}
	got := map[uint8]int{}
	for range 30 {
		got[s.pick()]++
	}
	if got[selfNode] != 10 || got[0] != 10 || got[1] != 10 {
		t.Fatalf("picks %v, want 10 each", got)
	}
	lg.members.Store(0)
	for range 30 {
		if n := s.pick(); n == selfNode {
			t.Fatal("picked this node with no member left")
		}
		if n, ok := s.pickOther(); !ok || n == selfNode {
			t.Fatalf("pickOther = %d, %v", n, ok)
		}
	}
	only := &sharedSlot{sched: []uint8{selfNode}, turn: new(atomic.Uint64), local: lg}
	if _, ok := only.pickOther(); ok {
		t.Fatal("pickOther found another node where there is none")
	}
}

// sharedTestNode is a node (not started) with peers b and c: b has 2
// members of $share/g/t/#, c 1 and the filter t/x too; this node has 1.
func sharedTestNode(t testing.TB) *Node {
	n, err := New(Options{NodeID: "a", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	n.routing.Store(true)
	n.Interest("$share/g/t/#", 1)
	n.peersMu.Lock()
	n.peers["b"] = &peer{subject: subjectMsg("b"), known: true, groups: []groupCount{{Key: "$share/g/t/#", Members: 2}, {Key: "$share/h/u/#", Members: 1}}}
	n.peers["c"] = &peer{subject: subjectMsg("c"), known: true, filters: []string{"t/x"}, groups: []groupCount{{Key: "$share/g/t/#", Members: 1}}}
	n.rebuildLocked()
	n.peersMu.Unlock()
	return n
}

// TestForwardShared: for each message one node serves the group, in
// proportion to members (b 2, c 1, this node 1, exactly over 4 turns); a
// node picked only for the group gets the message only when picked (b),
// a node with a plain match gets every one (c), told whether it serves
// the group; this node is told to skip the group when it is elsewhere.
func TestForwardShared(t *testing.T) {
	n := sharedTestNode(t)
	served := map[string]int{}
	for i := range 400 {
		topic := "t/y"
		if i%2 == 1 {
			topic = "t/x" // c's plain filter too
		}
		m := &broker.PeerMessage{Topic: []byte(topic), Payload: []byte("p"), QoS: 1}
		sent := n.Forward(m)
		var who string
		if len(m.Elsewhere) == 0 {
			who = "a"
		} else if g, f, rest, ok := broker.NextSharedKey(m.Elsewhere); !ok || string(g) != "g" || string(f) != "t/#" || len(rest) != 0 {
			t.Fatalf("Elsewhere = %q", m.Elsewhere)
		}
		if sent == 0 {
			if who != "a" {
				t.Fatalf("message %d: group elsewhere but sent nowhere", i)
			}
			served[who]++
			continue
		}
		it := <-n.queue
		var p codec.Publish
		h, err := decodeAny(*it.buf, &p)
		if err != nil {
			t.Fatal(err)
		}
		for to := it.to; to != 0; to &= to - 1 {
			id := it.ix.ids[trailing(to)]
			listed := listedFor(nil, h.groups, id)
			if id == "b" && len(listed) == 0 {
				t.Fatalf("message %d sent to b, which serves no group for it", i)
			}
			if id == "c" && topic != "t/x" && len(listed) == 0 {
				t.Fatalf("message %d (%s) sent to c, which has no match and serves no group", i, topic)
			}
			if len(listed) > 0 {
				if who != "" {
					t.Fatalf("message %d: group served by %s and %s", i, who, id)
				}
				who = id
			}
		}
		if who == "" {
			t.Fatalf("message %d: group served by no node", i)
		}
		served[who]++
		n.bufPool.Put(it.buf)
	}
	if served["b"] != 200 || served["c"] != 100 || served["a"] != 100 {
		t.Fatalf("served %v, want b 200, c 100, a 100 (members 2, 1, 1)", served)
	}
	// This node's last member leaves: before the index is rebuilt its
	// turns go to the others at once.
	n.Interest("$share/g/t/#", -1)
	for range 40 {
		m := &broker.PeerMessage{Topic: []byte("t/y"), QoS: 1}
		if n.Forward(m) != 1 || len(m.Elsewhere) == 0 {
			t.Fatal("a turn went to this node with no member left")
		}
		n.bufPool.Put((<-n.queue).buf)
	}
}

func trailing(x uint64) int {
	i := 0
	for x&1 == 0 {
		x >>= 1
		i++
	}
	return i
}

// TestReroute: a group this node cannot serve goes to another node with
// members, for that group only (flag sharedGroupsOnly), never to this one.
func TestReroute(t *testing.T) {
	n := sharedTestNode(t)
	m := &broker.PeerMessage{Topic: []byte("t/z"), Payload: []byte("p"), QoS: 1}
	for range 8 {
		if !n.Reroute(m, "g", "t/#") {
			t.Fatal("not rerouted")
		}
		it := <-n.queue
		var p codec.Publish
		h, err := decodeAny(*it.buf, &p)
		if err != nil || h.kind != kindShared || h.flags != sharedGroupsOnly || h.count != 1 {
			t.Fatalf("rerouted as %+v, %v", h, err)
		}
		id := it.ix.ids[trailing(it.to)]
		if it.to&(it.to-1) != 0 || len(listedFor(nil, h.groups, id)) == 0 {
			t.Fatalf("rerouted to %b (%s), groups %q", it.to, id, h.groups)
		}
		n.bufPool.Put(it.buf)
	}
	if n.Reroute(m, "nobody", "t/#") {
		t.Fatal("rerouted a group no node has")
	}
	if got := n.sharedRerouted.Load(); got != 8 {
		t.Fatalf("rerouted counter %d, want 8", got)
	}
}

// TestWireSharedRoundTrip: the assignments decode to what was encoded,
// and each node finds its own.
func TestWireSharedRoundTrip(t *testing.T) {
	n := sharedTestNode(t)
	ix := n.remote.Load()
	b, c := uint8(0), uint8(1)
	if ix.ids[b] != "b" || ix.ids[c] != "c" {
		t.Fatalf("ids %v", ix.ids)
	}
	g, h := ix.slotByKey["g\x00t/#"], ix.slotByKey["h\x00u/#"]
	m := &broker.PeerMessage{Topic: []byte("t/u"), Payload: []byte("x"), QoS: 2}
	raw := n.encodeShared(nil, ix, 0, []assignment{{g, c}, {h, b}}, m, false)
	var p codec.Publish
	hd, err := decodeAny(raw, &p)
	if err != nil || hd.count != 2 || string(hd.source) != "a" || string(p.Topic) != "t/u" || p.QoS != 2 {
		t.Fatalf("decoded %+v %+v: %v", hd, p, err)
	}
	if want := broker.AppendSharedKey(nil, "g", "t/#"); !bytes.Equal(listedFor(nil, hd.groups, "c"), want) {
		t.Fatalf("c's groups %q, want %q", listedFor(nil, hd.groups, "c"), want)
	}
	if want := broker.AppendSharedKey(nil, "h", "u/#"); !bytes.Equal(listedFor(nil, hd.groups, "b"), want) {
		t.Fatalf("b's groups %q", listedFor(nil, hd.groups, "b"))
	}
	if len(listedFor(nil, hd.groups, "a")) != 0 {
		t.Fatal("a serves a group it was not given")
	}
	if _, _, _, _, _, err := decode(raw, &p); err == nil {
		t.Fatal("decode (live and retained copies only) took a shared message")
	}
}

// FuzzDecodeShared: no input from a peer makes decodeAny or the walk of
// its assignments panic, and an accepted shared message re-encodes to one
// that decodes to the same assignments.
func FuzzDecodeShared(f *testing.F) {
	n := sharedTestNode(f)
	ix := n.remote.Load()
	m := &broker.PeerMessage{Topic: []byte("t/u"), Payload: []byte("x"), QoS: 1}
	f.Add(n.encodeShared(nil, ix, 0, []assignment{{0, 1}, {1, 0}}, m, false))
	f.Add(n.encodeShared(nil, ix, sharedGroupsOnly, []assignment{{0, 0}}, m, true))
	f.Add(n.encode(nil, kindLive, m))
	f.Add([]byte{2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 1, 1, 'b', 1, 'g', 1, '#'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p codec.Publish
		h, err := decodeAny(b, &p)
		if err != nil || h.kind != kindShared {
			return
		}
		var all, nodes [][]byte
		for g := h.groups; len(g) > 0; {
			node, grp, flt, rest := nextAssignment(g)
			all = append(all, broker.AppendSharedKey(nil, grp, flt))
			nodes = append(nodes, node)
			g = rest
		}
		if len(all) != h.count {
			t.Fatalf("%d assignments walked, %d announced", len(all), h.count)
		}
		for i, node := range nodes {
			if !bytes.Contains(listedFor(nil, h.groups, string(node)), all[i]) {
				t.Fatalf("assignment %d not listed for its node %q", i, node)
			}
		}
	})
}

// TestForwardSharedAllocatesNothing: matching a message against the
// shared subscriptions, picking a node for each and encoding the
// assignments allocates nothing per message with warm pools.
func TestForwardSharedAllocatesNothing(t *testing.T) {
	n := sharedTestNode(t)
	props := &codec.Properties{}
	props.Set(codec.PropContentType)
	props.ContentType = []byte("text/plain")
	m := &broker.PeerMessage{Topic: []byte("t/x"), Payload: make([]byte, 64), QoS: 1, Props: props, Elsewhere: make([]byte, 0, 64)}
	forward := func() {
		m.Elsewhere = m.Elsewhere[:0]
		if n.Forward(m) == 0 {
			t.Fatal("not forwarded (c has t/x)")
		}
		n.bufPool.Put((<-n.queue).buf)
	}
	for range 8 {
		forward() // warm the pools, every turn
	}
	if raceEnabled {
		return
	}
	if a := testing.AllocsPerRun(1000, forward); a != 0 {
		t.Fatalf("Forward with shared subscriptions allocates %.1f times per message", a)
	}
	reroute := func() {
		if !n.Reroute(m, "g", "t/#") {
			t.Fatal("not rerouted")
		}
		n.bufPool.Put((<-n.queue).buf)
	}
	reroute()
	if a := testing.AllocsPerRun(1000, reroute); a != 0 {
		t.Fatalf("Reroute allocates %.1f times per message", a)
	}
}
