package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// Transport robustness (project issues 13 and 21): start-up, lingering
// close, pre-CONNECT bounds, WebSocket subprotocol, partial packets. Names
// carry an rr prefix.

// rrStart runs a broker restored from the Badger store in dir on addr,
// logging into lb. The returned func stops it and closes the store.
func rrStart(t testing.TB, dir, addr string, lb *logBuf, loops int) (*broker.Broker, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.OpenBadger(store.BadgerOptions{Dir: dir, Durability: store.DurabilityCommit, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b := broker.New(broker.Options{Loops: loops, Store: st, Logger: log})
	if _, err := b.Restore(); err != nil {
		st.Close()
		t.Fatalf("restore: %v", err)
	}
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://" + addr}, Logger: log, TickInterval: 100 * time.Millisecond})
	if err := srv.Start(); err != nil {
		st.Close()
		t.Fatalf("start broker: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Stop(ctx)
			_ = st.Close()
		})
	}
	t.Cleanup(stop)
	return b, stop
}

// rrPahoOpts are paho 3.1.1 options for a persistent session, dialling
// until the broker listens (connection refused is retried for up to 10 s).
func rrPahoOpts(addr, id string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(5 * time.Second).SetKeepAlive(30 * time.Second).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			deadline := time.Now().Add(10 * time.Second)
			for {
				c, err := net.Dial("tcp", addr)
				if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
					return c, err
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
}

// A. Clients that resume persistent sessions while the broker starts up
// are connected with their sessions, whichever loop their connection lands
// on: connections the kernel queued before the event loops were all bound
// used to be closed when their session lived on a loop not bound yet
// ("cannot move connection: owning loop not bound").
func TestReactorRobust_StartupResumeBeforeLoopsBound(t *testing.T) {
	const clients = 24
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("rr-startup-%d", i)
	}

	// First run: every client leaves a persistent session behind.
	_, stop := rrStart(t, dir, addr, &logBuf{}, 4)
	for _, id := range ids {
		c := mqtt.NewClient(rrPahoOpts(addr, id))
		v3Done(t, "connect "+id, c.Connect())
		v3Done(t, "subscribe "+id, c.Subscribe("rr/startup/"+id, 1, nil))
		c.Disconnect(0)
	}
	stop()

	for round := 0; round < 3; round++ {
		// The clients dial before the broker listens, so their connections
		// wait in the listen backlog and are served the moment the loops
		// run, before the loops are all bound.
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := mqtt.NewClient(rrPahoOpts(addr, id))
				tok := c.Connect()
				if !tok.WaitTimeout(15 * time.Second) {
					errs <- fmt.Errorf("%s: no CONNACK", id)
					return
				}
				if err := tok.Error(); err != nil {
					errs <- fmt.Errorf("%s: %v", id, err)
					return
				}
				if !tok.(*mqtt.ConnectToken).SessionPresent() {
					errs <- fmt.Errorf("%s: session not present", id)
				}
				c.Disconnect(0)
			}()
		}
		time.Sleep(20 * time.Millisecond)
		lb := &logBuf{}
		_, stop := rrStart(t, dir, addr, lb, 4)
		wg.Wait()
		stop()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		if t.Failed() {
			t.Fatalf("round %d: broker log:\n%s", round, lb.String())
		}
	}
}

// rrExpectEOF reads c until the server closes it, failing after d.
func rrExpectEOF(t testing.TB, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after %v", d)
		}
		return time.Since(start)
	}
}

// C. A WebSocket listener's connection that made a plain HTTP request and
// then idles on keep-alive is closed within the connect timeout: such
// sockets used to be held forever, and held connection slots.
func TestReactorRobust_WSIdleHTTPClosed(t *testing.T) {
	const slots = 4
	tb := startTransportWith(t, broker.Options{ConnectTimeout: time.Second, MaxConnections: slots}, reactor.TLSOptions{}, "ws")
	addr := tb.Addrs["ws"]
	var conns []net.Conn
	for i := 0; i < slots; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// HTTP/1.1 keeps the connection alive by default.
		if _, err := c.Write([]byte("GET /elsewhere HTTP/1.1\r\nHost: mcutie\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		took := rrExpectEOF(t, c, 5*time.Second)
		t.Logf("idle HTTP connection %d closed after %v", i, took.Round(10*time.Millisecond))
	}
	// The slots are free again.
	v3RoundTrip(t, "ws://"+addr+"/mqtt", nil, "rr-ws-after-idle")

	// A request whose headers never end is cut at the connect timeout too.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: mcutie\r\n"))
	rrExpectEOF(t, c, 5*time.Second)
}

// rrWSDial upgrades to ws://addr/mqtt offering protos.
func rrWSDial(addr string, protos ...string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 5 * time.Second}
	return d.Dial("ws://"+addr+"/mqtt", nil)
}

