package cluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// TestWireRoundTrip: what Forward encodes decodes to the same message,
// properties and expiry included.
func TestWireRoundTrip(t *testing.T) {
	n := &Node{o: Options{NodeID: "node-1"}}
	props := &codec.Properties{}
	props.Set(codec.PropContentType)
	props.ContentType = []byte("text/plain")
	props.User = []codec.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
	exp := time.Now().Add(time.Minute).UnixNano()
	for _, m := range []broker.PeerMessage{
		{Topic: []byte("a/b"), Payload: []byte("x"), QoS: 0},
		{Topic: []byte("a/b c.d"), Payload: []byte("payload"), QoS: 2, Retain: true, Props: props, ExpireAt: exp,
			Version: broker.RetainedVersion{Stamp: 1<<62 + 3, Node: "node-2"}},
		{Topic: []byte("r"), QoS: 1, Retain: true, Version: broker.RetainedVersion{Stamp: 9, Node: "node-1"}}, // an empty retained message clears
	} {
		raw := n.encode(nil, kindLive, &m)
		var p codec.Publish
		kind, src, expireAt, stamp, vnode, err := decode(raw, &p)
		if err != nil {
			t.Fatalf("%q: %v", m.Topic, err)
		}
		if stamp != m.Version.Stamp || string(vnode) != m.Version.Node {
			t.Fatalf("%q: version %d %q, want %+v", m.Topic, stamp, vnode, m.Version)
		}
		if kind != kindLive || string(src) != "node-1" || !bytes.Equal(p.Topic, m.Topic) || !bytes.Equal(p.Payload, m.Payload) || p.QoS != m.QoS || p.Retain != m.Retain {
			t.Fatalf("%q: decoded %+v from %q", m.Topic, p, src)
		}
		if m.ExpireAt != 0 && expireAt.UnixNano() != m.ExpireAt || m.ExpireAt == 0 && !expireAt.IsZero() {
			t.Fatalf("%q: expiry %v, want %d", m.Topic, expireAt, m.ExpireAt)
		}
		if m.Props != nil && (string(p.Props.ContentType) != "text/plain" || len(p.Props.User) != 1 || string(p.Props.User[0].Value) != "v") {
			t.Fatalf("%q: properties %+v", m.Topic, p.Props)
		}
	}
}

// FuzzDecode: no input from a peer makes decode panic, and what it
// accepts re-encodes to a message that decodes the same.
func FuzzDecode(f *testing.F) {
	n := &Node{o: Options{NodeID: "n"}}
	f.Add(n.encode(nil, kindLive, &broker.PeerMessage{Topic: []byte("a/b"), Payload: []byte("x"), QoS: 1}))
	f.Add(n.encode(nil, kindRetainedCopy, &broker.PeerMessage{Topic: []byte("r"), Payload: []byte("x"), Retain: true}))
	f.Add(n.encode(nil, kindRetainedCopy, &broker.PeerMessage{Topic: []byte("r"), Retain: true, Version: broker.RetainedVersion{Stamp: 5, Node: "n"}}))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p codec.Publish
		kind, _, _, stamp, vnode, err := decode(b, &p)
		if err != nil {
			return
		}
		again := n.encode(nil, kind, &broker.PeerMessage{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain,
			Version: broker.RetainedVersion{Stamp: stamp, Node: string(vnode)}})
		var q codec.Publish
		if _, _, _, s2, v2, err := decode(again, &q); err != nil || !bytes.Equal(q.Topic, p.Topic) || !bytes.Equal(q.Payload, p.Payload) ||
			s2 != stamp || !bytes.Equal(v2, vnode) {
			t.Fatalf("re-encoded message does not decode the same: %v", err)
		}
	})
}

// TestForwardAllocatesNothing: matching a message against the peers'
// interest and queueing its encoded copy allocates nothing per message
// once the buffer pool is warm (the publish path's rule).
func TestForwardAllocatesNothing(t *testing.T) {
	n, err := New(Options{NodeID: "a", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	n.routing.Store(true)
	n.peersMu.Lock()
	n.peers["b"] = &peer{subject: subjectMsg("b"), known: true, filters: []string{"dev/+/telemetry"}}
	n.peers["c"] = &peer{subject: subjectMsg("c"), known: true, filters: []string{"other/#"}}
	n.rebuildLocked()
	n.peersMu.Unlock()
	props := &codec.Properties{}
	props.Set(codec.PropContentType)
	props.ContentType = []byte("text/plain")
	m := &broker.PeerMessage{Topic: []byte("dev/42/telemetry"), Payload: make([]byte, 64), QoS: 1, Props: props}
	forward := func() {
		if got := n.Forward(m); got != 1 {
			t.Fatalf("forwarded to %d nodes, want 1 (b only)", got)
		}
		it := <-n.queue
		if it.to != 1<<0 || it.ix.subjects[0] != subjectMsg("b") {
			t.Fatalf("queued for %b %v", it.to, it.ix.subjects)
		}
		n.bufPool.Put(it.buf)
	}
	forward() // warm the pools
	if raceEnabled {
		return // meaningless under the race detector: make test-short (no -race) checks it
	}
	if a := testing.AllocsPerRun(1000, forward); a != 0 {
		t.Fatalf("Forward allocates %.1f times per message", a)
	}
}
