package reactor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"

	"github.com/mcutie/mcutie/broker"
	"github.com/panjf2000/gnet/v2"
)

// migration carries a connection's unconsumed bytes, its client address
// and its admission ticket to the loop that owns its client id.
type migration struct {
	carry  []byte
	remote string
	ticket broker.Ticket
}

// connState is the per-connection context: one allocation per connection,
// the broker's Client and the admission Ticket included, since every idle
// connection pays for it (docs/benchmarks.md, "Memory per idle
// connection"). What only some connections need is behind x.
type connState struct {
	client broker.Client // initialised by broker.Loop.InitClient; never copied
	// ticket is the connection's share of the connection limits, zero
	// until admitted (behind a PROXY header); released on close unless
	// handed over by a move.
	ticket broker.Ticket
	conn   gnet.Conn
	// ls is its loop's state (Server.perLoop): a connection stays on one
	// loop (a move opens a new connState).
	ls *loopState
	x  *connExtra
}

// connExtra is the state of the connections that are not plain TCP on
// their first loop.
type connExtra struct {
	// in holds the bytes carried over by a move until they are consumed,
	// and the packet-timeout clock. The other bytes received wait in
	// gnet's inbound buffer.
	in     inbound
	proxy  proxyMode // a PROXY protocol header is expected before MQTT (proxyOff once read)
	remote string    // the client's address from a PROXY header ("": the socket's)

	lingerEnd   int64 // unix ns: when the lingering close ends; 0 = not lingering
	discarded   int   // bytes discarded while lingering
	watched     bool  // on its loop's watch list
	ended       bool  // Client.Closed was called when the lingering close began
	shutPending bool  // lingering: the write side is shut once the output has gone
}

func (st *connState) extra() *connExtra {
	if st.x == nil {
		st.x = new(connExtra)
	}
	return st.x
}

// direct reports whether the socket's bytes are MQTT for the client as
// they are: no PROXY header ahead, nothing carried over.
func (st *connState) direct() bool {
	x := st.x
	return x == nil || (x.proxy == proxyOff && len(x.in.carry) == 0)
}

// carrying reports whether bytes carried over by a move wait to be fed.
func (st *connState) carrying() bool { return st.x != nil && len(st.x.in.carry) > 0 }

// remote names the peer: the address from a PROXY header, else the
// socket's (formatted on demand: it is for logs and the CONNECT-time ban
// check, and keeping the string would cost every idle connection 32 bytes).
func (st *connState) remote() string {
	if st.x != nil && st.x.remote != "" {
		return st.x.remote
	}
	return addrString(st.conn.RemoteAddr())
}

// OnOpen creates the broker client of a new connection.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if v, ok := c.Context().(anchorCtx); ok {
		c.SetContext(v)
		return nil, gnet.None
	}
	l := s.loopFor(c.EventLoop())
	st := &connState{conn: c, ls: s.perLoop[l.Index()]}
	switch v := c.Context().(type) {
	case *migration:
		// Admitted on its first loop: the ticket comes along. The
		// address is the one already taken from a PROXY header.
		v.ticket.MoveTo(&st.ticket)
		x := st.extra()
		x.in.carry, x.remote = v.carry, v.remote
	default:
		// Accept-time admission (bans, connection limits): closed
		// before any byte is read; Admit has counted the refusal.
		// Behind a PROXY header the socket's address is the balancer's,
		// so admission waits for the client's (proxyPrelude).
		if m := s.proxyExpected(c.LocalAddr()); m != proxyOff {
			st.extra().proxy = m
		} else if s.b.AdmitListenerInto(&st.ticket, remoteIP(c.RemoteAddr()), s.listenerOf(c.LocalAddr())) != nil {
			return nil, gnet.Close
		}
	}
	l.InitClient(&st.client, gnetConn{st})
	c.SetContext(st)
	if st.carrying() {
		return nil, s.feed(c, st, nil)
	}
	return nil, gnet.None
}

// OnTraffic hands every complete packet to the broker.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	st, ok := c.Context().(*connState)
	if !ok {
		// An anchor: its bytes are wake-ups of the loop's batch flush
		// (loopState.bindWake).
		_, _ = c.Discard(-1)
		if s.bound.Load() {
			s.loopFor(c.EventLoop()).FlushBatch()
		}
		return gnet.None
	}
	if !s.bound.Load() && s.hold(c) {
		return gnet.None // fed once every loop is bound (releaseHeld)
	}
	if st.x != nil && st.x.lingerEnd != 0 {
		return s.lingerTraffic(c, st)
	}
	before := st.pending(c)
	act := s.traffic(c, st)
	if act == gnet.None && s.packetTimeout() > 0 {
		st.notePartial(c, before)
	}
	return act
}

// traffic handles the bytes that arrived on c. Loop-only.
func (s *Server) traffic(c gnet.Conn, st *connState) gnet.Action {
	if st.direct() && awaitingBody(c, &st.client) {
		return gnet.None
	}
	buf, _ := c.Peek(-1)
	if st.x != nil && st.x.proxy != proxyOff {
		n, err := s.proxyPrelude(st, buf)
		if err == errProxyIncomplete {
			return gnet.None // the rest of the header stays buffered
		}
		if err != nil {
			if err != errAdmission {
				s.proxyRefused(err, s.listenerOf(c.LocalAddr()), st.remote())
			}
			return gnet.Close
		}
		_, _ = c.Discard(n)
		buf = buf[n:]
	}
	return s.feed(c, st, buf)
}

