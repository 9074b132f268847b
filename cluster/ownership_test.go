package cluster

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestOwnerRoundTrip: an owners bucket value decodes to what was encoded,
// and malformed ones are refused.
func TestOwnerRoundTrip(t *testing.T) {
	for _, o := range []owner{
		{Node: "n1", Epoch: 1, Client: "c"},
		{Node: "node_2", Epoch: 1 << 40, From: "n-1", Client: "a.b c/#+\x01é"},
		{Node: "n", Epoch: 2, From: "m", Client: strings.Repeat("x", 70000)},
	} {
		got, err := decodeOwner(encodeOwner(nil, o))
		if err != nil || got != o {
			t.Fatalf("%+v: decoded %+v, %v", o, got, err)
		}
	}
	good := encodeOwner(nil, owner{Node: "n1", Epoch: 3, From: "n2", Client: "c"})
	for name, b := range map[string][]byte{
		"empty":        nil,
		"bad version":  append([]byte{9}, good[1:]...),
		"truncated":    good[:len(good)-1],
		"trailing":     append(append([]byte(nil), good...), 0),
		"no node":      encodeOwner(nil, owner{Epoch: 1, Client: "c"}),
		"bad node id":  encodeOwner(nil, owner{Node: "a.b", Epoch: 1, Client: "c"}),
		"bad from id":  encodeOwner(nil, owner{Node: "a", From: "x y", Epoch: 1, Client: "c"}),
		"huge length":  {ownerVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"no epoch end": {ownerVersion, 0x80},
	} {
		if o, err := decodeOwner(b); err == nil {
			t.Errorf("%s: decoded %+v", name, o)
		}
	}
}

// TestOwnerKey: every client id, whatever bytes it holds, gives a key
// NATS KV accepts, distinct ids give distinct keys, and a long id's key
// stays short.
func TestOwnerKey(t *testing.T) {
	ids := []string{"a", "a.b", "a b", "*", ">", "$SYS", "é/#", strings.Repeat("z", maxPlainKey), strings.Repeat("z", maxPlainKey+1), strings.Repeat("y", 65535)}
	seen := map[string]string{}
	for _, id := range ids {
		k := ownerKey(id)
		if !validKVKey(k) {
			t.Errorf("%.20q: key %q is not a valid KV key", id, k)
		}
		if len(k) > 700 {
			t.Errorf("%.20q: key of %d bytes", id, len(k))
		}
		if other, dup := seen[k]; dup {
			t.Errorf("%.20q and %.20q share key %q", id, other, k)
		}
		seen[k] = id
	}
}

// validKVKey is NATS KV's rule for keys (jetstream.keyValid, not
// exported): letters, digits and -/_=., no leading or trailing '.'.
func validKVKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-/_=.", c)) {
			return false
		}
	}
	return true
}

// TestMoveWire: the take request and moved notice round-trip; malformed
// ones are refused.
func TestMoveWire(t *testing.T) {
	rev, id, err := decodeTake(encodeTake(42, "client/1"))
	if err != nil || rev != 42 || id != "client/1" {
		t.Fatalf("take: %d %q %v", rev, id, err)
	}
	for _, stored := range []bool{true, false} {
		s, rev, id, err := decodeMoved(encodeMoved(stored, 1<<50, "c"))
		if err != nil || s != stored || rev != 1<<50 || id != "c" {
			t.Fatalf("moved: %v %d %q %v", s, rev, id, err)
		}
	}
	for _, b := range [][]byte{nil, {moveVersion}, {2, 1, 'c'}, {moveVersion, 0x80}, {moveVersion, 5}} {
		if _, _, err := decodeTake(b); err == nil {
			t.Errorf("take %v decoded", b)
		}
	}
	for _, b := range [][]byte{nil, {moveVersion, 1}, {moveVersion, 2, 1, 'c'}, {moveVersion, 1, 0x80, 'c'}, {moveVersion, 1, 5}} {
		if _, _, _, err := decodeMoved(b); err == nil {
			t.Errorf("moved %v decoded", b)
		}
	}
}

// FuzzDecodeOwner: no bucket value makes decodeOwner panic, and what it
// accepts encodes back to the same bytes.
func FuzzDecodeOwner(f *testing.F) {
	f.Add(encodeOwner(nil, owner{Node: "n1", Epoch: 3, From: "n2", Client: "c"}))
	f.Add([]byte{ownerVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodeOwner(b)
		if err != nil {
			return
		}
		if again := encodeOwner(nil, o); string(again) != string(b) {
			// Only a non-minimal uvarint may differ.
			if o2, err := decodeOwner(again); err != nil || o2 != o {
				t.Fatalf("%+v re-encodes to %q, which decodes to %+v, %v", o, again, o2, err)
			}
		}
	})
}

// FuzzDecodeMove: no take request or moved notice makes the decoders
// panic, and what they accept round-trips.
func FuzzDecodeMove(f *testing.F) {
	f.Add(encodeTake(7, "c"))
	f.Add(encodeMoved(true, 7, "c"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if rev, id, err := decodeTake(b); err == nil {
			if r2, id2, err := decodeTake(encodeTake(rev, id)); err != nil || r2 != rev || id2 != id {
				t.Fatalf("take %d %q does not round-trip", rev, id)
			}
		}
		if s, rev, id, err := decodeMoved(b); err == nil {
			if s2, r2, id2, err := decodeMoved(encodeMoved(s, rev, id)); err != nil || s2 != s || r2 != rev || id2 != id {
				t.Fatalf("moved %v %d %q does not round-trip", s, rev, id)
			}
		}
	})
}

// TestHasQuorum: a bucket's Raft group counts as able to write while it
// has a leader that hears from a majority.
func TestHasQuorum(t *testing.T) {
	live := &jetstream.PeerInfo{Active: 100e6, Current: true}
	gone := &jetstream.PeerInfo{Offline: true}
	silent := &jetstream.PeerInfo{Active: 10e9}
	for _, c := range []struct {
		ci   *jetstream.ClusterInfo
		want bool
	}{
		{nil, true},
		{&jetstream.ClusterInfo{Leader: ""}, false},
		{&jetstream.ClusterInfo{Leader: "a"}, true},
		{&jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{live, gone}}, true},
		{&jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{gone, silent}}, false},
		{&jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{live, live, gone, silent}}, true},
		{&jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{live, gone, gone, silent}}, false},
	} {
		if got := hasQuorum(c.ci); got != c.want {
			t.Errorf("%+v: %v, want %v", c.ci, got, c.want)
		}
	}
}
