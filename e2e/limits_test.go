package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// Limits of docs/security.md, each over real sockets: what
// the client sees at the limit, that the counter moves, and that other
// clients are not affected.

// dialFrom dials addr from the loopback address src (127.0.0.0/8 is all
// local on Linux), so one test can be several source addresses.
func dialFrom(t testing.TB, src, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, v: codec.V311}
}

// connectOK completes a 3.1.1 CONNECT and fails unless it is accepted.
func (r *rawConn) connectOK(id string) {
	r.t.Helper()
	if ack := r.connect(&codec.Connect{ClientID: []byte(id), CleanStart: true, KeepAlive: 60}); ack.Code != 0 {
		r.t.Fatalf("CONNACK 0x%02x for %s", ack.Code, id)
	}
}

// refusedAtAccept fails unless the server closes r without a byte, before
// any CONNECT is sent.
func (r *rawConn) refusedAtAccept() {
	r.t.Helper()
	if got := r.expectClosed(5 * time.Second); len(got) != 0 {
		r.t.Fatalf("got %d packets from a connection refused at accept", len(got))
	}
}

func waitStat(t testing.TB, tb *testBroker, what string, get func(broker.Stats) uint64, want uint64) {
	t.Helper()
	v3WaitFor(t, what, func() bool { return get(tb.B.Stats()) >= want })
}

// TestLimit_MaxConnections: beyond --max-connections a new connection is
// closed at accept without a byte; closing one frees its place.
func TestLimit_MaxConnections(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxConnections: 3})
	var conns []*rawConn
	for i := 0; i < 3; i++ {
		r := dialRaw(t, tb.Addr, codec.V311)
		r.connectOK(fmt.Sprintf("max-%d", i))
		conns = append(conns, r)
	}
	extra := dialRaw(t, tb.Addr, codec.V311)
	extra.refusedAtAccept()
	if got := tb.B.Stats().Rejected["max_connections"]; got != 1 {
		t.Fatalf("max_connections refusals = %d, want 1", got)
	}
	conns[0].c.Close()
	v3WaitFor(t, "the closed connection's place is free", func() bool { return tb.B.OpenConnections() == 2 })
	again := dialRaw(t, tb.Addr, codec.V311)
	again.connectOK("max-again")
	conns[1].v3Ping() // the others were never disturbed
}

// TestLimit_MaxConnectionsPerIP: the limit counts per source address; a
// connection moved to its client id's home loop keeps its one place.
func TestLimit_MaxConnectionsPerIP(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxConnectionsPerIP: 2})
	var conns []*rawConn
	for i := 0; i < 2; i++ {
		// Several ids, so some connections move between the two loops.
		r := dialFrom(t, "127.0.0.2", tb.Addr)
		r.connectOK(fmt.Sprintf("ip-%d", i))
		conns = append(conns, r)
	}
	dialFrom(t, "127.0.0.2", tb.Addr).refusedAtAccept()
	other := dialFrom(t, "127.0.0.3", tb.Addr)
	other.connectOK("other-ip")
	if got := tb.B.Stats().Rejected["max_connections_per_ip"]; got != 1 {
		t.Fatalf("max_connections_per_ip refusals = %d, want 1", got)
	}
	if n := tb.B.OpenConnections(); n != 3 {
		t.Fatalf("open connections = %d, want 3 (a moved connection counted twice?)", n)
	}
	// Every place comes back when the connections close, moved or not.
	for _, r := range append(conns, other) {
		r.c.Close()
	}
	v3WaitFor(t, "every place released", func() bool { return tb.B.OpenConnections() == 0 })
	dialFrom(t, "127.0.0.2", tb.Addr).connectOK("ip-again")
}

