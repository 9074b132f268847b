package reactor

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mcutie/mcutie/broker"
	"github.com/panjf2000/gnet/v2"
	"github.com/pires/go-proxyproto"
)

// The goroutine transport serves the tls://, ws:// and wss:// listeners:
// gnet has neither TLS nor WebSocket, so these connections are ordinary
// net.Conns (crypto/tls, gorilla/websocket) with one reader and one writer
// goroutine each, logically owned by an event loop like any gnet
// connection:
//
//   - The reader reads a chunk, hands it to the owning loop with
//     EventLoop.Execute and waits until the loop has fed it to
//     broker.Client.Feed: one chunk in flight per connection, so a fast
//     sender is slowed by TCP, as on the gnet path. The partial packet at
//     the end of a chunk is kept (inbound) on the loop.
//   - The broker's writes (Conn.Writev, on the loop) are copied into a
//     buffer that the writer goroutine drains; OutboundBuffered counts it,
//     so the broker's slow-consumer policy applies unchanged.
//   - Moving a connection to the loop that owns its client id
//     (FeedMigrate) needs no socket duplication: the connection is
//     re-registered there and the reader posts there from then on.
//
// broker.Client and the fields marked "loop" are only touched on the
// owning loop; chunk hand-over orders the reader's and the loop's accesses.

const (
	goReadChunk = 16 << 10 // one TLS record's worth
	// goCloseGrace bounds how long Close waits for the writer to flush
	// before the socket is closed anyway (a peer that stopped reading).
	goCloseGrace = 5 * time.Second
)

// goConn is one connection of the goroutine transport. It implements
// broker.Conn and gnet.Runnable (the chunk hand-over).
type goConn struct {
	s      *Server
	nc     net.Conn
	remote string
	user   string // verified client certificate CN (TLSOptions.UsernameFromCN)
	// listener is the accepting listener as configured (hooks see it).
	listener string

	// owner is the loop the reader posts to; written on the loop during a
	// migration, read by the reader after the chunk hand-over.
	owner atomic.Pointer[boundLoop]

	client  *broker.Client // loop
	in      inbound        // loop: unconsumed bytes of earlier chunks, the packet-timeout clock
	chunk   []byte         // the chunk being handed over
	fed     chan struct{}  // the loop is done with chunk
	dead    bool           // loop: Feed said close; later chunks are dropped
	over    bool           // loop: the socket is gone and Closed was reported
	watched bool           // loop: on its loop's watch list (Options.PacketTimeout)

	// lingering is set by the writer once it has shut the write side
	// (lingerClose): the reader then discards what arrives.
	lingering atomic.Bool
	readDone  chan struct{} // closed when the reader has stopped reading

	mu      sync.Mutex
	out     []byte       // written by the broker, not yet taken by the writer
	spare   []byte       // the writer's buffer
	pending atomic.Int64 // bytes in out plus bytes the writer is writing: OutboundBuffered without the lock (it runs per delivery)
	closing bool         // Close was called: flush, then close the socket
	grace   *time.Timer  // closes the socket if the flush takes longer than goCloseGrace
	wake    chan struct{}
	gone    atomic.Bool // the writer has exited: writes are dropped
}

var _ broker.Conn = (*goConn)(nil)

// serveGo runs nc (already past TLS and WebSocket handshakes) until it
// closes. It blocks: call it on the connection's own goroutine.
func (s *Server) serveGo(nc net.Conn, remote, user, listener string, pre []byte) {
	bl, ok := s.pickLoop()
	if !ok {
		_ = nc.Close()
		return
	}
	g := &goConn{s: s, nc: nc, remote: remote, user: user, listener: listener, fed: make(chan struct{}, 1), wake: make(chan struct{}, 1), readDone: make(chan struct{})}
	g.owner.Store(&bl)
	if len(pre) > 0 {
		g.in.carry = append([]byte(nil), pre...)
	}
	if !s.goAdd() {
		_ = nc.Close()
		return
	}
	defer s.goConns.Done()
	go g.writeLoop()
	readDone := sync.OnceFunc(func() { close(g.readDone) })
	defer readDone()

	// Register on the loop at once, so the connect timeout covers a
	// client that completes the handshake and then says nothing.
	if err := s.exec(bl.el, func() { g.feed(nil) }); err != nil {
		g.Close()
		return
	}
	buf := make([]byte, goReadChunk)
	discarded := 0
	for {
		n, err := nc.Read(buf)
		if n > 0 && g.lingering.Load() {
			// Lingering close: the broker is done with the connection.
			if discarded += n; discarded > lingerMaxBytes {
				break
			}
			n = 0
		}
		if n > 0 {
			g.chunk = buf[:n]
			if g.owner.Load().el.Execute(context.Background(), g) != nil {
				break
			}
			<-g.fed
		}
		if err != nil {
			break
		}
	}
	readDone()
	g.Close()
	_ = s.exec(g.owner.Load().el, g.ended)
}

