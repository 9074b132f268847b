package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
)

// Transports end to end: TLS, mutual TLS, WebSocket (ws/wss), PROXY
// protocol v1/v2 and certificate reload, with paho (3.1.1), paho.golang
// (5.0), mosquitto_pub/sub and raw sockets.

func serverTLS(p *testPKI) reactor.TLSOptions {
	return reactor.TLSOptions{CertFile: p.ServerCert, KeyFile: p.ServerKey}
}

func mutualTLS(p *testPKI) reactor.TLSOptions {
	o := serverTLS(p)
	o.ClientCAFile = p.CA
	return o
}

// v3RoundTrip connects a paho 3.1.1 client to brokerURL, subscribes to a
// topic, publishes to it and waits for the message to come back.
func v3RoundTrip(t *testing.T, brokerURL string, tlsc *tls.Config, cid string) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(cid).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(v3Wait)
	if tlsc != nil {
		o.SetTLSConfig(tlsc)
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", brokerURL, tok.Error())
	}
	defer c.Disconnect(100)
	sink := newV3Sink()
	topic := "transport/" + cid
	if tok := c.Subscribe(topic, 1, sink.handler); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	big := strings.Repeat("x", 100<<10) // spans TLS records and WebSocket frames
	for _, p := range []string{"hello", big} {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	got := sink.waitN(t, 2)
	if got[0].Payload != "hello" || got[1].Payload != big {
		t.Fatalf("got %d messages, payload lengths %d, %d", len(got), len(got[0].Payload), len(got[1].Payload))
	}
}

// v5RoundTrip does the same with paho.golang (MQTT 5) over nc.
func v5RoundTrip(t *testing.T, nc net.Conn, cid string) {
	t.Helper()
	c := newV5OverConn(t, nc, &paho.Connect{ClientID: cid, CleanStart: true, KeepAlive: 30})
	topic := "transport5/" + cid
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	c.publish(t, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("five")})
	if m := c.recv(t); string(m.Payload) != "five" {
		t.Fatalf("got %q", m.Payload)
	}
}

// newV5OverConn runs a paho.golang client over an established conn and
// fails the test unless it connects.
func newV5OverConn(t *testing.T, nc net.Conn, cp *paho.Connect) *v5Paho {
	t.Helper()
	c, ack, err := v5TryConnectOver(t, nc, cp)
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect: %v (%+v)", err, ack)
	}
	return c
}

func TestTLS_Paho311AndV5(t *testing.T) {
	p := newPKI(t)
	tb := startTransport(t, serverTLS(p), "tls")
	v3RoundTrip(t, "tls://"+tb.Addrs["tls"], p.ClientTLS(t, "", ""), "tls-v3")
	nc, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	v5RoundTrip(t, nc, "tls-v5")
}

func TestTLS_MinVersion13RefusesTLS12(t *testing.T) {
	p := newPKI(t)
	o := serverTLS(p)
	o.MinVersion = tls.VersionTLS13
	tb := startTransport(t, o, "tls")
	c := p.ClientTLS(t, "", "")
	c.MaxVersion = tls.VersionTLS12
	if nc, err := tls.Dial("tcp", tb.Addrs["tls"], c); err == nil {
		nc.Close()
		t.Fatal("a TLS 1.2 client completed a handshake with --tls-min-version 1.3")
	}
	c.MaxVersion = 0
	nc, err := tls.Dial("tcp", tb.Addrs["tls"], c)
	if err != nil {
		t.Fatal(err)
	}
	if v := nc.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %#x, want TLS 1.3", v)
	}
	v5RoundTrip(t, nc, "tls13")
}

// A client speaking plain MQTT to a TLS port gets no MQTT answer: the
// handshake fails, the socket closes and the log says why.
func TestTLS_PlainTCPRefused(t *testing.T) {
	p := newPKI(t)
	tb := startTransport(t, serverTLS(p), "tls")
	r := dialRaw(t, tb.Addrs["tls"], codec.V311)
	r.send((&codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte("plain"), CleanStart: true}).Append(nil))
	_ = r.c.SetReadDeadline(time.Now().Add(v3Wait))
	b, err := io.ReadAll(r.c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection not closed")
	}
	if len(b) > 0 && b[0] == 0x20 {
		t.Fatalf("got a CONNACK on a TLS port: % x", b)
	}
	tb.Log.waitFor(t, "TLS handshake failed", "remote="+r.c.LocalAddr().String())
	tb.waitMetric(t, `mcutie_transport_rejected_total{reason="tls_handshake"}`, "1")
}

