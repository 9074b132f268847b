package httpauth

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// service is an auth service: users "ann" (password "pw") and "banned";
// ann may use topics under "ann/", subscribe only to "ann/#"-covered
// filters; "slow/…" topics take 300 ms.
type service struct {
	mu       sync.Mutex
	bodies   []map[string]string
	aclCalls atomic.Int64
}

func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, result, reason string) {
		_ = json.NewEncoder(w).Encode(map[string]string{"result": result, "reason": reason})
	}
	read := func(r *http.Request) map[string]string {
		var m map[string]string
		_ = json.NewDecoder(r.Body).Decode(&m)
		s.mu.Lock()
		s.bodies = append(s.bodies, m)
		s.mu.Unlock()
		return m
	}
	mux.HandleFunc("/connect", func(w http.ResponseWriter, r *http.Request) {
		m := read(r)
		switch {
		case m["username"] == "ann" && m["password"] == "pw":
			reply(w, "allow", "")
		case m["username"] == "banned":
			reply(w, "deny", "banned")
		case m["username"] == "broken":
			http.Error(w, "oops", http.StatusInternalServerError)
		default:
			reply(w, "deny", "bad_credentials")
		}
	})
	mux.HandleFunc("/acl", func(w http.ResponseWriter, r *http.Request) {
		s.aclCalls.Add(1)
		m := read(r)
		if len(m["topic"]) > 5 && m["topic"][:5] == "slow/" {
			time.Sleep(300 * time.Millisecond)
		}
		if m["username"] == "ann" && len(m["topic"]) >= 4 && m["topic"][:4] == "ann/" {
			reply(w, "allow", "")
			return
		}
		if m["topic"] == "broken" {
			http.Error(w, "oops", http.StatusBadGateway)
			return
		}
		reply(w, "deny", "")
	})
	return mux
}

func newPlugin(t *testing.T, cfg Config) (*Plugin, *service) {
	t.Helper()
	s := &service{}
	srv := httptest.NewServer(s.handler())
	t.Cleanup(srv.Close)
	if cfg.URL == "" {
		cfg.URL = srv.URL + "/connect"
	}
	if cfg.ACLURL == "" {
		cfg.ACLURL = srv.URL + "/acl"
	}
	cfg.Logger = quiet()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p, s
}

func TestConnect(t *testing.T) {
	p, s := newPlugin(t, Config{})
	f := func(user, pass string, want codec.ReasonCode) {
		t.Helper()
		err := p.OnConnect(&hooks.Client{ID: "c1", Username: user, HasUsername: true, Remote: "127.0.0.1:5000"}, &codec.Connect{Password: []byte(pass)})
		got := codec.Success
		if err != nil {
			got = codec.AsReasonError(err).Code
		}
		if got != want {
			t.Fatalf("user %q: code %#x; want %#x (%v)", user, got, want, err)
		}
	}
	f("ann", "pw", codec.Success)
	f("ann", "nope", codec.BadUserNameOrPassword)
	f("banned", "", codec.Banned)
	f("broken", "", codec.ServerUnavailable)
	s.mu.Lock()
	first := s.bodies[0]
	s.mu.Unlock()
	want := map[string]string{"clientid": "c1", "username": "ann", "password": "pw", "remote": "127.0.0.1:5000"}
	for k, v := range want {
		if first[k] != v {
			t.Fatalf("body %v; want %v", first, want)
		}
	}
}

