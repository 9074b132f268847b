package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// MQTT 5.0 behaviour over real sockets: paho.golang where it can express
// the case, raw codec packets where a test needs exact bytes, reason codes
// or a packet no well-behaved client sends. Statement IDs are those of the
// OASIS Standard of 7 March 2019 (BUILDING-BLOCKS.md §5).

// ---- CONNECT / CONNACK ----

// CONNACK carries Receive Maximum, Maximum Packet Size and Topic Alias
// Maximum as configured (§3.2.2.3.3, §3.2.2.3.6, §3.2.2.3.8).
func TestSpecV5_MQTT_3_2_2_ConnackProperties(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxInflight: 100, MaxPacketSize: 4096, TopicAliasMaximum: 5})
	_, ack := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "cp", CleanStart: true})
	p := ack.Properties
	switch {
	case ack.ReasonCode != 0 || ack.SessionPresent:
		t.Fatalf("CONNACK code 0x%02x present %v", ack.ReasonCode, ack.SessionPresent)
	case p == nil:
		t.Fatal("CONNACK without properties")
	case p.ReceiveMaximum == nil || *p.ReceiveMaximum != 100:
		t.Fatalf("Receive Maximum %v, want 100", p.ReceiveMaximum)
	case p.MaximumPacketSize == nil || *p.MaximumPacketSize != 4096:
		t.Fatalf("Maximum Packet Size %v, want 4096", p.MaximumPacketSize)
	case p.TopicAliasMaximum == nil || *p.TopicAliasMaximum != 5:
		t.Fatalf("Topic Alias Maximum %v, want 5", p.TopicAliasMaximum)
	case p.AssignedClientID != "":
		t.Fatalf("Assigned Client Identifier %q for a client that gave one", p.AssignedClientID)
	case p.ServerKeepAlive != nil:
		t.Fatalf("Server Keep Alive %d without Options.MaxKeepAlive", *p.ServerKeepAlive)
	}
}

// [MQTT-3.2.2-16] An empty client id gets an Assigned Client Identifier,
// unique per connection, that the client can use.
func TestSpecV5_MQTT_3_2_2_16_AssignedClientID(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	c1, ack1 := v5Connect(t, tb.Addr, &paho.Connect{CleanStart: true})
	_, ack2 := v5Connect(t, tb.Addr, &paho.Connect{CleanStart: true})
	id1, id2 := ack1.Properties.AssignedClientID, ack2.Properties.AssignedClientID
	if id1 == "" || id2 == "" || id1 == id2 {
		t.Fatalf("assigned ids %q and %q: want two distinct non-empty ids", id1, id2)
	}
	if c1.ClientID() != id1 {
		t.Fatalf("client uses id %q, server assigned %q", c1.ClientID(), id1)
	}
	// The assigned id names a working session.
	c1.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "aci/t", QoS: 1}}})
	c1.publish(t, &paho.Publish{Topic: "aci/t", QoS: 1, Payload: []byte("x")})
	if p := c1.recv(t); p.Topic != "aci/t" {
		t.Fatalf("got %q", p.Topic)
	}
}

// [MQTT-3.2.2-21] With Options.MaxKeepAlive set, a client asking for more
// (or for none) is told the Server Keep Alive; a client asking for less is
// not.
func TestSpecV5_MQTT_3_2_2_21_ServerKeepAlive(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxKeepAlive: 10})
	f := func(asked uint16, want int) {
		t.Helper()
		_, ack := v5RawConnect(t, tb.Addr, fmt.Sprintf("ka-%d", asked), func(p *codec.Connect) { p.KeepAlive = asked })
		got := -1
		if ack.Props.Has(codec.PropServerKeepAlive) {
			got = int(ack.Props.ServerKeepAlive)
		}
		if got != want {
			t.Fatalf("keep alive %d: Server Keep Alive %d, want %d (-1: absent)", asked, got, want)
		}
	}
	f(60, 10)
	f(0, 10)
	f(5, -1)
	f(10, -1)
}

// [MQTT-4.12.0-1] An Authentication Method the server does not support:
// CONNACK 0x8C (Bad authentication method), then close.
func TestSpecV5_MQTT_4_12_0_1_UnsupportedAuthMethod(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r := v5Dial(t, tb.Addr)
	p := &codec.Connect{ClientID: []byte("auth"), CleanStart: true}
	p.Props.Set(codec.PropAuthMethod)
	p.Props.AuthMethod = []byte("SCRAM-SHA-1")
	if ack := r.connect(p); ack.Code != byte(codec.BadAuthenticationMethod) {
		t.Fatalf("CONNACK 0x%02x, want 0x8C", ack.Code)
	}
	r.expectClosed(v5Timeout)

	// paho sees the refusal too.
	_, ack, err := v5TryConnect(t, tb.Addr, &paho.Connect{ClientID: "auth2", CleanStart: true,
		Properties: &paho.ConnectProperties{AuthMethod: "SCRAM-SHA-1"}})
	if err == nil || ack == nil || ack.ReasonCode != 0x8C {
		t.Fatalf("paho connect: %v, CONNACK %+v", err, ack)
	}
}

// [MQTT-3.1.2-2] An unsupported protocol level: CONNACK 0x84 (or the 3.1.1
// return code 0x01, for a client whose version the server does not know),
// then close.
func TestSpecV5_MQTT_3_1_2_2_UnsupportedProtocolLevel(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	for _, level := range []codec.Version{6, 0x85} {
		r := v5Dial(t, tb.Addr)
		p := codec.Connect{ProtocolName: []byte("MQTT"), Version: level, ClientID: []byte("lvl"), CleanStart: true}
		r.send(p.Append(nil))
		h, body := r.read(v5Timeout)
		if h.Type != codec.CONNACK || len(body) < 2 || (body[1] != 0x84 && body[1] != codec.ConnRefusedProtocolVersion) {
			t.Fatalf("level %d: got type %d body % x, want CONNACK 0x84 or 0x01", level, h.Type, body)
		}
		r.expectClosed(v5Timeout)
	}
}

// ---- sessions ----

// v5WaitClients waits until the broker's stats show n connections.
func v5WaitClients(t testing.TB, tb *testBroker, n uint64) {
	t.Helper()
	v5Wait(t, fmt.Sprintf("%d connections", n), func() bool { return tb.B.Stats().Clients == n })
}