// listenerOf names the on-loop listener that accepted a connection at
// local, as configured ("" if none matches), for the PreConnect hooks.
func (s *Server) listenerOf(local net.Addr) string {
	for _, ln := range s.specs {
		if ln.onLoop() && ln.matches(local) {
			return ln.raw
		}
	}
	return ""
}

// proxyExpected returns the ?proxy= mode of the gnet listener that
// accepted a connection at local.
func (s *Server) proxyExpected(local net.Addr) proxyMode {
	for _, ln := range s.specs {
		if ln.onLoop() && ln.proxy != proxyOff && ln.matches(local) {
			return ln.proxy
		}
	}
	return proxyOff
}

// proxyRefused counts and logs a connection closed for its PROXY header
// (missing, malformed, or of a version the listener does not take).
// Safe for concurrent use.
func (s *Server) proxyRefused(err error, listener, remote string) {
	if errors.Is(err, errProxyVersion) {
		s.ctr.proxyVersion.Add(1)
		s.log.Info("closing connection: PROXY protocol header of the wrong version", "listener", listener, "remote", remote, "err", err)
		return
	}
	s.ctr.proxyRejected.Add(1)
	s.log.Info("closing connection: bad PROXY protocol header", "listener", listener, "remote", remote, "err", err)
}

// proxyPrelude parses the PROXY header at the start of buf and takes the
// client's address from it. Loop-only.
func (s *Server) proxyPrelude(st *connState, buf []byte) (int, error) {
	if len(buf) > proxyMaxLen {
		buf = buf[:proxyMaxLen]
	}
	n, src, err := parseProxyHeader(buf, st.x.proxy)
	if err != nil {
		return 0, err
	}
	st.x.proxy = proxyOff
	ip := remoteIP(st.conn.RemoteAddr())
	if src != nil {
		st.extra().remote = src.String()
		ip = remoteIP(src)
	}
	// Accept-time admission with the client's real address.
	if s.b.AdmitListenerInto(&st.ticket, ip, s.listenerOf(st.conn.LocalAddr())) != nil {
		return 0, errAdmission
	}
	return n, nil
}

// awaitingBody reports whether the bytes buffered on c are the start of a
// packet whose body has not all arrived (broker.Client.NeedMore). Feeding
// then would achieve nothing, and Peek(-1) copies everything buffered
// whenever the bytes span gnet's ring and its read buffer: a large packet
// trickling in would cost time quadratic in its size. Peeking the fixed
// header copies at most 5 bytes.
func awaitingBody(c gnet.Conn, cl *broker.Client) bool {
	n := c.InboundBuffered()
	if n < 2 {
		return false
	}
	head, err := c.Peek(min(n, 5))
	if err != nil {
		return false
	}
	return cl.NeedMore(head, n)
}

// errAdmission: broker.Admit refused the client (it counted the refusal).
var errAdmission = errors.New("refused at admission")

// feed hands buf, the bytes buffered on c, to the broker through the
// connection's inbound (nil on the direct path: nothing copied), and
// discards what was used from c. Loop-only.
func (s *Server) feed(c gnet.Conn, st *connState, buf []byte) gnet.Action {
	var in *inbound
	if st.x != nil {
		in = &st.x.in
	}
	res, used, moving := in.feed(&st.client, buf, false)
	if used > 0 {
		_, _ = c.Discard(used)
	}
	switch res {
	case broker.FeedClose:
		return s.linger(c, st)
	case broker.FeedMigrate:
		s.migrate(c, st, moving)
		return gnet.Close
	}
	return gnet.None
}

// migrate moves c to the loop that owns its client id, with moving, the
// bytes it received and the broker did not consume (inbound.feed), and
// reports whether the connection (and its admission ticket) now lives
// there. Loop-only.
func (s *Server) migrate(c gnet.Conn, st *connState, moving []byte) bool {
	target := s.elFor(int(st.client.MigrateTo))
	if target == nil {
		s.log.Error("cannot move connection: owning loop not bound", "loop", st.client.MigrateTo)
		return false
	}
	fd, err := c.Dup()
	if err != nil {
		s.log.Error("cannot move connection", "remote", st.remote(), "err", err)
		return false
	}
	f := os.NewFile(uintptr(fd), "mqtt")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.log.Error("cannot move connection", "remote", st.remote(), "err", err)
		return false
	}
	m := &migration{carry: moving}
	if st.x != nil {
		m.remote = st.x.remote
	}
	st.ticket.MoveTo(&m.ticket)
	if _, err := target.Enroll(gnet.NewContext(context.Background(), m), nc); err != nil {
		m.ticket.Release()
		nc.Close()
		s.log.Error("cannot move connection", "remote", st.remote(), "err", err)
		return false
	}
	return true
}

// OnClose tells the broker the connection is gone and releases its share
// of the connection limits.
func (s *Server) OnClose(c gnet.Conn, _ error) gnet.Action {
	if st, ok := c.Context().(*connState); ok {
		x := st.x
		if x == nil || !x.ended {
			st.client.Closed()
		}
		if x != nil && x.lingerEnd != 0 {
			st.ls.lingering--
		}
		st.ticket.Release() // spent when moved
		st.conn = nil       // closed: the watch list and queued Close tasks skip it
	}
	return gnet.None
}

func remoteIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr()
	}
	return netip.Addr{}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
