package reactor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mcutie/mcutie/broker"
	"github.com/pires/go-proxyproto"
)

// goListener is one tls://, ws:// or wss:// listener.
type goListener struct {
	s     *Server
	spec  listener
	ln    net.Listener
	http  *http.Server  // ws, wss
	conns chan net.Conn // ws, wss: connections past PROXY and TLS, for http
	done  chan struct{}
	once  sync.Once
}

// wsMaxHeaderBytes bounds the HTTP request of a WebSocket upgrade (a
// browser's is well under 4 KiB); a bigger one is answered 431.
const wsMaxHeaderBytes = 16 << 10

// startGoListener listens on spec and serves it until Stop.
func (s *Server) startGoListener(spec listener) (*goListener, error) {
	ln, err := net.Listen("tcp", spec.addr)
	if err != nil {
		return nil, err
	}
	gl := &goListener{s: s, spec: spec, ln: ln, done: make(chan struct{})}
	if spec.scheme == "ws" || spec.scheme == "wss" {
		gl.conns = make(chan net.Conn)
		mux := http.NewServeMux()
		mux.HandleFunc(spec.path, gl.upgrade)
		gl.http = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: s.handshakeTimeout(),
			IdleTimeout:       s.handshakeTimeout(),
			MaxHeaderBytes:    wsMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				return context.WithValue(ctx, connKey{}, c)
			},
		}
		// A connection carries one request, the upgrade: any other is
		// answered and the connection closed, never kept idle (issue
		// 21.11: plain requests then an idle keep-alive held sockets and
		// connection slots forever).
		gl.http.SetKeepAlivesEnabled(false)
		go func() { _ = gl.http.Serve(chanListener{gl}) }()
	}
	go gl.acceptLoop()
	return gl, nil
}

func (gl *goListener) close() {
	gl.once.Do(func() {
		close(gl.done)
		_ = gl.ln.Close()
		if gl.http != nil {
			_ = gl.http.Close() // hijacked WebSocket connections are not affected
		}
	})
}

func (gl *goListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := gl.ln.Accept()
		if err != nil {
			select {
			case <-gl.done:
				return
			default:
			}
			// EMFILE and friends: wait a little rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			gl.s.log.Warn("accept failed", "listener", gl.spec.raw, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !gl.s.goAdd() {
			_ = c.Close()
			return
		}
		gl.s.ctr.goOpen.Add(1)
		go func() {
			defer gl.s.goConns.Done()
			defer gl.s.ctr.goOpen.Add(-1)
			gl.handle(c)
		}()
	}
}

// handle runs the connection's prelude — PROXY header, TLS handshake —
// within the connect timeout, then serves it.
func (gl *goListener) handle(raw net.Conn) {
	s := gl.s
	deadline := time.Now().Add(s.handshakeTimeout())
	_ = raw.SetDeadline(deadline)
	c := raw
	if gl.spec.proxy != proxyOff {
		pc := proxyproto.NewConn(raw, proxyproto.WithPolicy(proxyproto.REQUIRE))
		_, err := pc.Read(nil)
		if h := pc.ProxyHeader(); err == nil && h != nil && !gl.spec.proxy.accepts(h.Version) {
			err = fmt.Errorf("%w: v%d on a listener with proxy=%s", errProxyVersion, h.Version, gl.spec.proxy)
		}
		if err != nil {
			s.proxyRefused(err, gl.spec.raw, tcpAddr(raw))
			_ = raw.Close()
			return
		}
		c = pc
	}
	remote := tcpAddr(c)
	// Accept-time admission (bans, connection limits), with the client's
	// real address when a PROXY header named it, before the TLS
	// handshake costs anything. The ticket is released when the
	// connection is closed, whoever closes it (ticketConn). A trusted
	// reverse proxy's WebSocket connection is admitted at the upgrade
	// instead, with the address its forwarding header names.
	admitLater := gl.conns != nil && gl.s.trusted.contains(remoteIP(c.RemoteAddr()))
	if !admitLater {
		t, err := s.b.AdmitListener(remoteIP(c.RemoteAddr()), gl.spec.raw)
		if err != nil {
			_ = raw.Close()
			return
		}
		c = &ticketConn{Conn: c, t: t}
	}
	user := ""
	if gl.spec.tls() {
		tc := tls.Server(c, s.tls.base)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.ctr.tlsFailed.Add(1)
			s.log.Info("closing connection: TLS handshake failed", "listener", gl.spec.raw, "remote", remote, "err", err)
			_ = c.Close()
			return
		}
		if s.opts.TLS.UsernameFromCN {
			user, _ = peerCN(tc.ConnectionState())
		}
		c = tc
	}
	if s.stopped.Load() {
		_ = c.Close()
		return
	}
	if gl.conns == nil {
		_ = c.SetDeadline(time.Time{})
		s.serveGo(c, remote, user, gl.spec.raw, nil)
		return
	}
	// WebSocket: the HTTP upgrade runs on http.Server's goroutine for
	// this connection. http.Server sets its own deadlines (none at all
	// between requests without IdleTimeout); preludeConn keeps every one
	// of them within the deadline set above, until the upgrade is done.
	select {
	case gl.conns <- &preludeConn{Conn: c, user: user, deadline: deadline, admitLater: admitLater}:
	case <-gl.done:
		_ = c.Close()
	}
}