// v5Drop runs drop, which ends one of the broker's n+1 connections, and
// returns once the broker has processed the close. It first waits for the
// stats (refreshed every tick) to show the n+1 connections, so a stale
// snapshot cannot end the wait early.
func v5Drop(t testing.TB, tb *testBroker, n uint64, drop func()) {
	t.Helper()
	v5WaitClients(t, tb, n+1)
	drop()
	v5WaitClients(t, tb, n)
}

// [MQTT-3.1.2-23] Session Expiry absent (0): the session ends with the
// connection, so a reconnect finds no session (Session Present 0
// [MQTT-3.2.2-2]) and no subscription.
func TestSpecV5_MQTT_3_1_2_23_SessionExpiryZero(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "se0", CleanStart: false})
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "se0/t", QoS: 1}}})
	v5Drop(t, tb, 0, func() { _ = c.Disconnect(&paho.Disconnect{}) })
	v5Wait(t, "no session", func() bool { return tb.B.Stats().Sessions == 0 })

	c, ack := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "se0", CleanStart: false})
	if ack.SessionPresent {
		t.Fatal("Session Present 1 after a connection with Session Expiry 0")
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "se0-pub", CleanStart: true})
	if r := pub.publish(t, &paho.Publish{Topic: "se0/t", QoS: 1, Payload: []byte("x")}); r.ReasonCode != 0x10 {
		t.Fatalf("PUBACK 0x%02x, want 0x10: the old subscription survived", r.ReasonCode)
	}
	c.quiet(t)
}

// [MQTT-3.1.2-23] [MQTT-4.1.0-2] Session Expiry 2 s: a reconnect within
// 2 s resumes the session (Session Present 1, subscriptions kept); after
// 2 s without a connection it is gone. The broker clock is moved instead
// of sleeping.
func TestSpecV5_MQTT_4_1_0_2_SessionExpiry(t *testing.T) {
	t.Parallel()
	clk := &v5Clock{}
	tb := start(t, broker.Options{Now: clk.Now})
	cp := func() *paho.Connect {
		return &paho.Connect{ClientID: "se2", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(2)}}
	}
	c, _ := v5Connect(t, tb.Addr, cp())
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "se2/t", QoS: 1}}})
	v5Drop(t, tb, 0, func() { _ = c.Disconnect(&paho.Disconnect{}) })

	clk.Advance(1500 * time.Millisecond)
	c, ack := v5Connect(t, tb.Addr, cp())
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 on a reconnect within the Session Expiry Interval")
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "se2-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "se2/t", QoS: 1, Payload: []byte("kept")})
	if p := c.recv(t); string(p.Payload) != "kept" {
		t.Fatalf("got %q", p.Payload)
	}
	v5Drop(t, tb, 1, func() { _ = c.Disconnect(&paho.Disconnect{}) })

	clk.Advance(2500 * time.Millisecond)
	_, ack = v5Connect(t, tb.Addr, cp())
	if ack.SessionPresent {
		t.Fatal("Session Present 1 after the Session Expiry Interval passed")
	}
}

// §3.1.2.11.2: Session Expiry 0xFFFFFFFF means the session never expires.
func TestSpecV5_MQTT_3_1_2_23_SessionExpiryNever(t *testing.T) {
	t.Parallel()
	clk := &v5Clock{}
	tb := start(t, broker.Options{Now: clk.Now})
	cp := &paho.Connect{ClientID: "seinf", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(0xFFFFFFFF)}}
	c, ack := v5Connect(t, tb.Addr, cp)
	if ack.Properties.SessionExpiryInterval != nil {
		t.Fatalf("CONNACK changed the Session Expiry to %d", *ack.Properties.SessionExpiryInterval)
	}
	v5Drop(t, tb, 0, func() { _ = c.Disconnect(&paho.Disconnect{}) })
	clk.Advance(10 * 365 * 24 * time.Hour)
	if _, ack = v5Connect(t, tb.Addr, cp); !ack.SessionPresent {
		t.Fatal("a session with Session Expiry 0xFFFFFFFF expired")
	}
}

// §3.14.2.2.2: a non-zero Session Expiry in DISCONNECT after 0 in CONNECT
// is a Protocol Error: DISCONNECT 0x82 from the server, then close.
func TestSpecV5_MQTT_3_14_2_2_DisconnectSessionExpiryAfterZero(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "dse", nil)
	d := codec.Disconnect{}
	d.Props.Set(codec.PropSessionExpiry)
	d.Props.SessionExpiry = 60
	r.send(d.Append(nil, codec.V5))
	r.expectDisconnect(codec.ProtocolError)
}

// [MQTT-3.1.4-3] A second connection with the same client id takes the
// session over: the old v5 connection gets DISCONNECT 0x8E and is closed.
func TestSpecV5_MQTT_3_1_4_3_SessionTakeover(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	old, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "tk", CleanStart: true})
	_, _ = v5Connect(t, tb.Addr, &paho.Connect{ClientID: "tk", CleanStart: true})
	if d := old.serverDisconnect(t); d.ReasonCode != 0x8E {
		t.Fatalf("old connection got DISCONNECT 0x%02x, want 0x8E", d.ReasonCode)
	}
	select {
	case <-old.Done():
	case <-time.After(v5Timeout):
		t.Fatal("old connection not closed")
	}

	// Raw: the DISCONNECT is the last packet before the close.
	r1, _ := v5RawConnect(t, tb.Addr, "tk-raw", nil)
	v5RawConnect(t, tb.Addr, "tk-raw", nil)
	r1.expectDisconnect(codec.SessionTakenOver)
}

// ---- topic aliases ----