// ended reports the end of the connection to its client. Loop.
func (g *goConn) ended() {
	g.over = true
	if g.client != nil {
		g.client.Closed()
		g.client = nil
	}
}

// pickLoop spreads new goroutine-transport connections over the loops.
func (s *Server) pickLoop() (boundLoop, bool) {
	loops := *s.loops.Load()
	if len(loops) == 0 {
		return boundLoop{}, false
	}
	return loops[int(s.rr.Add(1))%len(loops)], true
}

// Run feeds the handed-over chunk to the client. On the owning loop.
func (g *goConn) Run(context.Context) error {
	g.feed(g.chunk)
	g.chunk = nil
	g.fed <- struct{}{}
	return nil
}

// feed hands b, after the carried bytes, to the client (inbound.feed).
// Loop.
func (g *goConn) feed(b []byte) {
	if g.dead || g.over {
		return
	}
	if g.client == nil {
		// gnet's task queues are not strictly FIFO (a low-priority task
		// can overtake another under load), so whichever task of this
		// connection runs first on its loop registers it.
		g.client = g.owner.Load().loop.NewClient(g)
	}
	before := len(g.in.carry) + len(b)
	if before == 0 {
		return
	}
	res, _, moving := g.in.feed(g.client, b, true) // the reader reuses b
	switch res {
	case broker.FeedClose:
		g.dead = true
		g.Close()
		return
	case broker.FeedMigrate:
		g.migrate(moving)
		return
	}
	if g.s.packetTimeout() > 0 && g.in.pendingPacket(before, len(g.in.carry)) {
		g.s.perLoop[g.owner.Load().loop.Index()].enlist(g, &g.watched)
	}
}

// expire closes the connection if its partial packet is overdue. On ls's
// loop.
func (g *goConn) expire(ls *loopState, now int64) bool {
	if g.s.perLoop[g.owner.Load().loop.Index()] != ls {
		return false // moved: its new loop watches it (migrate)
	}
	if g.dead || g.over {
		g.watched = false
		return false
	}
	watch, late := g.in.overdue(now, g.s.packetTimeout())
	if late {
		g.s.packetTimedOut(g.remote, len(g.in.carry))
		g.dead = true
		g.in.drop()
		g.Close()
	}
	g.watched = watch
	return watch
}

// migrate moves the connection to the loop that owns its client id, with
// moving, the unconsumed bytes (the CONNECT and whatever followed it).
// Loop.
func (g *goConn) migrate(moving []byte) {
	old := g.client
	idx := int(old.MigrateTo)
	g.in.carry = moving
	old.Closed() // leaves the session alone: the client is migrating
	g.client = nil
	g.watched = false // the old loop's list drops it (expire); inbound.feed stopped the clock
	var target boundLoop
	for _, bl := range *g.s.loops.Load() {
		if bl.loop.Index() == idx {
			target = bl
		}
	}
	if target.loop == nil {
		g.s.log.Error("cannot move connection: owning loop not bound", "loop", idx)
		g.dead = true
		g.Close()
		return
	}
	g.owner.Store(&target)
	if err := g.s.exec(target.el, func() { g.feed(nil) }); err != nil {
		g.dead = true
		g.Close()
	}
}

