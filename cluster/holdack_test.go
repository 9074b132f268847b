package cluster

import (
	"testing"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// TestHeldSentTwiceDeliveredOnce: a held message sent again (its
// acknowledgement did not come) is handed on once, by its sender's
// sequence; another sender's sequences are its own; a malformed control
// message is counted and handed on to no one.
func TestHeldSentTwiceDeliveredOnce(t *testing.T) {
	a := &Node{o: Options{NodeID: "a"}}
	c := &Node{o: Options{NodeID: "b"}}
	rx := &Node{o: Options{NodeID: "c"}, rxHeld: map[string]uint64{}}
	msg := func(from *Node, payload string) []byte {
		return from.encode(nil, kindLive, &broker.PeerMessage{Topic: []byte("t"), Payload: []byte(payload), QoS: 1})
	}
	held := func(from *Node, seq uint64, payload string) []byte {
		return append(from.appendCtl(nil, kindHeld, seq), msg(from, payload)...)
	}
	var got []string
	feed := func(b []byte) {
		inner, ok := rx.onHeldControl(b)
		if !ok {
			t.Fatalf("%q: not taken as a held message", b)
		}
		if inner == nil {
			return
		}
		var p codec.Publish
		if _, err := decodeAny(inner, &p); err != nil {
			t.Fatalf("inner message: %v", err)
		}
		got = append(got, string(p.Payload))
	}
	// A's release, lost after its second message, then sent again whole;
	// B's, with lower sequences of its own, in between.
	feed(held(a, 100, "a0"))
	feed(held(a, 101, "a1"))
	feed(held(c, 7, "b0"))
	for i, s := range []string{"a0", "a1", "a2", "a3"} {
		feed(held(a, 100+uint64(i), s))
	}
	feed(held(c, 7, "b0"))
	feed(held(c, 8, "b1"))
	want := []string{"a0", "a1", "b0", "a2", "a3", "b1"}
	if len(got) != len(want) {
		t.Fatalf("handed on %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("handed on %q, want %q", got, want)
		}
	}
	// A live message is not a control message; a truncated one is
	// counted as malformed and dropped.
	if _, ok := rx.onHeldControl(msg(a, "live")); ok {
		t.Fatal("a live message taken as a control message")
	}
	bad := a.appendCtl(nil, kindHeldAck, 1)
	if inner, ok := rx.onHeldControl(bad[:len(bad)-1]); !ok || inner != nil || rx.badIn.Load() != 1 {
		t.Fatalf("truncated acknowledgement: handled %v, inner %q, malformed %d", ok, inner, rx.badIn.Load())
	}
	if kind, seq, node, rest, ok := parseCtl(a.appendCtl(nil, kindHeldAsk, 42)); !ok || kind != kindHeldAsk || seq != 42 || node != "a" || len(rest) != 0 {
		t.Fatalf("parseCtl: %d %d %q %q %v", kind, seq, node, rest, ok)
	}
}