// ticketConn releases the connection's admission ticket (broker.Admit)
// when it is closed.
type ticketConn struct {
	net.Conn
	t *broker.Ticket
}

func (c *ticketConn) Close() error {
	c.t.Release()
	return c.Conn.Close()
}

// preludeConn carries a WebSocket connection through http.Server to the
// upgrade handler: the certificate username, and the deadline of the
// prelude (PROXY header, TLS handshake, HTTP upgrade), which bounds every
// deadline http.Server sets until release.
type preludeConn struct {
	net.Conn
	user       string
	admitLater bool // from a trusted proxy: admitted at the upgrade (forwarded.go)
	mu         sync.Mutex
	deadline   time.Time // zero once released
}

// clamp returns t, or the prelude's deadline if t is later or zero.
func (c *preludeConn) clamp(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.deadline.IsZero() && (t.IsZero() || t.After(c.deadline)) {
		return c.deadline
	}
	return t
}

func (c *preludeConn) SetDeadline(t time.Time) error     { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *preludeConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *preludeConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// release ends the prelude: deadlines are passed on as they are.
func (c *preludeConn) release() {
	c.mu.Lock()
	c.deadline = time.Time{}
	c.mu.Unlock()
}

// chanListener hands connections that passed the prelude to http.Server.
type chanListener struct{ gl *goListener }

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.gl.conns:
		return c, nil
	case <-l.gl.done:
		return nil, net.ErrClosed
	}
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.gl.ln.Addr() }

// upgrader accepts the "mqtt" subprotocol [MQTT-6.0.0-4] (and the
// "mqttv3.1" of older clients). Browsers send an Origin header; MQTT has no
// cookies or ambient credentials for a foreign page to abuse, so every
// origin is accepted and authentication is the CONNECT's business.
var upgrader = websocket.Upgrader{
	Subprotocols:    []string{"mqtt", "mqttv3.1"},
	CheckOrigin:     func(*http.Request) bool { return true },
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
}

// errNoMQTTSubprotocol refuses an upgrade that does not offer "mqtt".
var errNoMQTTSubprotocol = errors.New(`the client did not offer the "mqtt" WebSocket subprotocol (MQTT-6.0.0-3)`)

// offersMQTT reports whether the upgrade request r offers one of the
// subprotocols the upgrader accepts.
func offersMQTT(r *http.Request) bool {
	for _, p := range websocket.Subprotocols(r) {
		for _, want := range upgrader.Subprotocols {
			if p == want {
				return true
			}
		}
	}
	return false
}

