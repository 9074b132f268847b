package codec

import (
	"bytes"
	"testing"
)

func TestAckRoundTrip(t *testing.T) {
	for _, v := range allVersions {
		for _, typ := range []Type{PUBACK, PUBREC, PUBREL, PUBCOMP} {
			cases := []*Ack{{Type: typ, PacketID: 1}, {Type: typ, PacketID: 0xffff}}
			if v == V5 {
				code := QuotaExceeded
				if typ == PUBREL || typ == PUBCOMP {
					code = PacketIdentifierNotFound
				}
				cases = append(cases,
					&Ack{Type: typ, PacketID: 2, Code: code},
					&Ack{Type: typ, PacketID: 3, Props: Properties{User: users("k", "v")}},
					&Ack{Type: typ, PacketID: 4, Code: code, Props: Properties{Present: present(PropReasonString), ReasonString: b("why")}})
			}
			for i, p := range cases {
				t.Run(versionName(v)+"/"+string(rune('a'+i)), func(t *testing.T) { roundTrip(t, p, v) })
			}
		}
	}
}

// TestAckShortForms checks the v5 encoder leaves out what §3.4.2.1 lets it.
func TestAckShortForms(t *testing.T) {
	f := func(p *Ack, v Version, want []byte) {
		t.Helper()
		if got := p.Append(nil, v); !bytes.Equal(got, want) {
			t.Fatalf("Append(%+v, %d) = % x; want % x", p, v, got, want)
		}
	}
	f(&Ack{Type: PUBACK, PacketID: 1}, V5, raw(0x40, 2, 0, 1))
	f(&Ack{Type: PUBREL, PacketID: 1}, V5, raw(0x62, 2, 0, 1))
	f(&Ack{Type: PUBREC, PacketID: 1, Code: UnspecifiedError}, V5, raw(0x50, 3, 0, 1, 0x80))
	f(&Ack{Type: PUBCOMP, PacketID: 1, Props: Properties{Present: present(PropReasonString)}}, V5, raw(0x70, 7, 0, 1, 0, 3, 0x1f, 0, 0))
	// 3.x ignores code and properties.
	f(&Ack{Type: PUBACK, PacketID: 1, Code: UnspecifiedError, Props: Properties{User: users("a", "b")}}, V311, raw(0x40, 2, 0, 1))
}

// TestAckCodes checks every reason code against the table for each type.
func TestAckCodes(t *testing.T) {
	valid := map[Type][]ReasonCode{
		PUBACK: {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		PUBREC: {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
		PUBREL: {0x00, 0x92}, PUBCOMP: {0x00, 0x92},
	}
	for typ, codes := range valid {
		for c := range 256 {
			ok := false
			for _, vc := range codes {
				ok = ok || vc == ReasonCode(c)
			}
			flags := 0
			if typ == PUBREL {
				flags = 2
			}
			_, err := decodePacket(raw(int(typ)<<4|flags, 3, 0, 1, c), V5)
			if ok != (err == nil) {
				t.Errorf("type %d code %#x: err %v, valid %v", typ, c, err, ok)
			}
		}
	}
}

func TestAckReuse(t *testing.T) {
	var a Ack
	in := raw(0x50, 9, 0, 7, 0x80, 5, 0x1f, 0, 2, "no")
	h, _ := Frame(in, 0)
	if err := a.Decode(h, h.Body(in), V5); err != nil {
		t.Fatal(err)
	}
	in = raw(0x40, 2, 0, 8)
	h, _ = Frame(in, 0)
	if err := a.Decode(h, h.Body(in), V5); err != nil {
		t.Fatal(err)
	}
	if !samePacket(&Ack{Type: PUBACK, PacketID: 8}, &a) {
		t.Fatalf("got %+v", a)
	}
	// The wrong type is refused.
	checkErr(t, a.Decode(FixedHeader{Type: SUBACK, Remaining: 2, HeaderLen: 2}, []byte{0, 1}, V5), MalformedPacket, "")
}
