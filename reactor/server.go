package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Options configures the transport.
type Options struct {
	// Listen lists the listeners: tcp://host:port (gnet event loops),
	// tls://host:port, ws://host:port[/path], wss://host:port[/path]
	// (goroutine transport, goconn.go); ?proxy=true on any of them
	// expects a PROXY protocol v1/v2 header first.
	Listen           []string
	TLS              TLSOptions // certificates of the tls:// and wss:// listeners
	ReadBufferCap    int        // gnet per-loop read buffer / per-connection inbound cap, bytes (0: gnet default 64 KiB)
	WriteBufferCap   int        // gnet per-connection outbound ring cap, bytes (0: gnet default 64 KiB)
	SocketRecvBuffer int        // SO_RCVBUF, bytes (0: kernel default)
	SocketSendBuffer int        // SO_SNDBUF, bytes (0: kernel default)
	LockOSThread     bool       // pin each event loop to an OS thread
	TickInterval     time.Duration
	Logger           *slog.Logger

	// PacketTimeout bounds how long a packet may take to arrive once its
	// first byte has: a connection holding a partial packet longer is
	// closed, whatever its keep-alive (issue 21.13: a 3.x client with
	// keep-alive 0 could hold a maximum-size packet minus one byte
	// forever). 0: DefaultPacketTimeout; negative: no limit.
	PacketTimeout time.Duration

	// WSAllowNoSubprotocol accepts WebSocket upgrades that do not offer
	// the "mqtt" (or "mqttv3.1") subprotocol. By default they are refused
	// with HTTP 400 [MQTT-6.0.0-3].
	WSAllowNoSubprotocol bool
}

// Server runs a broker on gnet event loops.
//
// Start and Stop are safe for concurrent use; the gnet callbacks run on the
// event loops.
type Server struct {
	gnet.BuiltinEventEngine
	b    *broker.Broker
	opts Options
	log  *slog.Logger

	eng      gnet.Engine
	engReady chan struct{}
	ready    chan struct{}
	runErr   chan error
	started  atomic.Bool

	bindMu  sync.Mutex
	loops   atomic.Pointer[[]boundLoop]
	anchors []net.Conn

	ticking atomic.Bool
	stopped atomic.Bool

	specs   []listener    // parsed Listen
	tls     *tlsConfig    // nil without tls:// or wss:// listeners
	golns   []*goListener // tls, ws, wss
	goConns sync.WaitGroup
	goMu    sync.Mutex    // orders goAdd with Stop's goConns.Wait
	goStop  bool          // Stop waits for goConns: no more may be added
	rr      atomic.Uint32 // spreads goroutine-transport connections over the loops
	idleDir string        // holds gnet's placeholder Unix socket when no tcp:// listener is configured
	ctr     transportCounters
	running atomic.Bool // every loop bound and the listeners bound; false once the engine ends

	// bound is set once every loop is bound. Until then gnet may already
	// accept (its listeners exist before the loops run, and the kernel
	// queues connections in their backlog): such connections are opened
	// but not fed (hold) — a CONNECT read then could need to move to a
	// loop not bound yet — and are woken once bound is set.
	bound  atomic.Bool
	heldMu sync.Mutex
	held   []gnet.Conn

	// perLoop is the reactor's state of each broker loop; entry i is
	// used only on loop i.
	perLoop []*loopState
}

// loopState is the reactor's state of one loop. Loop-only.
type loopState struct {
	s *Server
	// scratch is the buffer small writes are coalesced into
	// (gnetConn.Writev). A sync.Pool would hand out fresh 64 KiB buffers
	// after every GC cycle, and a backlogged subscriber makes GC cycles
	// frequent.
	scratch []byte
	// watch lists the loop's connections with a deadline: a partial
	// packet (Options.PacketTimeout) or a lingering close. Swept on
	// every tick.
	watch     []watched
	lingering int // connections of the loop in a lingering close
}

// watched is a connection in a loopState's watch list.
type watched interface {
	// expire runs on ls's loop at every tick; it reports whether the
	// connection stays on the list.
	expire(ls *loopState, now int64) bool
}

// DefaultPacketTimeout is Options.PacketTimeout's default: a maximum-size
// packet (1 MiB by default) must arrive at 35 KB/s at least.
const DefaultPacketTimeout = 30 * time.Second

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

