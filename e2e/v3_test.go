package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// MQTT 3.1 ("MQIsdp", level 3) and 3.1.1 ("MQTT", level 4) behaviour over
// real sockets. Spec IDs are the MQTT 3.1.1 (OASIS, 29 Oct 2014) numbers;
// where the brief or the v5 suite uses the MQTT 5 number for the same rule,
// the comment names it too.

// TestV3_ConnectAccepted: a 3.1 and a 3.1.1 CONNECT are accepted (code 0,
// Session Present 0 with clean session 1), by raw packets and by paho, and
// the connection then carries traffic.
func TestV3_ConnectAccepted(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	for _, v := range []codec.Version{codec.V31, codec.V311} {
		r, ack := v3Raw(t, tb.Addr, v, fmt.Sprintf("raw-%d", v), true, nil)
		if ack.SessionPresent {
			t.Fatalf("level %d: Session Present 1 on a clean session", v)
		}
		if codes := r.v3Subscribe(1, "self/t", 1); len(codes) != 1 || codes[0] != 1 {
			t.Fatalf("level %d: SUBACK %v, want [1]", v, codes)
		}
		r.v3Publish("self/t", 1, 2, false, false, "hello")
		// PUBACK for our publish and the delivery to ourselves, in either order.
		var sawAck, sawPub bool
		for !sawAck || !sawPub {
			h, body := r.read(v3Wait)
			switch h.Type {
			case codec.PUBACK:
				sawAck = true
			case codec.PUBLISH:
				var p codec.Publish
				if err := p.Decode(h, body, v); err != nil || string(p.Payload) != "hello" || p.QoS != 1 {
					t.Fatalf("level %d: bad delivery %+v (%v)", v, p, err)
				}
				r.v3Ack(codec.PUBACK, p.PacketID)
				sawPub = true
			default:
				t.Fatalf("level %d: unexpected packet type %d", v, h.Type)
			}
		}
	}
	for _, pv := range []uint{3, 4} {
		sink := newV3Sink()
		c, sp := v3Paho(t, tb.Addr, fmt.Sprintf("paho-%d", pv), true, sink, func(o *mqtt.ClientOptions) { o.SetProtocolVersion(pv) })
		if sp {
			t.Fatalf("paho level %d: Session Present 1 on a clean session", pv)
		}
		v3Sub(t, c, "paho/t", 2)
		v3Pub(t, c, "paho/t", 2, false, "x")
		if got := sink.waitN(t, 1); got[0].Payload != "x" || got[0].QoS != 2 {
			t.Fatalf("paho level %d: got %+v", pv, got)
		}
	}
}

// TestSpec_MQTT_3_1_2_2_UnsupportedLevel: an unknown protocol level is
// answered with CONNACK 0x01 and the connection is closed.
func TestSpec_MQTT_3_1_2_2_UnsupportedLevel(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	f := func(name string, level byte) {
		t.Helper()
		r := dialRaw(t, tb.Addr, codec.V311)
		b := (&codec.Connect{ProtocolName: []byte(name), Version: codec.Version(level), CleanStart: true, ClientID: []byte("lvl")}).Append(nil)
		r.send(b)
		h, body := r.read(v3Wait)
		if h.Type != codec.CONNACK || !bytes.Equal(body, []byte{0x00, 0x01}) {
			t.Fatalf("%s level %d: got type %d body % x, want CONNACK 00 01", name, level, h.Type, body)
		}
		r.v3Closed()
	}
	f("MQTT", 6)
	f("MQTT", 2)
	f("MQIsdp", 4) // 3.1's name with 3.1.1's level
}

// TestSpec_MQTT_3_1_3_8_EmptyClientIDNeedsCleanSession: 3.1.1 with an empty
// client id and clean session 0 gets CONNACK 0x02 (identifier rejected,
// MQTT-3.1.3-9) and a close; with clean session 1 the server assigns an id
// and accepts (MQTT-3.1.3-6/-7). 3.1 requires an id, so empty gets 0x02.
func TestSpec_MQTT_3_1_3_8_EmptyClientIDNeedsCleanSession(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	refused := func(v codec.Version, clean bool) {
		t.Helper()
		r := dialRaw(t, tb.Addr, v)
		ack := r.connect(&codec.Connect{CleanStart: clean})
		if ack.Code != codec.ConnRefusedIdentifierRejected || ack.SessionPresent {
			t.Fatalf("level %d clean %v: CONNACK code 0x%02x present %v, want 0x02, 0", v, clean, ack.Code, ack.SessionPresent)
		}
		r.v3Closed()
	}
	refused(codec.V311, false)
	refused(codec.V31, true)
	refused(codec.V31, false)

	// Two anonymous clean sessions are distinct clients: neither takes
	// the other over, and both work.
	r1, _ := v3Raw(t, tb.Addr, codec.V311, "", true, nil)
	r2, _ := v3Raw(t, tb.Addr, codec.V311, "", true, nil)
	r1.v3Subscribe(1, "anon", 0)
	r2.v3Publish("anon", 0, 0, false, false, "hi")
	if p := r1.v3ExpectPublish(); string(p.Payload) != "hi" {
		t.Fatalf("got %q", p.Payload)
	}
	r2.v3Ping()

	c, _ := v3Paho(t, tb.Addr, "", true, nil, nil)
	if !c.IsConnected() {
		t.Fatal("paho with empty client id not connected")
	}
}

// TestSpec_MQTT_3_1_0_1_FirstPacketMustBeConnect: any other first packet
// closes the connection without an answer.
func TestSpec_MQTT_3_1_0_1_FirstPacketMustBeConnect(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	f := func(what string, b []byte) {
		t.Helper()
		r := dialRaw(t, tb.Addr, codec.V311)
		r.send(b)
		if got := r.expectClosed(v3Wait); len(got) != 0 {
			t.Fatalf("%s first: got %d packets before the close", what, len(got))
		}
	}
	f("PINGREQ", codec.AppendPingreq(nil))
	f("SUBSCRIBE", (&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("a")}}}).Append(nil, codec.V311))
	f("PUBLISH", (&codec.Publish{Topic: []byte("a"), Payload: []byte("x")}).Append(nil, codec.V311))
}

// TestSpec_MQTT_3_1_0_2_SecondConnectCloses: a second CONNECT on a
// connection is a protocol violation: the connection is closed (3.x has no
// DISCONNECT from the server).
func TestSpec_MQTT_3_1_0_2_SecondConnectCloses(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	for _, v := range []codec.Version{codec.V31, codec.V311} {
		r, _ := v3Raw(t, tb.Addr, v, fmt.Sprintf("twice-%d", v), true, nil)
		r.send((&codec.Connect{Version: v, ClientID: []byte("twice"), CleanStart: true}).Append(nil))
		r.v3Closed()
	}
}

