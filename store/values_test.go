package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sampleEntries are valid encoded pairs of every record type.
func sampleEntries(t testing.TB) []entry {
	t.Helper()
	m := msg("t/1", "payload")
	m.Props, m.ExpireAt, m.Retain = []byte{0x01, 0x01}, 1<<62, true
	ops := append(fixture("c1"), Op{Retained: &m}, Op{Outbound: &Outbound{ClientID: "", Seq: 1 << 63, Msg: Message{Topic: []byte("x")}}},
		Op{Delayed: &Delayed{ID: 7, PublishAt: 1 << 61, Origin: "c1", Msg: m}}, Op{Delayed: &Delayed{ID: 1 << 63, Msg: Message{Topic: []byte("y")}}})
	u, err := encodeOps(ops, 0)
	if err != nil {
		t.Fatal(err)
	}
	return u.ents
}

// recordOp turns a decoded record back into the op that stores it.
func recordOp(r *record) Op {
	switch r.kind {
	case prefixSession:
		return Op{Session: &r.session}
	case prefixSub:
		return Op{Sub: &r.sub}
	case prefixOutbound:
		return Op{Outbound: &r.outbound}
	case prefixInbound:
		return Op{Inbound: &r.inbound}
	case prefixRetained:
		return Op{Retained: &r.retained}
	case prefixWill:
		return Op{Will: &r.will}
	case prefixDelayed:
		return Op{Delayed: &r.delayed}
	}
	return Op{}
}

func TestValuesRoundTrip(t *testing.T) {
	for _, e := range sampleEntries(t) {
		r, err := decodeRecord(e.key, e.val)
		if err != nil {
			t.Fatalf("decode %q: %v", e.key, err)
		}
		u, err := encodeOps([]Op{recordOp(&r)}, 0)
		if err != nil {
			t.Fatalf("re-encode %q: %v", e.key, err)
		}
		if string(u.ents[0].key) != string(e.key) || string(u.ents[0].val) != string(e.val) {
			t.Fatalf("re-encoding %q changed it:\n %q %q\n %q %q", e.key, e.key, e.val, u.ents[0].key, u.ents[0].val)
		}
	}
}

// Every truncation and every single-byte change of a valid value decodes
// to an error or a value, never a panic; truncations are errors (except
// for the message payload, which is the value's tail).
func TestValuesCorrupt(t *testing.T) {
	for _, e := range sampleEntries(t) {
		full, err := decodeRecord(e.key, e.val)
		if err != nil {
			t.Fatal(err)
		}
		// The payload is a message's tail: cutting into it still decodes.
		tail := len(full.outbound.Msg.Payload) + len(full.retained.Payload) + len(full.will.Msg.Payload) + len(full.delayed.Msg.Payload)
		for n := range len(e.val) {
			_, err := decodeRecord(e.key, e.val[:n])
			if err == nil && n < len(e.val)-tail {
				t.Fatalf("%q cut to %d bytes decodes without error", e.key, n)
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
		}
		for i := range e.val {
			for _, b := range []byte{0, 1, 2, 3, 0x7f, 0x80, 0xff} {
				v := append([]byte(nil), e.val...)
				v[i] = b
				_, _ = decodeRecord(e.key, v)
			}
		}
		hasMsg := e.key[0] == prefixOutbound || e.key[0] == prefixRetained || e.key[0] == prefixWill || e.key[0] == prefixDelayed
		if _, err := decodeRecord(e.key, append(append([]byte(nil), e.val...), 0)); err == nil && !hasMsg {
			t.Fatalf("%q with a trailing byte decodes without error", e.key)
		}
	}
	f := func(key, val string) {
		t.Helper()
		if _, err := decodeRecord([]byte(key), []byte(val)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeRecord(%q, %q) = %v, want ErrCorrupt", key, val, err)
		}
	}
	f("", "\x01")
	f("s", "\x01")
	f("sab", "\x01")                                                                                                             // no separator
	f("sab\x00x", "\x01\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")                    // session key with a suffix
	f("sab\x00", "\x02\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")                                                     // unknown format version
	f("uab\x00", "\x01\x00\x00\x00\x00")                                                                                         // subscription without a filter
	f("uab\x00f", "\x01\x03\x00\x00\x00")                                                                                        // QoS 3
	f("uab\x00f", "\x01\x00\x04\x00\x00")                                                                                        // unknown flag
	f("uab\x00f", "\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")                                                // varint overflow
	f("uab\x00f", "\x01\x00\x00\x00\xff\xff\xff\xff\x7f")                                                                        // id > 32 bits
	f("iab\x00\x00\x00\x00\x00\x00\x00\x01", "\x01\x00\x01\x03")                                                                 // state 3
	f("iab\x00\x00\x01", "\x01")                                                                                                 // short seq
	f("rab\x00\x00", "\x01")                                                                                                     // short packet id
	f("tx", "\x01\x08")                                                                                                          // unknown message flag
	f("tx", "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05ab")                                        // props longer than the value
	f("zab\x00", "\x01")                                                                                                         // unknown type
	f("d\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", "\x01\x00\x00")                                           // delayed: short key
	f("d\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01", "\x01\x00\x00"+strings.Repeat("\x00", 16)+"\x00\x00") // delayed: empty topic
}

// FuzzDecodeValues feeds arbitrary keys and values to the decoders: they
// must not panic, and whatever decodes must re-encode to a pair that
// decodes to the same record.
func FuzzDecodeValues(f *testing.F) {
	for _, e := range sampleEntries(f) {
		f.Add(e.key, e.val)
	}
	f.Fuzz(func(t *testing.T, key, val []byte) {
		r, err := decodeRecord(key, val)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		u, err := encodeOps([]Op{recordOp(&r)}, 0)
		if err != nil {
			return // e.g. a filter holding U+0000: decodable, not storable
		}
		r2, err := decodeRecord(u.ents[0].key, u.ents[0].val)
		if err != nil {
			t.Fatalf("re-encoded %q %q does not decode: %v", u.ents[0].key, u.ents[0].val, err)
		}
		r.cid, r2.cid = nil, nil
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the record:\n %+v\n %+v", r, r2)
		}
	})
}