type boundLoop struct {
	el   gnet.EventLoop
	loop *broker.Loop
}

// anchorCtx marks the internal connections used to discover the loops.
type anchorCtx struct{}

// migration carries a connection's unconsumed bytes, its client address
// and its admission ticket to the loop that owns its client id.
type migration struct {
	carry  []byte
	remote string
	ticket broker.Ticket
}

// connState is the per-connection context: one allocation per connection,
// the broker's Client and the admission Ticket included, since every idle
// connection pays for it (README, "Memory per connection"). What only some
// connections need is behind x.
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
	proxy  bool   // a PROXY protocol header is expected before MQTT
	remote string // the client's address from a PROXY header ("": the socket's)
	carry  []byte // bytes carried over by a migration, not yet consumed

	pendSince   int64 // unix ns: when the partial packet buffered began arriving; 0 = none
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
	return x == nil || (!x.proxy && len(x.carry) == 0)
}

// carrying reports whether bytes carried over by a move wait to be fed.
func (st *connState) carrying() bool { return st.x != nil && len(st.x.carry) > 0 }

// remote names the peer: the address from a PROXY header, else the
// socket's (formatted on demand: it is for logs and the CONNECT-time ban
// check, and keeping the string would cost every idle connection 32 bytes).
func (st *connState) remote() string {
	if st.x != nil && st.x.remote != "" {
		return st.x.remote
	}
	return addrString(st.conn.RemoteAddr())
}

// New returns a server for b.
func New(b *broker.Broker, o Options) *Server {
	if len(o.Listen) == 0 {
		o.Listen = []string{"tcp://127.0.0.1:1883"}
	}
	if o.TickInterval <= 0 {
		o.TickInterval = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{b: b, opts: o, log: o.Logger, engReady: make(chan struct{}), ready: make(chan struct{}), runErr: make(chan error, 1)}
	empty := []boundLoop{}
	s.loops.Store(&empty)
	s.perLoop = make([]*loopState, b.NumLoops())
	for i := range s.perLoop {
		s.perLoop[i] = &loopState{s: s}
	}
	return s
}

// Start listens and returns once every event loop is bound and the
// listeners accept, or with the error that prevented it.
func (s *Server) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("reactor: already started")
	}
	var gnetAddrs []string
	needTLS := false
	for _, a := range s.opts.Listen {
		ln, err := parseListener(a)
		if err != nil {
			return err
		}
		s.specs = append(s.specs, ln)
		if ln.onLoop() {
			// SO_REUSEPORT, which gnet sets to spread accepts over the
			// loops, would also let us bind a port that another process
			// (a second broker, say) listens on and silently share its
			// connections: probe the address with a plain listener first.
			// The goroutine listeners bind without SO_REUSEPORT. The
			// probe binds but does not listen: a client that dialled
			// into a listening probe would be reset when it closed.
			if err := probeBind(ln.scheme, ln.addr); err != nil {
				return fmt.Errorf("reactor: listen %s: %w", a, err)
			}
			gnetAddrs = append(gnetAddrs, ln.gnetAddr())
		}
		needTLS = needTLS || ln.tls()
	}
	if len(gnetAddrs) == 0 {
		// gnet runs no loops without a listener. Give it a Unix socket in
		// a private directory: nothing can reach it, and MQTT only ever
		// arrives through the goroutine listeners.
		dir, err := os.MkdirTemp("", "mcutie-")
		if err != nil {
			return fmt.Errorf("reactor: %w", err)
		}
		s.idleDir = dir
		gnetAddrs = append(gnetAddrs, "unix://"+filepath.Join(dir, "idle.sock"))
	}
	if needTLS {
		tc, err := newTLSConfig(s.opts.TLS)
		if err != nil {
			return err
		}
		s.tls = tc
	}
	opts := []gnet.Option{
		gnet.WithNumEventLoop(s.b.NumLoops()),
		gnet.WithLoadBalancing(gnet.RoundRobin),
		gnet.WithReusePort(true),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		gnet.WithLockOSThread(s.opts.LockOSThread),
		gnet.WithLogger(gnetLogger{s.log}),
	}
	if s.opts.ReadBufferCap > 0 {
		opts = append(opts, gnet.WithReadBufferCap(s.opts.ReadBufferCap))
	}
	if s.opts.WriteBufferCap > 0 {
		opts = append(opts, gnet.WithWriteBufferCap(s.opts.WriteBufferCap))
	}
	if s.opts.SocketRecvBuffer > 0 {
		opts = append(opts, gnet.WithSocketRecvBuffer(s.opts.SocketRecvBuffer))
	}
	if s.opts.SocketSendBuffer > 0 {
		opts = append(opts, gnet.WithSocketSendBuffer(s.opts.SocketSendBuffer))
	}
	go func() {
		err := gnet.Rotate(s, gnetAddrs, opts...)
		s.running.Store(false)
		s.runErr <- err
	}()
	select {
	case <-s.ready:
		// The goroutine listeners start once every loop is bound: their
		// connections are spread over the bound loops.
		for _, ln := range s.specs {
			if ln.onLoop() {
				continue
			}
			gl, err := s.startGoListener(ln)
			if err != nil {
				s.closeGoListeners()
				_ = s.eng.Stop(context.Background())
				return fmt.Errorf("reactor: listen %s: %w", ln.raw, err)
			}
			s.golns = append(s.golns, gl)
		}
		return nil
	case err := <-s.runErr:
		if err == nil {
			err = errors.New("reactor: engine stopped during start-up")
		}
		return err
	case <-time.After(30 * time.Second):
		return errors.New("reactor: event loops did not start within 30s")
	}
}

