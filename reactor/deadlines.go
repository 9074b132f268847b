package reactor

import (
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// watched is a connection in a loopState's watch list.
type watched interface {
	// expire runs on ls's loop at every tick; it reports whether the
	// connection stays on the list.
	expire(ls *loopState, now int64) bool
}

// sweep runs the deadlines of the loop's watch list. Loop-only.
func (ls *loopState) sweep() {
	if len(ls.watch) == 0 {
		return
	}
	now := time.Now().UnixNano()
	keep := ls.watch[:0]
	for _, w := range ls.watch {
		if w.expire(ls, now) {
			keep = append(keep, w)
		}
	}
	clear(ls.watch[len(keep):])
	ls.watch = keep
}

// enlist puts w on the watch list unless *on says it is there, and sets
// *on. Loop-only.
func (ls *loopState) enlist(w watched, on *bool) {
	if !*on {
		*on = true
		ls.watch = append(ls.watch, w)
	}
}

// expire closes the connection if its partial packet is overdue or its
// lingering close is over. Loop-only.
func (st *connState) expire(ls *loopState, now int64) bool {
	x := st.x
	if st.conn == nil || x == nil {
		return false // closed
	}
	s := ls.s
	if x.lingerEnd != 0 {
		if x.shutPending && st.conn.OutboundBuffered() == 0 {
			x.shutPending = false
			_ = shutWrite(st.conn)
		}
		if now < x.lingerEnd {
			return true
		}
		x.watched = false
		_ = st.conn.Close()
		return false
	}
	watch, late := x.in.overdue(now, s.packetTimeout())
	if late {
		s.packetTimedOut(st.remote(), st.pending(st.conn))
		_ = st.conn.Close()
	}
	x.watched = watch
	return watch
}

// DefaultPacketTimeout is Options.PacketTimeout's default: a maximum-size
// packet (1 MiB by default) must arrive at 35 KB/s at least.
const DefaultPacketTimeout = 30 * time.Second

// packetTimeout is Options.PacketTimeout with its default applied
// (negative: no limit).
func (s *Server) packetTimeout() time.Duration {
	if s.opts.PacketTimeout == 0 {
		return DefaultPacketTimeout
	}
	return s.opts.PacketTimeout
}

// pending is the number of bytes received on c and not consumed yet.
// Loop-only.
func (st *connState) pending(c gnet.Conn) int {
	n := c.InboundBuffered()
	if x := st.x; x != nil {
		n += len(x.in.carry)
	}
	return n
}

// notePartial starts or stops the packet timeout after c's bytes were
// handled (inbound.pendingPacket). before is pending() before the bytes
// were handled. Loop-only.
func (st *connState) notePartial(c gnet.Conn, before int) {
	n := st.pending(c)
	if n == 0 && st.x == nil {
		return // the common case: no allocation, no clock
	}
	x := st.extra()
	if x.in.pendingPacket(before, n) {
		st.ls.enlist(st, &x.watched)
	}
}

// Lingering close (issue 13.2). A socket closed while the peer's bytes
// are unread, or still arriving, is reset by the kernel, and the reset can
// destroy what the peer has not read yet: the DISCONNECT or CONNACK that
// said why. So a connection the broker closes is shut down for writing
// after its output has gone, and what still arrives is discarded for a
// while before the socket is closed, as web servers do. Bounded, so that a
// hostile peer cannot hold the socket: lingerTime, lingerMaxBytes, and at
// most lingerMaxConns connections per loop at once (beyond, closed at
// once).
const (
	lingerTime     = 2 * time.Second
	lingerMaxBytes = 64 << 10
	lingerMaxConns = 4096
)

// linger starts the lingering close of a connection the broker closes
// (see lingerTime): the broker is told it is gone at once, its output is
// sent, then the write side shut and what arrives discarded until the
// peer closes, lingerMaxBytes arrived or lingerTime passed. It returns
// gnet.Close when the connection cannot linger. Loop-only.
func (s *Server) linger(c gnet.Conn, st *connState) gnet.Action {
	if st.ls.lingering >= lingerMaxConns {
		return gnet.Close
	}
	x := st.extra()
	if x.lingerEnd != 0 {
		return gnet.None
	}
	x.ended = true
	st.client.Closed()
	st.ls.lingering++
	s.ctr.lingering.Add(1)
	x.lingerEnd = time.Now().Add(lingerTime).UnixNano()
	x.in.drop()
	_, _ = c.Discard(-1)
	if c.OutboundBuffered() > 0 {
		x.shutPending = true // gnet sends it when the socket takes it
	} else if shutWrite(c) != nil {
		return gnet.Close // the peer is gone
	}
	st.ls.enlist(st, &x.watched)
	return gnet.None
}

// lingerTraffic discards what arrives on a lingering connection. Loop-only.
func (s *Server) lingerTraffic(c gnet.Conn, st *connState) gnet.Action {
	x := st.x
	n, _ := c.Discard(-1)
	x.discarded += n
	if x.shutPending && c.OutboundBuffered() == 0 {
		x.shutPending = false
		if shutWrite(c) != nil {
			return gnet.Close
		}
	}
	if x.discarded > lingerMaxBytes {
		return gnet.Close
	}
	return gnet.None
}

// shutWrite shuts the write side of c's socket: the peer reads what was
// sent, then end of file.
func shutWrite(c gnet.Conn) error {
	return unix.Shutdown(c.Fd(), unix.SHUT_WR)
}