// TestSpec_MQTT_3_1_2_3_ReservedConnectFlag: the CONNECT flags' reserved
// bit must be 0, otherwise the server disconnects (no CONNACK: 3.1.1 has no
// return code for a malformed CONNECT).
func TestSpec_MQTT_3_1_2_3_ReservedConnectFlag(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r := dialRaw(t, tb.Addr, codec.V311)
	b := (&codec.Connect{Version: codec.V311, ClientID: []byte("rsv"), CleanStart: true}).Append(nil)
	// fixed header (2) + "MQTT" string (6) + level (1) → flags at 9.
	if b[9] != 0x02 {
		t.Fatalf("flags byte is 0x%02x, test offsets are wrong", b[9])
	}
	b[9] |= 0x01
	r.send(b)
	r.v3Closed()
}

// TestSpec_V3_MalformedPacketsClose: after a successful CONNECT, malformed
// packets and protocol violations close the connection with nothing sent
// first (3.1.1 §4.8; 3.x has no server DISCONNECT), for 3.1 and 3.1.1.
func TestSpec_V3_MalformedPacketsClose(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub := func(opts byte, filters ...string) []byte {
		b := []byte{0x00, 0x01}
		for _, f := range filters {
			b = append(b, byte(len(f)>>8), byte(len(f)))
			b = append(b, f...)
			b = append(b, opts)
		}
		return append([]byte{0x82, byte(len(b))}, b...)
	}
	pub := func(first byte, topic string, pid bool) []byte {
		b := []byte{byte(len(topic) >> 8), byte(len(topic))}
		b = append(b, topic...)
		if pid {
			b = append(b, 0x00, 0x00) // packet id 0
		}
		b = append(b, 'x')
		return append([]byte{first, byte(len(b))}, b...)
	}
	cases := []struct {
		name, spec string
		b          []byte
	}{
		{"SUBSCRIBE with flags 0000", "MQTT-3.8.1-1", append([]byte{0x80}, sub(1, "a")[1:]...)},
		{"SUBSCRIBE without a filter", "MQTT-3.8.3-3", sub(0)},
		{"SUBSCRIBE requesting QoS 3", "MQTT-3.8.3-4", sub(3, "a")},
		{"SUBSCRIBE with reserved option bits", "MQTT-3.8.3-4", sub(0x04, "a")},
		{"SUBSCRIBE filter not UTF-8", "MQTT-1.5.3-1", sub(0, "a\xff")},
		{"UNSUBSCRIBE with flags 0000", "MQTT-3.10.1-1", []byte{0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}},
		{"UNSUBSCRIBE without a filter", "MQTT-3.10.3-2", []byte{0xA2, 0x02, 0x00, 0x01}},
		{"PUBREL with flags 0000", "MQTT-3.6.1-1", []byte{0x60, 0x02, 0x00, 0x01}},
		{"PUBLISH QoS 3", "MQTT-3.3.1-4", pub(0x36, "a", false)},
		{"PUBLISH QoS 0 with DUP", "MQTT-3.3.1-2", pub(0x38, "a", false)},
		{"PUBLISH QoS 1 with packet id 0", "MQTT-2.3.1-1", pub(0x32, "a", true)},
		{"PUBLISH topic not UTF-8", "MQTT-1.5.3-1", pub(0x30, "a\xc3", false)},
		{"PUBLISH topic with U+0000", "MQTT-1.5.3-2", pub(0x30, "a\x00b", false)},
		{"PUBLISH empty topic", "MQTT-4.7.3-1", pub(0x30, "", false)},
		{"PINGREQ with flags", "MQTT-2.2.2-2", []byte{0xC1, 0x00}},
		{"PINGREQ with a body", "", []byte{0xC0, 0x01, 0x00}},
		{"packet type 0", "", []byte{0x00, 0x00}},
		{"packet type 15", "", []byte{0xF0, 0x00}},
		{"CONNACK from a client", "", []byte{0x20, 0x02, 0x00, 0x00}},
		{"SUBACK from a client", "", []byte{0x90, 0x03, 0x00, 0x01, 0x00}},
		{"PINGRESP from a client", "", []byte{0xD0, 0x00}},
		{"remaining length over 4 bytes", "", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for i, k := range cases {
		for _, v := range []codec.Version{codec.V31, codec.V311} {
			r, _ := v3Raw(t, tb.Addr, v, fmt.Sprintf("mal-%d-%d", i, v), true, nil)
			r.send(k.b)
			if got := r.expectClosed(v3Wait); len(got) != 0 {
				t.Errorf("level %d, %s [%s]: got %d packets (first type %d) before the close, want none", v, k.name, k.spec, len(got), got[0].Type)
			}
		}
	}
}

// TestSpec_MQTT_3_2_2_SessionPresent: clean session 1 gives Session
// Present 0 (MQTT-3.2.2-1); clean session 0 gives 1 when the server holds a
// session (MQTT-3.2.2-2) and 0 when it does not (MQTT-3.2.2-3); clean
// session 1 discards the stored session (MQTT-3.1.2-6).
func TestSpec_MQTT_3_2_2_SessionPresent(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sp := func(clean bool) bool {
		t.Helper()
		c, present := v3Paho(t, tb.Addr, "sp", clean, nil, nil)
		c.Disconnect(100)
		return present
	}
	if sp(true) {
		t.Fatal("MQTT-3.2.2-1: clean session 1 gave Session Present 1")
	}
	if sp(false) {
		t.Fatal("MQTT-3.2.2-3: no stored session but Session Present 1")
	}
	// The previous connection may still be closing: a takeover resumes
	// the session as well, so no wait is needed.
	if !sp(false) {
		t.Fatal("MQTT-3.2.2-2: stored session but Session Present 0")
	}
	if sp(true) {
		t.Fatal("MQTT-3.2.2-1: clean session 1 gave Session Present 1")
	}
	if sp(false) {
		t.Fatal("MQTT-3.1.2-6: clean session 1 did not discard the session")
	}
}

// TestSpec_MQTT_3_1_4_2_SessionTakeover: a second connection with the same
// client id closes the first; the new one has the session and works.
func TestSpec_MQTT_3_1_4_2_SessionTakeover(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	for _, v := range []codec.Version{codec.V31, codec.V311} {
		id := fmt.Sprintf("tk-%d", v)
		old, _ := v3Raw(t, tb.Addr, v, id, false, nil)
		old.v3Subscribe(1, "tk/"+id, 1)
		nu, ack := v3Raw(t, tb.Addr, v, id, false, nil)
		if !ack.SessionPresent {
			t.Fatalf("level %d: takeover of a persistent session gave Session Present 0", v)
		}
		old.v3Closed()
		// The subscription belongs to the session, so it survived.
		nu.v3Publish("tk/"+id, 1, 9, false, false, "after")
		got := nu.v3Collect("after")
		if len(got) != 1 || got[0].QoS != 1 {
			t.Fatalf("level %d: got %v", v, v3RawPayloads(got))
		}
	}
	// A paho client is taken over by a raw one.
	lost := make(chan error, 1)
	v3Paho(t, tb.Addr, "tk-paho", true, nil, func(o *mqtt.ClientOptions) {
		o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	})
	v3Raw(t, tb.Addr, codec.V311, "tk-paho", true, nil)
	select {
	case <-lost:
	case <-time.After(v3Wait):
		t.Fatal("paho client not disconnected by the takeover")
	}
}

// TestSpec_MQTT_4_6_0_6_PersistentSessionQueuesInOrder: a clean-session-0
// subscriber that is offline receives the QoS 1 and 2 messages published
// meanwhile on reconnect, in publish order, without subscribing again;
// QoS 0 messages published while it was offline are not kept. (Queued
// messages: MQTT-3.1.2-5; order: MQTT-4.6.0-6.)
func TestSpec_MQTT_4_6_0_6_PersistentSessionQueuesInOrder(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	pub, _ := v3Paho(t, tb.Addr, "ps-pub", true, nil, nil)
	sub, _ := v3Paho(t, tb.Addr, "ps-sub", false, nil, nil)
	v3Sub(t, sub, "ps/#", 2)
	sub.Disconnect(100)
	v3WaitFor(t, "the subscriber to go offline", func() bool { return tb.B.Stats().Clients == 1 })

	var want []string
	for i := 0; i < 10; i++ {
		qos := byte(1 + i%2)
		p := fmt.Sprintf("q%d-%d", qos, i)
		v3Pub(t, pub, "ps/t", qos, false, p)
		want = append(want, p)
		v3Pub(t, pub, "ps/t", 0, false, fmt.Sprintf("q0-%d", i))
	}
	// A QoS 0 publish completes for paho once written: wait until the
	// broker holds every QoS 1/2 message, the last one sent after the last
	// QoS 0 one, so no QoS 0 message can still be on its way.
	v3Pub(t, pub, "ps/t", 1, false, "last")
	want = append(want, "last")
	v3WaitFor(t, "11 queued messages", func() bool { return tb.B.Stats().Queued == 11 })

	sink := newV3Sink()
	_, present := v3Paho(t, tb.Addr, "ps-sub", false, sink, nil)
	if !present {
		t.Fatal("Session Present 0 on resume")
	}
	v3Pub(t, pub, "ps/t", 1, false, "live")
	want = append(want, "live")
	got := sink.waitPayload(t, "live")
	if err := v3Equal(got, want...); err != nil {
		t.Fatal(err)
	}
	for i, m := range got[:len(got)-2] {
		if wantQ := byte(1 + i%2); m.QoS != wantQ {
			t.Fatalf("message %d delivered at QoS %d, want %d", i, m.QoS, wantQ)
		}
	}
}

// TestSpec_MQTT_4_4_0_1_ResendUnackedQoS1: on resume the server resends
// unacknowledged QoS 1 PUBLISHes with their original packet ids and DUP=1
// (MQTT-3.3.1-1), in the original order (MQTT-4.6.0-1); once acknowledged
// they are not sent again.
func TestSpec_MQTT_4_4_0_1_ResendUnackedQoS1(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	pub, _ := v3Paho(t, tb.Addr, "rs1-pub", true, nil, nil)
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "rs1-sub", false, nil)
	sub.v3Subscribe(1, "rs1/t", 1)
	v3Pub(t, pub, "rs1/t", 1, false, "a")
	v3Pub(t, pub, "rs1/t", 1, false, "b")
	first := []*codec.Publish{sub.v3ExpectPublish(), sub.v3ExpectPublish()}
	for i, p := range first {
		if p.Dup || p.QoS != 1 || string(p.Payload) != []string{"a", "b"}[i] {
			t.Fatalf("first delivery %d: %+v", i, p)
		}
	}
	if first[0].PacketID == first[1].PacketID {
		t.Fatalf("two inflight messages share packet id %d", first[0].PacketID)
	}
	sub.c.Close() // no PUBACK, no DISCONNECT

	sub2, ack := v3Raw(t, tb.Addr, codec.V311, "rs1-sub", false, nil)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 on resume")
	}
	for i, want := range first {
		p := sub2.v3ExpectPublish()
		if !p.Dup || p.PacketID != want.PacketID || string(p.Payload) != string(want.Payload) || p.QoS != 1 {
			t.Fatalf("resend %d: got dup=%v id=%d %q qos %d, want dup=1 id=%d %q qos 1", i, p.Dup, p.PacketID, p.Payload, p.QoS, want.PacketID, want.Payload)
		}
		sub2.v3Ack(codec.PUBACK, p.PacketID)
	}
	sub2.v3Ping()
	sub2.send((&codec.Disconnect{}).Append(nil, codec.V311))
	sub2.v3Closed()

	sub3, _ := v3Raw(t, tb.Addr, codec.V311, "rs1-sub", false, nil)
	sub3.v3Ping() // acknowledged messages are not resent
}

