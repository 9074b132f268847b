package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ErrTokenRequired is CheckExposure's refusal: an API without a token on
// a listener other hosts can reach would give anyone control of the
// broker.
var ErrTokenRequired = errors.New("admin: a bearer token is required on a listener that is not loopback-only: give --admin-token, --admin-token-file or MCUTIE_ADMIN_TOKEN, or listen on 127.0.0.1")

// LoopbackOnly reports whether addr (host:port) takes connections from
// this host only: a loopback IP or "localhost". An empty host (":9100")
// listens on every interface.
func LoopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckExposure refuses an empty token on a listener that is not
// loopback-only (the rule anonymous MQTT access follows by default).
func CheckExposure(addr, token string) error {
	if token == "" && !LoopbackOnly(addr) {
		return fmt.Errorf("%w (listener %s)", ErrTokenRequired, addr)
	}
	return nil
}

// Server is the API's own HTTP listener (--admin-listen).
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr and serves h on it until Shutdown. Slow clients are
// bounded by header, read and idle timeouts.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the bound address (the port chosen for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the listener and waits for requests in progress, or
// for ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