func TestMTLS_Mosquitto(t *testing.T) {
	mosqBin(t, "mosquitto_pub")
	p := newPKI(t)
	tb := startTransport(t, mutualTLS(p), "tls")
	tls := tb.at("tls")
	certArgs := []string{"--cafile", p.CA, "--cert", p.ClientCert, "--key", p.ClientKey}
	sub := startMosqSub(t, tls, append([]string{"-V", "mqttv311", "-t", "mtls/t", "-C", "1", "-q", "1"}, certArgs...)...)
	mosqPub(t, tls, "", append([]string{"-V", "mqttv311", "-t", "mtls/t", "-m", "over-mtls", "-q", "1"}, certArgs...)...)
	if got := sub.wait(t); len(got) != 1 || !strings.HasSuffix(got[0], "|mtls/t|over-mtls") {
		t.Fatalf("mosquitto_sub got %q", got)
	}

	// Refused: a certificate from another CA, and no certificate at all.
	for name, args := range map[string][]string{
		"rogue":   {"--cafile", p.CA, "--cert", p.RogueCert, "--key", p.RogueKey},
		"no cert": {"--cafile", p.CA},
	} {
		out, err := mosqPubErr(t, tls, append([]string{"-t", "mtls/t", "-m", "x"}, args...)...)
		if err == nil {
			t.Fatalf("%s: mosquitto_pub succeeded against mTLS:\n%s", name, out)
		}
	}
	tb.Log.waitFor(t, "TLS handshake failed", "certificate")
}

func TestTLS_MosquittoServerAuthOnly(t *testing.T) {
	mosqBin(t, "mosquitto_pub")
	p := newPKI(t)
	tb := startTransport(t, serverTLS(p), "tls")
	tls := tb.at("tls")
	sub := startMosqSub(t, tls, "-V", "mqttv5", "-t", "tls/t", "-C", "1", "--cafile", p.CA)
	mosqPub(t, tls, "", "-V", "mqttv5", "-t", "tls/t", "-m", "over-tls", "--cafile", p.CA)
	if got := sub.wait(t); len(got) != 1 || !strings.HasSuffix(got[0], "|tls/t|over-tls") {
		t.Fatalf("mosquitto_sub got %q", got)
	}
	// A client that does not trust the server's CA refuses it.
	if out, err := mosqPubErr(t, tls, "-t", "tls/t", "-m", "x", "--cafile", p.RogueCert); err == nil {
		t.Fatalf("mosquitto_pub accepted a server certificate from an unknown CA:\n%s", out)
	}
}

// mosqPubErr runs mosquitto_pub and returns its output and exit error.
func mosqPubErr(t *testing.T, tb *testBroker, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mosqBin(t, "mosquitto_pub"), append([]string{"-h", "127.0.0.1", "-p", mosqPort(tb)}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// With --tls-username-from-cn the certificate's CN replaces whatever user
// name the CONNECT carries.
func TestMTLS_UsernameFromCN(t *testing.T) {
	p := newPKI(t)
	o := mutualTLS(p)
	o.UsernameFromCN = true
	// The authenticator sees the certificate's name, never the claimed one.
	seen := make(chan string, 4)
	auth := broker.AuthenticatorFunc(func(r *broker.AuthRequest) broker.AuthResult {
		seen <- r.Username
		if r.Username != "alice" {
			return broker.AuthResult{Code: codec.NotAuthorized}
		}
		return broker.AuthResult{Code: codec.Success}
	})
	tb := startTransportWith(t, broker.Options{ConnectTimeout: 3 * time.Second, Authenticator: auth}, o, "tls", "wss")
	nc, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, p.ClientCert, p.ClientKey))
	if err != nil {
		t.Fatal(err)
	}
	newV5OverConn(t, nc, &paho.Connect{ClientID: "cn-client", CleanStart: true, UsernameFlag: true, Username: "bob"})
	tb.Log.waitFor(t, "client connected", "client=cn-client", "username=alice")

	// The same through a WebSocket over TLS, with a 3.1.1 client.
	ws, err := mqtt.NewWebsocket("wss://"+tb.Addrs["wss"]+"/mqtt", p.ClientTLS(t, p.ClientCert, p.ClientKey), v5Timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, c: ws, v: codec.V311}
	if ack := r.connect(&codec.Connect{ClientID: []byte("cn-ws"), CleanStart: true, UsernameFlag: true, Username: []byte("bob")}); ack.Code != 0 {
		t.Fatalf("CONNACK %d", ack.Code)
	}
	tb.Log.waitFor(t, "client connected", "client=cn-ws", "username=alice")
	for range 2 {
		if u := <-seen; u != "alice" {
			t.Fatalf("the authenticator saw username %q", u)
		}
	}

	// Without a client certificate the handshake fails on both.
	if _, err := mqtt.NewWebsocket("wss://"+tb.Addrs["wss"]+"/mqtt", p.ClientTLS(t, "", ""), v5Timeout, nil, nil); err == nil {
		t.Fatal("wss without a client certificate was accepted under mTLS")
	}
}

