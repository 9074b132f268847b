package codec

import (
	"bytes"
	"testing"
)

func TestPublishRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 70000) // 3-byte remaining length
	for _, v := range allVersions {
		cases := []*Publish{
			{Topic: b("a"), Payload: b("x")},
			{Topic: b("a/b/c"), Payload: nil},
			{Retain: true, Topic: b("$SYS/x"), Payload: b("r")},
			{QoS: 1, PacketID: 1, Topic: b("é/ü"), Payload: big},
			{QoS: 2, PacketID: 0xffff, Dup: true, Retain: true, Topic: b(" "), Payload: []byte{0}},
		}
		if v == V5 {
			cases = append(cases,
				&Publish{Topic: b(""), Props: Properties{Present: present(PropTopicAlias), TopicAlias: 0xffff}},
				&Publish{QoS: 1, PacketID: 3, Topic: b("t"), Payload: b("{\"a\":1}"),
					Props: Properties{Present: present(PropPayloadFormat, PropResponseTopic, PropCorrelationData),
						PayloadFormat: 1, ResponseTopic: b("reply/to"), CorrelationData: []byte{1, 2}, User: users("a", "1", "a", "2")}})
		}
		for i, p := range cases {
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, v) })
		}
	}
}

// TestPublishPayloadFormatDecoded checks that PayloadFormatInvalid comes with
// the PUBLISH fully decoded, so the broker can answer with a PUBACK 0x99.
func TestPublishPayloadFormatDecoded(t *testing.T) {
	in := pkt(0x32, 0, 1, "t", 0, 9, 2, 0x01, 1, 0xff)
	var p Publish
	h, _ := Frame(in, 0)
	checkErr(t, p.Decode(h, h.Body(in), V5), PayloadFormatInvalid, "")
	if p.PacketID != 9 || p.QoS != 1 || string(p.Topic) != "t" || !bytes.Equal(p.Payload, []byte{0xff}) {
		t.Fatalf("got %+v", p)
	}
	// PayloadFormat 0 does not check; 3.x has no properties.
	if err := p.Decode(h, h.Body(pkt(0x30, 0, 1, "t", 2, 0x01, 0, 0xff)), V5); err != nil {
		h, _ = Frame(pkt(0x30, 0, 1, "t", 2, 0x01, 0, 0xff), 0)
		if err := p.Decode(h, h.Body(pkt(0x30, 0, 1, "t", 2, 0x01, 0, 0xff)), V5); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPublishFieldsAreClipped checks that the decoded topic cannot be
// appended to over the bytes that follow it in the input.
func TestPublishFieldsAreClipped(t *testing.T) {
	in := raw(0x30, 7, 0, 3, "a/b", "hi")
	var p Publish
	h, _ := Frame(in, 0)
	if err := p.Decode(h, h.Body(in), V311); err != nil {
		t.Fatal(err)
	}
	_ = append(p.Topic, 'X')
	if !bytes.Equal(in, raw(0x30, 7, 0, 3, "a/b", "hi")) {
		t.Fatalf("append to Topic overwrote the input: % x", in)
	}
}

func TestAppendPublishHeader(t *testing.T) {
	for _, v := range allVersions {
		p := &Publish{QoS: 1, PacketID: 5, Topic: b("t/1"), Payload: bytes.Repeat([]byte("p"), 300)}
		if v == V5 {
			p.Props = fullProps(propsPublish, 1, 2)
		}
		hdr := AppendPublishHeader([]byte("prefix"), p, v)
		full := p.Append([]byte("prefix"), v)
		if !bytes.Equal(append(hdr, p.Payload...), full) {
			t.Fatalf("%s: header + payload differs from Append", versionName(v))
		}
		if p.Len(v) != len(full)-len("prefix") {
			t.Fatalf("%s: Len = %d; encoded %d", versionName(v), p.Len(v), len(full)-len("prefix"))
		}
		// The header frames a packet that includes the payload.
		h, err := Frame(full[len("prefix"):], 0)
		if err != nil || h.Len() != p.Len(v) {
			t.Fatalf("%s: Frame = %+v, %v", versionName(v), h, err)
		}
	}
}

// allocPublishV5 is a v5 PUBLISH with properties, user properties and
// subscription identifiers, for the allocation tests and benchmarks.
var allocPublishV5 = &Publish{QoS: 1, PacketID: 77, Topic: b("sensors/room1/temperature"), Payload: bytes.Repeat([]byte("x"), 64),
	Props: Properties{Present: present(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData, PropTopicAlias),
		PayloadFormat: 1, MessageExpiry: 60, ContentType: b("text/plain"), ResponseTopic: b("reply/room1"),
		CorrelationData: b("corr-1"), TopicAlias: 4, SubscriptionIDs: []uint32{1, 300},
		User: users("trace", "abc", "origin", "gw-1", "k", "v")}}

var allocPublishV311 = &Publish{QoS: 1, PacketID: 77, Topic: b("sensors/room1/temperature"), Payload: bytes.Repeat([]byte("x"), 64)}

// TestPublishDecodeNoAlloc fails if decoding a PUBLISH into a reused value
// allocates.
func TestPublishDecodeNoAlloc(t *testing.T) {
	for _, c := range []struct {
		v   Version
		pub *Publish
	}{{V311, allocPublishV311}, {V5, allocPublishV5}} {
		in := c.pub.Append(nil, c.v)
		var p Publish
		allocs := testing.AllocsPerRun(100, func() {
			h, err := Frame(in, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Decode(h, h.Body(in), c.v); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: PUBLISH decode allocates %.1f times", versionName(c.v), allocs)
		}
		if !samePacket(c.pub, &p) {
			t.Fatalf("%s: decoded %+v", versionName(c.v), p)
		}
	}
}

// TestPublishEncodeNoAlloc fails if AppendPublishHeader or Len allocate
// when dst has room.
func TestPublishEncodeNoAlloc(t *testing.T) {
	for _, c := range []struct {
		v   Version
		pub *Publish
	}{{V311, allocPublishV311}, {V5, allocPublishV5}} {
		dst := make([]byte, 0, 512)
		allocs := testing.AllocsPerRun(100, func() {
			dst = AppendPublishHeader(dst[:0], c.pub, c.v)
			_ = c.pub.Len(c.v)
		})
		if allocs != 0 {
			t.Fatalf("%s: AppendPublishHeader allocates %.1f times", versionName(c.v), allocs)
		}
	}
}

// TestDecodeErrorsNoAlloc checks that the common failures use shared errors.
func TestDecodeErrorsNoAlloc(t *testing.T) {
	in := pkt(0x30, 0, 3, "a/+", 0)
	tooBig := raw(0x30, 0xff, 0xff, 0xff, 0x7f)
	var p Publish
	allocs := testing.AllocsPerRun(100, func() {
		h, _ := Frame(in, 0)
		_ = p.Decode(h, h.Body(in), V5)
		_, _ = Frame(tooBig, 100)
	})
	if allocs != 0 {
		t.Fatalf("error path allocates %.1f times", allocs)
	}
}