// TestLimit_ConnectionRatePerIP: a token bucket per source address:
// the burst passes, the next is refused at accept, another address is
// not affected.
func TestLimit_ConnectionRatePerIP(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{ConnectRatePerIP: 0.5, ConnectBurstPerIP: 3})
	for i := 0; i < 3; i++ {
		dialFrom(t, "127.0.0.4", tb.Addr).connectOK(fmt.Sprintf("rate-%d", i))
	}
	dialFrom(t, "127.0.0.4", tb.Addr).refusedAtAccept()
	dialFrom(t, "127.0.0.5", tb.Addr).connectOK("rate-other")
	if got := tb.B.Stats().Rejected["connection_rate"]; got != 1 {
		t.Fatalf("connection_rate refusals = %d, want 1", got)
	}
}

// TestLimit_ConnectTimeout: a connection that never speaks, and one that
// sends half a CONNECT, are closed after --connect-timeout.
func TestLimit_ConnectTimeout(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{ConnectTimeout: 300 * time.Millisecond})
	silent := dialRaw(t, tb.Addr, codec.V311)
	half := dialRaw(t, tb.Addr, codec.V311)
	raw := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, ClientID: []byte("half"), CleanStart: true}).Append(nil)
	half.send(raw[:len(raw)-3])
	silent.refusedAtAccept()
	half.v3Closed()
	waitStat(t, tb, "connect timeouts counted", func(s broker.Stats) uint64 { return s.Rejected["connect_timeout"] }, 2)
}

// TestSpec_MQTT_3_1_3_5_ClientIDLength: ids of 1..23 bytes are always
// accepted [MQTT-3.1.3-5]; beyond --max-client-id-length the CONNECT is
// refused: v5 CONNACK 0x85, 3.1.1 CONNACK 0x02.
func TestSpec_MQTT_3_1_3_5_ClientIDLength(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxClientIDLength: 10}) // raised to 23
	id23 := strings.Repeat("a", 23)
	dialRaw(t, tb.Addr, codec.V311).connectOK(id23)
	long := strings.Repeat("b", 24)
	r3 := dialRaw(t, tb.Addr, codec.V311)
	if ack := r3.connect(&codec.Connect{ClientID: []byte(long), CleanStart: true}); ack.Code != 0x02 {
		t.Fatalf("3.1.1 CONNACK 0x%02x, want 0x02", ack.Code)
	}
	r3.v3Closed()
	r5 := v5Dial(t, tb.Addr)
	if ack := r5.connect(&codec.Connect{ClientID: []byte(long), CleanStart: true}); ack.Code != byte(codec.ClientIdentifierNotValid) {
		t.Fatalf("v5 CONNACK 0x%02x, want 0x85", ack.Code)
	}
	r5.v3Closed()
	waitStat(t, tb, "refusals counted", func(s broker.Stats) uint64 { return s.Rejected["client_id_too_long"] }, 2)
}

// TestSpecV5_MQTT_3_2_2_21_MinKeepAlive: a v5 client asking for less than
// --min-keepalive is told the Server Keep Alive and must use it.
func TestSpecV5_MQTT_3_2_2_21_MinKeepAlive(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MinKeepAlive: 20, MaxKeepAlive: 100})
	_, ack := v5RawConnect(t, tb.Addr, "ka-low", func(p *codec.Connect) { p.KeepAlive = 2 })
	if !ack.Props.Has(codec.PropServerKeepAlive) || ack.Props.ServerKeepAlive != 20 {
		t.Fatalf("Server Keep Alive %v %d, want 20", ack.Props.Has(codec.PropServerKeepAlive), ack.Props.ServerKeepAlive)
	}
	_, ack = v5RawConnect(t, tb.Addr, "ka-ok", func(p *codec.Connect) { p.KeepAlive = 50 })
	if ack.Props.Has(codec.PropServerKeepAlive) {
		t.Fatalf("Server Keep Alive %d for a keep-alive within the range", ack.Props.ServerKeepAlive)
	}
}