func TestMTLS_UsernameFromCNNeedsClientCA(t *testing.T) {
	p := newPKI(t)
	o := serverTLS(p)
	o.UsernameFromCN = true
	b := startTransport(t, serverTLS(p), "tcp") // any broker, for its loops
	srv := reactor.New(b.B, reactor.Options{Listen: []string{"tls://127.0.0.1:0"}, TLS: o})
	if err := srv.Start(); err == nil || !strings.Contains(err.Error(), "tls-client-ca") {
		_ = srv.Stop(context.Background())
		t.Fatalf("want an error naming --tls-client-ca, got %v", err)
	}
}

func TestWS_Paho311AndV5(t *testing.T) {
	tb := startTransport(t, reactor.TLSOptions{}, "ws", "ws/custom/path")
	// A plain GET on the MQTT path is not an upgrade: 400 and counted.
	resp, err := http.Get("http://" + tb.Addrs["ws"] + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET /mqtt without upgrade: %d", resp.StatusCode)
	}
	tb.waitMetric(t, `mcutie_transport_rejected_total{reason="websocket_upgrade"}`, "1")
	v3RoundTrip(t, "ws://"+tb.Addrs["ws"]+"/mqtt", nil, "ws-v3")
	v3RoundTrip(t, "ws://"+tb.Addrs["ws/custom/path"]+"/custom/path", nil, "ws-v3-path")
	nc, err := mqtt.NewWebsocket("ws://"+tb.Addrs["ws"]+"/mqtt", nil, v5Timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v5RoundTrip(t, nc, "ws-v5")
	if got := tb.metric("mcutie_transport_goroutine_connections"); got == "" {
		t.Fatal("no goroutine connections gauge")
	}

	// Another path is not the MQTT endpoint.
	resp, err = http.Get("http://" + tb.Addrs["ws/custom/path"] + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /mqtt on a /custom/path listener: %d", resp.StatusCode)
	}
}

func TestWSS_Paho311AndV5(t *testing.T) {
	p := newPKI(t)
	tb := startTransport(t, serverTLS(p), "wss")
	v3RoundTrip(t, "wss://"+tb.Addrs["wss"]+"/mqtt", p.ClientTLS(t, "", ""), "wss-v3")
	nc, err := mqtt.NewWebsocket("wss://"+tb.Addrs["wss"]+"/mqtt", p.ClientTLS(t, "", ""), v5Timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v5RoundTrip(t, nc, "wss-v5")
}

// [MQTT-6.0.0-2] Packets are not aligned to WebSocket frames: a CONNECT
// split over two frames, and SUBSCRIBE + PUBLISH + PINGREQ in one frame,
// are read as a stream. [MQTT-6.0.0-4] The server selects "mqtt".
// [MQTT-6.0.0-1] A text frame closes the connection.
func TestWS_FramesAreAStream(t *testing.T) {
	tb := startTransport(t, reactor.TLSOptions{}, "ws")
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: v5Timeout}
	ws, resp, err := d.Dial("ws://"+tb.Addrs["ws"]+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt (MQTT-6.0.0-4)", got)
	}
	connect := (&codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte("frames"), CleanStart: true, KeepAlive: 30}).Append(nil)
	for _, part := range [][]byte{connect[:5], connect[5:]} {
		if err := ws.WriteMessage(websocket.BinaryMessage, part); err != nil {
			t.Fatal(err)
		}
	}
	var stream []byte
	next := func() codec.FixedHeader {
		t.Helper()
		for {
			if h, err := codec.Frame(stream, 0); err == nil {
				stream = stream[h.Len():]
				return h
			}
			_ = ws.SetReadDeadline(time.Now().Add(v5Timeout))
			mt, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if mt != websocket.BinaryMessage {
				t.Fatalf("server sent a frame of type %d (MQTT-6.0.0-1)", mt)
			}
			stream = append(stream, b...)
		}
	}
	if h := next(); h.Type != codec.CONNACK {
		t.Fatalf("want CONNACK, got %d", h.Type)
	}
	sub := (&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte("f/t")}}}).Append(nil, codec.V311)
	pub := (&codec.Publish{Topic: []byte("f/t"), Payload: []byte("p")}).Append(nil, codec.V311)
	one := append(append(append([]byte(nil), sub...), pub...), 0xC0, 0)
	if err := ws.WriteMessage(websocket.BinaryMessage, one); err != nil {
		t.Fatal(err)
	}
	var got []codec.Type
	for len(got) < 3 {
		got = append(got, next().Type)
	}
	if got[0] != codec.SUBACK || got[1] != codec.PUBLISH || got[2] != codec.PINGRESP {
		t.Fatalf("got packet types %v, want SUBACK, PUBLISH, PINGRESP", got)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte{0xC0, 0}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(v5Timeout))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("connection still open after a text frame")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection not closed after a text frame (MQTT-6.0.0-1)")
	}
}

