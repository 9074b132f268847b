package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// testBroker is a broker on a loopback port.
type testBroker struct {
	B    *broker.Broker
	Addr string // host:port
	srv  *reactor.Server
}

// start runs a broker with opts (Loops defaults to 2 so cross-loop paths
// are always exercised) and stops it when the test ends.
func start(t testing.TB, opts broker.Options) *testBroker {
	t.Helper()
	return startTick(t, opts, 100*time.Millisecond)
}

// startTick is start with the reactor's tick every tick (a long one keeps
// Stats' per-tick snapshots stale).
func startTick(t testing.TB, opts broker.Options, tick time.Duration) *testBroker {
	t.Helper()
	return startReactor(t, opts, reactor.Options{TickInterval: tick})
}

// startReactor is start with the reactor's options ro (its Listen and
// Logger are set here).
func startReactor(t testing.TB, opts broker.Options, ro reactor.Options) *testBroker {
	t.Helper()
	if opts.Loops == 0 {
		opts.Loops = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Store == nil {
		// Every test also exercises the persistence path: acknowledgements
		// that wait for store operations, through the same interface the
		// Badger store implements.
		opts.Store = store.NewMemory()
	}
	b := broker.New(opts)
	// Port 0: the reactor binds the port the kernel chooses (Addrs), so
	// no other test can take it between choosing and binding.
	ro.Listen, ro.Logger = []string{"tcp://127.0.0.1:0"}, opts.Logger
	srv := reactor.New(b, ro)
	if err := srv.Start(); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return &testBroker{B: b, Addr: srv.Addrs()[0].String(), srv: srv}
}

// freePort returns a port that was free a moment ago, for a broker in
// another process (mcutie's binary); an in-process reactor listens on
// port 0 instead (start), which leaves no window for another test to take
// the port.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// rawConn is a client speaking raw packets, for tests that need exact bytes.
type rawConn struct {
	t   testing.TB
	c   net.Conn
	v   codec.Version
	buf []byte
}

func dialRaw(t testing.TB, addr string, v codec.Version) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, v: v}
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// connect sends CONNECT and returns the CONNACK.
func (r *rawConn) connect(p *codec.Connect) *codec.Connack {
	r.t.Helper()
	p.Version = r.v
	if len(p.ProtocolName) == 0 {
		p.ProtocolName = []byte("MQTT")
		if r.v == codec.V31 {
			p.ProtocolName = []byte("MQIsdp")
		}
	}
	r.send(p.Append(nil))
	h, body := r.read(5 * time.Second)
	if h.Type != codec.CONNACK {
		r.t.Fatalf("want CONNACK, got type %d", h.Type)
	}
	var ack codec.Connack
	if err := ack.Decode(h, body, r.v); err != nil {
		r.t.Fatalf("decode CONNACK: %v", err)
	}
	return &ack
}

// read returns the next packet; it fails the test on timeout or EOF.
func (r *rawConn) read(d time.Duration) (codec.FixedHeader, []byte) {
	r.t.Helper()
	h, body, err := r.tryRead(d)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return h, body
}

// tryRead returns the next packet or the error that ended the wait.
func (r *rawConn) tryRead(d time.Duration) (codec.FixedHeader, []byte, error) {
	deadline := time.Now().Add(d)
	for {
		if h, err := codec.Frame(r.buf, 0); err == nil {
			body := append([]byte(nil), r.buf[h.HeaderLen:h.Len()]...)
			r.buf = r.buf[h.Len():]
			return h, body, nil
		} else if err != codec.ErrIncomplete {
			return h, nil, err
		}
		_ = r.c.SetReadDeadline(deadline)
		var tmp [4096]byte
		n, err := r.c.Read(tmp[:])
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil && n == 0 {
			return codec.FixedHeader{}, nil, err
		}
	}
}

// expectClosed waits for the server to close the connection, returning any
// packets received before the close.
func (r *rawConn) expectClosed(d time.Duration) []codec.FixedHeader {
	r.t.Helper()
	var got []codec.FixedHeader
	for {
		h, _, err := r.tryRead(d)
		if err == io.EOF {
			return got
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			r.t.Fatalf("connection not closed within %v (got %d packets)", d, len(got))
		}
		if err != nil {
			return got // reset by peer counts as closed
		}
		got = append(got, h)
	}
}

// stop stops the broker now, as the test's cleanup would: v5 clients get
// DISCONNECT 0x8B first. Stopping twice is harmless.
func (tb *testBroker) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tb.srv.Stop(ctx); err != nil {
		t.Fatalf("stop broker: %v", err)
	}
}

// A second broker on a port another one listens on fails to start instead
// of sharing the port through SO_REUSEPORT.
func TestListenPortInUse(t *testing.T) {
	tb := start(t, broker.Options{})
	b := broker.New(broker.Options{Loops: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://" + tb.Addr}})
	if err := srv.Start(); err == nil {
		_ = srv.Stop(context.Background())
		t.Fatalf("a second broker started on %s, which is in use", tb.Addr)
	}
}

// waitInOrder waits until lines() includes want, in this order (other lines
// may come between), and returns all it has; what names the lines in the
// failure.
func waitInOrder(t testing.TB, what string, lines func() []string, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(v5Timeout)
	for {
		got := lines()
		i := 0
		for _, l := range got {
			if i < len(want) && l == want[i] {
				i++
			}
		}
		if i == len(want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s\nwant in this order:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// awaitDisconnect reads packets from read (skipping others) until a v5
// DISCONNECT comes, and says whether it carries want.
func awaitDisconnect(read func(time.Duration) (codec.FixedHeader, []byte, error), want codec.ReasonCode) error {
	for {
		h, body, err := read(5 * time.Second)
		if err != nil {
			return fmt.Errorf("no DISCONNECT %#x before the connection ended: %v", byte(want), err)
		}
		if h.Type == codec.DISCONNECT {
			var d codec.Disconnect
			if err := d.Decode(h, body, codec.V5); err != nil || d.Code != want {
				return fmt.Errorf("DISCONNECT %#x (%v), want %#x", d.Code, err, byte(want))
			}
			return nil
		}
	}
}
