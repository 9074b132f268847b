package codec

import (
	"testing"
)

func TestSubscribeRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		cases := []*Subscribe{
			{PacketID: 1, Subs: []Subscription{{Filter: b("a/b")}}},
			{PacketID: 0xffff, Subs: []Subscription{{Filter: b("#"), QoS: 2}, {Filter: b("+/+/x"), QoS: 1}, {Filter: b("$share/grp/a/#")}, {Filter: b("/")}}},
		}
		if v == V5 {
			cases = append(cases,
				&Subscribe{PacketID: 2, Props: Properties{SubscriptionIDs: []uint32{MaxVarint}, User: users("a", "b")},
					Subs: []Subscription{
						{Filter: b("a"), QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
						{Filter: b("b"), RetainHandling: 2},
						{Filter: b("$share/g/b"), QoS: 1, RetainAsPublished: true},
					}})
		}
		for i, p := range cases {
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, v) })
		}
	}
}

// TestSubscribeInvalidFilterDecodesAll checks that a syntactically invalid
// filter does not stop decoding: the broker gets every subscription plus a
// TopicFilterInvalid error naming the first bad filter.
func TestSubscribeInvalidFilterDecodesAll(t *testing.T) {
	in := pkt(0x82, 0, 1, 0, 0, 3, "a/+", 1, 0, 4, "a/#b", 2, 0, 2, "#x", 0, 0, 1, "c", 1)
	var s Subscribe
	h, _ := Frame(in, 0)
	checkErr(t, s.Decode(h, h.Body(in), V5), TopicFilterInvalid, "MQTT-4.7.1-1")
	if len(s.Subs) != 4 || string(s.Subs[3].Filter) != "c" || s.Subs[1].QoS != 2 {
		t.Fatalf("got %+v", s.Subs)
	}
	bad := 0
	for _, sub := range s.Subs {
		if ValidateTopicFilter(sub.Filter) != nil {
			bad++
		}
	}
	if bad != 2 {
		t.Fatalf("%d bad filters; want 2", bad)
	}
	// A malformation after a bad filter still wins.
	in = pkt(0x82, 0, 1, 0, 0, 1, "+a", 0, 0, 1, "c", 0xc0)
	h, _ = Frame(in, 0)
	checkErr(t, s.Decode(h, h.Body(in), V5), MalformedPacket, "MQTT-3.8.3-5")
}

// TestSubscribeReuse checks a reused Subscribe keeps nothing of the last one.
func TestSubscribeReuse(t *testing.T) {
	var s Subscribe
	for i, in := range [][]byte{
		raw(0x82, 0x18, 0, 1, 2, 0x0b, 5, 0, 3, "a/+", 0x2d, 0, 10, "$share/g/x", 2),
		pkt(0x82, 0, 2, 0, 0, 1, "z", 0),
	} {
		h, _ := Frame(in, 0)
		if err := s.Decode(h, h.Body(in), V5); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
	if !samePacket(&Subscribe{PacketID: 2, Subs: []Subscription{{Filter: b("z")}}}, &s) {
		t.Fatalf("got %+v", s)
	}
}

func TestSubackRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		cases := []*Suback{
			{PacketID: 1, Codes: []ReasonCode{GrantedQoS0}},
			{PacketID: 2, Codes: []ReasonCode{GrantedQoS2, GrantedQoS1, UnspecifiedError}},
		}
		if v == V5 {
			cases = append(cases, &Suback{PacketID: 3,
				Props: Properties{Present: present(PropReasonString), ReasonString: b("no"), User: users("x", "y")},
				Codes: []ReasonCode{NotAuthorized, TopicFilterInvalid, SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
					WildcardSubscriptionsNotSupported, QuotaExceeded, PacketIdentifierInUse, ImplementationSpecificError}})
		}
		for i, p := range cases {
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, v) })
		}
	}
}

func TestUnsubscribeRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		cases := []*Unsubscribe{
			{PacketID: 1, Filters: [][]byte{b("a/b")}},
			{PacketID: 2, Filters: [][]byte{b("#"), b("$share/g/+"), b("a+")}}, // syntax is not checked
		}
		if v == V5 {
			cases = append(cases, &Unsubscribe{PacketID: 3, Props: Properties{User: users("k", "v")}, Filters: [][]byte{b("x")}})
		}
		for i, p := range cases {
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, v) })
		}
	}
}

func TestUnsubackRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		cases := []*Unsuback{{PacketID: 1}}
		if v == V5 {
			cases = []*Unsuback{
				{PacketID: 1, Codes: []ReasonCode{Success}},
				{PacketID: 2, Props: Properties{Present: present(PropReasonString), ReasonString: b("r")},
					Codes: []ReasonCode{NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse}},
			}
		}
		for i, p := range cases {
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, v) })
		}
	}
}