// proxyHeader returns a PROXY protocol header of version v claiming the
// client is src.
func proxyHeader(t *testing.T, v byte, src string, dst string) []byte {
	t.Helper()
	sa, _ := net.ResolveTCPAddr("tcp", src)
	da, _ := net.ResolveTCPAddr("tcp", dst)
	h := proxyproto.HeaderProxyFromAddrs(v, sa, da)
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With ?proxy=true the client's address is the one in the PROXY header,
// on the event-loop (tcp) and on the goroutine (tls) transports; a header
// split over two segments is waited for.
func TestProxyProtocol_V1V2(t *testing.T) {
	p := newPKI(t)
	tb := startTransport(t, serverTLS(p), "tcp?proxy=true", "tls?proxy=true", "ws?proxy=true")
	for i, v := range []byte{1, 2} {
		client := fmt.Sprintf("203.0.113.%d:%d", 7+i, 40000+i)
		hdr := proxyHeader(t, v, client, tb.Addrs["tcp?proxy=true"])
		r := dialRaw(t, tb.Addrs["tcp?proxy=true"], codec.V311)
		r.send(hdr[:7])
		time.Sleep(20 * time.Millisecond) // a separate segment: the partial header stays buffered
		r.send(hdr[7:])
		cid := fmt.Sprintf("proxied-v%d", v)
		if ack := r.connect(&codec.Connect{ClientID: []byte(cid), CleanStart: true}); ack.Code != 0 {
			t.Fatalf("v%d: CONNACK %d", v, ack.Code)
		}
		tb.Log.waitFor(t, "client connected", "client="+cid, "remote="+client)

		// The same over TLS: the header comes before the ClientHello.
		client = fmt.Sprintf("198.51.100.%d:%d", 7+i, 50000+i)
		raw, err := net.Dial("tcp", tb.Addrs["tls?proxy=true"])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Write(proxyHeader(t, v, client, tb.Addrs["tls?proxy=true"])); err != nil {
			t.Fatal(err)
		}
		cid = fmt.Sprintf("proxied-tls-v%d", v)
		newV5OverConn(t, tls.Client(raw, p.ClientTLS(t, "", "")), &paho.Connect{ClientID: cid, CleanStart: true})
		tb.Log.waitFor(t, "client connected", "client="+cid, "remote="+client)

		// And before a WebSocket upgrade.
		client = fmt.Sprintf("192.0.2.%d:%d", 7+i, 60000+i)
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, NetDial: func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			if err == nil {
				_, err = c.Write(proxyHeader(t, v, client, addr))
			}
			return c, err
		}}
		ws, _, err := d.Dial("ws://"+tb.Addrs["ws?proxy=true"]+"/mqtt", nil)
		if err != nil {
			t.Fatal(err)
		}
		cid = fmt.Sprintf("proxied-ws-v%d", v)
		connect := (&codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte(cid), CleanStart: true}).Append(nil)
		if err := ws.WriteMessage(websocket.BinaryMessage, connect); err != nil {
			t.Fatal(err)
		}
		tb.Log.waitFor(t, "client connected", "client="+cid, "remote="+client)
		ws.Close()
	}
}

