package codec

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrame(t *testing.T) {
	pub := raw(0x30, 7, 0, 3, "a/b", "hi")
	long := pkt(0x30, 0, 1, "t", bytes.Repeat([]byte("x"), 200)) // 2-byte remaining length
	f := func(name string, buf []byte, max int, wantH FixedHeader, wantErr error) {
		t.Helper()
		h, err := Frame(buf, max)
		if !errors.Is(err, wantErr) {
			if re, want := AsReasonError(err), AsReasonError(wantErr); re == nil || want == nil || re.Code != want.Code || re.SpecID != want.SpecID {
				t.Fatalf("%s: err = %v; want %v", name, err, wantErr)
			}
		}
		if h != wantH {
			t.Fatalf("%s: h = %+v; want %+v", name, h, wantH)
		}
	}
	pubH := FixedHeader{Type: PUBLISH, Remaining: 7, HeaderLen: 2}
	longH := FixedHeader{Type: PUBLISH, Remaining: 203, HeaderLen: 3}

	f("empty", nil, 0, FixedHeader{}, ErrIncomplete)
	f("first byte only", pub[:1], 0, FixedHeader{}, ErrIncomplete)
	f("partial length", long[:2], 0, FixedHeader{}, ErrIncomplete)
	f("header, no body", pub[:2], 0, pubH, ErrIncomplete)
	f("partial body", pub[:6], 0, pubH, ErrIncomplete)
	f("partial body, long", long[:100], 0, longH, ErrIncomplete)
	f("complete", pub, 0, pubH, nil)
	f("complete, long", long, 0, longH, nil)
	f("two packets back to back", append(append([]byte{}, pub...), long...), 0, pubH, nil)
	f("complete with a partial second", append(append([]byte{}, pub...), 0xc0), 0, pubH, nil)
	f("PINGREQ", raw(0xc0, 0), 0, FixedHeader{Type: PINGREQ, HeaderLen: 2}, nil)
	f("flags kept", raw(0x3d, 0), 0, FixedHeader{Type: PUBLISH, Flags: 0x0d, HeaderLen: 2}, nil)
	f("at max", pub, len(pub), pubH, nil)

	f("type 0", raw(0x00, 0), 0, FixedHeader{}, errTypeZero)
	f("type 0 first byte only", raw(0x00), 0, FixedHeader{}, errTypeZero)
	f("5th continuation byte", raw(0x30, 0xff, 0xff, 0xff, 0xff), 0, FixedHeader{}, errVarintLong)
	f("5th continuation byte, more", raw(0x30, 0x80, 0x80, 0x80, 0x80, 0x01), 0, FixedHeader{}, errVarintLong)
	f("MQTT-1.5.5-1 non-minimal", raw(0x30, 0x80, 0x00), 0, FixedHeader{}, errVarintNonMin)
	f("MQTT-1.5.5-1 non-minimal 4 bytes", raw(0x30, 0x81, 0x80, 0x80, 0x00), 0, FixedHeader{}, errVarintNonMin)

	// The largest remaining length, header only: incomplete, not refused.
	maxH := FixedHeader{Type: PUBLISH, Remaining: MaxVarint, HeaderLen: 5}
	f("protocol maximum", raw(0x30, 0xff, 0xff, 0xff, 0x7f), 0, maxH, ErrIncomplete)
	f("protocol maximum, negative max", raw(0x30, 0xff, 0xff, 0xff, 0x7f), -1, maxH, ErrIncomplete)
	// Too large, decided from the header alone.
	f("too large, header only", raw(0x30, 0xff, 0xff, 0xff, 0x7f), 1024, maxH, errPacketTooBig)
	f("too large by one", pub, len(pub)-1, pubH, errPacketTooBig)
	f("too large, header only, 2 bytes", long[:3], 100, longH, errPacketTooBig)
}

