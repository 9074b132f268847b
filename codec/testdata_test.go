package codec

import (
	"errors"
	"fmt"
	"reflect"
)

// wireCase is one packet of the shared wire corpus (in the spirit of mochi's
// tpackets.go): raw bytes as they travel, and either the packet they decode
// to or the error they must produce. The corpus drives the decode and golden
// encode tests, and seeds the fuzz targets.
type wireCase struct {
	Name   string     // the spec statement for failures, else a description
	V      Version    // protocol version the packet is decoded with
	Raw    []byte     // the whole packet, fixed header included
	Packet any        // what Raw decodes to (pointer to a packet, or a Type for PINGREQ/PINGRESP); nil for failures
	Code   ReasonCode // the failure's reason code, when Packet is nil
	Spec   string     // the failure's SpecID, when Packet is nil
	Golden bool       // encoding Packet for V gives exactly Raw
}

// raw builds a byte string from ints (one byte each), strings and []byte.
func raw(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			if p < 0 || p > 255 {
				panic(fmt.Sprintf("raw: byte out of range: %d", p))
			}
			b = append(b, byte(p))
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("raw: unsupported %T", p))
		}
	}
	return b
}

// users builds user properties from key, value, key, value...
func users(kv ...string) []UserProperty {
	var u []UserProperty
	for i := 0; i+1 < len(kv); i += 2 {
		u = append(u, UserProperty{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return u
}

// present builds a Present mask from property identifiers.
func present(ids ...byte) uint64 {
	var m uint64
	for _, id := range ids {
		m |= bit(id)
	}
	return m
}

var b = func(s string) []byte { return []byte(s) }

// decodePacket frames raw, which must hold exactly one packet, and decodes it
// for version v with the decoder its type calls for.
func decodePacket(raw []byte, v Version) (any, error) {
	h, err := Frame(raw, 0)
	if err != nil {
		return nil, err
	}
	if h.Len() != len(raw) {
		return nil, fmt.Errorf("frame is %d bytes, input %d", h.Len(), len(raw))
	}
	return decodeBody(h, h.Body(raw), v)
}

// decodeBody decodes one framed body into a new packet value.
func decodeBody(h FixedHeader, body []byte, v Version) (any, error) {
	switch h.Type {
	case CONNECT:
		p := &Connect{}
		return p, p.Decode(h, body)
	case CONNACK:
		p := &Connack{}
		return p, p.Decode(h, body, v)
	case PUBLISH:
		p := &Publish{}
		return p, p.Decode(h, body, v)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p := &Ack{}
		return p, p.Decode(h, body, v)
	case SUBSCRIBE:
		p := &Subscribe{}
		return p, p.Decode(h, body, v)
	case SUBACK:
		p := &Suback{}
		return p, p.Decode(h, body, v)
	case UNSUBSCRIBE:
		p := &Unsubscribe{}
		return p, p.Decode(h, body, v)
	case UNSUBACK:
		p := &Unsuback{}
		return p, p.Decode(h, body, v)
	case DISCONNECT:
		p := &Disconnect{}
		return p, p.Decode(h, body, v)
	case AUTH:
		p := &Auth{}
		return p, p.Decode(h, body, v)
	case PINGREQ, PINGRESP:
		return h.Type, DecodeEmpty(h)
	}
	return nil, errors.New("unknown packet type")
}

// encodePacket encodes a packet value for version v.
func encodePacket(pkt any, v Version) []byte {
	switch p := pkt.(type) {
	case *Connect:
		return p.Append(nil)
	case *Connack:
		return p.Append(nil, v)
	case *Publish:
		return p.Append(nil, v)
	case *Ack:
		return p.Append(nil, v)
	case *Subscribe:
		return p.Append(nil, v)
	case *Suback:
		return p.Append(nil, v)
	case *Unsubscribe:
		return p.Append(nil, v)
	case *Unsuback:
		return p.Append(nil, v)
	case *Disconnect:
		return p.Append(nil, v)
	case *Auth:
		return p.Append(nil)
	case Type:
		if p == PINGREQ {
			return AppendPingreq(nil)
		}
		return AppendPingresp(nil)
	}
	panic(fmt.Sprintf("encodePacket: unsupported %T", pkt))
}

// normalize sets every empty slice reachable from v to nil, so that packets
// compare equal whether a field was absent (nil) or empty on the wire.
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			normalize(v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			if v.CanSet() {
				v.Set(reflect.Zero(v.Type()))
			}
			return
		}
		if v.Type().Elem().Kind() != reflect.Uint8 {
			for i := range v.Len() {
				normalize(v.Index(i))
			}
		}
	}
}

// samePacket reports whether two packet values are equal after normalizing
// nil and empty slices. It normalizes both in place.
func samePacket(a, b any) bool {
	normalize(reflect.ValueOf(a))
	normalize(reflect.ValueOf(b))
	return reflect.DeepEqual(a, b)
}

// corpus is every case of the shared wire corpus.
var corpus = concat(connectCorpus, connackCorpus, publishCorpus, ackCorpus, subscribeCorpus,
	unsubscribeCorpus, disconnectCorpus, malformedCorpus)

func concat(lists ...[]wireCase) []wireCase {
	var all []wireCase
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

// v5Connect is a v5 CONNECT with CONNECT properties and a Will with Will
// properties, all fields set (§3.1 layout).
var v5Connect = wireCase{Name: "v5 props and will", V: V5, Golden: true,
	Raw: raw(0x10, 0x3c, 0, 4, "MQTT", 5, 0xce, 0, 10,
		0x0f, 0x11, 0, 0, 0, 0x78, 0x21, 0, 0x14, 0x26, 0, 1, "k", 0, 1, "v", // properties
		0, 3, "cid",
		0x07, 0x01, 0x01, 0x18, 0, 0, 0, 5, // will properties
		0, 2, "lw", 0, 3, "off", 0, 4, "user", 0, 4, "pass"),
	Packet: &Connect{ProtocolName: b("MQTT"), Version: V5, CleanStart: true, KeepAlive: 10,
		Props: Properties{Present: present(PropSessionExpiry, PropReceiveMaximum),
			SessionExpiry: 120, ReceiveMaximum: 20, User: users("k", "v")},
		ClientID: b("cid"), WillFlag: true, WillQoS: 1,
		WillProps: Properties{Present: present(PropPayloadFormat, PropWillDelay), PayloadFormat: 1, WillDelay: 5},
		WillTopic: b("lw"), WillPayload: b("off"),
		UsernameFlag: true, Username: b("user"), PasswordFlag: true, Password: b("pass")},
}

var connectCorpus = []wireCase{
	{Name: "v3.1.1 minimal", V: V311, Golden: true,
		Raw:    raw(0x10, 0x0e, 0, 4, "MQTT", 4, 0x02, 0, 60, 0, 2, "c1"),
		Packet: &Connect{ProtocolName: b("MQTT"), Version: V311, CleanStart: true, KeepAlive: 60, ClientID: b("c1")}},
	{Name: "v3.1 will user password", V: V31, Golden: true,
		Raw: raw(0x10, 0x21, 0, 6, "MQIsdp", 3, 0xee, 0, 30, 0, 2, "id",
			0, 3, "w/t", 0, 3, "bye", 0, 1, "u", 0, 2, "pw"),
		Packet: &Connect{ProtocolName: b("MQIsdp"), Version: V31, CleanStart: true, KeepAlive: 30, ClientID: b("id"),
			WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: b("w/t"), WillPayload: b("bye"),
			UsernameFlag: true, Username: b("u"), PasswordFlag: true, Password: b("pw")}},
	{Name: "v3.1.1 will QoS 2 user", V: V311, Golden: true,
		Raw: raw(0x10, 0x17, 0, 4, "MQTT", 4, 0x96, 0, 0, 0, 1, "x",
			0, 1, "w", 0, 0, 0, 3, "bob"),
		Packet: &Connect{ProtocolName: b("MQTT"), Version: V311, CleanStart: true, ClientID: b("x"),
			WillFlag: true, WillQoS: 2, WillTopic: b("w"), WillPayload: b(""),
			UsernameFlag: true, Username: b("bob")}},
	{Name: "v3.1.1 empty client id with clean session", V: V311, Golden: true,
		Raw:    raw(0x10, 0x0c, 0, 4, "MQTT", 4, 0x02, 0, 0, 0, 0),
		Packet: &Connect{ProtocolName: b("MQTT"), Version: V311, CleanStart: true, ClientID: b("")}},
	{Name: "v5 empty client id without clean start", V: V5, Golden: true,
		Raw:    raw(0x10, 0x0d, 0, 4, "MQTT", 5, 0x00, 0, 0, 0, 0, 0),
		Packet: &Connect{ProtocolName: b("MQTT"), Version: V5, ClientID: b("")}},
	{Name: "v5 password without user name", V: V5, Golden: true,
		Raw:    raw(0x10, 0x12, 0, 4, "MQTT", 5, 0x42, 0, 0, 0, 0, 1, "a", 0, 2, "pw"),
		Packet: &Connect{ProtocolName: b("MQTT"), Version: V5, CleanStart: true, ClientID: b("a"), PasswordFlag: true, Password: b("pw")}},
	v5Connect,
}

var connackCorpus = []wireCase{
	{Name: "v3.1.1 session present", V: V311, Golden: true, Raw: raw(0x20, 2, 1, 0),
		Packet: &Connack{SessionPresent: true}},
	{Name: "v3.1.1 not authorized", V: V311, Golden: true, Raw: raw(0x20, 2, 0, 5),
		Packet: &Connack{Code: ConnRefusedNotAuthorized}},
	{Name: "v3.1 accepted", V: V31, Golden: true, Raw: raw(0x20, 2, 0, 0), Packet: &Connack{}},
	{Name: "v5 props", V: V5, Golden: true,
		Raw: raw(0x20, 0x0f, 0, 0, 0x0c, 0x12, 0, 4, "auto", 0x22, 0, 10, 0x24, 1),
		Packet: &Connack{Props: Properties{Present: present(PropAssignedClientID, PropTopicAliasMaximum, PropMaximumQoS),
			AssignedClientID: b("auto"), TopicAliasMaximum: 10, MaximumQoS: 1}}},
	{Name: "v5 bad user name", V: V5, Golden: true, Raw: raw(0x20, 3, 0, 0x86, 0),
		Packet: &Connack{Code: byte(BadUserNameOrPassword)}},
	{Name: "v5 without property length", V: V5, Raw: raw(0x20, 2, 0, 0), Packet: &Connack{}},
}

var publishCorpus = []wireCase{
	{Name: "v3.1.1 QoS 0", V: V311, Golden: true, Raw: raw(0x30, 7, 0, 3, "a/b", "hi"),
		Packet: &Publish{Topic: b("a/b"), Payload: b("hi")}},
	{Name: "v3.1.1 QoS 1 retain", V: V311, Golden: true, Raw: raw(0x33, 9, 0, 3, "a/b", 0, 7, "hi"),
		Packet: &Publish{QoS: 1, Retain: true, Topic: b("a/b"), PacketID: 7, Payload: b("hi")}},
	{Name: "v3.1.1 QoS 2 dup", V: V311, Golden: true, Raw: raw(0x3c, 9, 0, 3, "a/b", 0x12, 0x34, "hi"),
		Packet: &Publish{Dup: true, QoS: 2, Topic: b("a/b"), PacketID: 0x1234, Payload: b("hi")}},
	{Name: "v3.1 QoS 1 empty payload", V: V31, Golden: true, Raw: raw(0x32, 5, 0, 1, "t", 0, 1),
		Packet: &Publish{QoS: 1, Topic: b("t"), PacketID: 1}},
	{Name: "v5 QoS 0 no props", V: V5, Golden: true, Raw: raw(0x30, 5, 0, 1, "t", 0, "x"),
		Packet: &Publish{Topic: b("t"), Payload: b("x")}},
	{Name: "v5 QoS 1 props", V: V5, Golden: true,
		Raw: raw(0x32, 0x20, 0, 1, "t", 0, 1, 0x18,
			0x01, 1, 0x02, 0, 0, 0x0e, 0x10, 0x03, 0, 4, "json", 0x23, 0, 3, 0x26, 0, 1, "a", 0, 1, "b",
			"{}"),
		Packet: &Publish{QoS: 1, Topic: b("t"), PacketID: 1, Payload: b("{}"),
			Props: Properties{Present: present(PropPayloadFormat, PropMessageExpiry, PropContentType, PropTopicAlias),
				PayloadFormat: 1, MessageExpiry: 3600, ContentType: b("json"), TopicAlias: 3, User: users("a", "b")}}},
	{Name: "v5 empty topic with alias", V: V5, Golden: true, Raw: raw(0x30, 7, 0, 0, 3, 0x23, 0, 5, "x"),
		Packet: &Publish{Topic: b(""), Payload: b("x"), Props: Properties{Present: present(PropTopicAlias), TopicAlias: 5}}},
	{Name: "v5 two subscription identifiers", V: V5, Golden: true, Raw: raw(0x30, 9, 0, 1, "t", 5, 0x0b, 1, 0x0b, 0x81, 1),
		Packet: &Publish{Topic: b("t"), Props: Properties{SubscriptionIDs: []uint32{1, 129}}}},
}

var ackCorpus = []wireCase{
	{Name: "v3.1.1 PUBACK", V: V311, Golden: true, Raw: raw(0x40, 2, 0, 7), Packet: &Ack{Type: PUBACK, PacketID: 7}},
	{Name: "v3.1.1 PUBREC", V: V311, Golden: true, Raw: raw(0x50, 2, 0, 7), Packet: &Ack{Type: PUBREC, PacketID: 7}},
	{Name: "v3.1.1 PUBREL", V: V311, Golden: true, Raw: raw(0x62, 2, 0, 7), Packet: &Ack{Type: PUBREL, PacketID: 7}},
	{Name: "v3.1.1 PUBCOMP", V: V311, Golden: true, Raw: raw(0x70, 2, 0, 7), Packet: &Ack{Type: PUBCOMP, PacketID: 7}},
	{Name: "v3.1 PUBREL with DUP", V: V31, Raw: raw(0x6a, 2, 0, 7), Packet: &Ack{Type: PUBREL, PacketID: 7}},
	{Name: "v5 PUBACK success short", V: V5, Golden: true, Raw: raw(0x40, 2, 0, 7), Packet: &Ack{Type: PUBACK, PacketID: 7}},
	{Name: "v5 PUBACK code only", V: V5, Golden: true, Raw: raw(0x40, 3, 0, 7, 0x10),
		Packet: &Ack{Type: PUBACK, PacketID: 7, Code: NoMatchingSubscribers}},
	{Name: "v5 PUBREC reason string", V: V5, Golden: true, Raw: raw(0x50, 9, 0, 7, 0x80, 5, 0x1f, 0, 2, "no"),
		Packet: &Ack{Type: PUBREC, PacketID: 7, Code: UnspecifiedError,
			Props: Properties{Present: present(PropReasonString), ReasonString: b("no")}}},
	{Name: "v5 PUBREL not found", V: V5, Golden: true, Raw: raw(0x62, 3, 0, 7, 0x92),
		Packet: &Ack{Type: PUBREL, PacketID: 7, Code: PacketIdentifierNotFound}},
	{Name: "v5 PUBCOMP success with empty props", V: V5, Raw: raw(0x70, 4, 0, 7, 0, 0), Packet: &Ack{Type: PUBCOMP, PacketID: 7}},
	{Name: "v5 PUBACK explicit success", V: V5, Raw: raw(0x40, 3, 0, 7, 0), Packet: &Ack{Type: PUBACK, PacketID: 7}},
}

var subscribeCorpus = []wireCase{
	{Name: "v3.1.1 SUBSCRIBE", V: V311, Golden: true, Raw: raw(0x82, 0x0c, 0, 10, 0, 3, "a/b", 1, 0, 1, "#", 2),
		Packet: &Subscribe{PacketID: 10, Subs: []Subscription{{Filter: b("a/b"), QoS: 1}, {Filter: b("#"), QoS: 2}}}},
	{Name: "v3.1 SUBSCRIBE with DUP", V: V31, Raw: raw(0x8a, 6, 0, 10, 0, 1, "a", 0),
		Packet: &Subscribe{PacketID: 10, Subs: []Subscription{{Filter: b("a")}}}},
	{Name: "v5 SUBSCRIBE options and shared", V: V5, Golden: true,
		Raw: raw(0x82, 0x18, 0, 1, 2, 0x0b, 5, 0, 3, "a/+", 0x2d, 0, 10, "$share/g/x", 2),
		Packet: &Subscribe{PacketID: 1, Props: Properties{SubscriptionIDs: []uint32{5}},
			Subs: []Subscription{{Filter: b("a/+"), QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: b("$share/g/x"), QoS: 2}}}},
	{Name: "v3.1.1 SUBACK", V: V311, Golden: true, Raw: raw(0x90, 4, 0, 10, 1, 0x80),
		Packet: &Suback{PacketID: 10, Codes: []ReasonCode{GrantedQoS1, UnspecifiedError}}},
	{Name: "v5 SUBACK", V: V5, Golden: true, Raw: raw(0x90, 6, 0, 1, 0, 0, 1, 0x8f),
		Packet: &Suback{PacketID: 1, Codes: []ReasonCode{GrantedQoS0, GrantedQoS1, TopicFilterInvalid}}},
	{Name: "v5 SUBACK props", V: V5, Golden: true,
		Raw: raw(0x90, 0x10, 0, 1, 0x0b, 0x1f, 0, 1, "x", 0x26, 0, 1, "k", 0, 1, "v", 1, 0xa2),
		Packet: &Suback{PacketID: 1, Props: Properties{Present: present(PropReasonString), ReasonString: b("x"), User: users("k", "v")},
			Codes: []ReasonCode{GrantedQoS1, WildcardSubscriptionsNotSupported}}},
}

var unsubscribeCorpus = []wireCase{
	{Name: "v3.1.1 UNSUBSCRIBE", V: V311, Golden: true, Raw: raw(0xa2, 0x0a, 0, 11, 0, 3, "a/b", 0, 1, "#"),
		Packet: &Unsubscribe{PacketID: 11, Filters: [][]byte{b("a/b"), b("#")}}},
	{Name: "v5 UNSUBSCRIBE user property", V: V5, Golden: true,
		Raw:    raw(0xa2, 0x0d, 0, 11, 7, 0x26, 0, 1, "k", 0, 1, "v", 0, 1, "a"),
		Packet: &Unsubscribe{PacketID: 11, Props: Properties{User: users("k", "v")}, Filters: [][]byte{b("a")}}},
	{Name: "v3.1.1 UNSUBACK", V: V311, Golden: true, Raw: raw(0xb0, 2, 0, 11), Packet: &Unsuback{PacketID: 11}},
	{Name: "v5 UNSUBACK", V: V5, Golden: true, Raw: raw(0xb0, 5, 0, 11, 0, 0, 0x11),
		Packet: &Unsuback{PacketID: 11, Codes: []ReasonCode{Success, NoSubscriptionExisted}}},
}

var disconnectCorpus = []wireCase{
	{Name: "PINGREQ", V: V311, Golden: true, Raw: raw(0xc0, 0), Packet: PINGREQ},
	{Name: "PINGRESP", V: V5, Golden: true, Raw: raw(0xd0, 0), Packet: PINGRESP},
	{Name: "v3.1.1 DISCONNECT", V: V311, Golden: true, Raw: raw(0xe0, 0), Packet: &Disconnect{}},
	{Name: "v5 DISCONNECT normal", V: V5, Golden: true, Raw: raw(0xe0, 0), Packet: &Disconnect{}},
	{Name: "v5 DISCONNECT with will", V: V5, Golden: true, Raw: raw(0xe0, 2, 4, 0), Packet: &Disconnect{Code: DisconnectWithWill}},
	{Name: "v5 DISCONNECT code only", V: V5, Raw: raw(0xe0, 1, 4), Packet: &Disconnect{Code: DisconnectWithWill}},
	{Name: "v5 DISCONNECT props", V: V5, Golden: true,
		Raw: raw(0xe0, 0x12, 0x8b, 0x10, 0x11, 0, 0, 0, 0, 0x1c, 0, 2, "s2", 0x1f, 0, 3, "bye"),
		Packet: &Disconnect{Code: ServerShuttingDown, Props: Properties{Present: present(PropSessionExpiry, PropServerReference, PropReasonString),
			ServerReference: b("s2"), ReasonString: b("bye")}}},
	{Name: "v5 AUTH success", V: V5, Golden: true, Raw: raw(0xf0, 0), Packet: &Auth{}},
	{Name: "v5 AUTH continue", V: V5, Golden: true,
		Raw: raw(0xf0, 0x10, 0x18, 0x0e, 0x15, 0, 5, "SCRAM", 0x16, 0, 3, "abc"),
		Packet: &Auth{Code: ContinueAuthentication, Props: Properties{Present: present(PropAuthMethod, PropAuthData),
			AuthMethod: b("SCRAM"), AuthData: b("abc")}}},
}

// pkt builds a packet from its first byte and body parts (as raw), computing
// the remaining length.
func pkt(first int, body ...any) []byte {
	bd := raw(body...)
	return append(AppendVarint([]byte{byte(first)}, len(bd)), bd...)
}

// fail is a corpus case that must fail with code and spec.
func fail(name string, v Version, code ReasonCode, spec string, raw []byte) wireCase {
	return wireCase{Name: name, V: v, Raw: raw, Code: code, Spec: spec}
}

// Common CONNECT prefixes: name, level, flags, keep alive.
func connect311(flags int, rest ...any) []byte {
	return pkt(0x10, append([]any{0, 4, "MQTT", 4, flags, 0, 0}, rest...)...)
}

func connect5(flags int, rest ...any) []byte {
	return pkt(0x10, append([]any{0, 4, "MQTT", 5, flags, 0, 0}, rest...)...)
}

// malformedCorpus has one case per validation rule, named after the spec
// statement where there is one.
var malformedCorpus = []wireCase{
	// CONNECT.
	fail("MQTT-3.1.2-1", V311, UnsupportedProtocolVersion, "MQTT-3.1.2-1", pkt(0x10, 0, 4, "MQTX", 4, 2, 0, 0, 0, 1, "a")),
	fail("MQTT-3.1.2-2", V311, UnsupportedProtocolVersion, "MQTT-3.1.2-2", pkt(0x10, 0, 4, "MQTT", 3, 2, 0, 0, 0, 1, "a")),
	fail("MQTT-3.1.2-2 MQIsdp level 4", V31, UnsupportedProtocolVersion, "MQTT-3.1.2-2", pkt(0x10, 0, 6, "MQIsdp", 4, 2, 0, 0, 0, 1, "a")),
	fail("MQTT-3.1.2-2 level 6", V5, UnsupportedProtocolVersion, "MQTT-3.1.2-2", pkt(0x10, 0, 4, "MQTT", 6, 2, 0, 0, 0, 0, 1, "a")),
	fail("MQTT-3.1.2-3", V311, MalformedPacket, "MQTT-3.1.2-3", connect311(0x03, 0, 1, "a")),
	fail("MQTT-3.1.2-3", V5, MalformedPacket, "MQTT-3.1.2-3", connect5(0x03, 0, 0, 1, "a")),
	fail("MQTT-3.1.2-11", V5, MalformedPacket, "MQTT-3.1.2-11", connect5(0x0a, 0, 0, 1, "a")),
	fail("MQTT-3.1.2-12", V5, MalformedPacket, "MQTT-3.1.2-12", connect5(0x1e, 0, 0, 1, "a", 0, 0, 1, "w", 0, 0)),
	fail("MQTT-3.1.2-13", V5, MalformedPacket, "MQTT-3.1.2-13", connect5(0x22, 0, 0, 1, "a")),
	fail("MQTT-3.1.2-13", V311, MalformedPacket, "MQTT-3.1.2-13", connect311(0x12, 0, 1, "a")),
	fail("MQTT-3.1.2-14", V311, MalformedPacket, "MQTT-3.1.2-14", connect311(0x1e, 0, 1, "a", 0, 1, "w", 0, 0)),
	fail("MQTT-3.1.2-15", V311, MalformedPacket, "MQTT-3.1.2-15", connect311(0x22, 0, 1, "a")),
	fail("MQTT-3.1.2-22", V311, ProtocolError, "MQTT-3.1.2-22", connect311(0x42, 0, 1, "a", 0, 1, "p")),
	fail("MQTT-3.1.3-8", V311, ClientIdentifierNotValid, "MQTT-3.1.3-8", connect311(0x00, 0, 0)),
	fail("v3.1 empty client id", V31, ClientIdentifierNotValid, "", pkt(0x10, 0, 6, "MQIsdp", 3, 2, 0, 0, 0, 0)),
	fail("MQTT-3.1.3-4 client id not UTF-8", V311, MalformedPacket, "MQTT-1.5.4-1", connect311(0x02, 0, 2, 0xc3, 0x28)),
	fail("MQTT-1.5.4-2 client id with U+0000", V311, MalformedPacket, "MQTT-1.5.4-2", connect311(0x02, 0, 2, "a", 0)),
	fail("MQTT-1.5.4-1 user name surrogate", V5, MalformedPacket, "MQTT-1.5.4-1", connect5(0x82, 0, 0, 1, "a", 0, 3, 0xed, 0xa0, 0x80)),
	fail("CONNECT property not allowed", V5, MalformedPacket, "", connect5(0x02, 3, 0x23, 0, 1, 0, 1, "a")),
	fail("CONNECT property twice", V5, ProtocolError, "", connect5(0x02, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 1, "a")),
	fail("CONNECT receive maximum 0", V5, ProtocolError, "", connect5(0x02, 3, 0x21, 0, 0, 0, 1, "a")),
	fail("CONNECT maximum packet size 0", V5, ProtocolError, "", connect5(0x02, 5, 0x27, 0, 0, 0, 0, 0, 1, "a")),
	fail("CONNECT request problem information 2", V5, ProtocolError, "", connect5(0x02, 2, 0x17, 2, 0, 1, "a")),
	fail("CONNECT authentication data without method", V5, ProtocolError, "", connect5(0x02, 4, 0x16, 0, 1, "x", 0, 1, "a")),
	fail("CONNECT will property not allowed", V5, MalformedPacket, "", connect5(0x06, 0, 0, 1, "a", 5, 0x11, 0, 0, 0, 1, 0, 1, "w", 0, 0)),
	fail("CONNECT will payload format invalid", V5, PayloadFormatInvalid, "", connect5(0x06, 0, 0, 1, "a", 2, 0x01, 1, 0, 1, "w", 0, 1, 0xff)),
	fail("CONNECT will topic wildcard", V311, TopicNameInvalid, "", connect311(0x06, 0, 1, "a", 0, 1, "#", 0, 0)),
	fail("CONNECT trailing bytes", V311, MalformedPacket, "", connect311(0x02, 0, 1, "a", 0)),
	fail("CONNECT truncated", V311, MalformedPacket, "", connect311(0x82, 0, 1, "a", 0, 5, "ab")),
	fail("CONNECT flags", V311, MalformedPacket, "MQTT-2.1.3-1", pkt(0x12, 0, 4, "MQTT", 4, 2, 0, 0, 0, 1, "a")),
	fail("MQTT-1.5.5-1 property length not minimal", V5, MalformedPacket, "MQTT-1.5.5-1", connect5(0x02, 0x80, 0x00, 0, 1, "a")),

	// CONNACK.
	fail("MQTT-3.2.2-1", V5, MalformedPacket, "MQTT-3.2.2-1", raw(0x20, 3, 2, 0, 0)),
	fail("MQTT-3.2.2-4", V311, ProtocolError, "MQTT-3.2.2-4", raw(0x20, 2, 1, 5)),
	fail("MQTT-3.2.2-6", V5, ProtocolError, "MQTT-3.2.2-6", raw(0x20, 3, 1, 0x80, 0)),
	fail("CONNACK v3.1.1 return code 6", V311, ProtocolError, "", raw(0x20, 2, 0, 6)),
	fail("CONNACK v5 reason code 0x01", V5, ProtocolError, "", raw(0x20, 3, 0, 1, 0)),
	fail("CONNACK v3.1.1 too long", V311, MalformedPacket, "", raw(0x20, 3, 0, 0, 0)),
	fail("CONNACK maximum QoS 2", V5, ProtocolError, "", raw(0x20, 5, 0, 0, 2, 0x24, 2)),

	// PUBLISH.
	fail("MQTT-3.3.1-4", V311, MalformedPacket, "MQTT-3.3.1-4", pkt(0x36, 0, 1, "t", 0, 1)),
	fail("MQTT-3.3.1-2", V311, ProtocolError, "MQTT-3.3.1-2", pkt(0x38, 0, 1, "t")),
	fail("MQTT-2.2.1-3", V5, ProtocolError, "MQTT-2.2.1-3", pkt(0x32, 0, 1, "t", 0, 0, 0)),
	fail("MQTT-2.3.1-1", V311, ProtocolError, "MQTT-2.3.1-1", pkt(0x34, 0, 1, "t", 0, 0)),
	fail("MQTT-3.3.2-2", V5, TopicNameInvalid, "MQTT-3.3.2-2", pkt(0x30, 0, 3, "a/+", 0)),
	fail("MQTT-3.3.2-2", V311, TopicNameInvalid, "MQTT-3.3.2-2", pkt(0x30, 0, 3, "a/#")),
	fail("MQTT-4.7.3-1", V311, TopicNameInvalid, "MQTT-4.7.3-1", pkt(0x30, 0, 0, "x")),
	fail("empty topic without alias", V5, ProtocolError, "", pkt(0x30, 0, 0, 0, "x")),
	fail("MQTT-3.3.2-8", V5, TopicAliasInvalid, "MQTT-3.3.2-8", pkt(0x30, 0, 1, "t", 3, 0x23, 0, 0)),
	fail("MQTT-3.3.2-14", V5, ProtocolError, "MQTT-3.3.2-14", pkt(0x30, 0, 1, "t", 4, 0x08, 0, 1, "#")),
	fail("MQTT-1.5.4-1 topic", V311, MalformedPacket, "MQTT-1.5.4-1", pkt(0x30, 0, 3, 0xed, 0xa0, 0x80)),
	fail("MQTT-1.5.4-2 topic", V311, MalformedPacket, "MQTT-1.5.4-2", pkt(0x30, 0, 2, "a", 0)),
	fail("PUBLISH payload format invalid", V5, PayloadFormatInvalid, "", pkt(0x30, 0, 1, "t", 2, 0x01, 1, 0xc0, 0x80)),
	fail("PUBLISH payload format 2", V5, ProtocolError, "", pkt(0x30, 0, 1, "t", 2, 0x01, 2)),
	fail("PUBLISH property not allowed", V5, MalformedPacket, "", pkt(0x30, 0, 1, "t", 5, 0x11, 0, 0, 0, 1)),
	fail("PUBLISH unknown property", V5, MalformedPacket, "", pkt(0x30, 0, 1, "t", 2, 0x7f, 0)),
	fail("PUBLISH topic alias twice", V5, ProtocolError, "", pkt(0x30, 0, 1, "t", 6, 0x23, 0, 1, 0x23, 0, 2)),
	fail("PUBLISH subscription identifier 0", V5, ProtocolError, "", pkt(0x30, 0, 1, "t", 2, 0x0b, 0)),
	fail("PUBLISH property length overrun", V5, MalformedPacket, "", pkt(0x30, 0, 1, "t", 9, 0x23, 0, 1)),
	fail("PUBLISH property value truncated", V5, MalformedPacket, "", pkt(0x30, 0, 1, "t", 2, 0x23, 0)),
	fail("PUBLISH topic truncated", V311, MalformedPacket, "", pkt(0x30, 0, 9, "t")),

	// PUBACK, PUBREC, PUBREL, PUBCOMP.
	fail("MQTT-3.6.1-1", V311, MalformedPacket, "MQTT-3.6.1-1", raw(0x60, 2, 0, 1)),
	fail("MQTT-3.6.1-1", V5, MalformedPacket, "MQTT-3.6.1-1", raw(0x63, 2, 0, 1)),
	fail("MQTT-2.1.3-1 PUBACK flags", V311, MalformedPacket, "MQTT-2.1.3-1", raw(0x42, 2, 0, 1)),
	fail("PUBACK reason code 0x92", V5, ProtocolError, "", raw(0x40, 3, 0, 1, 0x92)),
	fail("PUBCOMP reason code 0x10", V5, ProtocolError, "", raw(0x70, 3, 0, 1, 0x10)),
	fail("PUBACK v3.1.1 too long", V311, MalformedPacket, "", raw(0x40, 3, 0, 1, 0)),
	fail("PUBACK too short", V5, MalformedPacket, "", raw(0x40, 1, 0)),
	fail("PUBACK property not allowed", V5, MalformedPacket, "", raw(0x40, 7, 0, 1, 0, 3, 0x23, 0, 1)),
	fail("PUBREC reason string twice", V5, ProtocolError, "", raw(0x50, 10, 0, 1, 0x80, 6, 0x1f, 0, 0, 0x1f, 0, 0)),

	// SUBSCRIBE and SUBACK.
	fail("MQTT-3.8.1-1", V311, MalformedPacket, "MQTT-3.8.1-1", pkt(0x80, 0, 1, 0, 1, "a", 0)),
	fail("MQTT-3.8.3-2", V5, ProtocolError, "MQTT-3.8.3-2", pkt(0x82, 0, 1, 0)),
	fail("MQTT-3.8.3-3", V311, ProtocolError, "MQTT-3.8.3-3", pkt(0x82, 0, 1)),
	fail("MQTT-3.8.3-5", V5, MalformedPacket, "MQTT-3.8.3-5", pkt(0x82, 0, 1, 0, 0, 1, "a", 0x41)),
	fail("MQTT-3.8.3-4", V311, MalformedPacket, "MQTT-3.8.3-4", pkt(0x82, 0, 1, 0, 1, "a", 0x04)),
	fail("MQTT-3.8.3-4 QoS 3", V311, MalformedPacket, "MQTT-3.8.3-4", pkt(0x82, 0, 1, 0, 1, "a", 3)),
	fail("MQTT-3.8.3-4", V5, ProtocolError, "MQTT-3.8.3-4", pkt(0x82, 0, 1, 0, 0, 10, "$share/g/", "a", 0x04)),
	fail("SUBSCRIBE QoS 3", V5, ProtocolError, "", pkt(0x82, 0, 1, 0, 0, 1, "a", 3)),
	fail("SUBSCRIBE retain handling 3", V5, ProtocolError, "", pkt(0x82, 0, 1, 0, 0, 1, "a", 0x30)),
	fail("SUBSCRIBE subscription identifier 0", V5, ProtocolError, "", pkt(0x82, 0, 1, 2, 0x0b, 0, 0, 1, "a", 0)),
	fail("SUBSCRIBE two subscription identifiers", V5, ProtocolError, "", pkt(0x82, 0, 1, 4, 0x0b, 1, 0x0b, 2, 0, 1, "a", 0)),
	fail("SUBSCRIBE property not allowed", V5, MalformedPacket, "", pkt(0x82, 0, 1, 3, 0x1f, 0, 0, 0, 1, "a", 0)),
	fail("MQTT-2.2.1-3", V5, ProtocolError, "MQTT-2.2.1-3", pkt(0x82, 0, 0, 0, 0, 1, "a", 0)),
	fail("MQTT-3.8.3-1", V311, MalformedPacket, "MQTT-1.5.4-1", pkt(0x82, 0, 1, 0, 1, 0xff, 0)),
	fail("MQTT-4.7.1-1", V311, TopicFilterInvalid, "MQTT-4.7.1-1", pkt(0x82, 0, 1, 0, 5, "a/#/b", 0)),
	fail("MQTT-4.7.1-1 a#", V5, TopicFilterInvalid, "MQTT-4.7.1-1", pkt(0x82, 0, 1, 0, 0, 2, "a#", 0)),
	fail("MQTT-4.7.1-2", V311, TopicFilterInvalid, "MQTT-4.7.1-2", pkt(0x82, 0, 1, 0, 4, "a+/b", 0)),
	fail("MQTT-4.7.3-1", V5, TopicFilterInvalid, "MQTT-4.7.3-1", pkt(0x82, 0, 1, 0, 0, 0, 0)),
	fail("MQTT-4.8.2-1", V5, TopicFilterInvalid, "MQTT-4.8.2-1", pkt(0x82, 0, 1, 0, 0, 9, "$share//a", 0)),
	fail("MQTT-4.8.2-2", V5, TopicFilterInvalid, "MQTT-4.8.2-2", pkt(0x82, 0, 1, 0, 0, 8, "$share/g", 0)),
	fail("MQTT-4.8.2-2 wildcard in share name", V5, TopicFilterInvalid, "MQTT-4.8.2-2", pkt(0x82, 0, 1, 0, 0, 11, "$share/g+/a", 0)),
	fail("MQTT-4.8.2-2 no filter", V5, TopicFilterInvalid, "MQTT-4.8.2-2", pkt(0x82, 0, 1, 0, 0, 9, "$share/g/", 0)),
	fail("MQTT-3.8.4-6", V5, ProtocolError, "MQTT-3.8.4-6", raw(0x90, 3, 0, 1, 0)),
	fail("SUBACK v3.1.1 code 0x8f", V311, ProtocolError, "", raw(0x90, 3, 0, 1, 0x8f)),
	fail("SUBACK v5 code 3", V5, ProtocolError, "", raw(0x90, 4, 0, 1, 0, 3)),

	// UNSUBSCRIBE and UNSUBACK.
	fail("MQTT-3.10.1-1", V5, MalformedPacket, "MQTT-3.10.1-1", pkt(0xa0, 0, 1, 0, 0, 1, "a")),
	fail("MQTT-3.10.3-2", V311, ProtocolError, "MQTT-3.10.3-2", pkt(0xa2, 0, 1)),
	fail("MQTT-3.10.3-2", V5, ProtocolError, "MQTT-3.10.3-2", pkt(0xa2, 0, 1, 0)),
	fail("MQTT-3.10.3-1", V311, MalformedPacket, "MQTT-1.5.4-2", pkt(0xa2, 0, 1, 0, 1, 0)),
	fail("MQTT-2.3.1-1 UNSUBSCRIBE", V311, ProtocolError, "MQTT-2.3.1-1", pkt(0xa2, 0, 0, 0, 1, "a")),
	fail("UNSUBACK v3.1.1 too long", V311, MalformedPacket, "", raw(0xb0, 3, 0, 1, 0)),
	fail("UNSUBACK v5 without codes", V5, ProtocolError, "", raw(0xb0, 3, 0, 1, 0)),
	fail("UNSUBACK v5 code 1", V5, ProtocolError, "", raw(0xb0, 4, 0, 1, 0, 1)),

	// DISCONNECT, AUTH, PINGREQ.
	fail("DISCONNECT v3.1.1 with body", V311, MalformedPacket, "", raw(0xe0, 1, 0)),
	fail("MQTT-2.1.3-1 DISCONNECT flags", V5, MalformedPacket, "MQTT-2.1.3-1", raw(0xe1, 0)),
	fail("DISCONNECT reason code 0x01", V5, ProtocolError, "", raw(0xe0, 1, 1)),
	fail("DISCONNECT property not allowed", V5, MalformedPacket, "", raw(0xe0, 5, 0, 3, 0x23, 0, 1)),
	fail("DISCONNECT trailing after props", V5, MalformedPacket, "", raw(0xe0, 3, 0, 0, 0)),
	fail("AUTH in v3.1.1", V311, MalformedPacket, "", raw(0xf0, 0)),
	fail("AUTH reason code 0x01", V5, ProtocolError, "", raw(0xf0, 1, 1)),
	fail("AUTH property not allowed", V5, MalformedPacket, "", raw(0xf0, 7, 0x18, 5, 0x11, 0, 0, 0, 1)),
	fail("AUTH data without method", V5, ProtocolError, "", raw(0xf0, 6, 0x18, 4, 0x16, 0, 1, "x")),
	fail("MQTT-2.1.3-1 PINGREQ flags", V311, MalformedPacket, "MQTT-2.1.3-1", raw(0xc1, 0)),
	fail("PINGREQ with body", V311, MalformedPacket, "", raw(0xc0, 1, 0)),
}
