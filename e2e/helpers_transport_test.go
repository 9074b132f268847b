package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/internal/testpki"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// Helpers for the transport tests (transport_test.go, browser_test.go):
// a throw-away PKI made at run time, a broker with several listeners and a
// log that tests can wait on.

// testPKI is the throw-away PKI of internal/testpki.
type testPKI = testpki.PKI

func newPKI(t testing.TB) *testPKI { return testpki.New(t) }

// logBuf is a debug-level log the tests can search.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until a log line contains every one of parts.
func (l *logBuf) waitFor(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(v3Wait)
	for {
		for _, line := range strings.Split(l.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v; log:\n%s", parts, v3Wait, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// transportBroker is a broker with one listener per entry of schemes
// ("tcp", "tcp?proxy=true", "tls", "ws", "wss", "ws/custom", …), each on
// its own loopback port, logging at debug level into Log.
type transportBroker struct {
	*testBroker
	Addrs map[string]string // scheme entry → host:port
	Log   *logBuf
}

func startTransport(t testing.TB, tlsOpts reactor.TLSOptions, schemes ...string) *transportBroker {
	t.Helper()
	return startTransportWith(t, broker.Options{ConnectTimeout: 3 * time.Second}, tlsOpts, schemes...)
}

// startTransportWith is startTransport with broker options (Loops 2, a
// memory store and the debug log are filled in).
func startTransportWith(t testing.TB, bo broker.Options, tlsOpts reactor.TLSOptions, schemes ...string) *transportBroker {
	t.Helper()
	return startTransportOpts(t, bo, reactor.Options{TLS: tlsOpts}, schemes...)
}

// startTransportOpts is startTransportWith with reactor options (Listen,
// Logger and TickInterval are filled in).
func startTransportOpts(t testing.TB, bo broker.Options, ro reactor.Options, schemes ...string) *transportBroker {
	t.Helper()
	lb := &logBuf{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(lb), &slog.HandlerOptions{Level: slog.LevelDebug}))
	bo.Loops, bo.Store, bo.Logger = 2, store.NewMemory(), logger
	b := broker.New(bo)
	tb := &transportBroker{Addrs: map[string]string{}, Log: lb}
	var listen []string
	for _, sc := range schemes {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		tb.Addrs[sc] = addr
		scheme, rest, _ := strings.Cut(sc, "/")
		scheme, query, _ := strings.Cut(scheme, "?")
		u := scheme + "://" + addr
		if rest != "" {
			u += "/" + rest
		}
		if query != "" {
			u += "?" + query
		}
		listen = append(listen, u)
	}
	ro.Listen, ro.Logger, ro.TickInterval = listen, logger, 100*time.Millisecond
	srv := reactor.New(b, ro)
	if err := srv.Start(); err != nil {
		t.Fatalf("start broker on %v: %v", listen, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		if t.Failed() {
			t.Logf("broker log:\n%s", lb.String())
		}
	})
	tb.testBroker = &testBroker{B: b, Addr: tb.Addrs[schemes[0]], srv: srv}
	return tb
}

// at is a testBroker view whose Addr is the listener of scheme, for the
// helpers that take a *testBroker (mosquitto).
func (tb *transportBroker) at(scheme string) *testBroker {
	return &testBroker{B: tb.B, Addr: tb.Addrs[scheme], srv: tb.srv}
}

// metric returns the value of one transport or broker metric line, or ""
// if absent.
func (tb *transportBroker) metric(name string) string {
	var b bytes.Buffer
	tb.srv.WriteMetrics(&b)
	tb.B.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// waitMetric waits until metric name has value want.
func (tb *transportBroker) waitMetric(t testing.TB, name, want string) {
	t.Helper()
	deadline := time.Now().Add(v3Wait)
	for tb.metric(name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %s", name, tb.metric(name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
