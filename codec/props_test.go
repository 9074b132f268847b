package codec

import (
	"bytes"
	"testing"
)

// fullProps returns Properties with every property in mask set to a
// non-zero value, two user properties (same key, to check order) and, when
// mask allows it, the given subscription identifiers.
func fullProps(mask uint64, subIDs ...uint32) Properties {
	var p Properties
	for id := byte(0); id < 64; id++ {
		if mask&bit(id) == 0 {
			continue
		}
		switch propKind[id] {
		case kindByte:
			_ = p.setNum(id, 1)
		case kindUint16:
			_ = p.setNum(id, 0x1234)
		case kindUint32:
			_ = p.setNum(id, 0x01020304)
		case kindString:
			*p.str(id) = []byte("s-" + string(rune('a'+id%26)))
		case kindBinary:
			*p.str(id) = []byte{0, 1, 0xff, id}
		case kindVarint:
			p.SubscriptionIDs = append(p.SubscriptionIDs, subIDs...)
		case kindPair:
			p.User = users("k", "v1", "k", "v2", "é", "")
		}
		p.Set(id)
	}
	return p
}

// TestAllPropertiesRoundTrip sets every property each v5 packet type allows
// and checks encode → decode gives it back.
func TestAllPropertiesRoundTrip(t *testing.T) {
	maxIDs := []uint32{1, 127, 128, 16383, 16384, 2097151, 2097152, MaxVarint}
	cases := []struct {
		name string
		pkt  any
	}{
		{"CONNECT", &Connect{Version: V5, ProtocolName: b("MQTT"), ClientID: b("c"), Props: fullProps(propsConnect),
			WillFlag: true, WillQoS: 2, WillRetain: true, WillTopic: b("w"), WillPayload: b("s-c"),
			WillProps: fullProps(AllowedWillProps)}},
		{"CONNACK", &Connack{SessionPresent: true, Props: fullProps(propsConnack)}},
		{"PUBLISH", &Publish{QoS: 1, PacketID: 9, Topic: b("a/b"), Payload: b("payload"), Props: fullProps(propsPublish, maxIDs...)}},
		{"PUBACK", &Ack{Type: PUBACK, PacketID: 1, Code: QuotaExceeded, Props: fullProps(propsAck)}},
		{"PUBREC", &Ack{Type: PUBREC, PacketID: 1, Props: fullProps(propsAck)}},
		{"PUBREL", &Ack{Type: PUBREL, PacketID: 1, Code: PacketIdentifierNotFound, Props: fullProps(propsAck)}},
		{"PUBCOMP", &Ack{Type: PUBCOMP, PacketID: 1, Props: fullProps(propsAck)}},
		{"SUBSCRIBE", &Subscribe{PacketID: 1, Props: fullProps(propsSubscribe, MaxVarint), Subs: []Subscription{{Filter: b("a")}}}},
		{"SUBACK", &Suback{PacketID: 1, Props: fullProps(propsSuback), Codes: []ReasonCode{GrantedQoS2}}},
		{"UNSUBSCRIBE", &Unsubscribe{PacketID: 1, Props: fullProps(propsUnsubscribe), Filters: [][]byte{b("a")}}},
		{"UNSUBACK", &Unsuback{PacketID: 1, Props: fullProps(propsUnsuback), Codes: []ReasonCode{Success}}},
		{"DISCONNECT", &Disconnect{Code: DisconnectWithWill, Props: fullProps(propsDisconnect)}},
		{"AUTH", &Auth{Code: ReAuthenticate, Props: fullProps(propsAuth)}},
	}
	seen := bit(PropUser) | bit(PropSubscriptionID) // checked by Has below
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			roundTrip(t, c.pkt, V5)
		})
		switch p := c.pkt.(type) {
		case *Connect:
			seen |= p.Props.Present | p.WillProps.Present
		case *Connack:
			seen |= p.Props.Present
		case *Publish:
			seen |= p.Props.Present
		case *Disconnect:
			seen |= p.Props.Present
		case *Auth:
			seen |= p.Props.Present
		case *Subscribe:
			seen |= p.Props.Present
		}
	}
	for id := byte(0); id < 64; id++ {
		if propKind[id] != kindNone && seen&bit(id) == 0 {
			t.Errorf("property %#x never exercised", id)
		}
	}
}