// TestLimit_V3KeepAliveOutOfRange: 3.x cannot be told another keep-alive;
// as Mosquitto does for max_keepalive, such a CONNECT is refused with
// CONNACK 0x02.
func TestLimit_V3KeepAliveOutOfRange(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MinKeepAlive: 5, MaxKeepAlive: 60})
	for _, ka := range []uint16{61, 4} {
		r := dialRaw(t, tb.Addr, codec.V311)
		if ack := r.connect(&codec.Connect{ClientID: []byte("ka"), CleanStart: true, KeepAlive: ka}); ack.Code != 0x02 {
			t.Fatalf("keep-alive %d: CONNACK 0x%02x, want 0x02", ka, ack.Code)
		}
		r.v3Closed()
	}
	r := dialRaw(t, tb.Addr, codec.V311)
	if ack := r.connect(&codec.Connect{ClientID: []byte("ka"), CleanStart: true, KeepAlive: 60}); ack.Code != 0 {
		t.Fatalf("keep-alive 60: CONNACK 0x%02x, want 0", ack.Code)
	}
	waitStat(t, tb, "refusals counted", func(s broker.Stats) uint64 { return s.Rejected["keepalive_out_of_range"] }, 2)
}

// TestLimit_V3KeepAliveZeroHeldToMaximum: a 3.x client asking for no
// keep-alive while --max-keepalive is set is accepted, as Mosquitto 2
// does (devices whose firmware cannot change keep working), and closed
// like any other once silent for 1.5 × the maximum [MQTT-3.1.2-24].
func TestLimit_V3KeepAliveZeroHeldToMaximum(t *testing.T) {
	t.Parallel()
	clk := &v5Clock{}
	tb := start(t, broker.Options{MaxKeepAlive: 60, Now: clk.Now})
	r := dialRaw(t, tb.Addr, codec.V311)
	if ack := r.connect(&codec.Connect{ClientID: []byte("ka0"), CleanStart: true, KeepAlive: 0}); ack.Code != 0 {
		t.Fatalf("keep-alive 0: CONNACK 0x%02x, want 0", ack.Code)
	}
	clk.Advance(80 * time.Second)
	r.send([]byte{0xC0, 0}) // PINGREQ at 80 s: within 1.5 × 60 s of the last packet
	if h, _ := r.read(5 * time.Second); h.Type != codec.PINGRESP {
		t.Fatalf("want PINGRESP, got type %d", h.Type)
	}
	clk.Advance(91 * time.Second)
	r.expectClosed(5 * time.Second)
	waitStat(t, tb, "keep-alive timeout counted", func(s broker.Stats) uint64 { return s.KeepAliveTimeouts }, 1)
}

// TestLimit_MaxSubscriptions: a new filter beyond --max-subscriptions is
// refused in the SUBACK (v5 0x97, 3.1.1 0x80); replacing an existing one
// still works and the connection stays.
func TestLimit_MaxSubscriptions(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxSubscriptions: 2})
	r5, _ := v5RawConnect(t, tb.Addr, "subs5", nil)
	codes := r5.subscribe(0, codec.Subscription{Filter: []byte("a"), QoS: 1}, codec.Subscription{Filter: []byte("b"), QoS: 1}, codec.Subscription{Filter: []byte("c"), QoS: 1})
	if fmt.Sprint(codes) != fmt.Sprint([]codec.ReasonCode{1, 1, codec.QuotaExceeded}) {
		t.Fatalf("v5 SUBACK codes %v, want [1 1 0x97]", codes)
	}
	if codes := r5.subscribe(0, codec.Subscription{Filter: []byte("a"), QoS: 2}); codes[0] != 2 {
		t.Fatalf("replacing a subscription at the limit: code %v, want 2", codes[0])
	}
	r3, _ := v3Raw(t, tb.Addr, codec.V311, "subs3", true, nil)
	if codes := r3.v3Subscribe(1, "x", 0, "y", 0, "z", 0); fmt.Sprint(codes) != fmt.Sprint([]codec.ReasonCode{0, 0, 0x80}) {
		t.Fatalf("3.1.1 SUBACK codes %v, want [0 0 0x80]", codes)
	}
	r3.v3Ping()
	waitStat(t, tb, "refusals counted", func(s broker.Stats) uint64 { return s.SubscriptionsRefused["max_subscriptions"] }, 2)
}