func (gl *goListener) upgrade(w http.ResponseWriter, r *http.Request) {
	if !gl.s.opts.WSAllowNoSubprotocol && websocket.IsWebSocketUpgrade(r) && !offersMQTT(r) {
		// [MQTT-6.0.0-3] The client MUST include "mqtt" in the list of
		// WebSocket Sub Protocols it offers.
		gl.s.ctr.wsUpgradeFailed.Add(1)
		gl.s.log.Info("closing connection: WebSocket upgrade refused", "listener", gl.spec.raw, "remote", r.RemoteAddr, "err", errNoMQTTSubprotocol)
		http.Error(w, "Bad Request: "+errNoMQTTSubprotocol.Error(), http.StatusBadRequest)
		return
	}
	remote, ticket, ok := gl.forwarded(w, r)
	if !ok {
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		ticket.Release()
		gl.s.ctr.wsUpgradeFailed.Add(1)
		gl.s.log.Info("closing connection: WebSocket upgrade failed", "listener", gl.spec.raw, "remote", remote, "err", err)
		return // Upgrade has answered with an HTTP error
	}
	user := ""
	if pc, ok := ws.NetConn().(*preludeConn); ok {
		user = pc.user
		pc.release()
	}
	_ = ws.NetConn().SetDeadline(time.Time{})
	// The handler's goroutine serves the connection; http.Server forgets
	// a hijacked connection, so Stop tracks it through goConns.
	var nc net.Conn = &wsConn{ws: ws}
	if ticket != nil {
		nc = &ticketConn{Conn: nc, t: ticket}
	}
	if !gl.s.goAdd() {
		_ = nc.Close()
		return
	}
	defer gl.s.goConns.Done()
	gl.s.ctr.goOpen.Add(1)
	defer gl.s.ctr.goOpen.Add(-1)
	gl.s.serveGo(nc, remote, user, gl.spec.raw, nil)
}

// connKey keys the request's connection in its context (ConnContext).
type connKey struct{}

// connOf returns the connection r arrived on.
func connOf(r *http.Request) net.Conn {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	return c
}

// forwarded reads the upgrade request's forwarding headers (forwarded.go)
// and returns the client's address for the broker; for a connection from
// a trusted proxy it also admits the client (bans, connection limits)
// under that address and returns its ticket, or answers 403 and returns
// ok false. Runs on the request's goroutine.
func (gl *goListener) forwarded(w http.ResponseWriter, r *http.Request) (remote string, t *broker.Ticket, ok bool) {
	s := gl.s
	remote = r.RemoteAddr
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	client, res := s.trusted.forwardedClient(r.Header, peer)
	s.ctr.forwarded[res].Add(1)
	switch res {
	case forwardUsed:
		remote = hopString(client)
	case forwardUntrusted:
		s.log.Debug("ignoring the forwarding header of a peer that is not a trusted proxy (--ws-trusted-proxies)", "listener", gl.spec.raw, "remote", remote)
	case forwardMalformed:
		s.log.Info("ignoring a trusted proxy's malformed forwarding header", "listener", gl.spec.raw, "remote", remote,
			"forwarded", r.Header.Values("Forwarded"), "x_forwarded_for", r.Header.Values("X-Forwarded-For"))
	}
	pc, _ := connOf(r).(*preludeConn)
	if pc == nil || !pc.admitLater {
		return remote, nil, true
	}
	t, err := s.b.AdmitListener(client.Addr(), gl.spec.raw)
	if err != nil {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return "", nil, false
	}
	return remote, t, true
}

// wsConn is a WebSocket connection as a byte stream: MQTT packets are not
// aligned to frames [MQTT-6.0.0-2], so reads run across message
// boundaries, and every write is one binary message.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader
}

var errNotBinary = errors.New("WebSocket text frame: MQTT is carried in binary frames only (MQTT-6.0.0-1)")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			mt, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if mt != websocket.BinaryMessage {
				// [MQTT-6.0.0-1] Any other data frame closes the connection.
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.ws.NetConn().SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