// TestSpec_MQTT_4_4_0_1_ResendUnackedQoS2: on resume the server resends
// PUBREL for a QoS 2 message the client had PUBREC'd, and the PUBLISH (DUP,
// same id) for one it had not, in the original order; the flows then
// complete.
func TestSpec_MQTT_4_4_0_1_ResendUnackedQoS2(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	pub, _ := v3Paho(t, tb.Addr, "rs2-pub", true, nil, nil)
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "rs2-sub", false, nil)
	sub.v3Subscribe(1, "rs2/t", 2)
	v3Pub(t, pub, "rs2/t", 2, false, "a")
	p1 := sub.v3ExpectPublish()
	sub.v3Ack(codec.PUBREC, p1.PacketID)
	sub.v3ExpectAck(codec.PUBREL, p1.PacketID)
	v3Pub(t, pub, "rs2/t", 2, false, "b")
	p2 := sub.v3ExpectPublish()
	if p1.QoS != 2 || p2.QoS != 2 || p1.Dup || p2.Dup {
		t.Fatalf("first deliveries: %+v %+v", p1, p2)
	}
	sub.c.Close() // PUBREL of p1 and PUBLISH p2 unanswered

	sub2, ack := v3Raw(t, tb.Addr, codec.V311, "rs2-sub", false, nil)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 on resume")
	}
	sub2.v3ExpectAck(codec.PUBREL, p1.PacketID)
	p := sub2.v3ExpectPublish()
	if !p.Dup || p.PacketID != p2.PacketID || string(p.Payload) != "b" || p.QoS != 2 {
		t.Fatalf("resent PUBLISH: dup=%v id=%d %q qos %d, want dup=1 id=%d \"b\" qos 2", p.Dup, p.PacketID, p.Payload, p.QoS, p2.PacketID)
	}
	sub2.v3Ack(codec.PUBCOMP, p1.PacketID)
	sub2.v3Ack(codec.PUBREC, p2.PacketID)
	sub2.v3ExpectAck(codec.PUBREL, p2.PacketID)
	sub2.v3Ack(codec.PUBCOMP, p2.PacketID)
	sub2.v3Ping()
	sub2.send((&codec.Disconnect{}).Append(nil, codec.V311))
	sub2.v3Closed()

	sub3, _ := v3Raw(t, tb.Addr, codec.V311, "rs2-sub", false, nil)
	sub3.v3Ping() // completed flows are not resent
}