// TestLimit_PublishRate: beyond --publish-rate (after the burst) a v5
// client gets DISCONNECT 0x96 and a 3.1.1 client is closed; a client
// within its budget keeps publishing and receiving on the same broker.
func TestLimit_PublishRate(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{PublishRate: 1, PublishBurst: 5})
	sink := newV3Sink()
	good, _ := v3Paho(t, tb.Addr, "calm", true, sink, nil)
	v3Sub(t, good, "calm/#", 1)

	flood5, _ := v5RawConnect(t, tb.Addr, "flood5", nil)
	for i := 0; i < 6; i++ {
		flood5.send((&codec.Publish{Topic: []byte("flood"), Payload: []byte("x")}).Append(nil, codec.V5))
	}
	flood5.expectDisconnect(codec.MessageRateTooHigh)

	flood3, _ := v3Raw(t, tb.Addr, codec.V311, "flood3", true, nil)
	for i := 0; i < 6; i++ {
		flood3.v3Publish("flood", 0, 0, false, false, "x")
	}
	flood3.expectClosed(5 * time.Second)

	v3Pub(t, good, "calm/1", 1, false, "still here")
	sink.waitPayload(t, "still here")
	waitStat(t, tb, "closes counted", func(s broker.Stats) uint64 { return s.Rejected["publish_rate"] }, 2)
}

// TestLimit_PublishByteRate: beyond --publish-byte-rate a v5 client gets
// DISCONNECT 0x97 (quota exceeded).
func TestLimit_PublishByteRate(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{PublishByteRate: 100, PublishByteBurst: 1000, MaxPacketSize: 1000})
	r, _ := v5RawConnect(t, tb.Addr, "bytes", nil)
	if code := r.publish(&codec.Publish{Topic: []byte("b"), QoS: 1, Payload: make([]byte, 500)}); code.IsError() {
		t.Fatalf("first PUBLISH within the burst: 0x%02x", byte(code))
	}
	r.send((&codec.Publish{Topic: []byte("b"), Payload: make([]byte, 600)}).Append(nil, codec.V5))
	r.expectDisconnect(codec.QuotaExceeded)
	waitStat(t, tb, "close counted", func(s broker.Stats) uint64 { return s.Rejected["publish_byte_rate"] }, 1)
}

// TestLimit_MaxQueuedBytes: an offline persistent session holds at most
// --max-queued-bytes of messages; the rest is dropped and counted, and v5
// publishers learn it from PUBACK 0x97.
func TestLimit_MaxQueuedBytes(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxQueuedBytes: 1000})
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "qbytes", false, nil)
	sub.v3Subscribe(1, "q", 1)
	sub.c.Close()
	v3WaitFor(t, "subscriber offline", func() bool { return tb.B.Stats().Clients == 0 })

	pub, _ := v5RawConnect(t, tb.Addr, "qpub", nil)
	payload := make([]byte, 299) // 300 bytes with the topic
	for i := 0; i < 3; i++ {
		if code := pub.publish(&codec.Publish{Topic: []byte("q"), QoS: 1, Payload: payload}); code.IsError() {
			t.Fatalf("message %d within the limit: PUBACK 0x%02x", i, byte(code))
		}
	}
	if code := pub.publish(&codec.Publish{Topic: []byte("q"), QoS: 1, Payload: payload}); code != codec.QuotaExceeded {
		t.Fatalf("message over the limit: PUBACK 0x%02x, want 0x97", byte(code))
	}
	waitStat(t, tb, "drop counted", func(s broker.Stats) uint64 { return s.Dropped["queue_bytes_full"] }, 1)

	back, ack := v3Raw(t, tb.Addr, codec.V311, "qbytes", false, nil)
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
	for i := 0; i < 3; i++ {
		p := back.v3ExpectPublish()
		back.v3Ack(codec.PUBACK, p.PacketID)
	}
	back.v3Ping() // nothing more queued
}

