package store

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// collect decodes a transfer into the ops that would store it.
func collect(b []byte) ([]Op, error) {
	var ops []Op
	err := DecodeTransfer(b, Visitor{
		Session:  func(s Session) { ops = append(ops, Op{Session: &s}) },
		Sub:      func(s Subscription) { ops = append(ops, Op{Sub: &s}) },
		Outbound: func(o Outbound) { ops = append(ops, Op{Outbound: &o}) },
		Inbound:  func(i InboundQoS2) { ops = append(ops, Op{Inbound: &i}) },
		Will:     func(w Will) { ops = append(ops, Op{Will: &w}) },
	})
	return ops, err
}

// TestTransferRoundTrip: a session's records (every kind, the v5
// subscription options and identifiers, outbound states, the will) come
// out of a transfer as they went in, in order.
func TestTransferRoundTrip(t *testing.T) {
	in := fixture("moving-1")
	b, err := AppendTransfer(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := collect(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d records out, %d in", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.Outbound != nil && b.Outbound != nil && a.Outbound.State == OutboundReleased {
			// A released record keeps no message body.
			a.Outbound.Msg, b.Outbound.Msg = Message{}, Message{}
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("record %d: got %+v, want %+v", i, b, a)
		}
	}
}

// TestTransferRefused: a transfer holds one session's records, the
// session first; anything else is refused whole, on both sides.
func TestTransferRefused(t *testing.T) {
	f := fixture("a")
	for name, ops := range map[string][]Op{
		"empty":          nil,
		"no session":     f[1:],
		"two clients":    append(fixture("a")[:2], fixture("b")[1]),
		"a delete":       {f[0], {Delete: true, Sub: f[1].Sub}},
		"a retained msg": {f[0], {Retained: &Message{Topic: []byte("t")}}},
	} {
		if _, err := AppendTransfer(nil, ops); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	good, err := AppendTransfer(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	two, _ := AppendTransfer(nil, fixture("b"))
	for name, b := range map[string][]byte{
		"nothing":      nil,
		"version only": {transferVersion},
		"bad version":  append([]byte{9}, good[1:]...),
		"truncated":    good[:len(good)-1],
		"two sessions": append(append([]byte(nil), good...), two[1:]...),
		"huge length":  {transferVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"subs first":   rawTransfer(t, f[1], f[0]),
	} {
		called := false
		err := DecodeTransfer(b, Visitor{Session: func(Session) { called = true }, Sub: func(Subscription) { called = true }})
		if err == nil || !errors.Is(err, ErrTransfer) {
			t.Errorf("%s: decoded (err %v)", name, err)
		}
		if called {
			t.Errorf("%s: records handed over from a transfer that does not decode", name)
		}
	}
}

// rawTransfer encodes ops as a transfer without AppendTransfer's checks.
func rawTransfer(t *testing.T, ops ...Op) []byte {
	u, err := encodeOps(ops, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{transferVersion}
	for _, e := range u.ents {
		b = binary.AppendUvarint(b, uint64(len(e.key)))
		b = append(b, e.key...)
		b = binary.AppendUvarint(b, uint64(len(e.val)))
		b = append(b, e.val...)
	}
	return b
}

// FuzzDecodeTransfer: no transfer from a peer makes DecodeTransfer panic,
// and what it accepts encodes again to the same records.
func FuzzDecodeTransfer(f *testing.F) {
	good, err := AppendTransfer(nil, fixture("c1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{transferVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := collect(b)
		if err != nil {
			if !errors.Is(err, ErrTransfer) {
				t.Fatalf("error %v does not wrap ErrTransfer", err)
			}
			return
		}
		again, err := AppendTransfer(nil, ops)
		if err != nil {
			return // decodable, not storable (a filter holding U+0000)
		}
		ops2, err := collect(again)
		if err != nil {
			t.Fatalf("re-encoded transfer does not decode: %v", err)
		}
		if !reflect.DeepEqual(ops, ops2) {
			t.Fatalf("round trip changed the records:\n %+v\n %+v", ops, ops2)
		}
	})
}