// D. A WebSocket upgrade that does not offer the "mqtt" subprotocol is
// refused with HTTP 400 [MQTT-6.0.0-3]; "mqttv3.1" (MQTT 3.1 clients) is
// accepted too, and Options.WSAllowNoSubprotocol lets the others in.
func TestReactorRobust_WSRequiresMQTTSubprotocol(t *testing.T) {
	tb := startTransport(t, reactor.TLSOptions{}, "ws")
	addr := tb.Addrs["ws"]
	for _, protos := range [][]string{nil, {"chat"}, {"mqttv5", "wamp"}} {
		ws, resp, err := rrWSDial(addr, protos...)
		if err == nil {
			ws.Close()
			t.Fatalf("offering %q: upgraded", protos)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("offering %q: want HTTP 400, got %v (%v)", protos, resp, err)
		}
	}
	tb.waitMetric(t, `mcutie_transport_rejected_total{reason="websocket_upgrade"}`, "3")
	for _, p := range []string{"mqtt", "mqttv3.1"} {
		ws, _, err := rrWSDial(addr, "other", p)
		if err != nil {
			t.Fatalf("offering %q: %v", p, err)
		}
		if ws.Subprotocol() != p {
			t.Fatalf("offering %q: selected %q", p, ws.Subprotocol())
		}
		ws.Close()
	}
	// paho (3.1.1 and v5) offers "mqtt".
	v3RoundTrip(t, "ws://"+addr+"/mqtt", nil, "rr-ws-v3")
	nc, err := mqtt.NewWebsocket("ws://"+addr+"/mqtt", nil, v5Timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v5RoundTrip(t, nc, "rr-ws-v5")

	// Opting out.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(broker.Options{Loops: 2, Store: store.NewMemory(), Logger: log})
	lax := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := reactor.New(b, reactor.Options{Listen: []string{"ws://" + lax}, Logger: log, WSAllowNoSubprotocol: true})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	ws, _, err := rrWSDial(lax)
	if err != nil {
		t.Fatalf("WSAllowNoSubprotocol: %v", err)
	}
	ws.Close()
}

// B. A client that exceeds Receive Maximum with QoS 2 PUBLISHes and keeps
// sending (PUBRELs, one a millisecond) while it is slow to read still
// reads the DISCONNECT 0x93 that says why it is closed. Its receive window
// is full (it subscribed to what it publishes), so the DISCONNECT waits in
// the broker's send queue: a closed socket that then received a PUBREL was
// aborted with a reset, and the queue with the DISCONNECT was dropped.
func TestReactorRobust_DisconnectReasonSurvivesInflightBytes(t *testing.T) {
	tb := start(t, broker.Options{MaxInflight: 4})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	for round := 0; round < 6; round++ {
		c, err := d.Dial("tcp", tb.Addr)
		if err != nil {
			t.Fatal(err)
		}
		r := &rawConn{t: t, c: c, v: codec.V5}
		r.connect(&codec.Connect{ClientID: []byte(fmt.Sprintf("rr-rm-%d", round)), CleanStart: true, KeepAlive: 60})
		fill := fmt.Sprintf("rr/fill/%d", round)
		sub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(fill)}}}
		r.send(sub.Append(nil, codec.V5))
		r.read(5 * time.Second) // SUBACK
		var out []byte
		for i := 0; i < 32; i++ { // 256 KiB back to this client, which does not read
			p := codec.Publish{Topic: []byte(fill), Payload: make([]byte, 8<<10)}
			out = p.Append(out, codec.V5)
		}
		for id := 1; id <= 8; id++ {
			p := codec.Publish{Topic: []byte("rr/rm"), QoS: 2, PacketID: uint16(id), Payload: []byte("x")}
			out = p.Append(out, codec.V5)
		}
		stop := make(chan struct{})
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if _, err := c.Write(out); err != nil {
				return
			}
			rel := codec.Ack{Type: codec.PUBREL, PacketID: 60000}
			b := rel.Append(nil, codec.V5)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}()
		time.Sleep(300 * time.Millisecond) // a busy client, slow to read
		got := awaitDisconnect(r.tryRead, codec.ReceiveMaximumExceeded)
		close(stop)
		<-wrote
		c.Close()
		if got != nil {
			t.Fatalf("round %d: %v", round, got)
		}
	}
}