// goAdd counts one goroutine-transport goroutine for Stop to wait for, and
// reports false once Stop waits: WaitGroup.Add from a zero count must not
// race with Wait (the race detector found an upgrade handler doing so).
func (s *Server) goAdd() bool {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	if s.goStop {
		return false
	}
	s.goConns.Add(1)
	return true
}

// Stop disconnects every client (v5: DISCONNECT 0x8B) and stops the
// engine.
func (s *Server) Stop(ctx context.Context) error {
	if !s.stopped.CompareAndSwap(false, true) {
		return nil
	}
	s.running.Store(false)
	s.closeGoListeners()
	s.b.Shutdown()
	// Goroutine-transport connections report Closed to their loops, so
	// they end before the engine does.
	s.goMu.Lock()
	s.goStop = true
	s.goMu.Unlock()
	waited := make(chan struct{})
	go func() {
		s.goConns.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	for _, a := range s.anchors {
		_ = a.Close()
	}
	select {
	case <-s.engReady:
	default:
		return nil
	}
	err := s.eng.Stop(ctx)
	if s.idleDir != "" {
		_ = os.RemoveAll(s.idleDir)
	}
	return err
}

func (s *Server) closeGoListeners() {
	for _, gl := range s.golns {
		gl.close()
	}
}

// ReloadTLS reads the TLS certificate, key and client CA files again.
// Handshakes that start afterwards use the new files; established
// connections keep theirs. On error the old files stay in force. Safe for
// concurrent use.
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return nil
	}
	return s.tls.reload()
}

// handshakeTimeout bounds everything before CONNECT on the goroutine
// transport (PROXY header, TLS handshake, WebSocket upgrade): the broker's
// connect timeout.
func (s *Server) handshakeTimeout() time.Duration { return s.b.Options().ConnectTimeout }

// OnBoot records the engine.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	close(s.engReady)
	return gnet.None
}

// OnTick binds the loops on its first call, then drives every loop's
// timers. It runs on gnet's ticker goroutine, never on a loop, so it only
// posts work.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	if !s.ticking.Swap(true) {
		if err := s.bindAll(); err != nil {
			s.runErr <- err
			return 0, gnet.Shutdown
		}
		s.releaseHeld()
		s.running.Store(true)
		close(s.ready)
		return s.opts.TickInterval, gnet.None
	}
	for _, bl := range *s.loops.Load() {
		l, ls := bl.loop, s.perLoop[bl.loop.Index()]
		_ = s.exec(bl.el, func() {
			l.Tick()
			ls.sweep()
		})
	}
	return s.opts.TickInterval, gnet.None
}

// hold keeps c unfed until every loop is bound and reports true, or
// reports false if they are bound already. Loop-only (c's).
func (s *Server) hold(c gnet.Conn) bool {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.bound.Load() {
		return false
	}
	s.held = append(s.held, c)
	return true
}

