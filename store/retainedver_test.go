package store

import (
	"reflect"
	"testing"
)

// TestRetainedVersionRoundTrip: a cluster's retained message keeps its
// version and node through the store, a tombstone (versioned, empty
// payload) is stored and loaded as one, and the record of a single node
// is byte for byte what it was before versions existed.
func TestRetainedVersionRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		st := be.reopen(t, be.open(t))
		m := msg("v/1", "new")
		m.Retain, m.Props, m.Version, m.VersionNode = true, []byte{0x03, 0x00, 0x01, 'x'}, 1<<60+5, []byte("node-b")
		tomb := Message{Topic: []byte("v/2"), Retain: true, Created: 1700000000e9, ExpireAt: 1 << 62, Version: 1<<60 + 6, VersionNode: []byte("node-a")}
		plain := msg("v/3", "old")
		plain.Retain = true
		apply(t, st, Op{Retained: &m}, Op{Retained: &tomb}, Op{Retained: &plain})
		st = be.reopen(t, st)
		got := map[string]Message{}
		if err := st.Load(Visitor{Retained: func(m Message) { got[string(m.Topic)] = m }}); err != nil {
			t.Fatal(err)
		}
		tomb.Payload = nil
		for _, want := range []Message{m, tomb, plain} {
			g := got[string(want.Topic)]
			if !reflect.DeepEqual(g, want) {
				t.Fatalf("%s loaded as %+v, want %+v", want.Topic, g, want)
			}
		}
	})
	// The unversioned record's value is the format written before (no
	// flag 8, no version fields): old stores read, and a single node
	// writes what it wrote.
	plain := msg("v/3", "old")
	plain.Retain = true
	v := appendRetainedValue(nil, &plain)
	want := append([]byte{formatV1, 1 | msgRetain}, 0, 0, 0, 0, 0, 0, 0, 0)
	if len(v) < len(want)+8 || string(v[:len(want)]) != string(want) || v[len(want)+8] != 0 || string(v[len(want)+9:]) != "old" {
		t.Fatalf("unversioned retained value %x", v)
	}
	r := reader{b: v}
	r.version()
	var back Message
	r.message(&back, false)
	if r.end() != nil || back.Version != 0 || back.VersionNode != nil {
		t.Fatalf("decoded %+v, %v", back, r.err)
	}
}