// A listener with ?proxy=true refuses connections without a valid header,
// with a log line; one without it takes the bytes as MQTT.
func TestProxyProtocol_BadHeaderRefused(t *testing.T) {
	tb := startTransport(t, reactor.TLSOptions{}, "tcp?proxy=true", "ws?proxy=true", "tcp")
	for name, pre := range map[string][]byte{
		"no header":   nil,
		"v1 garbage":  []byte("PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n"),
		"v1 too long": []byte("PROXY TCP4 " + strings.Repeat("1", 120)),
		"v2 bad cmd":  append(append([]byte(nil), proxyproto.SIGV2...), 0x2F, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
	} {
		for _, l := range []string{"tcp?proxy=true", "ws?proxy=true"} {
			r := dialRaw(t, tb.Addrs[l], codec.V311)
			msg := append(append([]byte(nil), pre...), (&codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte("x"), CleanStart: true}).Append(nil)...)
			r.send(msg)
			if got := r.expectClosed(v3Wait); len(got) != 0 {
				t.Fatalf("%s on %s: got packets %v before the close", name, l, got)
			}
		}
	}
	tb.Log.waitFor(t, "bad PROXY protocol header", `listener="ws://`)
	tb.Log.waitFor(t, "bad PROXY protocol header", "remote=127.0.0.1")
	tb.waitMetric(t, `mcutie_transport_rejected_total{reason="proxy_header"}`, "8")
	// The plain listener is unaffected.
	r := dialRaw(t, tb.Addrs["tcp"], codec.V311)
	if ack := r.connect(&codec.Connect{ClientID: []byte("plain"), CleanStart: true}); ack.Code != 0 {
		t.Fatalf("CONNACK %d", ack.Code)
	}
}

// A listener pinned with ?proxy=v1 or ?proxy=v2 takes a header of its
// version and refuses the other one, however valid, with a log line and
// its own counter (reason proxy_version), on the event-loop (tcp) and the
// goroutine (ws) transports.
func TestProxyProtocol_VersionPinned(t *testing.T) {
	tb := startTransport(t, reactor.TLSOptions{}, "tcp?proxy=v1", "tcp?proxy=v2", "ws?proxy=v2")
	for i, c := range []struct {
		listener string
		good     byte
	}{{"tcp?proxy=v1", 1}, {"tcp?proxy=v2", 2}} {
		bad := 3 - c.good
		r := dialRaw(t, tb.Addrs[c.listener], codec.V5)
		r.send(append(proxyHeader(t, bad, "203.0.113.50:1000", tb.Addrs[c.listener]),
			(&codec.Connect{Version: codec.V5, ProtocolName: []byte("MQTT"), ClientID: []byte("wrong"), CleanStart: true}).Append(nil)...))
		if got := r.expectClosed(v3Wait); len(got) != 0 {
			t.Fatalf("%s, v%d header: got packets %v before the close", c.listener, bad, got)
		}
		client := fmt.Sprintf("203.0.113.%d:%d", 60+i, 41000+i)
		nc, err := net.Dial("tcp", tb.Addrs[c.listener])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(proxyHeader(t, c.good, client, tb.Addrs[c.listener])); err != nil {
			t.Fatal(err)
		}
		cid := fmt.Sprintf("pinned-v%d", c.good)
		v5RoundTrip(t, nc, cid)
		tb.Log.waitFor(t, "client connected", "client="+cid, "remote="+client)
	}
	// WebSocket: the v1 header is refused before the upgrade, v2 passes.
	dial := func(v byte, client string) (*websocket.Conn, error) {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: v3Wait, NetDial: func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			if err == nil {
				_, err = c.Write(proxyHeader(t, v, client, addr))
			}
			return c, err
		}}
		ws, _, err := d.Dial("ws://"+tb.Addrs["ws?proxy=v2"]+"/mqtt", nil)
		return ws, err
	}
	if ws, err := dial(1, "192.0.2.60:1"); err == nil {
		ws.Close()
		t.Fatal("a v1 header passed a ?proxy=v2 WebSocket listener")
	}
	ws, err := dial(2, "192.0.2.61:2")
	if err != nil {
		t.Fatal(err)
	}
	connect := (&codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte("pinned-ws"), CleanStart: true}).Append(nil)
	if err := ws.WriteMessage(websocket.BinaryMessage, connect); err != nil {
		t.Fatal(err)
	}
	tb.Log.waitFor(t, "client connected", "client=pinned-ws", "remote=192.0.2.61:2")
	ws.Close()
	tb.Log.waitFor(t, "PROXY protocol header of the wrong version", `listener="ws://`, "remote=127.0.0.1")
	tb.Log.waitFor(t, "PROXY protocol header of the wrong version", "v2 on a listener with proxy=v1")
	tb.waitMetric(t, `mcutie_transport_rejected_total{reason="proxy_version"}`, "3")
	tb.waitMetric(t, `mcutie_transport_rejected_total{reason="proxy_header"}`, "0")
}

