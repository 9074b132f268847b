package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
)

func limitBroker(tb testing.TB, o Options) *Broker {
	tb.Helper()
	o.Loops = 1
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := New(o)
	for _, l := range b.loops {
		l.Bind(func(fn func()) error { fn(); return nil })
	}
	tb.Cleanup(b.Shutdown)
	return b
}

// TestAdmitConcurrent: loops admit and release concurrently; the totals and
// the per-address counts stay exact (run with -race), and an address with
// no connection and a full bucket leaves no entry behind.
func TestAdmitConcurrent(t *testing.T) {
	b := limitBroker(t, Options{MaxConnections: 1000, MaxConnectionsPerIP: 10})
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := map[string]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var held []*Ticket
			for i := 0; i < 2000; i++ {
				ip := netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 4)})
				tk, err := b.Admit(ip)
				if err != nil {
					mu.Lock()
					refused[err.Error()]++
					mu.Unlock()
					continue
				}
				held = append(held, tk)
				if len(held) > 60 {
					held[0].Release()
					held[0].Release() // twice: no effect
					held = held[1:]
				}
			}
			for _, tk := range held {
				tk.Release()
			}
		}(g)
	}
	wg.Wait()
	if n := b.OpenConnections(); n != 0 {
		t.Fatalf("open connections = %d after every release, want 0", n)
	}
	for i := range b.admit.shards {
		if n := len(b.admit.shards[i].ips); n != 0 {
			t.Fatalf("shard %d keeps %d addresses with no connection", i, n)
		}
	}
	n := refused[ErrMaxConnectionsPerIP.Error()]
	if n == 0 || len(refused) != 1 {
		t.Fatalf("refusals %v, want only per-address ones", refused)
	}
	if got := b.Stats().Rejected["max_connections_per_ip"]; got != uint64(n) {
		t.Fatalf("counted %d per-address refusals, made %d", got, n)
	}
}

