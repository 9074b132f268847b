package broker

import (
	"testing"

	"github.com/mcutie/mcutie/codec"
)

// TestPublishHotPathAllocs fails if decode → route → encode → write of a
// QoS 0 PUBLISH to a local subscriber allocates in steady state.
func TestPublishHotPathAllocs(t *testing.T) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		b := newTestBroker(t, 1)
		sub, _ := connectClient(t, b, "sub", v, false)
		subscribe(t, sub, v, "sensors/+/temp", 0)
		pub, _ := connectClient(t, b, "pub", v, false)
		p := codec.Publish{Topic: []byte("sensors/42/temp"), Payload: make([]byte, 64)}
		raw := p.Append(nil, v)
		for i := 0; i < 100; i++ { // warm the pools
			pub.Feed(raw)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if n, res := pub.Feed(raw); n != len(raw) || res != FeedContinue {
				t.Fatalf("feed: %d %d", n, res)
			}
		})
		if allocs != 0 {
			t.Fatalf("v%d: PUBLISH decode→route→encode allocates %.1f times per message, want 0", v, allocs)
		}
	}
}

func TestPublishDeliversToLocalSubscriber(t *testing.T) {
	b := newTestBroker(t, 1)
	sub, fc := connectClient(t, b, "sub", codec.V311, true)
	subscribe(t, sub, codec.V311, "a/#", 1)
	fc.out = fc.out[:0]
	pub, _ := connectClient(t, b, "pub", codec.V311, true)
	p := codec.Publish{Topic: []byte("a/b"), Payload: []byte("hi"), QoS: 1, PacketID: 9}
	pub.Feed(p.Append(nil, codec.V311))
	h, err := codec.Frame(fc.out, 0)
	if err != nil {
		t.Fatalf("subscriber got %x: %v", fc.out, err)
	}
	var got codec.Publish
	if err := got.Decode(h, fc.out[h.HeaderLen:h.Len()], codec.V311); err != nil {
		t.Fatal(err)
	}
	if string(got.Topic) != "a/b" || string(got.Payload) != "hi" || got.QoS != 1 || got.PacketID == 0 {
		t.Fatalf("got %+v", got)
	}
}