// Certificates reload: after the files are replaced and ReloadTLS runs
// (SIGHUP in the binary), a new handshake sees the new certificate, and a
// connection made before keeps working.
func TestTLS_ReloadCertificates(t *testing.T) {
	p := newPKI(t)
	tb := startTransport(t, serverTLS(p), "tls")
	leafCN := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].Subject.CommonName }

	old, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if cn := leafCN(old); cn != "mcutie-server" {
		t.Fatalf("first certificate CN %q", cn)
	}
	oldClient := newV5OverConn(t, old, &paho.Connect{ClientID: "before-reload", CleanStart: true})
	oldClient.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "reload/t", QoS: 1}}})

	// Replace the files in place, as a certificate manager would.
	cert, key := p.Issue(t, "renewed", "mcutie-server-renewed", true)
	for src, dst := range map[string]string{cert: p.ServerCert, key: p.ServerKey} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	fresh, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if cn := leafCN(fresh); cn != "mcutie-server-renewed" {
		t.Fatalf("after reload the certificate CN is %q", cn)
	}
	newClient := newV5OverConn(t, fresh, &paho.Connect{ClientID: "after-reload", CleanStart: true})
	newClient.publish(t, &paho.Publish{Topic: "reload/t", QoS: 1, Payload: []byte("still here")})
	if m := oldClient.recv(t); string(m.Payload) != "still here" {
		t.Fatalf("old connection got %q", m.Payload)
	}

	// A broken file leaves the renewed certificate in force.
	if err := os.WriteFile(p.ServerKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tb.srv.ReloadTLS(); err == nil {
		t.Fatal("reload of a broken key succeeded")
	}
	again, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if cn := leafCN(again); cn != "mcutie-server-renewed" {
		t.Fatalf("after a failed reload the certificate CN is %q", cn)
	}
}

