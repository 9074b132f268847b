package codec

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

func versionName(v Version) string {
	switch v {
	case V31:
		return "v3.1"
	case V311:
		return "v3.1.1"
	case V5:
		return "v5"
	}
	return fmt.Sprintf("level%d", v)
}

func caseName(c wireCase) string { return c.Name + "/" + versionName(c.V) }

// checkErr fails t unless err is a *ReasonError with code and spec.
func checkErr(t *testing.T, err error, code ReasonCode, spec string) {
	t.Helper()
	re := AsReasonError(err)
	if re == nil {
		t.Fatalf("got error %v; want a *ReasonError with code %#x", err, byte(code))
	}
	if re.Code != code || re.SpecID != spec {
		t.Fatalf("got code %#x spec %q (%v); want code %#x spec %q", byte(re.Code), re.SpecID, re, byte(code), spec)
	}
}

// roundTrip encodes pkt for v, checks the frame, decodes it and checks the
// result equals pkt. It returns the encoding.
func roundTrip(t *testing.T, pkt any, v Version) []byte {
	t.Helper()
	enc := encodePacket(pkt, v)
	got, err := decodePacket(enc, v)
	if err != nil {
		t.Fatalf("decode of % x: %v", enc, err)
	}
	if p, ok := pkt.(*Publish); ok && p.Len(v) != len(enc) {
		t.Fatalf("Publish.Len = %d; encoded %d bytes", p.Len(v), len(enc))
	}
	if !samePacket(pkt, got) {
		t.Fatalf("round trip differs\nencoded % x\nwant %+v\ngot  %+v", enc, pkt, got)
	}
	return enc
}

func TestCorpusDecode(t *testing.T) {
	for _, c := range corpus {
		t.Run(caseName(c), func(t *testing.T) {
			got, err := decodePacket(c.Raw, c.V)
			if c.Packet == nil {
				checkErr(t, err, c.Code, c.Spec)
				return
			}
			if err != nil {
				t.Fatalf("decode % x: %v", c.Raw, err)
			}
			if !samePacket(c.Packet, got) {
				t.Fatalf("decode % x\nwant %+v\ngot  %+v", c.Raw, c.Packet, got)
			}
		})
	}
}

func TestCorpusGolden(t *testing.T) {
	n := 0
	for _, c := range corpus {
		if !c.Golden {
			continue
		}
		n++
		t.Run(caseName(c), func(t *testing.T) {
			if got := encodePacket(c.Packet, c.V); !bytes.Equal(got, c.Raw) {
				t.Fatalf("encode\nwant % x\ngot  % x", c.Raw, got)
			}
		})
	}
	if n < 30 {
		t.Fatalf("only %d golden vectors", n)
	}
}

// TestCorpusReencode checks that every valid corpus packet, lenient forms
// included, re-encodes to something that decodes to the same packet.
func TestCorpusReencode(t *testing.T) {
	for _, c := range corpus {
		if c.Packet == nil {
			continue
		}
		t.Run(caseName(c), func(t *testing.T) {
			got, err := decodePacket(c.Raw, c.V)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, got, c.V)
		})
	}
}

// TestCorpusTruncated checks that every valid packet cut short, with its
// remaining length adjusted, fails with a *ReasonError and never panics.
func TestCorpusTruncated(t *testing.T) {
	for _, c := range corpus {
		if c.Packet == nil {
			continue
		}
		h, err := Frame(c.Raw, 0)
		if err != nil {
			t.Fatalf("%s: %v", caseName(c), err)
		}
		body := h.Body(c.Raw)
		for n := 0; n < len(body); n++ {
			h2 := h
			h2.Remaining = n
			_, err := decodeBody(h2, body[:n], c.V)
			if err != nil && AsReasonError(err) == nil {
				t.Fatalf("%s cut to %d: error %v is not a *ReasonError", caseName(c), n, err)
			}
		}
	}
}

// TestCorpusVersions decodes every corpus packet with every version: no
// panic, and every failure is a *ReasonError.
func TestCorpusVersions(t *testing.T) {
	for _, c := range corpus {
		for _, v := range []Version{V31, V311, V5, 0, 6} {
			if _, err := decodePacket(c.Raw, v); err != nil && AsReasonError(err) == nil {
				t.Fatalf("%s as %s: error %v is not a *ReasonError", caseName(c), versionName(v), err)
			}
		}
	}
}

// fillDirty sets every field reachable from v to a non-zero value, so that a
// decoder that forgets to clear a field (including one added later) is
// caught.
func fillDirty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		fillDirty(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			fillDirty(v.Field(i))
		}
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Int:
		v.SetInt(1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillDirty(s.Index(0))
		v.Set(s)
	}
}

// TestCorpusDecodeReused decodes every valid corpus packet into a value whose
// fields are all set: the result must equal a fresh decode.
func TestCorpusDecodeReused(t *testing.T) {
	for _, c := range corpus {
		if c.Packet == nil {
			continue
		}
		if _, ok := c.Packet.(Type); ok {
			continue
		}
		t.Run(caseName(c), func(t *testing.T) {
			h, _ := Frame(c.Raw, 0)
			dirty := reflect.New(reflect.TypeOf(c.Packet).Elem())
			fillDirty(dirty)
			var err error
			switch p := dirty.Interface().(type) {
			case *Connect:
				err = p.Decode(h, h.Body(c.Raw))
			case interface {
				Decode(FixedHeader, []byte, Version) error
			}:
				err = p.Decode(h, h.Body(c.Raw), c.V)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !samePacket(c.Packet, dirty.Interface()) {
				t.Fatalf("want %+v\ngot  %+v", c.Packet, dirty.Interface())
			}
		})
	}
}