// releaseHeld marks every loop bound and wakes the connections held until
// then: their buffered bytes are fed on their loops.
func (s *Server) releaseHeld() {
	s.heldMu.Lock()
	s.bound.Store(true)
	held := s.held
	s.held = nil
	s.heldMu.Unlock()
	for _, c := range held {
		_ = c.Wake(nil) // a connection closed meanwhile is ignored
	}
}

// ErrNotReady is wrapped by Ready's error when the server does not take
// connections.
var ErrNotReady = errors.New("reactor: not ready")

// Ready reports whether the server takes connections: started, not
// stopped, the engine running (its listeners bound), and every event loop
// answering, which a task run on each loop within ctx proves (a loop stuck
// in a callback would not accept or serve anyone). Safe for concurrent
// use; readiness probes (/readyz) call it.
func (s *Server) Ready(ctx context.Context) error {
	if !s.running.Load() {
		return fmt.Errorf("%w: listeners not running", ErrNotReady)
	}
	loops := *s.loops.Load()
	done := make(chan int, len(loops))
	for _, bl := range loops {
		idx := bl.loop.Index()
		if err := s.exec(bl.el, func() { done <- idx }); err != nil {
			return fmt.Errorf("%w: event loop %d: %v", ErrNotReady, idx, err)
		}
	}
	for range loops {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("%w: an event loop did not answer: %v", ErrNotReady, ctx.Err())
		}
	}
	return nil
}

func (s *Server) exec(el gnet.EventLoop, fn func()) error {
	return el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}

// bindAll registers anchor connections until every loop is bound.
func (s *Server) bindAll() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("reactor: cannot bind loops: %w", err)
	}
	defer ln.Close()
	n := s.b.NumLoops()
	for attempt := 0; len(*s.loops.Load()) < n; attempt++ {
		if attempt > 64*n {
			return errors.New("reactor: could not reach every event loop")
		}
		dialed, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		accepted, err := ln.Accept()
		if err != nil {
			dialed.Close()
			return err
		}
		ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), anchorCtx{}), accepted)
		ch, err := s.eng.Register(ctx)
		if err != nil {
			dialed.Close()
			accepted.Close()
			return err
		}
		res := <-ch
		accepted.Close() // gnet holds its own dup
		if res.Err != nil {
			dialed.Close()
			return res.Err
		}
		s.anchors = append(s.anchors, dialed)
		s.loopFor(res.Conn.EventLoop())
	}
	return nil
}