// [MQTT-3.3.2-12] A topic alias set by the client maps an empty topic name
// to the full topic: subscribers get the real topic and no alias
// [MQTT-3.1.2-27] (they sent no Topic Alias Maximum).
func TestSpecV5_MQTT_3_3_2_12_TopicAliasInbound(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{TopicAliasMaximum: 5})
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ta-sub", CleanStart: true})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ta/#", QoS: 1}}})
	r, _ := v5RawConnect(t, tb.Addr, "ta-pub", nil)
	f := func(topic string, alias uint16, payload string) {
		t.Helper()
		p := &codec.Publish{Topic: []byte(topic), QoS: 1, Payload: []byte(payload)}
		p.Props.Set(codec.PropTopicAlias)
		p.Props.TopicAlias = alias
		if code := r.publish(p); code.IsError() {
			t.Fatalf("PUBACK 0x%02x", byte(code))
		}
	}
	f("ta/one", 1, "a")
	f("", 1, "b")
	f("ta/five", 5, "c")
	f("", 5, "d")
	f("ta/one2", 1, "e") // re-map alias 1
	f("", 1, "f")
	want := [][2]string{{"ta/one", "a"}, {"ta/one", "b"}, {"ta/five", "c"}, {"ta/five", "d"}, {"ta/one2", "e"}, {"ta/one2", "f"}}
	for _, w := range want {
		p := sub.recv(t)
		if p.Topic != w[0] || string(p.Payload) != w[1] {
			t.Fatalf("got %q %q, want %q %q", p.Topic, p.Payload, w[0], w[1])
		}
		if p.Properties != nil && p.Properties.TopicAlias != nil {
			t.Fatalf("forwarded PUBLISH carries Topic Alias %d [MQTT-3.1.2-27]", *p.Properties.TopicAlias)
		}
	}
}

// [MQTT-3.3.2-8] Topic Alias 0 and [MQTT-3.3.2-12] an alias above the
// server's Topic Alias Maximum: DISCONNECT 0x94.
func TestSpecV5_MQTT_3_3_2_12_TopicAliasOutOfRange(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{TopicAliasMaximum: 5})
	for _, alias := range []uint16{0, 6, 0xFFFF} {
		r, _ := v5RawConnect(t, tb.Addr, fmt.Sprintf("tao-%d", alias), nil)
		p := &codec.Publish{Topic: []byte("tao/t"), Payload: []byte("x")}
		p.Props.Set(codec.PropTopicAlias)
		p.Props.TopicAlias = alias
		r.publish(p)
		r.expectDisconnect(codec.TopicAliasInvalid)
	}
}

// §3.3.2.1: an empty topic name with an alias the client never mapped is a
// Protocol Error: DISCONNECT 0x82.
func TestSpecV5_MQTT_3_3_2_TopicAliasUnknown(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{TopicAliasMaximum: 5})
	r, _ := v5RawConnect(t, tb.Addr, "tau", nil)
	p := &codec.Publish{Payload: []byte("x")}
	p.Props.Set(codec.PropTopicAlias)
	p.Props.TopicAlias = 3
	r.publish(p)
	r.expectDisconnect(codec.ProtocolError)

	// [MQTT-3.3.2-7] Aliases do not survive the connection.
	r, _ = v5RawConnect(t, tb.Addr, "tau2", nil)
	p = &codec.Publish{Topic: []byte("tau/t"), Payload: []byte("x")}
	p.Props.Set(codec.PropTopicAlias)
	p.Props.TopicAlias = 2
	r.publish(p)
	r.barrier()
	r.disconnect(codec.NormalDisconnection)
	r.expectClosed(v5Timeout)
	r, _ = v5RawConnect(t, tb.Addr, "tau2", nil)
	p.Topic = nil
	r.publish(p)
	r.expectDisconnect(codec.ProtocolError)
}

// ---- flow control ----

