package e2e

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/codec"
)

// Helpers for the MQTT 5.0 tests (v5_test.go). Every package-level name
// here starts with v5 so the 3.1.1 tests can grow their own helpers without
// clashing.

// v5Timeout bounds every wait for something that must happen. It is
// generous so -race on two cores does not flake.
const v5Timeout = 5 * time.Second

// v5Quiet is how long a test listens for something that must not happen,
// when no barrier can prove its absence.
const v5Quiet = 300 * time.Millisecond

// v5Wait polls cond until it holds or v5Timeout passes.
func v5Wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(v5Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", v5Timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// v5Clock is a broker clock (Options.Now) that a test can move forward, so
// expiry and will delays are checked without sleeping through them.
type v5Clock struct{ off atomic.Int64 }

func (c *v5Clock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d. A broker given Options.Now calls
// it on every read, so the next packet or tick sees the new time.
func (c *v5Clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

func v5U32(v uint32) *uint32 { return &v }
func v5Byte(v byte) *byte    { return &v }
func v5Int(v int) *int       { return &v }
func v5U16(v uint16) *uint16 { return &v }

// ---- paho.golang client ----

// v5Paho is a paho.golang client whose received PUBLISHes and server
// DISCONNECT are delivered on channels.
type v5Paho struct {
	*paho.Client
	msgs chan *paho.Publish
	disc chan *paho.Disconnect
	errs chan error
}

// v5Connect dials addr and connects with cp; it fails the test unless the
// CONNACK is a success. The client is disconnected when the test ends.
func v5Connect(t testing.TB, addr string, cp *paho.Connect) (*v5Paho, *paho.Connack) {
	t.Helper()
	c, ack, err := v5TryConnect(t, addr, cp)
	if err != nil {
		t.Fatalf("connect %q: %v", cp.ClientID, err)
	}
	return c, ack
}

// v5TryConnect is v5Connect returning the error (and the CONNACK, if one
// came) instead of failing.
func v5TryConnect(t testing.TB, addr string, cp *paho.Connect) (*v5Paho, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, v5Timeout)
	if err != nil {
		t.Fatal(err)
	}
	return v5TryConnectOver(t, nc, cp)
}

// lockedConn makes paho.golang's packet writes atomic. paho writes a
// packet as several Writes (net.Buffers.WriteTo) and holds the connection's
// lock around them only when the connection is a sync.Locker: over TLS or
// WebSocket (one record or message per Write) its pinger's PINGREQ could
// land in the middle of a SUBSCRIBE, which the broker rightly refuses as
// malformed. Seen as TestTLS_ManyClientsMigrateAndTakeover failing about
// once in ten runs.
type lockedConn struct {
	net.Conn
	sync.Mutex
}

// v5TryConnectOver is v5TryConnect over an established connection (TLS,
// WebSocket, a PROXY-prefixed socket).
func v5TryConnectOver(t testing.TB, nc net.Conn, cp *paho.Connect) (*v5Paho, *paho.Connack, error) {
	t.Helper()
	c := &v5Paho{
		msgs: make(chan *paho.Publish, 1024),
		disc: make(chan *paho.Disconnect, 1),
		errs: make(chan error, 16),
	}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: &lockedConn{Conn: nc},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.disc <- d:
			default:
			}
		},
		OnClientError: func(err error) {
			select {
			case c.errs <- err:
			default:
			}
		},
		PacketTimeout: v5Timeout,
	})
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ack, nil
}

func (c *v5Paho) subscribe(t testing.TB, s *paho.Subscribe) *paho.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	ack, err := c.Subscribe(ctx, s)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return ack
}

func (c *v5Paho) publish(t testing.TB, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %q: %v", p.Topic, err)
	}
	return r
}

// recv returns the next PUBLISH received.
func (c *v5Paho) recv(t testing.TB) *paho.Publish {
	t.Helper()
	select {
	case p := <-c.msgs:
		return p
	case <-time.After(v5Timeout):
		t.Fatalf("no PUBLISH within %v", v5Timeout)
		return nil
	}
}

// quiet fails if a PUBLISH arrives within v5Quiet.
func (c *v5Paho) quiet(t testing.TB) {
	t.Helper()
	select {
	case p := <-c.msgs:
		t.Fatalf("unexpected PUBLISH %q %q", p.Topic, p.Payload)
	case <-time.After(v5Quiet):
	}
}

// serverDisconnect waits for the server's DISCONNECT.
func (c *v5Paho) serverDisconnect(t testing.TB) *paho.Disconnect {
	t.Helper()
	select {
	case d := <-c.disc:
		return d
	case <-time.After(v5Timeout):
		t.Fatalf("no DISCONNECT from the server within %v", v5Timeout)
		return nil
	}
}

// ---- raw codec client ----

// v5Raw is a raw-packet MQTT 5 client for exact bytes and reason codes.
type v5Raw struct {
	*rawConn
	pid uint16
}

func v5Dial(t testing.TB, addr string) *v5Raw {
	t.Helper()
	return &v5Raw{rawConn: dialRaw(t, addr, codec.V5)}
}

// v5RawConnect dials and connects as cid, then applies fn (if any) to the
// CONNECT first; it fails unless the CONNACK is a success.
func v5RawConnect(t testing.TB, addr, cid string, fn func(*codec.Connect)) (*v5Raw, *codec.Connack) {
	t.Helper()
	r := v5Dial(t, addr)
	p := &codec.Connect{ClientID: []byte(cid), CleanStart: true}
	if fn != nil {
		fn(p)
	}
	ack := r.connect(p)
	if ack.Code != 0 {
		t.Fatalf("CONNACK 0x%02x for %q", ack.Code, cid)
	}
	return r, ack
}