// TestSpec_MQTT_4_4_0_1_ResendAfterTakeover: when a new connection takes a
// persistent session over from a live one (MQTT-3.1.4-2), the messages the
// old connection left unacknowledged are resent on the new one with DUP=1
// and their original packet ids.
func TestSpec_MQTT_4_4_0_1_ResendAfterTakeover(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	pub, _ := v3Paho(t, tb.Addr, "rt-pub", true, nil, nil)
	old, _ := v3Raw(t, tb.Addr, codec.V311, "rt-sub", false, nil)
	old.v3Subscribe(1, "rto/t", 2)
	v3Pub(t, pub, "rto/t", 1, false, "q1")
	v3Pub(t, pub, "rto/t", 2, false, "q2")
	p1, p2 := old.v3ExpectPublish(), old.v3ExpectPublish()

	nu, ack := v3Raw(t, tb.Addr, codec.V311, "rt-sub", false, nil)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 on takeover")
	}
	old.v3Closed()
	for _, want := range []*codec.Publish{p1, p2} {
		p := nu.v3ExpectPublish()
		if !p.Dup || p.PacketID != want.PacketID || string(p.Payload) != string(want.Payload) || p.QoS != want.QoS {
			t.Fatalf("resent: dup=%v id=%d %q qos %d, want dup=1 id=%d %q qos %d", p.Dup, p.PacketID, p.Payload, p.QoS, want.PacketID, want.Payload, want.QoS)
		}
	}
	nu.v3Ack(codec.PUBACK, p1.PacketID)
	nu.v3Ack(codec.PUBREC, p2.PacketID)
	nu.v3ExpectAck(codec.PUBREL, p2.PacketID)
	nu.v3Ack(codec.PUBCOMP, p2.PacketID)
	nu.v3Ping()
}

// TestV3_QoS1And2BothDirections: paho publishes and receives at QoS 1 and 2
// (3.1.1) and a raw 3.1 client does the same; the delivered QoS is the
// published one when the subscription grants it.
func TestV3_QoS1And2BothDirections(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sink := newV3Sink()
	sub, _ := v3Paho(t, tb.Addr, "qb-sub", true, sink, nil)
	v3Sub(t, sub, "qb/#", 2)
	pub, _ := v3Paho(t, tb.Addr, "qb-pub", true, nil, nil)
	raw31, _ := v3Raw(t, tb.Addr, codec.V31, "qb-31", true, nil)
	raw31.v3Subscribe(1, "qb/#", 2)

	for i := 0; i < 6; i++ {
		v3Pub(t, pub, "qb/t", byte(1+i%2), false, fmt.Sprint(i))
	}
	raw31.v3Publish("qb/31", 1, 100, false, false, "31-q1")
	raw31.v3Publish("qb/31", 2, 101, false, false, "31-q2")
	// Two publishers on possibly different loops: no order between them.
	wantQoS := map[string]byte{"0": 1, "1": 2, "2": 1, "3": 2, "4": 1, "5": 2, "31-q1": 1, "31-q2": 2}
	got := sink.waitN(t, len(wantQoS))
	seen := map[string]bool{}
	for _, m := range got {
		if q, ok := wantQoS[m.Payload]; !ok || seen[m.Payload] || m.QoS != q {
			t.Fatalf("paho: message %q at QoS %d (dup %v), want QoS %d once", m.Payload, m.QoS, seen[m.Payload], q)
		}
		seen[m.Payload] = true
	}
	// The 3.1 client received everything too, and its own flows completed:
	// PUBACK 100, PUBREC 101 (→ PUBREL → PUBCOMP) are interleaved with the
	// deliveries.
	pubs := map[string]bool{}
	var sawAck, sawComp bool
	for len(pubs) < len(wantQoS) || !sawAck || !sawComp {
		h, body := raw31.read(v3Wait)
		switch h.Type {
		case codec.PUBLISH:
			var p codec.Publish
			if err := p.Decode(h, body, codec.V31); err != nil {
				t.Fatal(err)
			}
			if q, ok := wantQoS[string(p.Payload)]; !ok || pubs[string(p.Payload)] || p.QoS != q {
				t.Fatalf("3.1 client: message %q at QoS %d, want QoS %d once", p.Payload, p.QoS, q)
			}
			pubs[string(p.Payload)] = true
			if p.QoS == 1 {
				raw31.v3Ack(codec.PUBACK, p.PacketID)
			} else {
				raw31.v3Ack(codec.PUBREC, p.PacketID)
			}
		case codec.PUBREL:
			raw31.v3Ack(codec.PUBCOMP, uint16(body[0])<<8|uint16(body[1]))
		case codec.PUBACK:
			sawAck = true
		case codec.PUBREC:
			raw31.v3Ack(codec.PUBREL, 101)
		case codec.PUBCOMP:
			sawComp = true
		default:
			t.Fatalf("3.1 client: unexpected packet type %d", h.Type)
		}
	}
}

// TestSpec_MQTT_4_3_3_2_QoS2ExactlyOnceOnReceipt: until PUBREL, a resent
// QoS 2 PUBLISH with the same packet id is acknowledged with PUBREC again
// but not delivered again (MQTT 5: MQTT-4.3.3-10); PUBREL gets PUBCOMP
// (MQTT-4.3.3-11 in 5); after it the id starts a new message.
func TestSpec_MQTT_4_3_3_2_QoS2ExactlyOnceOnReceipt(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "eo-sub", true, nil)
	sub.v3Subscribe(1, "eo/t", 2)
	pub, _ := v3Raw(t, tb.Addr, codec.V311, "eo-pub", true, nil)
	pub.v3Publish("eo/t", 2, 7, false, false, "one")
	pub.v3ExpectAck(codec.PUBREC, 7)
	pub.v3Publish("eo/t", 2, 7, false, true, "one")
	pub.v3ExpectAck(codec.PUBREC, 7)
	pub.v3Ack(codec.PUBREL, 7)
	pub.v3ExpectAck(codec.PUBCOMP, 7)
	pub.v3Publish("eo/t", 2, 7, false, false, "two") // a new message
	pub.v3ExpectAck(codec.PUBREC, 7)
	pub.v3Ack(codec.PUBREL, 7)
	pub.v3ExpectAck(codec.PUBCOMP, 7)
	pub.v3Publish("eo/t", 0, 0, false, false, "end")
	got := sub.v3Collect("end")
	if fmt.Sprint(v3RawPayloads(got)) != "[one two end]" {
		t.Fatalf("subscriber got %q, want [one two end]", v3RawPayloads(got))
	}
	// A PUBREL for an id that is not awaiting one still gets PUBCOMP.
	pub.v3Ack(codec.PUBREL, 8)
	pub.v3ExpectAck(codec.PUBCOMP, 8)
}

