package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor/promtext"
)

// OpenAPI is the API's OpenAPI 3 document, served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Prefix is the path every API endpoint starts with.
const Prefix = "/api/v1/"

// Defaults of Options.
const (
	DefaultPageSize     = 50
	DefaultMaxPageSize  = 500
	DefaultQueryTimeout = 5 * time.Second
	DefaultMaxBodyBytes = 4 << 20
)

// Listener describes one listener of the process for GET /api/v1/listeners.
type Listener struct {
	// Kind is tcp, tls, ws, wss (MQTT), metrics or admin.
	Kind string
	// Address is the bound host:port; URL the listener as configured.
	Address, URL string
	// Proxy: the listener expects a PROXY protocol header.
	Proxy bool
}

// Setting is one effective configuration setting for GET /api/v1/config.
type Setting struct {
	Name, Value, Default string
	// Changed: set by a flag, the config file or the environment.
	Changed bool
	// Secret: Value is masked.
	Secret bool
}

// Options configures the API.
type Options struct {
	Broker *broker.Broker
	// Token is the bearer token every request must carry; empty: none
	// (allowed only on a loopback-only listener: see Exposed).
	Token  string
	Logger *slog.Logger
	// Version is the server's version, reported by GET /api/v1/stats.
	Version string
	// Listeners and Config feed GET /api/v1/listeners and /config; nil:
	// empty lists. Config's secrets must already be masked.
	Listeners func() []Listener
	Config    func() []Setting
	// DefaultPageSize is the limit of a list request that gives none;
	// MaxPageSize the largest limit accepted (400 beyond).
	DefaultPageSize, MaxPageSize int
	// QueryTimeout bounds the wait for the broker's loops (503 beyond).
	QueryTimeout time.Duration
	// MaxBodyBytes bounds a request body (400 beyond).
	MaxBodyBytes int64
}

// API serves the management endpoints. Safe for concurrent use.
type API struct {
	o      Options
	b      *broker.Broker
	log    *slog.Logger
	token  [sha256.Size]byte
	routes []route

	rates   rateSampler
	reqs    [6]atomic.Uint64 // by status class: 1xx..5xx (index 1..5)
	reqTime *promtext.Histogram
}

// route is one endpoint: documented in openapi.yaml, registered on the mux.
type route struct {
	method, pattern string
	h               func(w http.ResponseWriter, r *http.Request) (int, any)
}

// New returns the API for o.
func New(o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxPageSize <= 0 {
		o.MaxPageSize = DefaultMaxPageSize
	}
	if o.DefaultPageSize <= 0 {
		o.DefaultPageSize = min(DefaultPageSize, o.MaxPageSize)
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	a := &API{o: o, b: o.Broker, log: o.Logger, reqTime: promtext.NewHistogram(promtext.ExponentialBounds(0.0001, 4, 9)...)}
	a.token = sha256.Sum256([]byte(o.Token))
	a.routes = []route{
		{"GET", "/api/v1/stats", a.stats},
		{"GET", "/api/v1/clients", a.listClients},
		{"GET", "/api/v1/clients/{id}", a.getClient},
		{"DELETE", "/api/v1/clients/{id}", a.deleteClient},
		{"GET", "/api/v1/subscriptions", a.listSubscriptions},
		{"GET", "/api/v1/retained", a.listRetained},
		{"GET", "/api/v1/retained/{topic...}", a.getRetained},
		{"DELETE", "/api/v1/retained/{topic...}", a.deleteRetained},
		{"POST", "/api/v1/publish", a.publish},
		{"GET", "/api/v1/bans", a.listBans},
		{"POST", "/api/v1/bans", a.addBan},
		{"DELETE", "/api/v1/bans", a.removeBan},
		{"GET", "/api/v1/delayed", a.listDelayed},
		{"DELETE", "/api/v1/delayed/{id}", a.deleteDelayed},
		{"GET", "/api/v1/listeners", a.listeners},
		{"GET", "/api/v1/config", a.config},
		{"GET", "/api/v1/openapi.yaml", nil}, // raw YAML, served by openapi
	}
	return a
}

// Register adds the API's handlers to mux: every endpoint under
// /api/v1/, a JSON 405 for a known path with another method, and a JSON
// 404 for any other path under /api/v1/. The rest of mux (a dashboard at
// /, /metrics) is left alone.
func (a *API) Register(mux *http.ServeMux) {
	methods := map[string][]string{}
	var paths []string
	for _, rt := range a.routes {
		if _, ok := methods[rt.pattern]; !ok {
			paths = append(paths, rt.pattern)
		}
		methods[rt.pattern] = append(methods[rt.pattern], rt.method)
		if rt.h == nil {
			mux.Handle(rt.method+" "+rt.pattern, a.wrap(http.HandlerFunc(a.openapi)))
			continue
		}
		mux.Handle(rt.method+" "+rt.pattern, a.wrap(a.jsonHandler(rt.h)))
	}
	for _, p := range paths {
		allow := strings.Join(methods[p], ", ")
		if strings.Contains(allow, "GET") {
			allow += ", HEAD"
		}
		mux.Handle(p, a.wrap(a.jsonHandler(func(w http.ResponseWriter, _ *http.Request) (int, any) {
			w.Header().Set("Allow", allow)
			return errorf(http.StatusMethodNotAllowed, "method not allowed: use %s", allow)
		})))
	}
	notFound := a.wrap(a.jsonHandler(func(_ http.ResponseWriter, r *http.Request) (int, any) {
		return errorf(http.StatusNotFound, "no such endpoint %s: see /api/v1/openapi.yaml for the paths", r.URL.Path)
	}))
	mux.Handle(Prefix, notFound)
	mux.Handle(strings.TrimSuffix(Prefix, "/"), notFound) // not the mux's redirect to Prefix
}

// Handler is a mux holding only the API (Register).
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	a.Register(mux)
	return mux
}

