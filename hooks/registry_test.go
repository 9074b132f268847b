package hooks

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type pubHook struct {
	name string
	fn   func(*Message) (*Message, error)
}

func (h *pubHook) Name() string                           { return h.name }
func (h *pubHook) Provides() Events                       { return EventsOf(Publish) }
func (h *pubHook) OnPublish(m *Message) (*Message, error) { return h.fn(m) }

// Publish hooks run in registration order, each on what the one before
// returned; a drop ends the chain; a panic is a drop, counted.
func TestPublishChain(t *testing.T) {
	r := New(Options{Logger: quiet()})
	defer r.Stop()
	if r.Has(Publish) {
		t.Fatal("an empty registry has Publish")
	}
	var nilReg *Registry
	if nilReg.Has(Publish) {
		t.Fatal("a nil registry has Publish")
	}
	must(t, r.Add(&pubHook{"upper", func(m *Message) (*Message, error) {
		c := *m
		c.Payload = bytes.ToUpper(m.Payload)
		return &c, nil
	}}))
	must(t, r.Add(&pubHook{"tag", func(m *Message) (*Message, error) {
		c := *m
		c.Topic = append([]byte("tagged/"), m.Topic...)
		return &c, nil
	}}))
	must(t, r.Add(&pubHook{"pass", func(*Message) (*Message, error) { return nil, nil }}))
	in := &Message{Topic: []byte("a/b"), Payload: []byte("hi")}
	out, err := r.Publish(in)
	if err != nil || out == nil || string(out.Topic) != "tagged/a/b" || string(out.Payload) != "HI" {
		t.Fatalf("got %+v, %v", out, err)
	}
	if string(in.Payload) != "hi" {
		t.Fatal("the original was modified in place")
	}

	r2 := New(Options{Logger: quiet()})
	defer r2.Stop()
	must(t, r2.Add(&pubHook{"boom", func(*Message) (*Message, error) { panic("boom") }}))
	must(t, r2.Add(&pubHook{"never", func(*Message) (*Message, error) { t.Fatal("called after a panic"); return nil, nil }}))
	if _, err := r2.Publish(in); err == nil {
		t.Fatal("a panicking hook passed the message")
	}
	if st, _ := r2.HookStats("boom"); st.Panics != 1 {
		t.Fatalf("panics %d, want 1", st.Panics)
	}
	var w strings.Builder
	r2.WriteMetrics(&w)
	if !strings.Contains(w.String(), `mcutie_hook_panics_total{hook="boom"} 1`) {
		t.Fatalf("metrics:\n%s", w.String())
	}
}

// A hook must implement what it provides, and names are unique.
func TestAddChecks(t *testing.T) {
	r := New(Options{Logger: quiet()})
	defer r.Stop()
	if err := r.Add(&liar{}); err == nil {
		t.Fatal("a hook providing Connect without OnConnect was added")
	}
	must(t, r.Add(&pubHook{name: "x"}))
	if err := r.Add(&pubHook{name: "x"}); err == nil {
		t.Fatal("two hooks named x")
	}
}

type liar struct{}

func (liar) Name() string     { return "liar" }
func (liar) Provides() Events { return EventsOf(Connect) }

type connHook struct {
	name string
	fn   func(*Client, *codec.Connect) error
}

func (h *connHook) Name() string                                { return h.name }
func (h *connHook) Provides() Events                            { return EventsOf(Connect) }
func (h *connHook) OnConnect(c *Client, p *codec.Connect) error { return h.fn(c, p) }

// Connect hooks run off the caller's goroutine; a slow one is cut off by
// the timeout (refused), a full pool refuses at once, a panic refuses.
func TestConnectPool(t *testing.T) {
	release := make(chan struct{})
	slowStarted := make(chan struct{})
	r := New(Options{Workers: 1, Queue: 1, Timeout: 200 * time.Millisecond, Logger: quiet()})
	defer r.Stop()
	var calls atomic.Int32
	must(t, r.Add(&connHook{"slow", func(c *Client, p *codec.Connect) error {
		calls.Add(1)
		if string(p.ClientID) == "panic" {
			panic("boom")
		}
		if string(p.ClientID) == "slow" {
			close(slowStarted)
			<-release
		}
		if c.Username == "mallory" {
			return ErrDeny
		}
		return nil
	}}))
	result := func(id, user string) chan error {
		ch := make(chan error, 1)
		p := &codec.Connect{ClientID: []byte(id)}
		r.Connect(&Client{ID: id, Username: user}, p, func(err error) { ch <- err })
		p.ClientID[0] = 'X' // the caller's buffer is reused at once
		return ch
	}
	wait := func(ch chan error) error {
		select {
		case err := <-ch:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("no verdict")
			return nil
		}
	}
	if err := wait(result("ok", "alice")); err != nil {
		t.Fatalf("allowed client refused: %v", err)
	}
	if err := wait(result("bad", "mallory")); !errors.Is(err, ErrDeny) {
		t.Fatalf("mallory: %v", err)
	}
	if err := wait(result("panic", "x")); err == nil {
		t.Fatal("a panicking hook allowed the CONNECT")
	}
	slow := result("slow", "alice") // holds the only worker
	<-slowStarted                   // taken off the queue: the queue is empty again
	queued := result("queued", "alice")
	full := result("full", "alice") // the queue holds one: refused at once
	if re := codec.AsReasonError(wait(full)); re == nil || re.Code != codec.ServerBusy {
		t.Fatalf("full pool: %v, want 0x89", re)
	}
	if re := codec.AsReasonError(wait(slow)); re == nil || re.Code != codec.NotAuthorized {
		t.Fatalf("slow hook: %v, want a refusal at the timeout", re)
	}
	close(release)
	if err := wait(queued); err != nil && !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("queued: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
