package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mcutie/mcutie/monitor/promtext"
)

// Check is one readiness condition. Fn returns nil when the condition
// holds; it must return once ctx is done.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configures the endpoint.
type Options struct {
	Addr         string        // host:port to listen on
	Checks       []Check       // readiness conditions, all required
	CheckTimeout time.Duration // per /readyz request; default 2s
	// Writers add metrics to /metrics after the default set, the sets
	// registered with metrics.RegisterSet and the process metrics (e.g.
	// broker.WriteMetrics). Each must be safe for concurrent use.
	Writers []func(io.Writer)
	// Sets are metric sets written too (e.g. a store's), without
	// registering them globally.
	Sets []*metrics.Set
}

// Server is the HTTP endpoint. Start and Shutdown are safe for concurrent
// use with the requests it serves.
type Server struct {
	opts  Options
	ln    net.Listener
	srv   *http.Server
	extra []func(*http.ServeMux)
}

// Handle adds handlers to the endpoint's mux (e.g. /debug/pprof/ with
// mcutie --pprof). Call it before Start.
func (s *Server) Handle(register func(*http.ServeMux)) {
	s.extra = append(s.extra, register)
}

// New returns a server for o; call Start. It turns on
// github.com/VictoriaMetrics/metrics' HELP and TYPE lines for the whole
// process (metrics.ExposeMetadata), so the runtime metrics and any set
// registered there are typed too.
func New(o Options) *Server {
	metrics.ExposeMetadata(true)
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 2 * time.Second
	}
	return &Server{opts: o}
}

// Handler serves /metrics, /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = promtext.Merge(w, s.WriteMetrics(nil))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", s.readyz)
	for _, register := range s.extra {
		register(mux)
	}
	return mux
}

// WriteMetrics appends every metric /metrics serves to buf and returns it,
// as the writers wrote it (the handler then groups each family under one
// HELP and TYPE with promtext.Merge): the default set and the sets
// registered with metrics.RegisterSet, the Go runtime and process metrics
// (open and maximum file descriptors included), Options.Sets and
// Options.Writers.
func (s *Server) WriteMetrics(buf []byte) []byte {
	b := bytes.NewBuffer(buf)
	metrics.WritePrometheus(b, true)
	metrics.WriteFDMetrics(b)
	for _, s := range s.opts.Sets {
		s.WritePrometheus(b)
	}
	for _, f := range s.opts.Writers {
		f(b)
	}
	return b.Bytes()
}

// Ready runs every check and joins the failures (nil: ready).
func (s *Server) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
	defer cancel()
	var errs []error
	for _, c := range s.opts.Checks {
		if err := c.Fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n" + strings.TrimSpace(err.Error()) + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Start listens on Options.Addr and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("monitor: cannot listen on %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the server, waiting for requests in progress until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}
