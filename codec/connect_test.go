package codec

import (
	"bytes"
	"testing"
)

var allVersions = []Version{V31, V311, V5}

func TestConnectRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		name := b("MQTT")
		if v == V31 {
			name = b("MQIsdp")
		}
		cases := []*Connect{
			{ClientID: b("client"), CleanStart: true},
			{ClientID: b("c"), KeepAlive: 0xffff},
			{ClientID: b("c"), WillFlag: true, WillTopic: b("will/t"), WillPayload: []byte{0, 1, 2}},
			{ClientID: b("c"), WillFlag: true, WillQoS: 2, WillRetain: true, WillTopic: b("ü"), WillPayload: nil},
			{ClientID: b("c"), UsernameFlag: true, Username: b("user")},
			{ClientID: b("c"), UsernameFlag: true, Username: b(""), PasswordFlag: true, Password: b("")},
			{ClientID: bytes.Repeat([]byte("x"), 300), UsernameFlag: true, Username: b("u"), PasswordFlag: true, Password: []byte{0, 0xff}},
		}
		if v == V5 {
			cases = append(cases,
				&Connect{ClientID: b(""), PasswordFlag: true, Password: b("token")},
				&Connect{ClientID: b("c"), Props: Properties{Present: present(PropSessionExpiry), SessionExpiry: 0xffffffff}},
				&Connect{ClientID: b("c"), WillFlag: true, WillTopic: b("w"),
					WillProps: Properties{Present: present(PropPayloadFormat), PayloadFormat: 1}, WillPayload: b("text")})
		}
		for i, c := range cases {
			c.Version, c.ProtocolName = v, name
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, c, v) })
		}
	}
}

// TestConnectDefaultProtocolName checks that Append picks the name that goes
// with the version when ProtocolName is empty.
func TestConnectDefaultProtocolName(t *testing.T) {
	for _, v := range allVersions {
		c := &Connect{Version: v, ClientID: b("c"), CleanStart: true}
		got, err := decodePacket(c.Append(nil), v)
		if err != nil {
			t.Fatalf("%s: %v", versionName(v), err)
		}
		want := "MQTT"
		if v == V31 {
			want = "MQIsdp"
		}
		if string(got.(*Connect).ProtocolName) != want {
			t.Fatalf("%s: protocol name %q", versionName(v), got.(*Connect).ProtocolName)
		}
	}
}

// TestConnectUnsupportedVersionFields checks that a CONNECT refused with
// UnsupportedProtocolVersion still reports its name and level, so the
// broker can answer in the right format, and that the error maps to the 3.x
// return code 0x01.
func TestConnectUnsupportedVersionFields(t *testing.T) {
	_, err := decodePacket(pkt(0x10, 0, 4, "MQTT", 7, 2, 0, 0, 0, 1, "a"), V5)
	var c Connect
	h, _ := Frame(pkt(0x10, 0, 4, "MQTT", 7, 2, 0, 0, 0, 1, "a"), 0)
	err2 := c.Decode(h, h.Body(pkt(0x10, 0, 4, "MQTT", 7, 2, 0, 0, 0, 1, "a")))
	checkErr(t, err, UnsupportedProtocolVersion, "MQTT-3.1.2-2")
	checkErr(t, err2, UnsupportedProtocolVersion, "MQTT-3.1.2-2")
	if c.Version != 7 || string(c.ProtocolName) != "MQTT" {
		t.Fatalf("got version %d name %q", c.Version, c.ProtocolName)
	}
	if code, ok := AsReasonError(err).ConnackV3(); !ok || code != ConnRefusedProtocolVersion {
		t.Fatalf("ConnackV3 = %d, %v", code, ok)
	}
}

// TestConnectReuse decodes a CONNECT with a Will and properties, then one
// without, into the same value: nothing of the first may remain.
func TestConnectReuse(t *testing.T) {
	var c Connect
	h, _ := Frame(v5Connect.Raw, 0)
	if err := c.Decode(h, h.Body(v5Connect.Raw)); err != nil {
		t.Fatal(err)
	}
	small := raw(0x10, 0x0e, 0, 4, "MQTT", 4, 0x02, 0, 60, 0, 2, "c1")
	h, _ = Frame(small, 0)
	if err := c.Decode(h, h.Body(small)); err != nil {
		t.Fatal(err)
	}
	want := &Connect{ProtocolName: b("MQTT"), Version: V311, CleanStart: true, KeepAlive: 60, ClientID: b("c1")}
	if !samePacket(want, &c) {
		t.Fatalf("got %+v", c)
	}
}

// TestConnectWillPayloadFormatDecoded checks that PayloadFormatInvalid
// comes with the CONNECT fully decoded.
func TestConnectWillPayloadFormatDecoded(t *testing.T) {
	in := connect5(0x06, 0, 0, 1, "a", 2, 0x01, 1, 0, 1, "w", 0, 1, 0xff)
	var c Connect
	h, _ := Frame(in, 0)
	checkErr(t, c.Decode(h, h.Body(in)), PayloadFormatInvalid, "")
	if string(c.ClientID) != "a" || string(c.WillTopic) != "w" || !bytes.Equal(c.WillPayload, []byte{0xff}) {
		t.Fatalf("got %+v", c)
	}
}

func TestConnackRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		cases := []*Connack{{}, {SessionPresent: true}, {Code: ConnRefusedServerUnavailable}}
		if v == V5 {
			cases = append(cases,
				&Connack{Code: byte(QuotaExceeded), Props: Properties{Present: present(PropReasonString), ReasonString: b("full")}},
				&Connack{SessionPresent: true, Props: Properties{Present: present(PropReceiveMaximum, PropMaximumPacketSize, PropRetainAvailable),
					ReceiveMaximum: 1, MaximumPacketSize: 1 << 20}})
			cases[2].Code = byte(ServerUnavailable)
		}
		for i, c := range cases {
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, c, v) })
		}
	}
}

func TestConnackV3Mapping(t *testing.T) {
	f := func(code ReasonCode, want byte, wantOK bool) {
		t.Helper()
		got, ok := (&ReasonError{Code: code}).ConnackV3()
		if got != want || ok != wantOK {
			t.Fatalf("ConnackV3(%#x) = %d, %v; want %d, %v", byte(code), got, ok, want, wantOK)
		}
	}
	f(UnsupportedProtocolVersion, ConnRefusedProtocolVersion, true)
	f(ClientIdentifierNotValid, ConnRefusedIdentifierRejected, true)
	f(BadUserNameOrPassword, ConnRefusedBadUserNameOrPassword, true)
	f(MalformedPacket, 0, false)
	f(ProtocolError, 0, false)
}