// TestSpec_MQTT_4_3_3_2_QoS2ExactlyOnceAcrossReconnect: a publisher with a
// persistent session that lost its connection after PUBREC resends the
// PUBLISH (DUP, same id) on the new connection (MQTT-4.4.0-1); the server
// answers PUBREC without delivering it again, because the id awaiting
// PUBREL is session state (MQTT-4.1.0-1), and completes on PUBREL.
func TestSpec_MQTT_4_3_3_2_QoS2ExactlyOnceAcrossReconnect(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "eor-sub", true, nil)
	sub.v3Subscribe(1, "eor/t", 2)
	pub, _ := v3Raw(t, tb.Addr, codec.V311, "eor-pub", false, nil)
	pub.v3Publish("eor/t", 2, 5, false, false, "once")
	pub.v3ExpectAck(codec.PUBREC, 5)
	pub.c.Close()

	pub2, ack := v3Raw(t, tb.Addr, codec.V311, "eor-pub", false, nil)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 on resume")
	}
	pub2.v3Publish("eor/t", 2, 5, false, true, "once")
	pub2.v3ExpectAck(codec.PUBREC, 5)
	pub2.v3Ack(codec.PUBREL, 5)
	pub2.v3ExpectAck(codec.PUBCOMP, 5)
	pub2.v3Publish("eor/t", 0, 0, false, false, "end")
	if got := v3RawPayloads(sub.v3Collect("end")); fmt.Sprint(got) != "[once end]" {
		t.Fatalf("subscriber got %q, want [once end]", got)
	}
}

// TestSpec_MQTT_3_1_2_6_CleanSessionDiscardsState: connecting with clean
// session 1 discards the stored session: its queued messages are not
// delivered and its subscriptions are gone; and the state of a clean
// session is not kept after it ends (Session Present 0 afterwards).
func TestSpec_MQTT_3_1_2_6_CleanSessionDiscardsState(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v3Raw(t, tb.Addr, codec.V311, "cs", false, nil)
	r.v3Subscribe(1, "cs/t", 1)
	r.send((&codec.Disconnect{}).Append(nil, codec.V311))
	r.v3Closed()
	pub, _ := v3Paho(t, tb.Addr, "cs-pub", true, nil, nil)
	v3Pub(t, pub, "cs/t", 1, false, "queued")
	v3WaitFor(t, "the message to be queued", func() bool { return tb.B.Stats().Queued == 1 })

	r2, ack := v3Raw(t, tb.Addr, codec.V311, "cs", true, nil)
	if ack.SessionPresent {
		t.Fatal("clean session 1 gave Session Present 1")
	}
	r2.v3Ping() // the queued message is gone
	v3Pub(t, pub, "cs/t", 1, false, "after")
	r2.v3Publish("cs/t", 1, 3, false, false, "self")
	r2.v3ExpectAck(codec.PUBACK, 3)
	r2.v3Ping() // and so is the subscription
	r2.send((&codec.Disconnect{}).Append(nil, codec.V311))
	r2.v3Closed()

	_, ack = v3Raw(t, tb.Addr, codec.V311, "cs", false, nil)
	if ack.SessionPresent {
		t.Fatal("the clean session's state outlived it: Session Present 1")
	}
}

// TestSpec_MQTT_3_8_4_6_DeliveredQoSIsMinimum: a message is delivered at the
// minimum of its published QoS and the granted QoS (MQTT 5: MQTT-3.8.4-8).
func TestSpec_MQTT_3_8_4_6_DeliveredQoSIsMinimum(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "dg-sub", true, nil)
	if codes := sub.v3Subscribe(1, "dg/0", 0, "dg/1", 1, "dg/2", 2); fmt.Sprint(codes) != fmt.Sprint([]codec.ReasonCode{0, 1, 2}) {
		t.Fatalf("SUBACK %v", codes)
	}
	pub, _ := v3Paho(t, tb.Addr, "dg-pub", true, nil, nil)
	type c struct {
		topic    string
		pub, got byte
	}
	cases := []c{{"dg/1", 2, 1}, {"dg/0", 2, 0}, {"dg/0", 1, 0}, {"dg/2", 1, 1}, {"dg/2", 0, 0}, {"dg/1", 1, 1}, {"dg/2", 2, 2}}
	for i, k := range cases {
		v3Pub(t, pub, k.topic, k.pub, false, fmt.Sprint(i))
	}
	v3Pub(t, pub, "dg/0", 0, false, "end")
	got := sub.v3Collect("end")
	if len(got) != len(cases)+1 {
		t.Fatalf("got %q", v3RawPayloads(got))
	}
	for i, k := range cases {
		if string(got[i].Payload) != fmt.Sprint(i) || got[i].QoS != k.got {
			t.Fatalf("case %d (%s published at %d): got %q at QoS %d, want QoS %d", i, k.topic, k.pub, got[i].Payload, got[i].QoS, k.got)
		}
	}
}

// TestSpec_MQTT_3_3_5_1_OverlappingSubscriptions: one client subscribed to
// a/# at QoS 0 and a/b at QoS 2 receives one copy at QoS 2.
func TestSpec_MQTT_3_3_5_1_OverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "ov-sub", true, nil)
	sub.v3Subscribe(1, "a/#", 0, "a/b", 2)
	pub, _ := v3Paho(t, tb.Addr, "ov-pub", true, nil, nil)
	v3Pub(t, pub, "a/b", 2, false, "x")
	v3Pub(t, pub, "a/c", 2, false, "end")
	got := sub.v3Collect("end")
	if len(got) != 2 || string(got[0].Payload) != "x" || got[0].QoS != 2 || got[1].QoS != 0 {
		t.Fatalf("got %q (QoS %d)", v3RawPayloads(got), got[0].QoS)
	}
}

// TestSpec_MQTT_4_7_Wildcards: '+' matches one level, '#' the parent and
// any number of levels ("sport/#" matches "sport", MQTT-4.7.1-2), and
// neither matches a first level starting with '$' (MQTT-4.7.2-1).
func TestSpec_MQTT_4_7_Wildcards(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	topics := []string{"$foo/bar", "$SYS/x", "sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking", "foo/bar", "/bar", "a/b/c"}
	filters := map[string][]string{
		"sport/tennis/+": {"sport/tennis/player1"},
		"sport/#":        {"sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"},
		"sport/+":        {"sport/tennis"},
		"+/+":            {"sport/tennis", "foo/bar", "/bar"},
		"+/bar":          {"foo/bar", "/bar"},
		"#":              {"sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking", "foo/bar", "/bar", "a/b/c"},
		"+":              {"sport"},
		"$foo/#":         {"$foo/bar"},
		"+/+/#":          {"sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking", "foo/bar", "/bar", "a/b/c"},
	}
	sinks := map[string]*v3Sink{}
	i := 0
	for f := range filters {
		s := newV3Sink()
		c, _ := v3Paho(t, tb.Addr, fmt.Sprintf("wc-%d", i), true, s, nil)
		v3Sub(t, c, f, 1)
		v3Sub(t, c, "end", 1)
		sinks[f] = s
		i++
	}
	pub, _ := v3Paho(t, tb.Addr, "wc-pub", true, nil, nil)
	for _, tp := range topics {
		v3Pub(t, pub, tp, 1, false, tp)
	}
	v3Pub(t, pub, "end", 1, false, "end")
	for f, want := range filters {
		got := sinks[f].waitPayload(t, "end")
		if err := v3Equal(got, append(append([]string(nil), want...), "end")...); err != nil {
			t.Errorf("filter %q: %v", f, err)
		}
	}
}