// TestPropertyNotAllowed puts each property in each v5 packet that does not
// allow it and expects Malformed (§2.2.2.2).
func TestPropertyNotAllowed(t *testing.T) {
	types := []Type{CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH}
	for _, typ := range types {
		for id := byte(1); id < 64; id++ {
			if propKind[id] == kindNone || AllowedProps(typ)&bit(id) != 0 {
				continue
			}
			props := fullProps(bit(id), 1)
			var pkt any
			switch typ {
			case CONNACK:
				pkt = &Connack{Props: props}
			case PUBLISH:
				pkt = &Publish{Topic: b("t"), Props: props}
			case PUBACK, PUBREC, PUBREL, PUBCOMP:
				pkt = &Ack{Type: typ, PacketID: 1, Props: props}
			case SUBSCRIBE:
				pkt = &Subscribe{PacketID: 1, Props: props, Subs: []Subscription{{Filter: b("a")}}}
			case SUBACK:
				pkt = &Suback{PacketID: 1, Props: props, Codes: []ReasonCode{0}}
			case UNSUBSCRIBE:
				pkt = &Unsubscribe{PacketID: 1, Props: props, Filters: [][]byte{b("a")}}
			case UNSUBACK:
				pkt = &Unsuback{PacketID: 1, Props: props, Codes: []ReasonCode{0}}
			case DISCONNECT:
				pkt = &Disconnect{Props: props}
			case AUTH:
				pkt = &Auth{Props: props}
			}
			_, err := decodePacket(encodePacket(pkt, V5), V5)
			if re := AsReasonError(err); re == nil || re.Code != MalformedPacket {
				t.Errorf("property %#x in packet type %d: got %v; want malformed", id, typ, err)
			}
		}
	}
	// CONNECT and the Will properties.
	for id := byte(1); id < 64; id++ {
		if propKind[id] == kindNone {
			continue
		}
		c := &Connect{Version: V5, ClientID: b("c"), WillFlag: true, WillTopic: b("w")}
		if propsConnect&bit(id) == 0 {
			c.Props = fullProps(bit(id), 1)
		} else if propsWill&bit(id) == 0 {
			c.WillProps = fullProps(bit(id), 1)
		} else {
			continue
		}
		_, err := decodePacket(c.Append(nil), V5)
		if re := AsReasonError(err); re == nil || re.Code != MalformedPacket {
			t.Errorf("property %#x in CONNECT: got %v; want malformed", id, err)
		}
	}
}

// TestPropertyTwice repeats each property once more than allowed: Protocol
// Error for those that may appear once; user properties and PUBLISH
// subscription identifiers may repeat (§2.2.2.2).
func TestPropertyTwice(t *testing.T) {
	for id := byte(1); id < 64; id++ {
		if propsPublish&bit(id) == 0 {
			continue
		}
		var p Properties
		one := fullProps(bit(id), 7)
		block := one.Append(nil)[1:] // without the length
		twice := append(append([]byte{}, block...), block...)
		_, err := p.decode(append(AppendVarint(nil, len(twice)), twice...), propsPublish, repeatPublish)
		repeatable := id == PropUser || id == PropSubscriptionID
		if repeatable && err != nil {
			t.Errorf("property %#x twice: %v", id, err)
		}
		if !repeatable {
			checkErr(t, err, ProtocolError, "")
		}
	}
}

func TestPropertiesReset(t *testing.T) {
	p := fullProps(propsPublish, 1, 2)
	userCap, idCap := cap(p.User), cap(p.SubscriptionIDs)
	p.Reset()
	if p.Present != 0 || len(p.User) != 0 || len(p.SubscriptionIDs) != 0 || p.ContentType != nil || p.TopicAlias != 0 {
		t.Fatalf("Reset left %+v", p)
	}
	if cap(p.User) != userCap || cap(p.SubscriptionIDs) != idCap {
		t.Fatalf("Reset dropped capacity")
	}
	if p.User[:1][0].Key != nil {
		t.Fatalf("Reset kept a reference to old user properties")
	}
}

func TestPropertiesLenAppend(t *testing.T) {
	f := func(p Properties, want []byte) {
		t.Helper()
		got := p.Append(nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("Append: got % x; want % x", got, want)
		}
		if p.Len() != len(want)-varintLen(p.Len()) {
			t.Fatalf("Len = %d for % x", p.Len(), want)
		}
	}
	f(Properties{}, []byte{0})
	// User and SubscriptionIDs are written without their Present bit.
	f(Properties{User: users("a", "b")}, raw(7, 0x26, 0, 1, "a", 0, 1, "b"))
	f(Properties{SubscriptionIDs: []uint32{128}}, raw(3, 0x0b, 0x80, 1))
	// A set bit writes a zero value.
	f(Properties{Present: present(PropMessageExpiry)}, raw(5, 0x02, 0, 0, 0, 0))
	// A value with no bit is not written.
	f(Properties{TopicAlias: 5}, []byte{0})
	// Unknown bits are ignored.
	f(Properties{Present: 1 << 63}, []byte{0})
}

func TestAllowedProps(t *testing.T) {
	if AllowedProps(PINGREQ) != 0 || AllowedProps(0) != 0 {
		t.Fatal("PINGREQ has properties")
	}
	if AllowedProps(PUBLISH)&bit(PropTopicAlias) == 0 || AllowedProps(CONNECT)&bit(PropTopicAlias) != 0 {
		t.Fatal("topic alias mask wrong")
	}
	if AllowedWillProps&bit(PropWillDelay) == 0 || AllowedProps(PUBLISH)&bit(PropWillDelay) != 0 {
		t.Fatal("will delay mask wrong")
	}
}
