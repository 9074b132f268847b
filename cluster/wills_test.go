package cluster

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

func sampleWills() []broker.WillRecord {
	var props codec.Properties
	props.Set(codec.PropContentType)
	props.ContentType = []byte("text/plain")
	props.Set(codec.PropResponseTopic)
	props.ResponseTopic = []byte("reply/here")
	props.User = []codec.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
	return []broker.WillRecord{
		{Msg: store.Message{Topic: []byte("t"), QoS: 0}},
		{Msg: store.Message{Topic: []byte("dev/1/status"), Payload: []byte("offline"), QoS: 1, Retain: true, Created: 1, ExpireAt: 61e9 + 1},
			Delay: 30, SessionExpiry: store.ExpiryNever},
		{Msg: store.Message{Topic: []byte("a b/é/#"), Payload: bytes.Repeat([]byte{0, 1, 2}, 30000), QoS: 2, Props: props.Append(nil), Created: time.Now().UnixNano()},
			Delay: 1<<32 - 1, SessionExpiry: 300, At: time.Now().UnixNano()},
	}
}

// TestWillRoundTrip: a will copy decodes to the node, run, client and
// will that were encoded (topic, payload, QoS, retain, v5 properties,
// expiry, delay, session expiry, due time), and malformed ones are
// refused.
func TestWillRoundTrip(t *testing.T) {
	f := func(node string, epoch int64, client string, w broker.WillRecord) {
		t.Helper()
		d, err := decodeWill(encodeWill(nil, node, epoch, client, &w))
		if err != nil {
			t.Fatalf("%s/%q: %v", node, client, err)
		}
		if d.node != node || d.epoch != epoch || d.client != client {
			t.Fatalf("decoded %s/%d/%q, want %s/%d/%q", d.node, d.epoch, d.client, node, epoch, client)
		}
		norm := func(m *store.Message) {
			if len(m.Payload) == 0 {
				m.Payload = nil
			}
			if len(m.Props) == 0 {
				m.Props = nil
			}
		}
		norm(&w.Msg)
		norm(&d.rec.Msg)
		if !reflect.DeepEqual(d.rec, w) {
			t.Fatalf("decoded %+v, want %+v", d.rec, w)
		}
	}
	for i, w := range sampleWills() {
		f("n1", int64(i)*1e18, "client", w)
		f("node_2", -1, strings.Repeat("x", 70000), w)
		f("a-b", 0, "", w)
	}
	good := encodeWill(nil, "n1", 7, "c", &sampleWills()[1])
	for name, b := range map[string][]byte{
		"empty":       nil,
		"bad version": append([]byte{9}, good[1:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(append([]byte(nil), good...), 0),
		"bad node id": encodeWill(nil, "a.b", 1, "c", &sampleWills()[0]),
		"no node":     encodeWill(nil, "", 1, "c", &sampleWills()[0]),
		"QoS 3":       encodeWill(nil, "n", 1, "c", &broker.WillRecord{Msg: store.Message{Topic: []byte("t"), QoS: 3}}),
		"huge length": {willVersion, 2, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if d, err := decodeWill(b); err == nil {
			t.Errorf("%s: decoded %+v", name, d)
		}
	}
}

// TestLiveRoundTrip: liveness values both ways.
func TestLiveRoundTrip(t *testing.T) {
	for _, up := range []bool{true, false} {
		for _, e := range []int64{0, 1, -5, time.Now().UnixNano()} {
			gu, ge, ok := decodeLive(encodeLive(up, e))
			if !ok || gu != up || ge != e {
				t.Fatalf("%v/%d: decoded %v/%d/%v", up, e, gu, ge, ok)
			}
		}
	}
	for _, b := range [][]byte{nil, {willVersion}, {willVersion, 2, 0}, {9, 1, 0}, append(encodeLive(true, 3), 0)} {
		if _, _, ok := decodeLive(b); ok {
			t.Errorf("%x decoded", b)
		}
	}
}

// TestWillDue: a will pending when its node died is due at its time;
// one whose connection was up is due after the smaller of its delay and
// its session's expiry, counted from the node's end (MQTT 5 §3.1.3.2.2).
func TestWillDue(t *testing.T) {
	end := time.Unix(1000, 0)
	f := func(w broker.WillRecord, want time.Time) {
		t.Helper()
		if got := willDue(&w, end); !got.Equal(want) {
			t.Fatalf("%+v: due %v, want %v", w, got, want)
		}
	}
	f(broker.WillRecord{}, end)
	f(broker.WillRecord{Delay: 30, SessionExpiry: 0}, end)
	f(broker.WillRecord{Delay: 30, SessionExpiry: 10}, end.Add(10*time.Second))
	f(broker.WillRecord{Delay: 30, SessionExpiry: store.ExpiryNever}, end.Add(30*time.Second))
	f(broker.WillRecord{Delay: 30, SessionExpiry: 60, At: 5e9}, time.Unix(5, 0))
}

// FuzzDecodeWill: the decoder of will copies never panics, and what it
// accepts encodes back to the same bytes.
func FuzzDecodeWill(f *testing.F) {
	for i, w := range sampleWills() {
		f.Add(encodeWill(nil, "n1", int64(i), "c", &w))
	}
	f.Add(encodeLive(true, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeWill(b)
		if err != nil {
			return
		}
		again := encodeWill(nil, d.node, d.epoch, d.client, &d.rec)
		if !bytes.Equal(again, b) {
			// Varints have one shortest form; the encoder writes it. A
			// longer form the decoder took must still mean the same.
			d2, err := decodeWill(again)
			if err != nil || !reflect.DeepEqual(d2, d) {
				t.Fatalf("re-encoded %x decodes to %+v (%v), want %+v", again, d2, err, d)
			}
		}
	})
}