// rrStartOpts runs a broker (2 loops, memory store) on tcp:// and, when
// given, more listeners, with reactor options ro.
func rrStartOpts(t testing.TB, bo broker.Options, ro reactor.Options, schemes ...string) (*reactor.Server, map[string]string, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bo.Loops, bo.Store, bo.Logger = 2, store.NewMemory(), log
	b := broker.New(bo)
	addrs := map[string]string{}
	for _, sc := range append([]string{"tcp"}, schemes...) {
		addrs[sc] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		ro.Listen = append(ro.Listen, sc+"://"+addrs[sc])
	}
	ro.Logger, ro.TickInterval = log, 100*time.Millisecond
	srv := reactor.New(b, ro)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		if t.Failed() {
			t.Logf("broker log:\n%s", lb.String())
		}
	})
	return srv, addrs, lb
}

// rrMetric returns the value of a metric line of srv ("" if absent).
func rrMetric(srv *reactor.Server, name string) string {
	var sb strings.Builder
	srv.WriteMetrics(&sb)
	for _, line := range strings.Split(sb.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// E. A 3.1.1 client with keep-alive 0 that starts a large PUBLISH and
// stops sending is closed once Options.PacketTimeout has passed since the
// packet began: such partial packets used to be held forever. Idling
// between packets is not affected, nor is a packet that trickles in within
// the timeout.
func TestReactorRobust_PartialPacketTimeout(t *testing.T) {
	const timeout = time.Second
	srv, addrs, _ := rrStartOpts(t, broker.Options{}, reactor.Options{PacketTimeout: timeout})
	addr := addrs["tcp"]
	connect := func(id string) *rawConn {
		r := dialRaw(t, addr, codec.V311)
		if ack := r.connect(&codec.Connect{ClientID: []byte(id), CleanStart: true, KeepAlive: 0}); ack.Code != 0 {
			t.Fatalf("CONNACK %#x", ack.Code)
		}
		return r
	}
	publish := func(n int) []byte {
		p := codec.Publish{Topic: []byte("rr/partial"), Payload: make([]byte, n)}
		return p.Append(nil, codec.V311)
	}

	// Held: all but the last byte of a 512 KiB PUBLISH.
	held := connect("rr-partial-held")
	pkt := publish(512 << 10)
	start := time.Now()
	held.send(pkt[:len(pkt)-1])
	took := rrExpectEOF(t, held.c, 5*time.Second)
	if took < timeout-100*time.Millisecond {
		t.Fatalf("closed after %v, before the packet timeout of %v", took, timeout)
	}
	t.Logf("partial packet: closed %v after its first byte", time.Since(start).Round(10*time.Millisecond))
	if got := rrMetric(srv, "mcutie_transport_packet_timeouts_total"); got != "1" {
		t.Fatalf("packet timeouts counted: %q", got)
	}

	// Idle between packets, then a packet trickling in over most of the
	// timeout, then another: still connected.
	idle := connect("rr-partial-idle")
	time.Sleep(2 * timeout)
	pkt = publish(1000)
	for i := 0; i < len(pkt); i += 100 {
		idle.send(pkt[i:min(i+100, len(pkt))])
		time.Sleep(timeout / 20)
	}
	idle.send([]byte{0xC0, 0}) // PINGREQ
	if h, _ := idle.read(5 * time.Second); h.Type != codec.PINGRESP {
		t.Fatalf("want PINGRESP, got %d", h.Type)
	}
	// Packets completing one after another, each within the timeout,
	// though the bytes keep coming for longer than it.
	pkt = append(publish(100), publish(100)...)
	deadline := time.Now().Add(2 * timeout)
	for time.Now().Before(deadline) {
		for i := 0; i < len(pkt); i += 50 {
			idle.send(pkt[i:min(i+50, len(pkt))])
			time.Sleep(timeout / 10)
		}
	}
	idle.send([]byte{0xC0, 0})
	if h, _ := idle.read(5 * time.Second); h.Type != codec.PINGRESP {
		t.Fatalf("want PINGRESP, got %d", h.Type)
	}
}

// rrWS is an MQTT client over WebSocket speaking raw packets.
type rrWS struct {
	t   testing.TB
	ws  *websocket.Conn
	buf []byte
}

func rrDialWS(t testing.TB, addr string, rcvbuf int) *rrWS {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	if rcvbuf > 0 {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}}
		d.NetDial = nd.Dial
	}
	ws, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &rrWS{t: t, ws: ws}
}

