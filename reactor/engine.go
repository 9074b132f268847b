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
	"strconv"
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
	// expects a PROXY protocol v1/v2 header first (?proxy=v1 or ?proxy=v2:
	// that version only). On port 0 the kernel
	// chooses a port; Server.Addrs reports it.
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

	// WSTrustedProxies lists the reverse proxies whose X-Forwarded-For or
	// Forwarded (RFC 7239) header on a ws:// or wss:// upgrade names the
	// client (forwarded.go): the address then seen by logs, hooks, bans and
	// per-IP limits. A header from any other peer is ignored and counted.
	// Empty: every such header is ignored.
	WSTrustedProxies []netip.Prefix
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
	// trusted is Options.WSTrustedProxies (forwarded.go).
	trusted trustedProxies

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

	// The ticker (runTicker): tickKick wakes it when a quiet loop has
	// work, tickStop ends it, tickDone is closed when it has ended.
	tickKick    chan struct{}
	tickStop    chan struct{}
	tickDone    chan struct{}
	tickOnce    sync.Once
	tickStarted atomic.Bool

	specs   []listener    // parsed Listen (port 0 replaced by the port reserved)
	addrs   []net.Addr    // bound addresses of specs, set by Start (Addrs)
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
	s := &Server{b: b, opts: o, log: o.Logger, trusted: trustedProxies(o.WSTrustedProxies), engReady: make(chan struct{}), ready: make(chan struct{}), runErr: make(chan error, 1),
		tickKick: make(chan struct{}, 1), tickStop: make(chan struct{}), tickDone: make(chan struct{})}
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
	bound := make([]net.Addr, 0, len(s.opts.Listen)) // gnet's listeners' now, the others' once started
	var reserved []int                               // sockets holding the ports of port-0 listeners (reserveBind)
	defer func() {
		for _, fd := range reserved {
			_ = unix.Close(fd)
		}
	}()
	for _, a := range s.opts.Listen {
		ln, err := parseListener(a)
		if err != nil {
			return err
		}
		needTLS = needTLS || ln.tls()
		if !ln.onLoop() {
			s.specs = append(s.specs, ln)
			bound = append(bound, nil) // set once it is started
			continue
		}
		var ta *net.TCPAddr
		if ln.port0() {
			// gnet binds the address once per loop (SO_REUSEPORT), and
			// port 0 would give each its own port: the port is chosen
			// here, once, and held until they all have bound it.
			var fd int
			if fd, ta, err = reserveBind(ln.scheme, ln.addr); err == nil {
				reserved = append(reserved, fd)
				host, _, _ := net.SplitHostPort(ln.addr)
				ln.addr = net.JoinHostPort(host, strconv.Itoa(ta.Port))
			}
		} else {
			// SO_REUSEPORT, which gnet sets to spread accepts over the
			// loops, would also let us bind a port that another process
			// (a second broker, say) listens on and silently share its
			// connections: probe the address with a plain listener first.
			// The goroutine listeners bind without SO_REUSEPORT. The
			// probe binds but does not listen: a client that dialled
			// into a listening probe would be reset when it closed.
			ta, err = probeBind(ln.scheme, ln.addr)
		}
		if err != nil {
			return fmt.Errorf("reactor: listen %s: %w", a, err)
		}
		s.specs = append(s.specs, ln)
		bound = append(bound, ta)
		gnetAddrs = append(gnetAddrs, ln.gnetAddr())
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
		s.stopTicker()
		s.runErr <- err
	}()
	select {
	case <-s.ready:
		// The goroutine listeners start once every loop is bound: their
		// connections are spread over the bound loops.
		for i, ln := range s.specs {
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
			bound[i] = gl.ln.Addr()
		}
		s.addrs = bound
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

// Addrs returns the addresses the listeners are bound to, in the order of
// Options.Listen: for a port 0 there, the port the kernel chose. Nil until
// Start has succeeded; safe for concurrent use once it has returned.
func (s *Server) Addrs() []net.Addr { return s.addrs }

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
	defer s.stopTicker()
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

type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Infof(format string, args ...any)  { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Errorf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