func TestFramePacketTooLargeCode(t *testing.T) {
	_, err := Frame(raw(0x30, 0x80, 0x80, 0x01), 1000)
	checkErr(t, err, PacketTooLarge, "")
}

// TestFramePrefixes checks every prefix of every corpus packet: ErrIncomplete
// (or the same malformation), never a wrong header.
func TestFramePrefixes(t *testing.T) {
	for _, c := range corpus {
		full, ferr := Frame(c.Raw, 0)
		for n := range len(c.Raw) {
			h, err := Frame(c.Raw[:n], 0)
			if err == nil {
				t.Fatalf("%s: prefix %d framed as complete", caseName(c), n)
			}
			if err == ErrIncomplete {
				if h != (FixedHeader{}) && h != full {
					t.Fatalf("%s: prefix %d gives header %+v; full %+v", caseName(c), n, h, full)
				}
				continue
			}
			if ferr == nil || err.Error() != ferr.Error() {
				t.Fatalf("%s: prefix %d: %v", caseName(c), n, err)
			}
		}
	}
}

func TestFrameBody(t *testing.T) {
	buf := raw(0x30, 3, 0, 1, "t", 0xc0, 0)
	h, err := Frame(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	body := h.Body(buf)
	if !bytes.Equal(body, raw(0, 1, "t")) || cap(body) != 3 {
		t.Fatalf("Body = % x cap %d", body, cap(body))
	}
}

func TestVarint(t *testing.T) {
	f := func(v int, want []byte) {
		t.Helper()
		got := AppendVarint(nil, v)
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendVarint(%d) = % x; want % x", v, got, want)
		}
		if varintLen(v) != len(want) {
			t.Fatalf("varintLen(%d) = %d; want %d", v, varintLen(v), len(want))
		}
		x, rest, err := readVarint(append(got, 0xaa))
		if err != nil || x != v || !bytes.Equal(rest, []byte{0xaa}) {
			t.Fatalf("readVarint(% x) = %d, % x, %v", got, x, rest, err)
		}
	}
	// The boundaries of §1.5.5 table 1-1.
	f(0, raw(0x00))
	f(127, raw(0x7f))
	f(128, raw(0x80, 0x01))
	f(16383, raw(0xff, 0x7f))
	f(16384, raw(0x80, 0x80, 0x01))
	f(2097151, raw(0xff, 0xff, 0x7f))
	f(2097152, raw(0x80, 0x80, 0x80, 0x01))
	f(MaxVarint, raw(0xff, 0xff, 0xff, 0x7f))

	bad := func(in []byte, want error) {
		t.Helper()
		if _, _, err := readVarint(in); err != want {
			t.Fatalf("readVarint(% x) err = %v; want %v", in, err, want)
		}
	}
	bad(nil, errShort)
	bad(raw(0x80), errShort)
	bad(raw(0x80, 0x80, 0x80, 0x80), errVarintLong)
	bad(raw(0x80, 0x00), errVarintNonMin)
}

func TestAppendVarintPanicsOutOfRange(t *testing.T) {
	for _, v := range []int{-1, MaxVarint + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("AppendVarint(%d) did not panic", v)
				}
			}()
			AppendVarint(nil, v)
		}()
	}
}

func TestDecodeEmpty(t *testing.T) {
	if err := DecodeEmpty(FixedHeader{Type: PINGREQ, HeaderLen: 2}); err != nil {
		t.Fatal(err)
	}
	checkErr(t, DecodeEmpty(FixedHeader{Type: PINGRESP, Flags: 1, HeaderLen: 2}), MalformedPacket, "MQTT-2.1.3-1")
	checkErr(t, DecodeEmpty(FixedHeader{Type: DISCONNECT, Remaining: 1, HeaderLen: 2}), MalformedPacket, "")
	if !bytes.Equal(AppendPingreq([]byte{1}), raw(1, 0xc0, 0)) || !bytes.Equal(AppendPingresp(nil), raw(0xd0, 0)) {
		t.Fatal("ping encoding")
	}
}