// [MQTT-3.3.4-9] The server sends at most the client's Receive Maximum of
// unacknowledged QoS 1 PUBLISHes; every queued message arrives, in order
// [MQTT-4.6.0-6], as acks open the window.
func TestSpecV5_MQTT_3_3_4_9_ReceiveMaximum(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	connect := func(p *codec.Connect) {
		p.CleanStart = false
		p.Props.Set(codec.PropSessionExpiry)
		p.Props.SessionExpiry = 60
		p.Props.Set(codec.PropReceiveMaximum)
		p.Props.ReceiveMaximum = 2
	}
	r, _ := v5RawConnect(t, tb.Addr, "rm", connect)
	r.subscribe(0, codec.Subscription{Filter: []byte("rm/t"), QoS: 1})
	r.disconnect(codec.NormalDisconnection)
	r.expectClosed(v5Timeout)

	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rm-pub", CleanStart: true})
	const n = 10
	for i := range n {
		pub.publish(t, &paho.Publish{Topic: "rm/t", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	v5Wait(t, "10 queued messages", func() bool { return tb.B.Stats().Queued == n })

	r, ack := v5RawConnect(t, tb.Addr, "rm", connect)
	if !ack.SessionPresent {
		t.Fatal("session lost")
	}
	var unacked []*codec.Publish
	next := 0
	for next < n || len(unacked) > 0 {
		for len(unacked) < 2 && next < n {
			p := r.expectPublish()
			if p.QoS != 1 || string(p.Payload) != fmt.Sprint(next) {
				t.Fatalf("got QoS %d %q, want QoS 1 %q", p.QoS, p.Payload, fmt.Sprint(next))
			}
			unacked = append(unacked, p)
			next++
		}
		if extra := r.barrier(); len(extra) != 0 {
			t.Fatalf("with %d unacknowledged PUBLISHes the server sent %+v (Receive Maximum 2)", len(unacked), extra[0])
		}
		r.ack(codec.PUBACK, unacked[0].PacketID)
		unacked = unacked[1:]
	}
}

// [MQTT-3.3.4-9] with [MQTT-4.4.0-1]: unacknowledged PUBLISHes resent on
// session resume (DUP=1 [MQTT-3.3.1-1], original packet ids, in order)
// also respect the new connection's Receive Maximum, even when it is
// smaller than the previous one; newer messages follow them.
func TestSpecV5_MQTT_3_3_4_9_ReceiveMaximumOnResume(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	connect := func(rm uint16) func(p *codec.Connect) {
		return func(p *codec.Connect) {
			p.CleanStart = false
			p.Props.Set(codec.PropSessionExpiry)
			p.Props.SessionExpiry = 60
			p.Props.Set(codec.PropReceiveMaximum)
			p.Props.ReceiveMaximum = rm
		}
	}
	r, _ := v5RawConnect(t, tb.Addr, "rmr", connect(10))
	r.subscribe(0, codec.Subscription{Filter: []byte("rmr/t"), QoS: 1})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rmr-pub", CleanStart: true})
	const n = 5
	for i := range n {
		pub.publish(t, &paho.Publish{Topic: "rmr/t", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	var ids []uint16
	for range n {
		ids = append(ids, r.expectPublish().PacketID)
	}
	v5Drop(t, tb, 1, func() { r.c.Close() })
	pub.publish(t, &paho.Publish{Topic: "rmr/t", QoS: 1, Payload: []byte("new")})

	r, _ = v5RawConnect(t, tb.Addr, "rmr", connect(2))
	var unacked []*codec.Publish
	for i := 0; i <= n; {
		for len(unacked) < 2 && i <= n {
			p := r.expectPublish()
			want, dup := "new", false
			if i < n {
				want, dup = fmt.Sprint(i), true
				if p.PacketID != ids[i] {
					t.Fatalf("message %d resent with packet id %d, was %d", i, p.PacketID, ids[i])
				}
			}
			if string(p.Payload) != want || p.Dup != dup {
				t.Fatalf("got %q DUP %v, want %q DUP %v", p.Payload, p.Dup, want, dup)
			}
			unacked = append(unacked, p)
			i++
		}
		if extra := r.barrier(); len(extra) != 0 {
			t.Fatalf("with %d unacknowledged PUBLISHes the server sent %+v (Receive Maximum 2)", len(unacked), extra[0])
		}
		r.ack(codec.PUBACK, unacked[0].PacketID)
		unacked = unacked[1:]
	}
}

// [MQTT-3.1.2-24/-25] A PUBLISH larger than the client's Maximum Packet
// Size is never sent: it is dropped as if delivered, so smaller ones still
// arrive and the QoS 1 window is not used up.
func TestSpecV5_MQTT_3_1_2_24_MaximumPacketSizeOutbound(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "mps", func(p *codec.Connect) {
		p.Props.Set(codec.PropMaximumPacketSize)
		p.Props.MaximumPacketSize = 100
		p.Props.Set(codec.PropReceiveMaximum)
		p.Props.ReceiveMaximum = 1
	})
	r.subscribe(0, codec.Subscription{Filter: []byte("mps/#"), QoS: 1})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "mps-pub", CleanStart: true})
	big := bytes.Repeat([]byte("x"), 200)
	for _, qos := range []byte{0, 1, 1, 1} {
		pub.publish(t, &paho.Publish{Topic: "mps/big", QoS: qos, Payload: big})
	}
	pub.publish(t, &paho.Publish{Topic: "mps/small", QoS: 1, Payload: []byte("small")})
	p := r.expectPublish()
	if p.Topic == nil || string(p.Topic) != "mps/small" {
		t.Fatalf("got %q (%d bytes payload), want mps/small", p.Topic, len(p.Payload))
	}
	r.ack(codec.PUBACK, p.PacketID)
	if extra := r.barrier(); len(extra) != 0 {
		t.Fatalf("unexpected %+v", extra[0])
	}
}

// An inbound packet above the server's Maximum Packet Size: DISCONNECT
// 0x95 (Packet too large), then close (BUILDING-BLOCKS §5.8).
func TestSpecV5_MQTT_3_2_2_MaximumPacketSizeInbound(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxPacketSize: 1024})
	r, _ := v5RawConnect(t, tb.Addr, "mpi", nil)
	// Only the start of a 2000-byte PUBLISH: the server must decide on the
	// fixed header, and no unread bytes turn its close into a reset.
	p := codec.Publish{Topic: []byte("mpi/t"), Payload: make([]byte, 2000)}
	r.send(p.Append(nil, codec.V5)[:16])
	r.expectDisconnect(codec.PacketTooLarge)
}

// [MQTT-3.3.2-5] A message whose expiry passed while queued for an offline
// session is not delivered; [MQTT-3.3.2-6] one that is delivered carries the
// received expiry minus the time it waited.
func TestSpecV5_MQTT_3_3_2_5_MessageExpiry(t *testing.T) {
	t.Parallel()
	clk := &v5Clock{}
	tb := start(t, broker.Options{Now: clk.Now})
	cp := func() *paho.Connect {
		return &paho.Connect{ClientID: "mx", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(3600)}}
	}
	c, _ := v5Connect(t, tb.Addr, cp())
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "mx/#", QoS: 1}}})
	v5Drop(t, tb, 0, func() { _ = c.Disconnect(&paho.Disconnect{}) })

	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "mx-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "mx/short", QoS: 1, Payload: []byte("short"),
		Properties: &paho.PublishProperties{MessageExpiry: v5U32(1)}})
	pub.publish(t, &paho.Publish{Topic: "mx/long", QoS: 1, Payload: []byte("long"),
		Properties: &paho.PublishProperties{MessageExpiry: v5U32(10)}})
	pub.publish(t, &paho.Publish{Topic: "mx/none", QoS: 1, Payload: []byte("none")})
	v5Wait(t, "3 queued messages", func() bool { return tb.B.Stats().Queued == 3 })
	clk.Advance(2 * time.Second)

	c, _ = v5Connect(t, tb.Addr, cp())
	p := c.recv(t)
	if p.Topic != "mx/long" {
		t.Fatalf("first message %q, want mx/long (mx/short expired)", p.Topic)
	}
	if e := p.Properties.MessageExpiry; e == nil || *e > 8 || *e == 0 {
		t.Fatalf("Message Expiry %v after waiting 2 s of 10, want 1..8", e)
	}
	p = c.recv(t)
	if p.Topic != "mx/none" || p.Properties.MessageExpiry != nil {
		t.Fatalf("got %q expiry %v, want mx/none without expiry", p.Topic, p.Properties.MessageExpiry)
	}
	c.quiet(t)

	// Live delivery: the expiry is forwarded, never larger than sent.
	pub.publish(t, &paho.Publish{Topic: "mx/live", QoS: 0, Payload: []byte("l"),
		Properties: &paho.PublishProperties{MessageExpiry: v5U32(30)}})
	if p = c.recv(t); p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry > 30 {
		t.Fatalf("live Message Expiry %v, want ≤ 30", p.Properties.MessageExpiry)
	}
}

// ---- subscription identifiers ----