// Client ids hash to both loops, so some connections move to their home
// loop right after CONNECT: on the goroutine transport that is a
// re-registration, not a socket hand-over. A second connection with the
// same id takes the session over [MQTT-3.1.4-3]: the first gets
// DISCONNECT 0x8E and is closed.
func TestTLS_ManyClientsMigrateAndTakeover(t *testing.T) {
	p := newPKI(t)
	tb := startTransport(t, serverTLS(p), "tls", "wss")
	for i := range 6 {
		nc, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		v5RoundTrip(t, nc, fmt.Sprintf("many-tls-%d", i))
		ws, err := mqtt.NewWebsocket("wss://"+tb.Addrs["wss"]+"/mqtt", p.ClientTLS(t, "", ""), v5Timeout, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		v5RoundTrip(t, ws, fmt.Sprintf("many-wss-%d", i))
	}
	first, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	old := newV5OverConn(t, first, &paho.Connect{ClientID: "taken", CleanStart: true})
	second, err := mqtt.NewWebsocket("wss://"+tb.Addrs["wss"]+"/mqtt", p.ClientTLS(t, "", ""), v5Timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	newV5OverConn(t, second, &paho.Connect{ClientID: "taken", CleanStart: false})
	select {
	case d := <-old.disc:
		if d.ReasonCode != 0x8E {
			t.Fatalf("old connection got DISCONNECT %#x, want 0x8E (session taken over)", d.ReasonCode)
		}
	case <-time.After(v5Timeout):
		t.Fatal("old connection got no DISCONNECT after the takeover")
	}
}

// The connect timeout covers the goroutine transport: a TCP connection that
// never starts TLS, and a TLS connection that never sends CONNECT, are
// closed.
func TestTLS_SilentConnectionsClosed(t *testing.T) {
	p := newPKI(t)
	tb := startTransportWith(t, broker.Options{ConnectTimeout: 500 * time.Millisecond}, serverTLS(p), "tls", "ws")
	silent := dialRaw(t, tb.Addrs["tls"], codec.V311)
	silent.expectClosed(v3Wait)
	nc, err := tls.Dial("tcp", tb.Addrs["tls"], p.ClientTLS(t, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(v3Wait))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("read a byte from a connection that never sent CONNECT")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("TLS connection without CONNECT not closed (connect timeout)")
	}
	ws, err := mqtt.NewWebsocket("ws://"+tb.Addrs["ws"]+"/mqtt", nil, v5Timeout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(v3Wait))
	if _, err := ws.Read(make([]byte, 1)); err == nil {
		t.Fatal("read a byte from a WebSocket that never sent CONNECT")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("WebSocket without CONNECT not closed (connect timeout)")
	}
}

// Bans behind a balancer hit the client named in the PROXY header, not
// the balancer: after two failed logins from 203.0.113.50 (through the
// proxy, on plain TCP and on TLS), that address is refused at accept
// while 203.0.113.51, arriving on the same socket address, gets in.
func TestProxyProtocol_BansTheClientNotTheBalancer(t *testing.T) {
	p := newPKI(t)
	auth := broker.AuthenticatorFunc(func(r *broker.AuthRequest) broker.AuthResult {
		if string(r.Password) == "right" {
			return broker.AuthResult{Code: codec.Success}
		}
		return broker.AuthResult{Code: codec.BadUserNameOrPassword, Reason: "wrong password"}
	})
	tb := startTransportWith(t, broker.Options{ConnectTimeout: 3 * time.Second, Authenticator: auth, BanThreshold: 2, BanWindow: time.Minute, BanDuration: time.Minute},
		serverTLS(p), "tcp?proxy=true", "tls?proxy=true")
	dial := func(listener, client string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", tb.Addrs[listener])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(proxyHeader(t, 2, client, tb.Addrs[listener])); err != nil {
			t.Fatal(err)
		}
		if listener == "tls?proxy=true" {
			return tls.Client(c, p.ClientTLS(t, "", ""))
		}
		return c
	}
	login := func(listener, client, password string) (*codec.Connack, error) {
		r := &rawConn{t: t, c: dial(listener, client), v: codec.V311}
		_ = r.c.SetDeadline(time.Now().Add(v3Wait))
		if _, err := r.c.Write((&codec.Connect{Version: codec.V311, ProtocolName: []byte("MQTT"), ClientID: []byte(fmt.Sprint("c-", client, listener)), CleanStart: true,
			UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte(password)}).Append(nil)); err != nil {
			return nil, err // a TLS handshake the server refused
		}
		h, body, err := r.tryRead(v3Wait)
		if err != nil {
			return nil, err
		}
		var ack codec.Connack
		if err := ack.Decode(h, body, codec.V311); err != nil {
			t.Fatal(err)
		}
		return &ack, nil
	}
	for i, l := range []string{"tcp?proxy=true", "tls?proxy=true"} {
		if ack, err := login(l, "203.0.113.50:1000", "wrong"); err != nil || ack.Code != 0x04 {
			t.Fatalf("failed login %d: %+v %v", i, ack, err)
		}
	}
	for _, l := range []string{"tcp?proxy=true", "tls?proxy=true"} {
		if ack, err := login(l, "203.0.113.50:1001", "right"); err == nil {
			t.Fatalf("%s: banned client got %+v", l, ack)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: banned client not closed", l)
		}
		if ack, err := login(l, "203.0.113.51:1000", "right"); err != nil || ack.Code != 0 {
			t.Fatalf("%s: another client behind the same balancer: %+v %v", l, ack, err)
		}
	}
	if st := tb.B.Stats().Auth; st.BansIP != 1 || st.RefusedBannedIP < 2 {
		t.Fatalf("ban stats %+v", st)
	}
}
