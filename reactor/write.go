package reactor

import (
	"context"

	"github.com/panjf2000/gnet/v2"
)

// gnetConn adapts gnet.Conn to broker.Conn.
type gnetConn struct{ st *connState }

func (g gnetConn) OutboundBuffered() int { return g.st.conn.OutboundBuffered() }

// Close starts a lingering close (Server.linger) once the broker's
// current callback has returned: the broker calls it from the client's
// own methods, which must not see Client.Closed run underneath them.
func (g gnetConn) Close() error {
	st := g.st
	if st.conn == nil {
		return nil // closed already
	}
	return st.conn.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if st.conn == nil || (st.x != nil && st.x.lingerEnd != 0) {
			return nil // closed, or lingering already
		}
		if st.ls.s.linger(st.conn, st) == gnet.Close {
			_ = st.conn.Close()
		}
		return nil
	}))
}
func (g gnetConn) RemoteAddr() string { return g.st.remote() }

// Listener implements broker.ListenerConn: found from the socket's local
// address on demand (connection events only), not kept per connection.
func (g gnetConn) Listener() string {
	if g.st.conn == nil {
		return ""
	}
	return g.st.ls.s.listenerOf(g.st.conn.LocalAddr())
}
func (g gnetConn) Wake() error { return g.st.conn.Wake(nil) }

// Writev writes bufs in order as plain writes of at most coalesceMax
// bytes each: consecutive vectors are copied into the loop's scratch
// buffer, and a vector that is larger on its own is written from where
// it is. Once a write leaves bytes unsent, gnet queues every later write
// behind them, so order holds.
//
// Why not writev(2): golang.org/x/sys/unix.Writev, which gnet calls,
// keeps its iovec array on the stack for 8 vectors only and allocates it
// beyond that, once per write; a subscriber's flush is two vectors per
// PUBLISH, so nearly every flush under load allocated. Measured in a
// QoS 0 fan-out that was all the garbage the publish path made (38 MB/s
// at 530,000 deliveries/s) and the collector showed as a fifth of the
// broker's CPU profile. Copying small PUBLISHes costs less, the kernel
// copies them anyway, and gnet (v2.9.7) would also hand more than
// IOV_MAX vectors to one writev, which fails with EINVAL.
func (g gnetConn) Writev(bufs [][]byte) (int, error) {
	sc := g.st.ls.scratch[:0]
	n := 0
	for _, v := range bufs {
		if len(sc) > 0 && len(sc)+len(v) > coalesceMax {
			k, err := g.st.conn.Write(sc)
			n += k
			if err != nil {
				g.st.ls.scratch = sc[:0]
				return n, err
			}
			sc = sc[:0]
		}
		if len(v) > coalesceMax {
			k, err := g.st.conn.Write(v) // big on its own: no copy
			n += k
			if err != nil {
				g.st.ls.scratch = sc[:0]
				return n, err
			}
			continue
		}
		sc = append(sc, v...)
	}
	var err error
	if len(sc) > 0 {
		var k int
		k, err = g.st.conn.Write(sc)
		n += k
	}
	g.st.ls.scratch = sc[:0]
	return n, err
}

// coalesceMax is the most bytes copied into one write: big enough that a
// flush of small PUBLISHes is one write(2), small enough to keep the
// per-loop scratch buffer modest.
const coalesceMax = 64 << 10
