//go:build linux

package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// fakeBroker accepts one connection and hands it to script.
func fakeBroker(t *testing.T, script func(c *scripted)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		script(&scripted{t: t, c: nc, r: bufio.NewReader(nc)})
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// scripted is the broker side of one connection in a test.
type scripted struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// next reads one packet; it returns its header and body.
func (s *scripted) next() (codec.FixedHeader, []byte) {
	var buf []byte
	for {
		h, err := codec.Frame(buf, 0)
		if err == nil {
			return h, h.Body(buf)
		}
		if !errors.Is(err, codec.ErrIncomplete) {
			s.t.Errorf("fake broker: %v", err)
			return codec.FixedHeader{}, nil
		}
		b, err := s.r.ReadByte()
		if err != nil {
			if err != io.EOF {
				s.t.Errorf("fake broker: read: %v", err)
			}
			return codec.FixedHeader{}, nil
		}
		buf = append(buf, b)
	}
}

// expect reads one packet and checks its type (and packet id, for acks).
func (s *scripted) expect(t codec.Type, id uint16) {
	s.t.Helper()
	h, body := s.next()
	if h.Type != t {
		s.t.Errorf("fake broker: got packet type %d, want %d", h.Type, t)
		return
	}
	if id != 0 {
		var a codec.Ack
		if err := a.Decode(h, body, codec.V311); err != nil || a.PacketID != id {
			s.t.Errorf("fake broker: ack %v for id %d, want %d", err, a.PacketID, id)
		}
	}
}

func (s *scripted) send(b []byte) {
	if _, err := s.c.Write(b); err != nil {
		s.t.Errorf("fake broker: write: %v", err)
	}
}

func payload(pub, seq uint32) []byte {
	p := make([]byte, HeaderLen)
	putHeader(p, 0, pub, seq)
	return p
}

// TestQoS2Receiver checks the receiver side of QoS 2: a resent PUBLISH
// before PUBREL is answered but not delivered twice, a packet id is
// reusable after PUBREL, and a second copy of a message under a new packet
// id counts as a duplicate.
func TestQoS2Receiver(t *testing.T) {
	v := codec.V311
	addr := fakeBroker(t, func(s *scripted) {
		s.expect(codec.CONNECT, 0)
		s.send((&codec.Connack{}).Append(nil, v))
		s.expect(codec.SUBSCRIBE, 0)
		s.send((&codec.Suback{PacketID: 1, Codes: []codec.ReasonCode{2}}).Append(nil, v))
		p := codec.Publish{QoS: 2, Topic: []byte("t"), PacketID: 7, Payload: payload(0, 0)}
		s.send(p.Append(nil, v))
		s.expect(codec.PUBREC, 7)
		p.Dup = true // resent before PUBREL: the same message
		s.send(p.Append(nil, v))
		s.expect(codec.PUBREC, 7)
		s.send((&codec.Ack{Type: codec.PUBREL, PacketID: 7}).Append(nil, v))
		s.expect(codec.PUBCOMP, 7)
		p = codec.Publish{QoS: 2, Topic: []byte("t"), PacketID: 7, Payload: payload(0, 1)} // id reused: new message
		s.send(p.Append(nil, v))
		s.expect(codec.PUBREC, 7)
		s.send((&codec.Ack{Type: codec.PUBREL, PacketID: 7}).Append(nil, v))
		s.expect(codec.PUBCOMP, 7)
		p = codec.Publish{QoS: 2, Topic: []byte("t"), PacketID: 8, Payload: payload(0, 1)} // seq 1 again: a duplicate
		s.send(p.Append(nil, v))
		s.expect(codec.PUBREC, 8)
		s.send((&codec.Ack{Type: codec.PUBREL, PacketID: 8}).Append(nil, v))
		s.expect(codec.PUBCOMP, 8)
		s.expect(codec.DISCONNECT, 0)
	})
	e, err := New(Options{Addr: addr, Loops: 1, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cr := e.Connect(context.Background(), []*Spec{{ClientID: "q2", Filters: []string{"t"}, SubQoS: 2, Track: true}}, ConnectOptions{})
	if cr.OK != 1 {
		t.Fatalf("connect: %+v", cr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.Counters().Received < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the last PUBCOMP go out
	e.Close()
	tot := Collect(e)
	if tot.Received != 3 || tot.Duplicated != 1 || tot.Foreign != 0 {
		t.Fatalf("received %d (want 3), duplicated %d (want 1), totals %+v", tot.Received, tot.Duplicated, tot)
	}
}

// TestQoS2Publisher checks the sender side: PUBREC → PUBREL → PUBCOMP frees
// the window, an error PUBREC ends the flow, and a Count run finishes with
// a PINGREQ round trip.
func TestQoS2Publisher(t *testing.T) {
	v := codec.V5
	addr := fakeBroker(t, func(s *scripted) {
		s.expect(codec.CONNECT, 0)
		ca := codec.Connack{}
		ca.Props.ReceiveMaximum = 1 // a window of one: each message waits for the last
		ca.Props.Set(codec.PropReceiveMaximum)
		s.send(ca.Append(nil, v))
		for id := uint16(1); id <= 3; id++ {
			h, body := s.next()
			var p codec.Publish
			if err := p.Decode(h, body, v); err != nil || p.QoS != 2 || p.PacketID != id || string(p.Topic) != "q" {
				t.Errorf("publish %d: %+v %v", id, p, err)
				return
			}
			if id == 2 {
				s.send((&codec.Ack{Type: codec.PUBREC, PacketID: id, Code: codec.QuotaExceeded}).Append(nil, v))
				continue
			}
			s.send((&codec.Ack{Type: codec.PUBREC, PacketID: id}).Append(nil, v))
			s.expect(codec.PUBREL, id)
			s.send((&codec.Ack{Type: codec.PUBCOMP, PacketID: id}).Append(nil, v))
		}
		s.expect(codec.PINGREQ, 0)
		s.send(codec.AppendPingresp(nil))
		s.expect(codec.DISCONNECT, 0)
	})
	e, err := New(Options{Addr: addr, Loops: 1, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	spec := &Spec{ClientID: "p2", Pub: &PubSpec{ID: 1, Topics: []string{"q"}, QoS: 2, Payload: 32, Window: 8, Count: 3}}
	if cr := e.Connect(context.Background(), []*Spec{spec}, ConnectOptions{}); cr.OK != 1 {
		t.Fatalf("connect: %+v", cr)
	}
	e.StartPublishing()
	deadline := time.Now().Add(5 * time.Second)
	for e.Counters().PubsDone < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c := e.Counters()
	if c.PubsDone != 1 || c.Sent != 3 || c.Acked != 3 || c.Inflight != 0 || c.Rejected != 1 {
		t.Fatalf("counters %+v: want 3 sent, 3 acknowledged (1 rejected), done", c)
	}
}

// TestConnackRefused checks that a refused connection is a failure with
// its reason, and that Connect returns.
func TestConnackRefused(t *testing.T) {
	addr := fakeBroker(t, func(s *scripted) {
		s.expect(codec.CONNECT, 0)
		s.send((&codec.Connack{Code: codec.ConnRefusedNotAuthorized}).Append(nil, codec.V311))
	})
	e, err := New(Options{Addr: addr, Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cr := e.Connect(context.Background(), []*Spec{{ClientID: "x"}}, ConnectOptions{})
	if cr.OK != 0 || cr.Failed != 1 || len(cr.Errors) != 1 || cr.Errors[0].Reason != ReasonConnack {
		t.Fatalf("connect: %+v", cr)
	}
}

// TestConnectTimeout checks that a broker that never answers costs a
// bounded wait.
func TestConnectTimeout(t *testing.T) {
	addr := fakeBroker(t, func(s *scripted) {
		s.expect(codec.CONNECT, 0)
		time.Sleep(1500 * time.Millisecond)
	})
	e, err := New(Options{Addr: addr, Loops: 1, ConnectTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	start := time.Now()
	cr := e.Connect(context.Background(), []*Spec{{ClientID: "x"}}, ConnectOptions{})
	if cr.Failed != 1 || cr.Errors[0].Reason != ReasonTimeout || time.Since(start) > 3*time.Second {
		t.Fatalf("connect after %v: %+v", time.Since(start), cr)
	}
}

// TestSessionExpiryConnect checks the CONNECT of each session mode: clean
// by default; with SessionExpiry, Clean Session 0 in 3.1.1 and Clean Start
// 0 plus the Session Expiry Interval property in v5.
func TestSessionExpiryConnect(t *testing.T) {
	f := func(v codec.Version, expiry uint32, wantClean bool, wantProp uint32) {
		t.Helper()
		got := make(chan codec.Connect, 1)
		addr := fakeBroker(t, func(s *scripted) {
			h, body := s.next()
			var p codec.Connect
			if err := p.Decode(h, body); err != nil {
				s.t.Errorf("fake broker: CONNECT: %v", err)
			}
			got <- p
			s.send((&codec.Connack{}).Append(nil, v))
		})
		e, err := New(Options{Addr: addr, Loops: 1, Version: v, SessionExpiry: expiry})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if cr := e.Connect(context.Background(), []*Spec{{ClientID: "x"}}, ConnectOptions{}); cr.OK != 1 {
			t.Fatalf("connect: %+v", cr)
		}
		p := <-got
		if p.CleanStart != wantClean {
			t.Errorf("v%d expiry %d: clean start %v, want %v", v, expiry, p.CleanStart, wantClean)
		}
		prop := uint32(0)
		if p.Props.Has(codec.PropSessionExpiry) {
			prop = p.Props.SessionExpiry
		}
		if prop != wantProp {
			t.Errorf("v%d expiry %d: Session Expiry Interval %d, want %d", v, expiry, prop, wantProp)
		}
	}
	f(codec.V311, 0, true, 0)
	f(codec.V311, 300, false, 0)
	f(codec.V5, 0, true, 0)
	f(codec.V5, 300, false, 300)
}