// TestAdmitLimits: each limit refuses with its error and counts it; an
// IPv4-mapped IPv6 address is the same source as its IPv4 form.
func TestAdmitLimits(t *testing.T) {
	b := limitBroker(t, Options{MaxConnections: 3, MaxConnectionsPerIP: 2})
	a := netip.MustParseAddr("192.0.2.1")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	t1, err := b.Admit(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Admit(mapped); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Admit(a); !errors.Is(err, ErrMaxConnectionsPerIP) {
		t.Fatalf("third from one address: %v, want ErrMaxConnectionsPerIP", err)
	}
	if _, err := b.Admit(netip.MustParseAddr("192.0.2.2")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Admit(netip.Addr{}); !errors.Is(err, ErrMaxConnections) {
		t.Fatalf("fourth in total: %v, want ErrMaxConnections", err)
	}
	t1.Release()
	if _, err := b.Admit(a); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	st := b.Stats()
	if st.Rejected["max_connections_per_ip"] != 1 || st.Rejected["max_connections"] != 1 {
		t.Fatalf("refusals %v", st.Rejected)
	}
}

// TestAdmitRate: a token bucket per address; tokens come back with time.
func TestAdmitRate(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	b := limitBroker(t, Options{ConnectRatePerIP: 2, ConnectBurstPerIP: 2,
		Now: func() time.Time { return time.Unix(0, now.Load()) }})
	a := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 2; i++ {
		tk, err := b.Admit(a)
		if err != nil {
			t.Fatalf("connection %d of the burst: %v", i, err)
		}
		tk.Release()
	}
	if _, err := b.Admit(a); !errors.Is(err, ErrConnectRate) {
		t.Fatalf("over the burst: %v, want ErrConnectRate", err)
	}
	if _, err := b.Admit(netip.MustParseAddr("2001:db8::2")); err != nil {
		t.Fatalf("another address: %v", err)
	}
	now.Add(int64(600 * time.Millisecond)) // 1.2 tokens
	if _, err := b.Admit(a); err != nil {
		t.Fatalf("after 600ms at 2/s: %v", err)
	}
	if _, err := b.Admit(a); !errors.Is(err, ErrConnectRate) {
		t.Fatalf("second after 600ms: %v, want ErrConnectRate", err)
	}
}

func TestBucket(t *testing.T) {
	f := func(tokens float64, elapsed time.Duration, rate, burst, n float64, ok bool) {
		t.Helper()
		k := bucket{tokens: tokens, last: 1000}
		if got := k.take(1000+int64(elapsed), rate, burst, n); got != ok {
			t.Fatalf("bucket %.1f after %v at %.1f/s (burst %.0f) take %.0f: %v, want %v", tokens, elapsed, rate, burst, n, got, ok)
		}
	}
	f(1, 0, 1, 5, 1, true)
	f(0.5, 0, 1, 5, 1, false)
	f(0, time.Second, 1, 5, 1, true)
	f(0, 10*time.Second, 1, 5, 6, false) // capped at the burst
	f(0, 10*time.Second, 1, 5, 5, true)
	f(3, -time.Second, 1, 5, 3, true) // a clock going back refills nothing
}

func TestThrottle(t *testing.T) {
	var th sharedLogThrottle
	now := int64(time.Hour)
	passed := 0
	for i := 0; i < 100; i++ {
		if ok, _ := th.allow(now); ok {
			passed++
		}
	}
	if passed != throttleLines {
		t.Fatalf("%d lines passed in one second, want %d", passed, throttleLines)
	}
	ok, suppressed := th.allow(now + int64(time.Second))
	if !ok || suppressed != 100-throttleLines {
		t.Fatalf("next second: pass %v, suppressed %d, want true, %d", ok, suppressed, 100-throttleLines)
	}
}

// TestPublishRateLimitAllocs: charging the publish buckets adds no
// allocation to the hot path.
func TestPublishRateLimitAllocs(t *testing.T) {
	b := limitBroker(t, Options{PublishRate: 1e12, PublishByteRate: 1e15})
	sub, _ := connectClient(t, b, "sub", codec.V5, false)
	subscribe(t, sub, codec.V5, "a/+", 0)
	pub, _ := connectClient(t, b, "pub", codec.V5, false)
	raw := (&codec.Publish{Topic: []byte("a/b"), Payload: make([]byte, 64)}).Append(nil, codec.V5)
	for i := 0; i < 100; i++ {
		pub.Feed(raw)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if n, res := pub.Feed(raw); n != len(raw) || res != FeedContinue {
			t.Fatalf("feed: %d %d", n, res)
		}
	})
	if allocs != 0 {
		t.Fatalf("rate-limited PUBLISH allocates %.1f times, want 0", allocs)
	}
}

// TestPublishRateDisconnect: beyond the burst a v5 publisher gets
// DISCONNECT 0x96 (0x97 for bytes) and a 3.1.1 one is closed.
func TestPublishRateDisconnect(t *testing.T) {
	f := func(o Options, v codec.Version, payload int, want codec.ReasonCode) {
		t.Helper()
		b := limitBroker(t, o)
		c, fc := connectClient(t, b, fmt.Sprint("p", v, want), v, true)
		fc.out = fc.out[:0]
		raw := (&codec.Publish{Topic: []byte("t"), Payload: make([]byte, payload)}).Append(nil, v)
		var res FeedResult
		for i := 0; i < 10 && res == FeedContinue; i++ {
			_, res = c.Feed(raw)
		}
		if res != FeedClose || !fc.closed {
			t.Fatalf("v%d: not closed (result %d)", v, res)
		}
		if v != codec.V5 {
			if len(fc.out) != 0 {
				t.Fatalf("3.x got % x before the close", fc.out)
			}
			return
		}
		h, err := codec.Frame(fc.out, 0)
		if err != nil || h.Type != codec.DISCONNECT {
			t.Fatalf("v5 got % x, want DISCONNECT", fc.out)
		}
		var d codec.Disconnect
		if err := d.Decode(h, h.Body(fc.out), codec.V5); err != nil || d.Code != want {
			t.Fatalf("DISCONNECT 0x%02x (%v), want 0x%02x", byte(d.Code), err, byte(want))
		}
	}
	f(Options{PublishRate: 1, PublishBurst: 5}, codec.V5, 1, codec.MessageRateTooHigh)
	f(Options{PublishRate: 1, PublishBurst: 5}, codec.V311, 1, 0)
	f(Options{PublishByteRate: 10, PublishByteBurst: 100}, codec.V5, 40, codec.QuotaExceeded)
}
