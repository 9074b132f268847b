package broker

import (
	"io"
	"log/slog"
	"testing"

	"github.com/mcutie/mcutie/codec"
)

// fakeConn is an in-memory Conn: it records what the broker writes.
type fakeConn struct {
	out    []byte
	keep   bool // keep written bytes (tests) or drop them (benchmarks)
	closed bool
	writes int
	bytes  int // bytes written, kept or not
	wakes  int
	remote string // default 192.0.2.1:1883
	// afterClose counts writes after Close: bytes a real transport
	// would drop.
	afterClose int
	buffered   int // what OutboundBuffered reports: a peer that does not read
}

func (f *fakeConn) Writev(bufs [][]byte) (int, error) {
	if f.closed {
		f.afterClose++
	}
	n := 0
	for _, b := range bufs {
		n += len(b)
		if f.keep {
			f.out = append(f.out, b...)
		}
	}
	f.writes++
	f.bytes += n
	return n, nil
}
func (f *fakeConn) OutboundBuffered() int { return f.buffered }
func (f *fakeConn) Close() error          { f.closed = true; return nil }
func (f *fakeConn) RemoteAddr() string {
	if f.remote != "" {
		return f.remote
	}
	return "192.0.2.1:1883"
}
func (f *fakeConn) Wake() error { f.wakes++; return nil }

// newTestBroker returns a broker whose loops run posted work synchronously
// on the caller's goroutine (tests are single-threaded).
func newTestBroker(tb testing.TB, loops int) *Broker {
	tb.Helper()
	b := New(Options{Loops: loops, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, l := range b.loops {
		l.Bind(func(fn func()) error { fn(); return nil })
	}
	return b
}

// connectClient connects a client with id on loop 0 (Loops must be 1).
func connectClient(tb testing.TB, b *Broker, id string, v codec.Version, keep bool) (*Client, *fakeConn) {
	tb.Helper()
	fc := &fakeConn{keep: keep}
	c := b.loops[0].NewClient(fc)
	p := codec.Connect{ProtocolName: []byte("MQTT"), Version: v, CleanStart: true, ClientID: []byte(id), KeepAlive: 60}
	raw := p.Append(nil)
	if n, res := c.Feed(raw); n != len(raw) || res != FeedContinue {
		tb.Fatalf("connect %s: consumed %d of %d, result %d", id, n, len(raw), res)
	}
	return c, fc
}

func subscribe(tb testing.TB, c *Client, v codec.Version, filter string, qos byte) {
	tb.Helper()
	s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(filter), QoS: qos}}}
	raw := s.Append(nil, v)
	if n, res := c.Feed(raw); n != len(raw) || res != FeedContinue {
		tb.Fatalf("subscribe: consumed %d of %d, result %d", n, len(raw), res)
	}
}
