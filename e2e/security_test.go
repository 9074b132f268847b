package e2e

import (
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// Regression tests for what an attacker's probe broke (issue 21). Each
// names the finding it pins down.

// bigPublish returns a PUBLISH to topic at QoS 0 whose remaining length is
// exactly remaining, for version v.
func bigPublish(topic string, remaining int, v codec.Version) []byte {
	p := codec.Publish{Topic: []byte(topic)}
	empty := p.Len(v) - 2 // remaining length without a payload (1-byte length)
	p.Payload = make([]byte, remaining-empty)
	return p.Append(nil, v)
}

// 21.1: with --max-packet-size at the protocol's maximum, a PUBLISH at the
// largest remaining length grows past what a v5 header can express when it
// is forwarded (a properties length byte for a 3.1.1 publisher; three
// subscription identifiers for a v5 one). It used to panic the process in
// the header encoder; now it is dropped as if sent and counted, and the
// subscriber keeps its connection. [MQTT-3.1.2-24/-25]
func TestSecurity_OversizeForwardDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("sends two 256 MiB packets")
	}
	tb := start(t, broker.Options{Loops: 1, MaxPacketSize: codec.MaxPacketSize})
	sub := dialRaw(t, tb.Addr, codec.V5)
	if a := sub.connect(&codec.Connect{ClientID: []byte("big-sub"), CleanStart: true, KeepAlive: 60}); a.Code != 0 {
		t.Fatalf("CONNACK %#x", a.Code)
	}
	for i, f := range []string{"big/t", "big/+", "big/#"} {
		s := codec.Subscribe{PacketID: uint16(i + 1), Subs: []codec.Subscription{{Filter: []byte(f)}}}
		s.Props.SubscriptionIDs = []uint32{uint32(i + 1)}
		sub.send(s.Append(nil, codec.V5))
		if h, _ := sub.read(5 * time.Second); h.Type != codec.SUBACK {
			t.Fatalf("want SUBACK, got type %d", h.Type)
		}
	}
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		pub := dialRaw(t, tb.Addr, v)
		if a := pub.connect(&codec.Connect{ClientID: []byte("big-pub"), CleanStart: true, KeepAlive: 60}); a.Code != 0 {
			t.Fatalf("CONNACK %#x", a.Code)
		}
		pub.send(bigPublish("big/t", codec.MaxVarint, v))
		small := codec.Publish{Topic: []byte("big/t"), Payload: []byte("small")}
		pub.send(small.Append(nil, v))
		h, body := sub.read(60 * time.Second)
		if h.Type != codec.PUBLISH {
			t.Fatalf("publisher %v: want the small PUBLISH, got type %d", v, h.Type)
		}
		var got codec.Publish
		if err := got.Decode(h, body, codec.V5); err != nil || string(got.Payload) != "small" {
			t.Fatalf("publisher %v: got %q (%v), want the small message: the large one must be dropped", v, got.Payload, err)
		}
		pub.c.Close()
	}
	v5Wait(t, "two messages counted as dropped too_large", func() bool { return tb.B.Stats().Dropped["too_large"] == 2 })
}