// TestLimit_V5PahoSeesRateDisconnect: a real v5 client (paho.golang) sees
// the reason code of a publish rate close.
func TestLimit_V5PahoSeesRateDisconnect(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{PublishRate: 1, PublishBurst: 2})
	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "paho-rate", CleanStart: true, KeepAlive: 30})
	for i := 0; i < 3; i++ {
		// QoS 0: the client does not wait, so the third is over the burst.
		_, _ = c.Publish(t.Context(), &paho.Publish{Topic: "r", Payload: []byte("x")})
	}
	if d := c.serverDisconnect(t); d.ReasonCode != byte(codec.MessageRateTooHigh) {
		t.Fatalf("DISCONNECT 0x%02x, want 0x96", d.ReasonCode)
	}
}

// TestSpec_MQTT_3_1_0_1_FirstByteNotConnect: a first packet that is not
// CONNECT is refused from its first byte: a PUBLISH header claiming
// almost the maximum packet size is not waited for (the connect timeout
// here is far longer than the wait).
func TestSpec_MQTT_3_1_0_1_FirstByteNotConnect(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{ConnectTimeout: time.Minute, MaxPacketSize: 1 << 20})
	r := dialRaw(t, tb.Addr, codec.V311)
	r.send([]byte{byte(codec.PUBLISH) << 4, 0xf0, 0xff, 0x3f}) // ~1 MiB claimed, nothing sent
	if got := r.expectClosed(3 * time.Second); len(got) != 0 {
		t.Fatalf("got %d packets before the close", len(got))
	}
}

// TestLimit_TrickledPacketArrivesWhole: a 200 KiB PUBLISH sent in 1 KiB
// writes reaches the subscriber intact: the transport waits for the body
// (broker.Client.NeedMore) across many reads.
func TestLimit_TrickledPacketArrivesWhole(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{})
	sub, _ := v3Raw(t, tb.Addr, codec.V311, "trickle-sub", true, nil)
	sub.v3Subscribe(1, "big/#", 0)
	pub, _ := v3Raw(t, tb.Addr, codec.V311, "trickle-pub", true, nil)
	payload := make([]byte, 200<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	raw := (&codec.Publish{Topic: []byte("big/1"), Payload: payload}).Append(nil, codec.V311)
	for off := 0; off < len(raw); off += 1024 {
		pub.send(raw[off:min(off+1024, len(raw))])
		if off%(32<<10) == 0 {
			time.Sleep(2 * time.Millisecond) // let the broker see partial bodies
		}
	}
	pub.v3Ping()
	p := sub.v3ExpectPublish()
	if string(p.Topic) != "big/1" || string(p.Payload) != string(payload) {
		t.Fatalf("got %q with %d bytes, want big/1 with %d intact bytes", p.Topic, len(p.Payload), len(payload))
	}
}

// TestMosq_LimitRefusals: what mosquitto_pub (a real 3.1.1 and v5 client)
// reports at the CONNECT limits: an over-long client id, a keep-alive above
// --max-keepalive (3.1.1 refused; v5 told the Server Keep Alive and served).
func TestMosq_LimitRefusals(t *testing.T) {
	bin := mosqBin(t, "mosquitto_pub")
	tb := start(t, broker.Options{MaxClientIDLength: 30, MaxKeepAlive: 60})
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		full := append([]string{"-h", "127.0.0.1", "-p", mosqPort(tb), "-t", "lim", "-m", "x"}, args...)
		out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
		return string(out), err
	}
	long := strings.Repeat("i", 31)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		out, err := run("-V", v, "-i", long)
		if err == nil || !strings.Contains(strings.ToLower(out), "identifier") {
			t.Fatalf("%s with a 31-byte id: err %v, output %q; want a refusal naming the identifier", v, err, out)
		}
	}
	if out, err := run("-V", "mqttv311", "-k", "120"); err == nil || !strings.Contains(strings.ToLower(out), "identifier rejected") {
		t.Fatalf("3.1.1 keep-alive 120: err %v, output %q; want identifier rejected", err, out)
	}
	if out, err := run("-V", "mqttv5", "-k", "120"); err != nil {
		t.Fatalf("v5 keep-alive 120: %v %q; want served with Server Keep Alive", err, out)
	}
}