// [MQTT-3.3.4-3/-4] A delivered PUBLISH carries the Subscription
// Identifier; overlapping subscriptions give one PUBLISH carrying all of
// them [MQTT-3.3.4-2].
func TestSpecV5_MQTT_3_3_4_3_SubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sid", CleanStart: true})
	c.subscribe(t, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: v5Int(7)},
		Subscriptions: []paho.SubscribeOptions{{Topic: "sid/p", QoS: 1}}})
	c.publish(t, &paho.Publish{Topic: "sid/p", QoS: 1, Payload: []byte("x")})
	if p := c.recv(t); p.Properties == nil || p.Properties.SubscriptionIdentifier == nil || *p.Properties.SubscriptionIdentifier != 7 {
		t.Fatalf("PUBLISH properties %+v, want Subscription Identifier 7", p.Properties)
	}

	r, _ := v5RawConnect(t, tb.Addr, "sid-raw", nil)
	r.subscribe(1, codec.Subscription{Filter: []byte("sid/+"), QoS: 0})
	r.subscribe(2, codec.Subscription{Filter: []byte("sid/r"), QoS: 1})
	r.subscribe(0, codec.Subscription{Filter: []byte("sid/#"), QoS: 0})
	c.publish(t, &paho.Publish{Topic: "sid/r", QoS: 1, Payload: []byte("y")})
	p := r.expectPublish()
	ids := slices.Sorted(slices.Values(p.Props.SubscriptionIDs))
	if !slices.Equal(ids, []uint32{1, 2}) || p.QoS != 1 {
		t.Fatalf("PUBLISH QoS %d ids %v, want one QoS 1 copy with ids [1 2]", p.QoS, p.Props.SubscriptionIDs)
	}
	r.ack(codec.PUBACK, p.PacketID)
	// A second publish from the same publisher proves no other copy of the
	// first is on its way.
	c.publish(t, &paho.Publish{Topic: "sid/z", QoS: 0, Payload: []byte("z")})
	if p = r.expectPublish(); string(p.Payload) != "z" {
		t.Fatalf("second copy of %q", p.Payload)
	}
}

// [MQTT-3.3.4-6] A PUBLISH from a client carrying a Subscription
// Identifier is a Protocol Error; so is a Subscription Identifier of 0 in
// SUBSCRIBE (§3.8.2.1.2).
func TestSpecV5_MQTT_3_3_4_6_SubscriptionIdentifierErrors(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "sie1", nil)
	p := &codec.Publish{Topic: []byte("sie/t"), Payload: []byte("x")}
	p.Props.SubscriptionIDs = []uint32{5}
	r.publish(p)
	r.expectDisconnect(codec.ProtocolError)

	r, _ = v5RawConnect(t, tb.Addr, "sie2", nil)
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("sie/t")}}}
	s.Props.SubscriptionIDs = []uint32{0}
	r.send(s.Append(nil, codec.V5))
	r.expectDisconnect(codec.ProtocolError)
}

// ---- subscription options ----

// [MQTT-3.8.3-3] No Local: a client does not get its own messages back on
// that subscription, but does get other clients' messages.
func TestSpecV5_MQTT_3_8_3_3_NoLocal(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "nl", CleanStart: true})
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "nl/t", QoS: 1, NoLocal: true},
		{Topic: "nl/sync", QoS: 1},
	}})
	c.publish(t, &paho.Publish{Topic: "nl/t", QoS: 1, Payload: []byte("own")})
	c.publish(t, &paho.Publish{Topic: "nl/sync", QoS: 1, Payload: []byte("sync")})
	if p := c.recv(t); p.Topic != "nl/sync" {
		t.Fatalf("got own message %q %q back despite No Local", p.Topic, p.Payload)
	}
	other, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "nl-other", CleanStart: true})
	other.publish(t, &paho.Publish{Topic: "nl/t", QoS: 1, Payload: []byte("other")})
	if p := c.recv(t); string(p.Payload) != "other" {
		t.Fatalf("got %q, want the other client's message", p.Payload)
	}
}

// [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
func TestSpecV5_MQTT_3_8_3_4_NoLocalShared(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "nls", nil)
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("$share/g/nls/t"), NoLocal: true}}}
	r.send(s.Append(nil, codec.V5))
	r.expectDisconnect(codec.ProtocolError)
}

// v5RetainedOn subscribes with opts and returns the PUBLISHes that came with
// the SUBACK (the barrier proves nothing else was sent for it).
func v5RetainedOn(r *v5Raw, sub codec.Subscription) []*codec.Publish {
	r.t.Helper()
	if codes := r.subscribe(0, sub); codes[0].IsError() {
		r.t.Fatalf("SUBACK 0x%02x", byte(codes[0]))
	}
	var out []*codec.Publish
	for _, p := range r.barrier() {
		pp, ok := p.(*codec.Publish)
		if !ok {
			r.t.Fatalf("unexpected %+v", p)
		}
		if pp.QoS > 0 {
			r.ack(codec.PUBACK, pp.PacketID)
		}
		out = append(out, pp)
	}
	return out
}

// [MQTT-3.3.1-9/-10/-11] Retain Handling 0 sends retained messages on every
// subscribe, 1 only when the subscription is new, 2 never; they carry
// RETAIN 1. Shared subscriptions get none (§3.3.1.3).
func TestSpecV5_MQTT_3_3_1_9_RetainHandling(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rh-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "rh/t", QoS: 1, Retain: true, Payload: []byte("kept")})

	r, _ := v5RawConnect(t, tb.Addr, "rh", nil)
	f := func(filter string, rh byte, want int) {
		t.Helper()
		got := v5RetainedOn(r, codec.Subscription{Filter: []byte(filter), QoS: 1, RetainHandling: rh})
		if len(got) != want {
			t.Fatalf("subscribe %q with Retain Handling %d: %d retained messages, want %d", filter, rh, len(got), want)
		}
		for _, p := range got {
			if !p.Retain || string(p.Payload) != "kept" {
				t.Fatalf("retained message on subscribe: RETAIN %v payload %q [MQTT-3.3.1-9]", p.Retain, p.Payload)
			}
		}
	}
	f("rh/t", 0, 1) // [MQTT-3.3.1-9]
	f("rh/t", 0, 1) // again: Retain Handling 0 always sends
	f("rh/+", 1, 1) // [MQTT-3.3.1-10] new subscription
	f("rh/+", 1, 0) // existing subscription
	f("rh/#", 2, 0) // [MQTT-3.3.1-11]
	f("$share/g/rh/t", 0, 0)
}

