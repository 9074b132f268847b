package httpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/internal/conf"
	"github.com/mcutie/mcutie/monitor/promtext"
)

// Config configures the plugin. Zero values take the defaults noted.
type Config struct {
	// Name labels the hook's metrics and logs (default "httpauth").
	Name string `yaml:"name"`
	// URL receives the CONNECT decisions (empty: no Connect hook).
	URL string `yaml:"url"`
	// ACLURL receives the subscribe and publish decisions (empty: no
	// ACL hooks).
	ACLURL string `yaml:"acl_url"`
	// ACLActions are the actions checked: "subscribe", "publish"
	// (default both).
	ACLActions []string `yaml:"acl_actions"`
	// Timeout bounds one HTTP request (default 3 s).
	Timeout time.Duration `yaml:"timeout"`
	// CacheTTL is how long an ACL verdict is kept (default 1 min).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the verdicts kept (default 100000).
	CacheSize int `yaml:"cache_size"`
	// Default is the ACL answer on a cache miss: "deny" (default) or
	// "allow".
	Default string `yaml:"default"`
	// Lookups is the number of background ACL lookups at once (default
	// 4); Queue bounds those waiting (default 1024).
	Lookups int `yaml:"lookups"`
	Queue   int `yaml:"queue"`
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string `yaml:"headers"`

	// Client makes the requests (default: a new http.Client); Logger
	// logs failed lookups (default slog.Default). Not from YAML.
	Client *http.Client `yaml:"-"`
	Logger *slog.Logger `yaml:"-"`
}

// Plugin is the HTTP auth/ACL hook. Create it with New.
type Plugin struct {
	cfg        Config
	provides   hooks.Events
	allowMiss  bool
	subs, pubs bool

	cache   *cache
	lookups chan lookup
	mu      sync.Mutex
	pending map[lookup]struct{} // questions queued or being asked
	stop    chan struct{}
	wg      sync.WaitGroup

	connAllow, connDeny, connErr              atomic.Uint64
	hitAllow, hitDeny, miss                   atomic.Uint64
	lookAllow, lookDeny, lookErr, lookDropped atomic.Uint64
}

type lookup struct {
	client, user, topic string
	action              action
}

var (
	_ hooks.ConnectHook   = (*Plugin)(nil)
	_ hooks.SubscribeHook = (*Plugin)(nil)
	_ hooks.PublishHook   = (*Plugin)(nil)
	_ hooks.Starter       = (*Plugin)(nil)
	_ hooks.Stopper       = (*Plugin)(nil)
)

