package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/mcutie/mcutie/admin"
	"github.com/mcutie/mcutie/admin/ui"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor"
	"github.com/mcutie/mcutie/reactor"
)

// adminConfig holds the --admin-* flags: the management API (package
// admin, docs/admin.md). Off unless --admin or --admin-listen is given.
type adminConfig struct {
	on          bool
	listen      string
	token       string
	tokenFile   string
	maxPageSize int

	api *admin.API
	srv *admin.Server   // its own listener (--admin-listen); nil on --metrics-listen
	mon *monitor.Server // the metrics endpoint, for GET /api/v1/listeners
	// listeners is what GET /api/v1/listeners answers, set once the
	// listeners are bound (started); empty before.
	listeners *atomic.Pointer[[]admin.Listener]
}

// adminTokenEnv is --admin-token's environment variable (every flag has
// one, config.go): a token there does not show in ps.
var adminTokenEnv = envName("admin-token")

func adminFlags(fs *flag.FlagSet, c *adminConfig) {
	fs.BoolVar(&c.on, "admin", false, "serve the management API (/api/v1/..., docs/admin.md) on --metrics-listen, or on --admin-listen when given")
	fs.StringVar(&c.listen, "admin-listen", "", "address of a listener of its own for the management API (turns it on; empty: on --metrics-listen with --admin)")
	fs.StringVar(&c.token, "admin-token", "", "bearer token the management API requires; prefer --admin-token-file or the "+adminTokenEnv+" environment variable, which ps does not show (required unless the API's listener is loopback-only)")
	fs.StringVar(&c.tokenFile, "admin-token-file", "", "file holding the management API's bearer token (one line)")
	fs.IntVar(&c.maxPageSize, "admin-max-page-size", admin.DefaultMaxPageSize, "largest page (limit) a management API list returns; a larger limit is refused with 400")
}

// enabled reports whether the management API is on.
func (c *adminConfig) enabled() bool { return c.on || c.listen != "" }

// readToken returns the token from --admin-token (or its environment
// variable) or --admin-token-file; both is an error.
func (c *adminConfig) readToken() (string, error) {
	if c.token != "" && c.tokenFile != "" {
		return "", fmt.Errorf("give --admin-token (or %s) or --admin-token-file, not both", adminTokenEnv)
	}
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--admin-token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("--admin-token-file %s is empty", c.tokenFile)
		}
		return t, nil
	}
	return c.token, nil
}

// setupAdmin builds the management API when it is on, refuses to serve
// it without a token on a listener that is not loopback-only, and binds
// --admin-listen (a busy port stops the start, as --metrics-listen's
// does); on --metrics-listen startMonitor mounts it (attach). code is the
// exit code when it cannot (-1: go on).
func setupAdmin(cfg *config, fs *flag.FlagSet, b *broker.Broker, log *slog.Logger) (code int) {
	c := &cfg.admin
	if !c.enabled() {
		return -1
	}
	token, err := c.readToken()
	if err != nil {
		log.Error("management API", "err", err)
		return 2
	}
	addr := c.listen
	if addr == "" {
		if cfg.metricsListen == "" {
			log.Error("--admin needs --metrics-listen or --admin-listen to serve on")
			return 2
		}
		addr = cfg.metricsListen
	}
	if err := admin.CheckExposure(addr, token); err != nil {
		log.Error("management API not started; not starting", "err", err)
		return 2
	}
	if c.maxPageSize < 1 {
		log.Error("--admin-max-page-size must be at least 1")
		return 2
	}
	c.listeners = new(atomic.Pointer[[]admin.Listener])
	c.api = admin.New(admin.Options{
		Broker: b, Token: token, Logger: log, Version: version, MaxPageSize: c.maxPageSize,
		MaxBodyBytes: int64(max(cfg.opts.MaxPacketSize, 64<<10))*2 + 64<<10, // a base64 payload of the largest packet
		Listeners:    c.listenersNow,
		Config:       func() []admin.Setting { return flagSettings(fs) },
	})
	cfg.hookMetrics = append(cfg.hookMetrics, c.api.WriteMetrics)
	if c.listen != "" {
		mux := http.NewServeMux()
		c.register(mux)
		s, err := admin.Listen(c.listen, mux)
		if err != nil {
			log.Error("cannot serve the management API (--admin-listen); not starting", "addr", c.listen, "err", err)
			return 1
		}
		c.srv = s
	}
	log.Info("management API on", "addr", addr, "token", token != "")
	return -1
}

func (c *adminConfig) listenersNow() []admin.Listener {
	if l := c.listeners.Load(); l != nil {
		return *l
	}
	return nil
}

// started records the bound listeners once srv has started (its Addrs
// are not safe to read before).
func (c *adminConfig) started(cfg *config, srv *reactor.Server) {
	if c.api != nil {
		l := listenersOf(cfg, srv)
		c.listeners.Store(&l)
	}
}

// attach mounts the API on the metrics endpoint when it has no listener
// of its own. Call before mon.Start.
func (c *adminConfig) attach(mon *monitor.Server) {
	c.mon = mon
	if c.api != nil && c.srv == nil {
		mon.Handle(c.register)
	}
}

// register mounts the API under /api/v1/ and the web dashboard (package
// admin/ui, docs/admin.md#dashboard) at / of mux.
func (c *adminConfig) register(mux *http.ServeMux) {
	c.api.Register(mux)
	mux.Handle("/", ui.Handler())
}

// shutdown stops --admin-listen's listener.
func (c *adminConfig) shutdown(ctx context.Context) {
	if c.srv != nil {
		_ = c.srv.Shutdown(ctx)
	}
}

// listenersOf describes the MQTT listeners (bound addresses in
// --listen's order), the metrics endpoint and the admin listener.
func listenersOf(cfg *config, srv *reactor.Server) []admin.Listener {
	var out []admin.Listener
	addrs := srv.Addrs()
	for i, l := range cfg.listen {
		li := admin.Listener{Kind: "tcp", URL: l}
		if u, err := url.Parse(l); err == nil && u.Host != "" {
			li.Kind = u.Scheme
			if v := u.Query().Get("proxy"); v != "" {
				li.Proxy, _ = strconv.ParseBool(v)
			}
		}
		if i < len(addrs) {
			li.Address = addrs[i].String()
		}
		out = append(out, li)
	}
	if m := cfg.admin.mon; m != nil {
		out = append(out, admin.Listener{Kind: "metrics", Address: m.Addr(), URL: "http://" + m.Addr()})
	}
	if s := cfg.admin.srv; s != nil {
		out = append(out, admin.Listener{Kind: "admin", Address: s.Addr(), URL: "http://" + s.Addr()})
	}
	return out
}

// secretFlag reports whether a flag's value must not be shown: tokens
// and passwords (a file holding one is only a path).
func secretFlag(name string) bool {
	return strings.HasSuffix(name, "token") || strings.HasSuffix(name, "password") || strings.Contains(name, "secret")
}

// flagSettings is every flag's effective value, secrets masked.
func flagSettings(fs *flag.FlagSet) []admin.Setting {
	changed := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { changed[f.Name] = true })
	var out []admin.Setting
	fs.VisitAll(func(f *flag.Flag) {
		s := admin.Setting{Name: f.Name, Value: f.Value.String(), Default: f.DefValue, Changed: changed[f.Name]}
		if secretFlag(f.Name) {
			s.Secret = true
			if s.Value != "" {
				s.Value = "********"
			}
		}
		out = append(out, s)
	})
	return out
}