// [MQTT-3.3.1-12] Retain As Published 0 forwards a retained-flag PUBLISH
// with RETAIN 0; [MQTT-3.3.1-13] Retain As Published 1 keeps RETAIN 1.
// Retained messages sent on subscribe carry RETAIN 1 whatever the option.
func TestSpecV5_MQTT_3_3_1_12_RetainAsPublished(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	rap0, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rap0", CleanStart: true})
	rap0.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "rap/t", QoS: 1}}})
	rap1, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rap1", CleanStart: true})
	rap1.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "rap/t", QoS: 1, RetainAsPublished: true}}})
	shared, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rap-sh", CleanStart: true})
	shared.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/rap/t", QoS: 1, RetainAsPublished: true}}})

	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rap-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "rap/t", QoS: 1, Retain: true, Payload: []byte("r")})
	if p := rap0.recv(t); p.Retain {
		t.Fatal("Retain As Published 0: forwarded with RETAIN 1 [MQTT-3.3.1-12]")
	}
	if p := rap1.recv(t); !p.Retain {
		t.Fatal("Retain As Published 1: forwarded with RETAIN 0 [MQTT-3.3.1-13]")
	}
	if p := shared.recv(t); !p.Retain {
		t.Fatal("Retain As Published 1 on a shared subscription: forwarded with RETAIN 0 [MQTT-3.3.1-13]")
	}
	late, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rap-late", CleanStart: true})
	late.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "rap/t", QoS: 1}}})
	if p := late.recv(t); !p.Retain {
		t.Fatal("retained message sent on subscribe with RETAIN 0")
	}
}

// [MQTT-3.3.2-4/-15/-16/-17/-18/-20] Payload Format Indicator, Response
// Topic, Correlation Data, User Properties (in order, repeats kept) and
// Content Type are forwarded unaltered.
func TestSpecV5_MQTT_3_3_2_4_ForwardedProperties(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "fp-sub", CleanStart: true})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fp/t", QoS: 1}}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "fp-pub", CleanStart: true})
	user := paho.UserProperties{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}, {Key: "b", Value: "3"}, {Key: "", Value: ""}}
	want := &paho.PublishProperties{
		PayloadFormat:   v5Byte(1),
		ContentType:     "application/json; charset=utf-8",
		ResponseTopic:   "fp/reply",
		CorrelationData: []byte{0, 1, 2, 0xff},
		User:            user,
	}
	for _, qos := range []byte{0, 1, 2} {
		pub.publish(t, &paho.Publish{Topic: "fp/t", QoS: qos, Payload: []byte(`{"k":"é"}`), Properties: want})
		p := sub.recv(t)
		g := p.Properties
		switch {
		case g == nil:
			t.Fatalf("QoS %d: no properties", qos)
		case g.PayloadFormat == nil || *g.PayloadFormat != 1:
			t.Fatalf("QoS %d: Payload Format %v [MQTT-3.3.2-4]", qos, g.PayloadFormat)
		case g.ContentType != want.ContentType:
			t.Fatalf("QoS %d: Content Type %q [MQTT-3.3.2-20]", qos, g.ContentType)
		case g.ResponseTopic != want.ResponseTopic:
			t.Fatalf("QoS %d: Response Topic %q [MQTT-3.3.2-15]", qos, g.ResponseTopic)
		case !bytes.Equal(g.CorrelationData, want.CorrelationData):
			t.Fatalf("QoS %d: Correlation Data % x [MQTT-3.3.2-16]", qos, g.CorrelationData)
		case !slices.Equal(g.User, user):
			t.Fatalf("QoS %d: User Properties %v, want %v in order [MQTT-3.3.2-17/-18]", qos, g.User, user)
		case g.MessageExpiry != nil:
			t.Fatalf("QoS %d: Message Expiry %d added", qos, *g.MessageExpiry)
		}
	}
}

// §3.3.2.3.2: Payload Format Indicator 1 with a payload that is not UTF-8.
// The codec rejects it while decoding, so the broker answers DISCONNECT
// 0x99 (Payload format invalid) and closes; nothing is delivered.
func TestSpecV5_MQTT_3_3_2_PayloadFormatInvalid(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pfi-sub", CleanStart: true})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "pfi/t", QoS: 1}}})
	for _, qos := range []byte{0, 1} {
		r, _ := v5RawConnect(t, tb.Addr, fmt.Sprintf("pfi-%d", qos), nil)
		p := &codec.Publish{Topic: []byte("pfi/t"), QoS: qos, PacketID: 1, Payload: []byte{0xff, 0xfe, 'x'}}
		p.Props.Set(codec.PropPayloadFormat)
		p.Props.PayloadFormat = 1
		r.send(p.Append(nil, codec.V5))
		r.expectDisconnect(codec.PayloadFormatInvalid)
	}
	sub.quiet(t)
}

// ---- wills ----

// v5WillWatcher subscribes to will/# and returns the client.
func v5WillWatcher(t *testing.T, tb *testBroker) *v5Paho {
	w, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "watcher", CleanStart: true})
	w.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "will/#", QoS: 1}}})
	return w
}

func v5WillConnect(id string, delay uint32) *paho.Connect {
	return &paho.Connect{
		ClientID: id, CleanStart: false,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: v5U32(60)},
		WillMessage:    &paho.WillMessage{Topic: "will/" + id, QoS: 1, Payload: []byte("gone " + id)},
		WillProperties: &paho.WillProperties{WillDelayInterval: v5U32(delay)},
	}
}

// [MQTT-3.1.3-9] Will Delay 2 s and a reconnect within it: the will is not
// published. The broker clock is then moved far past the delay.
func TestSpecV5_MQTT_3_1_3_9_WillDelayReconnect(t *testing.T) {
	t.Parallel()
	clk := &v5Clock{}
	tb := start(t, broker.Options{Now: clk.Now})
	w := v5WillWatcher(t, tb)
	c, _ := v5Connect(t, tb.Addr, v5WillConnect("wd", 2))
	v5Drop(t, tb, 1, c.TerminateConnectionForTest)
	clk.Advance(time.Second)
	_, ack := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "wd", CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(60)}})
	if !ack.SessionPresent {
		t.Fatal("session lost")
	}
	clk.Advance(time.Minute)
	w.quiet(t)
	if n := tb.B.Stats().WillsPublished; n != 0 {
		t.Fatalf("%d wills published", n)
	}
}