// A service that does not answer within Timeout refuses the CONNECT.
func TestConnectTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(500 * time.Millisecond):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	p, err := New(Config{URL: srv.URL, Timeout: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.OnConnect(&hooks.Client{ID: "x"}, &codec.Connect{})
	if re := codec.AsReasonError(err); re == nil || re.Code != codec.ServerUnavailable {
		t.Fatalf("got %v; want 0x88", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

// waitCached waits until the background lookup has filled the cache.
func waitCached(t *testing.T, p *Plugin, client, topic string, a action) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if allow, ok := p.cache.get(client, []byte(topic), a, time.Now()); ok {
			return allow
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no verdict cached for %s %s %s", client, topic, a)
	return false
}

// On a miss the hook answers the default at once and the lookup fills the
// cache; the next question is answered from it.
func TestACLMissThenCached(t *testing.T) {
	p, s := newPlugin(t, Config{})
	ann := &hooks.Client{ID: "c1", Username: "ann"}
	sub := &hooks.Subscription{Filter: []byte("ann/t")}
	if err := p.OnSubscribe(ann, sub); err == nil {
		t.Fatal("a miss allowed; the default is deny")
	}
	if !waitCached(t, p, "c1", "ann/t", actSubscribe) {
		t.Fatal("ann/t cached as deny")
	}
	if err := p.OnSubscribe(ann, sub); err != nil {
		t.Fatalf("after the lookup: %v", err)
	}
	m := &hooks.Message{Topic: []byte("other/t"), Origin: hooks.FromClient, Client: ann}
	if _, err := p.OnPublish(m); err == nil {
		t.Fatal("a publish miss allowed")
	}
	if waitCached(t, p, "c1", "other/t", actPublish) {
		t.Fatal("other/t cached as allow")
	}
	if _, err := p.OnPublish(m); err == nil {
		t.Fatal("a cached deny allowed")
	}
	// Messages from the server are not checked.
	if _, err := p.OnPublish(&hooks.Message{Topic: []byte("other/t"), Origin: hooks.FromServer}); err != nil {
		t.Fatal(err)
	}
	if n := s.aclCalls.Load(); n != 2 {
		t.Fatalf("%d ACL requests; want 2", n)
	}
}

// Default "allow" lets a miss through; a pending question is asked once;
// the loop never waits on a slow service.
func TestACLDefaultAllowNeverBlocks(t *testing.T) {
	p, s := newPlugin(t, Config{Default: "allow"})
	c := &hooks.Client{ID: "c2", Username: "bob"}
	start := time.Now()
	for range 100 {
		if _, err := p.OnPublish(&hooks.Message{Topic: []byte("slow/x"), Origin: hooks.FromClient, Client: c}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("100 misses took %v: the hook waited on the service", d)
	}
	if waitCached(t, p, "c2", "slow/x", actPublish) {
		t.Fatal("slow/x cached as allow for bob")
	}
	if n := s.aclCalls.Load(); n != 1 {
		t.Fatalf("%d ACL requests for one pending question; want 1", n)
	}
	if _, err := p.OnPublish(&hooks.Message{Topic: []byte("slow/x"), Origin: hooks.FromClient, Client: c}); err == nil {
		t.Fatal("the cached deny did not apply")
	}
}

// A failed lookup caches nothing; the next miss asks again.
func TestACLLookupError(t *testing.T) {
	p, s := newPlugin(t, Config{})
	c := &hooks.Client{ID: "c3"}
	_ = p.OnSubscribe(c, &hooks.Subscription{Filter: []byte("broken")})
	deadline := time.Now().Add(5 * time.Second)
	for p.lookErr.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.lookErr.Load() != 1 {
		t.Fatal("the failed lookup was not counted")
	}
	if _, ok := p.cache.get("c3", []byte("broken"), actSubscribe, time.Now()); ok {
		t.Fatal("a failed lookup was cached")
	}
	for s.aclCalls.Load() < 2 && time.Now().Before(deadline) {
		_ = p.OnSubscribe(c, &hooks.Subscription{Filter: []byte("broken")})
		time.Sleep(10 * time.Millisecond)
	}
	if s.aclCalls.Load() < 2 {
		t.Fatal("the next miss did not ask again")
	}
}

func TestCacheTTLAndBound(t *testing.T) {
	c := newCache(64, time.Second)
	now := time.Unix(1000, 0)
	c.put("a", "t", actPublish, true, now)
	if allow, ok := c.get("a", []byte("t"), actPublish, now.Add(999*time.Millisecond)); !ok || !allow {
		t.Fatal("fresh entry not found")
	}
	if _, ok := c.get("a", []byte("t"), actPublish, now.Add(time.Second)); ok {
		t.Fatal("expired entry found")
	}
	if _, ok := c.get("a", []byte("t"), actSubscribe, now); ok {
		t.Fatal("another action found")
	}
	if _, ok := c.get("b", []byte("t"), actPublish, now); ok {
		t.Fatal("another client found")
	}
	for i := range 10000 {
		c.put("a", string(rune('a'+i%26))+time.Duration(i).String(), actPublish, true, now)
	}
	if n := c.len(); n > 64 {
		t.Fatalf("%d entries; bound 64", n)
	}
}

// A cache hit on the loop allocates nothing.
func TestHitAllocs(t *testing.T) {
	p, _ := newPlugin(t, Config{})
	p.cache.put("c1", "ann/t", actPublish, true, time.Now())
	m := &hooks.Message{Topic: []byte("ann/t"), Origin: hooks.FromClient, Client: &hooks.Client{ID: "c1"}}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := p.OnPublish(m); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per hit", n)
	}
}

func TestConfigErrors(t *testing.T) {
	f := func(cfg Config, path string) {
		t.Helper()
		_, err := New(cfg)
		fe, ok := err.(interface{ FieldPath() string })
		if !ok || fe.FieldPath() != path {
			t.Fatalf("New(%+v): %v; want an error on %s", cfg, err, path)
		}
	}
	f(Config{}, "url")
	f(Config{URL: "ftp://x"}, "url")
	f(Config{ACLURL: "nope"}, "acl_url")
	f(Config{URL: "http://x", Default: "maybe"}, "default")
	f(Config{ACLURL: "http://x", ACLActions: []string{"publish", "read"}}, "acl_actions[1]")
}
