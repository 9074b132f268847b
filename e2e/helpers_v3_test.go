package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/codec"
)

// Helpers for the MQTT 3.1 / 3.1.1 tests (v3_test.go, mosquitto_test.go).
// Names carry a v3 prefix so they cannot collide with the v5 tests' helpers.

const v3Wait = 5 * time.Second // generous: -race on 2 cores

// v3Msg is one application message as a 3.x client saw it.
type v3Msg struct {
	Topic    string
	Payload  string
	QoS      byte
	Retained bool
	Dup      bool
}

// v3Sink collects the messages a paho client receives.
type v3Sink struct {
	mu   sync.Mutex
	msgs []v3Msg
	more chan struct{} // signalled (non-blocking) on every message
}

func newV3Sink() *v3Sink { return &v3Sink{more: make(chan struct{}, 1)} }

func (s *v3Sink) handler(_ mqtt.Client, m mqtt.Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, v3Msg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retained: m.Retained(), Dup: m.Duplicate()})
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func (s *v3Sink) snapshot() []v3Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]v3Msg(nil), s.msgs...)
}

// waitN waits until at least n messages arrived and returns them all.
func (s *v3Sink) waitN(t testing.TB, n int) []v3Msg {
	t.Helper()
	deadline := time.NewTimer(v3Wait)
	defer deadline.Stop()
	for {
		if got := s.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-s.more:
		case <-deadline.C:
			got := s.snapshot()
			t.Fatalf("received %d messages within %v, want %d: %+v", len(got), v3Wait, n, got)
		}
	}
}

// waitPayload waits for a message with payload p and returns everything
// received up to and including it. Used as a sentinel: a message published
// after the ones under test, on the same path, proves they were not
// delivered without a fixed sleep.
func (s *v3Sink) waitPayload(t testing.TB, p string) []v3Msg {
	t.Helper()
	deadline := time.NewTimer(v3Wait)
	defer deadline.Stop()
	for {
		got := s.snapshot()
		for i, m := range got {
			if m.Payload == p {
				return got[:i+1]
			}
		}
		select {
		case <-s.more:
		case <-deadline.C:
			t.Fatalf("message %q not received within %v; got %+v", p, v3Wait, got)
		}
	}
}