// loopFor returns the broker loop bound to el, binding the next free one
// if el is new.
func (s *Server) loopFor(el gnet.EventLoop) *broker.Loop {
	for _, bl := range *s.loops.Load() {
		if bl.el == el {
			return bl.loop
		}
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	cur := *s.loops.Load()
	for _, bl := range cur {
		if bl.el == el {
			return bl.loop
		}
	}
	if len(cur) >= s.b.NumLoops() {
		panic("BUG: reactor: more gnet event loops than broker loops")
	}
	l := s.b.Loop(len(cur))
	l.Bind(func(fn func()) error { return s.exec(el, fn) })
	next := append(append([]boundLoop(nil), cur...), boundLoop{el: el, loop: l})
	s.loops.Store(&next)
	return l
}

func (s *Server) elFor(idx int) gnet.EventLoop {
	for _, bl := range *s.loops.Load() {
		if bl.loop.Index() == idx {
			return bl.el
		}
	}
	return nil
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
		x.carry, x.remote = v.carry, v.remote
	default:
		// Accept-time admission (bans, connection limits): closed
		// before any byte is read; Admit has counted the refusal.
		// Behind a PROXY header the socket's address is the balancer's,
		// so admission waits for the client's (proxyPrelude).
		if s.proxyExpected(c.LocalAddr()) {
			st.extra().proxy = true
		} else if s.b.AdmitInto(&st.ticket, remoteIP(c.RemoteAddr())) != nil {
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
		_, _ = c.Discard(-1) // anchor: nothing is ever sent on it
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
	if st.x != nil && st.x.proxy {
		n, err := s.proxyPrelude(st, buf)
		if err == errProxyIncomplete {
			return gnet.None // the rest of the header stays buffered
		}
		if err != nil {
			if err != errAdmission {
				s.ctr.proxyRejected.Add(1)
				s.log.Info("closing connection: bad PROXY protocol header", "remote", st.remote(), "err", err)
			}
			return gnet.Close
		}
		_, _ = c.Discard(n)
		buf = buf[n:]
	}
	return s.feed(c, st, buf)
}

// proxyExpected reports whether the gnet listener that accepted a
// connection at local has ?proxy=true.
func (s *Server) proxyExpected(local net.Addr) bool {
	for _, ln := range s.specs {
		if ln.onLoop() && ln.proxy && ln.matches(local) {
			return true
		}
	}
	return false
}

// proxyPrelude parses the PROXY header at the start of buf and takes the
// client's address from it. Loop-only.
func (s *Server) proxyPrelude(st *connState, buf []byte) (int, error) {
	if len(buf) > proxyMaxLen {
		buf = buf[:proxyMaxLen]
	}
	n, src, err := parseProxyHeader(buf)
	if err != nil {
		return 0, err
	}
	st.x.proxy = false
	ip := remoteIP(st.conn.RemoteAddr())
	if src != nil {
		st.extra().remote = src.String()
		ip = remoteIP(src)
	}
	// Accept-time admission with the client's real address.
	if s.b.AdmitInto(&st.ticket, ip) != nil {
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

func (s *Server) feed(c gnet.Conn, st *connState, buf []byte) gnet.Action {
	fromCarry := false
	if st.carrying() {
		// Bytes carried over a migration come first; this path copies,
		// and only runs for the first packets of a moved connection.
		x := st.x
		x.carry = append(x.carry, buf...)
		if len(buf) > 0 {
			_, _ = c.Discard(len(buf))
		}
		buf = x.carry
		fromCarry = true
	}
	n, res := st.client.Feed(buf)
	switch res {
	case broker.FeedClose:
		return s.linger(c, st)
	case broker.FeedMigrate:
		s.migrate(c, st, buf[n:])
		return gnet.Close
	}
	if fromCarry {
		x := st.x
		rest := copy(x.carry, x.carry[n:])
		x.carry = x.carry[:rest]
		if rest == 0 {
			x.carry = nil
		}
	} else if n > 0 {
		_, _ = c.Discard(n)
	}
	return gnet.None
}

// migrate moves c to the loop that owns its client id and reports whether
// the connection (and its admission ticket) now lives there.
func (s *Server) migrate(c gnet.Conn, st *connState, rest []byte) bool {
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
	m := &migration{carry: append([]byte(nil), rest...)}
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
		n += len(x.carry)
	}
	return n
}

// notePartial starts or stops the packet timeout after c's bytes were
// handled: it runs while unconsumed bytes (the start of a packet) remain,
// from when that packet began — the first of its bytes to arrive, or the
// moment the packets before it were consumed. before is pending() before
// the bytes were handled. Loop-only.
func (st *connState) notePartial(c gnet.Conn, before int) {
	n := st.pending(c)
	x := st.x
	if n == 0 {
		if x != nil {
			x.pendSince = 0
		}
		return // the common case: no allocation, no clock
	}
	x = st.extra()
	if x.pendSince == 0 || n < before {
		x.pendSince = time.Now().UnixNano()
	}
	if !x.watched {
		x.watched = true
		st.ls.watch = append(st.ls.watch, st)
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
	if x.pendSince == 0 {
		x.watched = false
		return false
	}
	if pt := s.packetTimeout(); pt > 0 && now-x.pendSince > int64(pt) {
		s.ctr.packetTimeouts.Add(1)
		s.log.Info("closing connection: packet not complete within --packet-timeout", "remote", st.remote(), "timeout", pt, "buffered", st.pending(st.conn))
		x.pendSince, x.watched = 0, false
		_ = st.conn.Close()
		return false
	}
	return true
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
	x.pendSince = 0
	x.carry = nil
	_, _ = c.Discard(-1)
	if c.OutboundBuffered() > 0 {
		x.shutPending = true // gnet sends it when the socket takes it
	} else if shutWrite(c) != nil {
		return gnet.Close // the peer is gone
	}
	if !x.watched {
		x.watched = true
		st.ls.watch = append(st.ls.watch, st)
	}
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
func (g gnetConn) Wake() error        { return g.st.conn.Wake(nil) }

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

type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Infof(format string, args ...any)  { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Errorf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
