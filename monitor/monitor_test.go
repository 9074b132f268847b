package monitor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcutie/mcutie/monitor/promtext"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestEndpoints: /healthz always answers, /readyz follows its checks (a
// failing one names itself, a hanging one times out), /metrics carries
// the Go runtime and process metrics.
func TestEndpoints(t *testing.T) {
	var storeErr atomic.Pointer[error]
	s := New(Options{Addr: "127.0.0.1:0", CheckTimeout: 200 * time.Millisecond, Checks: []Check{
		{Name: "store", Fn: func(context.Context) error {
			if p := storeErr.Load(); p != nil {
				return *p
			}
			return nil
		}},
	}})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	e := errors.New("store: closed")
	storeErr.Store(&e)
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "store: store: closed") {
		t.Fatalf("/readyz with a failing check = %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz follows readiness: %d", code)
	}
	storeErr.Store(nil)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz did not recover: %d", code)
	}

	code, body = get(t, base+"/metrics")
	for _, name := range []string{"go_goroutines ", "go_memstats_heap_inuse_bytes ", "process_resident_memory_bytes "} {
		if code != 200 || !strings.Contains(body, "\n"+name) {
			t.Fatalf("/metrics = %d, lacks %q", code, name)
		}
	}
}

func TestReadyTimesOut(t *testing.T) {
	s := New(Options{CheckTimeout: 50 * time.Millisecond, Checks: []Check{
		{Name: "loops", Fn: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	}})
	err := s.Ready(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "loops: ") {
		t.Fatalf("Ready with a hanging check = %v", err)
	}
}

// TestMetricsOneHeaderPerFamily: two writers of the same family (two
// plugins of one kind) and a writer of a second family in between come
// out as one valid exposition, each family under one HELP and TYPE, with
// the runtime metrics' HELP text filled in.
func TestMetricsOneHeaderPerFamily(t *testing.T) {
	events := promtext.Counter("test_events_total", "Events.")
	other := promtext.Gauge("test_other", "Other.")
	writer := func(hook string, n uint64) func(io.Writer) {
		return func(w io.Writer) {
			events.Header(w)
			events.Sample(w, promtext.Labels("hook", hook), n)
		}
	}
	s := New(Options{Addr: "127.0.0.1:0", Writers: []func(io.Writer){writer("a", 1), other.Header, func(w io.Writer) { other.Sample(w, "", 2) }, writer("b", 3)}})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	_, body := get(t, "http://"+s.Addr()+"/metrics")
	fams, err := promtext.Parse([]byte(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	by := map[string]promtext.Parsed{}
	for _, f := range fams {
		by[f.Name] = f
		if f.Help == "" {
			t.Errorf("%s has no help text", f.Name)
		}
	}
	if n := len(by["test_events_total"].Samples); n != 2 {
		t.Fatalf("test_events_total has %d samples, want 2 (hook a and b):\n%s", n, body)
	}
	if by["go_goroutines"].Help != promtext.RuntimeHelp["go_goroutines"] || by["process_open_fds"].Type != "gauge" {
		t.Fatalf("runtime metrics: %+v %+v", by["go_goroutines"], by["process_open_fds"])
	}
}