func (c *rrWS) send(b []byte) error { return c.ws.WriteMessage(websocket.BinaryMessage, b) }

// read returns the next MQTT packet.
func (c *rrWS) read(d time.Duration) (codec.FixedHeader, []byte, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(d))
	for {
		if h, err := codec.Frame(c.buf, 0); err == nil {
			body := append([]byte(nil), c.buf[h.HeaderLen:h.Len()]...)
			c.buf = c.buf[h.Len():]
			return h, body, nil
		}
		_, m, err := c.ws.ReadMessage()
		if err != nil {
			return codec.FixedHeader{}, nil, err
		}
		c.buf = append(c.buf, m...)
	}
}

// B and E on the goroutine transport (ws://): a partial packet is cut at
// the packet timeout, and the DISCONNECT 0x93 of a client that keeps
// sending while slow to read survives the close.
func TestReactorRobust_WSPacketTimeoutAndLingeringClose(t *testing.T) {
	const timeout = time.Second
	srv, addrs, _ := rrStartOpts(t, broker.Options{MaxInflight: 4}, reactor.Options{PacketTimeout: timeout}, "ws")
	addr := addrs["ws"]

	t.Run("partial packet", func(t *testing.T) {
		c := rrDialWS(t, addr, 0)
		cp := codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte("rr-ws-partial"), CleanStart: true}
		if err := c.send(cp.Append(nil)); err != nil {
			t.Fatal(err)
		}
		if h, _, err := c.read(5 * time.Second); err != nil || h.Type != codec.CONNACK {
			t.Fatalf("CONNACK: %v %v", h.Type, err)
		}
		p := codec.Publish{Topic: []byte("rr/partial"), Payload: make([]byte, 256<<10)}
		pkt := p.Append(nil, codec.V311)
		start := time.Now()
		if err := c.send(pkt[:64<<10]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.read(5 * time.Second); err == nil {
			t.Fatal("a packet instead of the close")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("not closed within 5 s")
		}
		if took := time.Since(start); took < timeout-100*time.Millisecond {
			t.Fatalf("closed after %v, before the packet timeout", took)
		}
		t.Logf("closed %v after the packet began", time.Since(start).Round(10*time.Millisecond))
		if got := rrMetric(srv, "mcutie_transport_packet_timeouts_total"); got != "1" {
			t.Fatalf("packet timeouts counted: %q", got)
		}
	})

	t.Run("reason code", func(t *testing.T) {
		for round := 0; round < 4; round++ {
			c := rrDialWS(t, addr, 4096)
			cp := codec.Connect{Version: codec.V5, ProtocolName: []byte("MQTT"), ClientID: []byte(fmt.Sprintf("rr-ws-rm-%d", round)), CleanStart: true, KeepAlive: 60}
			if err := c.send(cp.Append(nil)); err != nil {
				t.Fatal(err)
			}
			if h, _, err := c.read(5 * time.Second); err != nil || h.Type != codec.CONNACK {
				t.Fatalf("CONNACK: %v %v", h.Type, err)
			}
			fill := fmt.Sprintf("rr/wsfill/%d", round)
			sub := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(fill)}}}
			if err := c.send(sub.Append(nil, codec.V5)); err != nil {
				t.Fatal(err)
			}
			c.read(5 * time.Second) // SUBACK
			var out []byte
			for i := 0; i < 32; i++ {
				p := codec.Publish{Topic: []byte(fill), Payload: make([]byte, 8<<10)}
				out = p.Append(out, codec.V5)
			}
			for id := 1; id <= 8; id++ {
				p := codec.Publish{Topic: []byte("rr/rm"), QoS: 2, PacketID: uint16(id), Payload: []byte("x")}
				out = p.Append(out, codec.V5)
			}
			stop, wrote := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(wrote)
				if c.send(out) != nil {
					return
				}
				rel := codec.Ack{Type: codec.PUBREL, PacketID: 60000}
				b := rel.Append(nil, codec.V5)
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
					if c.send(b) != nil {
						return
					}
				}
			}()
			time.Sleep(300 * time.Millisecond)
			got := awaitDisconnect(c.read, codec.ReceiveMaximumExceeded)
			close(stop)
			<-wrote
			c.ws.Close()
			if got != nil {
				t.Fatalf("round %d: %v", round, got)
			}
		}
	})
}