// TestSpecV5_PacketTooLargeConnect: a v5 CONNECT over --max-packet-size is
// answered with CONNACK 0x95 from its header and protocol level, before its
// body has arrived; a 3.1.1 one is closed.
func TestSpecV5_PacketTooLargeConnect(t *testing.T) {
	t.Parallel()
	tb := start(t, broker.Options{MaxPacketSize: 1024})
	big := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V5, ClientID: []byte("big"), CleanStart: true,
		WillFlag: true, WillTopic: []byte("w"), WillPayload: make([]byte, 4096)}).Append(nil)
	r := v5Dial(t, tb.Addr)
	r.send(big[:64]) // the rest never comes
	h, body := r.read(5 * time.Second)
	var ack codec.Connack
	if err := ack.Decode(h, body, codec.V5); h.Type != codec.CONNACK || err != nil || ack.Code != byte(codec.PacketTooLarge) {
		t.Fatalf("got type %d code 0x%02x (%v), want CONNACK 0x95", h.Type, ack.Code, err)
	}
	r.v3Closed()
	big3 := (&codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, ClientID: []byte("big3"), CleanStart: true,
		WillFlag: true, WillTopic: []byte("w"), WillPayload: make([]byte, 4096)}).Append(nil)
	r3 := dialRaw(t, tb.Addr, codec.V311)
	r3.send(big3[:64])
	r3.v3Closed()
}

// TestLimit_SlowReader: a client that keeps sending PINGREQ without
// reading the PINGRESPs is closed once what it leaves unread passes
// 2 × --max-outbound-bytes + --max-packet-size, instead of growing the
// broker's outbound buffer without bound; another client is served.
func TestLimit_SlowReader(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(broker.Options{Loops: 2, MaxOutboundBytes: 16 << 10, MaxPacketSize: 1024, Store: store.NewMemory(), Logger: logger})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://" + addr}, Logger: logger, SocketSendBuffer: 4096, TickInterval: 100 * time.Millisecond})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(t.Context()) })

	r := dialRaw(t, addr, codec.V311)
	_ = r.c.(*net.TCPConn).SetReadBuffer(4096)
	r.connectOK("deaf")
	ping := bytes.Repeat(codec.AppendPingreq(nil), 4096) // 8 KiB of PINGREQ per write
	deadline := time.Now().Add(10 * time.Second)
	sent := 0
	for time.Now().Before(deadline) {
		_ = r.c.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := r.c.Write(ping)
		sent += n
		if err != nil {
			break
		}
	}
	v3WaitFor(t, "slow reader closed", func() bool { return b.Stats().Rejected["slow_reader"] == 1 })
	t.Logf("closed after %d KiB of PINGREQ", sent>>10)
	other, _ := v3Raw(t, addr, codec.V311, "other", true, nil)
	other.v3Ping()
}

// TestLimit_MaxConnectionsWebSocket: the goroutine transport (ws://) is
// admitted before the upgrade and gives its place back when it closes.
func TestLimit_MaxConnectionsWebSocket(t *testing.T) {
	t.Parallel()
	tb := startTransportWith(t, broker.Options{MaxConnections: 1}, reactor.TLSOptions{}, "ws")
	url := "ws://" + tb.Addrs["ws"] + "/mqtt"
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: v5Timeout}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, (&codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte("ws-1"), CleanStart: true, KeepAlive: 30}).Append(nil)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.ReadMessage(); err != nil || len(b) < 4 || codec.Type(b[0]>>4) != codec.CONNACK || b[3] != 0 {
		t.Fatalf("CONNACK % x, %v", b, err)
	}
	if _, _, err := d.Dial(url, nil); err == nil {
		t.Fatal("a second WebSocket connection was upgraded beyond --max-connections")
	}
	if got := tb.B.Stats().Rejected["max_connections"]; got != 1 {
		t.Fatalf("max_connections refusals = %d, want 1", got)
	}
	ws.Close()
	v3WaitFor(t, "the WebSocket connection's place is free", func() bool { return tb.B.OpenConnections() == 0 })
	ws2, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	ws2.Close()
}
