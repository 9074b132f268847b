package webhook

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

// sink is a webhook endpoint recording each batch; it fails the first
// failFirst requests with 503, and waits on gate when set.
type sink struct {
	mu        sync.Mutex
	batches   [][]map[string]any
	requests  atomic.Int64
	failFirst int64
	gate      chan struct{}
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if n <= s.failFirst {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var b []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.batches = append(s.batches, b)
	s.mu.Unlock()
}

func (s *sink) events() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []map[string]any
	for _, b := range s.batches {
		all = append(all, b...)
	}
	return all
}

func (s *sink) waitEvents(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev := s.events()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events arrived; want %d", len(ev), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newPlugin(t *testing.T, s *sink, cfg Config) *Plugin {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL
	cfg.Logger = quiet()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

var ann = &hooks.Client{ID: "c1", Username: "ann", Remote: "127.0.0.1:4000", Version: codec.V5}

// A full batch goes at once, as one JSON array, in the documented format.
func TestBatchBySize(t *testing.T) {
	s := &sink{}
	p := newPlugin(t, s, Config{BatchSize: 3, Interval: time.Hour, IncludePayload: true})
	p.OnConnected(ann, true)
	p.OnSubscribed(ann, []byte("a/#"), 1)
	if _, err := p.OnPublish(&hooks.Message{Topic: []byte("a/b"), Payload: []byte("hi"), QoS: 1, Origin: hooks.FromClient, Client: ann}); err != nil {
		t.Fatal(err)
	}
	ev := s.waitEvents(t, 3)
	if len(s.batches) != 1 {
		t.Fatalf("%d batches; want 1", len(s.batches))
	}
	f := func(i int, k string, want any) {
		t.Helper()
		if ev[i][k] != want {
			t.Fatalf("event %d: %s = %#v; want %#v (%v)", i, k, ev[i][k], want, ev[i])
		}
	}
	f(0, "event", "connected")
	f(0, "clientid", "c1")
	f(0, "username", "ann")
	f(0, "remote", "127.0.0.1:4000")
	f(0, "protocol", 5.0)
	f(0, "session_present", true)
	f(1, "event", "subscribed")
	f(1, "topic", "a/#")
	f(1, "qos", 1.0)
	f(2, "event", "published")
	f(2, "topic", "a/b")
	f(2, "origin", "client")
	f(2, "payload", "aGk=")
	f(2, "retain", false)
	if _, ok := ev[0]["qos"]; ok {
		t.Fatal("connected has a qos")
	}
}

// A batch that does not fill goes Interval after its first event.
func TestBatchByInterval(t *testing.T) {
	s := &sink{}
	p := newPlugin(t, s, Config{BatchSize: 100, Interval: 50 * time.Millisecond})
	start := time.Now()
	p.OnSessionCreated("c1")
	p.OnSessionTerminated("c1", hooks.SessionExpired)
	ev := s.waitEvents(t, 2)
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("sent after %v, before the interval", d)
	}
	if ev[1]["event"] != "session_terminated" || ev[1]["reason"] != "expired" {
		t.Fatalf("got %v", ev[1])
	}
}

// A failing endpoint is retried with backoff until it answers.
func TestRetryBackoff(t *testing.T) {
	s := &sink{failFirst: 2}
	p := newPlugin(t, s, Config{BatchSize: 1, Backoff: 20 * time.Millisecond, Retries: 3})
	start := time.Now()
	p.OnUnsubscribed(ann, []byte("x"))
	s.waitEvents(t, 1)
	if d := time.Since(start); d < 60*time.Millisecond { // 20 + 40
		t.Fatalf("delivered after %v: no backoff", d)
	}
	// Sent is counted once the endpoint's answer is read, a moment after
	// the sink has the event.
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Sent == 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if st := p.Stats(); st.Retries != 2 || st.Sent != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Past Retries a batch is given up and counted.
func TestGiveUp(t *testing.T) {
	s := &sink{failFirst: 100}
	p := newPlugin(t, s, Config{BatchSize: 1, Backoff: time.Millisecond, Retries: 2})
	p.OnSessionResumed("c1")
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Failed == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := p.Stats(); st.Failed != 1 || st.Retries != 2 || s.requests.Load() != 3 {
		t.Fatalf("stats %+v, requests %d", st, s.requests.Load())
	}
}

// While the endpoint hangs, events beyond the queue are dropped and
// counted, and offering never waits.
func TestQueueBoundNeverBlocks(t *testing.T) {
	s := &sink{gate: make(chan struct{})}
	p := newPlugin(t, s, Config{BatchSize: 1, QueueSize: 10, Retries: -1})
	defer close(s.gate) // before Stop (cleanups run after defers)
	start := time.Now()
	for range 1000 {
		_, _ = p.OnPublish(&hooks.Message{Topic: []byte("t"), Origin: hooks.FromServer})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("1000 events took %v", d)
	}
	st := p.Stats()
	if st.Dropped < 1000-12 || st.Queued+st.Dropped != 1000 {
		t.Fatalf("stats %+v", st)
	}
}

// Filters limit published; Events select the hooks provided.
func TestSelection(t *testing.T) {
	s := &sink{}
	p := newPlugin(t, s, Config{BatchSize: 1, Events: []string{"published", "disconnected"}, Filters: []string{"keep/#"}})
	if want := hooks.EventsOf(hooks.Publish, hooks.Disconnected); p.Provides() != want {
		t.Fatalf("provides %b; want %b", p.Provides(), want)
	}
	_, _ = p.OnPublish(&hooks.Message{Topic: []byte("skip/x")})
	_, _ = p.OnPublish(&hooks.Message{Topic: []byte("keep/x")})
	s.waitEvents(t, 1)
	time.Sleep(20 * time.Millisecond) // a second event, if skip/x had passed, has arrived by now
	if ev := s.events(); len(ev) != 1 || ev[0]["topic"] != "keep/x" {
		t.Fatalf("got %v", ev)
	}
}

// Stop sends what is still queued.
func TestStopFlushes(t *testing.T) {
	s := &sink{}
	p := newPlugin(t, s, Config{BatchSize: 100, Interval: time.Hour})
	for range 5 {
		p.OnSessionCreated("x")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.events()); n != 5 {
		t.Fatalf("%d events after Stop; want 5", n)
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
	f(Config{URL: "x"}, "url")
	f(Config{URL: "http://h", Events: []string{"connected", "nope"}}, "events[1]")
	f(Config{URL: "http://h", Filters: []string{"a/#/b"}}, "filters[0]")
	f(Config{URL: "http://h", BatchSize: -1}, "batch_size")
}