// TestSpec_MQTT_4_7_1_InvalidFilterSubackFailure: filters with misplaced
// wildcards (MQTT-4.7.1-2/-3) get return code 0x80 in the SUBACK, the
// valid ones in the same SUBSCRIBE are granted, and the connection stays up.
func TestSpec_MQTT_4_7_1_InvalidFilterSubackFailure(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	for _, v := range []codec.Version{codec.V31, codec.V311} {
		r, _ := v3Raw(t, tb.Addr, v, fmt.Sprintf("bad-%d", v), true, nil)
		codes := r.v3Subscribe(3, "a/#/b", 0, "ok/+", 1, "a+", 1, "#/a", 2, "a/b#", 0, "+a/b", 0, "$share/g/x", 1)
		want := []codec.ReasonCode{0x80, 1, 0x80, 0x80, 0x80, 0x80, 1}
		if fmt.Sprint(codes) != fmt.Sprint(want) {
			t.Fatalf("level %d: SUBACK %v, want %v", v, codes, want)
		}
		r.v3Publish("ok/x", 0, 0, false, false, "still-up")
		if p := r.v3ExpectPublish(); string(p.Payload) != "still-up" {
			t.Fatalf("level %d: got %q", v, p.Payload)
		}
	}
}

// TestSpec_MQTT_3_3_2_2_PublishTopicWithWildcardCloses: a PUBLISH topic
// name must not contain wildcards; the server closes the connection.
func TestSpec_MQTT_3_3_2_2_PublishTopicWithWildcardCloses(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	for i, topic := range []string{"a/+", "a/#", "+", "#"} {
		r, _ := v3Raw(t, tb.Addr, codec.V311, fmt.Sprintf("wpub-%d", i), true, nil)
		r.v3Publish(topic, 1, 1, false, false, "x")
		r.v3Closed()
	}
}

// TestSpec_MQTT_3_10_4_UnsubscribeStopsDelivery: after UNSUBACK no new
// message is delivered for the filter (MQTT-3.10.4-2); UNSUBACK is sent
// with the request's packet id (MQTT-3.10.4-4), even when no subscription
// matched (MQTT-3.10.4-5).
func TestSpec_MQTT_3_10_4_UnsubscribeStopsDelivery(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v3Raw(t, tb.Addr, codec.V311, "un", true, nil)
	r.v3Subscribe(1, "u/1", 1, "u/2", 0)
	pub, _ := v3Paho(t, tb.Addr, "un-pub", true, nil, nil)
	v3Pub(t, pub, "u/1", 1, false, "before")
	if got := r.v3Collect("before"); len(got) != 1 {
		t.Fatalf("got %q", v3RawPayloads(got))
	}
	r.v3Unsubscribe(42, "u/1", "never/subscribed")
	r.v3Unsubscribe(43, "nothing/at/all")
	r.v3Unsubscribe(44, "u/+") // exact match only: u/2 stays
	v3Pub(t, pub, "u/1", 1, false, "after")
	v3Pub(t, pub, "u/2", 0, false, "end")
	if got := r.v3Collect("end"); len(got) != 1 {
		t.Fatalf("after UNSUBSCRIBE got %q, want [end]", v3RawPayloads(got))
	}
}

// TestSpec_MQTT_3_3_1_Retained checks retained messages in 3.1.1 numbering:
// stored (MQTT-3.3.1-5), sent to a new subscription (-6) with RETAIN=1 (-8),
// replaced by a newer one, also a QoS 0 one (-7), a delivery to an
// established subscription has RETAIN=0 (-9), a zero-byte retained message
// is delivered normally and removes the stored one (-10) without being
// stored (-11), and a RETAIN=0 PUBLISH leaves the store alone (-12). (MQTT 5
// numbers set/replace/delete as MQTT-3.3.1-5..-7.)
func TestSpec_MQTT_3_3_1_Retained(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	pub, _ := v3Raw(t, tb.Addr, codec.V311, "rt-pub", true, nil)
	pub.v3Publish("r/a", 1, 1, true, false, "v1")
	pub.v3ExpectAck(codec.PUBACK, 1)
	pub.v3Publish("r/a", 0, 0, true, false, "v2") // QoS 0 replaces too (-7)
	pub.v3Ping()                                  // v2 is processed

	s1, _ := v3Raw(t, tb.Addr, codec.V311, "rt-s1", true, nil)
	s1.v3Subscribe(1, "r/#", 1)
	p := s1.v3ExpectPublish()
	if string(p.Payload) != "v2" || !p.Retain || p.QoS != 0 {
		t.Fatalf("on subscribe: %q retain=%v qos %d, want \"v2\" retain=1 qos 0", p.Payload, p.Retain, p.QoS)
	}
	s1.v3Ping() // exactly one retained message

	pub.v3Publish("r/a", 1, 2, true, false, "v3")
	pub.v3ExpectAck(codec.PUBACK, 2)
	pub.v3Publish("r/a", 1, 3, false, false, "plain") // -12: does not replace v3
	pub.v3ExpectAck(codec.PUBACK, 3)
	got := s1.v3Collect("plain")
	if len(got) != 2 || string(got[0].Payload) != "v3" || got[0].Retain || got[1].Retain {
		t.Fatalf("established subscription got %q, retain %v; want [v3 plain] with RETAIN=0", v3RawPayloads(got), got[0].Retain)
	}

	s2, _ := v3Raw(t, tb.Addr, codec.V311, "rt-s2", true, nil)
	s2.v3Subscribe(1, "r/a", 2)
	p = s2.v3ExpectPublish()
	if string(p.Payload) != "v3" || !p.Retain || p.QoS != 1 {
		t.Fatalf("on subscribe: %q retain=%v qos %d, want \"v3\" retain=1 qos 1 (stored QoS)", p.Payload, p.Retain, p.QoS)
	}
	s2.v3Ack(codec.PUBACK, p.PacketID)
	s2.v3Ping()

	pub.v3Publish("r/a", 0, 0, true, false, "") // delete
	pub.v3Publish("r/a", 0, 0, false, false, "end")
	for _, s := range []*rawConn{s1, s2} {
		got := s.v3Collect("end")
		if len(got) != 2 || len(got[0].Payload) != 0 || got[0].Retain {
			t.Fatalf("zero-byte retained message: got %q retain=%v, want it delivered with RETAIN=0", v3RawPayloads(got), got[0].Retain)
		}
	}
	s3, _ := v3Raw(t, tb.Addr, codec.V311, "rt-s3", true, nil)
	s3.v3Subscribe(1, "r/#", 2)
	s3.v3Ping() // nothing retained any more
}