// New checks cfg and returns the plugin; Registry.Add starts it.
func New(cfg Config) (*Plugin, error) {
	if cfg.Name == "" {
		cfg.Name = "httpauth"
	}
	if cfg.URL == "" && cfg.ACLURL == "" {
		return nil, conf.Errorf("url", "give url (CONNECT decisions), acl_url (ACL decisions) or both")
	}
	if cfg.URL != "" {
		if err := conf.CheckURL("url", cfg.URL); err != nil {
			return nil, err
		}
	}
	if cfg.ACLURL != "" {
		if err := conf.CheckURL("acl_url", cfg.ACLURL); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout < 0 || cfg.CacheTTL < 0 || cfg.CacheSize < 0 || cfg.Lookups < 0 || cfg.Queue < 0 {
		return nil, conf.Errorf("timeout", "timeout, cache_ttl, cache_size, lookups and queue must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 100000
	}
	if cfg.Lookups == 0 {
		cfg.Lookups = 4
	}
	if cfg.Queue == 0 {
		cfg.Queue = 1024
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Plugin{cfg: cfg, pending: map[lookup]struct{}{}, stop: make(chan struct{})}
	switch cfg.Default {
	case "", "deny":
	case "allow":
		p.allowMiss = true
	default:
		return nil, conf.Errorf("default", "%q: want deny or allow", cfg.Default)
	}
	if cfg.URL != "" {
		p.provides |= hooks.EventsOf(hooks.Connect)
	}
	if cfg.ACLURL != "" {
		acts := cfg.ACLActions
		if len(acts) == 0 {
			acts = []string{"subscribe", "publish"}
		}
		for i, a := range acts {
			switch a {
			case "subscribe":
				p.subs = true
				p.provides |= hooks.EventsOf(hooks.Subscribe)
			case "publish":
				p.pubs = true
				p.provides |= hooks.EventsOf(hooks.Publish)
			default:
				return nil, conf.Errorf(fmt.Sprintf("acl_actions[%d]", i), "%q: want subscribe or publish", a)
			}
		}
		p.cache = newCache(cfg.CacheSize, cfg.CacheTTL)
		p.lookups = make(chan lookup, cfg.Queue)
	}
	return p, nil
}

// Name is Config.Name.
func (p *Plugin) Name() string { return p.cfg.Name }

// Provides is Connect with URL, Subscribe and Publish with ACLURL.
func (p *Plugin) Provides() hooks.Events { return p.provides }

// Start starts the background ACL lookups.
func (p *Plugin) Start() error {
	if p.lookups == nil {
		return nil
	}
	for range p.cfg.Lookups {
		p.wg.Add(1)
		go p.lookupLoop()
	}
	return nil
}

// Stop ends the lookups (those queued are dropped).
func (p *Plugin) Stop() error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
	return nil
}

type verdict struct {
	Result string `json:"result"`
	Reason string `json:"reason"`
}

// post sends body to url and decodes the verdict: allow is true only on
// 200 with result "allow"; err is set when no verdict came (transport
// error, another status, a body that is not a verdict).
func (p *Plugin) post(ctx context.Context, url string, body any) (verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	raw, err := json.Marshal(body)
	if err != nil {
		return verdict{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return verdict{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range p.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return verdict{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return verdict{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return verdict{}, fmt.Errorf("httpauth: %s answered %s", url, resp.Status)
	}
	var v verdict
	if err := json.Unmarshal(b, &v); err != nil {
		return verdict{}, fmt.Errorf("httpauth: %s answered a body that is not a verdict: %w", url, err)
	}
	return v, nil
}

// ReasonCode maps the reason a service gives for a refused CONNECT to the
// CONNACK code (v5; the broker maps it for 3.x clients).
func ReasonCode(reason string) codec.ReasonCode {
	switch reason {
	case "banned":
		return codec.Banned
	case "bad_credentials", "bad_username_or_password":
		return codec.BadUserNameOrPassword
	case "client_id_not_valid":
		return codec.ClientIdentifierNotValid
	case "server_busy":
		return codec.ServerBusy
	case "server_unavailable":
		return codec.ServerUnavailable
	case "quota_exceeded":
		return codec.QuotaExceeded
	}
	return codec.NotAuthorized
}

// OnConnect asks URL about the CONNECT. Runs on the Registry's pool.
func (p *Plugin) OnConnect(c *hooks.Client, pk *codec.Connect) error {
	body := struct {
		ClientID string `json:"clientid"`
		Username string `json:"username"`
		Password string `json:"password"`
		Remote   string `json:"remote"`
	}{c.ID, c.Username, string(pk.Password), c.Remote}
	v, err := p.post(context.Background(), p.cfg.URL, body)
	if err != nil {
		p.connErr.Add(1)
		p.cfg.Logger.Warn("httpauth: CONNECT refused: no verdict from the service", "hook", p.cfg.Name, "client", c.ID, "err", err)
		return &codec.ReasonError{Code: codec.ServerUnavailable, Reason: "authentication service unavailable"}
	}
	if v.Result == "allow" {
		p.connAllow.Add(1)
		return nil
	}
	p.connDeny.Add(1)
	reason := v.Reason
	if reason == "" {
		reason = "denied by the authentication service"
	}
	return &codec.ReasonError{Code: ReasonCode(v.Reason), Reason: reason}
}

// errDenied refuses a SUBSCRIBE filter or drops a PUBLISH.
var errDenied = &codec.ReasonError{Code: codec.NotAuthorized, Reason: "not authorized"}

// OnSubscribe answers from the cache (see the package doc). Loop-only
// caller; safe for concurrent use.
func (p *Plugin) OnSubscribe(c *hooks.Client, s *hooks.Subscription) error {
	if !p.subs {
		return nil
	}
	return p.decide(c, s.Filter, actSubscribe)
}

// OnPublish answers from the cache for clients' messages and wills;
// messages from the server pass. Safe for concurrent use.
func (p *Plugin) OnPublish(m *hooks.Message) (*hooks.Message, error) {
	if !p.pubs || m.Client == nil || (m.Origin != hooks.FromClient && m.Origin != hooks.FromWill) {
		return nil, nil
	}
	return nil, p.decide(m.Client, m.Topic, actPublish)
}

func (p *Plugin) decide(c *hooks.Client, topic []byte, a action) error {
	if allow, ok := p.cache.get(c.ID, topic, a, time.Now()); ok {
		if allow {
			p.hitAllow.Add(1)
			return nil
		}
		p.hitDeny.Add(1)
		return errDenied
	}
	p.miss.Add(1)
	p.ask(lookup{client: c.ID, user: c.Username, topic: string(topic), action: a})
	if p.allowMiss {
		return nil
	}
	return errDenied
}

// ask queues a lookup unless the same one is pending; never blocks.
func (p *Plugin) ask(q lookup) {
	p.mu.Lock()
	if _, ok := p.pending[q]; ok {
		p.mu.Unlock()
		return
	}
	select {
	case p.lookups <- q:
		p.pending[q] = struct{}{}
	default:
		p.lookDropped.Add(1)
	}
	p.mu.Unlock()
}

func (p *Plugin) lookupLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case q := <-p.lookups:
			p.resolve(q)
		}
	}
}

// resolve asks the service about q and caches the verdict.
func (p *Plugin) resolve(q lookup) {
	defer func() {
		p.mu.Lock()
		delete(p.pending, q)
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	body := struct {
		ClientID string `json:"clientid"`
		Username string `json:"username"`
		Topic    string `json:"topic"`
		Action   string `json:"action"`
	}{q.client, q.user, q.topic, q.action.String()}
	v, err := p.post(ctx, p.cfg.ACLURL, body)
	if err != nil {
		p.lookErr.Add(1)
		p.cfg.Logger.Warn("httpauth: ACL lookup failed; nothing cached", "hook", p.cfg.Name, "client", q.client, "topic", q.topic, "action", q.action.String(), "err", err)
		return
	}
	allow := v.Result == "allow"
	if allow {
		p.lookAllow.Add(1)
	} else {
		p.lookDeny.Add(1)
	}
	p.cache.put(q.client, q.topic, q.action, allow, time.Now())
}

// Lookup asks the ACL service now, caches the verdict and returns it:
// what the background lookup does, for callers off the loop (a client
// about to subscribe, tests). Safe for concurrent use.
func (p *Plugin) Lookup(clientID, username, topic, act string) (bool, error) {
	var a action
	switch act {
	case "subscribe":
		a = actSubscribe
	case "publish":
		a = actPublish
	default:
		return false, errors.New("httpauth: action must be subscribe or publish")
	}
	if p.cache == nil {
		return false, errors.New("httpauth: no acl_url")
	}
	v, err := p.post(context.Background(), p.cfg.ACLURL, struct {
		ClientID string `json:"clientid"`
		Username string `json:"username"`
		Topic    string `json:"topic"`
		Action   string `json:"action"`
	}{clientID, username, topic, act})
	if err != nil {
		return false, err
	}
	allow := v.Result == "allow"
	p.cache.put(clientID, topic, a, allow, time.Now())
	return allow, nil
}

// The plugin's metric families (docs/hooks.md, docs/observability.md).
var (
	mConnectChecks = promtext.Counter("mcutie_httpauth_connect_checks_total", "CONNECT decisions of an httpauth plugin, by result: allow, deny, error (the endpoint failed: refused).")
	mACLChecks     = promtext.Counter("mcutie_httpauth_acl_checks_total", "ACL checks of an httpauth plugin against its cache, by result: hit_allow, hit_deny, miss.")
	mLookups       = promtext.Counter("mcutie_httpauth_lookups_total", "ACL lookups an httpauth plugin sent to its endpoint, by result: allow, deny, error, dropped (queue full).")
	mCacheEntries  = promtext.Gauge("mcutie_httpauth_cache_entries", "Entries in an httpauth plugin's ACL cache.")
)

// WriteMetrics writes the plugin's counters in Prometheus text format.
// Safe for concurrent use.
func (p *Plugin) WriteMetrics(w io.Writer) {
	n := p.cfg.Name
	res := func(f promtext.Family, result string, v uint64) {
		f.Sample(w, promtext.Labels("hook", n, "result", result), v)
	}
	if p.provides.Has(hooks.Connect) {
		mConnectChecks.Header(w)
		res(mConnectChecks, "allow", p.connAllow.Load())
		res(mConnectChecks, "deny", p.connDeny.Load())
		res(mConnectChecks, "error", p.connErr.Load())
	}
	if p.cache != nil {
		mACLChecks.Header(w)
		res(mACLChecks, "hit_allow", p.hitAllow.Load())
		res(mACLChecks, "hit_deny", p.hitDeny.Load())
		res(mACLChecks, "miss", p.miss.Load())
		mLookups.Header(w)
		res(mLookups, "allow", p.lookAllow.Load())
		res(mLookups, "deny", p.lookDeny.Load())
		res(mLookups, "error", p.lookErr.Load())
		res(mLookups, "dropped", p.lookDropped.Load())
		mCacheEntries.Header(w)
		mCacheEntries.Sample(w, promtext.Labels("hook", n), uint64(p.cache.len()))
	}
}
