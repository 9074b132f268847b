package aggregate

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mcutie/mcutie/hooks"
)

// recorder is a Publisher that keeps what it is asked to publish.
type recorder struct {
	mu   sync.Mutex
	msgs []published
	err  error
}

type published struct {
	topic   string
	payload map[string]any
	qos     byte
	retain  bool
}

func (r *recorder) Publish(topic string, payload []byte, qos byte, retain bool) error {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, published{topic, m, qos, retain})
	return r.err
}

func (r *recorder) wait(t *testing.T, n int) []published {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := append([]published(nil), r.msgs...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d results; want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newPlugin(t *testing.T, cfg Config, pub Publisher) *Plugin {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if pub != nil {
		p.SetPublisher(pub)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

func send(t *testing.T, p *Plugin, topic, payload string) {
	t.Helper()
	out, err := p.OnPublish(&hooks.Message{Topic: []byte(topic), Payload: []byte(payload), Origin: hooks.FromClient})
	if out != nil || err != nil {
		t.Fatalf("the message was not passed on: %v %v", out, err)
	}
}

// A count window of plain numbers: min, max, avg, sum and count.
func TestCountWindow(t *testing.T) {
	rec := &recorder{}
	p := newPlugin(t, Config{Rules: []Rule{{Filter: "s/+/t", Output: "stats/t", Count: 4, QoS: 1, Retain: true}}}, rec)
	for _, v := range []string{"1", " 2.5 ", "oops", "-3", "7.5", "100"} {
		send(t, p, "s/a/t", v)
	}
	send(t, p, "other", "5")
	got := rec.wait(t, 1)
	want := map[string]any{"count": 4.0, "min": -3.0, "max": 7.5, "sum": 8.0, "avg": 2.0}
	for k, v := range want {
		if got[0].payload[k] != v {
			t.Fatalf("%s = %v; want %v (%v)", k, got[0].payload[k], v, got[0].payload)
		}
	}
	if got[0].topic != "stats/t" || got[0].qos != 1 || !got[0].retain {
		t.Fatalf("published %+v", got[0])
	}
	if _, ok := got[0].payload["start"].(string); !ok {
		t.Fatalf("no start: %v", got[0].payload)
	}
	st, _ := p.Stats("stats/t")
	if st.Values != 5 || st.Skipped != 1 || st.Published != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A time window of a JSON field, with a subset of the functions; an empty
// window publishes nothing.
func TestTimeWindowJSONField(t *testing.T) {
	rec := &recorder{}
	p := newPlugin(t, Config{Rules: []Rule{{Filter: "j/#", Output: "stats/j", Window: 100 * time.Millisecond, Field: "data.temp", Functions: []string{"max", "count"}}}}, rec)
	send(t, p, "j/1", `{"data":{"temp":20}}`)
	send(t, p, "j/2", `{"data":{"temp":22.5,"x":"y"}}`)
	send(t, p, "j/3", `{"data":{"temp":"hot"}}`)
	send(t, p, "j/4", `not json`)
	got := rec.wait(t, 1)
	if got[0].payload["max"] != 22.5 || got[0].payload["count"] != 2.0 {
		t.Fatalf("got %v", got[0].payload)
	}
	if _, ok := got[0].payload["sum"]; ok {
		t.Fatal("sum was not asked for")
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rec.wait(t, 1)); n != 1 {
		t.Fatalf("%d results; empty windows publish nothing", n)
	}
}

// Without a Publisher, or with one that fails, results are counted, not
// waited for.
func TestNoPublisher(t *testing.T) {
	p := newPlugin(t, Config{Rules: []Rule{{Filter: "a", Output: "b", Count: 1}}}, nil)
	send(t, p, "a", "1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, _ := p.Stats("b"); st.Dropped == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("result not dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec := &recorder{err: errors.New("closed")}
	p.SetPublisher(rec)
	send(t, p, "a", "1")
	rec.wait(t, 1)
	for {
		if st, _ := p.Stats("b"); st.Errors == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("error not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A publisher that blocks never blocks the hook: results beyond the queue
// are dropped.
func TestQueueBound(t *testing.T) {
	block := make(chan struct{})
	p := newPlugin(t, Config{Queue: 2, Rules: []Rule{{Filter: "a", Output: "b", Count: 1}}}, blocking(block))
	defer close(block)
	start := time.Now()
	for range 100 {
		send(t, p, "a", "1")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("took %v", d)
	}
	if st, _ := p.Stats("b"); st.Dropped < 97 {
		t.Fatalf("stats %+v", st)
	}
}

type blocking chan struct{}

func (b blocking) Publish(string, []byte, byte, bool) error { <-b; return nil }

// Our own results, coming back as server messages, are not aggregated.
func TestOwnResultsIgnored(t *testing.T) {
	p := newPlugin(t, Config{Rules: []Rule{{Filter: "a/#", Output: "b", Count: 10}}}, &recorder{})
	_, _ = p.OnPublish(&hooks.Message{Topic: []byte("b"), Payload: []byte("1"), Origin: hooks.FromServer})
	if st, _ := p.Stats("b"); st.Values != 0 {
		t.Fatalf("stats %+v", st)
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
	ok := Rule{Filter: "a/#", Output: "b", Count: 1}
	f(Config{}, "rules")
	f(Config{Rules: []Rule{ok, {Filter: "a/#/c", Output: "x", Count: 1}}}, "rules[1].filter")
	f(Config{Rules: []Rule{{Filter: "a", Output: "b/+", Count: 1}}}, "rules[0].output")
	f(Config{Rules: []Rule{{Filter: "a", Output: "b"}}}, "rules[0].count")
	f(Config{Rules: []Rule{{Filter: "a", Output: "b", Count: 1, Functions: []string{"median"}}}}, "rules[0].functions[0]")
	f(Config{Rules: []Rule{{Filter: "a", Output: "b", Count: 1, QoS: 3}}}, "rules[0].qos")
	// Loops: an output that a filter matches, its own or another rule's.
	f(Config{Rules: []Rule{{Filter: "s/#", Output: "s/avg", Count: 1}}}, "rules[0].output")
	f(Config{Rules: []Rule{ok, {Filter: "x", Output: "a/y", Count: 1}}}, "rules[1].output")
}