func (r *v5Raw) nextPID() uint16 {
	r.pid++
	if r.pid == 0 {
		r.pid = 1
	}
	return r.pid
}

// next reads and decodes the next packet: *codec.Publish, *codec.Ack,
// *codec.Suback, *codec.Unsuback, *codec.Disconnect, or codec.Type for
// PINGRESP.
func (r *v5Raw) next(d time.Duration) any {
	r.t.Helper()
	h, body := r.read(d)
	return r.decode(h, body)
}

func (r *v5Raw) decode(h codec.FixedHeader, body []byte) any {
	r.t.Helper()
	var err error
	var out any
	switch h.Type {
	case codec.PUBLISH:
		p := new(codec.Publish)
		err, out = p.Decode(h, body, codec.V5), p
	case codec.PUBACK, codec.PUBREC, codec.PUBREL, codec.PUBCOMP:
		a := new(codec.Ack)
		err, out = a.Decode(h, body, codec.V5), a
	case codec.SUBACK:
		a := new(codec.Suback)
		err, out = a.Decode(h, body, codec.V5), a
	case codec.UNSUBACK:
		a := new(codec.Unsuback)
		err, out = a.Decode(h, body, codec.V5), a
	case codec.DISCONNECT:
		d := new(codec.Disconnect)
		err, out = d.Decode(h, body, codec.V5), d
	case codec.PINGRESP:
		out = codec.PINGRESP
	default:
		r.t.Fatalf("unexpected packet type %d from the server", h.Type)
	}
	if err != nil {
		r.t.Fatalf("decode packet type %d from the server: %v", h.Type, err)
	}
	return out
}

// expectPublish reads the next packet and fails unless it is a PUBLISH.
func (r *v5Raw) expectPublish() *codec.Publish {
	r.t.Helper()
	switch p := r.next(v5Timeout).(type) {
	case *codec.Publish:
		return p
	default:
		r.t.Fatalf("want PUBLISH, got %T %+v", p, p)
		return nil
	}
}

// expectAck reads the next packet and fails unless it is an ack of type t
// for pid.
func (r *v5Raw) expectAck(t codec.Type, pid uint16) *codec.Ack {
	r.t.Helper()
	a, ok := r.next(v5Timeout).(*codec.Ack)
	if !ok || a.Type != t || a.PacketID != pid {
		r.t.Fatalf("want ack type %d for id %d, got %+v", t, pid, a)
	}
	return a
}

// barrier sends PINGREQ and returns every packet received before the
// PINGRESP. The server handles a connection's packets in order, so whatever
// it sends in answer to earlier packets arrives before the PINGRESP.
func (r *v5Raw) barrier() []any {
	r.t.Helper()
	r.send(codec.AppendPingreq(nil))
	var got []any
	for {
		p := r.next(v5Timeout)
		if p == codec.PINGRESP {
			return got
		}
		got = append(got, p)
	}
}

// subscribe sends SUBSCRIBE with subscription identifier id (0: none) and
// returns the SUBACK's codes. Publishes that arrive before the SUBACK fail
// the test.
func (r *v5Raw) subscribe(id int, subs ...codec.Subscription) []codec.ReasonCode {
	r.t.Helper()
	p := codec.Subscribe{PacketID: r.nextPID(), Subs: subs}
	if id != 0 {
		p.Props.SubscriptionIDs = []uint32{uint32(id)}
	}
	r.send(p.Append(nil, codec.V5))
	a, ok := r.next(v5Timeout).(*codec.Suback)
	if !ok || a.PacketID != p.PacketID {
		r.t.Fatalf("want SUBACK for %d, got %+v", p.PacketID, a)
	}
	return a.Codes
}

// publish sends p (v5) and, for QoS 1, waits for the PUBACK and returns its
// code.
func (r *v5Raw) publish(p *codec.Publish) codec.ReasonCode {
	r.t.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = r.nextPID()
	}
	r.send(p.Append(nil, codec.V5))
	if p.QoS != 1 {
		return 0
	}
	return r.expectAck(codec.PUBACK, p.PacketID).Code
}

func (r *v5Raw) ack(t codec.Type, pid uint16) {
	r.t.Helper()
	a := codec.Ack{Type: t, PacketID: pid}
	r.send(a.Append(nil, codec.V5))
}

// disconnect sends DISCONNECT with code.
func (r *v5Raw) disconnect(code codec.ReasonCode) {
	r.t.Helper()
	d := codec.Disconnect{Code: code}
	r.send(d.Append(nil, codec.V5))
}

// expectDisconnect waits for a DISCONNECT from the server with code, then
// for the connection to close [MQTT-4.13.1-1]. Other packets before it are
// ignored.
func (r *v5Raw) expectDisconnect(code codec.ReasonCode) {
	r.t.Helper()
	deadline := time.Now().Add(v5Timeout)
	for {
		h, body, err := r.tryRead(time.Until(deadline))
		if err != nil {
			r.t.Fatalf("want DISCONNECT 0x%02x, connection ended: %v", byte(code), err)
		}
		if h.Type != codec.DISCONNECT {
			continue
		}
		d := r.decode(h, body).(*codec.Disconnect)
		if d.Code != code {
			r.t.Fatalf("DISCONNECT reason 0x%02x (%q), want 0x%02x", byte(d.Code), d.Props.ReasonString, byte(code))
		}
		if d.Props.Has(codec.PropSessionExpiry) {
			r.t.Fatal("server DISCONNECT carries a Session Expiry Interval [MQTT-3.14.2-2]")
		}
		r.expectClosed(v5Timeout)
		return
	}
}
