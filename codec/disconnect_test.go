package codec

import (
	"bytes"
	"testing"
)

func TestDisconnectRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		cases := []*Disconnect{{}}
		if v == V5 {
			cases = append(cases,
				&Disconnect{Code: DisconnectWithWill},
				&Disconnect{Code: SessionTakenOver, Props: Properties{Present: present(PropReasonString), ReasonString: b("taken over")}},
				&Disconnect{Props: Properties{Present: present(PropSessionExpiry), SessionExpiry: 30}},
				&Disconnect{Code: UseAnotherServer, Props: Properties{Present: present(PropServerReference), ServerReference: b("other:1883"), User: users("a", "b")}})
		}
		for i, p := range cases {
			t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, v) })
		}
	}
}

func TestDisconnectV3IgnoresCode(t *testing.T) {
	p := &Disconnect{Code: ServerShuttingDown, Props: Properties{User: users("a", "b")}}
	if got := p.Append(nil, V311); !bytes.Equal(got, raw(0xe0, 0)) {
		t.Fatalf("got % x", got)
	}
}

func TestAuthRoundTrip(t *testing.T) {
	cases := []*Auth{
		{},
		{Code: ContinueAuthentication},
		{Code: ReAuthenticate, Props: Properties{Present: present(PropAuthMethod), AuthMethod: b("SCRAM-SHA-1")}},
		{Props: Properties{Present: present(PropAuthMethod, PropAuthData, PropReasonString), AuthMethod: b("x"), AuthData: []byte{0, 1}, ReasonString: b("ok")}},
	}
	for i, p := range cases {
		t.Run(string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, V5) })
	}
}

func TestAuthOnlyV5(t *testing.T) {
	for _, v := range []Version{V31, V311} {
		var a Auth
		checkErr(t, a.Decode(FixedHeader{Type: AUTH, HeaderLen: 2}, nil, v), MalformedPacket, "")
	}
}