// v3Paho connects a paho 3.1.1 client (no auto-reconnect) whose messages go
// to sink (which may be nil), and disconnects it when the test ends. mod
// may adjust the options. It returns the CONNACK's Session Present flag.
func v3Paho(t testing.TB, addr, id string, clean bool, sink *v3Sink, mod func(*mqtt.ClientOptions)) (mqtt.Client, bool) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(v3Wait).SetWriteTimeout(v3Wait).SetKeepAlive(30 * time.Second)
	if sink != nil {
		o.SetDefaultPublishHandler(sink.handler)
	}
	if mod != nil {
		mod(o)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("paho connect %q: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, tok.(*mqtt.ConnectToken).SessionPresent()
}

// v3Done waits for a paho token and fails on timeout or error.
func v3Done(t testing.TB, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(v3Wait) {
		t.Fatalf("%s: no answer within %v", what, v3Wait)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// v3Sub subscribes a paho client (messages go to its default handler).
func v3Sub(t testing.TB, c mqtt.Client, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	v3Done(t, "subscribe "+filter, tok)
	// paho keys the result by the filter without its "$share/name/".
	for _, g := range tok.(*mqtt.SubscribeToken).Result() {
		if g != qos {
			t.Fatalf("subscribe %s: granted %d, want %d", filter, g, qos)
		}
	}
}

// v3Pub publishes and waits for the flow to complete.
func v3Pub(t testing.TB, c mqtt.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	v3Done(t, "publish "+topic, c.Publish(topic, qos, retain, payload))
}

// v3Raw dials addr and completes a CONNECT for version v with client id id.
// mod may adjust the CONNECT. The CONNACK must be a success.
func v3Raw(t testing.TB, addr string, v codec.Version, id string, clean bool, mod func(*codec.Connect)) (*rawConn, *codec.Connack) {
	t.Helper()
	r := dialRaw(t, addr, v)
	p := &codec.Connect{ClientID: []byte(id), CleanStart: clean, KeepAlive: 60}
	if mod != nil {
		mod(p)
	}
	ack := r.connect(p)
	if ack.Code != 0 {
		t.Fatalf("CONNACK code 0x%02x, want 0", ack.Code)
	}
	return r, ack
}

// v3Expect reads the next packet and fails unless it has type want.
func (r *rawConn) v3Expect(want codec.Type) (codec.FixedHeader, []byte) {
	r.t.Helper()
	h, body := r.read(v3Wait)
	if h.Type != want {
		r.t.Fatalf("got packet type %d (flags %04b), want %d", h.Type, h.Flags, want)
	}
	return h, body
}

// v3ExpectPublish reads the next packet and decodes it as a PUBLISH.
func (r *rawConn) v3ExpectPublish() *codec.Publish {
	r.t.Helper()
	h, body := r.v3Expect(codec.PUBLISH)
	var p codec.Publish
	if err := p.Decode(h, body, r.v); err != nil {
		r.t.Fatalf("decode PUBLISH: %v", err)
	}
	return &p
}

// v3ExpectAck reads the next packet and checks it is an ack of type t for pid.
func (r *rawConn) v3ExpectAck(t codec.Type, pid uint16) {
	r.t.Helper()
	h, body := r.v3Expect(t)
	var a codec.Ack
	if err := a.Decode(h, body, r.v); err != nil {
		r.t.Fatalf("decode ack: %v", err)
	}
	if a.PacketID != pid {
		r.t.Fatalf("%d for packet id %d, want %d", t, a.PacketID, pid)
	}
}

// v3Subscribe sends SUBSCRIBE with one filter per (filter, qos) pair and
// returns the SUBACK's codes.
func (r *rawConn) v3Subscribe(pid uint16, filters ...any) []codec.ReasonCode {
	r.t.Helper()
	s := codec.Subscribe{PacketID: pid}
	for i := 0; i < len(filters); i += 2 {
		s.Subs = append(s.Subs, codec.Subscription{Filter: []byte(filters[i].(string)), QoS: byte(filters[i+1].(int))})
	}
	r.send(s.Append(nil, r.v))
	h, body := r.v3Expect(codec.SUBACK)
	var ack codec.Suback
	if err := ack.Decode(h, body, r.v); err != nil {
		r.t.Fatalf("decode SUBACK: %v", err)
	}
	if ack.PacketID != pid {
		r.t.Fatalf("SUBACK for packet id %d, want %d", ack.PacketID, pid)
	}
	return ack.Codes
}

// v3Publish sends a PUBLISH.
func (r *rawConn) v3Publish(topic string, qos byte, pid uint16, retain, dup bool, payload string) {
	r.t.Helper()
	p := codec.Publish{Topic: []byte(topic), QoS: qos, PacketID: pid, Retain: retain, Dup: dup, Payload: []byte(payload)}
	r.send(p.Append(nil, r.v))
}

// v3Ack sends PUBACK, PUBREC, PUBREL or PUBCOMP.
func (r *rawConn) v3Ack(t codec.Type, pid uint16) {
	r.t.Helper()
	a := codec.Ack{Type: t, PacketID: pid}
	r.send(a.Append(nil, r.v))
}

// v3Closed fails unless the server closes the connection without sending
// anything first.
func (r *rawConn) v3Closed() {
	r.t.Helper()
	if got := r.expectClosed(v3Wait); len(got) != 0 {
		r.t.Fatalf("got %d packets (first type %d) before the close, want none", len(got), got[0].Type)
	}
}

// v3Ping round-trips PINGREQ/PINGRESP: everything the server sent before
// the PINGRESP has been read once it returns, so it is a barrier.
func (r *rawConn) v3Ping() {
	r.t.Helper()
	r.send(codec.AppendPingreq(nil))
	r.v3Expect(codec.PINGRESP)
}

func v3Payloads(ms []v3Msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Payload
	}
	return out
}

func v3Equal(got []v3Msg, want ...string) error {
	g := v3Payloads(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		return fmt.Errorf("got payloads %q, want %q", g, want)
	}
	return nil
}

// v3Unsubscribe sends UNSUBSCRIBE and waits for the UNSUBACK.
func (r *rawConn) v3Unsubscribe(pid uint16, filters ...string) {
	r.t.Helper()
	u := codec.Unsubscribe{PacketID: pid}
	for _, f := range filters {
		u.Filters = append(u.Filters, []byte(f))
	}
	r.send(u.Append(nil, r.v))
	h, body := r.v3Expect(codec.UNSUBACK)
	var ack codec.Unsuback
	if err := ack.Decode(h, body, r.v); err != nil {
		r.t.Fatalf("decode UNSUBACK: %v", err)
	}
	if ack.PacketID != pid {
		r.t.Fatalf("UNSUBACK for packet id %d, want %d", ack.PacketID, pid)
	}
}

// v3Collect reads PUBLISHes until one with payload until arrives,
// completing every QoS 1/2 flow (PUBACK, PUBREC, PUBCOMP) on the way, and
// returns them in arrival order, the sentinel included. Any packet other
// than PUBLISH and PUBREL fails the test.
func (r *rawConn) v3Collect(until string) []*codec.Publish {
	r.t.Helper()
	var got []*codec.Publish
	for {
		h, body := r.read(v3Wait)
		switch h.Type {
		case codec.PUBLISH:
			var p codec.Publish
			if err := p.Decode(h, body, r.v); err != nil {
				r.t.Fatalf("decode PUBLISH: %v", err)
			}
			got = append(got, &p)
			switch p.QoS {
			case 1:
				r.v3Ack(codec.PUBACK, p.PacketID)
			case 2:
				r.v3Ack(codec.PUBREC, p.PacketID)
			}
			if string(p.Payload) == until {
				return got
			}
		case codec.PUBREL:
			var a codec.Ack
			if err := a.Decode(h, body, r.v); err != nil {
				r.t.Fatalf("decode PUBREL: %v", err)
			}
			r.v3Ack(codec.PUBCOMP, a.PacketID)
		default:
			r.t.Fatalf("got packet type %d while collecting PUBLISHes", h.Type)
		}
	}
}

// v3RawPayloads lists the payloads of ps.
func v3RawPayloads(ps []*codec.Publish) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

// v3WaitFor polls cond until it holds or v3Wait passes.
func v3WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(v3Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", v3Wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
