package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/hooks"
)

// rawConnect sends an MQTT 3.1.1 CONNECT (clean session, keep-alive 60)
// on a new connection to addr and returns the CONNACK's return code and
// the connection, or -1 if the broker closed it without a CONNACK.
func rawConnect(t *testing.T, addr, id, user, pass string) (int, net.Conn) {
	t.Helper()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	flags := byte(0x02)
	body := append(str("MQTT"), 4, 0, 0, 60)
	body = append(body, str(id)...)
	if user != "" {
		flags |= 0x80 | 0x40
		body = append(append(body, str(user)...), str(pass)...)
	}
	body[7] = flags
	if len(body) > 127 {
		t.Fatal("rawConnect: CONNECT too long")
	}
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := nc.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		nc.Close()
		return -1, nil
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(nc, ack); err != nil {
		nc.Close()
		return -1, nil
	}
	if ack[0] != 0x20 {
		t.Fatalf("rawConnect: got packet %#x, want a CONNACK", ack[0])
	}
	_ = nc.SetDeadline(time.Time{})
	return int(ack[3]), nc
}

// jsonLines decodes the JSON log lines of p whose msg is one of msgs.
func jsonLines(t *testing.T, log string, msgs ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(log, "\n") {
		var m map[string]any
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		for _, want := range msgs {
			if m["msg"] == want {
				out = append(out, m)
			}
		}
	}
	return out
}

// Connects and disconnects of real clients (paho 3.1.1 and paho.golang
// v5) are logged at info with client id, address, user name, protocol,
// listener, and on disconnect the close reason, as Mosquitto logs them.
func TestConnectionLogRealClients(t *testing.T) {
	addr := freeAddr(t)
	listener := "tcp://" + addr
	wsListener := "ws://" + freeAddr(t) + "/mqtt"
	p := startMcutie(t, nil, "--listen", listener, "--listen", wsListener, "--store", "memory", "--metrics-listen", "", "--log-format", "json", "--allow-anonymous")
	p.waitLine("mcutie started")

	// paho 3.1.1 with a user name, disconnecting cleanly.
	o := mqtt.NewClientOptions().AddBroker(listener).SetClientID("v3-client").SetUsername("ann").SetPassword("x").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
	c3 := mqtt.NewClient(o)
	if tok := c3.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho 3.1.1 connect: %v", tok.Error())
	}
	p.waitLine(`"client connected"`)
	c3.Disconnect(100)
	p.waitLine(`"client disconnected"`)

	// paho.golang v5, then its connection dropped without a DISCONNECT.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c5 := paho.NewClient(paho.ClientConfig{Conn: nc})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ack, err := c5.Connect(ctx, &paho.Connect{ClientID: "v5-client", CleanStart: true, KeepAlive: 30}); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("paho.golang v5 connect: %v %v", ack, err)
	}
	p.waitLine(`"client connected"`)
	local := nc.LocalAddr().String()
	nc.Close()
	p.waitLine(`"client disconnected"`)

	// paho 3.1.1 over WebSocket: the listener is the ws:// one.
	ow := mqtt.NewClientOptions().AddBroker(wsListener).SetClientID("ws-client").SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
	cw := mqtt.NewClient(ow)
	if tok := cw.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho 3.1.1 over WebSocket: %v", tok.Error())
	}
	p.waitLine(`"client connected"`)
	cw.Disconnect(100)
	p.waitLine(`"client disconnected"`)

	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := jsonLines(t, p.log(), "client connected", "client disconnected")
	if len(lines) != 6 {
		t.Fatalf("%d connection lines, want 6:\n%s", len(lines), p.log())
	}
	want := []map[string]any{
		{"msg": "client connected", "client": "v3-client", "user": "ann", "protocol": "3.1.1", "listener": listener, "session_present": false},
		{"msg": "client disconnected", "client": "v3-client", "user": "ann", "protocol": "3.1.1", "listener": listener, "reason": "client_disconnected"},
		{"msg": "client connected", "client": "v5-client", "user": "", "protocol": "5.0", "listener": listener, "remote": local},
		{"msg": "client disconnected", "client": "v5-client", "protocol": "5.0", "listener": listener, "remote": local, "reason": "connection_lost"},
		{"msg": "client connected", "client": "ws-client", "protocol": "3.1.1", "listener": wsListener},
		{"msg": "client disconnected", "client": "ws-client", "protocol": "3.1.1", "listener": wsListener, "reason": "client_disconnected"},
	}
	for i, w := range want {
		if lines[i]["level"] != "INFO" {
			t.Errorf("line %d at level %v, want INFO", i, lines[i]["level"])
		}
		if r, _ := lines[i]["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("line %d: remote %q", i, r)
		}
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
	}
}