// TestSpec_MQTT_3_1_2_8_WillOnAbnormalClose: the will is published when the
// network connection closes without DISCONNECT, for 3.1 and 3.1.1.
func TestSpec_MQTT_3_1_2_8_WillOnAbnormalClose(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sink := newV3Sink()
	sub, _ := v3Paho(t, tb.Addr, "wl-sub", true, sink, nil)
	v3Sub(t, sub, "will/#", 2)
	for _, v := range []codec.Version{codec.V31, codec.V311} {
		topic := fmt.Sprintf("will/%d", v)
		r, _ := v3Raw(t, tb.Addr, v, fmt.Sprintf("wl-%d", v), true, func(p *codec.Connect) {
			p.WillFlag, p.WillTopic, p.WillPayload, p.WillQoS = true, []byte(topic), []byte("gone"), 1
		})
		r.c.Close()
		got := sink.waitPayload(t, "gone")
		if m := got[len(got)-1]; m.Topic != topic || m.QoS != 1 || m.Retained {
			t.Fatalf("will: %+v", m)
		}
		sink.mu.Lock()
		sink.msgs = nil
		sink.mu.Unlock()
	}
}

// TestSpec_MQTT_3_1_2_24_KeepAliveTimeout: a client silent for 1.5 × its
// Keep Alive is disconnected (MQTT 5: MQTT-3.1.2-22) and its will is
// published.
func TestSpec_MQTT_3_1_2_24_KeepAliveTimeout(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sink := newV3Sink()
	sub, _ := v3Paho(t, tb.Addr, "ka-sub", true, sink, nil)
	v3Sub(t, sub, "ka/will", 1)
	t0 := time.Now() // before the CONNECT is sent, so before the server saw it
	r, _ := v3Raw(t, tb.Addr, codec.V311, "ka", true, func(p *codec.Connect) {
		p.KeepAlive = 1
		p.WillFlag, p.WillTopic, p.WillPayload = true, []byte("ka/will"), []byte("timed out")
	})
	r.v3Closed()
	el := time.Since(t0)
	// 1.5 s after the CONNECT was read, plus up to a tick (100 ms here);
	// the upper bound leaves room for -race on 2 cores.
	if el < 1450*time.Millisecond || el > 3500*time.Millisecond {
		t.Fatalf("closed after %v, want about 1.5 s", el)
	}
	sink.waitPayload(t, "timed out")

	// A client that keeps talking is not closed: PINGREQ every 0.5 s for 2.5 s.
	r2, _ := v3Raw(t, tb.Addr, codec.V311, "ka2", true, func(p *codec.Connect) { p.KeepAlive = 1 })
	for i := 0; i < 5; i++ {
		time.Sleep(500 * time.Millisecond)
		r2.v3Ping()
	}
}

// TestSpec_MQTT_3_1_2_10_NoWillAfterDisconnect: DISCONNECT removes the will
// (MQTT 5: MQTT-3.14.4-3): it is not published when the connection closes.
func TestSpec_MQTT_3_1_2_10_NoWillAfterDisconnect(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sink := newV3Sink()
	sub, _ := v3Paho(t, tb.Addr, "nw-sub", true, sink, nil)
	v3Sub(t, sub, "nw/#", 1)
	for _, v := range []codec.Version{codec.V31, codec.V311} {
		r, _ := v3Raw(t, tb.Addr, v, fmt.Sprintf("nw-%d", v), false, func(p *codec.Connect) {
			p.WillFlag, p.WillTopic, p.WillPayload, p.WillQoS = true, []byte("nw/will"), []byte("should not"), 1
		})
		r.send((&codec.Disconnect{}).Append(nil, v))
		r.v3Closed()
	}
	// A paho client's Disconnect too.
	v3Paho(t, tb.Addr, "nw-paho", true, nil, func(o *mqtt.ClientOptions) { o.SetWill("nw/will", "should not", 1, false) })
	c, _ := v3Paho(t, tb.Addr, "nw-paho2", true, nil, func(o *mqtt.ClientOptions) { o.SetWill("nw/will", "should not", 1, false) })
	c.Disconnect(100)
	v3WaitFor(t, "the clients to close", func() bool { return tb.B.Stats().Clients <= 2 })
	pub, _ := v3Paho(t, tb.Addr, "nw-pub", true, nil, nil)
	v3Pub(t, pub, "nw/end", 1, false, "end")
	if err := v3Equal(sink.waitPayload(t, "end"), "end"); err != nil {
		t.Fatal(err)
	}
}

// TestSpec_MQTT_3_1_2_17_WillRetain: a will with Will Retain 1 is published
// as a retained message (MQTT-3.1.2-17), one with 0 is not (-16); an
// existing subscriber gets both with RETAIN=0 (MQTT-3.3.1-9).
func TestSpec_MQTT_3_1_2_17_WillRetain(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	s1, _ := v3Raw(t, tb.Addr, codec.V311, "wr-s1", true, nil)
	s1.v3Subscribe(1, "wr/#", 1)
	for _, w := range []struct {
		topic  string
		retain bool
	}{{"wr/kept", true}, {"wr/not", false}} {
		r, _ := v3Raw(t, tb.Addr, codec.V311, "wr-"+w.topic[3:], true, func(p *codec.Connect) {
			p.WillFlag, p.WillTopic, p.WillPayload, p.WillQoS, p.WillRetain = true, []byte(w.topic), []byte(w.topic), 1, w.retain
		})
		r.c.Close()
		got := s1.v3Collect(w.topic)
		if len(got) != 1 || got[0].Retain {
			t.Fatalf("live subscriber: %q retain=%v", v3RawPayloads(got), got[0].Retain)
		}
	}
	s2, _ := v3Raw(t, tb.Addr, codec.V311, "wr-s2", true, nil)
	s2.v3Subscribe(1, "wr/#", 1)
	p := s2.v3ExpectPublish()
	if string(p.Topic) != "wr/kept" || !p.Retain {
		t.Fatalf("new subscriber: %s retain=%v, want wr/kept retained", p.Topic, p.Retain)
	}
	s2.v3Ack(codec.PUBACK, p.PacketID)
	s2.v3Ping() // the will without retain was not stored
}

// TestV3_SharedSubscription: three paho 3.1.1 members of $share/g/sh/t
// share 300 messages: each message goes to exactly one member, and the
// spread is roughly even.
func TestV3_SharedSubscription(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	const n = 300
	var sinks []*v3Sink
	for i := 0; i < 3; i++ {
		s := newV3Sink()
		c, _ := v3Paho(t, tb.Addr, fmt.Sprintf("sh-%d", i), true, s, nil)
		v3Sub(t, c, "$share/g/sh/t", 1)
		sinks = append(sinks, s)
	}
	pub, _ := v3Paho(t, tb.Addr, "sh-pub", true, nil, nil)
	toks := make([]mqtt.Token, n)
	for i := range toks {
		toks[i] = pub.Publish("sh/t", 1, false, fmt.Sprint(i))
	}
	for _, tok := range toks {
		v3Done(t, "publish", tok)
	}
	total := func() int {
		k := 0
		for _, s := range sinks {
			k += len(s.snapshot())
		}
		return k
	}
	v3WaitFor(t, "300 shared deliveries", func() bool { return total() >= n })
	seen := map[string]int{}
	for i, s := range sinks {
		got := s.snapshot()
		if len(got) <= 50 {
			t.Errorf("member %d got %d of %d messages, want > 50", i, len(got), n)
		}
		for _, m := range got {
			seen[m.Payload]++
		}
	}
	if len(seen) != n || total() != n {
		t.Fatalf("%d distinct messages in %d deliveries, want %d in %d", len(seen), total(), n, n)
	}
}