// Writev copies bufs for the writer goroutine. Loop.
func (g *goConn) Writev(bufs [][]byte) (int, error) {
	if g.gone.Load() {
		return 0, net.ErrClosed
	}
	n := 0
	g.mu.Lock()
	for _, b := range bufs {
		g.out = append(g.out, b...)
		n += len(b)
	}
	g.pending.Add(int64(n))
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return n, nil
}

// OutboundBuffered is what the writer has not sent yet.
func (g *goConn) OutboundBuffered() int {
	return int(g.pending.Load())
}

// Close flushes what is buffered, then closes the socket. Safe from
// anywhere; the reader then reports Closed on the loop.
func (g *goConn) Close() error {
	g.mu.Lock()
	already := g.closing
	g.closing = true
	g.mu.Unlock()
	if !already {
		// A writer stuck on a peer that stopped reading is cut off.
		g.mu.Lock()
		if !g.gone.Load() {
			g.grace = time.AfterFunc(goCloseGrace, func() { _ = g.nc.Close() })
		}
		g.mu.Unlock()
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Wake feeds the carried bytes again on the owning loop (the broker asks
// once an asynchronous authentication has finished: the packets after the
// CONNECT may already be here). Safe from anywhere.
func (g *goConn) Wake() error {
	return g.s.exec(g.owner.Load().el, func() { g.feed(nil) })
}

// RemoteAddr is the peer (after PROXY protocol, the real client).
func (g *goConn) RemoteAddr() string { return g.remote }

// Listener implements broker.ListenerConn.
func (g *goConn) Listener() string { return g.listener }

// Username implements broker.IdentifiedConn: the CN of the verified client
// certificate when the listener takes usernames from certificates; an
// empty name with ok when that certificate has no CN (refused).
func (g *goConn) Username() (string, bool) {
	if g.user == noCN {
		return "", true
	}
	return g.user, g.user != ""
}

// writeLoop sends what the broker wrote until Close or a write error.
func (g *goConn) writeLoop() {
	defer func() {
		g.mu.Lock()
		g.gone.Store(true)
		if g.grace != nil {
			g.grace.Stop()
		}
		g.mu.Unlock()
		_ = g.nc.Close() // unblocks the reader
	}()
	for {
		g.mu.Lock()
		for len(g.out) == 0 && !g.closing {
			g.mu.Unlock()
			<-g.wake
			g.mu.Lock()
		}
		if len(g.out) == 0 {
			g.mu.Unlock()
			g.lingerClose()
			return
		}
		g.out, g.spare = g.spare[:0], g.out
		g.mu.Unlock()
		_, err := g.nc.Write(g.spare)
		g.pending.Add(-int64(len(g.spare)))
		g.mu.Lock()
		if cap(g.spare) > goReadChunk*64 {
			g.spare = nil // do not keep a burst's buffer for the connection's life
		}
		g.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// lingerClose is the goroutine transport's lingering close (see
// lingerTime), once the writer has sent everything: the WebSocket close
// frame and TLS close_notify are sent, the TCP write side is shut, and the
// reader discards what arrives until the peer closes, lingerMaxBytes
// arrived or lingerTime passed. Writer goroutine.
func (g *goConn) lingerClose() {
	deadline := time.Now().Add(lingerTime)
	c := g.nc
	for range 8 {
		switch v := c.(type) {
		case *wsConn:
			_ = v.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
			c = v.ws.NetConn()
		case *preludeConn:
			c = v.Conn
		case *tls.Conn:
			_ = v.SetWriteDeadline(deadline)
			_ = v.CloseWrite() // close_notify
			c = v.NetConn()
		case *ticketConn:
			c = v.Conn
		case *proxyproto.Conn:
			c = v.Raw()
		case *net.TCPConn:
			if v.CloseWrite() != nil {
				return // the peer is gone
			}
			g.s.ctr.lingering.Add(1)
			g.lingering.Store(true)
			_ = v.SetReadDeadline(deadline)
			<-g.readDone
			return
		default:
			return
		}
	}
}

// tcpAddr is a net.Conn's remote address as text.
func tcpAddr(c net.Conn) string { return addrString(c.RemoteAddr()) }

var _ gnet.Runnable = (*goConn)(nil)