// Beyond --log-connections-rate the lines are left out and counted: the
// lines written plus the counts of the summary lines are every connect
// and disconnect, and the lines written stay within the bucket.
func TestConnectionLogRateLimited(t *testing.T) {
	addr := freeAddr(t)
	p := startMcutie(t, nil, "--listen", "tcp://"+addr, "--store", "memory", "--metrics-listen", "", "--log-format", "json",
		"--allow-anonymous", "--log-connections-rate", "2")
	p.waitLine("mcutie started")
	start := time.Now()
	const clients = 40
	for i := range clients {
		code, nc := rawConnect(t, addr, fmt.Sprintf("burst-%d", i), "", "")
		if code != 0 {
			t.Fatalf("client %d: CONNACK %d", i, code)
		}
		_, _ = nc.Write([]byte{0xe0, 0}) // DISCONNECT
		nc.Close()
	}
	// The summaries come once a second: wait until they add up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		logged := len(jsonLines(t, p.log(), "client connected", "client disconnected"))
		var left float64
		for _, s := range jsonLines(t, p.log(), "connection log lines left out (--log-connections-rate)") {
			left += s["suppressed"].(float64)
			if s["rate"] != float64(2) {
				t.Fatalf("summary %v: want rate 2", s)
			}
		}
		if logged+int(left) == 2*clients {
			// Burst 2, then 2 a second: at most 2 + 2 × the seconds elapsed.
			if max := 2 + 2*time.Since(start).Seconds(); float64(logged) > max+1 {
				t.Fatalf("%d lines logged in %v at 2 a second (burst 2)", logged, time.Since(start))
			}
			if left == 0 {
				t.Fatal("nothing left out")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines logged + %v left out, want %d:\n%s", logged, left, 2*clients, p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// blockingWriter never returns from Write until released: a disk that
// does not take the log.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(b []byte) (int, error) {
	<-w.release
	return len(b), nil
}

// The hook never waits for the log's writer: with the writer stuck, the
// event-loop side still returns for every event, counting what it could
// not queue.
func TestConnectionLogNeverBlocksTheLoop(t *testing.T) {
	w := blockingWriter{release: make(chan struct{})}
	l := newConnLog(slog.New(slog.NewTextHandler(w, nil)), 1e9)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	const events = 10 * connLineQueue
	done := make(chan struct{})
	go func() {
		c := &hooks.Client{ID: "x", Remote: "127.0.0.1:1"}
		for range events / 2 {
			l.OnConnected(c, false)
			l.OnDisconnected(c, "connection_lost")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the hook blocked on a stuck log writer")
	}
	// At most the queue and the line being written got through.
	if n := l.suppressed.Load(); n < events-connLineQueue-1 {
		t.Fatalf("%d of %d events counted as left out, want at least %d", n, events, events-connLineQueue-1)
	}
	close(w.release)
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
}

// --log-connections-rate 0 registers nothing: no hook registry is made,
// so the broker pays nothing for connection events.
func TestConnectionLogOffCostsNothing(t *testing.T) {
	cfg, _, err := loadFor(t, "", nil, "--log-connections-rate", "0")
	if err != nil {
		t.Fatal(err)
	}
	plugs := &plugins{}
	cl, err := addConnLog(cfg, plugs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || cl != nil || plugs.reg != nil || cfg.opts.Hooks != nil {
		t.Fatalf("rate 0: hook %v, registry %v, broker hooks %v, err %v", cl, plugs.reg, cfg.opts.Hooks, err)
	}
	cfg, _, _ = loadFor(t, "", nil)
	cl, err = addConnLog(cfg, plugs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || cl == nil || cfg.opts.Hooks == nil || !cfg.opts.Hooks.Has(hooks.Connected) {
		t.Fatalf("default rate: hook %v, broker hooks %v, err %v", cl, cfg.opts.Hooks, err)
	}
	plugs.stop(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// BenchmarkConnLogOffer is the event-loop side of one logged connect: the
// bucket and the hand-over (the writer drains to io.Discard).
func BenchmarkConnLogOffer(b *testing.B) {
	l := newConnLog(slog.New(slog.NewJSONHandler(io.Discard, nil)), 1e12)
	if err := l.Start(); err != nil {
		b.Fatal(err)
	}
	c := &hooks.Client{ID: "bench", Remote: "127.0.0.1:1", Username: "u", Listener: "tcp://127.0.0.1:1883"}
	b.ReportAllocs()
	for b.Loop() {
		l.OnConnected(c, false)
	}
	b.StopTimer()
	_ = l.Stop()
}

// The bucket holds --log-connections-rate tokens and refills at that
// rate; a SIGHUP to 0 drops the lines without counting them (no summary
// lines for a log turned off).
func TestConnectionLogBucketAndOff(t *testing.T) {
	l := newConnLog(slog.New(slog.NewTextHandler(io.Discard, nil)), 3)
	t0 := l.last
	var got []bool
	for range 4 {
		got = append(got, l.take(t0))
	}
	got = append(got, l.take(t0.Add(500*time.Millisecond)), l.take(t0.Add(500*time.Millisecond))) // 1.5 tokens back
	for range 4 {
		got = append(got, l.take(t0.Add(10*time.Second))) // full again: 3, not 28.5
	}
	if fmt.Sprint(got) != "[true true true false true false true true true false]" {
		t.Fatalf("bucket: %v", got)
	}
	l.setRate(0)
	c := &hooks.Client{ID: "x"}
	for range 10 {
		l.OnConnected(c, false)
	}
	if n, q := l.suppressed.Load(), len(l.lines); n != 0 || q != 0 {
		t.Fatalf("rate 0: %d counted, %d queued; want none", n, q)
	}
}