// errBody is every error's JSON.
type errBody struct {
	Error string `json:"error"`
}

func errorf(code int, format string, args ...any) (int, any) {
	return code, errBody{Error: fmt.Sprintf(format, args...)}
}

// jsonHandler writes what h returns as JSON with its status.
func (a *API) jsonHandler(h func(w http.ResponseWriter, r *http.Request) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		code, body := h(w, r)
		writeJSON(w, code, body)
	}
}

func (a *API) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// wrap checks the token, recovers a panic into a 500 (a bug: logged
// with its value), logs and counts the request.
func (a *API) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				a.log.Error("admin: BUG: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				if sw.code == 0 {
					writeJSON(sw, http.StatusInternalServerError, errBody{Error: "internal error (logged): please report it"})
				}
			}
			d := time.Since(start)
			a.reqs[min(max(sw.code/100, 0), 5)].Add(1)
			a.reqTime.Observe(d.Seconds())
			a.log.Info("admin request", "method", r.Method, "path", r.URL.Path, "status", sw.code,
				"duration", d, "remote", r.RemoteAddr)
		}()
		if !a.authorized(r) {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="mcutie"`)
			writeJSON(sw, http.StatusUnauthorized, errBody{Error: "missing or wrong bearer token: send the header Authorization: Bearer <token> (--admin-token, --admin-token-file or MCUTIE_ADMIN_TOKEN)"})
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, a.o.MaxBodyBytes)
		h.ServeHTTP(sw, r)
	})
}

// authorized reports whether r carries the token (always, when none is
// configured). The comparison is of SHA-256 digests in constant time: it
// leaks neither the token's bytes nor its length.
func (a *API) authorized(r *http.Request) bool {
	if a.o.Token == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	const scheme = "Bearer "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(scheme):])))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

var (
	mRequests       = promtext.Counter("mcutie_admin_requests_total", "Management API requests, by status class.")
	mRequestSeconds = promtext.HistogramFamily("mcutie_admin_request_duration_seconds", "Management API request latency.")
)

// WriteMetrics writes the API's metrics in Prometheus text format:
// mcutie_admin_requests_total{class="2xx"} and
// mcutie_admin_request_duration_seconds. Safe for concurrent use.
func (a *API) WriteMetrics(w io.Writer) {
	mRequests.Header(w)
	for c := 1; c <= 5; c++ {
		mRequests.Sample(w, promtext.Labels("class", strconv.Itoa(c)+"xx"), a.reqs[c].Load())
	}
	mRequestSeconds.Header(w)
	mRequestSeconds.Histogram(w, "", a.reqTime)
}

// rateSampler turns the broker's counters into per-second rates between
// two GET /stats at least a second apart (the last rates are reported in
// between).
type rateSampler struct {
	mu        sync.Mutex
	at        time.Time
	hasSample bool
	last      [5]uint64  // messages in, out, bytes in, out, dropped
	rates     [5]float64 // per second, between the last two samples
}

// sample records the counters cur at now and returns the rates.
func (s *rateSampler) sample(now time.Time, cur [5]uint64) [5]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasSample {
		d := now.Sub(s.at).Seconds()
		if d < 1 {
			return s.rates
		}
		for i := range cur {
			s.rates[i] = 0
			if cur[i] >= s.last[i] {
				s.rates[i] = float64(cur[i]-s.last[i]) / d
			}
		}
	}
	s.at, s.last, s.hasSample = now, cur, true
	return s.rates
}