// TestSpec_MQTT_3_12_4_1_Pingresp: PINGREQ is answered with PINGRESP, in
// 3.1 and 3.1.1.
func TestSpec_MQTT_3_12_4_1_Pingresp(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	for _, v := range []codec.Version{codec.V31, codec.V311} {
		r, _ := v3Raw(t, tb.Addr, v, fmt.Sprintf("ping-%d", v), true, nil)
		for i := 0; i < 3; i++ {
			r.send(codec.AppendPingreq(nil))
			h, body := r.v3Expect(codec.PINGRESP)
			if h.Flags != 0 || len(body) != 0 {
				t.Fatalf("PINGRESP flags %x body % x", h.Flags, body)
			}
		}
	}
}

// TestV3_PacketOverMaxPacketSizeCloses: a packet larger than
// Options.MaxPacketSize closes the connection; one under it passes.
func TestV3_PacketOverMaxPacketSizeCloses(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxPacketSize: 1024})
	r, _ := v3Raw(t, tb.Addr, codec.V311, "big", true, nil)
	r.v3Subscribe(1, "big", 0)
	small := strings.Repeat("s", 900)
	r.v3Publish("big", 0, 0, false, false, small)
	if p := r.v3ExpectPublish(); string(p.Payload) != small {
		t.Fatal("small message mangled")
	}
	r.v3Publish("big", 0, 0, false, false, strings.Repeat("b", 2000))
	r.v3Closed()

	// The header alone is enough to refuse: the body never has to arrive.
	r2, _ := v3Raw(t, tb.Addr, codec.V311, "big2", true, nil)
	hdr := codec.AppendPublishHeader(nil, &codec.Publish{Topic: []byte("big"), Payload: make([]byte, 1<<20)}, codec.V311)
	r2.send(hdr)
	r2.v3Closed()
}

// TestLoad_V3_ConcurrentClients: 100 paho publishers and 100 paho
// subscribers on the 2-loop broker, QoS 1 and 2 in both directions.
// Publisher i sends 20 messages to load/<i> (QoS 1 if i is even, else 2).
// Subscriber i subscribes load/<i> at QoS 2 and load/<i+1> at QoS 1, and
// every tenth also load/# at QoS 1. Every subscriber must receive exactly
// its expected set: each message once (overlaps give one copy,
// MQTT-3.3.5-1), at min(published, max granted) QoS, in per-publisher
// order (MQTT-4.6.0-6). No client reconnects, so QoS 1 must not duplicate.
func TestLoad_V3_ConcurrentClients(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	const clients, perPub = 100, 20
	pubQoS := func(i int) byte { return byte(1 + i%2) }

	sinks := make([]*v3Sink, clients)
	subs := make([]mqtt.Client, clients)
	pubs := make([]mqtt.Client, clients)
	var wg sync.WaitGroup
	errs := make(chan error, 4*clients)
	connect := func(id string, sink *v3Sink) (mqtt.Client, error) {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID(id).SetCleanSession(true).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
			SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).SetKeepAlive(60 * time.Second)
		if sink != nil {
			o.SetDefaultPublishHandler(sink.handler)
		}
		o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { errs <- fmt.Errorf("%s lost its connection: %v", id, err) })
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("connect %s: %v", id, tok.Error())
		}
		return c, nil
	}
	for i := 0; i < clients; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			sinks[i] = newV3Sink()
			c, err := connect(fmt.Sprintf("load-sub-%d", i), sinks[i])
			if err != nil {
				errs <- err
				return
			}
			subs[i] = c
			f := map[string]byte{fmt.Sprintf("load/%d", i): 2, fmt.Sprintf("load/%d", (i+1)%clients): 1}
			if i%10 == 0 {
				f["load/#"] = 1
			}
			tok := c.SubscribeMultiple(f, nil)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				errs <- fmt.Errorf("subscribe %d: %v", i, tok.Error())
			}
		}()
		go func() {
			defer wg.Done()
			c, err := connect(fmt.Sprintf("load-pub-%d", i), nil)
			if err != nil {
				errs <- err
				return
			}
			pubs[i] = c
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range append(subs, pubs...) {
			if c != nil {
				c.Disconnect(0)
			}
		}
	})
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks := make([]mqtt.Token, perPub)
			for k := range toks {
				toks[k] = pubs[i].Publish(fmt.Sprintf("load/%d", i), pubQoS(i), false, fmt.Sprintf("%d/%d", i, k))
			}
			for k, tok := range toks {
				if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
					errs <- fmt.Errorf("publish %d/%d: %v", i, k, tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	expected := func(i int) (n int, from func(p int) (bool, byte)) {
		if i%10 == 0 {
			return clients * perPub, func(p int) (bool, byte) {
				if p == i {
					return true, pubQoS(p)
				}
				return true, 1
			}
		}
		return 2 * perPub, func(p int) (bool, byte) {
			switch p {
			case i:
				return true, pubQoS(p)
			case (i + 1) % clients:
				return true, 1
			}
			return false, 0
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < clients; i++ {
		n, from := expected(i)
		for len(sinks[i].snapshot()) < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		got := sinks[i].snapshot()
		if len(got) != n {
			select {
			case err := <-errs:
				t.Error(err)
			default:
			}
			t.Fatalf("subscriber %d received %d messages, want %d; broker stats %+v", i, len(got), n, tb.B.Stats())
		}
		next := make([]int, clients) // next expected sequence per publisher
		for _, m := range got {
			var p, k int
			if _, err := fmt.Sscanf(m.Payload, "%d/%d", &p, &k); err != nil {
				t.Fatalf("subscriber %d: bad payload %q", i, m.Payload)
			}
			ok, q := from(p)
			if !ok || m.Topic != fmt.Sprintf("load/%d", p) {
				t.Fatalf("subscriber %d: unexpected message %q on %s", i, m.Payload, m.Topic)
			}
			if k != next[p] {
				t.Fatalf("subscriber %d: from publisher %d got #%d, want #%d (loss, duplicate or reorder)", i, p, k, next[p])
			}
			next[p]++
			if m.QoS != q {
				t.Fatalf("subscriber %d: %q at QoS %d, want %d", i, m.Payload, m.QoS, q)
			}
			if m.Dup {
				t.Fatalf("subscriber %d: %q has DUP=1 without a reconnect", i, m.Payload)
			}
		}
	}
	t.Logf("%d deliveries in %v", 9*clients/10*2*perPub+clients/10*clients*perPub, time.Since(start))
}