// [MQTT-3.1.2-8] Will Delay 2 s and no reconnect: the will is published
// once the delay has passed, not before.
func TestSpecV5_MQTT_3_1_2_8_WillDelayElapses(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	w := v5WillWatcher(t, tb)
	c, _ := v5Connect(t, tb.Addr, v5WillConnect("we", 2))
	t0 := time.Now()
	c.TerminateConnectionForTest()
	select {
	case p := <-w.msgs:
		if el := time.Since(t0); el < 1900*time.Millisecond {
			t.Fatalf("will published after %v, before the 2 s delay", el)
		}
		if p.Topic != "will/we" || string(p.Payload) != "gone we" {
			t.Fatalf("got %q %q", p.Topic, p.Payload)
		}
	case <-time.After(2*time.Second + v5Timeout):
		t.Fatal("will not published")
	}
}

// [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; DISCONNECT 0x04
// (Disconnect with Will Message) publishes it.
func TestSpecV5_MQTT_3_14_4_3_DisconnectWill(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	w := v5WillWatcher(t, tb)

	c, _ := v5Connect(t, tb.Addr, v5WillConnect("d0", 0))
	v5Drop(t, tb, 1, func() { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0}) })
	if n := tb.B.Stats().WillsPublished; n != 0 {
		t.Fatalf("will published after DISCONNECT 0x00 (%d)", n)
	}

	c, _ = v5Connect(t, tb.Addr, v5WillConnect("d4", 0))
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 4})
	if p := w.recv(t); p.Topic != "will/d4" {
		t.Fatalf("got %q, want will/d4 (and never will/d0)", p.Topic)
	}
	w.quiet(t)
}

// §3.1.3.2: the will's properties (Payload Format, Content Type, Response
// Topic, Correlation Data, User Properties in order) are passed on with the
// message, and its Message Expiry counts from when it is published
// (§3.1.3.2.4), not from CONNECT. Raw CONNECT: paho.golang v0.23.0 packs
// Will Properties with the CONNECT property set and drops all but Will
// Delay and User Properties.
func TestSpecV5_MQTT_3_1_3_WillProperties(t *testing.T) {
	t.Parallel()
	clk := &v5Clock{}
	tb := start(t, broker.Options{Now: clk.Now})
	w := v5WillWatcher(t, tb)
	user := []codec.UserProperty{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte("k2"), Value: []byte("v2")}, {Key: []byte("k1"), Value: []byte("v3")}}
	r, _ := v5RawConnect(t, tb.Addr, "wp", func(p *codec.Connect) {
		p.WillFlag, p.WillQoS = true, 1
		p.WillTopic, p.WillPayload = []byte("will/wp"), []byte("gone wp")
		wp := &p.WillProps
		wp.Set(codec.PropPayloadFormat)
		wp.PayloadFormat = 1
		wp.Set(codec.PropMessageExpiry)
		wp.MessageExpiry = 30
		wp.Set(codec.PropContentType)
		wp.ContentType = []byte("text/plain")
		wp.Set(codec.PropResponseTopic)
		wp.ResponseTopic = []byte("will/reply")
		wp.Set(codec.PropCorrelationData)
		wp.CorrelationData = []byte("corr")
		wp.User = user
	})
	clk.Advance(time.Minute) // connected for longer than the will's expiry
	r.c.Close()
	p := w.recv(t)
	g := p.Properties
	wantUser := paho.UserProperties{{Key: "k1", Value: "v1"}, {Key: "k2", Value: "v2"}, {Key: "k1", Value: "v3"}}
	switch {
	case p.Topic != "will/wp" || string(p.Payload) != "gone wp":
		t.Fatalf("got %q %q", p.Topic, p.Payload)
	case g == nil:
		t.Fatal("will without properties")
	case g.ContentType != "text/plain" || g.ResponseTopic != "will/reply" || string(g.CorrelationData) != "corr":
		t.Fatalf("will properties %+v", g)
	case g.PayloadFormat == nil || *g.PayloadFormat != 1:
		t.Fatalf("Payload Format %v", g.PayloadFormat)
	case !slices.Equal(g.User, wantUser):
		t.Fatalf("User Properties %v, want %v", g.User, wantUser)
	case g.MessageExpiry == nil || *g.MessageExpiry == 0 || *g.MessageExpiry > 30:
		t.Fatalf("Message Expiry %v, want 1..30", g.MessageExpiry)
	}
}

// ---- acknowledgements ----

// PUBACK/PUBREC 0x10 (No matching subscribers) when nobody subscribes, 0x00
// otherwise, and never 0x01, which is not a PUBACK code [MQTT-3.4.2-1]
// (mochi-mqtt sends it when the PUBLISH has properties).
func TestSpecV5_MQTT_3_4_2_1_PubackReasonCodes(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "pa", nil)
	f := func(qos byte, want codec.ReasonCode) {
		t.Helper()
		p := &codec.Publish{Topic: []byte("pa/t"), QoS: qos, PacketID: r.nextPID(), Payload: []byte("x")}
		p.Props.User = []codec.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
		p.Props.Set(codec.PropContentType)
		p.Props.ContentType = []byte("text/plain")
		r.send(p.Append(nil, codec.V5))
		var a *codec.Ack
		if qos == 1 {
			a = r.expectAck(codec.PUBACK, p.PacketID)
		} else {
			a = r.expectAck(codec.PUBREC, p.PacketID)
			r.send((&codec.Ack{Type: codec.PUBREL, PacketID: p.PacketID}).Append(nil, codec.V5))
			if c := r.expectAck(codec.PUBCOMP, p.PacketID); c.Code != 0 {
				t.Fatalf("PUBCOMP 0x%02x", byte(c.Code))
			}
		}
		if a.Code != want {
			t.Fatalf("QoS %d: ack 0x%02x, want 0x%02x", qos, byte(a.Code), byte(want))
		}
	}
	f(1, codec.NoMatchingSubscribers)
	f(2, codec.NoMatchingSubscribers)
	sub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "pa-sub", CleanStart: true})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "pa/t", QoS: 2}}})
	f(1, codec.Success)
	f(2, codec.Success)
}

// [MQTT-4.3.3-11] PUBREL for a packet id the server does not know: PUBCOMP
// 0x92 (Packet Identifier not found), and the connection stays up.
func TestSpecV5_MQTT_4_3_3_11_PubrelUnknown(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "prl", nil)
	r.send((&codec.Ack{Type: codec.PUBREL, PacketID: 77}).Append(nil, codec.V5))
	if a := r.expectAck(codec.PUBCOMP, 77); a.Code != codec.PacketIdentifierNotFound {
		t.Fatalf("PUBCOMP 0x%02x, want 0x92", byte(a.Code))
	}
	r.barrier()
}

// §3.11.3: UNSUBACK 0x11 (No subscription existed) for a filter that had
// no subscription, 0x00 for one that had, one code per filter in order, in
// one UNSUBACK [MQTT-3.10.4-4/-5].
func TestSpecV5_MQTT_3_11_3_UnsubackNoSubscription(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "us", nil)
	r.subscribe(0, codec.Subscription{Filter: []byte("us/a")})
	u := codec.Unsubscribe{PacketID: r.nextPID(), Filters: [][]byte{[]byte("us/a"), []byte("us/b"), []byte("us/a")}}
	r.send(u.Append(nil, codec.V5))
	a, ok := r.next(v5Timeout).(*codec.Unsuback)
	if !ok || a.PacketID != u.PacketID {
		t.Fatalf("want UNSUBACK, got %+v", a)
	}
	want := []codec.ReasonCode{codec.Success, codec.NoSubscriptionExisted, codec.NoSubscriptionExisted}
	if !slices.Equal(a.Codes, want) {
		t.Fatalf("UNSUBACK codes %v, want %v", a.Codes, want)
	}
}

// §3.9.3: SUBACK 0x8F (Topic Filter invalid) for a filter that breaks the
// wildcard or shared-subscription rules [MQTT-4.7.1-1/-2] [MQTT-4.8.2-2];
// the other filters of the SUBSCRIBE are granted and the connection stays.
func TestSpecV5_MQTT_3_9_3_SubackTopicFilterInvalid(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	r, _ := v5RawConnect(t, tb.Addr, "sfi", nil)
	codes := r.subscribe(0,
		codec.Subscription{Filter: []byte("sfi/ok"), QoS: 1},
		codec.Subscription{Filter: []byte("sfi/#/x"), QoS: 1},
		codec.Subscription{Filter: []byte("sfi/a+"), QoS: 0},
		codec.Subscription{Filter: []byte("$share/g+/sfi"), QoS: 0},
		codec.Subscription{Filter: []byte("sfi/+"), QoS: 2},
	)
	want := []codec.ReasonCode{codec.GrantedQoS1, codec.TopicFilterInvalid, codec.TopicFilterInvalid, codec.TopicFilterInvalid, codec.GrantedQoS2}
	if !slices.Equal(codes, want) {
		t.Fatalf("SUBACK codes %v, want %v", codes, want)
	}
	r.publish(&codec.Publish{Topic: []byte("sfi/ok"), Payload: []byte("x")})
	if p := r.expectPublish(); string(p.Topic) != "sfi/ok" {
		t.Fatalf("got %q", p.Topic)
	}
}

// ---- server shutdown ----

// §4.13 / §3.14: a server shutting down sends v5 clients DISCONNECT 0x8B
// (Server shutting down) and closes.
func TestSpecV5_MQTT_3_14_ServerShutdown(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sd", CleanStart: true})
	r, _ := v5RawConnect(t, tb.Addr, "sd-raw", nil)
	tb.stop(t)
	r.expectDisconnect(codec.ServerShuttingDown)
	if d := c.serverDisconnect(t); d.ReasonCode != 0x8B {
		t.Fatalf("DISCONNECT 0x%02x, want 0x8B", d.ReasonCode)
	}
}

// ---- shared subscriptions ----

// [MQTT-4.8.2-1..-3] A shared subscription with two v5 members on the two
// loops: messages go round robin, one copy each; a member that disconnects
// stops receiving, and gets nothing on resume.
func TestSpecV5_MQTT_4_8_2_SharedRoundRobin(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	// Empty client ids are assigned on the loop the connection lands on,
	// and gnet hands consecutive connections to the loops in turn, so the
	// two members live on different loops.
	member := func() (*v5Paho, string) {
		c, ack := v5Connect(t, tb.Addr, &paho.Connect{CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(60)}})
		c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/grp/sh/+", QoS: 1}}})
		return c, ack.Properties.AssignedClientID
	}
	a, _ := member()
	b, bid := member()
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "sh-pub", CleanStart: true})
	const n = 10
	for i := range n {
		pub.publish(t, &paho.Publish{Topic: "sh/t", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	got := map[string]int{}
	seen := map[string]bool{}
	for range n {
		var p *paho.Publish
		select {
		case p = <-a.msgs:
			got["a"]++
		case p = <-b.msgs:
			got["b"]++
		case <-time.After(v5Timeout):
			t.Fatalf("received %v of %d", got, n)
		}
		if seen[string(p.Payload)] {
			t.Fatalf("message %q delivered twice", p.Payload)
		}
		seen[string(p.Payload)] = true
	}
	if got["a"] != n/2 || got["b"] != n/2 {
		t.Fatalf("split %v, want round robin %d/%d", got, n/2, n/2)
	}

	v5Drop(t, tb, 2, func() { _ = b.Disconnect(&paho.Disconnect{}) })
	for i := range 4 {
		pub.publish(t, &paho.Publish{Topic: "sh/t", QoS: 1, Payload: []byte(fmt.Sprint("after", i))})
	}
	for i := range 4 {
		if p := a.recv(t); string(p.Payload) != fmt.Sprint("after", i) {
			t.Fatalf("remaining member got %q, want after%d", p.Payload, i)
		}
	}
	b, ack := v5Connect(t, tb.Addr, &paho.Connect{ClientID: bid, CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(60)}})
	if !ack.SessionPresent {
		t.Fatal("offline member's session lost")
	}
	b.quiet(t)
}
